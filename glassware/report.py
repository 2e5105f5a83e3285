"""The demo's report: one Markdown page quoting the figures of every step from the JSON it wrote.

Nothing here computes a result: it reads synth.json, run.json, metrics.json, the bundle manifests,
bench.json and replay.json, and links the plots next to them.
"""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _img(out: Path, path: Path, alt: str) -> str:
    return f"![{alt}]({path.relative_to(out)})" if path.exists() else f"*({alt}: not produced)*"


def _table(head: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _data_section(out: Path) -> list[str]:
    rows, sheets = [], []
    for name in ("lab_train", "lab_test", "lab_calibration", "stress"):
        s = _load(out / "data" / name / "synth.json")
        if s:
            rows.append([name, s.get("domain"), s.get("total", sum(s.get("counts", {}).values())),
                         f"{s.get('width')}×{s.get('height')}", f"{s.get('images_per_second', 0):.0f}"])
            sheets.append(_img(out, out / "data" / name / "contact_sheet.png", f"{name} contact sheet"))
    return ["## 1. Synthetic data", "", _table(["set", "domain", "images", "size", "images/s"], rows), "", *sheets, ""]


def _training_section(out: Path) -> list[str]:
    rows, evals, pics = [], [], []
    for model in ("vgg", "mobilenet"):
        run = out / "runs" / model
        r = _load(run / "run.json")
        if not r:
            continue
        rows.append([model, f"{r.get('params', 0):,}", r.get("epochs_run"), r.get("best_epoch"),
                     _pct(r.get("best_val_accuracy")), f"{r.get('train_seconds', 0) / 60:.1f}",
                     f"{r.get('images_per_second', 0):.0f}", len(r.get("skipped", [])),
                     "✅" if r.get("leakage", {}).get("ok") else "❌"])
        pics.append(_img(out, run / "training_curves.png", f"{model} training curves"))
        for split in ("lab_test", "stress"):
            m = _load(run / f"eval_{split}" / "metrics.json")
            if m:
                evals.append([model, split, m["n"], _pct(m["accuracy"]), _pct(m["mean_confidence"]),
                              f"{m['mean_entropy']:.3f}", _pct(m["ece"])])
                pics.append(_img(out, run / f"eval_{split}" / "confusion_matrix.png", f"{model} {split} confusion"))
    return ["## 2. Training and evaluation (Keras)", "",
            _table(["model", "params", "epochs", "best epoch", "val acc", "minutes", "train img/s", "skipped",
                    "leak-free"], rows), "",
            _table(["model", "set", "n", "accuracy", "mean confidence", "mean entropy", "ECE"], evals), "",
            *pics, ""]


def _export_section(out: Path) -> list[str]:
    lines = ["## 3. Export, calibration and accuracy gate", ""]
    for model in ("vgg", "mobilenet"):
        bundle = out / "bundles" / model
        rep = bundle / "export_report.md"
        if rep.exists():
            body = rep.read_text().split("\n", 1)[-1] if rep.read_text().startswith("# ") else rep.read_text()
            lines += [f"### {model}", "", body.strip(), "", _img(out, bundle / "reliability.png", f"{model} reliability"), ""]
    return lines


def _bench_section(out: Path) -> list[str]:
    md = out / "bench" / "bench.md"
    if not md.exists():
        return []
    body = md.read_text().split("\n", 1)[-1]
    return ["## 4. Latency benchmark (batch 1)", "", body.strip(), "",
            _img(out, out / "bench" / "bench_latency.png", "latency"), ""]


def _replay_rows(name: str, r: dict) -> list:
    t = r.get("truth") or {}
    stress, nothing = t.get("stress", {}), t.get("no_object_frames", {})
    lat = r.get("latency_ms", {})
    p = lat.get("end_to_end") or lat.get("preprocess_plus_inference") or {}
    return [name, r.get("format", ""), r["frames"]["in"], r["frames"]["classified"], r["frames"].get("dropped", 0),
            r["frames"].get("bad", 0), f"{p.get('p50', 0):.2f} / {p.get('p99', 0):.2f}",
            f"{r.get('throughput_fps', 0):.0f}", _pct(t.get("lab", {}).get("raw_accuracy")),
            _pct(t.get("lab", {}).get("smoothed_accuracy")),
            f"{t.get('label_switches', {}).get('raw', '–')} → {t.get('label_switches', {}).get('smoothed', '–')}"
            f" (truth {t.get('label_switches', {}).get('truth', '–')})",
            f"{_pct(stress.get('smoothed_unknown'))} / {_pct(stress.get('smoothed_confidently_wrong'))}",
            f"{_pct(nothing.get('smoothed_unknown'))} / {_pct(nothing.get('smoothed_background'))} / "
            f"{_pct(nothing.get('smoothed_an_object'))}"]


def _replay_section(out: Path) -> list[str]:
    rows, pics = [], []
    for name, folder in (("edge runtime, max speed", out / "replay"), ("ROS 2 node, real time", out / "replay_ros")):
        r = _load(folder / "replay.json")
        if r:
            rows.append(_replay_rows(name, r))
            pics.append(_img(out, folder / "timeline.png", f"{name} timeline"))
    if not rows:
        return []
    return ["## 5. Replay of the synthetic gripper-camera video (vgg bundle)", "",
            _table(["path", "format", "frames in", "classified", "dropped", "bad", "latency p50 / p99 ms", "fps",
                    "raw acc (lab frames)", "smoothed acc (lab frames)", "label switches raw → smoothed",
                    "stress: unknown / confidently wrong", "no whole object: unknown / background / an object"],
                   rows), "",
            "Accuracy is over frames whose ground truth is a known class; latency is preprocess + inference for "
            "the edge runtime and header stamp → classification received for the ROS node. Frames without a "
            "whole object include objects entering and leaving the picture.", "", *pics, ""]


def write(out: Path, timings: dict[str, float]) -> Path:
    """Write OUT/report.md from the outputs of the demo steps; returns its path."""
    total = sum(timings.values())
    lines = [
        "# glassware-vision demo report", "",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} · {platform.machine()} · {os.cpu_count()} CPU cores · "
        f"Python {platform.python_version()} · total {total / 60:.1f} min", "",
        *_data_section(out), *_training_section(out), *_export_section(out), *_bench_section(out),
        *_replay_section(out),
        "## Step timings", "", _table(["step", "seconds"], [[k, v] for k, v in timings.items()]), "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    (out / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    return path
