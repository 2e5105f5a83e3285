"""Fixtures for the ROS 2 tests: the colcon-built workspace, a private DDS domain on loopback, an rclpy probe
node in this process, and classifier_node / replay_publisher processes started from the install space.

Raw 640x480 frames need the large-image Fast DDS profile (the default 512 KB shared-memory segment loses
them), so every process here, this one included, uses config/fastdds_large_images.xml: a 32 MB segment
and UDP bound to 127.0.0.1. Nothing leaves loopback.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest

from ros_harness import EXECUTABLES, INSTALL, WORKSPACE, ros_environment, start_classifier, wait_until

REFERENCE_FORMAT = "tflite_int8"


@pytest.fixture(scope="session")
def ros_env(tmp_path_factory) -> dict[str, str]:
    """Environment for ROS processes: the built workspace sourced, a private domain, loopback-only DDS.

    Applied to this process too (before rclpy starts its DDS participant), and restored at the end.
    """
    build = subprocess.run(["bash", str(WORKSPACE / "build.sh")], capture_output=True, text=True)
    if build.returncode:
        pytest.fail(f"ros2_ws/build.sh failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}")
    env = ros_environment(tmp_path_factory.mktemp("ros_log"), domain_id=1 + os.getpid() % 80)  # 1-80; demo 81-101
    env["PYTHONUNBUFFERED"] = "1"  # a failing node's last prints are in its log
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    sys.path[:0] = [p for p in env.get("PYTHONPATH", "").split(":") if p and p not in sys.path]
    _preload_workspace_libraries()
    yield env
    os.environ.clear()
    os.environ.update(saved)


def _preload_workspace_libraries() -> None:
    """Load the message package's typesupport libraries: this process started without the workspace on
    LD_LIBRARY_PATH, and rosidl finds them by soname once loaded."""
    pending = sorted(INSTALL.glob("*/lib/lib*.so"))
    while pending:
        failed = []
        for lib in pending:
            try:
                ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
            except OSError:
                failed.append(lib)  # needs a sibling not loaded yet
        if len(failed) == len(pending):
            raise RuntimeError(f"cannot load workspace libraries: {[p.name for p in failed]}")
        pending = failed


@dataclass
class Probe:
    """An rclpy node in the test process, spun by a background executor: publishes, collects, calls services."""

    node: object
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def collect(self, msg_type, topic: str, qos=10) -> tuple[object, list]:
        """Subscribe to `topic`; return (subscription, list receiving (receive time ns, message))."""
        received: list = []
        clock = self.node.get_clock()

        def store(msg):
            now = clock.now().nanoseconds
            with self._lock:
                received.append((now, msg))

        return self.node.create_subscription(msg_type, topic, store, qos), received

    def call(self, client, request, timeout: float = 10.0, attempts: int = 1):
        """The service's answer. `attempts` > 1 only for a request that may safely be sent again: a service
        found moments ago can drop its answer when its writer has not yet matched this client's reader
        (Fast DDS sends a response to matched readers only), so the request is sent again."""
        assert client.wait_for_service(timeout_sec=timeout), f"service {client.srv_name} not available"
        for _ in range(attempts):
            future = client.call_async(request)
            if wait_until(future.done, timeout / attempts):
                return future.result()
            client.remove_pending_request(future)
        raise AssertionError(f"no answer from {client.srv_name} in {attempts} attempt(s), {timeout:g} s")


@pytest.fixture(scope="session")
def probe(ros_env):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("glassware_test_probe", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield Probe(node)
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown(context=context)
    thread.join(timeout=5)


@dataclass
class RosProcess:
    """A node started from the install space, its output in `log`."""

    proc: subprocess.Popen
    log: Path
    name: str = ""

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> int:
        if self.alive():
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)  # glassware_vision.spin: every thread's stack, into the log
            time.sleep(1.0)
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.log.name}: did not stop within {timeout} s of signal {sig}; its threads "
                                 f"then, and its output:\n{self.output()}")


@pytest.fixture(scope="session")
def start_ros(ros_env, tmp_path_factory):
    """start_ros(executable, params={...}, remaps={...}) -> RosProcess; every process is stopped at the end.
    `command` runs instead of the installed executable (with the same ROS arguments)."""
    started: list[RosProcess] = []
    logs = tmp_path_factory.mktemp("ros_processes")

    def start(executable: str, params: dict | None = None, remaps: dict | None = None, name: str = "",
              command: list[str] | None = None) -> RosProcess:
        args = [*(command or [str(EXECUTABLES / executable)]), "--ros-args"]
        for key, value in (params or {}).items():
            args += ["-p", f"{key}:={_ros_value(value)}"]
        for old, new in (remaps or {}).items():
            args += ["-r", f"{old}:={new}"]
        log = logs / f"{name or executable}-{len(started)}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(args, env=ros_env, stdout=out, stderr=subprocess.STDOUT)
        started.append(RosProcess(proc, log, name))
        return started[-1]

    yield start
    for process in started:
        if process.alive():
            process.stop()


def _ros_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@pytest.fixture(scope="session")
def raw_node(start_ros, probe, tiny_bundle):
    """classifier_node on raw Images (smoothing off, so each result is its frame's own), shared by the tests."""
    node = start_classifier(start_ros, probe, tiny_bundle, "raw_classifier", format=REFERENCE_FORMAT)
    yield node
    assert node.process.stop(signal.SIGINT) == 0, node.process.output()


@pytest.fixture(scope="session")
def reference(tiny_bundle):
    """The edge runtime in this process: what the node must answer, bit for bit. One named format for both:
    format=auto times the int8 formats at start-up, and two processes can pick differently."""
    from glassware.edge_runtime.classifier import Classifier

    return Classifier(tiny_bundle, format=REFERENCE_FORMAT)


@pytest.fixture(scope="session")
def class_frames(tiny_data) -> list[tuple[str, np.ndarray]]:
    """One 640x480 BGR camera frame per synthetic class (from the tiny test split)."""
    frames = []
    for name in tiny_data.class_names:
        path = sorted((tiny_data.test / name).iterdir())[0]
        frames.append((name, cv2.resize(cv2.imread(str(path)), (640, 480))))
    return frames
