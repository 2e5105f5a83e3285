"""`glassware bench-node`: classifier_node against a naive rclpy + Keras node, as real processes over DDS here.

    glassware bench-node --bundle BUNDLE [--seconds 10] [--latency-seconds 30] [--out DIR]

(in a shell with the ROS 2 workspace sourced: `source ros2_ws/install/setup.bash`).

Each node runs alone, one after the other, fed 640x480 bgr8 frames by this process (a reliable publisher,
as camera drivers are):
  saturated  fed as fast as it takes: a new frame whenever a result comes back (two in flight, so the node
             never waits for the feeder); classified frames/s = results received per second
  30 Hz      a camera's rate; end-to-end latency = time the result is received - the frame's header stamp
The naive node is what a first attempt looks like: default QoS (reliable, depth 10) and Keras `predict` on
every message inside the subscription callback. A third, the echo node, answers every frame at once without
classifying it (classifier_node's QoS): the floor that DDS and rclpy alone set for any Python node here.
Both baselines are in `baseline_nodes`. The naive node needs the bundle's .keras file and TensorFlow (`train`
extra). The machine is shared and noisy: compare the two nodes measured in the same run, not across runs.
Prints JSON and a table; writes bench_node.json into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

FRAME_SIZE = (640, 480)
STARTUP_S = 180.0  # the naive node imports TensorFlow
BASELINES = "glassware.evaluation.baseline_nodes"


def register(subparsers) -> None:
    p = subparsers.add_parser("bench-node", help="the ROS 2 classifier_node against a naive rclpy + Keras node "
                                                 "and an echo node, over DDS (ROS 2 workspace sourced)")
    p.add_argument("--bundle", type=Path, required=True, help="bundle with a tflite/onnx format and a .keras model")
    p.add_argument("--format", default="auto",
                   help="format classifier_node runs (default auto: the fastest passing format with int8 weights here)")
    p.add_argument("--seconds", type=float, default=10.0, help="saturation phase length per node")
    p.add_argument("--latency-seconds", type=float, default=30.0, help="30 Hz phase length per node")
    p.add_argument("--out", type=Path, help="folder for bench_node.json")
    p.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> int:
    results = run(args.bundle, args.format, args.seconds, args.latency_seconds)
    print(json.dumps(results, indent=2))
    print(table(results))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_node.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


def run(bundle: Path, model_format: str, seconds: float, latency_seconds: float) -> dict:
    """Measure both nodes; returns the figures (see `table`)."""
    from ament_index_python.packages import get_package_share_directory
    from tqdm import tqdm

    profile = Path(get_package_share_directory("glassware_vision")) / "config" / "fastdds_large_images.xml"
    logs = Path(tempfile.mkdtemp(prefix="bench_node_"))
    os.environ.update(ROS_DOMAIN_ID=os.environ.get("GLASSWARE_BENCH_DOMAIN", str(1 + os.getpid() % 100)),
                      FASTDDS_DEFAULT_PROFILES_FILE=str(profile), ROS_LOG_DIR=str(logs))
    for name in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_STATIC_PEERS", "ROS_LOCALHOST_ONLY"):
        os.environ.pop(name, None)  # they would override the profile's loopback transports
    # this process (the feeder) and both nodes share that domain and profile; set before rclpy starts

    nodes = {  # figures key -> (ROS node name, command)
        "classifier_node": ("bench_classifier", [sys.executable, "-m", "glassware_vision.classifier_node", "--ros-args",
                                                 "-p", f"bundle:={bundle}", "-p", f"format:={model_format}",
                                                 "-p", "smoothing:=false"]),
        "naive_node": ("bench_naive", [sys.executable, "-m", BASELINES, "naive", "--bundle", str(bundle),
                                       "--ros-args"]),
        "echo_node": ("bench_echo", [sys.executable, "-m", BASELINES, "echo", "--ros-args"]),
    }
    figures: dict = {"frame": f"{FRAME_SIZE[0]}x{FRAME_SIZE[1]} bgr8", "seconds": seconds,
                     "latency_seconds": latency_seconds, "bundle": str(bundle), "format": model_format,
                     "edge_runtime_in_process_fps": in_process_fps(bundle, model_format, min(seconds, 5.0))}
    with Feeder() as feeder, tqdm(total=len(nodes) * (seconds + latency_seconds), unit="s", desc="bench_node") as bar:
        for name, (node_name, command) in nodes.items():
            log = logs / f"{name}.log"
            with open(log, "w") as out:
                process = subprocess.Popen(command + ["-r", f"__node:={node_name}", "-r", "image:=/bench/image"],
                                           stdout=out, stderr=subprocess.STDOUT)
            try:
                feeder.connect(f"/{node_name}/classification", process, log)
                saturated = feeder.saturate(seconds)
                bar.update(seconds)
                paced = feeder.at_rate(30.0, latency_seconds)
                bar.update(latency_seconds)
            finally:
                _stop(process, name, log)
            figures[name] = {**saturated, **paced, "model_format": feeder.model_format}
    figures["speedup_classified_fps"] = (figures["classifier_node"]["saturated_classified_fps"]
                                         / max(figures["naive_node"]["saturated_classified_fps"], 1e-9))
    figures["load_average_1min"] = os.getloadavg()[0]
    return figures


def _stop(process: subprocess.Popen, name: str, log: Path, timeout_s: float = 30.0) -> None:
    """SIGTERM, then SIGKILL if the node has not exited by `timeout_s`: its figures are already taken, and a
    node stuck in DDS shutdown (seen once in CI, on the echo node) must not lose them."""
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        print(f"bench_node: {name} did not stop within {timeout_s:g} s of SIGTERM and was killed (log: {log})",
              file=sys.stderr)


def bench_frame() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (FRAME_SIZE[1], FRAME_SIZE[0], 3), dtype=np.uint8)


def in_process_fps(bundle: Path, model_format: str, seconds: float) -> float:
    """The ceiling: `Classifier.classify_frame` in a loop in this process, no ROS, same frame."""
    from glassware.edge_runtime.classifier import Classifier

    classifier, frame = Classifier(bundle, format=model_format), bench_frame()
    classifier.classify_frame(frame, "bgr8")
    count, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        classifier.classify_frame(frame, "bgr8")
        count += 1
    return count / seconds


class Feeder:
    """This process's rclpy node: publishes camera frames on /bench/image, collects the node's results."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import Image

        from glassware_vision.messages import image_msg

        rclpy.init()
        self.node = rclpy.create_node("bench_feeder")
        self.publisher = self.node.create_publisher(Image, "/bench/image", 10)
        self.message = image_msg(bench_frame(), self._header())
        self.results: list[tuple[int, int, float]] = []  # (received ns, header stamp ns, node's compute ms)
        self.model_format = ""  # as the node reports it (resolves "auto")
        self._answered = threading.Condition()
        self._answers = 0
        self._subscription = None
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        self._spinner = threading.Thread(target=self._executor.spin, daemon=True)
        self._spinner.start()

    def __enter__(self) -> "Feeder":
        return self

    def __exit__(self, *exc) -> None:
        import rclpy

        self._executor.shutdown()
        self._spinner.join(timeout=5)
        self.node.destroy_node()
        rclpy.try_shutdown()

    def connect(self, topic: str, process: subprocess.Popen, log: Path) -> None:
        """Subscribe to the node's results and send frames until one comes back (bounded; no fixed sleep)."""
        from glassware_vision_msgs.msg import Classification

        if self._subscription is not None:
            self.node.destroy_subscription(self._subscription)
        self.results = []
        self._subscription = self.node.create_subscription(Classification, topic, self._on_result, 100)
        deadline = time.monotonic() + STARTUP_S
        while not self.results:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{topic}: node did not answer (exit {process.poll()}):\n{log.read_text()[-2000:]}")
            self._publish()
            time.sleep(0.2)

    def drain(self, quiet_s: float = 1.0, timeout: float = 30.0) -> None:
        """Wait until no result has arrived for `quiet_s` (a queueing node works off its backlog first)."""
        deadline, count, since = time.monotonic() + timeout, len(self.results), time.monotonic()
        while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
            time.sleep(0.05)
            if len(self.results) != count:
                count, since = len(self.results), time.monotonic()

    def saturate(self, seconds: float, in_flight: int = 2) -> dict:
        """Feed as fast as the node takes frames: a new frame whenever a result comes back, `in_flight` frames
        ahead so the node never waits for the feeder (a frame unanswered for 0.5 s counts as lost)."""
        self.drain()
        first, sent, pending = len(self.results), 0, 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            with self._answered:
                pending = max(pending - self._take_answers(), 0)
                if pending >= in_flight and not self._answered.wait(0.5):
                    pending -= 1  # lost (best effort) or replaced in the node's latest-frame slot
            while pending < in_flight:
                self._publish()
                sent += 1
                pending += 1
        classified = len(self.results) - first
        return {"saturated_published_fps": sent / seconds, "saturated_classified_fps": classified / seconds}

    def _take_answers(self) -> int:
        answers, self._answers = self._answers, 0
        return answers

    def at_rate(self, hz: float, seconds: float) -> dict:
        """Publish at `hz` for `seconds`; end-to-end latency of every result received in that window (+1 s)."""
        self.drain()
        first, t0 = len(self.results), time.monotonic()
        sent = 0
        while (due := t0 + sent / hz) < t0 + seconds:
            time.sleep(max(due - time.monotonic(), 0.0))
            self._publish()
            sent += 1
        time.sleep(1.0)  # results still in flight; a queueing node's backlog beyond this counts as lost
        results = np.array(self.results[first:], np.float64).reshape(-1, 3)
        latency_ms, compute_ms = (results[:, 0] - results[:, 1]) / 1e6, results[:, 2]
        p50, p99 = (np.percentile(latency_ms, [50, 99]) if latency_ms.size else (np.nan, np.nan))
        return {"rate_hz": hz, "sent": sent, "classified": int(latency_ms.size), "latency_p50_ms": float(p50),
                "latency_p99_ms": float(p99), "latency_max_ms": float(latency_ms.max()) if latency_ms.size else np.nan,
                # the rest of the latency is transport both ways and waiting for the worker thread
                "compute_p50_ms": float(np.median(compute_ms)) if compute_ms.size else np.nan}

    def _publish(self) -> None:
        self.message.header = self._header()
        self.publisher.publish(self.message)

    def _header(self):
        from std_msgs.msg import Header

        return Header(stamp=self.node.get_clock().now().to_msg(), frame_id="bench_camera")

    def _on_result(self, msg) -> None:
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        with self._answered:
            self.results.append((self.node.get_clock().now().nanoseconds, stamp, msg.preprocess_ms + msg.inference_ms))
            self.model_format = msg.model_format
            self._answers += 1
            self._answered.notify()


def table(figures: dict) -> str:
    ours, naive, echo = figures["classifier_node"], figures["naive_node"], figures["echo_node"]
    rows = [
        ("fed as fast as it takes: classified frames/s", "saturated_classified_fps", "{:.1f}"),
        ("fed as fast as it takes: frames published/s", "saturated_published_fps", "{:.1f}"),
        ("30 Hz: classified / sent", None, None),
        ("30 Hz: latency p50 (ms)", "latency_p50_ms", "{:.1f}"),
        ("30 Hz: latency p99 (ms)", "latency_p99_ms", "{:.1f}"),
        ("30 Hz: latency max (ms)", "latency_max_ms", "{:.1f}"),
        ("30 Hz: of which preprocess + inference p50 (ms)", "compute_p50_ms", "{:.1f}"),
    ]
    from glassware.markdown import table

    head = [figures["frame"], f"classifier_node ({ours['model_format']})", "naive rclpy + Keras predict",
            "echo node (no model: the DDS + rclpy floor)"]
    cells = [[label, *(f"{n['classified']} / {n['sent']}" if key is None else fmt.format(n[key])
                       for n in (ours, naive, echo))] for label, key, fmt in rows]
    lines = [table(head, cells)]
    lines.append(f"\nedge runtime alone, in one process (the ceiling): {figures['edge_runtime_in_process_fps']:.1f} frames/s")
    lines.append(f"classifier_node classifies {figures['speedup_classified_fps']:.1f}x the naive node's frames/s "
                 f"(same run; load average {figures['load_average_1min']:.1f} on {os.cpu_count()} cores)")
    return "\n".join(lines)
