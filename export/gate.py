"""The accuracy gate: every exported file, run on its own runtime, compared with the Keras model it came from.

A format passes when its accuracy on the gate split (the held-out lab test set) is at most `tolerance`
points below the Keras model's. Nothing here imports TensorFlow: the files run through
`glassware.edge_runtime.backends`, exactly as on the robot.
"""

from __future__ import annotations

import numpy as np

from glassware.calibration.openset import accepted_answers
from glassware.calibration.temperature import scaled_probs
from glassware.edge_runtime.openset import novelty, unit_rows
from glassware.calibration.threshold import accepted_mask, selective_metrics
from glassware.formats import FORMATS
from glassware.markdown import table as markdown_table
from glassware.metrics import expected_calibration_error

BATCH = 32


def run_logits(backend, x: np.ndarray, batch_size: int = BATCH) -> np.ndarray:
    """Logits of `backend` on all of `x`, in batches."""
    out = [backend.run(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def run_outputs(backend, x: np.ndarray, batch_size: int = BATCH) -> tuple[np.ndarray, np.ndarray | None]:
    """(logits, features or None) of `backend` on all of `x`, in batches."""
    out = [backend.run_with_features(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    logits = np.concatenate([o[0] for o in out]) if out else np.zeros((0, 0), np.float32)
    has_features = bool(out) and out[0][1] is not None
    return logits, np.concatenate([o[1] for o in out]) if has_features else None


def openset_metrics(logits: np.ndarray, features: np.ndarray | None, calibration: dict, bank: np.ndarray,
                    entry: dict, class_names: list[str]) -> dict:
    """What the open-set score does on one split: the share of novel images, the share of answers it turns
    into `unknown`, and how many glassware answers (a class it may veto) are still given."""
    t, mix = calibration["temperature"], calibration["uniform_mix"]
    probs = scaled_probs(logits, t, mix)
    thresholds = calibration.get("class_thresholds", calibration["threshold"])
    vetoes = np.array([name in entry["applies_to"] for name in class_names])
    if features is None:
        return {"n": len(logits), "error": "no features output"}
    novel = novelty(features, unit_rows(bank), entry["k"]) > entry["threshold"]
    before = accepted_answers(probs, thresholds, None, vetoes)
    after = accepted_answers(probs, thresholds, novel, vetoes)
    return {"n": int(len(logits)), "novel": float(novel.mean()) if len(novel) else float("nan"),
            "vetoed": float((before & ~after).mean()) if len(novel) else float("nan"),
            "glassware_answers": int((after & vetoes[probs.argmax(-1)]).sum())}


def split_metrics(logits: np.ndarray, y: np.ndarray, reference_logits: np.ndarray, scaling: dict,
                  threshold) -> dict:
    """Accuracy, agreement with and max probability difference from the reference (Keras) logits, ECE
    after confidence scaling ({"temperature", "uniform_mix"}), and coverage/precision at the abstention
    threshold (one float, or one per class), overall and per true class (`class_coverage`, null for a class
    with no images): which class a new model stops answering."""
    t, mix = scaling["temperature"], scaling["uniform_mix"]
    probs, reference = scaled_probs(logits, t, mix), scaled_probs(reference_logits, t, mix)
    y = np.asarray(y, int)
    accepted = selective_metrics(probs, y, threshold)
    answered = accepted_mask(probs, threshold)
    return {
        "n": int(len(y)),
        "accuracy": float((probs.argmax(-1) == y).mean()),
        "agreement": float((probs.argmax(-1) == reference.argmax(-1)).mean()),
        "max_prob_diff": float(np.abs(probs - reference).max()),
        "ece": expected_calibration_error(probs, y),
        "coverage": accepted["coverage"],
        "precision_accepted": accepted["precision"],
        "class_coverage": [float(answered[y == k].mean()) if (y == k).any() else None
                           for k in range(probs.shape[-1])],
    }


def verdict(accuracy: float, reference_accuracy: float, tolerance_points: float) -> tuple[str, str]:
    """("pass"|"fail", reason): fail when accuracy is more than `tolerance_points` below the reference."""
    drop = 100 * (reference_accuracy - accuracy)
    if drop > tolerance_points:
        return "fail", f"accuracy {100 * accuracy:.1f}% is {drop:.1f} points below Keras (> {tolerance_points:g})"
    return "pass", f"accuracy drop {drop:+.1f} points (tolerance {tolerance_points:g})"


def gate_table(results: dict[str, dict], reference: dict[str, dict], split: str) -> str:
    """Markdown table: one row per format (`results`: manifest format entries, kept or not) against the
    Keras reference, on the gate split and the other evaluated splits, with the ✅/❌ verdict."""
    others = [s for s in reference if s != split]
    fp32 = next((results[n]["size_bytes"] for n, f in FORMATS.items() if f.precision == "fp32" and n in results), None)
    head = ["format", "MB", "× fp32", f"acc {split}", "Δ pts", "agree", "max Δp", f"ECE {split}"]
    head += [h for s in others for h in (f"acc {s}", f"ECE {s}")] + ["gate"]
    rows = [["keras (reference)", "", "", _pct(reference[split]["accuracy"]), "", "", "", _pct(reference[split]["ece"])]
            + [v for s in others for v in (_pct(reference[s]["accuracy"]), _pct(reference[s]["ece"]))] + [""]]
    for name, entry in results.items():
        m, size = entry["metrics"], entry["size_bytes"]
        rows.append([
            name, f"{size / 1e6:.2f}", f"{size / fp32:.2f}" if fp32 else "",
            _pct(m[split]["accuracy"]), f"{100 * (m[split]['accuracy'] - reference[split]['accuracy']):+.1f}",
            _pct(m[split]["agreement"]), f"{m[split]['max_prob_diff']:.3f}", _pct(m[split]["ece"]),
        ] + [v for s in others for v in (_pct(m[s]["accuracy"]), _pct(m[s]["ece"]))]
          + ["✅" if entry["gate"] == "pass" else "❌"])
    return markdown_table(head, rows)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"
