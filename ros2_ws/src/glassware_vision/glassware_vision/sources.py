"""Recorded camera streams for the replay publisher.

Videos and image folders come from `glassware.edge_runtime.sources` (the same reader `glassware replay` uses).
rosbag2 files are read here as ROS messages, so a replay republishes exactly what was recorded: the header
(stamp and frame_id) and, for CompressedImage, the encoded bytes untouched. The edge runtime's RosbagSource
turns a bag into frames for a classifier instead (an array or bytes and a float stamp, no frame_id).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from glassware.edge_runtime.sources import BAG_SUFFIXES, COMPRESSED_MSG, IMAGE_MSG, SourceError, image_topic
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CompressedImage, Image

IMAGE_TYPES = {IMAGE_MSG: Image, COMPRESSED_MSG: CompressedImage}


def is_bag(path: str | Path) -> bool:
    """rosbag2 = a folder with metadata.yaml, or a single .db3/.mcap file."""
    path = Path(path)
    return (path / "metadata.yaml").is_file() or path.suffix in BAG_SUFFIXES


def bag_topic(path: str | Path, topic: str = "") -> str:
    """The image topic to replay: `topic`, or the bag's only Image/CompressedImage topic (the edge runtime's rule)."""
    with _open_bag(path) as reader:
        topics = {c.topic: c.msgtype for c in reader.connections}
    return image_topic(path, topics, topic, option="the bag_topic parameter")


def bag_messages(path: str | Path, topic: str) -> Iterator[tuple[float, Image | CompressedImage]]:
    """(seconds from the first message by record time, deserialized message) for every message on `topic`."""
    with _open_bag(path) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        msg_type = IMAGE_TYPES[connections[0].msgtype]
        first = None
        for _, log_time_ns, raw in reader.messages(connections=connections):
            first = log_time_ns if first is None else first
            yield (log_time_ns - first) / 1e9, deserialize_message(raw, msg_type)


@contextmanager
def _open_bag(path: str | Path):
    from rosbags.rosbag2 import Reader, ReaderError

    try:
        reader = Reader(Path(path))
        reader.open()
    except (ReaderError, OSError) as e:
        raise SourceError(f"{path}: not a readable rosbag2 ({e})") from e
    try:
        yield reader
    finally:
        reader.close()
