"""`glassware replay`'s products: replay.json, frames.csv, timeline.png and a summary table, built from the
per-frame records of a replay (the edge runtime's, or the ROS graph's in `ros_replay`), one schema for both."""

from __future__ import annotations

import csv
import json
import resource
from pathlib import Path

import numpy as np

from glassware.edge_runtime.classifier import Classifier, measure_overhead
from glassware.edge_runtime.collect import FrameCollector
from glassware.edge_runtime.replay import FrameRecord, ReplayResult, replay
from glassware.edge_runtime.sources import Frame, FrameSource
from glassware.edge_runtime.stream import FrameSampler, LabelSmoother
from glassware.errors import FrameFormatError, ImageDecodeError
from glassware.evaluation import requirements as req
from glassware.evaluation.timeline import plot_timeline
from glassware.evaluation.truth import Truth, accuracy, match_truth
from glassware.preprocessing import decode_image

SCHEMA = "glassware-replay/2"


def build_report(records: list[FrameRecord], header: dict, frames: dict, wall_s: float, truth: Truth | None,
                 rows: list[int | None] | None, class_names: list[str]) -> dict:
    """replay.json from the records: `header` (source, bundle, format, settings...) as given, then frame
    counts, latency percentiles, throughput and, with `truth`, the scores against it (`rows`: `truth_rows`)."""
    latency = {"preprocess_plus_inference": percentiles([r.preprocess_ms + r.inference_ms for r in records]),
               "preprocess": percentiles([r.preprocess_ms for r in records]),
               "inference": percentiles([r.inference_ms for r in records])}
    end_to_end = [r.end_to_end_ms for r in records if r.end_to_end_ms is not None]
    if end_to_end:
        latency = {"end_to_end": percentiles(end_to_end), **latency}
    scores = None
    if truth is not None:
        scores = accuracy(records, truth, rows, class_names)
    return {"schema": SCHEMA, **header, "frames": frames, "latency_ms": latency, "wall_s": wall_s,
            "throughput_fps": len(records) / wall_s if wall_s > 0 else 0.0, "truth": scores}


def percentiles(values) -> dict:
    if len(values) == 0:
        return {"p50": None, "p90": None, "p99": None}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99)}


def settings(classifier: Classifier, speed: float | None, sampler: FrameSampler, smoother: LabelSmoother) -> dict:
    """The replay's model and settings, for the report header."""
    return {
        "bundle": {"path": str(classifier.bundle.path), "bundle_id": classifier.bundle.bundle_id},
        "format": classifier.format_name,
        "backend": classifier.backend_name,
        "threads": classifier.threads,
        "speed": "max" if speed is None else speed,
        "threshold": classifier.threshold,
        "class_thresholds": _rounded(classifier.thresholds),
        "sampler": {"max_rate_hz": sampler.max_rate_hz, "every_n": sampler.every_n},
        "smoother": {"alpha": smoother.alpha, "switch_margin": smoother.switch_margin,
                     "min_updates": smoother.min_updates, "threshold": smoother.threshold,
                     "class_thresholds": _rounded(smoother.thresholds), "release_margin": smoother.release_margin},
    }


def truth_rows(records: list[FrameRecord], truth: Truth | None, source_kind: str) -> list[int | None] | None:
    """Each record's truth row: by frame index, except in a rosbag (by time: bags have no frame numbers)."""
    return None if truth is None else match_truth(records, truth, by_index=source_kind != "rosbag2")


def write(out: dict, records: list[FrameRecord], truth: Truth | None, rows: list[int | None] | None,
          class_names: list[str], thresholds, out_dir: Path) -> None:
    """replay.json, frames.csv and timeline.png into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_frames_csv(records, truth, rows, out_dir / "frames.csv")
    plot_timeline(records, truth, class_names, thresholds, out_dir / "timeline.png")
    (out_dir / "replay.json").write_text(json.dumps(out, indent=2) + "\n")


def write_frames_csv(records: list[FrameRecord], truth: Truth | None, rows: list[int | None] | None,
                     path: Path) -> None:
    """One line per classified frame: truth (if any), raw and smoothed answers, timings."""
    rows = rows or [None] * len(records)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["frame", "time_s", "truth", "domain", "raw_label", "raw_confidence",
                         "smoothed_label", "smoothed_confidence", "novelty", "preprocess_ms", "inference_ms"])
        for r, row in zip(records, rows):
            writer.writerow([
                r.index, f"{r.time_s:.4f}",
                "" if row is None else truth.label[row], "" if row is None else truth.domain[row],
                r.raw, f"{r.raw_confidence:.4f}", r.smoothed, f"{r.smoothed_confidence:.4f}", f"{r.novelty:.4f}",
                f"{r.preprocess_ms:.3f}", f"{r.inference_ms:.3f}",
            ])


def summary_table(out: dict) -> str:
    """A readable table of the replay's figures and requirements."""
    f, lat = out["frames"], out["latency_ms"].get("end_to_end") or out["latency_ms"]["preprocess_plus_inference"]
    ms = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    pct = lambda v: "-" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    lines = [
        ("source", f"{out['source']['path']} ({out['source']['kind']})"),
        ("model", f"{out['bundle']['bundle_id']} {out['format']} on {out.get('backend', '?')}, "
                  f"{out.get('threads', '?')} thread(s)"),
        ("speed", str(out["speed"])),
        ("frames in / sampled / classified", f"{f['in']} / {f.get('sampled', '-')} / {f['classified']}"),
        ("frames dropped / bad", f"{f['dropped']} / {f['bad']}"),
        ("latency p50 / p90 / p99 (ms)" + (", end to end" if "end_to_end" in out["latency_ms"] else ""),
         f"{ms(lat['p50'])} / {ms(lat['p90'])} / {ms(lat['p99'])}"),
        ("throughput", f"{out['throughput_fps']:.1f} frames/s over {out['wall_s']:.2f} s"),
    ]
    if "peak_rss_mb" in out:
        lines.append(("peak RSS", f"{out['peak_rss_mb']:.0f} MB"))
    if "ratio" in out.get("overhead", {}):
        o = out["overhead"]
        lines.append(("classifier vs bare resize+invoke",
                      f"{o['classifier_ms_p50']:.3f} / {o['bare_ms_p50']:.3f} ms = {o['ratio']:.2f}x"))
    if "collect" in out:
        c = out["collect"]
        lines.append(("collected (kept / offered)",
                      f"{c['kept']} / {c['offered']} into {c['dir']}: skipped {c['skipped_rate']} for the rate, "
                      f"{c['skipped_duplicate']} duplicates, {c['dropped_queue_full']} queue full; "
                      f"{c['deleted_for_space']} deleted for space; {c['errors']} errors"))
    if out["truth"]:
        t = out["truth"]
        sw, st, no = t["label_switches"], t["stress"], t["no_object_frames"]
        lines += [
            ("accuracy raw / smoothed (known class, lab)",
             f"{pct(t['lab']['raw_accuracy'])} / {pct(t['lab']['smoothed_accuracy'])} of {t['lab']['frames']}"),
            ("accuracy raw / smoothed (known class, all)",
             f"{pct(t['raw_accuracy'])} / {pct(t['smoothed_accuracy'])} of {t['known_class_frames']}"),
            ("label switches truth / raw / smoothed", f"{sw['truth']} / {sw['raw']} / {sw['smoothed']}"),
            ("stress: unknown / confidently wrong (smoothed)",
             f"{pct(st['smoothed_unknown'])} / {pct(st['smoothed_confidently_wrong'])} of {st['frames']}"),
            ("no whole object: unknown / background / an object",
             f"{pct(no['smoothed_unknown'])} / {pct(no['smoothed_background'])} / {pct(no['smoothed_an_object'])} "
             f"of {no['frames']}"),
        ]
    for problem in out["source"]["problems"]:
        lines.append(("source problem", f"{problem['where']}: {problem['reason']}"))
    for r in out.get("requirements", []):
        measured = "not measured" if r["measured"] is None else f"{r['measured']:.4g}"
        lines.append(("require " + r["requirement"], f"{'met' if r['met'] else 'NOT met'} ({measured})"))
    width = max(len(k) for k, _ in lines)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in lines)


def run(
    source: FrameSource,
    classifier: Classifier,
    out_dir: str | Path,
    speed: float | None = 1.0,
    sampler: FrameSampler | None = None,
    smoother: LabelSmoother | None = None,
    truth: Truth | None = None,
    progress: bool = True,
    overhead: bool = True,
    requirements: list[str] | None = None,
    collector: FrameCollector | None = None,
) -> dict:
    """Replay, then write replay.json, frames.csv and timeline.png into out_dir; returns the report.

    At max speed, `overhead` also measures the classifier against a bare resize+invoke loop (a few seconds).
    `requirements`: checked into the report's `requirements` (None: the defaults, where measured).
    `collector`: offered every classified frame; its counters, once all is written, go into `collect`.
    """
    sampler = sampler or FrameSampler()
    smoother = smoother or LabelSmoother(classifier.class_names, threshold=classifier.threshold,
                                         thresholds=classifier.thresholds)
    result = replay(source, classifier, speed, sampler, smoother, progress, collector)
    header = {"source": {"path": str(source.path), "kind": source.kind, "declared_frames": source.expected,
                         "topic": getattr(source, "topic", None), "problems": source.problems},
              **settings(classifier, speed, sampler, smoother)}
    rows = truth_rows(result.records, truth, source.kind)
    out = build_report(result.records, header, _frame_counts(result, source), result.wall_s, truth, rows,
                       classifier.class_names)
    out["bad_frames"] = result.bad[:50]
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    if collector is not None:
        collector.flush()
        out["collect"] = {"dir": str(collector.out_dir), **collector.counters(), "last_error": collector.last_error}
    if overhead and speed is None and result.sample_frames:
        out["overhead"] = _overhead(classifier, result.sample_frames)
    out["requirements"] = req.check(out, requirements)
    write(out, result.records, truth, rows, classifier.class_names, classifier.thresholds, Path(out_dir))
    return out


def _frame_counts(result: ReplayResult, source: FrameSource) -> dict:
    unreadable = sum(p["frames"] or 0 for p in source.problems)
    return {"in": result.read + unreadable, "unreadable": unreadable, "sampled": result.sampled,
            "classified": len(result.records), "dropped": result.dropped, "bad": unreadable + len(result.bad)}


def _rounded(thresholds) -> list[float]:
    """Per-class thresholds for JSON: float32 in the runtime, so 6 decimals."""
    return [round(float(t), 6) for t in thresholds]


def _overhead(classifier: Classifier, frames: list[Frame]) -> dict:
    """measure_overhead on the first sampled frames of one size (encoded ones decoded first)."""
    raw = [f for f in frames if isinstance(f.data, np.ndarray)]
    if raw:
        encoding, arrays = raw[0].encoding, [f.data for f in raw if f.encoding == raw[0].encoding]
    else:
        encoding, arrays = "rgb8", list(_decodable(frames))
    arrays = [a for a in arrays if a.shape == arrays[0].shape]
    if not arrays:
        return {"error": "no usable frame to measure on"}
    try:
        return measure_overhead(classifier, arrays, encoding)
    except FrameFormatError as e:
        return {"error": str(e)}


def _decodable(frames: list[Frame]):
    for frame in frames:
        try:
            yield decode_image(frame.data)
        except ImageDecodeError:
            pass
