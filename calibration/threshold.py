"""The abstention threshold: below it the robot answers `unknown` instead of a class.

Chosen on the validation split, on temperature-scaled probabilities, for a target precision of the accepted
predictions (default 99 %): the lowest confidence threshold whose accepted val predictions are right at least
that often, so as few predictions as possible are thrown away.

Why a floor: when the val split has no errors (easy data, a strong model), every threshold meets the target
on val and the "lowest" one is 0, which says only that val was easy, not that every prediction can be
trusted. The floor (default 0.5) is the smallest confidence at which the calibrated model itself says its top
class is more likely right than wrong; no val set, however clean, can justify accepting less than that.
`limited_by` records which of the two set the threshold.

Why the floor is the target precision itself when the calibrated model can say it: the fitted threshold is
about the fitting images, lab photos and augmented copies the model nearly always gets right, so it falls to
0.5, and in a new environment, where more answers sit between 0.5 and 0.99, 1.8 % of the accepted ones were
wrong (the demo's Lite0 on stress). A calibrated 0.99 is right 99 % of the time wherever calibration holds, so
accepting only answers at least that sure keeps the precision target in any mix of easy and hard images; on
the same model, lab coverage 99.3 % and stress 87 % at 100 % precision. A model whose calibrated confidence
cannot reach the target (its uniform mix caps it below) keeps the floor 0.5 and the fitted threshold.
"""

from __future__ import annotations

import numpy as np

DEFAULT_TARGET_PRECISION = 0.99
DEFAULT_FLOOR = 0.5


def confidence_floor(max_confidence: float, target_precision: float) -> float:
    """The threshold's floor: the target precision if the calibrated model can be that sure, else 0.5."""
    return target_precision if max_confidence > target_precision else DEFAULT_FLOOR


def selective_metrics(probs: np.ndarray, y: np.ndarray, threshold: float) -> dict:
    """Coverage (share accepted) and precision (accuracy of the accepted) at a threshold."""
    probs, y = np.asarray(probs), np.asarray(y, int)
    accepted = probs.max(-1) >= threshold
    correct = probs.argmax(-1) == y
    n_acc = int(accepted.sum())
    return {
        "n": int(len(y)),
        "accepted": n_acc,
        "coverage": n_acc / len(y) if len(y) else float("nan"),
        "precision": float(correct[accepted].mean()) if n_acc else float("nan"),
        "unknown_errors": int((~accepted & ~correct).sum()),  # wrong answers turned into `unknown`
    }


def abstention_threshold(probs: np.ndarray, y: np.ndarray, target_precision: float = DEFAULT_TARGET_PRECISION,
                         floor: float = DEFAULT_FLOOR) -> dict:
    """The lowest threshold with val precision >= target, but not below `floor` (see the module docstring).

    If no threshold reaches the target on val, the one with the best precision is used and `target_met`
    is False.
    """
    if not 0 < target_precision <= 1:
        raise ValueError(f"target precision must be in (0, 1], got {target_precision}")
    probs, y = np.asarray(probs, np.float64), np.asarray(y, int)
    conf = probs.max(-1)
    correct = probs.argmax(-1) == y
    order = np.argsort(-conf, kind="stable")
    conf, correct = conf[order], correct[order]
    # Precision when accepting the k most confident; only the last of equal confidences is a real cut.
    precision = np.cumsum(correct) / np.arange(1, len(conf) + 1)
    cut = np.r_[conf[1:] < conf[:-1], True] if len(conf) else np.zeros(0, bool)
    meets = cut & (precision >= target_precision)
    if meets.any():
        empirical, target_met = float(conf[np.flatnonzero(meets)[-1]]), True
    elif len(conf):
        cuts = np.flatnonzero(cut)[::-1]  # lowest threshold first, so ties go to the one accepting most
        best = cuts[np.argmax(precision[cuts])]
        empirical, target_met = float(conf[best]), False
    else:
        empirical, target_met = 1.0, False
    threshold = max(empirical, floor)
    return {
        "threshold": threshold,
        "target_precision": target_precision,
        "target_met": target_met,
        "limited_by": "floor" if floor >= empirical else "val",
        "floor": floor,
        "val_errors": int((~correct).sum()),
        "val": selective_metrics(probs, y, threshold),
    }
