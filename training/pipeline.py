"""tf.data input pipeline over the decoded-once uint8 cache: shuffle, batch, augment per batch, prefetch."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from glassware.training.augment import apply_augmentation

AUTOTUNE = tf.data.AUTOTUNE


def make_dataset(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    training: bool,
    augmentation: keras.Sequential | None = None,
    seed: int = 0,
) -> tf.data.Dataset:
    """Batches of (float32 images in 0..255, int64 labels) from uint8 images (N, H, W, 3) and labels (N,);
    also of float32 features (N, D), which only a head-only phase gets and which are never augmented.

    Training: a new shuffle each epoch and, if given, augmentation per batch; both reproducible from `seed`.
    Otherwise the images come in order and unchanged (augmentation is ignored).
    """
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need as many labels as images (and at least one): {len(x)} images, {len(y)} labels")
    images = tf.constant(x)  # uint8 images stay uint8 here: a quarter of the memory of float32
    labels = tf.constant(y, tf.int64)
    # Shuffle and batch indices, then gather each batch: cheaper than batching single images, and the
    # shuffle buffer holds integers rather than a second copy of every image.
    order = tf.data.Dataset.range(len(x))
    if training:
        order = order.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = order.batch(batch_size).map(
        lambda i: (tf.cast(tf.gather(images, i), tf.float32), tf.gather(labels, i)), num_parallel_calls=AUTOTUNE
    )
    if training and augmentation is not None and augmentation.layers:
        # One stateless seed per batch, itself drawn anew each epoch, so parallel calls cannot race on it.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, seeds).map(
            lambda batch, s: (apply_augmentation(augmentation, batch[0], s), batch[1]), num_parallel_calls=AUTOTUNE
        )
    # No autotuning: Keras makes a new iterator every epoch, and freeing the old one waits for its autotuner
    # thread to wake from a timed sleep: 19 s before an epoch's first batch, in about half of the runs. Without
    # it a seed trains the same model (same losses, epoch by epoch) and the epochs run as fast
    # (docs/results.md, 2026-12-05 evening).
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(AUTOTUNE).with_options(options)
