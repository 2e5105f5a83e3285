"""classifier_node: camera frames in, glassware_vision_msgs/Classification out (a thin adapter over edge_runtime).

The subscription callback only stores the newest frame; a worker thread classifies it. So the executor never
blocks, nothing queues, and a slow model skips frames instead of falling behind the camera.
"""

from __future__ import annotations

import math
import sys
import threading
import time
import traceback

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from glassware.edge_runtime.classifier import Classifier
from glassware.edge_runtime.stream import FrameSampler, LabelSmoother, LatestFrame
from glassware.errors import BundleError, FrameFormatError, ImageDecodeError
from glassware_vision_msgs.msg import Classification
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from glassware_vision.messages import bgr_of, classification_msg, draw_label, frame_of, image_msg
from glassware_vision.parameters import PARAMETERS
from glassware_vision.spin import run_node
from glassware_vision.stats import StreamStats, diagnostic_status

# REP-2003: sensor data is consumed best effort; depth 1 because only the newest frame matters.
SENSOR_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT,
                        durability=DurabilityPolicy.VOLATILE)
LOG_THROTTLE_S = 5.0


class ClassifierNode(Node):
    def __init__(self) -> None:
        super().__init__("glassware_classifier")
        self._stopping = threading.Event()  # destroy_node sets it; rclpy may call that even after a failed start
        self._worker: threading.Thread | None = None
        declared = {p.name: self.declare_parameter(p.name, Parameter.Type.DOUBLE if p.default is None else p.default,
                                                   p.descriptor()).value for p in PARAMETERS}
        bundle, providers, threshold = declared["bundle"], declared["providers"], declared["threshold"]
        self._compressed = declared["compressed"]
        if not bundle:
            raise BundleError("parameter 'bundle' is not set: pass -p bundle:=/path/to/bundle")
        self._classifier = Classifier(bundle, format=declared["format"], threads=declared["threads"],
                                      providers=[p.strip() for p in providers.split(",") if p.strip()] or None)
        self._class_names = self._classifier.bundle.class_names
        self._bundle_id = self._classifier.bundle.bundle_id

        if threshold is None:  # before the on-set callback below: showing it does not override the bundle's
            self.set_parameters([Parameter("threshold", Parameter.Type.DOUBLE, self._classifier.threshold)])
        else:
            self._classifier.threshold = threshold
        self._smoother = LabelSmoother(self._class_names, alpha=declared["smoothing_alpha"],
                                       threshold=self._classifier.threshold,
                                       thresholds=self._classifier.thresholds) if declared["smoothing"] else None
        self._sampler = FrameSampler(max_rate_hz=declared["max_rate_hz"])
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._latest = LatestFrame()
        self._stats = StreamStats()
        self._last_bad = ""
        self.failed = False
        self._publisher = self.create_publisher(Classification, "~/classification", 10)
        self._debug_publisher = self.create_publisher(Image, "~/debug_image", 1) if declared["publish_debug_image"] else None
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        image_type = CompressedImage if self._compressed else Image
        self._subscription = self.create_subscription(image_type, "image", self._on_image, SENSOR_QOS)
        self.create_timer(1.0, self._publish_diagnostics)

        self._worker = threading.Thread(target=self._work, name="classifier", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"classifying {image_type.__name__} on {self._subscription.topic_name} with {self._bundle_id} "
            f"({self._classifier.format_name} on {self._classifier.backend_name}), {self._thresholds_text()}, "
            f"publishing {self._publisher.topic_name}")

    def _on_image(self, msg: Image | CompressedImage) -> None:
        self._stats.count("received")
        if not self._sampler.accept(time.monotonic()):
            self._stats.count("skipped_by_rate")
        elif self._latest.put(msg):
            self._stats.count("replaced")

    def _work(self) -> None:
        try:
            while not self._stopping.is_set():
                msg = self._latest.take(timeout=0.1)
                if msg is not None:
                    self._classify(msg)
        except Exception:  # a bug, not bad input: stop the node loudly so a supervisor restarts it
            if not self.context.ok():
                return  # shutting down: the last publish raced the end of the context
            self.get_logger().fatal(f"classification worker failed:\n{traceback.format_exc()}")
            self.failed = True
            rclpy.try_shutdown(context=self.context)

    def _classify(self, msg: Image | CompressedImage) -> None:
        try:
            if self._compressed:
                prediction = self._classifier.classify_bytes(np.frombuffer(msg.data, np.uint8))
            else:
                prediction = self._classifier.classify_frame(frame_of(msg), msg.encoding)
        except (FrameFormatError, ImageDecodeError) as e:
            self._stats.count("bad")
            self._last_bad = str(e)
            self.get_logger().warning(f"skipped a malformed frame: {e}", throttle_duration_sec=LOG_THROTTLE_S)
            return
        if self._smoother is None:
            label, confidence, accepted = prediction.label, prediction.confidence, prediction.accepted
            decided = prediction.class_index
        else:
            label, confidence = self._smoother.update(prediction.evidence)
            accepted = label != Classification.UNKNOWN
            decided = self._smoother.held
        self._publisher.publish(classification_msg(  # the threshold of the class the decision was about
            msg.header, prediction, label, confidence, accepted, self._smoother is not None, self._class_names,
            self._classifier.thresholds[decided], self._bundle_id, self._classifier.format_name))
        stamp_ns = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        latency_ms = (self.get_clock().now().nanoseconds - stamp_ns) / 1e6 if stamp_ns else math.nan
        self._stats.processed(latency_ms, prediction.inference_ms)
        if self._debug_publisher is not None:
            text = f"{label} {confidence:.2f}"
            self._debug_publisher.publish(image_msg(draw_label(bgr_of(msg), text, accepted), msg.header))

    def _publish_diagnostics(self) -> None:
        extra = {
            "bundle_id": self._bundle_id,
            "format": self._classifier.format_name,
            "backend": self._classifier.backend_name,
            "threshold": f"{self._classifier.threshold:.3f}",
            "class_thresholds": " ".join(f"{t:.3f}" for t in self._classifier.thresholds),
            "max_rate_hz": str(self.get_parameter("max_rate_hz").value),
            "input": f"{self._subscription.topic_name} ({'CompressedImage' if self._compressed else 'Image'})",
            "last_bad_frame": self._last_bad,
        }
        status = diagnostic_status(f"{self.get_name()}: classification", self._bundle_id, self._stats.report(), extra)
        header = Header(stamp=self.get_clock().now().to_msg())
        self._diagnostics.publish(DiagnosticArray(header=header, status=[status]))

    def _thresholds_text(self) -> str:
        thresholds = self._classifier.thresholds
        if thresholds.min() == thresholds.max():
            return f"threshold {thresholds[0]:.3f}"
        return "thresholds " + ", ".join(f"{n} {t:.3f}" for n, t in zip(self._class_names, thresholds))

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        """Check what the descriptor ranges cannot express (rclpy has checked those), then apply all or nothing.
        One on-set callback rather than a post-set one, so the node also runs on Humble."""
        for p in parameters:
            if p.name == "smoothing_alpha" and p.value <= 0.0:
                return SetParametersResult(successful=False, reason="smoothing_alpha must be > 0 (1 = no smoothing)")
        for p in parameters:
            if p.name == "threshold":
                self._classifier.threshold = p.value
                if self._smoother is not None:
                    self._smoother.threshold = p.value
            elif p.name == "max_rate_hz":
                self._sampler = FrameSampler(max_rate_hz=p.value)
            elif p.name == "smoothing_alpha" and self._smoother is not None:
                self._smoother.alpha = p.value
            self.get_logger().info(f"{p.name} set to {p.value}")
        return SetParametersResult(successful=True)

    def destroy_node(self) -> None:
        self._stopping.set()
        if self._worker is not None:
            self._worker.join(timeout=2.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(ClassifierNode, args)


if __name__ == "__main__":
    sys.exit(main())
