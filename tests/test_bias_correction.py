"""Depthwise bias correction of an ONNX QDQ model: the rounded kernels' mean output error is taken out."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")

from glassware.export.bias_correction import correct_depthwise_bias  # noqa: E402

CHANNELS = 16


def _depthwise_model(path, rng):
    """x (1, C, 12, 12) -> depthwise 3x3 conv with bias -> y: kernels of tiny positive and negative weights,
    whose rounding to 7 bits leaves a mean error per channel."""
    from onnx import TensorProto, helper, numpy_helper

    w = (rng.normal(0, 1, (CHANNELS, 1, 3, 3)) * np.exp(rng.normal(0, 1.5, (CHANNELS, 1, 1, 1)))).astype(np.float32)
    b = rng.normal(0, 0.1, CHANNELS).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], name="dw", group=CHANNELS, pads=[1, 1, 1, 1])
    shape = [None, CHANNELS, 12, 12]
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))


def _run(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_depthwise_bias_correction_removes_the_mean_output_error(tmp_path):
    rng = np.random.default_rng(0)
    float_path, quantized_path = tmp_path / "float.onnx", tmp_path / "int8.onnx"
    _depthwise_model(float_path, rng)
    images = rng.uniform(0, 6, (64, CHANNELS, 12, 12)).astype(np.float32)  # positive, as after ReLU6

    class Reader(quantization.CalibrationDataReader):
        def __init__(self):
            self._batches = iter(images[:, None])

        def get_next(self):
            x = next(self._batches, None)
            return None if x is None else {"x": x}

    quantization.quantize_static(str(float_path), str(quantized_path), Reader(),
                                 quant_format=quantization.QuantFormat.QDQ, per_channel=True, reduce_range=True,
                                 activation_type=quantization.QuantType.QUInt8,
                                 weight_type=quantization.QuantType.QInt8)
    held_out = rng.uniform(0, 6, (32, CHANNELS, 12, 12)).astype(np.float32)
    reference = _run(float_path, held_out)
    before = np.abs((_run(quantized_path, held_out) - reference).mean(axis=(0, 2, 3)))

    assert correct_depthwise_bias(float_path, quantized_path, images) == 1
    onnx.checker.check_model(str(quantized_path))
    after = np.abs((_run(quantized_path, held_out) - reference).mean(axis=(0, 2, 3)))
    assert after.mean() < 0.5 * before.mean()


def test_a_model_without_depthwise_convolutions_is_left_alone(tmp_path):
    from onnx import TensorProto, helper

    path = tmp_path / "relu.onnx"
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    before = path.read_bytes()
    assert correct_depthwise_bias(path, path, np.zeros((1, 2), np.float32)) == 0
    assert path.read_bytes() == before
