"""The timeline plot of a replay: true vs answered label over time, and confidence."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from glassware.edge_runtime.replay import FrameRecord
from glassware.evaluation.truth import NO_OBJECT, Truth
from glassware.labels import UNKNOWN


def plot_timeline(records: list[FrameRecord], truth: Truth | None, class_names: list[str], threshold,
                  path: Path) -> None:
    """True vs predicted label over time, and confidence; stress stretches shaded. `threshold`: one float, or
    one per class (then the threshold of each frame's top class is drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [*class_names, UNKNOWN, NO_OBJECT]
    y = {name: k for k, name in enumerate(rows)}
    t = np.array([r.time_s for r in records])
    fig, (ax_label, ax_conf) = plt.subplots(2, 1, figsize=(12, 6.5), sharex=True, height_ratios=[3, 1.4])
    if truth is not None:  # truth time_s and the replay's time both count from the first frame
        ax_label.step(truth.time_s, [y.get(name, y[UNKNOWN]) for name in truth.label], where="post", color="0.55",
                      lw=5, alpha=0.6, label="truth")
        for start, end in truth.stress_spans():
            for ax in (ax_label, ax_conf):
                ax.axvspan(start, end, color="tab:red", alpha=0.08, lw=0)
    ax_label.plot(t, [y[r.raw] for r in records], ".", ms=3, color="tab:blue", alpha=0.5, label="raw")
    ax_label.step(t, [y[r.smoothed] for r in records], where="post", color="tab:orange", lw=1.5, label="smoothed")
    ax_label.set_yticks(range(len(rows)), rows)
    ax_label.set_ylim(-0.7, len(rows) - 0.3)
    ax_label.legend(loc="upper right", fontsize=8, ncol=3)
    ax_label.set_title("label over time (red shading: stress-domain stretches)")
    ax_conf.plot(t, [r.raw_confidence for r in records], ".", ms=2, color="tab:blue", alpha=0.5, label="raw")
    ax_conf.plot(t, [r.smoothed_confidence for r in records], color="tab:orange", lw=1.2, label="smoothed")
    thresholds = np.broadcast_to(np.asarray(threshold, np.float64), (len(class_names),))
    if thresholds.min() == thresholds.max():
        ax_conf.axhline(thresholds[0], color="k", ls="--", lw=0.8, label=f"threshold {thresholds[0]:.2f}")
    else:
        index = {name: k for k, name in enumerate(class_names)}
        ax_conf.step(t, thresholds[[index[r.raw_top] for r in records]], where="mid", color="k", ls="--",
                     lw=0.8, label="threshold of the top class")
    ax_conf.set_ylim(0, 1.02)
    ax_conf.set_ylabel("confidence")
    ax_conf.set_xlabel("time (s)")
    ax_conf.legend(loc="lower right", fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
