"""The demo's adaptation step: the labelling stand-in and the before/after figures."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np

from glassware.evaluation import adapt
from glassware.evaluation.truth import Truth

CLASSES = ["A", "B", "background"]


def write_truth(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["frame", "time_s", "label", "domain", "phase"])
        w.writerows([k, k / 10, label, "stress", phase] for k, (label, phase) in enumerate(rows))
    return Truth(path)


def collect(folder, frames):
    """Frames in the collector's layout: JPEG + sidecar named by time and sequence."""
    folder.mkdir()
    for seq, k in enumerate(frames):
        stem = f"20261204-120000-{seq:06d}-{seq:04d}"
        cv2.imwrite(str(folder / f"{stem}.jpg"), np.full((8, 8, 3), k, np.uint8))
        (folder / f"{stem}.json").write_text(json.dumps({"stamp_s": k / 10, "frame_index": k}))


def test_the_stand_in_labels_as_a_person_would_and_holds_out_whole_visits(tmp_path):
    rows = [("none", "gap")] * 5 + [("none", "approach")] * 3 + [("A", "hold")] * 10 + [("none", "gap")] * 5 \
        + [("B", "hold")] * 10 + [("C", "hold")] * 4
    truth = write_truth(tmp_path / "truth.csv", rows)
    collect(tmp_path / "collected", range(len(rows)))
    (tmp_path / "collected" / "stray.json").write_text("not json")  # not the collector's: ignored
    counts = adapt.label_from_truth(tmp_path / "collected", truth, CLASSES, tmp_path / "train", tmp_path / "held")
    # partly in view (approach) and a class the bundle does not have (C) are rejected
    assert counts["collected"] == len(rows) and counts["rejected"] == 3 + 4
    assert counts["by_class"] == {"background": 10, "A": 10, "B": 10}
    assert counts["labelled"] + counts["held_out"] == 30
    for label in ("A", "B"):  # a visit is all in training or all held out
        sides = [(tmp_path / side / label).is_dir() for side in ("train", "held")]
        assert sides.count(True) == 1


def test_summary_compares_answered_precision_and_errors():
    replay = {"format": "onnx_int8", "truth": {"stress": {"frames": 100, "smoothed_unknown": 0.2,
                                                          "smoothed_confidently_wrong": 0.02}}}
    manifest = {"bundle_id": "lite0-x", "reference": {"metrics": {"test": {"accuracy": 0.998}}},
                "formats": {"onnx_int8": {"metrics": {"test": {"coverage": 0.97}}}}}
    s = adapt.summary(replay, manifest)
    assert s["stress_coverage"] == 0.8 and abs(s["stress_precision"] - 0.975) < 1e-12
    assert s["stress_confidently_wrong"] == 0.02 and s["lab_accuracy"] == 0.998 and s["lab_coverage"] == 0.97
