"""The demo's adaptation step: the robot learns a new environment, measured before and after.

collect (`replay --collect` on a stress-domain video of one seed) -> label (here a stand-in for the person at
`glassware label`: the video's truth file) -> fine-tune (`train --init-from`, old and new data together) ->
export (the labelled frames held out join the calibration) -> replay a stress-domain video of another seed
with the old and the new bundle -> `adapt.json` with `before` and `after`.
"""

from __future__ import annotations

import shutil
import zlib
from pathlib import Path

from glassware.evaluation.truth import NO_OBJECT, Truth
from glassware.labels import BACKGROUND

STAND_IN = "the demo's stand-in for a person labelling: each frame's label from the video's truth file"
HELD_OUT_SHARE = 0.2  # of the labelled frames, kept for calibration instead of training


def label_from_truth(collected: Path, truth: Truth, class_names: list[str], train_dir: Path,
                     held_out_dir: Path) -> dict:
    """Label the collected frames as a careful person would, from the truth file: a whole object its class,
    the empty scene `background`, an object only partly in view rejected. A fixed share of the visits (all
    frames of one stretch of one label, near-copies of each other) goes to `held_out_dir` for calibration, the
    rest to `train_dir`: a frame held out must not have its twin in training. Returns the counts."""
    from glassware.edge_runtime.collect import collected_frames

    counts = {"collected": 0, "labelled": 0, "held_out": 0, "rejected": 0, "by_class": {}}
    visit = _visits(truth.label)
    frames, _ = collected_frames(collected)
    for image, meta in frames:
        counts["collected"] += 1
        row = truth.row(meta.get("frame_index"), float(meta.get("stamp_s") or 0.0))
        label = _label(truth, row, class_names)
        if label is None:
            counts["rejected"] += 1
            continue
        held_out = zlib.crc32(f"{visit[row]}".encode()) % 1000 < HELD_OUT_SHARE * 1000
        target = (held_out_dir if held_out else train_dir) / label
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(image, target / image.name)
        counts["held_out" if held_out else "labelled"] += 1
        counts["by_class"][label] = counts["by_class"].get(label, 0) + 1
    return counts


def _visits(labels: list[str]) -> list[int]:
    """For each truth row, the first row of its stretch of one label."""
    starts, start = [], 0
    for k, label in enumerate(labels):
        start = k if k == 0 or label != labels[k - 1] else start
        starts.append(start)
    return starts


def _label(truth: Truth, row: int | None, class_names: list[str]) -> str | None:
    if row is None:
        return None
    label = truth.label[row]
    if label == NO_OBJECT:
        return BACKGROUND if truth.phase[row] == "gap" and BACKGROUND in class_names else None
    return label if label in class_names else None


def summary(replay: dict, manifest: dict) -> dict:
    """The figures `adapt.json` compares: stress frames answered, their precision, confident errors (smoothed
    labels of the replay), the bundle's lab test accuracy (Keras reference), and the lab test images the
    replayed format answers at its thresholds: learning the new place must not cost the old one its answers
    (accuracy alone hides that: a class slipping under its threshold stays right, as `unknown`)."""
    stress = (replay.get("truth") or {}).get("stress", {})
    unknown, wrong = stress.get("smoothed_unknown"), stress.get("smoothed_confidently_wrong")
    answered = None if unknown is None else 1.0 - unknown
    return {
        "bundle_id": manifest["bundle_id"],
        "format": replay["format"],
        "stress_frames": stress.get("frames"),
        "stress_coverage": answered,
        "stress_precision": (answered - wrong) / answered if answered else None,
        "stress_confidently_wrong": wrong,
        "lab_accuracy": manifest["reference"]["metrics"]["test"]["accuracy"],
        "lab_coverage": manifest["formats"][replay["format"]]["metrics"]["test"]["coverage"],
    }
