"""The int8 representative set: a stratified sample of the run's training images, exactly as training saw them.

The images come from the run's cache (`Run.split("train")`), which the training preprocessing wrote, so they
are by construction the 0..255 RGB model input. Calibrating on anything else ([0, 1]-scaled floats, BGR,
another resize) gives int8 ranges that do not match what the model sees at run time: the classic cause of
an int8 model that silently collapses. `check_pixel_range` refuses the most common of these mistakes.
"""

from __future__ import annotations

import numpy as np

from glassware.errors import ExportError

DEFAULT_SIZE = 300


def stratified_indices(y: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of about `n` samples with every class in proportion to its share, at least one each."""
    y = np.asarray(y)
    if n >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    quota = np.maximum(1, np.round(n * counts / counts.sum()).astype(int))
    picked = [rng.permutation(np.flatnonzero(y == c))[: min(q, k)] for c, q, k in zip(classes, quota, counts)]
    return np.sort(np.concatenate(picked))


def representative_set(x_train: np.ndarray, y_train: np.ndarray, n: int = DEFAULT_SIZE, seed: int = 0) -> np.ndarray:
    """A stratified sample of training inputs (uint8 (N, H, W, 3), 0..255), checked for its pixel range."""
    if n < 1:
        raise ExportError(f"representative set size must be >= 1, got {n}")
    if len(x_train) == 0:
        raise ExportError("the run has no training images to calibrate int8 on")
    sample = np.asarray(x_train)[stratified_indices(y_train, n, seed)]
    check_pixel_range(sample)
    return sample


def check_pixel_range(x: np.ndarray, what: str = "representative set") -> None:
    """Raise ExportError unless `x` looks like the model input: RGB pixel values 0..255 (not [0, 1] or [-1, 1])."""
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ExportError(f"{what}: expected images (N, H, W, 3), got shape {x.shape}")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 255:
        raise ExportError(f"{what}: values span [{lo:g}, {hi:g}], outside the 0..255 model input "
                          "(already scaled or normalised? the model scales inside)")
    if hi <= 1.0:
        raise ExportError(f"{what}: values span [{lo:g}, {hi:g}]: looks [0, 1]-scaled, but the model input is "
                          "0..255 pixels (it scales inside); int8 ranges calibrated on this would be wrong")
