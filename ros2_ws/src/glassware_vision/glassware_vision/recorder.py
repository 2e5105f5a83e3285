"""recorder: log every camera frame's stamp and every classification to a JSON-lines file.

    recorder --out results.jsonl --ros-args -r image:=/camera/image_raw -r classification:=/glassware_classifier/classification

Frames are numbered in arrival order (reliable subscription, so a replayed video's frame k is line k of
`frame` records), which lets a replay be scored against frame-accurate ground truth by header stamp. A camera
that publishes best effort needs the QoS override `qos_overrides.<image topic>.subscription.reliability:=best_effort`
(glassware_vision.qos), or it is never matched.
Classification records carry the receive time, so end-to-end latency is receive - header.stamp.
"""

from __future__ import annotations

import argparse
import json
import sys

from glassware_vision_msgs.msg import Classification
from rclpy.node import Node
from sensor_msgs.msg import Image

from glassware_vision.qos import overridable
from glassware_vision.spin import run_node


def _ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


class Recorder(Node):
    def __init__(self, out) -> None:
        super().__init__("glassware_recorder")
        self.out = out
        self.frames = 0
        self.create_subscription(Image, "image", self.on_image, 1000, qos_overriding_options=overridable())
        self.create_subscription(Classification, "classification", self.on_classification, 1000)

    def on_image(self, msg: Image) -> None:
        self._write({"kind": "frame", "index": self.frames, "stamp_ns": _ns(msg.header.stamp)})
        self.frames += 1

    def on_classification(self, msg: Classification) -> None:
        self._write({
            "kind": "classification", "stamp_ns": _ns(msg.header.stamp),
            "received_ns": self.get_clock().now().nanoseconds, "label": msg.label,
            "confidence": msg.confidence, "accepted": msg.accepted, "stale": msg.stale, "raw_label": msg.raw_label, "raw_confidence": msg.raw_confidence,
            "novelty": msg.novelty, "refused": msg.refused,
            "scores": list(msg.scores), "preprocess_ms": msg.preprocess_ms, "inference_ms": msg.inference_ms,
            "bundle_id": msg.bundle_id, "model_format": msg.model_format,
        })

    def _write(self, record: dict) -> None:
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="recorder", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON-lines file to write")
    args, ros_args = parser.parse_known_args(argv)
    with open(args.out, "w") as out:
        return run_node(lambda: Recorder(out), [sys.argv[0], *ros_args])


if __name__ == "__main__":
    sys.exit(main())
