"""Fitting the open-set score (`glassware.edge_runtime.openset`): the bank of training features and the threshold.

The bank is a stratified sample of the training split's features and of one augmented copy of each image
(`per_class` rows per class, float16 on disk). Its size is a choice, not a detail: the more near-copies of a
lab image it holds, the closer every held-out lab image sits to one, the lower a quantile threshold falls and
the more of a new environment it refuses. A fixed, moderate sample per class keeps the threshold about objects.

The threshold passes `quantile` of the fitting images that are known by construction: the held-out lab images
(val and the calibration folder) and an augmented copy of each, the same set the confidence scaling is fitted
on. The top of that distribution is images answered `background` or `other`, which the score never refuses; the
glassware answers among them sit far below it. So the quantile sets where a glassware answer stops being
believed, between a new environment's glassware (further from the bank than the lab's) and what is not
glassware at all. That gap is narrow (docs/results.md, 2026-12-05): known images alone cannot say where in it
the threshold belongs, and which side one texture or hand falls on changes from model to model.

Pictures that are not glassware, given for fitting (`negatives`: e.g. the robot's own cell with nothing to pick,
or `glassware synth-openset` of another seed than the set that checks), say it from the other side. Of those the
classifier takes for glassware (top class one the score may veto; those answered `background`/`other` need no
veto), at most `negative_quantile` may lie below the threshold: it comes down to that quantile of their novelty
when it is lower. With fewer than `MIN_NEGATIVES` such pictures a quantile means nothing and the known images'
threshold stands. It never comes down so far that it refuses more than `MAX_KNOWN_REFUSED` of the fitting
images' glassware answers: where the features cannot tell the two apart (the paper's VGG: nearly half the pictures
taken for glassware, some as close as lab images) lab coverage matters more, and the manifest says so. It
records which of the three set the threshold.
"""

from __future__ import annotations

import numpy as np

from glassware.calibration.threshold import accepted_mask
from glassware.edge_runtime.openset import METHOD, novelty, unit_rows
from glassware.labels import CATCH_ALL

DEFAULT_K = 5
DEFAULT_PER_CLASS = 100
DEFAULT_QUANTILE = 0.99
DEFAULT_NEGATIVE_QUANTILE = 0.05
MIN_NEGATIVES = 10
MAX_KNOWN_REFUSED = 0.01


def bank_rows(labels: np.ndarray, num_classes: int, per_class: int = DEFAULT_PER_CLASS, seed: int = 0) -> np.ndarray:
    """Sorted indices of a stratified random sample of `per_class` rows per class (all of a smaller class)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels, int)
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class]
                                   for c in range(num_classes)]))


def fit_openset(bank_features: np.ndarray, fit_features: np.ndarray, class_names: list[str], k: int = DEFAULT_K,
                quantile: float = DEFAULT_QUANTILE, negatives: tuple[np.ndarray, np.ndarray] | None = None,
                fit_logits: np.ndarray | None = None,
                negative_quantile: float = DEFAULT_NEGATIVE_QUANTILE) -> tuple[np.ndarray, dict]:
    """(bank float16 (N, D), manifest entry without "file"): the bank's rows (see `bank_rows`) and a threshold
    passing `quantile` of the fitting images, lowered to `negative_quantile` of the `negatives` (features,
    logits) the classifier takes for glassware when that is lower, but not below the novelty that passes
    1 - MAX_KNOWN_REFUSED of the fitting images' glassware answers (their top classes from `fit_logits`)."""
    bank = unit_rows(bank_features)
    k = min(k, len(bank))
    scores = novelty(fit_features, bank, k)
    threshold = float(np.quantile(scores, quantile)) if len(scores) else 1.0
    vetoes = np.array([name not in CATCH_ALL for name in class_names])
    entry = {
        "method": METHOD,
        "k": k,
        "threshold": threshold,
        "quantile": quantile,
        "bank_size": int(len(bank)),
        "feature_dims": int(bank.shape[1]),
        "applies_to": [name for name, veto in zip(class_names, vetoes) if veto],
        "fitted_n": int(len(scores)),
        "limited_by": "known images",
    }
    if negatives is not None:
        if fit_logits is None:
            raise ValueError("fitting on negatives needs the fitting images' logits (fit_logits)")
        features, logits = negatives
        taken = novelty(features[vetoes[np.asarray(logits).argmax(-1)]], bank, k)
        known = scores[vetoes[np.asarray(fit_logits).argmax(-1)]]
        floor = float(np.quantile(known, 1 - MAX_KNOWN_REFUSED)) if len(known) else 0.0
        entry["negatives"] = {"n": int(len(features)), "taken_for_glassware": int(len(taken)),
                              "quantile": negative_quantile, "min_taken": MIN_NEGATIVES,
                              "floor": floor, "max_known_refused": MAX_KNOWN_REFUSED}
        if len(taken) >= MIN_NEGATIVES:
            below = float(np.quantile(taken, negative_quantile))
            entry["negatives"]["threshold"] = below
            lowered = max(below, floor)
            if lowered < threshold:
                entry.update(threshold=lowered, limited_by="negatives" if below >= floor else "floor")
    return bank.astype(np.float16), entry


def accepted_answers(probs: np.ndarray, thresholds, novel: np.ndarray | None, vetoes: np.ndarray) -> np.ndarray:
    """Which answers are given (not `unknown`): confidence at least the threshold of the top class (one float
    or one per class), unless the image is novel and its top class is one the open-set score may veto."""
    accepted = accepted_mask(probs, thresholds)
    return accepted if novel is None else accepted & ~(novel & vetoes[probs.argmax(-1)])
