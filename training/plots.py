"""PNG figures for a person to look at: training curves and confusion matrices (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402


def plot_training_curves(history: list[dict], path: str | Path, title: str = "") -> Path:
    """Loss and accuracy per epoch (train and validation); phase changes drawn as dashed lines."""
    epochs = [row["epoch"] + 1 for row in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, [row[metric] for row in history], "o-", label=f"train {metric}")
        ax.plot(epochs, [row[f"val_{metric}"] for row in history], "s-", label=f"val {metric}")
        for prev, row in zip(history, history[1:]):
            if row.get("phase") != prev.get("phase"):
                ax.axvline(row["epoch"] + 0.5, color="grey", ls="--", lw=1)
                ax.text(row["epoch"] + 0.6, 0.98, row["phase"], transform=ax.get_xaxis_transform(), va="top",
                        fontsize=8, color="grey")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    axes[1].set_ylim(0, 1.02)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_confusion_matrix(cm: np.ndarray | list, class_names: list[str], path: str | Path, title: str = "") -> Path:
    """Counts in every cell, rows true and columns predicted; colour is the row-normalised rate."""
    cm = np.asarray(cm)
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = 1.0 + 0.55 * len(class_names)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i, j in np.ndindex(cm.shape):
        if cm[i, j]:
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if rates[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of true class")
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
