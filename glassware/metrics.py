"""Classification metrics shared by evaluation, the export gate, calibration and replay (NumPy only)."""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def per_class(cm: np.ndarray, class_names: list[str]) -> dict:
    tp = np.diag(cm).astype(float)
    precision = np.divide(tp, cm.sum(0), out=np.zeros_like(tp), where=cm.sum(0) > 0)
    recall = np.divide(tp, cm.sum(1), out=np.zeros_like(tp), where=cm.sum(1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(precision + recall) > 0)
    return {
        name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(class_names, precision, recall, f1, cm.sum(1))
    }


def mean_entropy(probs: np.ndarray) -> float:
    p = np.clip(np.asarray(probs, np.float64), 1e-12, 1.0)
    return float(-(p * np.log(p)).sum(-1).mean())


def reliability(probs: np.ndarray, y_true: np.ndarray, bins: int = 15) -> dict:
    """Confidence/accuracy per equal-width confidence bin, and the expected calibration error (ECE)."""
    probs = np.asarray(probs, np.float64)
    conf = probs.max(-1)
    correct = probs.argmax(-1) == np.asarray(y_true)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    count = np.bincount(idx, minlength=bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=bins)
    acc_sum = np.bincount(idx, weights=correct.astype(float), minlength=bins)
    nz = count > 0
    ece = float(np.abs(acc_sum[nz] - conf_sum[nz]).sum() / max(len(conf), 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "edges": edges.tolist(),
            "count": count.tolist(),
            "confidence": np.where(nz, conf_sum / np.maximum(count, 1), np.nan).tolist(),
            "accuracy": np.where(nz, acc_sum / np.maximum(count, 1), np.nan).tolist(),
            "ece": ece,
        }


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int = 15) -> float:
    return reliability(probs, y_true, bins)["ece"]


def classification_metrics(probs: np.ndarray, y_true: np.ndarray, class_names: list[str]) -> dict:
    """The metrics.json core: accuracy, confusion matrix, per-class P/R/F1, mean entropy, ECE."""
    probs = np.asarray(probs)
    y_true = np.asarray(y_true, int)
    y_pred = probs.argmax(-1)
    cm = confusion_matrix(y_true, y_pred, len(class_names))
    return {
        "n": int(len(y_true)),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else float("nan"),
        "class_names": list(class_names),
        "confusion_matrix": cm.tolist(),
        "per_class": per_class(cm, class_names),
        "mean_confidence": float(probs.max(-1).mean()) if len(y_true) else float("nan"),
        "mean_entropy": mean_entropy(probs) if len(y_true) else float("nan"),
        "ece": expected_calibration_error(probs, y_true) if len(y_true) else float("nan"),
    }
