"""replay_publisher: a video, an image folder or a rosbag2 published as a camera on `image`, at the recorded rate or N x.

Publishes reliable (REP-2003: camera drivers do), so both best-effort and reliable subscribers match. Video
frames are stamped at publish time; bag frames keep their recorded stamps or are re-stamped (`restamp`).
"""

from __future__ import annotations

import array
import sys
import threading
import time

import cv2
from glassware.edge_runtime.sources import open_source
from glassware.errors import GlasswareError, ImageDecodeError
from glassware.preprocessing import decode_image, frame_to_rgb
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.duration import Duration
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from glassware_vision.messages import bgr_of, compressed_msg, image_msg
from glassware_vision.sources import bag_messages, bag_topic, is_bag
from glassware_vision.spin import run_node

PROGRESS_PERIOD_S = 5.0
ACK_TIMEOUT_S = 5.0


class ReplayPublisher(Node):
    def __init__(self) -> None:
        super().__init__("replay_publisher")

        def param(name, default, description, **extra):
            return self.declare_parameter(name, default, ParameterDescriptor(
                description=description, read_only=True, **extra)).value

        self.source = param("source", "", "video file (.mp4, .avi, ...), folder of images, or rosbag2 (folder, .db3 or .mcap)")
        self.speed = param("speed", 1.0, "1.0 = recorded rate, 2.0 = twice as fast, 0 = as fast as possible",
                           floating_point_range=[FloatingPointRange(from_value=0.0, to_value=1000.0, step=0.0)])
        self.compressed = param("compressed", False, "publish sensor_msgs/CompressedImage (JPEG) instead of Image")
        self.jpeg_quality = param("jpeg_quality", 90, "JPEG quality when compressing",
                                  integer_range=[IntegerRange(from_value=1, to_value=100, step=1)])
        self.loop = param("loop", False, "start again at the end instead of exiting")
        self.frame_id = param("frame_id", "", "header.frame_id; empty = the bag's own, or 'camera' for a video")
        self.restamp = param("restamp", True, "bags: stamp with the publish time (false: keep recorded stamps)")
        self.bag_topic = param("bag_topic", "", "bags: the image topic to replay; empty = the bag's only one")
        self.wait_for_subscribers = param("wait_for_subscribers", 0, "wait until this many subscribers match")
        self.wait_timeout_s = param("wait_timeout_s", 10.0, "give up waiting for subscribers after this long")
        if not self.source:
            raise GlasswareError("parameter 'source' is not set: pass -p source:=/path/to/video.mp4 or a bag")
        if is_bag(self.source):
            self.bag_topic, self.recorded = bag_topic(self.source, self.bag_topic), None
        else:
            self.recorded = open_source(self.source)  # a video or an image folder; SourceError if unreadable
        self.publisher = self.create_publisher(CompressedImage if self.compressed else Image, "image", 10)
        self.stopped = threading.Event()
        self.context.on_shutdown(self.stopped.set)
        self.published = 0

    def run(self) -> None:
        """Publish until the end of the source (every pass with `loop`), SIGINT/SIGTERM or shutdown."""
        self._wait_for_subscribers()
        t0 = time.monotonic()
        while self._running():
            self._replay_once()
            if not self.loop:
                break
        elapsed = time.monotonic() - t0
        # Reliable subscribers may not have the last frames yet: exiting now would lose them (a short bag
        # replayed flat out was seen to lose all five of its frames).
        if self._running() and not self.publisher.wait_for_all_acked(Duration(seconds=ACK_TIMEOUT_S)):
            self.get_logger().warning(f"not every subscriber acknowledged the last frames within {ACK_TIMEOUT_S} s")
        for problem in getattr(self.recorded, "problems", []):
            self.get_logger().warning(f"{self.source}: {problem['where']}: {problem['reason']}")
        self.get_logger().info(f"published {self.published} frames in {elapsed:.1f} s "
                               f"({self.published / max(elapsed, 1e-9):.1f} frames/s)")

    def _replay_once(self) -> None:
        start, last_report = time.monotonic(), time.monotonic()
        for t_s, frame in self._frames():
            if self.speed > 0 and self.stopped.wait(max(start + t_s / self.speed - time.monotonic(), 0.0)):
                return
            if not self._running():
                return
            try:
                message = self._message(frame)
            except ImageDecodeError as e:  # a corrupt file in an image folder
                self.get_logger().warning(f"skipped an unreadable frame: {e}", throttle_duration_sec=5.0)
                continue
            try:
                self.publisher.publish(message)
            except Exception:
                if not self._running():
                    return  # shut down between the check above and this publish
                raise
            self.published += 1
            if time.monotonic() - last_report > PROGRESS_PERIOD_S:
                last_report = time.monotonic()
                self.get_logger().info(f"published {self.published} frames")

    def _running(self) -> bool:
        # a signal shuts the context down in C before Python's on_shutdown callbacks run: ask both
        return not self.stopped.is_set() and self.context.ok()

    def _frames(self):
        if self.recorded is None:
            return bag_messages(self.source, self.bag_topic)
        return ((frame.stamp_s, frame) for frame in self.recorded)

    def _message(self, frame) -> Image | CompressedImage:
        now = self.get_clock().now().to_msg()
        if isinstance(frame, (Image, CompressedImage)):  # from a bag
            header = Header(stamp=now if self.restamp else frame.header.stamp,
                            frame_id=self.frame_id or frame.header.frame_id)
            if isinstance(frame, CompressedImage) == self.compressed:
                frame.header = header
                return frame
            bgr = bgr_of(frame)
        else:  # a video frame (raw, with its encoding) or an image file (encoded bytes)
            header = Header(stamp=now, frame_id=self.frame_id or "camera")
            if isinstance(frame.data, bytes):
                if self.compressed:
                    return CompressedImage(header=header, format=frame.encoding, data=array.array("B", frame.data))
                bgr = cv2.cvtColor(decode_image(frame.data), cv2.COLOR_RGB2BGR)
            elif frame.encoding == "bgr8":
                bgr = frame.data
            else:
                bgr = cv2.cvtColor(frame_to_rgb(frame.data, frame.encoding), cv2.COLOR_RGB2BGR)
        return compressed_msg(bgr, header, self.jpeg_quality) if self.compressed else image_msg(bgr, header)

    def _wait_for_subscribers(self) -> None:
        deadline = time.monotonic() + self.wait_timeout_s
        while self.publisher.get_subscription_count() < self.wait_for_subscribers and time.monotonic() < deadline:
            if self.stopped.wait(0.02):
                return
        if self.publisher.get_subscription_count() < self.wait_for_subscribers:
            self.get_logger().warning(f"only {self.publisher.get_subscription_count()} of "
                                      f"{self.wait_for_subscribers} subscribers after {self.wait_timeout_s} s; "
                                      "publishing anyway")


def main(args: list[str] | None = None) -> int:
    return run_node(ReplayPublisher, args, work=ReplayPublisher.run)  # publishes from this thread until done


if __name__ == "__main__":
    sys.exit(main())
