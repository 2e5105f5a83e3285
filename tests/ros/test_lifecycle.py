"""classifier_node as a managed node, driven through the lifecycle_msgs services: frames are classified only
while it is active."""

from __future__ import annotations

import numpy as np
import pytest

from ros_harness import NS, STARTUP_S, header, wait_until

pytestmark = pytest.mark.ros


def test_configure_activate_deactivate_activate_cleanup(start_ros, probe, tiny_bundle):
    from glassware_vision.messages import image_msg
    from glassware_vision_msgs.msg import Classification
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState
    from sensor_msgs.msg import Image

    name = "managed_classifier"
    node = start_ros("classifier_node", name=name, params={"bundle": tiny_bundle, "autostart": False},
                     remaps={"__ns": NS, "__node": name, "image": f"{NS}/{name}/image"})
    change = probe.node.create_client(ChangeState, f"{NS}/{name}/change_state")
    get = probe.node.create_client(GetState, f"{NS}/{name}/get_state")
    camera = probe.node.create_publisher(Image, f"{NS}/{name}/image", 10)
    results_sub, results = probe.collect(Classification, f"{NS}/{name}/classification")
    frame = np.zeros((48, 64, 3), np.uint8)

    def state() -> str:
        return probe.call(get, GetState.Request(), timeout=STARTUP_S, attempts=4).current_state.label

    def transition(transition_id: int) -> None:
        assert probe.call(change, ChangeState.Request(transition=Transition(id=transition_id)), STARTUP_S).success

    def classifies() -> bool:
        """Frames published now get results (waits for the subscription to match first)."""
        assert wait_until(lambda: camera.get_subscription_count() >= 1, 10), "not subscribed while active"
        before = len(results)

        def answered() -> bool:
            camera.publish(image_msg(frame, header(probe)))
            return len(results) > before

        return wait_until(answered, 10, 0.1)

    def unsubscribed() -> bool:
        return wait_until(lambda: camera.get_subscription_count() == 0, 10)

    try:
        assert state() == "unconfigured" and unsubscribed()
        transition(Transition.TRANSITION_CONFIGURE)
        assert state() == "inactive" and unsubscribed()
        transition(Transition.TRANSITION_ACTIVATE)
        assert state() == "active" and classifies(), node.output()
        transition(Transition.TRANSITION_DEACTIVATE)
        assert state() == "inactive" and unsubscribed()
        transition(Transition.TRANSITION_ACTIVATE)
        assert state() == "active" and classifies(), node.output()
        transition(Transition.TRANSITION_DEACTIVATE)
        transition(Transition.TRANSITION_CLEANUP)
        assert state() == "unconfigured"
        assert wait_until(lambda: results_sub.get_publisher_count() == 0, 10)  # its publishers are released
    finally:
        for entity in (change, get):
            probe.node.destroy_client(entity)
        probe.node.destroy_publisher(camera)
    assert node.stop() == 0, node.output()


def test_a_failed_configure_leaves_a_managed_node_running_and_says_why(start_ros, probe, tmp_path):
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    name = "misconfigured_classifier"
    node = start_ros("classifier_node", name=name, params={"bundle": tmp_path / "missing", "autostart": False},
                     remaps={"__ns": NS, "__node": name})
    change = probe.node.create_client(ChangeState, f"{NS}/{name}/change_state")
    get = probe.node.create_client(GetState, f"{NS}/{name}/get_state")
    try:
        request = ChangeState.Request(transition=Transition(id=Transition.TRANSITION_CONFIGURE))
        # A configure that fails leaves the node unconfigured, so sending it again is harmless.
        assert not probe.call(change, request, STARTUP_S, attempts=4).success
        assert probe.call(get, GetState.Request(), attempts=4).current_state.label == "unconfigured"
    finally:
        probe.node.destroy_client(change)
        probe.node.destroy_client(get)
    assert node.alive() and "not a model bundle" in node.output()
    assert node.stop() == 0, node.output()
