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

from glassware.formats import FORMATS
from glassware.markdown import table

INT8 = [f.name for f in FORMATS.values() if f.precision == "int8"]  # full int8: TFLite first, then ONNX


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _pct(x) -> str:
    return "–" if x is None or x != x else f"{100 * x:.1f} %"


def _img(out: Path, path: Path, alt: str) -> str:
    return f"![{alt}]({path.relative_to(out)})" if path.exists() else f"*({alt}: not produced)*"





MODELS = ("lite0", "vgg", "mobilenet")  # in this order where the demo trained them


def _models(out: Path) -> list[str]:
    return [m for m in MODELS if (out / "runs" / m).is_dir()]


def machine() -> str:
    """CPU model and its widest vector extension: figures on these machines differ by both."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    vector = next((name for flag, name in (("avx512_vnni", "AVX-512 + VNNI"), ("avx512f", "AVX-512"), ("avx2", "AVX2"),
                                           ("asimd", "NEON")) if flag in flags), "")
    return f"{model}{f' ({vector})' if vector else ''}, {os.cpu_count()} cores"


def _summary_section(out: Path) -> list[str]:
    """Both models side by side: accuracy, open-set, coverage at the precision target, int8, speed."""
    bench = _load(out / "bench" / "bench.json") or {}
    rows = []
    for model in _models(out):
        r, m = _load(out / "runs" / model / "run.json"), _load(out / "bundles" / model / "manifest.json")
        if not (r and m):
            continue
        ref, cal = m["reference"]["metrics"], m["calibration"]
        fmt = m["formats"].get(INT8[0]) or next(iter(m["formats"].values()), {})
        openset = m.get("openset", {}).get("splits", {})
        coverage = " / ".join(_pct(_answered(cal, openset, s)) for s in ("test", "stress"))
        precision = " / ".join(_pct(cal["splits"].get(s, {}).get("precision")) for s in ("test", "stress"))
        int8 = " / ".join(f"{100 * (fmt['metrics'][s]['accuracy'] - ref[s]['accuracy']):+.1f}"
                          for s in ("test", "stress") if s in fmt.get("metrics", {}))
        ece = " / ".join(_pct(cal["splits"].get(s, {}).get("ece_after")) for s in ("test", "stress"))
        not_glass = openset.get("not_glassware", {})
        rows.append([model, f"{r['train_seconds'] / 60:.1f}", _pct(ref.get("test", {}).get("accuracy")),
                     _pct(ref.get("stress", {}).get("accuracy")), _thresholds(cal), coverage, precision,
                     f"{not_glass.get('glassware_answers', '–')} of {not_glass.get('n', '–')}", ece, int8,
                     _fastest(bench, m.get("bundle_id"))])
    if not rows:
        return []
    return ["## Summary: the models side by side", "",
            table(["model", "train min", "lab test acc", "stress acc", "threshold", "answered lab / stress",
                    "precision of answers lab / stress", "not-glassware answered as glassware", "ECE lab / stress",
                    "int8 (TFLite) Δ pts lab / stress", "fastest passing format, 1 thread"], rows), "",
            "Answered: share of images not `unknown` (confidence threshold and open-set score); precision: share "
            "of the confidence-accepted answers that are right. Keras model, calibrated; the formats' own figures "
            "are in section 3.", ""]


def headline(out: Path, timings: dict[str, float], wall_s: float | None = None) -> list[str]:
    """The few figures a user asks first, per model: the table the README quotes, dated, with the machine."""
    bench = _load(out / "bench" / "bench.json") or {}
    best = (out / "best_bundle.txt").read_text().strip() if (out / "best_bundle.txt").exists() else None
    ros = _load(out / "replay_ros" / "replay.json") if best else None
    adapted = _load(out / "adapt" / "adapt.json")
    columns, rows = [], {}

    def add(label: str, value: str) -> None:
        rows.setdefault(label, []).append(value)

    for model in _models(out):
        r, m = _load(out / "runs" / model / "run.json"), _load(out / "bundles" / model / "manifest.json")
        if not (r and m):
            continue
        columns.append(model)
        ref, cal = m["reference"]["metrics"], m["calibration"]
        openset = m.get("openset", {}).get("splits", {})
        add("training (min)", f"{r['train_seconds'] / 60:.1f}")
        add("lab test / stress accuracy", " / ".join(_pct(ref.get(s, {}).get("accuracy")) for s in ("test", "stress")))
        add("answered at the precision target, lab / stress images",
            " / ".join(_pct(_answered(cal, openset, s)) for s in ("test", "stress"))
            + f" (precision {' / '.join(_pct(cal['splits'].get(s, {}).get('precision')) for s in ('test', 'stress'))})")
        not_glass = openset.get("not_glassware", {})
        add("not-glassware images answered as glassware", f"{not_glass.get('glassware_answers', '–')} of "
                                                          f"{not_glass.get('n', '–')}")
        add("ECE after calibration, lab / stress",
            " / ".join(_pct(cal["splits"].get(s, {}).get("ece_after")) for s in ("test", "stress")))
        deltas = []
        for name in INT8:
            f = m["formats"].get(name, {}).get("metrics", {})
            if "test" in f:
                deltas.append(f"{name} " + " / ".join(f"{100 * (f[s]['accuracy'] - ref[s]['accuracy']):+.1f}"
                                                       for s in ("test", "stress") if s in f))
        add("int8 vs Keras, points lab / stress", "; ".join(deltas) or "–")
        add("fastest passing format, 1 thread", _fastest(bench, m.get("bundle_id")))
        t = (_load(out / "replay" / model / "replay.json") or {}).get("truth") or {}
        stress = t.get("stress", {})
        answered = None if stress.get("smoothed_unknown") is None else 1 - stress["smoothed_unknown"]
        add("demo video: lab frames right / stress frames answered (wrong)",
            f"{_pct(t.get('lab', {}).get('smoothed_accuracy'))} / {_pct(answered)} "
            f"({_pct(stress.get('smoothed_confidently_wrong'))})")
        if ros and best == model:
            p = ros["latency_ms"].get("end_to_end", {})
            add("ROS 2 node, same video at 30 Hz: classified, latency p50 / p99",
                f"{ros['frames']['classified']}/{ros['frames']['in']}, {p.get('p50', 0):.1f} / {p.get('p99', 0):.1f} ms")
        else:
            add("ROS 2 node, same video at 30 Hz: classified, latency p50 / p99", "–")
        if adapted and "after" in adapted:
            b, a = adapted["before"], adapted["after"]
            add("adapted on the robot: stress video of another seed answered (wrong), before → after",
                f"{_pct(b['stress_coverage'])} ({_pct(b['stress_confidently_wrong'])}) → "
                f"{_pct(a['stress_coverage'])} ({_pct(a['stress_confidently_wrong'])}); lab test answered "
                f"{_pct(b.get('lab_coverage'))} → {_pct(a.get('lab_coverage'))}; {_swap_verdict(adapted, short=True)}"
                if best == model else "–")
    if not columns:
        return []
    total = wall_s if wall_s is not None else sum(timings.values())
    return [f"## Headline ({datetime.now(timezone.utc):%Y-%m-%d}, {machine()}; demo {total / 60:.1f} min)", "",
            table(["", *columns], [[label, *values] for label, values in rows.items()]), ""]


def _thresholds(calibration: dict) -> str:
    """The abstention threshold, or the range of the per-class ones."""
    thresholds = calibration.get("class_thresholds") or [calibration["threshold"]]
    low, high = f"{min(thresholds):.3f}", f"{max(thresholds):.3f}"
    return low if low == high else f"{low}–{high} (per class)"


def _answered(calibration: dict, openset: dict, split: str):
    s = calibration["splits"].get(split)
    if not s:
        return None
    return s["coverage"] - openset.get(split, {}).get("vetoed", 0.0)


def _fastest(bench: dict, bundle_id: str | None) -> str:
    s = bench.get("speedup", {}).get(bundle_id)
    return f"{s['fastest_format']} {s['fastest_p50_ms']:.2f} ms ({s['ratio']:.0f}× Keras)" if s else "–"


def _data_section(out: Path) -> list[str]:
    rows, sheets = [], []
    for name in ("lab_train", "lab_test", "lab_calibration", "stress"):
        s = _load(out / "data" / name / "synth.json")
        if s:
            rows.append([name, s.get("domain"), s.get("total", sum(s.get("counts", {}).values())),
                         f"{s.get('width')}×{s.get('height')}", f"{s.get('images_per_second', 0):.0f}"])
            sheets.append(_img(out, out / "data" / name / "contact_sheet.png", f"{name} contact sheet"))
    return ["## 1. Synthetic data", "", table(["set", "domain", "images", "size", "images/s"], rows), "", *sheets, ""]


def _training_section(out: Path) -> list[str]:
    rows, evals, pics = [], [], []
    for model in _models(out):
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
            table(["model", "params", "epochs", "best epoch", "val acc", "minutes", "train img/s", "skipped",
                    "leak-free"], rows), "",
            table(["model", "set", "n", "accuracy", "mean confidence", "mean entropy", "ECE"], evals), "",
            *pics, ""]


def _export_section(out: Path) -> list[str]:
    lines = ["## 3. Export, calibration and accuracy gate", ""]
    for model in _models(out):
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
            f"{_pct(nothing.get('smoothed_an_object'))}", _requirements(r.get("requirements", []))]


def _requirements(results: list[dict]) -> str:
    missed = [r["requirement"] for r in results if not r["met"]]
    return "–" if not results else "all met" if not missed else "NOT met: " + ", ".join(missed)


def _replay_section(out: Path) -> list[str]:
    rows, pics = [], []
    best = (out / "best_bundle.txt").read_text().strip() if (out / "best_bundle.txt").exists() else "?"
    paths = [(f"{m}: edge runtime, max speed", out / "replay" / m) for m in _models(out)]
    for name, folder in paths + [(f"{best}: ROS 2 node, real time", out / "replay_ros")]:
        r = _load(folder / "replay.json")
        if r:
            rows.append(_replay_rows(name, r))
            pics.append(_img(out, folder / "timeline.png", f"{name} timeline"))
    if not rows:
        return []
    return [f"## 5. Replay of the synthetic gripper-camera video (ROS 2 node: the best bundle, {best})", "",
            table(["path", "format", "frames in", "classified", "dropped", "bad", "latency p50 / p99 ms", "fps",
                    "raw acc (lab frames)", "smoothed acc (lab frames)", "label switches raw → smoothed",
                    "stress: unknown / confidently wrong", "no whole object: unknown / background / an object",
                    "requirements (`replay --require`)"],
                   rows), "",
            "Accuracy is over frames whose ground truth is a known class; latency is preprocess + inference for "
            "the edge runtime and header stamp → classification received for the ROS node. Frames without a "
            "whole object include objects entering and leaving the picture.", "", *pics, ""]


def _adapt_section(out: Path) -> list[str]:
    a = _load(out / "adapt" / "adapt.json")
    if not a:
        return []
    if "after" not in a:
        return ["## 6. Adaptation to the stress domain", "", f"{a['collected']} frames collected; {a['note']}.", ""]
    rows = [[name, a[name]["bundle_id"], a[name]["format"], _pct(a[name]["stress_coverage"]),
             _pct(a[name]["stress_precision"]), _pct(a[name]["stress_confidently_wrong"]),
             _pct(a[name]["lab_accuracy"]), _pct(a[name].get("lab_coverage"))] for name in ("before", "after")]
    seconds = a["seconds"]
    return ["## 6. Adaptation to the stress domain", "",
            f"Collected on one stress-domain video, {a['collected']} frames kept (`replay --collect`); labelled by "
            f"{a['stand_in']}: {a['labelled']} for training, {a['held_out']} held out for calibration, "
            f"{a['rejected']} rejected (an object only partly in view). Fine-tuned from the deployed run on the lab "
            f"training images and the labelled frames together, exported, then both bundles replayed on a "
            f"stress-domain video of another seed. Collect + label + fine-tune + export: "
            f"{seconds['collect_label_train_export'] / 60:.1f} min.", "",
            table(["bundle", "id", "format", "stress frames answered", "precision of answers",
                   "confidently wrong", "lab test accuracy (Keras)", "lab test answered"], rows), "",
            f"On the robot, {_swap_verdict(a)} (the node's `swap_max_lab_drop`).", "",
            _img(out, out / "adapt" / "before" / "timeline.png", "before adaptation"), "",
            _img(out, out / "adapt" / "after" / "timeline.png", "after adaptation"), ""]


def _swap_verdict(adapted: dict, short: bool = False) -> str:
    if "swap_refused" not in adapted:
        return "swap not checked"
    refused = adapted["swap_refused"]
    if not refused:
        return "the node would take it"
    return "the node would refuse it" if short else f"the node would refuse it and keep the old bundle: {refused}"


def write(out: Path, timings: dict[str, float], wall_s: float | None = None) -> Path:
    """Write OUT/report.md from the outputs of the demo steps; returns its path. `wall_s`: the demo's time end
    to end, which also counts what runs between the steps."""
    total = wall_s if wall_s is not None else sum(timings.values())
    lines = [
        "# glassware-vision demo report", "",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} · {machine()} · {platform.machine()} · "
        f"Python {platform.python_version()} · total {total / 60:.1f} min", "",
        *headline(out, timings, wall_s), *_summary_section(out), *_data_section(out), *_training_section(out), *_export_section(out),
        *_bench_section(out),
        *_replay_section(out), *_adapt_section(out),
        "## Step timings", "",
        table(["step", "seconds"], [[k, v] for k, v in timings.items()]), "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    (out / "timings.json").write_text(json.dumps({**timings, "total (wall)": round(total, 1)}, indent=2) + "\n")
    return path
