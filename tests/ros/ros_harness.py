"""Constants and helpers shared by the ROS tests and their fixtures (conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from glassware.evaluation.ros_env import INSTALL, WORKSPACE, ros_environment  # noqa: F401 (for the tests)

EXECUTABLES = INSTALL / "glassware_vision" / "lib" / "glassware_vision"
NS = "/test"  # namespace of the nodes under test
STARTUP_S = 60.0  # a node process imports LiteRT/ONNX Runtime and loads the bundle; 2 busy cores are slow


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll `predicate` until it is true or `timeout` s pass; never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def header(probe, frame_id: str = "gripper_camera"):
    from std_msgs.msg import Header

    return Header(stamp=probe.node.get_clock().now().to_msg(), frame_id=frame_id)


@dataclass
class NodeUnderTest:
    """A classifier_node process with the probe's publisher on its input and subscribers on its outputs."""

    process: object
    name: str
    image_topic: str
    publisher: object
    results: list
    diagnostics: list

    def answer(self, probe, frame: np.ndarray):
        """Publish `frame` (bgr8) and return the node's Classification of it."""
        from glassware_vision.messages import image_msg

        msg = image_msg(frame, header(probe))
        self.publisher.publish(msg)
        out = self.classification_for(msg.header.stamp)
        assert out is not None, self.process.output()
        return out

    def classification_for(self, stamp, timeout: float = 10.0):
        """The Classification whose header stamp equals `stamp`, waiting up to `timeout` s."""
        def find():
            return next((m for _, m in list(self.results) if m.header.stamp == stamp), None)
        wait_until(lambda: find() is not None or not self.process.alive(), timeout)
        return find()

    def status(self, predicate=lambda values: True, timeout: float = 5.0) -> dict:
        """Values of the newest diagnostic status of this node that satisfies `predicate`."""
        def newest():
            for _, array in reversed(list(self.diagnostics)):
                for status in array.status:
                    values = {kv.key: kv.value for kv in status.values} | {"level": status.level[0],
                                                                            "message": status.message}
                    if status.name == f"{NS}/{self.name}: classification" and predicate(values):
                        return values
            return None
        wait_until(lambda: newest() is not None, timeout)
        values = newest()
        assert values is not None, f"no diagnostics from {self.name} matching the condition"
        return values

    def set_parameters(self, probe, **values):
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        client = probe.node.create_client(SetParameters, f"{NS}/{self.name}/set_parameters")
        request = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg()
                                                    for k, v in values.items()])
        try:
            return probe.call(client, request).results
        finally:
            probe.node.destroy_client(client)


def start_classifier(start_ros, probe, bundle, name: str, compressed: bool = False, command: list[str] | None = None,
                     **params) -> NodeUnderTest:
    from diagnostic_msgs.msg import DiagnosticArray
    from glassware_vision_msgs.msg import Classification
    from sensor_msgs.msg import CompressedImage, Image

    image_topic = f"{NS}/{name}/image"
    process = start_ros("classifier_node", name=name,
                        params={"bundle": bundle, "compressed": compressed, "smoothing": False, "max_frame_age_ms": 0.0,
                                **params},
                        remaps={"__ns": NS, "__node": name, "image": image_topic}, command=command)
    publisher = probe.node.create_publisher(CompressedImage if compressed else Image, image_topic, 10)
    results_sub, results = probe.collect(Classification, f"{NS}/{name}/classification")
    _, diagnostics = probe.collect(DiagnosticArray, "/diagnostics")
    matched = wait_until(lambda: not process.alive() or (
        publisher.get_subscription_count() >= 1 and results_sub.get_publisher_count() >= 1), STARTUP_S)
    assert process.alive() and matched, f"{name} did not come up:\n{process.output()}"
    # Matched on this side does not mean matched on the node's: send a small frame until one comes back.
    from glassware_vision.messages import compressed_msg, image_msg

    warm_up = np.zeros((48, 64, 3), np.uint8)

    def answered() -> bool:
        if not results:
            make = compressed_msg if compressed else image_msg
            publisher.publish(make(warm_up, header(probe)))
        return bool(results)

    assert wait_until(answered, STARTUP_S, 0.2), f"{name} does not answer:\n{process.output()}"
    return NodeUnderTest(process, name, image_topic, publisher, results, diagnostics)
