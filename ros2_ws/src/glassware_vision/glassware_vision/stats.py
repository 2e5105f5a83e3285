"""Counters and latency percentiles of the classifier node, turned into a diagnostic_msgs status."""

from __future__ import annotations

import math
import threading
import time
from collections import deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

COUNTERS = ("received", "skipped_by_rate", "replaced", "bad", "processed", "stale", "unstamped", "gaps")


class StreamStats:
    """Counts frames through the node and keeps the latest latencies; safe to call from any thread.

    received         messages taken by the subscription
    skipped_by_rate  not classified because of max_rate_hz
    replaced         overwritten in the latest-frame slot before the worker took them (dropped on purpose)
    bad              malformed messages (size/step/encoding mismatch, unknown encoding, corrupt JPEG)
    processed        classified and published
    stale            processed, but older than max_frame_age_ms (or unstamped while it is on): not accepted
    unstamped        processed without a header stamp: left out of the latency figures
    gaps             breaks in the stream's stamps (back, or a pause): the smoother started afresh
    """

    def __init__(self, window: int = 1000):
        self._lock = threading.Lock()
        self.totals = dict.fromkeys(COUNTERS, 0)
        self._latency_ms: deque[float] = deque(maxlen=window)
        self._inference_ms: deque[float] = deque(maxlen=window)
        self._last = (time.monotonic(), dict(self.totals))

    def count(self, counter: str, n: int = 1) -> None:
        with self._lock:
            self.totals[counter] += n

    def processed(self, latency_ms: float, inference_ms: float, stale: bool = False) -> None:
        """One published result; `latency_ms` NaN for a frame without a stamp."""
        with self._lock:
            self.totals["processed"] += 1
            self.totals["stale"] += stale
            if math.isnan(latency_ms):
                self.totals["unstamped"] += 1
            else:
                self._latency_ms.append(latency_ms)
            self._inference_ms.append(inference_ms)

    def report(self) -> dict:
        """Totals, rates since the previous report, and latency percentiles over the last `window` frames."""
        now = time.monotonic()
        with self._lock:
            totals, latency, inference = dict(self.totals), np.array(self._latency_ms), np.array(self._inference_ms)
        then, before = self._last
        self._last = (now, totals)
        elapsed = max(now - then, 1e-9)
        out = dict(totals)
        out["input_rate_hz"] = (totals["received"] - before["received"]) / elapsed
        out["processed_rate_hz"] = (totals["processed"] - before["processed"]) / elapsed
        out["new_bad"] = totals["bad"] - before["bad"]
        for name, values in (("latency", latency), ("inference", inference)):
            for q in (50, 99):
                out[f"{name}_p{q}_ms"] = float(np.percentile(values, q)) if len(values) else float("nan")
        return out


def diagnostic_status(name: str, hardware_id: str, report: dict, extra: dict[str, str], topic: str,
                      stall_s: float) -> DiagnosticStatus:
    """One DiagnosticStatus: ERROR when the frame being classified has waited more than `stall_s` for its result
    (`report["waiting_s"]`: the worker is stuck); WARN when no frame arrived on `topic`, or malformed ones did,
    since the last report; else OK."""
    if report.get("waiting_s", 0.0) > stall_s:
        level = DiagnosticStatus.ERROR
        message = f"stalled: a frame has waited {report['waiting_s']:.1f} s for its result"
    elif report["input_rate_hz"] == 0:
        level, message = DiagnosticStatus.WARN, f"no frames on {topic}"
    elif report["new_bad"]:
        level, message = DiagnosticStatus.WARN, f"{report['new_bad']} malformed frames"
    else:
        level, message = DiagnosticStatus.OK, f"classifying at {report['processed_rate_hz']:.1f} Hz"
    values = {k: _fmt(v) for k, v in report.items() if k != "new_bad"} | extra
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                            values=[KeyValue(key=k, value=v) for k, v in values.items()])


def _fmt(value) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)
