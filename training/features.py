"""Frozen-backbone features, computed once per run: what a transfer model's head trains on in phase 1.

With the backbone frozen, every epoch of phase 1 would push the same images through the same 3.4 M weights
again; pooling each image's features once and training the head on them takes seconds instead of minutes.
Augmentation still reaches phase 1 as `copies` augmented versions of every training image (the run's own
augmentation, seeded), featurised once like the originals.

RUN/cache/features.npz holds the arrays; RUN/cache/features.json their key (the weights, the split, the
augmentation, the number of copies and the seed). A stale key rebuilds; a cache whose key matches but whose
arrays do not load is an error naming the file, since something other than training wrote it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from glassware.errors import RunError

log = logging.getLogger(__name__)

BATCH = 64
FEATURES_FILE, KEY_FILE = "features.npz", "features.json"


@dataclass
class FeatureSet:
    train_x: np.ndarray  # (N * (1 + copies), D) float32: originals first, then each copy in turn
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray


def pooled_features(model, x: np.ndarray, desc: str = "features", augment=None, seed: int = 0) -> np.ndarray:
    """The `pool` layer's output of `model` for uint8/float images `x` (N, H, W, 3), in inference mode; with
    `augment` (a Keras augmentation Sequential) each batch is augmented first, reproducibly from `seed`."""
    import keras
    import tensorflow as tf

    from glassware.training.augment import apply_augmentation

    pool = keras.Model(model.inputs, model.get_layer("pool").output)
    forward = tf.function(lambda images: pool(images, training=False))
    out = []
    for i in tqdm(range(0, len(x), BATCH), desc=desc, unit="batch", file=sys.stderr, mininterval=2.0):
        batch = tf.constant(x[i:i + BATCH], tf.float32)
        if augment is not None:
            batch = apply_augmentation(augment, batch, tf.constant([seed, i], tf.int32))
        out.append(forward(batch).numpy())
    return np.concatenate(out) if out else np.zeros((0, pool.output.shape[-1]), np.float32)


def cached_features(model, cache_dir: Path, data, copies: int, augmentation: dict | None, seed: int,
                    weights: dict) -> FeatureSet:
    """Phase 1's inputs: features of the training images and `copies` augmented copies, and of val."""
    from glassware.training.augment import make_augmentation

    key = _key(data, copies, augmentation, seed, weights)
    cached = _load(cache_dir, key)
    if cached is not None:
        log.info("phase 1 features from %s", cache_dir / FEATURES_FILE)
        return cached
    train = [pooled_features(model, data.train.x, "features: train")]
    augment = make_augmentation(augmentation) if copies and augmentation else None
    for c in range(copies if augment is not None else 0):
        train.append(pooled_features(model, data.train.x, f"features: augmented copy {c + 1}/{copies}", augment,
                                     seed=seed * 1000 + c))
    features = FeatureSet(np.concatenate(train), np.tile(data.train.y, len(train)),
                          pooled_features(model, data.val.x, "features: val"), data.val.y)
    _save(cache_dir, key, features)
    return features


def _key(data, copies: int, augmentation: dict | None, seed: int, weights: dict) -> str:
    description = {"train": list(data.train.paths), "val": list(data.val.paths), "copies": copies,
                   "augmentation": augmentation or {}, "seed": seed, "weights": weights}
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()


def _load(cache_dir: Path, key: str) -> FeatureSet | None:
    key_file, arrays = cache_dir / KEY_FILE, cache_dir / FEATURES_FILE
    try:
        if json.loads(key_file.read_text()).get("key") != key:
            log.info("phase 1 features in %s are stale (split, weights or augmentation changed): recomputing",
                     cache_dir)
            return None
    except (OSError, ValueError, AttributeError):
        return None
    try:
        with np.load(arrays, allow_pickle=False) as f:
            features = FeatureSet(*(f[k] for k in ("train_x", "train_y", "val_x", "val_y")))
    except (OSError, ValueError, KeyError) as e:
        raise RunError(f"{arrays} is corrupt ({type(e).__name__}); delete it to recompute the features") from e
    if len(features.train_x) != len(features.train_y) or len(features.val_x) != len(features.val_y):
        raise RunError(f"{arrays} is corrupt (array lengths disagree); delete it to recompute the features")
    return features


def _save(cache_dir: Path, key: str, features: FeatureSet) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / KEY_FILE).unlink(missing_ok=True)  # no valid key while the arrays are being replaced
    partial = cache_dir / "features.partial.npz"
    np.savez(partial, train_x=features.train_x, train_y=features.train_y, val_x=features.val_x,
             val_y=features.val_y)
    os.replace(partial, cache_dir / FEATURES_FILE)
    partial_key = cache_dir / "features.json.partial"
    partial_key.write_text(json.dumps({"key": key}))
    os.replace(partial_key, cache_dir / KEY_FILE)
