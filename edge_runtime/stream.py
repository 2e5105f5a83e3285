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

from glassware.labels import UNKNOWN


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
    """Exponential moving average of class probabilities with hysteresis.

    The held label switches to a new class only when its smoothed probability beats the held one by
    `switch_margin` on `min_updates` consecutive updates. The held class is answered once its smoothed
    probability reaches `threshold`, or the last `min_updates` frames' each do (then the newest frame's
    counts: the average lags), and stays answered until it falls below `threshold - release_margin` (a
    Schmitt trigger: a confidence hovering at the threshold does not flicker between label and unknown).
    With `thresholds` (one per class, e.g. a bundle's class_thresholds) the held class's own threshold
    applies; `threshold` is then the single figure to report.
    """

    ALPHA = 0.3  # the default weight of the newest frame: replay and the ROS node both start from it

    def __init__(
        self,
        class_names: Sequence[str],
        alpha: float = ALPHA,
        switch_margin: float = 0.1,
        threshold: float = 0.5,
        min_updates: int = 2,
        release_margin: float = 0.05,
        thresholds: Sequence[float] | np.ndarray | None = None,
    ):
        if not 0 < alpha <= 1 or switch_margin < 0 or min_updates < 1 or release_margin < 0:
            raise ValueError(f"need 0 < alpha <= 1, switch_margin >= 0, min_updates >= 1, release_margin >= 0; "
                             f"got {alpha}, {switch_margin}, {min_updates}, {release_margin}")
        self.class_names = list(class_names)
        self.alpha = float(alpha)
        self.switch_margin = float(switch_margin)
        self.threshold = threshold
        if thresholds is not None:
            self.thresholds = thresholds
        self.min_updates = int(min_updates)
        self.release_margin = float(release_margin)
        self.reset()

    def reset(self) -> None:
        """Forget the history (e.g. after a gap in the stream)."""
        self._ema: np.ndarray | None = None
        self._held: int | None = None
        self._candidate: int | None = None
        self._streak = 0
        self._answered: int | None = None  # the class last answered (not unknown)
        self._sure_streak = 0  # consecutive frames alone meeting the held class's threshold

    @property
    def threshold(self) -> float:
        return self._threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        """Set every class's threshold to `value`."""
        self._threshold = float(value)
        self._thresholds = np.full(len(self.class_names), self._threshold)

    @property
    def thresholds(self) -> np.ndarray:
        """The threshold of each class (a copy)."""
        return self._thresholds.copy()

    @thresholds.setter
    def thresholds(self, values: Sequence[float] | np.ndarray) -> None:
        values = np.array(values, np.float64).reshape(-1)
        if values.shape != (len(self.class_names),):
            raise ValueError(f"expected {len(self.class_names)} thresholds, got shape {values.shape}")
        self._thresholds = values

    @property
    def held(self) -> int | None:
        """Index of the class held (the label when answered), None before the first update."""
        return self._held

    @property
    def probs(self) -> np.ndarray | None:
        """The smoothed probabilities (a copy), None before the first update."""
        return None if self._ema is None else self._ema.copy()

    def update(self, probs: np.ndarray) -> tuple[str, float]:
        """Fold in one frame's calibrated probabilities; return (label or "unknown", smoothed confidence)."""
        probs = np.asarray(probs, np.float64)
        if probs.shape != (len(self.class_names),):
            raise ValueError(f"expected {len(self.class_names)} probabilities, got shape {probs.shape}")
        if self._ema is None:
            self._ema = probs.copy()
        else:
            self._ema += self.alpha * (probs - self._ema)
        top = int(self._ema.argmax())
        if self._held is None:
            self._held = top
        elif top != self._held and self._ema[top] >= self._ema[self._held] + self.switch_margin:
            self._streak = self._streak + 1 if top == self._candidate else 1
            self._candidate = top
            if self._streak >= self.min_updates:
                self._held, self._candidate, self._streak, self._sure_streak = top, None, 0, 0
        else:
            self._candidate, self._streak = None, 0
        # The frames' own probability counts when higher: the average's lag must not withhold an answer the
        # frames alone would give for the class already held (a threshold of 0.99 took the moving average ~13
        # frames to reach after each new object, 3.5 % of a video's frames). But `min_updates` frames in a row,
        # as for a switch: one confidently wrong frame of an object coming into view must not be answered.
        threshold = self._thresholds[self._held]
        sure = int(probs.argmax()) == self._held and probs[self._held] >= threshold
        self._sure_streak = self._sure_streak + 1 if sure else 0
        own = probs[self._held] if self._sure_streak >= self.min_updates else 0.0
        confidence = float(max(self._ema[self._held], own))
        bar = threshold - self.release_margin if self._held == self._answered else threshold
        if confidence < bar:
            self._answered = None
            return UNKNOWN, float(self._ema[top])
        self._answered = self._held
        return self.class_names[self._held], confidence
