"""Keep the frames the robot is unsure of, for a person to label: JPEG + JSON sidecar per kept frame.

`FrameCollector.offer(...)` is called from the classifying thread with each frame and its `Prediction`. It
decides cheaply whether the frame is wanted (answered `unknown`, or drawn for auditing from the accepted
ones), applies the rate limit on the frames' own timestamps, and hands the frame to a bounded queue: when
the queue is full the frame is dropped and counted, so the classifier never waits. A writer thread then
skips near-duplicates of recently kept frames (64-bit dHash, Hamming distance), makes room under the disk
bound (the oldest kept frames go first), and writes the JPEG and then its sidecar, each atomically (a
temporary file and `os.replace`). A JPEG without a sidecar is an incomplete write: readers ignore it.

Counters (`counters()`, readable at any time; each is written by one thread only):
    offered = not_selected + skipped_rate + dropped_queue_full + queued,
    queued = kept + skipped_duplicate + errors (+ the frames still pending in the queue).
`deleted_for_space` counts old frames removed to stay under the bound; `errors` counts frames that could not
be written (disk full, unwritable folder, a frame that is not an image), each logged.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import random
import re
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from glassware.edge_runtime.classifier import Prediction
from glassware.errors import FrameFormatError, GlasswareError, ImageDecodeError
from glassware.preprocessing import decode_image, frame_to_rgb

log = logging.getLogger(__name__)

SCHEMA = "glassware-collect/1"
KEPT_UNKNOWN, KEPT_AUDIT = "unknown", "audit"
# A kept frame's file stem: UTC time of writing and a sequence number, so names sort oldest first.
_STEM = r"\d{8}-\d{6}-\d{6}-\d{4}"
STEM = re.compile(f"^{_STEM}$")
TMP = re.compile(rf"^\.{_STEM}\.(jpg|json)\.tmp$")  # write_atomic's temporary files, for our names
LOGGED_ERRORS = 10  # then every 100th, so a full disk does not flood the log


class CollectError(GlasswareError):
    """A collect folder that cannot be created or read."""


@dataclass(frozen=True)
class _Offer:
    frame: np.ndarray | bytes
    encoding: str
    prediction: Prediction
    class_names: Sequence[str]
    reason: str
    meta: dict


def dhash(grey: np.ndarray) -> int:
    """64-bit difference hash of a grey image: which of each pair of neighbouring pixels is brighter, on a
    9x8 thumbnail. Near-identical frames differ in a few bits; small shifts and noise barely change it."""
    small = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    return int.from_bytes(np.packbits(small[:, 1:] > small[:, :-1]).tobytes(), "big")


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


class FrameCollector:
    """Collect `unknown` frames (and an audit share of accepted ones) into `out_dir`; see the module doc.

    out_dir: created if missing; CollectError if that fails. Frames already there count towards `max_mb`.
    audit_share: share of accepted frames kept for auditing (0..1).
    max_rate_hz: at most this many kept frames per second of frame time (0 = no limit).
    max_mb: disk bound of the kept frames (JPEGs + sidecars) in megabytes.
    duplicate_bits: a frame whose dHash is within this many bits of one of the `recent` kept frames is
        skipped (-1 = keep duplicates).
    queue_size: frames waiting for the writer; beyond it, frames are dropped (and counted).
    """

    def __init__(self, out_dir: str | Path, audit_share: float = 0.02, max_rate_hz: float = 2.0,
                 max_mb: float = 500.0, duplicate_bits: int = 5, recent: int = 64, queue_size: int = 8,
                 jpeg_quality: int = 90, seed: int | None = None):
        if not 0.0 <= audit_share <= 1.0:
            raise ValueError(f"audit_share must be in [0, 1], got {audit_share}")
        if max_rate_hz < 0 or max_mb <= 0 or queue_size < 1 or recent < 1:
            raise ValueError("max_rate_hz must be >= 0, max_mb > 0, queue_size and recent >= 1")
        self.out_dir = Path(out_dir)
        self.audit_share, self.max_rate_hz, self.max_mb = audit_share, max_rate_hz, max_mb
        self.duplicate_bits, self.jpeg_quality = duplicate_bits, jpeg_quality
        self.last_error: str | None = None  # the latest write error, for diagnostics
        self._counts = dict.fromkeys(("offered", "not_selected", "skipped_rate", "dropped_queue_full", "kept",
                                      "skipped_duplicate", "deleted_for_space", "errors"), 0)
        self._random = random.Random(seed)
        self._last_stamp: float | None = None
        self._queue: queue.Queue[_Offer | None] = queue.Queue(maxsize=queue_size)
        self._recent: deque[int] = deque(maxlen=recent)
        self._sequence = 0
        self._closed = False
        self._on_disk = self._scan()  # stem -> bytes, oldest first
        self._bytes = sum(self._on_disk.values())
        self._writer = threading.Thread(target=self._write_loop, name="frame-collector", daemon=True)
        self._writer.start()

    # --- the classifying thread ---------------------------------------------------------------------------

    def offer(self, frame: np.ndarray | bytes, prediction: Prediction, class_names: Sequence[str], *,
              encoding: str = "rgb8", stamp_s: float | None = None, frame_index: int | None = None,
              frame_id: str = "", bundle_id: str = "", source: str = "") -> bool:
        """Offer a classified frame; True if it was queued for writing. Never blocks, never raises on disk
        trouble. `frame`: a raw frame with its ROS `encoding` ("rgb8", "bgr8", "mono8", ...) or encoded image
        bytes (encoding ignored); the collector keeps a reference, so do not modify it afterwards.
        `stamp_s`: the frame's time (rate limit and sidecar; None = now), `frame_index`: its number in a
        recording, `frame_id`: the camera frame of a ROS header."""
        if self._closed:
            return False
        self._counts["offered"] += 1
        if not prediction.accepted:
            reason = KEPT_UNKNOWN
        elif self._random.random() < self.audit_share:
            reason = KEPT_AUDIT
        else:
            self._counts["not_selected"] += 1
            return False
        stamp = time.monotonic() if stamp_s is None else stamp_s
        # a stamp going back (a new recording, a clock reset) starts the rate limit afresh
        if self.max_rate_hz and self._last_stamp is not None and 0 <= stamp - self._last_stamp < 1 / self.max_rate_hz:
            self._counts["skipped_rate"] += 1
            return False
        meta = {"stamp_s": stamp_s, "frame_index": frame_index, "frame_id": frame_id, "bundle_id": bundle_id,
                "source": source}
        try:
            self._queue.put_nowait(_Offer(frame, encoding, prediction, class_names, reason, meta))
        except queue.Full:
            self._counts["dropped_queue_full"] += 1
            return False
        self._last_stamp = stamp
        return True

    def counters(self) -> dict[str, int]:
        """A snapshot of the counters (see the module doc), and `pending`: frames waiting in the queue."""
        return {**self._counts, "pending": self._queue.qsize()}

    def flush(self) -> None:
        """Wait until every queued frame is written (or counted as skipped or failed)."""
        self._queue.join()

    def close(self) -> None:
        """Write what is queued, then stop the writer. Later offers are ignored."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._writer.join()

    def __enter__(self) -> FrameCollector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the writer thread --------------------------------------------------------------------------------

    def _write_loop(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._keep(item)
            except (OSError, ImageDecodeError, FrameFormatError, ValueError) as e:
                self._error(f"frame at {item.meta['stamp_s']} s not kept: {e}")
            except Exception as e:  # the writer must outlive any one frame
                log.exception("collector: unexpected error")
                self._error(f"unexpected {type(e).__name__}: {e}")
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def _keep(self, item: _Offer) -> None:
        jpeg, grey = self._encode(item.frame, item.encoding)
        fingerprint = dhash(grey)
        if self.duplicate_bits >= 0 and any(hamming(fingerprint, h) <= self.duplicate_bits for h in self._recent):
            self._counts["skipped_duplicate"] += 1
            return
        stem = self._new_stem()
        sidecar = json.dumps(self._sidecar(item, stem, fingerprint, grey.shape), indent=1).encode()
        size = len(jpeg) + len(sidecar)
        if size > self.max_mb * 1e6:
            raise ValueError(f"{size} bytes is more than the disk bound ({self.max_mb} MB)")
        self._make_room(size)
        image = self.out_dir / f"{stem}.jpg"
        write_atomic(image, jpeg)
        try:
            write_atomic(self.out_dir / f"{stem}.json", sidecar)  # last: it marks the frame complete
        except OSError:
            image.unlink(missing_ok=True)  # not left behind uncounted
            raise
        self._on_disk[stem] = size
        self._bytes += size
        self._recent.append(fingerprint)
        self._counts["kept"] += 1

    def _encode(self, frame: np.ndarray | bytes, encoding: str) -> tuple[bytes, np.ndarray]:
        """(JPEG bytes, grey image): encoded JPEG input is kept as it came, anything else is (re-)encoded."""
        if isinstance(frame, np.ndarray) and frame.ndim >= 2:
            rgb, jpeg = frame_to_rgb(frame, encoding), None
        else:
            jpeg = bytes(frame)
            rgb = decode_image(jpeg)
            if not jpeg.startswith(b"\xff\xd8"):
                jpeg = None
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        if jpeg is None:
            ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if not ok:
                raise ValueError("JPEG encoding failed")
            jpeg = buf.tobytes()
        return jpeg, cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)

    def _sidecar(self, item: _Offer, stem: str, fingerprint: int, shape: tuple) -> dict:
        p, names = item.prediction, item.class_names
        return {
            "schema": SCHEMA, "image": f"{stem}.jpg", "kept": item.reason, **item.meta,
            "raw_label": p.label, "top_class": names[p.class_index], "confidence": round(float(p.confidence), 6),
            "accepted": p.accepted, "refused": p.refused,
            "novelty": None if math.isnan(p.novelty) else round(float(p.novelty), 6),
            "scores": {name: round(float(s), 6) for name, s in zip(names, p.scores)},
            "dhash": f"{fingerprint:016x}", "width": shape[1], "height": shape[0],
            "saved_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        }

    def _new_stem(self) -> str:
        self._sequence = (self._sequence + 1) % 10000
        return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S-%f}-{self._sequence:04d}"

    def _make_room(self, size: int) -> None:
        """Delete the oldest kept frames until `size` more bytes fit under the bound."""
        while self._on_disk and self._bytes + size > self.max_mb * 1e6:
            stem = next(iter(self._on_disk))
            for suffix in (".json", ".jpg"):  # the sidecar first: a JPEG alone is already ignored
                (self.out_dir / f"{stem}{suffix}").unlink(missing_ok=True)
            self._bytes -= self._on_disk.pop(stem)
            self._counts["deleted_for_space"] += 1

    def _error(self, message: str) -> None:
        self._counts["errors"] += 1
        self.last_error = message
        n = self._counts["errors"]
        if n <= LOGGED_ERRORS or n % 100 == 0:
            log.warning("collector %s: %s (%d errors so far)", self.out_dir, message, n)

    def _scan(self) -> dict[str, int]:
        """The frames already kept in out_dir (by stem, oldest first), their hashes as the recent ones, and
        no leftover temporary files."""
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            on_disk: dict[str, int] = {}
            for path in sorted(self.out_dir.iterdir()):
                if TMP.match(path.name):
                    path.unlink()  # an interrupted write of ours
                elif STEM.match(path.stem) and path.suffix in (".jpg", ".json"):
                    on_disk[path.stem] = on_disk.get(path.stem, 0) + path.stat().st_size
        except OSError as e:
            raise CollectError(f"collect folder {self.out_dir}: {e.strerror or e}") from e
        for stem in list(on_disk)[-self._recent.maxlen:]:
            try:
                self._recent.append(int(json.loads((self.out_dir / f"{stem}.json").read_text())["dhash"], 16))
            except (OSError, ValueError, KeyError, TypeError):
                pass  # no usable sidecar: an incomplete frame, not a reason to stop collecting
        return dict(sorted(on_disk.items()))


def collected_frames(out_dir: str | Path) -> tuple[list[tuple[Path, dict]], list[dict]]:
    """The complete frames in a collect folder, oldest first: [(JPEG path, sidecar)], and the problems
    [{"path", "reason"}] (a sidecar that is not JSON, a sidecar without its JPEG). A JPEG without a sidecar
    is a write in progress (or interrupted) and is left out without a problem."""
    frames, problems = [], []
    for sidecar in sorted(Path(out_dir).glob("*.json")):
        if not STEM.match(sidecar.stem):
            continue  # not one of ours (e.g. the label page's state)
        image = sidecar.with_suffix(".jpg")
        try:
            meta = json.loads(sidecar.read_text())
        except FileNotFoundError:
            continue  # deleted since the listing (the collector making room)
        except (OSError, ValueError) as e:
            problems.append({"path": sidecar.name, "reason": f"unreadable sidecar: {e}"})
            continue
        if not isinstance(meta, dict):
            problems.append({"path": sidecar.name, "reason": "unreadable sidecar: not a JSON object"})
            continue
        if not image.is_file():
            problems.append({"path": sidecar.name, "reason": f"{image.name} is missing"})
            continue
        frames.append((image, meta))
    return frames, problems


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see all of it or nothing, even after a crash or power loss."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
