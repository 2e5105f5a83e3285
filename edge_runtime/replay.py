"""Replay recorded frames through the classifier as the robot would see them, and measure.

A reader thread reads the source. At real-time speed (`speed` > 0) it plays the camera: it releases frames
on their own timestamps into a `LatestFrame` slot and the classifier takes what it can; frames replaced
before it got to them are `dropped`, exactly as on the robot. At `max` speed (speed=None) the reader also
preprocesses, so on two cores preprocessing overlaps inference; every sampled frame is classified as fast
as possible, and throughput is measured, plus the classifier's overhead over a bare resize+invoke loop.

Frame counts in replay.json: `in` = frames the source presented (read + unreadable), `unreadable` = frames
the source could not read, `sampled` = read frames the sampler accepted, `classified`, `dropped`,
`bad` = unreadable + sampled frames the classifier rejected (wrong size/encoding, undecodable);
so sampled = classified + dropped + (bad - unreadable).
"""

from __future__ import annotations

import csv
import json
import logging
import queue
import resource
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from glassware.labels import BACKGROUND, UNKNOWN
from glassware.edge_runtime.classifier import Classifier, Prediction, measure_overhead
from glassware.edge_runtime.sources import Frame, FrameSource, SourceError
from glassware.edge_runtime.stream import FrameSampler, LabelSmoother, LatestFrame
from glassware.errors import FrameFormatError, ImageDecodeError
from glassware.preprocessing import decode_image

log = logging.getLogger(__name__)

SCHEMA = "glassware-replay/1"
TRUTH_COLUMNS = ("frame", "time_s", "label", "domain", "phase")
NO_OBJECT = "none"  # truth label when nothing is in view
TARGETS = {"smoothed_accuracy": 0.97, "overhead_ratio": 1.25, "throughput_fps": 300.0}
OVERHEAD_FRAMES = 32
LOGGED_BAD_FRAMES = 10  # the rest are only counted (and listed in replay.json)


class Truth:
    """Frame-accurate ground truth: a CSV with columns frame,time_s,label,domain,phase."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            with open(self.path, newline="") as f:
                rows = list(csv.DictReader(f))
        except OSError as e:
            raise SourceError(f"{self.path}: cannot read ground truth ({e.strerror or e})") from e
        missing = set(TRUTH_COLUMNS) - set(rows[0] if rows else ())
        if missing:
            raise SourceError(f"{self.path}: ground truth needs columns {', '.join(TRUTH_COLUMNS)}; "
                              f"missing {sorted(missing)}")
        try:
            self.frame = np.array([int(r["frame"]) for r in rows])
            self.time_s = np.array([float(r["time_s"]) for r in rows])
        except ValueError as e:
            raise SourceError(f"{self.path}: bad frame/time_s value ({e})") from e
        if np.any(np.diff(self.time_s) < 0):
            raise SourceError(f"{self.path}: time_s must not decrease")
        self.label = [r["label"] for r in rows]
        self.domain = [r["domain"] for r in rows]
        self.phase = [r["phase"] for r in rows]
        self._row_of_frame = {int(k): i for i, k in enumerate(self.frame)}
        spacing = np.diff(self.time_s)
        self._tolerance = float(np.median(spacing)) / 2 if len(spacing) else 0.0

    def row(self, index: int | None, time_s: float) -> int | None:
        """The row for a source frame: by frame index when given, else the nearest time within half a frame."""
        if index is not None:
            return self._row_of_frame.get(index)
        i = int(np.searchsorted(self.time_s, time_s))
        near = [j for j in (i - 1, i) if 0 <= j < len(self.time_s)]
        best = min(near, key=lambda j: abs(self.time_s[j] - time_s), default=None)
        return best if best is not None and abs(self.time_s[best] - time_s) <= self._tolerance else None

    def stress_spans(self) -> list[tuple[float, float]]:
        """(start_s, end_s) of each contiguous stretch in the stress domain."""
        spans, start = [], None
        for t, domain in zip(self.time_s, self.domain):
            if domain == "stress" and start is None:
                start = t
            elif domain != "stress" and start is not None:
                spans.append((start, t))
                start = None
        if start is not None:
            spans.append((start, float(self.time_s[-1])))
        return spans


@dataclass
class ReplayLog:
    """What happened to every frame, filled by `replay`."""

    index: list[int] = field(default_factory=list)
    time_s: list[float] = field(default_factory=list)  # relative to the first frame
    raw: list[str] = field(default_factory=list)
    raw_top: list[str] = field(default_factory=list)
    raw_confidence: list[float] = field(default_factory=list)
    smoothed: list[str] = field(default_factory=list)
    smoothed_confidence: list[float] = field(default_factory=list)
    preprocess_ms: list[float] = field(default_factory=list)
    inference_ms: list[float] = field(default_factory=list)
    novelty: list[float] = field(default_factory=list)  # open-set score, NaN without one
    bad: list[dict] = field(default_factory=list)
    read: int = 0
    sampled: int = 0
    dropped: int = 0
    wall_s: float = 0.0
    sample_frames: list[Frame] = field(default_factory=list)  # the first raw frames, for the overhead figure

    def add(self, frame: Frame, time_s: float, p: Prediction, label: str, confidence: float,
            class_names: list[str]) -> None:
        self.index.append(frame.index)
        self.time_s.append(time_s)
        self.raw.append(p.label)
        self.raw_top.append(class_names[p.class_index])
        self.raw_confidence.append(p.confidence)
        self.smoothed.append(label)
        self.smoothed_confidence.append(confidence)
        self.preprocess_ms.append(p.preprocess_ms)
        self.inference_ms.append(p.inference_ms)
        self.novelty.append(p.novelty)


def replay(
    source: FrameSource,
    classifier: Classifier,
    speed: float | None = 1.0,
    sampler: FrameSampler | None = None,
    smoother: LabelSmoother | None = None,
    progress: bool = True,
) -> ReplayLog:
    """Run the source through sampler, classifier and smoother; speed None = as fast as possible."""
    sampler = sampler or FrameSampler()
    smoother = smoother or LabelSmoother(classifier.class_names, threshold=classifier.threshold,
                                         thresholds=classifier.thresholds)
    result = ReplayLog()
    first_stamp: list[float] = []
    bar = tqdm(total=source.expected, unit="frame", desc=f"replay {source.path.name}", disable=not progress)

    def prepare(frame: Frame) -> tuple[Frame, np.ndarray, float] | None:
        """(frame, model input, preprocess ms), or None for a bad frame (counted and listed)."""
        start = time.perf_counter()
        try:
            x = classifier.prepare(frame.data, frame.encoding)
        except (FrameFormatError, ImageDecodeError) as e:
            result.bad.append({"index": frame.index, "stamp_s": frame.stamp_s, "reason": str(e)})
            if len(result.bad) <= LOGGED_BAD_FRAMES:
                log.warning("frame %d skipped: %s", frame.index, e)
            return None
        return frame, x, (time.perf_counter() - start) * 1e3

    def offered(frame: Frame) -> tuple[Frame, np.ndarray | None, float] | None:
        """In the reader thread: count and sample; hand on (frame, model input or None if not yet
        preprocessed, preprocess ms), or None for nothing to classify."""
        if not first_stamp:
            first_stamp.append(frame.stamp_s)
        result.read += 1
        bar.update()
        if not sampler.accept(frame.stamp_s):
            return None
        result.sampled += 1
        if speed is not None:
            return frame, None, 0.0  # real time: the reader is the camera; preprocessing is the classifier's work
        if len(result.sample_frames) < OVERHEAD_FRAMES:
            result.sample_frames.append(frame)
        return prepare(frame)  # max speed: preprocess here, overlapping inference on the other core

    def classify(item: tuple[Frame, np.ndarray | None, float]) -> None:
        frame, x, preprocess_ms = item
        if x is None:  # real time: preprocess here, only the frames actually classified
            prepared = prepare(frame)
            if prepared is None:
                return  # a bad frame, already counted
            frame, x, preprocess_ms = prepared
        p = classifier.classify_input(x, preprocess_ms)
        label, confidence = smoother.update(p.evidence)
        result.add(frame, frame.stamp_s - first_stamp[0], p, label, confidence, classifier.class_names)

    start = time.perf_counter()
    try:
        result.dropped = _pipeline(source, speed, offered, classify)
    finally:
        bar.close()
    result.wall_s = time.perf_counter() - start
    return result


class _Backlog:
    """The hand-off at max speed: a short blocking queue, so reading overlaps classifying and nothing drops."""

    replaced = 0

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=4)

    def put(self, item: tuple) -> None:
        self._queue.put(item)

    def take(self) -> tuple | None:
        return self._queue.get()

    def close(self) -> None:
        self._queue.put(None)

    def drain(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()


def _pipeline(source: FrameSource, speed: float | None, offered, classify) -> int:
    """A reader thread feeds what `offered` returns (on frame timestamps unless speed is None); this thread
    classifies.

    In real time the hand-off is a LatestFrame, so frames the classifier was too busy for are dropped, as on
    the robot. Returns the number dropped.
    """
    handoff = LatestFrame() if speed else _Backlog()
    stop = threading.Event()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            clock_start, stamp_start = time.perf_counter(), None
            for frame in source:
                if stop.is_set():
                    return
                if speed:
                    stamp_start = frame.stamp_s if stamp_start is None else stamp_start
                    delay = clock_start + (frame.stamp_s - stamp_start) / speed - time.perf_counter()
                    if delay > 0 and stop.wait(delay):
                        return
                if (item := offered(frame)) is not None:
                    handoff.put(item)
        except BaseException as e:  # hand it to the classifying thread, which re-raises
            failure.append(e)
        finally:
            handoff.close()

    reader = threading.Thread(target=produce, name="replay-reader", daemon=True)
    reader.start()
    try:
        while (item := handoff.take()) is not None:
            classify(item)
    finally:
        stop.set()
        if isinstance(handoff, _Backlog):
            handoff.drain()  # unblock a reader waiting to put
        reader.join()
    if failure:
        raise failure[0]
    return handoff.replaced


def report(
    result: ReplayLog,
    source: FrameSource,
    classifier: Classifier,
    speed: float | None,
    sampler: FrameSampler,
    smoother: LabelSmoother,
    truth: Truth | None,
    truth_rows: list[int | None] | None = None,
    overhead: bool = True,
) -> dict:
    """The replay.json content; `truth_rows` from `match_truth`."""
    unreadable = sum(p["frames"] or 0 for p in source.problems)
    classified = len(result.raw)
    latency = np.add(result.preprocess_ms, result.inference_ms)
    out = {
        "schema": SCHEMA,
        "source": {"path": str(source.path), "kind": source.kind, "declared_frames": source.expected,
                   "topic": getattr(source, "topic", None), "problems": source.problems},
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
        "frames": {"in": result.read + unreadable, "unreadable": unreadable, "sampled": result.sampled,
                   "classified": classified, "dropped": result.dropped, "bad": unreadable + len(result.bad)},
        "bad_frames": result.bad[:50],
        "latency_ms": {
            "preprocess_plus_inference": _percentiles(latency),
            "preprocess": _percentiles(result.preprocess_ms),
            "inference": _percentiles(result.inference_ms),
        },
        "wall_s": result.wall_s,
        "throughput_fps": classified / result.wall_s if result.wall_s else 0.0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
        "truth": None if truth is None else accuracy(result, truth, truth_rows, classifier.class_names),
    }
    if overhead and speed is None and result.sample_frames:
        out["overhead"] = _overhead(classifier, result.sample_frames)
    out["checks"] = _checks(out)
    return out


def match_truth(result: ReplayLog, truth: Truth, by_index: bool) -> list[int | None]:
    """The truth row of every classified frame: by frame index (video, images) or by time (bags)."""
    return [truth.row(i if by_index else None, t) for i, t in zip(result.index, result.time_s)]


def accuracy(result: ReplayLog, truth: Truth, rows: list[int | None], class_names: list[str]) -> dict:
    """Raw vs smoothed labels against ground truth, over the classified frames (`rows` from `match_truth`)."""
    matched = [k for k, r in enumerate(rows) if r is not None]
    true = np.array([truth.label[rows[k]] for k in matched], dtype=object)
    domain = np.array([truth.domain[rows[k]] for k in matched], dtype=object)
    phase = np.array([truth.phase[rows[k]] for k in matched], dtype=object)
    raw = np.array([result.raw[k] for k in matched], dtype=object)
    top = np.array([result.raw_top[k] for k in matched], dtype=object)
    smoothed = np.array([result.smoothed[k] for k in matched], dtype=object)
    known = np.isin(true, class_names)
    stress = known & (domain == "stress")
    lab = known & (domain != "stress")  # the accuracy target's frames: stress is judged by abstention
    nothing = true == NO_OBJECT  # includes objects partly in view (entering, leaving)
    return {
        "truth_file": str(truth.path),
        "frames_matched": len(matched),
        "known_class_frames": int(known.sum()),
        "raw_accuracy": _share(raw == true, known),
        "raw_top1_accuracy": _share(top == true, known),
        "smoothed_accuracy": _share(smoothed == true, known),
        "label_switches": {"truth": _switches(true), "raw": _switches(raw), "smoothed": _switches(smoothed)},
        "lab": {
            "frames": int(lab.sum()),
            "raw_accuracy": _share(raw == true, lab),
            "raw_top1_accuracy": _share(top == true, lab),
            "smoothed_accuracy": _share(smoothed == true, lab),
        },
        "stress": {
            "frames": int(stress.sum()),
            "raw_unknown": _share(raw == UNKNOWN, stress),
            "raw_confidently_wrong": _share((raw != UNKNOWN) & (raw != true), stress),
            "smoothed_unknown": _share(smoothed == UNKNOWN, stress),
            "smoothed_confidently_wrong": _share((smoothed != UNKNOWN) & (smoothed != true), stress),
        },
        "no_object_frames": {"frames": int(nothing.sum()),
                             "smoothed_unknown": _share(smoothed == UNKNOWN, nothing),
                             "smoothed_background": _share(smoothed == BACKGROUND, nothing),
                             "smoothed_an_object": _share(~np.isin(smoothed, [UNKNOWN, BACKGROUND]), nothing)},
        "smoothed_accuracy_by_phase": {
            str(name): _share(smoothed == true, known & (phase == name)) for name in sorted(set(phase[known]))
        },
    }


def _share(hit: np.ndarray, mask: np.ndarray) -> float | None:
    return float(hit[mask].mean()) if mask.any() else None


def _switches(labels: np.ndarray) -> int:
    return int((labels[1:] != labels[:-1]).sum())


def _rounded(thresholds) -> list[float]:
    """Per-class thresholds for JSON: float32 in the runtime, so 6 decimals."""
    return [round(float(t), 6) for t in thresholds]


def _percentiles(values) -> dict:
    if len(values) == 0:
        return {"p50": None, "p90": None, "p99": None}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99)}


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


def _checks(out: dict) -> dict:
    """The issue's targets, where this replay measured them."""
    checks = {}
    truth = out["truth"]
    if truth and truth["lab"]["smoothed_accuracy"] is not None:
        lab_accuracy = truth["lab"]["smoothed_accuracy"]
        checks["lab frames: smoothed_accuracy >= 0.97"] = lab_accuracy >= TARGETS["smoothed_accuracy"]
        switches = truth["label_switches"]
        checks["fewer switches smoothed than raw"] = switches["smoothed"] < switches["raw"]
    if truth and truth["stress"]["frames"]:
        stress = truth["stress"]
        wrong = stress["smoothed_confidently_wrong"]  # none at all also passes: every stress frame right
        checks["stress: unknown more often than confidently wrong"] = wrong == 0 or stress["smoothed_unknown"] > wrong
    if "ratio" in out.get("overhead", {}):
        checks["classifier/bare <= 1.25"] = out["overhead"]["ratio"] <= TARGETS["overhead_ratio"]
    if out["speed"] == "max":
        checks["throughput >= 300 fps"] = out["throughput_fps"] >= TARGETS["throughput_fps"]
    return checks


def write_frames_csv(result: ReplayLog, truth: Truth | None, rows: list[int | None] | None, path: Path) -> None:
    """One line per classified frame: truth (if any), raw and smoothed answers, timings."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["frame", "time_s", "truth", "domain", "raw_label", "raw_confidence",
                         "smoothed_label", "smoothed_confidence", "novelty", "preprocess_ms", "inference_ms"])
        for k in range(len(result.raw)):
            row = rows[k] if truth is not None else None
            writer.writerow([
                result.index[k], f"{result.time_s[k]:.4f}",
                "" if row is None else truth.label[row], "" if row is None else truth.domain[row],
                result.raw[k], f"{result.raw_confidence[k]:.4f}",
                result.smoothed[k], f"{result.smoothed_confidence[k]:.4f}", f"{result.novelty[k]:.4f}",
                f"{result.preprocess_ms[k]:.3f}", f"{result.inference_ms[k]:.3f}",
            ])


def plot_timeline(result: ReplayLog, truth: Truth | None, class_names: list[str], threshold, path: Path) -> None:
    """True vs predicted label over time, and confidence; stress stretches shaded. `threshold`: one float, or
    one per class (then the threshold of each frame's top class is drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [*class_names, UNKNOWN, NO_OBJECT]
    y = {name: k for k, name in enumerate(rows)}
    t = np.array(result.time_s)
    fig, (ax_label, ax_conf) = plt.subplots(2, 1, figsize=(12, 6.5), sharex=True, height_ratios=[3, 1.4])
    if truth is not None:  # truth time_s and the replay's time both count from the first frame
        ax_label.step(truth.time_s, [y.get(name, y[UNKNOWN]) for name in truth.label], where="post", color="0.55",
                      lw=5, alpha=0.6, label="truth")
        for start, end in truth.stress_spans():
            for ax in (ax_label, ax_conf):
                ax.axvspan(start, end, color="tab:red", alpha=0.08, lw=0)
    ax_label.plot(t, [y[name] for name in result.raw], ".", ms=3, color="tab:blue", alpha=0.5, label="raw")
    ax_label.step(t, [y[name] for name in result.smoothed], where="post", color="tab:orange", lw=1.5, label="smoothed")
    ax_label.set_yticks(range(len(rows)), rows)
    ax_label.set_ylim(-0.7, len(rows) - 0.3)
    ax_label.legend(loc="upper right", fontsize=8, ncol=3)
    ax_label.set_title("label over time (red shading: stress-domain stretches)")
    ax_conf.plot(t, result.raw_confidence, ".", ms=2, color="tab:blue", alpha=0.5, label="raw")
    ax_conf.plot(t, result.smoothed_confidence, color="tab:orange", lw=1.2, label="smoothed")
    thresholds = np.broadcast_to(np.asarray(threshold, np.float64), (len(class_names),))
    if thresholds.min() == thresholds.max():
        ax_conf.axhline(thresholds[0], color="k", ls="--", lw=0.8, label=f"threshold {thresholds[0]:.2f}")
    else:
        index = {name: k for k, name in enumerate(class_names)}
        ax_conf.step(t, thresholds[[index[name] for name in result.raw_top]], where="mid", color="k", ls="--",
                     lw=0.8, label="threshold of the top class")
    ax_conf.set_ylim(0, 1.02)
    ax_conf.set_ylabel("confidence")
    ax_conf.set_xlabel("time (s)")
    ax_conf.legend(loc="lower right", fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summary_table(out: dict) -> str:
    """A readable table of the replay's figures."""
    f, lat = out["frames"], out["latency_ms"]["preprocess_plus_inference"]
    ms = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    pct = lambda v: "-" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    lines = [
        ("source", f"{out['source']['path']} ({out['source']['kind']})"),
        ("model", f"{out['bundle']['bundle_id']} {out['format']} on {out['backend']}, {out['threads']} thread(s)"),
        ("speed", str(out["speed"])),
        ("frames in / sampled / classified", f"{f['in']} / {f['sampled']} / {f['classified']}"),
        ("frames dropped / bad", f"{f['dropped']} / {f['bad']}"),
        ("latency p50 / p90 / p99 (ms)", f"{ms(lat['p50'])} / {ms(lat['p90'])} / {ms(lat['p99'])}"),
        ("throughput", f"{out['throughput_fps']:.1f} frames/s over {out['wall_s']:.2f} s"),
        ("peak RSS", f"{out['peak_rss_mb']:.0f} MB"),
    ]
    if "ratio" in out.get("overhead", {}):
        o = out["overhead"]
        lines.append(("classifier vs bare resize+invoke",
                      f"{o['classifier_ms_p50']:.3f} / {o['bare_ms_p50']:.3f} ms = {o['ratio']:.2f}x"))
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
    for name, ok in out["checks"].items():
        lines.append(("target " + name, "met" if ok else "NOT met"))
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
) -> dict:
    """Replay, then write replay.json, frames.csv and timeline.png into out_dir; returns the report.

    At max speed, `overhead` also measures the classifier against a bare resize+invoke loop (a few seconds).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sampler = sampler or FrameSampler()
    smoother = smoother or LabelSmoother(classifier.class_names, threshold=classifier.threshold,
                                         thresholds=classifier.thresholds)
    result = replay(source, classifier, speed, sampler, smoother, progress)
    rows = None if truth is None else match_truth(result, truth, by_index=source.kind != "rosbag2")
    out = report(result, source, classifier, speed, sampler, smoother, truth, rows, overhead)
    write_frames_csv(result, truth, rows, out_dir / "frames.csv")
    plot_timeline(result, truth, classifier.class_names, classifier.thresholds, out_dir / "timeline.png")
    (out_dir / "replay.json").write_text(json.dumps(out, indent=2) + "\n")
    return out
