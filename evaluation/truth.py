"""Ground truth for a replay, and the scores of its per-frame records against it."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from glassware.edge_runtime.replay import FrameRecord
from glassware.edge_runtime.sources import SourceError
from glassware.labels import BACKGROUND, UNKNOWN

TRUTH_COLUMNS = ("frame", "time_s", "label", "domain", "phase")
NO_OBJECT = "none"  # truth label when nothing is in view


class Truth:
    """Frame-accurate ground truth: a CSV with columns frame,time_s,label,domain,phase."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            with open(self.path, newline="") as f:
                rows = list(csv.DictReader(f))
        except OSError as e:
            raise SourceError(f"{self.path}: cannot read ground truth ({e.strerror or e})") from e
        missing = set(TRUTH_COLUMNS) - set(rows[0] if rows else ())
        if missing:
            raise SourceError(f"{self.path}: ground truth needs columns {', '.join(TRUTH_COLUMNS)}; "
                              f"missing {sorted(missing)}")
        try:
            self.frame = np.array([int(r["frame"]) for r in rows])
            self.time_s = np.array([float(r["time_s"]) for r in rows])
        except ValueError as e:
            raise SourceError(f"{self.path}: bad frame/time_s value ({e})") from e
        if np.any(np.diff(self.time_s) < 0):
            raise SourceError(f"{self.path}: time_s must not decrease")
        self.label = [r["label"] for r in rows]
        self.domain = [r["domain"] for r in rows]
        self.phase = [r["phase"] for r in rows]
        self._row_of_frame = {int(k): i for i, k in enumerate(self.frame)}
        spacing = np.diff(self.time_s)
        self._tolerance = float(np.median(spacing)) / 2 if len(spacing) else 0.0

    def row(self, index: int | None, time_s: float) -> int | None:
        """The row for a source frame: by frame index when given, else the nearest time within half a frame."""
        if index is not None:
            return self._row_of_frame.get(index)
        i = int(np.searchsorted(self.time_s, time_s))
        near = [j for j in (i - 1, i) if 0 <= j < len(self.time_s)]
        best = min(near, key=lambda j: abs(self.time_s[j] - time_s), default=None)
        return best if best is not None and abs(self.time_s[best] - time_s) <= self._tolerance else None

    def stress_spans(self) -> list[tuple[float, float]]:
        """(start_s, end_s) of each contiguous stretch in the stress domain."""
        spans, start = [], None
        for t, domain in zip(self.time_s, self.domain):
            if domain == "stress" and start is None:
                start = t
            elif domain != "stress" and start is not None:
                spans.append((start, t))
                start = None
        if start is not None:
            spans.append((start, float(self.time_s[-1])))
        return spans


def match_truth(records: list[FrameRecord], truth: Truth, by_index: bool) -> list[int | None]:
    """The truth row of every record: by frame index (video, images) or by time (bags)."""
    return [truth.row(r.index if by_index else None, r.time_s) for r in records]


def accuracy(records: list[FrameRecord], truth: Truth, rows: list[int | None], class_names: list[str]) -> dict:
    """Raw vs smoothed labels against ground truth, over the records (`rows` from `match_truth`)."""
    matched = [k for k, r in enumerate(rows) if r is not None]
    true = np.array([truth.label[rows[k]] for k in matched], dtype=object)
    domain = np.array([truth.domain[rows[k]] for k in matched], dtype=object)
    phase = np.array([truth.phase[rows[k]] for k in matched], dtype=object)
    raw = np.array([records[k].raw for k in matched], dtype=object)
    top = np.array([records[k].raw_top for k in matched], dtype=object)
    smoothed = np.array([records[k].smoothed for k in matched], dtype=object)
    known = np.isin(true, class_names)
    stress = known & (domain == "stress")
    lab = known & (domain != "stress")  # stress is judged by abstention, not accuracy
    nothing = true == NO_OBJECT  # includes objects partly in view (entering, leaving)
    return {
        "truth_file": str(truth.path),
        "frames_matched": len(matched),
        "known_class_frames": int(known.sum()),
        "raw_accuracy": _share(raw == true, known),
        "raw_top1_accuracy": _share(top == true, known),
        "smoothed_accuracy": _share(smoothed == true, known),
        "label_switches": {"truth": _switches(true), "raw": _switches(raw), "smoothed": _switches(smoothed)},
        "lab": {
            "frames": int(lab.sum()),
            "raw_accuracy": _share(raw == true, lab),
            "raw_top1_accuracy": _share(top == true, lab),
            "smoothed_accuracy": _share(smoothed == true, lab),
        },
        "stress": {
            "frames": int(stress.sum()),
            "raw_unknown": _share(raw == UNKNOWN, stress),
            "raw_confidently_wrong": _share((raw != UNKNOWN) & (raw != true), stress),
            "smoothed_unknown": _share(smoothed == UNKNOWN, stress),
            "smoothed_confidently_wrong": _share((smoothed != UNKNOWN) & (smoothed != true), stress),
        },
        "no_object_frames": {"frames": int(nothing.sum()),
                             "smoothed_unknown": _share(smoothed == UNKNOWN, nothing),
                             "smoothed_background": _share(smoothed == BACKGROUND, nothing),
                             "smoothed_an_object": _share(~np.isin(smoothed, [UNKNOWN, BACKGROUND]), nothing)},
        "smoothed_accuracy_by_phase": {
            str(name): _share(smoothed == true, known & (phase == name)) for name in sorted(set(phase[known]))
        },
    }


def _share(hit: np.ndarray, mask: np.ndarray) -> float | None:
    return float(hit[mask].mean()) if mask.any() else None


def _switches(labels: np.ndarray) -> int:
    return int((labels[1:] != labels[:-1]).sum())
