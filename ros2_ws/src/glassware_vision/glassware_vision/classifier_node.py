"""classifier_node: camera frames in, glassware_vision_msgs/Classification out (a thin adapter over edge_runtime).

The subscription callback only stores the newest frame; a worker thread classifies it. So the executor never
blocks, nothing queues, and a slow model skips frames instead of falling behind the camera.
"""

from __future__ import annotations

from glassware_vision.stop import exit_on_first_signal

exit_on_first_signal()  # before the slow imports below: Ctrl-C while they run must exit cleanly too

import dataclasses  # noqa: E402 (after the signal handlers, on purpose)
import math
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import NamedTuple

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from glassware.edge_runtime.bundle import MANIFEST
from glassware.edge_runtime.classifier import Classifier
from glassware.edge_runtime.collect import CollectError, FrameCollector
from glassware.edge_runtime.stream import FrameSampler, LabelSmoother, LatestFrame
from glassware.edge_runtime.swap import ModelSwap
from glassware.edge_runtime.backends import parse_providers
from glassware.errors import BundleError, FrameFormatError, GlasswareError, ImageDecodeError
from glassware.labels import UNKNOWN
from glassware.preprocessing import decode_image, mono16_to_mono8
from glassware_vision_msgs.msg import Classification
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from glassware_vision.messages import (Decision, bgr_of, bgr_of_frame, classification_msg, draw_label, frame_of,
                                       image_msg)
from glassware_vision.parameters import PARAMETERS
from glassware_vision.qos import SENSOR_QOS, overridable
from glassware_vision.spin import run_node
from glassware_vision.stats import StreamStats, diagnostic_status

LOG_THROTTLE_S = 5.0


@dataclasses.dataclass(frozen=True)
class Settings:
    """The run-time parameters (`run_time` in the table). The on-set callback replaces the whole snapshot and the
    worker reads it once per frame, so a frame's decision never mixes old and new values."""

    threshold: float | None  # None: the bundle's per-class thresholds
    smoothing_alpha: float
    smoothing_reset_gap_ms: float
    max_frame_age_ms: float
    max_rate_hz: float
    mono16_bits: int
    stall_timeout_ms: float


SETTINGS = {field.name for field in dataclasses.fields(Settings)}


class Pending(NamedTuple):
    """A frame waiting for the worker, and the stream epoch it belongs to (a new epoch after a gap in stamps)."""

    msg: Image | CompressedImage
    epoch: int
    received_s: float  # time.monotonic() when it arrived


def stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


class ClassifierNode(LifecycleNode):
    """A managed (lifecycle) node: configure loads and verifies the bundle, activate subscribes and starts the
    worker, deactivate stops both, cleanup releases the model. With `autostart` it goes to active by itself.
    Parameters and diagnostics are there in every state."""

    def __init__(self) -> None:
        super().__init__("glassware_classifier")
        declared = {p.name: self.declare_parameter(p.name, Parameter.Type.DOUBLE if p.default is None else p.default,
                                                   p.descriptor()).value for p in PARAMETERS}
        self._config = {p.name: declared[p.name] for p in PARAMETERS if p.name not in SETTINGS}
        self._settings = Settings(**{name: declared[name] for name in SETTINGS})
        self._sampler = FrameSampler(max_rate_hz=self._settings.max_rate_hz)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._classifier: Classifier | None = None  # the one the worker uses; `_models.current` may be newer
        self._models: ModelSwap | None = None
        self._collector: FrameCollector | None = None
        self._collect_error = ""
        self._collect_errors_reported = 0
        self._publisher = self._debug_publisher = self._subscription = None
        self._worker: threading.Thread | None = None
        self._stopping = threading.Event()
        self._latest = LatestFrame()
        self._stats = StreamStats()
        self._last_bad = ""
        self._busy_since: float | None = None
        self._epoch = self._smoothed_epoch = 0
        self._last_stamp_ns = 0
        self._start_error: Exception | None = None
        self.failed = False
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        # steady: health must be reported when /clock (use_sim_time) stops, and not jump with the wall clock
        self.create_timer(1.0, self._publish_diagnostics, clock=Clock(clock_type=ClockType.STEADY_TIME))
        if self._config["autostart"]:
            self.trigger_configure()
            if self._start_error is not None:  # standalone: a bundle that cannot load ends the process (exit 2)
                raise self._start_error
            if self.context.ok():  # else a signal came while the model loaded
                self.trigger_activate()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        config = self._config
        try:
            if not config["bundle"]:
                raise BundleError("parameter 'bundle' is not set: pass -p bundle:=/path/to/bundle")
            providers = parse_providers(config["providers"])
            self._models = ModelSwap(lambda path: Classifier(path, format=config["format"], threads=config["threads"],
                                                             providers=providers), config["bundle"],
                                     max_lab_drop=config["swap_max_lab_drop"])
        except GlasswareError as e:
            self._start_error = e
            self.get_logger().error(f"cannot configure: {e}")
            return TransitionCallbackReturn.FAILURE
        if not self.context.ok():
            return TransitionCallbackReturn.FAILURE  # a signal came while the model loaded: stopping
        self._start_error = None
        self._adopt(self._models.current)
        self._collector = self._open_collector()
        self._publisher = self.create_lifecycle_publisher(Classification, "~/classification", 10)
        self._debug_publisher = (self.create_lifecycle_publisher(Image, "~/debug_image", 1)
                                 if config["publish_debug_image"] else None)
        self.get_logger().info(
            f"loaded {self._bundle_id} ({self._classifier.format_name} on {self._classifier.backend_name}), "
            f"{self._thresholds_text(self._thresholds(self._settings))}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # the lifecycle publishers first: the first result must go out
        image_type = CompressedImage if self._config["compressed"] else Image
        self._subscription = self.create_subscription(image_type, "image", self._on_image, SENSOR_QOS,
                                                      qos_overriding_options=overridable())
        self._stopping = threading.Event()
        self._worker = threading.Thread(target=self._work, args=(self._stopping,), name="classifier", daemon=True)
        self._worker.start()
        self.get_logger().info(f"classifying {image_type.__name__} on {self._subscription.topic_name}, "
                               f"publishing {self._publisher.topic_name}")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_classifying()
        return super().on_deactivate(state)  # then the lifecycle publishers

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_classifying()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _stop_classifying(self) -> None:
        if self._subscription is not None:
            self.destroy_subscription(self._subscription)
            self._subscription = None
        self._stopping.set()
        if self._worker is not None and self._worker is not threading.current_thread():  # a failing worker stops it
            self._worker.join(timeout=2.0)
        self._worker = None
        self._latest.take(timeout=0)  # a frame from before is no frame to classify after activation

    def _release(self) -> None:
        for publisher in (self._publisher, self._debug_publisher):
            if publisher is not None:
                self.destroy_lifecycle_publisher(publisher)
        self._publisher = self._debug_publisher = None
        if self._collector is not None:
            self._collector.close()
        self._classifier = self._models = self._collector = None

    def _adopt(self, classifier: Classifier) -> None:
        """Classify with `classifier` from the next frame on (at configure, and in the worker after a swap)."""
        self._classifier = classifier
        self._class_names = classifier.bundle.class_names
        self._bundle_id = classifier.bundle.bundle_id
        self._smoother = LabelSmoother(self._class_names) if self._config["smoothing"] else None

    def _open_collector(self) -> FrameCollector | None:
        config = self._config
        if not config["collect_dir"]:
            return None
        try:
            return FrameCollector(config["collect_dir"], audit_share=config["collect_audit_share"],
                                  max_rate_hz=config["collect_max_rate_hz"], max_mb=config["collect_max_mb"])
        except CollectError as e:  # classifying matters more than collecting: report it and go on
            self._collect_error = str(e)
            self.get_logger().error(f"not collecting: {e}")
            return None

    def _on_image(self, msg: Image | CompressedImage) -> None:
        self._stats.count("received")
        if self._gap_before(stamp_ns(msg)):
            self._epoch += 1
            self._stats.count("gaps")
        now = time.monotonic()
        if not self._sampler.accept(now):
            self._stats.count("skipped_by_rate")
        elif self._latest.put(Pending(msg, self._epoch, now)):
            self._stats.count("replaced")

    def _gap_before(self, stamp: int) -> bool:
        """Whether the stream breaks before this frame: its stamp jumps back, or forward by more than the gap.
        Measured on every frame received, so neither max_rate_hz nor a slow model looks like a gap."""
        last, self._last_stamp_ns = self._last_stamp_ns, stamp
        if not (stamp and last):
            return False  # unstamped frames tell nothing
        gap_ms, limit_ms = (stamp - last) / 1e6, self._settings.smoothing_reset_gap_ms
        return gap_ms < 0 or 0 < limit_ms < gap_ms

    def _work(self, stopping: threading.Event) -> None:
        try:
            while not stopping.is_set():
                pending = self._latest.take(timeout=0.1)
                if pending is not None:
                    self._busy_since = pending.received_s  # a frame's wait for its result starts when it arrives
                    self._classify(pending)
                    self._busy_since = None
        except Exception:  # a bug, not bad input: stop the node loudly so a supervisor restarts it
            if not self.context.ok():
                return  # shutting down: the last publish raced the end of the context
            self.get_logger().fatal(f"classification worker failed:\n{traceback.format_exc()}")
            self.failed = True
            rclpy.try_shutdown(context=self.context)

    def _classify(self, pending: Pending) -> None:
        msg, settings = pending.msg, self._settings  # one snapshot for this frame's whole decision
        if self._models.current is not self._classifier:  # a swapped-in bundle: between two frames
            self._adopt(self._models.current)
        drawing = self._debug_publisher is not None and self._debug_publisher.get_subscription_count() > 0
        try:
            frame, encoding, prediction = self._predict(msg, settings, drawing)
        except (FrameFormatError, ImageDecodeError) as e:
            self._stats.count("bad")
            self._last_bad = str(e)
            self.get_logger().warning(f"skipped a malformed frame: {e}", throttle_duration_sec=LOG_THROTTLE_S)
            return
        stamp = stamp_ns(msg)
        age_ms = (self.get_clock().now().nanoseconds - stamp) / 1e6 if stamp else math.nan
        decision = self._decide(prediction, settings, pending.epoch, age_ms)
        self._publisher.publish(classification_msg(msg.header, prediction, decision, self._class_names,
                                                   self._bundle_id, self._classifier.format_name))
        self._stats.processed(age_ms, prediction.inference_ms, decision.stale)
        if self._collector is not None:
            self._collector.offer(frame, prediction, self._class_names, encoding=encoding, stamp_s=stamp / 1e9 or None,
                                  frame_id=msg.header.frame_id, bundle_id=self._bundle_id,
                                  source=self._subscription.topic_name)
        if drawing:
            bgr = bgr_of(msg) if encoding == "jpeg" else bgr_of_frame(frame, encoding)
            text = f"{decision.label} {decision.confidence:.2f}"
            self._debug_publisher.publish(image_msg(draw_label(bgr, text, decision.accepted), msg.header))

    def _predict(self, msg, settings: Settings, drawing: bool) -> tuple:
        """(frame, its encoding, prediction). A compressed frame that will be drawn is decoded once, for both."""
        if self._config["compressed"]:
            data = bytes(msg.data)
            if not drawing:
                return data, "jpeg", self._classifier.classify_bytes(np.frombuffer(data, np.uint8))
            frame, encoding = decode_image(data), "rgb8"
        else:
            frame, encoding = frame_of(msg), msg.encoding
            if encoding == "mono16" and settings.mono16_bits:  # a known depth; else from the frame's range
                frame, encoding = mono16_to_mono8(frame, settings.mono16_bits), "mono8"
        return frame, encoding, self._classifier.classify_frame(frame, encoding)

    def _decide(self, prediction, settings: Settings, epoch: int, age_ms: float) -> Decision:
        """The answer to publish: smoothed over the frames since the last gap, never accepted from a stale frame."""
        thresholds = self._thresholds(settings)
        smoothed = self._smoother is not None
        stale = settings.max_frame_age_ms > 0 and not age_ms <= settings.max_frame_age_ms  # no stamp: stale too
        if smoothed and (stale or epoch != self._smoothed_epoch):
            self._smoother.reset()  # history from before a gap, or older than the age limit, is no evidence now
            self._smoothed_epoch = epoch
        top = prediction.class_index
        if stale:
            return Decision(UNKNOWN, prediction.confidence, False, thresholds[top], smoothed, True, age_ms)
        if not smoothed:
            accepted = prediction.confidence >= thresholds[top] and not prediction.refused
            label = self._class_names[top] if accepted else UNKNOWN
            return Decision(label, prediction.confidence, accepted, thresholds[top], False, False, age_ms)
        self._smoother.alpha, self._smoother.thresholds = settings.smoothing_alpha, thresholds
        label, confidence = self._smoother.update(prediction.evidence)
        held = self._smoother.held  # the threshold of the class the decision was about
        return Decision(label, confidence, label != UNKNOWN, thresholds[held], True, False, age_ms)

    def _thresholds(self, settings: Settings) -> np.ndarray:
        if settings.threshold is None:
            return self._classifier.thresholds
        return np.full(len(self._class_names), settings.threshold, np.float32)

    def _publish_diagnostics(self) -> None:
        name = f"{self.get_fully_qualified_name()}: classification"
        if self._subscription is None:  # not active: a lifecycle manager holds it back, or it failed to configure
            why = f": {self._start_error}" if self._start_error else ""
            status = DiagnosticStatus(level=DiagnosticStatus.WARN, name=name, message=f"not active{why}")
        else:
            busy_since = self._busy_since
            waiting_s = time.monotonic() - busy_since if busy_since is not None else 0.0
            status = diagnostic_status(name, self._bundle_id, self._stats.report() | {"waiting_s": waiting_s},
                                       self._diagnostic_values(), topic=self._subscription.topic_name,
                                       stall_s=self._settings.stall_timeout_ms / 1e3)
        problem = self._side_problem()
        if problem and status.level == DiagnosticStatus.OK:  # classification goes on: a warning, not an error
            status.level, status.message = DiagnosticStatus.WARN, problem
        header = Header(stamp=self.get_clock().now().to_msg())
        self._diagnostics.publish(DiagnosticArray(header=header, status=[status]))

    def _diagnostic_values(self) -> dict[str, str]:
        settings = self._settings
        threshold = self._classifier.threshold if settings.threshold is None else settings.threshold
        return {
            "bundle_id": self._bundle_id,
            "format": self._classifier.format_name,
            "backend": self._classifier.backend_name,
            "threshold": f"{threshold:.3f}",
            "class_thresholds": " ".join(f"{t:.3f}" for t in self._thresholds(settings)),
            "max_rate_hz": str(settings.max_rate_hz),
            "input": f"{self._subscription.topic_name} ({self._subscription.msg_type.__name__})",
            "last_bad_frame": self._last_bad,
            "bundle_swap": self._models.status["message"],
            **self._collect_values(),
        }

    def _side_problem(self) -> str:
        """What is wrong beside classification: a refused bundle, collecting that fails (since the last report)."""
        if self._models is not None and self._models.status["state"] == "failed":
            return f"new bundle refused, still running {self._models.status['bundle_id']}"
        if self._collect_error:
            return f"not collecting: {self._collect_error}"
        if self._collector is not None:
            errors = self._collector.counters()["errors"]
            if errors > self._collect_errors_reported:
                self._collect_errors_reported = errors
                return f"collecting failed: {self._collector.last_error}"
        return ""

    def _collect_values(self) -> dict[str, str]:
        if self._collector is None:
            return {"collect": self._collect_error or "off"}
        counts = self._collector.counters()
        return {"collect": f"{counts['kept']} kept in {self._config['collect_dir']}, "
                           f"{counts['dropped_queue_full']} dropped (queue full), {counts['errors']} errors",
                "collect_last_error": self._collector.last_error or ""}

    def _thresholds_text(self, thresholds: np.ndarray) -> str:
        if thresholds.min() == thresholds.max():
            return f"threshold {thresholds[0]:.3f}"
        return "thresholds " + ", ".join(f"{n} {t:.3f}" for n, t in zip(self._class_names, thresholds))

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        """Check what the descriptor ranges cannot express (rclpy has checked those), then apply all or nothing.
        One on-set callback rather than a post-set one, so the node also runs on Humble."""
        values = {p.name: p.value for p in parameters if p.name in SETTINGS}
        if values.get("smoothing_alpha", 1.0) <= 0.0:
            return SetParametersResult(successful=False, reason="smoothing_alpha must be > 0 (1 = no smoothing)")
        bundle = next((p.value for p in parameters if p.name == "bundle"), None)
        if bundle is not None:
            if not (Path(bundle) / MANIFEST).is_file():  # the rest (hashes, gate) is checked in the background
                return SetParametersResult(successful=False, reason=f"no bundle at {bundle!r} (no {MANIFEST})")
            if self._models is not None and not self._models.request(bundle):
                return SetParametersResult(successful=False, reason="a new bundle is still loading; try again")
            self._config["bundle"] = bundle  # also what a later configure loads
            self.get_logger().info(f"bundle set to {bundle}: " + ("loading it in the background"
                                                                  if self._models is not None else "used at configure"))
        self._settings = dataclasses.replace(self._settings, **values)
        if "max_rate_hz" in values:
            self._sampler = FrameSampler(max_rate_hz=values["max_rate_hz"])
        if values:
            self.get_logger().info(", ".join(f"{name} set to {value}" for name, value in values.items()))
        return SetParametersResult(successful=True)

    def destroy_node(self) -> None:
        self._stop_classifying()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node(ClassifierNode, args)


if __name__ == "__main__":
    sys.exit(main())
