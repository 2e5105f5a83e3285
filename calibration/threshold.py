"""The abstention threshold: below it the robot answers `unknown` instead of a class.

Chosen on the validation split, on temperature-scaled probabilities, for a target precision of the accepted
predictions (default 99 %): the lowest confidence threshold whose accepted val predictions are right at least
that often, so as few predictions as possible are thrown away.

Why a floor: when the val split has no errors (easy data, a strong model), every threshold meets the target
on val and the "lowest" one is 0, which says only that val was easy, not that every prediction can be
trusted. The floor (default 0.5) is the smallest confidence at which the calibrated model itself says its top
class is more likely right than wrong; no val set, however clean, can justify accepting less than that.
`limited_by` records which of the two set the threshold. A fitted cut below the floor becomes the floor only
if what the floor accepts still meets the target; else the lowest cut above the floor that does.

Why the floor is the target precision itself when the calibrated model can say it: the fitted threshold is
about the fitting images, lab photos and augmented copies the model nearly always gets right, so it falls to
0.5, and in a new environment, where more answers sit between 0.5 and 0.99, 1.8 % of the accepted ones were
wrong (the demo's Lite0 on stress). A calibrated 0.99 is right 99 % of the time wherever calibration holds, so
accepting only answers at least that sure keeps the precision target in any mix of easy and hard images; on
the same model, lab coverage 99.3 % and stress 87 % at 100 % precision. A model whose calibrated confidence
cannot reach the target (its uniform mix caps it below) keeps the floor 0.5 and the fitted threshold.

Why per-class thresholds (`class_thresholds`): one threshold for every class is set by the class with the
most confident errors. An `other` vessel taken for J at 0.98 holds every class at 0.98 or above, though most
classes are never wrong there; with a uniform mix capping confidence just above that, the robot answers only
the surest part of every class. So each predicted class gets its own threshold, the accepted answers of that
class meeting the target. A class's own record is small (a tenth of the fitting set), and an empirical cut on
it lands wherever its last error happens to fall, so it moves the threshold away from the global one only
when it is decisive: down to the lowest cut where the Wilson lower bound of the class's precision meets the
target, on at least `min_support` answers; up when the upper bound at the global threshold misses the target,
then to the lowest cut whose answers meet it. A class with few answers or only a few errors keeps the global
threshold. The bounds are z = 1.5 standard errors rather than 1 because export's fitting set holds an
augmented copy of each image, closer to a second look than to a new image: with no error, lowering takes 223
answers at 99 %. The lowered classes each meet the target but could together leave less of the global set's
surplus for a class kept at the global threshold; if the union misses the target, lowered classes go back
to the global threshold, least precise first, until it meets it. The floor bounds every class's threshold,
and a lowered threshold is fitted on lab images: the export report's stress row shows what it does elsewhere.

Why the classes the robot does not act on (`catch_all`: `background`, `other`) have the floor 0.5 instead:
the target precision as a floor is there so that a confident wrong answer does not make the arm pick up the
wrong thing. A wrong `background` or `other` makes it wait, as `unknown` does; for those classes the floor
only kept answers the lab fitting set shows to be right. Their own answers still have to be decisive
(Wilson bound, `min_support`) to lower them, and the union must meet the target.
"""

from __future__ import annotations

import numpy as np

DEFAULT_TARGET_PRECISION = 0.99
DEFAULT_FLOOR = 0.5
DEFAULT_Z = 1.5  # Wilson bounds of a class's precision, in standard errors (module docstring)


def confidence_floor(max_confidence: float, target_precision: float) -> float:
    """The threshold's floor: the target precision if the calibrated model can be that sure, else 0.5."""
    return target_precision if max_confidence > target_precision else DEFAULT_FLOOR


def accepted_mask(probs: np.ndarray, threshold) -> np.ndarray:
    """Which answers are given: top probability >= the threshold, one float for every class or one per class
    (then the threshold of each row's top class)."""
    probs = np.asarray(probs)
    conf = probs.max(-1)
    threshold = np.asarray(threshold, np.float64)
    if threshold.ndim == 0:
        return conf >= threshold
    if threshold.shape != probs.shape[-1:]:
        raise ValueError(f"need one threshold or one per class ({probs.shape[-1]}), got shape {threshold.shape}")
    return conf >= threshold[probs.argmax(-1)]


def selective_metrics(probs: np.ndarray, y: np.ndarray, threshold) -> dict:
    """Coverage (share accepted) and precision (accuracy of the accepted) at a threshold: one float, or one per
    class (an answer is accepted when its confidence reaches the threshold of its top class)."""
    probs, y = np.asarray(probs), np.asarray(y, int)
    accepted = accepted_mask(probs, threshold)
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
    in_floor = np.flatnonzero(conf >= floor)  # the floor's set: what a threshold at the floor accepts
    if meets.any() and conf[np.flatnonzero(meets)[-1]] < floor and len(in_floor) \
            and precision[in_floor[-1]] < target_precision:
        meets &= conf >= floor  # cutting the fitted set at the floor would miss the target: stay above it
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


def default_min_support(target_precision: float) -> int:
    """1 / (1 - target), at most 1000: the number of answers in which one error uses up the whole error budget
    (100 at 99 %). Fewer cannot tell a class that meets the target from one that misses it by half."""
    return int(round(1.0 / max(1.0 - target_precision, 1e-3)))


def wilson_bounds(right: np.ndarray, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) Wilson score bounds of a proportion right / n at z standard errors; (0, 1) where n = 0."""
    right, n = np.asarray(right, np.float64), np.asarray(n, np.float64)
    safe = np.maximum(n, 1.0)
    p = right / safe
    centre = p + z * z / (2 * safe)
    half = z * np.sqrt(p * (1 - p) / safe + z * z / (4 * safe * safe))
    scale = 1 + z * z / safe
    lower, upper = (centre - half) / scale, (centre + half) / scale
    return np.where(n > 0, lower, 0.0), np.where(n > 0, upper, 1.0)


def class_thresholds(probs: np.ndarray, y: np.ndarray, target_precision: float = DEFAULT_TARGET_PRECISION,
                     floor: float = DEFAULT_FLOOR, min_support: int | None = None, z: float = DEFAULT_Z,
                     catch_all: tuple[int, ...] = ()) -> dict:
    """One threshold per predicted class: the global threshold, moved only where that class's own fitting
    answers are decisive (module docstring). The classes `catch_all` (indices) may go down to
    `DEFAULT_FLOOR` rather than `floor`.

    Returns {"thresholds": [float per class], "global": abstention_threshold(...), "method", "target_precision",
    "floor", "min_support", "z", "target_met" (the union of accepted answers meets the target), "fit"
    (selective_metrics of the union), "classes": [{"threshold", "n" (fitting images predicted as the class),
    "errors" (of those), "accepted", "accepted_errors" (at its threshold), "limited_by"}]}. limited_by:
    "class" (its answers set it, below or above the global one), "floor", "global" (its answers do not justify
    another), "unreachable" (decisively below the target at the global threshold, and no higher one meets it:
    the global one is kept), "overall" (put back to the global threshold so that the union meets the target).
    """
    global_fit = abstention_threshold(probs, y, target_precision, floor)
    probs, y = np.asarray(probs, np.float64), np.asarray(y, int)
    support = default_min_support(target_precision) if min_support is None else int(min_support)
    g = global_fit["threshold"]
    catch_all_floor = min(floor, DEFAULT_FLOOR)
    conf, pred = probs.max(-1), probs.argmax(-1)
    correct = pred == y

    thresholds, classes = [], []
    for k in range(probs.shape[-1]):
        mine = pred == k
        tally = _Tally(conf[mine], correct[mine])
        cuts = np.unique(conf[mine])  # a cut at each distinct confidence: it and everything above accepted
        n, right = tally.at(cuts)
        lower_bound, _ = wilson_bounds(right, n, z)
        lower = (cuts < g) & (n >= support) & (lower_bound >= target_precision)
        threshold, limited_by = g, "global"
        class_floor = catch_all_floor if k in catch_all else floor
        if lower.any():
            threshold, limited_by = float(cuts[np.flatnonzero(lower)[0]]), "class"
            if threshold < class_floor:
                threshold, limited_by = class_floor, "floor"
                n_floor, right_floor = tally.at(np.array([class_floor]))
                if n_floor[0] < support or wilson_bounds(right_floor, n_floor, z)[0][0] < target_precision:
                    above = np.flatnonzero(lower & (cuts >= class_floor))  # the floor's set is not decisive
                    threshold, limited_by = (float(cuts[above[0]]), "class") if len(above) else (g, "global")
        else:
            n_g, right_g = tally.at(np.array([g]))
            if wilson_bounds(right_g, n_g, z)[1][0] < target_precision:  # decisively below the target at g
                precision = right / np.maximum(n, 1)
                raised = (cuts > g) & (precision >= target_precision)
                if raised.any():
                    threshold, limited_by = float(cuts[np.flatnonzero(raised)[0]]), "class"
                else:  # no cut above meets the target either: none is better founded than the global one
                    limited_by = "unreachable"
        thresholds.append(threshold)
        classes.append({"threshold": threshold, "n": int(mine.sum()), "errors": int((mine & ~correct).sum()),
                        "limited_by": limited_by})

    thresholds = np.array(thresholds)
    fit = selective_metrics(probs, y, thresholds)
    if global_fit["target_met"] and fit["accepted"] and fit["precision"] < target_precision:
        # Each lowered class meets the target, but the union may not: the global threshold's set may have had
        # surplus precision in those classes that carried a less precise one. Put classes back to the global
        # threshold, lowered ones first (least precise below it first), until the union meets the target.
        lowered = [k for k in range(len(thresholds)) if thresholds[k] < g]
        band = {k: correct[(pred == k) & (conf >= thresholds[k]) & (conf < g)].mean() for k in lowered}
        others = [k for k in range(len(thresholds)) if thresholds[k] > g]
        for k in sorted(lowered, key=band.get) + others:
            thresholds[k], classes[k]["threshold"], classes[k]["limited_by"] = g, g, "overall"
            fit = selective_metrics(probs, y, thresholds)
            if fit["precision"] >= target_precision:
                break
    for k, entry in enumerate(classes):
        n, right = _Tally(conf[pred == k], correct[pred == k]).at(thresholds[k:k + 1])
        entry.update(accepted=int(n[0]), accepted_errors=int(n[0] - right[0]))
    return {
        "thresholds": [float(t) for t in thresholds],
        "global": global_fit,
        "method": f"per predicted class: below the global threshold where >= {support} answers' Wilson lower "
                  f"bound (z={z:g}) meets the target, above it where the upper bound at the global one misses it"
                  + (f"; the classes the robot does not act on down to {catch_all_floor:g}, the others "
                     f"not below {floor:g}" if catch_all else ""),
        "target_precision": target_precision,
        "floor": floor,
        "min_support": support,
        "z": z,
        "target_met": bool(fit["precision"] >= target_precision) if fit["accepted"] else global_fit["target_met"],
        "fit": fit,
        "classes": classes,
    }


class _Tally:
    """Answers and right answers at or above any confidence threshold, for one set of (confidence, correct)."""

    def __init__(self, conf: np.ndarray, correct: np.ndarray):
        order = np.argsort(conf, kind="stable")
        self.conf = conf[order]
        self.right_from = np.r_[np.cumsum(correct[order][::-1])[::-1], 0]  # right answers at index i and above

    def at(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        start = np.searchsorted(self.conf, t, side="left")
        return len(self.conf) - start, self.right_from[start]
