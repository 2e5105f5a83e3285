"""Small stream-handling objects shared by replay and the ROS node.

`FrameSampler` decides which frames to classify (max rate and/or every N-th, on the frames' own clocks),
`LatestFrame` hands the newest frame to a consumer without ever queueing stale ones, and `LabelSmoother`
turns per-frame probabilities into a label that changes only when the evidence does.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from glassware.edge_runtime.bundle import UNKNOWN


class FrameSampler:
    """Accept at most `max_rate_hz` frames per second of frame time (0 = no limit) and only every N-th frame.

    Rate limiting follows a schedule (next due = previous due + period) rather than "period since the last
    accepted frame", so camera jitter does not pull a 30 Hz stream limited to 10 Hz down to 7.5 Hz.
    """

    def __init__(self, max_rate_hz: float = 0.0, every_n: int = 1):
        if max_rate_hz < 0 or every_n < 1:
            raise ValueError(f"need max_rate_hz >= 0 and every_n >= 1, got {max_rate_hz}, {every_n}")
        self.max_rate_hz = float(max_rate_hz)
        self.every_n = int(every_n)
        self._period = 1.0 / max_rate_hz if max_rate_hz else 0.0
        self._tolerance = 0.05 * self._period  # stamp jitter and float noise (k/30) must not skip a due frame
        self.reset()

    def reset(self) -> None:
        self._seen = 0
        self._next_due: float | None = None
        self._last: float | None = None

    def accept(self, stamp_s: float) -> bool:
        """True if the frame stamped `stamp_s` (seconds, any epoch) should be classified."""
        self._seen += 1
        if (self._seen - 1) % self.every_n:
            return False
        if not self._period:
            return True
        restarted = self._last is not None and stamp_s < self._last  # bag looped, clock reset
        self._last = stamp_s
        if self._next_due is not None and not restarted and stamp_s < self._next_due - self._tolerance:
            return False
        due = stamp_s if self._next_due is None or restarted else self._next_due
        self._next_due = due + self._period
        if self._next_due <= stamp_s:  # after a gap: restart the schedule instead of bursting to catch up
            self._next_due = stamp_s + self._period
        return True


class LatestFrame:
    """A one-item slot: `put` replaces an item not yet taken (counted in `replaced`); `take` waits for one.

    Nothing queues, so a slow consumer always works on the newest frame. Items must not be None.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._closed = False
        self.received = 0
        self.replaced = 0

    def put(self, item: Any) -> bool:
        """Store `item`; True if it replaced an unprocessed one."""
        with self._cond:
            replaced = self._item is not None
            self._item = item
            self.received += 1
            self.replaced += replaced
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> Any:
        """The newest item, waiting up to `timeout` s (None = forever); None on timeout or once closed and empty."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self._closed, timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        """No more items will come: wake waiting consumers (a pending item can still be taken)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


class LabelSmoother:
    """A recursive Bayesian filter over "which class is in view", answered through a Schmitt trigger.

    Each update first lets the belief leak towards uniform by `change_prob` (the view may have changed),
    then multiplies in the frame's calibrated probabilities raised to `evidence`. Consecutive frames of one
    view are far from independent, so each counts as a fraction of an independent look. Frames that agree
    therefore add up: forty frames at 0.9 give a surer answer than one, which an average of probabilities
    never does; the leak bounds how sure the belief can get and how long old frames count, so a steadily
    uncertain view stays `unknown`. The label is the belief's top class. It is answered once its belief
    reaches `threshold` and stays answered until it falls below `threshold - release_margin`, so a belief
    hovering at the threshold does not flicker between label and unknown. Both rates are per update: with a
    frame sampler, the same settings forget faster in seconds at a higher rate.
    """

    # Chosen on synthetic gripper video from two models and two seeds (README "Measured here"): the most
    # right answers with no confidently wrong one.
    EVIDENCE = 0.3
    CHANGE_PROB = 0.1

    def __init__(
        self,
        class_names: Sequence[str],
        evidence: float = EVIDENCE,
        change_prob: float = CHANGE_PROB,
        threshold: float = 0.5,
        release_margin: float = 0.05,
    ):
        self.class_names = list(class_names)
        self.evidence = evidence
        self.change_prob = change_prob
        self.threshold = float(threshold)
        if release_margin < 0:
            raise ValueError(f"release_margin must be >= 0, got {release_margin}")
        self.release_margin = float(release_margin)
        self.reset()

    @property
    def evidence(self) -> float:
        return self._evidence

    @evidence.setter
    def evidence(self, value: float) -> None:
        if not 0 < value <= 1:
            raise ValueError(f"evidence must be in (0, 1], got {value}")
        self._evidence = float(value)

    @property
    def change_prob(self) -> float:
        return self._change_prob

    @change_prob.setter
    def change_prob(self, value: float) -> None:
        if not 0 < value <= 1:
            raise ValueError(f"change_prob must be in (0, 1] (1 = no memory), got {value}")
        self._change_prob = float(value)

    def reset(self) -> None:
        """Forget the history (e.g. after a gap in the stream)."""
        self._belief: np.ndarray | None = None
        self._answered: int | None = None  # the class last answered (not unknown)

    @property
    def probs(self) -> np.ndarray | None:
        """The belief over classes (a copy), None before the first update."""
        return None if self._belief is None else self._belief.copy()

    def update(self, probs: np.ndarray) -> tuple[str, float]:
        """Fold in one frame's calibrated probabilities; return (label or "unknown", belief in it)."""
        probs = np.asarray(probs, np.float64)
        k = len(self.class_names)
        if probs.shape != (k,):
            raise ValueError(f"expected {k} probabilities, got shape {probs.shape}")
        prior = np.full(k, 1.0 / k) if self._belief is None else self._belief
        prior = (1.0 - self._change_prob) * prior + self._change_prob / k
        log_belief = np.log(prior) + self._evidence * np.log(np.maximum(probs, 1e-12))
        belief = np.exp(log_belief - log_belief.max())
        self._belief = belief / belief.sum()
        top = int(self._belief.argmax())
        confidence = float(self._belief[top])
        bar = self.threshold - self.release_margin if top == self._answered else self.threshold
        if confidence < bar:
            self._answered = None
            return UNKNOWN, confidence
        self._answered = top
        return self.class_names[top], confidence
