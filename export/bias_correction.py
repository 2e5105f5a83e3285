"""Bias correction of an ONNX QDQ model's depthwise convolutions (Nagel et al., "Data-Free Quantization
Through Weight Equalization and Bias Correction", ICCV 2019).

Rounding a convolution's weights shifts the mean of its output: E[(W_q - W) x] = (W_q - W) E[x], which is
not zero when a channel has few weights (a depthwise 3x3 or 5x5 kernel has 9 or 25) and its input is all
positive (after ReLU6). Subtracting that shift from the bias removes it for the price of one add the layer
already does. E[x] comes from the float model on the representative images.

Measured on the demo's lite0 with 7-bit weights (answers changed against ONNX fp32 on two stress sets of 1,000,
and the accuracy change): depthwise only 10 / 3 changed, +0.0 / +0.1 points, against 7 / 8 and -0.6 / -0.2
uncorrected; correcting the pointwise convolutions too did worse (docs/results.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

BATCH = 50


def correct_depthwise_bias(float_path: Path, quantized_path: Path, representative: np.ndarray) -> int:
    """Rewrite the int32 biases of `quantized_path`'s depthwise Conv nodes in place; return how many.

    `float_path` is the model `quantized_path` was quantized from (same node names and weight names, as
    onnxruntime's quantize_static leaves them)."""
    import onnx
    from onnx import numpy_helper

    float_model = onnx.load(str(float_path))
    float_weights = {i.name: numpy_helper.to_array(i) for i in float_model.graph.initializer}
    quantized = onnx.load(str(quantized_path))
    initializers = {i.name: i for i in quantized.graph.initializer}
    producer = {out: node for node in quantized.graph.node for out in node.output}

    float_inputs = {n.name: n.input[0] for n in float_model.graph.node if n.op_type == "Conv"}

    targets = []  # (the Conv's float input tensor, its float weight name, weight DQ node, bias DQ node)
    for node in quantized.graph.node:
        if node.op_type != "Conv" or len(node.input) < 3 or _group(node) == 1:
            continue
        weight, bias = producer.get(node.input[1]), producer.get(node.input[2])
        if not all(p is not None and p.op_type == "DequantizeLinear" and p.input[0] in initializers
                   for p in (weight, bias)):
            continue
        float_weight = weight.input[0].removesuffix("_quantized")
        if node.name in float_inputs and float_weight in float_weights:
            targets.append((float_inputs[node.name], float_weight, weight, bias))
    if not targets:
        return 0

    means = _channel_means(float_model, {t[0] for t in targets}, representative)
    for float_input, float_weight, weight, bias in targets:
        w_int, w_scale = (numpy_helper.to_array(initializers[n]).astype(np.float64) for n in weight.input[:2])
        error = w_int * w_scale.reshape(-1, 1, 1, 1) - float_weights[float_weight]
        shift = error.sum(axis=(1, 2, 3)) * means[float_input]  # depthwise: output channel o reads channel o
        stored = initializers[bias.input[0]]
        b_scale = numpy_helper.to_array(initializers[bias.input[1]]).astype(np.float64)
        corrected = np.round(numpy_helper.to_array(stored) - shift / b_scale)
        # A channel of near-zero weights has its bias already clamped at the int32 limit: keep it there, not wrapped.
        corrected = np.clip(corrected, np.iinfo(np.int32).min, np.iinfo(np.int32).max).astype(np.int32)
        stored.CopyFrom(numpy_helper.from_array(corrected, stored.name))
    onnx.save(quantized, str(quantized_path))
    return len(targets)


def _group(node) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1)


def _channel_means(model, tensors: set[str], images: np.ndarray) -> dict[str, np.ndarray]:
    """Mean over images and positions of each channel of `tensors` (NCHW) in the float model."""
    import onnx
    import onnxruntime as ort

    model = onnx.ModelProto.FromString(model.SerializeToString())
    present = {o.name for o in model.graph.output}
    model.graph.output.extend(onnx.ValueInfoProto(name=t) for t in sorted(tensors - present))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    input_name, names = session.get_inputs()[0].name, sorted(tensors)
    sums, counts = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0)
    for i in range(0, len(images), BATCH):
        outputs = session.run(names, {input_name: np.asarray(images[i:i + BATCH], np.float32)})
        for name, value in zip(names, outputs):
            sums[name] = sums[name] + value.astype(np.float64).sum(axis=(0, 2, 3))
            counts[name] += value.shape[0] * value.shape[2] * value.shape[3]
    return {name: sums[name] / counts[name] for name in names}
