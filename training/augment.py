"""Training-time augmentation with Keras 3 preprocessing layers.

The paper's geometric augmentation (rotation <= 40 degrees, shifts, shear and zoom <= 20 %) plus the fix its
authors named but never tried: random brightness and contrast. Every layer works on float pixels in 0..255
(the model scales them itself) and keeps them there: geometric layers interpolate bilinearly, so outputs
stay within the inputs' range, and brightness/contrast clip to `value_range=(0, 255)`.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from glassware.errors import GlasswareError

# Plain numbers, recorded in run.json. Set any strength to 0 to switch that augmentation off.
AUGMENTATION_DEFAULTS: dict = {
    "rotation": 40.0,  # degrees, either way (paper)
    "shift": 0.2,  # fraction of width and of height, either way (paper)
    "shear": 0.2,  # fraction of the image sheared over, x and y (paper)
    "zoom": 0.2,  # fraction in or out, aspect kept (paper)
    "brightness": 0.3,  # fraction of 0..255 added or removed (the paper's proposed fix)
    "contrast": 0.3,  # contrast factor in [1 - c, 1 + c] (the paper's proposed fix)
    "fill_mode": "nearest",  # pixels moved in from outside continue the edge: the white table, no mirrored objects
}
VALUE_RANGE = (0, 255)


def augmentation_config(config: dict | None = None) -> dict:
    """The defaults overridden by `config`, validated: the dict to record with a run."""
    unknown = set(config or {}) - set(AUGMENTATION_DEFAULTS)
    if unknown:
        raise GlasswareError(f"unknown augmentation keys {sorted(unknown)}; known: {', '.join(AUGMENTATION_DEFAULTS)}")
    merged = {**AUGMENTATION_DEFAULTS, **(config or {})}
    limits = {"rotation": 180.0, "shift": 1.0, "shear": 1.0, "zoom": 0.99, "brightness": 1.0, "contrast": 1.0}
    for key, upper in limits.items():
        if not 0 <= float(merged[key]) <= upper:
            raise GlasswareError(f"augmentation {key}={merged[key]} must be between 0 and {upper}")
    if merged["fill_mode"] not in ("nearest", "reflect", "wrap", "constant"):
        raise GlasswareError(f"augmentation fill_mode={merged['fill_mode']!r}: use nearest, reflect, wrap or constant")
    return merged


def make_augmentation(config: dict | None = None) -> keras.Sequential:
    """A Sequential of the enabled augmentation layers (geometric first, then photometric)."""
    c = augmentation_config(config)
    geometric = {"fill_mode": c["fill_mode"], "interpolation": "bilinear"}
    candidates = [
        (c["rotation"], lambda: keras.layers.RandomRotation(c["rotation"] / 360.0, **geometric)),
        (c["shift"], lambda: keras.layers.RandomTranslation(c["shift"], c["shift"], **geometric)),
        (c["shear"], lambda: keras.layers.RandomShear(c["shear"], c["shear"], **geometric)),
        (c["zoom"], lambda: keras.layers.RandomZoom(c["zoom"], **geometric)),
        (c["brightness"], lambda: keras.layers.RandomBrightness(c["brightness"], value_range=VALUE_RANGE)),
        (c["contrast"], lambda: keras.layers.RandomContrast(c["contrast"], value_range=VALUE_RANGE)),
    ]
    return keras.Sequential([make() for strength, make in candidates if strength], name="augmentation")


def apply_augmentation(augmentation: keras.Sequential, images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Augment a float32 batch (N, H, W, 3) with randomness drawn only from `seed` (int tensor, shape (2,)).

    Calling the layers directly would draw from their shared seed-generator variables, which parallel
    tf.data calls race on, so a seed would not reproduce a run. Here each batch gets its own stateless seed.
    """
    seeds = _StatelessSeeds(seed)
    for layer in augmentation.layers:
        transformation = layer.get_random_transformation(images, training=True, seed=seeds)
        images = layer.transform_images(images, transformation, training=True)
    return images


class _StatelessSeeds(keras.random.SeedGenerator):
    """A Keras seed source with no state: the n-th draw is `fold_in(seed, n)`.

    Keras' random ops accept only an int or a SeedGenerator; this one derives every draw from a per-batch
    seed tensor, so it is safe in a parallel `Dataset.map` and the same seed gives the same transforms.
    """

    def __init__(self, seed: tf.Tensor):  # no super().__init__(): that would create a state variable
        self._seed = tf.cast(seed, tf.int64)
        self._draws = 0

    def next(self, ordered: bool = True) -> tf.Tensor:
        self._draws += 1
        return tf.random.experimental.stateless_fold_in(self._seed, self._draws)
