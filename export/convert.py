"""Keras logits model -> TFLite (fp32, fp16, dynamic-range, full int8) and ONNX (fp32, int8 QDQ) files.

Every format keeps the model's input (RGB pixels 0..255, scaled by the model's own first layer) and outputs
logits. TFLite int8 takes uint8 pixels straight from the camera, runs int8 up to the logits layer and gives
float32 logits; ONNX int8 keeps a float32 input and quantizes inside (QDQ). Both keep the logits layer
(64 x 9 weights for the VGG) in float: see `_tflite_full_integer`. Needs the `train` extra (TensorFlow, tf2onnx, onnx).
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import warnings
from functools import partial
from pathlib import Path

import numpy as np

from glassware.calibration.representative import check_pixel_range
from glassware.errors import ExportError
from glassware.export.bias_correction import correct_depthwise_bias
from glassware.formats import FORMATS

ONNX_OPSET = 17


class Converter:
    """Converts one Keras logits model to any of `glassware.formats.FORMATS`. The SavedModel every TFLite
    conversion starts from and the fp32 ONNX file ONNX int8 quantizes are made once, in `workdir`."""

    def __init__(self, logits_model, workdir: str | Path):
        self.model = logits_model
        self.workdir = Path(workdir)
        self._saved_model: Path | None = None
        self._onnx_float: Path | None = None

    def convert(self, name: str, out_path: str | Path, representative: np.ndarray | None = None,
                check_range: bool = True) -> Path:
        """Write format `name` to `out_path`. int8 formats need `representative` (0..255 training pixels).

        `check_range=False` exists only so a test can show what a wrongly scaled calibration set does.
        """
        if name not in FORMATS:
            raise ExportError(f"unknown format {name!r}; choose from {', '.join(FORMATS)}")
        fmt, out_path = FORMATS[name], Path(out_path)
        if fmt.needs_representative:
            if representative is None or len(representative) == 0:
                raise ExportError(f"{name} needs a representative set of training images")
            if check_range:
                check_pixel_range(representative)
        with _quiet():
            CONVERTERS[fmt.runtime, fmt.precision](self, out_path, representative)
        return out_path

    def saved_model(self) -> Path:
        if self._saved_model is None:
            path = self.workdir / "saved_model"
            try:
                self.model.export(str(path), format="tf_saved_model", verbose=False)
            except Exception as e:  # TensorFlow tracing raises many types
                raise ExportError(f"SavedModel export (the TFLite converters' input) failed: {e}") from e
            self._saved_model = path
        return self._saved_model

    def onnx_float(self) -> Path:
        if self._onnx_float is None:
            self._onnx_float = _onnx_float(self.model, self.workdir / "fp32.onnx")
        return self._onnx_float


def _write_tflite(converter: Converter, out_path: Path, representative: np.ndarray | None, precision: str) -> None:
    out_path.write_bytes(_tflite_bytes(converter.saved_model(), precision, representative))


def _write_onnx_float(converter: Converter, out_path: Path, representative: np.ndarray | None) -> None:
    shutil.copyfile(converter.onnx_float(), out_path)


def _write_onnx_quantized(converter: Converter, out_path: Path, representative: np.ndarray | None) -> None:
    _onnx_quantized(converter.onnx_float(), out_path, representative)


# (runtime, precision) of a format in the table -> writer(converter, out_path, representative)
CONVERTERS = {
    **{("tflite", p): partial(_write_tflite, precision=p) for p in ("fp32", "fp16", "dynamic", "int8")},
    ("onnx", "fp32"): _write_onnx_float,
    ("onnx", "int8"): _write_onnx_quantized,
}


@contextlib.contextmanager
def _quiet():
    """The converters print SavedModel signatures to stdout and chat at INFO: keep the command's output readable."""
    # onnxruntime.quantization logs through the root logger, a line per rescaled bias.
    loggers = [logging.getLogger(n) for n in ("tensorflow", "tf2onnx", "onnxruntime", None)]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            # Noise for this model: the uint8 input's range comes from the representative set, not stats.
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
            warnings.filterwarnings("ignore", message=".*np.object", category=FutureWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _tflite_bytes(saved_model: Path, precision: str, representative: np.ndarray | None) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if precision != "fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if precision == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if precision == "int8":
        return _tflite_full_integer(converter, representative)
    try:
        return converter.convert()
    except Exception as e:  # the converter raises ConverterError, ValueError, RuntimeError...
        raise ExportError(f"TFLite {precision} conversion failed: {e}") from e


def _tflite_full_integer(converter, representative: np.ndarray) -> bytes:
    """int8 weights and activations from the uint8 input to the logits layer, which stays float, as do the
    logits it outputs.

    Why: one int8 scale must cover every logit of every image, and the trained VGG's span -247..108, a step
    of 1.39 that tied or flipped 1.3 % of the lab test answers: measured, quantizing that one tensor alone
    (in Keras) costs exactly what the all-int8 model lost (-0.7 points), and every other tensor together
    nothing. Kept float: lab test +0.0, stress -0.1 points against Keras, 100 % top-1 agreement, same size
    (576 float weights) and speed. ONNX int8 keeps the same layer float for the same reason.
    The converter's public API cannot keep one layer float while setting the input type, hence its
    calibrate-then-quantize steps (the path TensorFlow's QuantizationDebugger takes).
    """
    import tensorflow as tf
    from tensorflow.lite.python import convert as tfl_convert, util as tfl_util

    from glassware.edge_runtime.backends import tflite_interpreter

    converter.representative_dataset = lambda: ([x[None].astype(np.float32)] for x in representative)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter._experimental_calibrate_only = True
    try:
        calibrated = converter.convert()
        interpreter = tflite_interpreter()[0](model_content=calibrated)
        names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
        dense = [names[op["outputs"][0]] for op in interpreter._get_ops_details() if op["op_name"] == "FULLY_CONNECTED"]
        if not dense:
            raise ExportError("TFLite int8: the model has no dense logits layer to keep in float")
        # One weight scale per dense layer, not per output channel (TF 2.21's default). Measured on the demo's
        # VGG (23,104-input dense layer), with all layers int8: accuracy -2.2 -> -0.7 points against Keras.
        quantized = tfl_convert.mlir_quantize(calibrated, fully_quantize=False, denylisted_nodes=dense[-1:],
                                              disable_per_channel_for_dense_layers=True)
        return tfl_util.modify_model_io_type(quantized, tf.uint8, tf.float32)  # raw camera pixels in
    except ExportError:
        raise
    except Exception as e:  # the converter raises ConverterError, ValueError, RuntimeError...
        raise ExportError(f"TFLite int8 conversion failed: {e}") from e


def _onnx_float(model, path: Path) -> Path:
    import onnx

    try:
        model.export(str(path), format="onnx", opset_version=ONNX_OPSET, verbose=False)
        onnx.checker.check_model(str(path))
    except Exception as e:  # tf2onnx and onnx raise a variety of types
        raise ExportError(f"ONNX export failed: {e}") from e
    return path


def _onnx_quantized(fp32_path: Path, path: Path, representative: np.ndarray) -> Path:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    input_name = onnx.load(str(fp32_path)).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = iter(representative.astype(np.float32)[:, None])

        def get_next(self):
            x = next(self._batches, None)
            return None if x is None else {input_name: x}

    prepared = path.with_name(path.stem + ".prepared.onnx")
    try:
        quant_pre_process(str(fp32_path), str(prepared))  # shape inference + folding: cleaner QDQ placement
        # reduce_range: 7-bit weights. x86 CPUs without VNNI multiply u8 x s8 pairs into int16 (VPMADDUBSW),
        # which saturates with full-range per-channel weights: measured here, a 23-point accuracy drop on the
        # trained VGG, and 1.4 points with 7-bit weights. ARM and VNNI CPUs lose nothing measurable.
        # The logits layer stays float: one uint8 scale for all class logits flipped close calls. Measured on
        # the demo's VGG: agreement with Keras 97.8 % -> 99.8 %, accuracy -1.3 -> -0.2 points, same file size
        # (its weights are 64x9) and no measurable latency.
        graph = onnx.load(str(prepared)).graph
        logits = [n.name for n in graph.node if n.op_type in ("Gemm", "MatMul")][-1:]
        quantize_static(str(prepared), str(path), Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        reduce_range=True, nodes_to_exclude=logits)
        correct_depthwise_bias(prepared, path, representative)  # the 7-bit kernels' mean error (see there)
        onnx.checker.check_model(str(path))
    except Exception as e:
        raise ExportError(f"ONNX int8 quantization failed: {e}") from e
    finally:
        prepared.unlink(missing_ok=True)
    return path
