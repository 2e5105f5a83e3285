"""Temperature scaling: one scalar T so that softmax(logits / T) is calibrated (Guo et al., 2017). NumPy only.

T is fitted on the run's validation split by minimising the negative log-likelihood over log T with a
bounded golden-section search. It never changes which class wins, only how sure the model says it is.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from glassware.metrics import reliability, softmax

T_BOUNDS = (0.05, 20.0)


def nll(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true labels under softmax(logits / temperature)."""
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return float(-log_probs[np.arange(len(z)), np.asarray(y, int)].mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray, bounds: tuple[float, float] = T_BOUNDS) -> dict:
    """The T in `bounds` minimising validation NLL, with how it was chosen.

    With no misclassified sample the NLL keeps falling as T -> 0 (sharpening a perfect classifier always
    "helps"), so the optimum is an artefact of the bound, not evidence: T stays 1.0 and the record says why.
    """
    logits, y = np.asarray(logits, np.float64), np.asarray(y, int)
    if len(y) == 0:
        return {"temperature": 1.0, "method": "none: empty validation split"}
    if (logits.argmax(-1) == y).all():
        return {"temperature": 1.0, "method": "kept 1.0: no validation errors, so T is not identifiable"}
    log_t = _golden_section(lambda s: nll(logits, y, math.exp(s)), math.log(bounds[0]), math.log(bounds[1]))
    temperature = math.exp(log_t)
    at_bound = min(abs(log_t - math.log(b)) for b in bounds) < 1e-3
    return {"temperature": temperature, "method": "val NLL minimum" + (" (at the search bound)" if at_bound else "")}


def calibration_summary(logits: np.ndarray, y: np.ndarray, temperature: float, bins: int = 15) -> dict:
    """ECE and NLL before (T = 1) and after temperature scaling on one split."""
    y = np.asarray(y, int)
    return {
        "n": int(len(y)),
        "ece_before": reliability(softmax(logits), y, bins)["ece"],
        "ece_after": reliability(softmax(logits, temperature), y, bins)["ece"],
        "nll_before": nll(logits, y),
        "nll_after": nll(logits, y, temperature),
    }


def plot_reliability(splits: dict[str, tuple[np.ndarray, np.ndarray]], temperature: float, path: str | Path,
                     bins: int = 15) -> Path:
    """Reliability diagram, one panel per split: accuracy vs confidence per bin, before and after scaling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(splits), figsize=(4.2 * len(splits), 4.2), squeeze=False)
    for ax, (name, (logits, y)) in zip(axes[0], splits.items()):
        ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect calibration")
        for t, label, style in ((1.0, "before", "o-"), (temperature, f"after (T={temperature:.2f})", "s-")):
            r = reliability(softmax(logits, t), y, bins)
            conf, acc = np.array(r["confidence"]), np.array(r["accuracy"])
            keep = ~np.isnan(conf)
            ax.plot(conf[keep], acc[keep], style, ms=4, label=f"{label}: ECE {100 * r['ece']:.1f}%")
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="confidence (top probability)", ylabel="accuracy",
               title=f"{name} (n={len(y)})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _golden_section(f, lo: float, hi: float, tol: float = 1e-5) -> float:
    """Minimum of a unimodal f on [lo, hi]."""
    ratio = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = f(d)
    return (a + b) / 2
