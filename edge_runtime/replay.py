"""Replay recorded frames through the classifier as the robot would see them, one record per frame.

A reader thread reads the source. At real-time speed (`speed` > 0) it plays the camera: it releases frames
on their own timestamps into a `LatestFrame` slot and the classifier takes what it can; frames replaced
before it got to them are `dropped`, exactly as on the robot. At `max` speed (speed=None) the reader also
preprocesses, so on two cores preprocessing overlaps inference; every sampled frame is classified as fast
as possible (throughput). Scoring against ground truth and the replay.json built from the records are
evaluation's (`glassware.evaluation.replay`).

Frame counts: `in` = frames the source presented (read + unreadable), `unreadable` = frames
the source could not read, `sampled` = read frames the sampler accepted, `classified`, `dropped`,
`bad` = unreadable + sampled frames the classifier rejected (wrong size/encoding, undecodable);
so sampled = classified + dropped + (bad - unreadable).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from glassware.edge_runtime.classifier import Classifier
from glassware.edge_runtime.collect import FrameCollector
from glassware.edge_runtime.sources import Frame, FrameSource
from glassware.edge_runtime.stream import FrameSampler, LabelSmoother, LatestFrame
from glassware.errors import FrameFormatError, ImageDecodeError

log = logging.getLogger(__name__)

OVERHEAD_FRAMES = 32  # raw frames kept for evaluation's overhead figure
LOGGED_BAD_FRAMES = 10  # the rest are only counted (and listed in replay.json)


@dataclass(frozen=True)
class FrameRecord:
    """What happened to one classified frame."""

    index: int | None  # the source's frame number (None where the source has none)
    time_s: float  # relative to the first frame
    raw: str  # this frame's answer: a class or `unknown`
    raw_top: str  # this frame's most probable class, answered or not
    raw_confidence: float
    smoothed: str  # the answer after the LabelSmoother
    smoothed_confidence: float
    preprocess_ms: float
    inference_ms: float
    novelty: float = math.nan  # open-set score, NaN without one
    end_to_end_ms: float | None = None  # camera stamp -> answer received, where measured (the ROS graph)


@dataclass
class ReplayResult:
    """A replay: one record per classified frame, and the frames that were not classified."""

    records: list[FrameRecord] = field(default_factory=list)
    bad: list[dict] = field(default_factory=list)
    read: int = 0
    sampled: int = 0
    dropped: int = 0
    wall_s: float = 0.0
    sample_frames: list[Frame] = field(default_factory=list)  # the first raw frames, for the overhead figure


def replay(
    source: FrameSource,
    classifier: Classifier,
    speed: float | None = 1.0,
    sampler: FrameSampler | None = None,
    smoother: LabelSmoother | None = None,
    progress: bool = True,
    collector: FrameCollector | None = None,
) -> ReplayResult:
    """Run the source through sampler, classifier and smoother; speed None = as fast as possible. Every
    classified frame is offered to the `collector`, if given, as on the robot."""
    sampler = sampler or FrameSampler()
    smoother = smoother or LabelSmoother(classifier.class_names, threshold=classifier.threshold,
                                         thresholds=classifier.thresholds)
    result = ReplayResult()
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
        if collector is not None:
            collector.offer(frame.data, p, classifier.class_names, encoding=frame.encoding, stamp_s=frame.stamp_s,
                            frame_index=frame.index, bundle_id=classifier.bundle.bundle_id, source=str(source.path))
        result.records.append(FrameRecord(
            frame.index, frame.stamp_s - first_stamp[0], p.label, classifier.class_names[p.class_index],
            p.confidence, label, confidence, p.preprocess_ms, p.inference_ms, p.novelty))

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
