"""Recorded frames for replay: a video file, a folder of images, or a rosbag2 (sqlite3 or mcap).

Every source yields `Frame(stamp_s, data, encoding, index)`: `data` is a raw frame (numpy, with its ROS
encoding) or encoded image bytes (encoding = the compressed format, e.g. "jpeg"). Unreadable parts are
skipped and listed in `source.problems` (with the number of frames lost when known), never raised
mid-stream; a source that cannot be opened at all raises `SourceError`.
"""

from __future__ import annotations

import logging
import mmap
import shutil
import sqlite3
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from glassware.errors import FrameFormatError, GlasswareError
from glassware.preprocessing import IMAGE_SUFFIXES, frame_from_buffer

log = logging.getLogger(__name__)

IMAGE_MSG = "sensor_msgs/msg/Image"
COMPRESSED_MSG = "sensor_msgs/msg/CompressedImage"
BAG_SUFFIXES = (".db3", ".mcap")


class SourceError(GlasswareError):
    """A replay source that is missing or cannot be opened at all."""


def image_topic(path: Path | str, topics: dict[str, str], wanted: str | None = None, option: str = "--topic") -> str:
    """The camera topic of a bag with `topics` {name: message type}: `wanted` if given, else its only Image or
    CompressedImage topic. Several image topics are an error listing them: guessing could replay the wrong camera
    without anyone noticing, while naming one with `option` costs a single re-run."""
    images = sorted(name for name, msgtype in topics.items() if msgtype in (IMAGE_MSG, COMPRESSED_MSG))
    if wanted:
        if wanted not in images:
            raise SourceError(f"{path}: no Image/CompressedImage topic {wanted!r}; image topics: {images or 'none'}")
        return wanted
    if not images:
        raise SourceError(f"{path}: no Image or CompressedImage topic; topics: {sorted(topics) or 'none'}")
    if len(images) > 1:
        raise SourceError(f"{path}: {len(images)} image topics {images}; choose one with {option}")
    return images[0]


class Frame(NamedTuple):
    stamp_s: float  # the frame's own clock (video: index / fps; bag: header stamp)
    data: np.ndarray | bytes  # raw frame (H, W, C) or encoded image bytes
    encoding: str  # ROS encoding of a raw frame ("bgr8", ...) or compressed format ("jpeg", "png")
    index: int  # position in the source, counting unreadable frames


class FrameSource:
    """Base: iterate for frames; `problems` lists what could not be read."""

    kind = "?"

    def __init__(self, path: Path):
        self.path = path
        self.expected: int | None = None  # frames the source declares, when it does
        self.problems: list[dict] = []

    def __iter__(self) -> Iterator[Frame]:
        self.problems = []  # each pass reports its own
        yield from self._frames()

    def _frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def _problem(self, where: str, reason: str, frames: int | None) -> None:
        log.warning("%s: %s: %s", self.path, where, reason)
        self.problems.append({"where": where, "reason": reason, "frames": frames})


def open_source(path: str | Path, topic: str | None = None, fps: float = 30.0) -> FrameSource:
    """Pick the source type from the path: a bag (folder with metadata.yaml, .db3, .mcap), an image folder, a video."""
    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder")
    if (path / "metadata.yaml").is_file() or path.suffix.lower() in BAG_SUFFIXES:
        return RosbagSource(path, topic)
    if path.is_dir():
        return ImageFolderSource(path, fps)
    return VideoSource(path)


class VideoSource(FrameSource):
    """Any file OpenCV/FFmpeg reads; frames are bgr8, stamped index / fps."""

    kind = "video"

    def __init__(self, path: Path):
        super().__init__(path)
        capture = self._open()
        self.fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.expected = count if count > 0 else None
        capture.release()

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            raise SourceError(f"{self.path}: cannot open video ({_why_unopenable(self.path)})")
        return capture

    def _frames(self) -> Iterator[Frame]:
        capture = self._open()
        index = 0
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                yield Frame(index / self.fps, frame, "bgr8", index)
                index += 1
        finally:
            capture.release()
        if self.expected and index < self.expected:
            self._problem(f"frames {index}..{self.expected - 1}", "unreadable (video truncated or corrupt)",
                          self.expected - index)


def _why_unopenable(path: Path) -> str:
    if path.stat().st_size == 0:
        return "empty file"
    atoms = _mp4_atoms(path)
    if atoms and b"moov" not in atoms:
        # MP4 keeps its frame index ('moov') at the end: a recording cut before it was finalised has none.
        return "MP4 without its 'moov' index: the recording was cut before it was finalised, no frame can be located"
    return "not a video format OpenCV/FFmpeg can read, or corrupt"


def _mp4_atoms(path: Path) -> list[bytes]:
    """Types of the complete top-level MP4 atoms ([] if the file is not an MP4)."""
    atoms, pos, end = [], 0, path.stat().st_size
    with open(path, "rb") as f:
        while pos + 8 <= end:
            f.seek(pos)
            size, kind = struct.unpack(">I4s", f.read(8))
            if size == 1:  # 64-bit size follows
                size = struct.unpack(">Q", f.read(8))[0]
            if (not atoms and kind != b"ftyp") or size < 8 or pos + size > end:
                break
            atoms.append(kind)
            pos += size
    return atoms


class ImageFolderSource(FrameSource):
    """Image files under a folder (recursively, sorted by path), as encoded bytes stamped index / fps."""

    kind = "images"

    def __init__(self, path: Path, fps: float = 30.0):
        super().__init__(path)
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.fps = fps
        self.files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.files:
            raise SourceError(f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)})")
        self.expected = len(self.files)

    def _frames(self) -> Iterator[Frame]:
        for index, file in enumerate(self.files):
            try:
                data = file.read_bytes()
            except OSError as e:
                self._problem(str(file.relative_to(self.path)), f"cannot read ({e.strerror or e})", 1)
                continue
            yield Frame(index / self.fps, data, file.suffix.lower().lstrip("."), index)


class RosbagSource(FrameSource):
    """One Image or CompressedImage topic of a rosbag2 (folder, .db3 or .mcap), read with `rosbags`.

    A bag rosbags cannot open (cut off while recording, damaged) is salvaged: its storage files are scanned
    from the start and every complete message before the damage is replayed.
    """

    kind = "rosbag2"

    def __init__(self, path: Path, topic: str | None = None):
        from rosbags.rosbag2 import Reader, ReaderError
        from rosbags.typesys import Stores, get_typestore

        super().__init__(path)
        self._typestore = get_typestore(Stores.LATEST)
        self.damage: str | None = None
        try:
            with Reader(path) as reader:
                topics = {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}
        except ReaderError as e:
            self.damage = str(e)
            topics = {name: (msgtype, 0) for name, msgtype, _, _ in self._salvaged(topics_only=True)}
        self.topic = image_topic(path, {name: msgtype for name, (msgtype, _) in topics.items()}, topic)
        self.msgtype = topics[self.topic][0]
        self.expected = None if self.damage else topics[self.topic][1]

    def _frames(self) -> Iterator[Frame]:
        index = -1
        for index, (stamp_ns, raw) in enumerate(self._messages()):
            try:
                yield self._frame(raw, stamp_ns, index)
            except FrameFormatError as e:
                self._problem(f"message {index}", str(e), 1)
            except Exception as e:  # undecodable CDR: rosbags raises assorted types for malformed bytes
                self._problem(f"message {index}", f"not a valid {self.msgtype} ({type(e).__name__}: {e})", 1)
        lost = None if self.expected is None else self.expected - index - 1
        if self.damage:
            self._problem(f"after message {index}", f"bag damaged ({self.damage}); the rest is unreadable", lost)
        elif lost:
            self._problem(f"messages {index + 1}..{self.expected - 1}", "unreadable (bag truncated or corrupt)", lost)

    def _messages(self) -> Iterator[tuple[int, bytes]]:
        if self.damage:
            yield from ((ns, raw) for topic, _, ns, raw in self._salvaged() if topic == self.topic)
            return
        from rosbags.rosbag2 import Reader, ReaderError

        with Reader(self.path) as reader:
            connections = [c for c in reader.connections if c.topic == self.topic]
            try:
                for _, stamp_ns, raw in reader.messages(connections=connections):
                    yield stamp_ns, raw
            except (ReaderError, sqlite3.DatabaseError) as e:  # damage found mid-way: keep what was read
                self.damage = str(e)

    def _frame(self, raw: bytes, stamp_ns: int, index: int) -> Frame:
        msg = self._typestore.deserialize_cdr(raw, self.msgtype)
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9 or stamp_ns * 1e-9  # unset header: record time
        if self.msgtype == COMPRESSED_MSG:
            return Frame(stamp, msg.data.tobytes(), msg.format, index)
        frame = frame_from_buffer(msg.data, msg.height, msg.width, msg.step, msg.encoding)
        if msg.is_bigendian and frame.dtype.itemsize > 1:
            frame = frame.byteswap()
        return Frame(stamp, frame, msg.encoding, index)

    def _salvaged(self, topics_only: bool = False) -> Iterator[tuple[str, str, int, bytes]]:
        """(topic, msgtype, stamp_ns, raw) for every complete message in the storage files, in file order;
        with topics_only, (topic, msgtype, 0, b"") once per topic instead."""
        if self.path.is_file():
            files = [self.path]
        else:
            files = sorted(p for p in self.path.iterdir() if p.suffix in BAG_SUFFIXES)
        for file in files:
            salvage = _salvage_sqlite if file.suffix == ".db3" else _salvage_mcap
            yield from salvage(file, topics_only)


def _salvage_sqlite(file: Path, topics_only: bool) -> Iterator[tuple[str, str, int, bytes]]:
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / file.name
        shutil.copyfile(file, copy)
        with open(copy, "r+b") as f:  # zero the header's page count: SQLite then trusts the (cut) file size
            f.seek(28)
            f.write(b"\0\0\0\0")
        db = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
        try:
            topics = {i: (name, msgtype) for i, name, msgtype in db.execute("SELECT id, name, type FROM topics")}
            if topics_only:
                yield from ((name, msgtype, 0, b"") for name, msgtype in topics.values())
                return
            for topic_id, stamp_ns, raw in db.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY id"):
                if topic_id in topics:
                    yield *topics[topic_id], stamp_ns, raw
        except sqlite3.DatabaseError as e:
            log.debug("%s: readable up to here (%s)", file, e)
        finally:
            db.close()


def _salvage_mcap(file: Path, topics_only: bool) -> Iterator[tuple[str, str, int, bytes]]:
    from rosbags.rosbag2 import ReaderError

    with open(file, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        view = memoryview(data)
        try:
            yield from _mcap_records(view[8:], {}, {}, topics_only)  # after the 8-byte magic
        except (ValueError, struct.error, ReaderError) as e:  # garbage where a record should be
            log.debug("%s: readable up to here (%s)", file, e)
        finally:
            view.release()


def _mcap_records(buf: memoryview, schemas: dict, channels: dict, topics_only: bool):
    """Walk MCAP records (op u8, length u64, body) until the data ends or a record is cut off; yield messages
    (or, with topics_only, channels). A cut uncompressed chunk still gives the complete messages inside it."""
    pos = 0
    while pos + 9 <= len(buf):
        op, size = buf[pos], int.from_bytes(buf[pos + 1 : pos + 9], "little")
        body = buf[pos + 9 : pos + 9 + size]
        pos += 9 + size
        complete = len(body) == size
        if op == 0x06 and len(body) >= 40:  # chunk: times, sizes, crc, compression, records
            compression = _mcap_string(body, 28)
            start = 32 + len(compression) + 8
            records = body[start : start + int.from_bytes(body[start - 8 : start], "little")]
            if compression == "":
                yield from _mcap_records(records, schemas, channels, topics_only)
            elif complete:
                from rosbags.rosbag2.storage_mcap import decompress

                uncompressed_size, crc = struct.unpack_from("<QI", body, 16)
                raw = decompress(bytes(records), compression, uncompressed_size, crc)
                yield from _mcap_records(memoryview(raw), schemas, channels, topics_only)
        elif not complete:
            return
        elif op == 0x03:  # schema: id u16, name
            schemas[struct.unpack_from("<H", body)[0]] = _mcap_string(body, 2)
        elif op == 0x04:  # channel: id u16, schema id u16, topic
            channel, schema = struct.unpack_from("<HH", body)
            channels[channel] = (_mcap_string(body, 4), schemas.get(schema, ""))
            if topics_only:
                yield *channels[channel], 0, b""
        elif op == 0x05 and size >= 22 and not topics_only:  # message: channel u16, sequence u32, log time u64
            channel, _, stamp_ns = struct.unpack_from("<HIQ", body)
            if channel in channels:
                yield *channels[channel], stamp_ns, bytes(body[22:])
        if not complete:
            return


def _mcap_string(body: memoryview, offset: int) -> str:
    length = int.from_bytes(body[offset : offset + 4], "little")
    return bytes(body[offset + 4 : offset + 4 + length]).decode()
