"""Perturbed copies of the calibration images: the training augmentation, so the fit sees some domain drift.

Confidence fitted on clean lab images alone learns how sure to be in the lab. This model is under-confident
there, so such a fit sharpens it, and in a new environment the sharpened answers are over-confident: on the
demo's VGG, stress ECE 5.9 -> 8.1 %. Fitting on the clean images plus one augmented copy of each (Tomani et
al., "Post-hoc uncertainty calibration for domain drift scenarios", CVPR 2021) keeps the lab calibration
(test ECE 2.1 -> 1.4 %) and stops short of that (stress 5.9 -> 3.6 %), without seeing any stress image.
The copies go through the run's own augmentation (its warp, brightness/contrast and colour fields), or the
defaults if the run trained without any. Needs TensorFlow (the `train` extra).
"""

from __future__ import annotations

import numpy as np

BATCH = 64


def perturbed_copies(x: np.ndarray, augmentation: dict | None = None, seed: int = 0) -> np.ndarray:
    """One augmented copy of every image in `x` (uint8 or float 0..255, (N, H, W, 3)), as float32 0..255."""
    import tensorflow as tf

    from glassware.training.augment import apply_augmentation, make_augmentation

    layers = make_augmentation(augmentation or None)
    batches = [apply_augmentation(layers, tf.constant(x[i:i + BATCH], tf.float32), tf.constant([seed, i], tf.int32))
               for i in range(0, len(x), BATCH)]
    return np.concatenate([b.numpy() for b in batches]) if batches else np.zeros((0, *x.shape[1:]), np.float32)
