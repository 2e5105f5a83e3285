"""Swap the model while frames keep coming: a new bundle is loaded and checked in the background, then takes
over between two frames; if it fails, the one in use stays.

A replacement must also answer the lab as well as the model in use, as both were measured at export on the
same lab test set: adapting to a new place can cost an old one its answers while accuracy stays at 100 %
(a class slips under its threshold and comes out `unknown`; measured in docs/results.md). Nor may it answer
more of the images that are not glassware as glassware, when both were checked on the same folder: a model
fine-tuned on a few frames can lose some of what its open-set score caught (measured: 0 -> 1 of 241).

The classifying thread reads `current` once per frame, so a frame is decided by one model from start to end.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from glassware.edge_runtime.bundle import Bundle
from glassware.edge_runtime.classifier import Classifier
from glassware.errors import GlasswareError

log = logging.getLogger(__name__)

MAX_LAB_DROP_POINTS = 1.0


def lab_change(current: tuple[Bundle, str], candidate: tuple[Bundle, str]) -> dict | None:
    """Lab test accuracy and share answered of two (bundle, format) pairs, from their manifests: {"before":
    {"accuracy", "coverage", "class_coverage"}, "after": {...}, "class_names"}; None when the two were not
    measured on the same lab test set. class_coverage (share answered per true class) is None where a manifest
    has none."""
    pairs = (current, candidate)
    sets = [bundle.manifest.get("gate", {}).get("datasets", {}).get("test") for bundle, _ in pairs]
    if not sets[0] or sets[0] != sets[1]:
        return None
    metrics = [bundle.formats[name]["metrics"].get("test", {}) for bundle, name in pairs]
    if not all("accuracy" in m and "coverage" in m for m in metrics):
        return None
    same_classes = current[0].class_names == candidate[0].class_names
    change = {name: {"accuracy": m["accuracy"], "coverage": m["coverage"],
                     "class_coverage": m.get("class_coverage") if same_classes else None}
              for name, m in zip(("before", "after"), metrics)}
    return {**change, "class_names": candidate[0].class_names}


def lab_regression(change: dict | None, max_drop_points: float = MAX_LAB_DROP_POINTS) -> str | None:
    """Why a replacement answers the lab worse (`lab_change`), naming the classes it answers less, or None."""
    if change is None:
        return None
    before, after = change["before"], change["after"]
    worse = [f"{label} {100 * before[k]:.1f} -> {100 * after[k]:.1f} %"
             for k, label in (("accuracy", "accuracy"), ("coverage", "answered"))
             if 100 * (before[k] - after[k]) > max_drop_points]
    if not worse:
        return None
    points = f"{max_drop_points:g} point{'' if max_drop_points == 1 else 's'}"
    return f"lab test {', '.join(worse)}: more than {points} below the bundle in use{_classes_answered_less(change)}"


def openset_regression(current: tuple[Bundle, str], candidate: tuple[Bundle, str]) -> str | None:
    """Why a replacement answers more images that are not glassware as glassware than the (bundle, format) in
    use, from their manifests, or None (also when the two were not checked on the same folder)."""
    pairs = (current, candidate)
    sets = [bundle.manifest.get("gate", {}).get("datasets", {}).get("not_glassware") for bundle, _ in pairs]
    if not sets[0] or sets[0] != sets[1]:
        return None
    before, after = (bundle.formats[name]["metrics"].get("not_glassware", {}).get("openset", {})
                     .get("glassware_answers") for bundle, name in pairs)
    if before is None or after is None or after <= before:
        return None
    return f"images that are not glassware answered as glassware {before} -> {after} of {sets[1]['n']}"


def swap_refusal(current: tuple[Bundle, str], candidate: tuple[Bundle, str],
                 max_lab_drop: float = MAX_LAB_DROP_POINTS) -> str | None:
    """Every reason the node would keep `current` rather than take `candidate` (both (bundle, format)), or None."""
    reasons = [lab_regression(lab_change(current, candidate), max_lab_drop), openset_regression(current, candidate)]
    return "; ".join(r for r in reasons if r) or None


def _classes_answered_less(change: dict) -> str:
    """"; most in background 97 -> 0 %": the (at most two) classes whose share answered fell most, if known."""
    old, new = change["before"].get("class_coverage"), change["after"].get("class_coverage")
    if not old or not new:
        return ""
    drops = sorted(((a - b, name, a, b) for name, a, b in zip(change["class_names"], old, new)
                    if a is not None and b is not None and a > b), reverse=True)[:2]
    if not drops:
        return ""
    return "; most in " + ", ".join(f"{name} {100 * a:.0f} -> {100 * b:.0f} %" for _, name, a, b in drops)


class ModelSwap:
    """The classifier in use, and the replacement being loaded.

    `load(path)` makes a Classifier (verifying the bundle's hashes and opening its backend) and raises a
    GlasswareError (or ValueError) if it cannot; a replacement must also run a format that passed its export
    accuracy gate, answer the lab test set at most `max_lab_drop` points worse (accuracy, share answered)
    than the one in use, and no more images that are not glassware as glassware, when both were measured on
    the same sets.
    `status`: {"state": "ok" | "loading" | "failed", "bundle_id", "bundle", "message"}.
    """

    def __init__(self, load: Callable[[Path], Classifier], path: str | Path,
                 max_lab_drop: float = MAX_LAB_DROP_POINTS):
        self._load = load
        self.max_lab_drop = max_lab_drop
        self._current = load(Path(path))
        self._lock = threading.Lock()
        self._loader: threading.Thread | None = None
        self._status = self._ok("loaded")

    @property
    def current(self) -> Classifier:
        return self._current

    @property
    def status(self) -> dict:
        with self._lock:
            return dict(self._status)

    def request(self, path: str | Path) -> bool:
        """Start loading `path` in the background; False if a load is already under way (try again later)."""
        with self._lock:
            if self._loader is not None and self._loader.is_alive():
                return False
            self._status = {**self._status, "state": "loading", "message": f"loading {path}"}
            self._loader = threading.Thread(target=self._replace, args=(Path(path),), name="model-swap", daemon=True)
            self._loader.start()
        return True

    def wait(self, timeout: float | None = None) -> dict:
        """Wait for a load under way; return the status."""
        loader = self._loader
        if loader is not None:
            loader.join(timeout)
        return self.status

    def _replace(self, path: Path) -> None:
        try:
            candidate = self._load(path)
            gate = candidate.bundle.formats[candidate.format_name].get("gate")
            if gate != "pass":
                raise GlasswareError(f"format {candidate.format_name} did not pass the export accuracy gate")
            pairs = (self._current.bundle, self._current.format_name), (candidate.bundle, candidate.format_name)
            change = lab_change(*pairs)
            refusal = swap_refusal(*pairs, self.max_lab_drop)
            if refusal:
                raise GlasswareError(refusal)
        except (GlasswareError, ValueError, OSError) as e:
            with self._lock:
                self._status = {**self._ok(f"kept: {path} refused ({e})"), "state": "failed"}
            log.warning("model swap: %s refused (%s); still running %s", path, e, self._current.bundle.bundle_id)
            return
        previous = self._current.bundle.bundle_id
        with self._lock:
            self._current = candidate
            self._status = self._ok(f"swapped from {previous}"
                                    + ("" if change else " (lab test not compared: not measured on the same set)"))
        log.info("model swap: now running %s (%s), was %s", candidate.bundle.bundle_id, candidate.format_name,
                 previous)

    def _ok(self, message: str) -> dict:
        c = self._current
        return {"state": "ok", "bundle_id": c.bundle.bundle_id, "bundle": str(c.bundle.path), "message": message}
