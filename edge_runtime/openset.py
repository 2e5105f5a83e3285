"""The open-set score: how unlike everything the model was trained on an image is, from the model's features.

    novelty(x) = 1 - (k-th largest cosine similarity between x's features and a bank of training features)

Softmax confidence cannot say "none of these": a picture of gravel must still share its probability among the
glassware classes, and it can share it very unevenly. The features the classifier reads (the input of its
`logits` layer) carry more: an image of something never trained on lies far from every training image there
(Sun et al., "Out-of-distribution detection with deep nearest neighbors", ICML 2022). The bank holds the
features of training images and of augmented copies of them, so the lighting and backgrounds the augmentation
reaches count as known, and a new environment with the same objects is not mistaken for a new object.

An image whose novelty exceeds the bundle's threshold is answered `unknown` when its top class is one the
score may veto: not the catch-all classes (`background`, `other`), which are the right answers for much that
is not glassware. NumPy only: `glassware export` fits the bank and threshold (`glassware.calibration.openset`)
with these same functions, and the edge runtime applies them to every format's features output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glassware.errors import BundleError

METHOD = "knn-cosine"


def unit_rows(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); a zero row stays zero (novelty 1: like nothing known)."""
    features = np.asarray(features, np.float32)
    norm = np.linalg.norm(features, axis=-1, keepdims=True)
    return features / np.maximum(norm, np.float32(1e-12))


def novelty(features: np.ndarray, bank: np.ndarray, k: int) -> np.ndarray:
    """1 - the k-th largest cosine similarity of each row of `features` (N, D) to the unit rows of `bank`."""
    similarity = unit_rows(features) @ bank.T
    kth = np.partition(similarity, -k, axis=-1)[..., -k]
    return (1.0 - kth).astype(np.float32)


@dataclass(frozen=True)
class OpenSet:
    """A bundle's open-set data: bank (unit rows, float32), k, threshold, and which classes it may veto."""

    bank: np.ndarray
    k: int
    threshold: float
    vetoes: np.ndarray  # bool per class

    def score(self, features: np.ndarray) -> float:
        """Novelty of one image's features (D,)."""
        return float(novelty(features[None], self.bank, self.k)[0])

    @classmethod
    def load(cls, bundle_path: Path, entry: dict, class_names: list[str]) -> "OpenSet":
        """From manifest["openset"] and the bank file it names (already sha256-verified with the bundle)."""
        if entry.get("method") != METHOD:
            raise BundleError(f"{bundle_path}: open-set method {entry.get('method')!r} unknown here "
                              f"(expected {METHOD})")
        try:
            with np.load(bundle_path / entry["file"], allow_pickle=False) as f:
                bank = unit_rows(f["bank"])
            k, threshold = int(entry["k"]), float(entry["threshold"])
            vetoes = np.array([name in entry["applies_to"] for name in class_names])
        except (OSError, KeyError, ValueError, TypeError) as e:
            raise BundleError(f"{bundle_path}: open-set data unreadable ({type(e).__name__}: {e})") from e
        if bank.ndim != 2 or not 1 <= k <= len(bank) or int(entry.get("feature_dims", bank.shape[1])) != bank.shape[1]:
            raise BundleError(f"{bundle_path}: open-set bank of shape {bank.shape} does not fit k={k}")
        return cls(bank, k, threshold, vetoes)
