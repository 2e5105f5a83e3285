"""QoS: the classifier subscribes best effort (matching best-effort and reliable cameras), and the standard ROS 2
QoS overrides change what the classifier and the recorder subscribe with."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ros_harness import EXECUTABLES, NS, header, start_classifier, wait_until

pytestmark = pytest.mark.ros


def _subscription_reliability(probe, topic: str):
    def subscriptions():
        return probe.node.get_subscriptions_info_by_topic(topic)

    assert wait_until(lambda: bool(subscriptions()), 10), f"no subscription on {topic}"
    return subscriptions()[0].qos_profile.reliability


def test_the_classifier_takes_best_effort_and_reliable_cameras_and_can_be_made_reliable(raw_node, start_ros, probe,
                                                                                         tiny_bundle, class_frames):
    from glassware_vision.messages import image_msg
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    assert _subscription_reliability(probe, raw_node.image_topic) == ReliabilityPolicy.BEST_EFFORT
    best_effort = probe.node.create_publisher(type(image_msg(class_frames[0][1], header(probe))), raw_node.image_topic,
                                              QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
    try:
        assert wait_until(lambda: best_effort.get_subscription_count() >= 1, 10)
        msg = image_msg(class_frames[0][1], header(probe))

        def classified() -> bool:  # best effort: the first frames after matching may be lost
            best_effort.publish(msg)
            return raw_node.classification_for(msg.header.stamp, timeout=0.5) is not None

        assert wait_until(classified, 10), raw_node.process.output()
    finally:
        probe.node.destroy_publisher(best_effort)

    name = "reliable_classifier"
    node = start_classifier(start_ros, probe, tiny_bundle, name, format="tflite_int8",
                            **{f"qos_overrides.{NS}/{name}/image.subscription.reliability": "reliable",
                               f"qos_overrides.{NS}/{name}/image.subscription.depth": 3})
    assert _subscription_reliability(probe, node.image_topic) == ReliabilityPolicy.RELIABLE


def test_the_recorder_records_a_best_effort_camera_with_an_override(start_ros, probe, tmp_path):
    from glassware_vision.messages import image_msg
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    topic, out = f"{NS}/best_effort_camera/image", tmp_path / "recorded.jsonl"
    recorder = start_ros("recorder", name="recorder", command=[str(EXECUTABLES / "recorder"), "--out", str(out)],
                         params={f"qos_overrides.{topic}.subscription.reliability": "best_effort"},
                         remaps={"image": topic})
    camera = probe.node.create_publisher(Image, topic, QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
    try:
        assert wait_until(lambda: camera.get_subscription_count() >= 1 or not recorder.alive(), 60), recorder.output()
        frame = np.zeros((48, 64, 3), np.uint8)

        def recorded() -> bool:
            camera.publish(image_msg(frame, header(probe)))
            return out.exists() and any(json.loads(line)["kind"] == "frame" for line in out.read_text().splitlines())

        assert wait_until(recorded, 10, 0.1), recorder.output()
    finally:
        probe.node.destroy_publisher(camera)
    assert recorder.stop() == 0, recorder.output()
