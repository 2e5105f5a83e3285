"""Training-time augmentation with Keras 3 preprocessing layers.

The paper's geometric augmentation (rotation <= 40 degrees, shifts, shear and zoom <= 20 %), the fix its
authors named but never tried (random brightness and contrast), and smooth colour fields blended in, which
stand for the light and backgrounds a lab photo never shows (murky air, colour casts, out-of-focus clutter).
A transfer model's fine-tuning also blends a faint second picture into half of its images (`RandomBlend`).
Every layer works on float pixels in 0..255
(the model scales them itself) and keeps them there: the warp interpolates bilinearly, so outputs stay within
the inputs' range, and brightness/contrast clip to `value_range=(0, 255)`.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import ops

from glassware.errors import GlasswareError

# Plain numbers, recorded in run.json. Set any strength to 0 to switch that augmentation off.
AUGMENTATION_DEFAULTS: dict = {
    "rotation": 40.0,  # degrees, either way (paper)
    "shift": 0.2,  # fraction of width and of height, either way (paper)
    "shear": 0.2,  # shear factor, x and y, either way (paper)
    "zoom": 0.2,  # scale in [1 - zoom, 1 + zoom], aspect kept (paper)
    "brightness": 0.3,  # fraction of 0..255 added or removed (the paper's proposed fix)
    "contrast": 0.3,  # contrast factor in [1 - c, 1 + c] (the paper's proposed fix)
    "backdrop": 0.4,  # at most this weight of a smooth random colour field blended into the image
    "fill_mode": "nearest",  # pixels moved in from outside continue the edge: the white table, no mirrored objects
}
VALUE_RANGE = (0, 255)
_LIMITS = {"rotation": 180.0, "shift": 1.0, "shear": 1.0, "zoom": 0.9, "brightness": 1.0, "contrast": 1.0,
           "backdrop": 1.0}
_FILL_MODES = ("nearest", "reflect", "mirror", "wrap", "constant")


def augmentation_config(config: dict | None = None) -> dict:
    """The defaults overridden by `config`, validated: the dict to record with a run."""
    unknown = set(config or {}) - set(AUGMENTATION_DEFAULTS)
    if unknown:
        raise GlasswareError(f"unknown augmentation keys {sorted(unknown)}; known: {', '.join(AUGMENTATION_DEFAULTS)}")
    merged = {**AUGMENTATION_DEFAULTS, **(config or {})}
    for key, upper in _LIMITS.items():
        if not 0 <= float(merged[key]) <= upper:
            raise GlasswareError(f"augmentation {key}={merged[key]} must be between 0 and {upper}")
    if merged["fill_mode"] not in _FILL_MODES:
        raise GlasswareError(f"augmentation fill_mode={merged['fill_mode']!r}: use one of {', '.join(_FILL_MODES)}")
    return merged


def make_augmentation(config: dict | None = None, blend: float = 0.0) -> keras.Sequential:
    """A Sequential of the enabled augmentation layers: one geometric warp, brightness, contrast, backdrop; and
    `RandomBlend(blend)` if `blend` (fine-tuning only: not in `config`, see `TrainConfig.blend`)."""
    c = augmentation_config(config)
    layers = []
    if any(c[key] for key in ("rotation", "shift", "shear", "zoom")):
        layers.append(RandomAffine(c["rotation"], c["shift"], c["shear"], c["zoom"], c["fill_mode"]))
    if c["brightness"]:
        layers.append(keras.layers.RandomBrightness(c["brightness"], value_range=VALUE_RANGE))
    if c["contrast"]:
        layers.append(keras.layers.RandomContrast(c["contrast"], value_range=VALUE_RANGE))
    if c["backdrop"]:
        layers.append(RandomBackdrop(c["backdrop"]))
    if blend:
        layers.append(RandomBlend(blend))
    return keras.Sequential(layers, name="augmentation")


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


class _RandomImageLayer(keras.layers.Layer):
    """What our layers share with Keras' image preprocessing layers: `get_random_transformation` draws the
    randomness (from a seed source), `transform_images` applies it, and `call` does both when training."""

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training:
            return images
        return self.transform_images(images, self.get_random_transformation(images, training))

    def compute_output_shape(self, input_shape):
        return input_shape


class RandomAffine(_RandomImageLayer):
    """Random rotation, shift, shear and zoom about the image centre, applied as ONE bilinear warp.

    That is what the paper's ImageDataGenerator did. Keras' RandomRotation, RandomTranslation, RandomShear
    and RandomZoom would resample each image four times: four bilinear blurs of a 150x150 picture, and 3x
    the CPU for the whole augmentation (52 vs 16 CPU-ms per batch of 8, with brightness and contrast, on a
    2-core EPYC): the difference between the pipeline keeping up with training or not.
    Same interface as Keras' image preprocessing layers, so `apply_augmentation` seeds it the same way.
    """

    def __init__(self, rotation: float = 40.0, shift: float = 0.2, shear: float = 0.2, zoom: float = 0.2,
                 fill_mode: str = "nearest", seed: int | None = None, **kwargs):
        super().__init__(seed, **kwargs)
        self.rotation, self.shift, self.shear, self.zoom, self.fill_mode = rotation, shift, shear, zoom, fill_mode

    def get_random_transformation(self, images, training=True, seed=None):
        """Per image, the output -> input pixel map: input = A (output - centre) + centre + shift."""
        seed = self.seed_generator if seed is None else seed
        n = ops.shape(images)[0]
        height, width = (ops.cast(size, "float32") for size in ops.shape(images)[1:3])

        def uniform(limit):
            return keras.random.uniform((n,), -limit, limit, seed=seed)

        angle = uniform(math.radians(self.rotation))
        scale = 1.0 + uniform(self.zoom)
        shear_x, shear_y = uniform(self.shear), uniform(self.shear)
        cos, sin = ops.cos(angle) * scale, ops.sin(angle) * scale
        # A = scale * rotation @ [[1, shear_x], [shear_y, 1]]
        a00, a01 = cos - sin * shear_y, cos * shear_x - sin
        a10, a11 = sin + cos * shear_y, sin * shear_x + cos
        cx, cy = (width - 1) / 2, (height - 1) / 2
        b0 = cx - a00 * cx - a01 * cy + uniform(self.shift) * width
        b1 = cy - a10 * cx - a11 * cy + uniform(self.shift) * height
        zeros = ops.zeros_like(a00)
        return {"transform": ops.stack([a00, a01, b0, a10, a11, b1, zeros, zeros], axis=1)}

    def transform_images(self, images, transformation, training=True):
        if not training:
            return images
        return ops.image.affine_transform(images, transformation["transform"], interpolation="bilinear",
                                          fill_mode=self.fill_mode)


class RandomBackdrop(_RandomImageLayer):
    """Blend a smooth random colour field into each image, with a random weight in [0, strength].

    Brightness and contrast change the whole picture alike; the stress domain also varies across it: a murky
    colour cast, a darker corner, blurred shapes behind the object. A field of random colours on a coarse
    grid, bilinearly enlarged, is that kind of variation, and needs no mask of where the object is.
    """

    def __init__(self, strength: float = 0.4, grid: tuple[int, int] = (5, 5), seed: int | None = None, **kwargs):
        super().__init__(seed, **kwargs)
        self.strength, self.grid = strength, grid

    def get_random_transformation(self, images, training=True, seed=None):
        seed = self.seed_generator if seed is None else seed
        n = ops.shape(images)[0]
        field = keras.random.uniform((n, *self.grid, 3), VALUE_RANGE[0], VALUE_RANGE[1], seed=seed)
        weight = keras.random.uniform((n, 1, 1, 1), 0.0, self.strength, seed=seed)
        return {"field": field, "weight": weight}

    def transform_images(self, images, transformation, training=True):
        if not training:
            return images
        field = ops.image.resize(transformation["field"], ops.shape(images)[1:3], interpolation="bilinear")
        weight = transformation["weight"]
        return images * (1.0 - weight) + field * weight  # a convex blend: stays within 0..255


class RandomBlend(_RandomImageLayer):
    """Blend another image of the batch into `share` of the images, with a random weight in [0, strength]; the
    label stays the first image's (SamplePairing, Inoue 2018, at a faint weight).

    Photos taken in one place show its empty scene one way (a plain bench) and faint shapes mostly as the
    faint objects of one class (clear vessels of `other`); a model trained on them alone takes faint
    structure in an empty scene elsewhere (a busy room out of focus) for that class. Faint ghosts of other
    pictures, labelled as what is plainly in view, say that faint structure is not an object
    (docs/results.md, 2026-12-05 night).
    """

    def __init__(self, strength: float = 0.2, share: float = 0.5, seed: int | None = None, **kwargs):
        super().__init__(seed, **kwargs)
        self.strength, self.share = strength, share

    def get_random_transformation(self, images, training=True, seed=None):
        seed = self.seed_generator if seed is None else seed
        n = ops.shape(images)[0]
        weight = keras.random.uniform((n, 1, 1, 1), 0.0, self.strength, seed=seed)
        chosen = keras.random.uniform((n, 1, 1, 1), seed=seed) < self.share
        partner = ops.argsort(keras.random.uniform((n,), seed=seed))  # a random pairing: any batch order
        return {"weight": ops.where(chosen, weight, 0.0), "partner": partner}

    def transform_images(self, images, transformation, training=True):
        if not training:
            return images
        weight = transformation["weight"]
        return images * (1.0 - weight) + ops.take(images, transformation["partner"], axis=0) * weight


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
