"""Ctrl-C as a terminal and `ros2 launch` deliver it: SIGINT to the node's whole process group, then SIGINT again
0-500 ms later. At start-up, while the bundle loads and while classifying: exit 0 and no traceback."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import numpy as np
import pytest

from ros_harness import EXECUTABLES, NS, STARTUP_S, header, wait_until

pytestmark = pytest.mark.ros


@pytest.mark.parametrize("phase", ["importing", "loading", "classifying"] * 2)
def test_a_double_sigint_stops_the_node_cleanly(phase, ros_env, probe, tiny_bundle, tmp_path):
    from glassware_vision.messages import image_msg
    from glassware_vision_msgs.msg import Classification
    from sensor_msgs.msg import Image

    name = f"sigint_{phase}_{random.randrange(10**6)}"
    log = tmp_path / "node.log"
    with open(log, "w") as out:
        node = subprocess.Popen([str(EXECUTABLES / "classifier_node"), "--ros-args", "-p", f"bundle:={tiny_bundle}",
                                 "-p", "format:=auto", "-r", f"__ns:={NS}", "-r", f"__node:={name}"],
                                env=ros_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    started = time.monotonic()
    publisher = probe.node.create_publisher(Image, f"{NS}/image", 10)
    _, results = probe.collect(Classification, f"{NS}/{name}/classification")
    try:
        if phase == "importing":
            time.sleep(0.2)
        elif phase == "loading":  # format=auto times the int8 formats after the bundle is read
            assert wait_until(lambda: "Created TensorFlow Lite" in log.read_text() or node.poll() is not None,
                              STARTUP_S, 0.005), log.read_text()
        else:
            frame = np.zeros((48, 64, 3), np.uint8)

            def classifying() -> bool:
                publisher.publish(image_msg(frame, header(probe)))
                return bool(results)

            assert wait_until(classifying, STARTUP_S, 0.03), log.read_text()
        second = random.uniform(0.0, 0.5)
        os.killpg(node.pid, signal.SIGINT)
        time.sleep(second)
        if node.poll() is None:
            os.killpg(node.pid, signal.SIGINT)
        code = node.wait(timeout=30)
    finally:
        probe.node.destroy_publisher(publisher)
        if node.poll() is None:
            node.kill()
    output = log.read_text()
    print(f"\n{phase}: SIGINT at {time.monotonic() - started - second:.2f} s, again {second:.2f} s later: exit {code}")
    assert code == 0 and "Traceback" not in output, output


def test_sigusr1_prints_where_every_thread_is_and_the_node_goes_on(start_ros, probe, tmp_path):
    """What a node that will not stop is doing: the harness asks for it before killing one."""
    from sensor_msgs.msg import Image

    topic = f"{NS}/sigusr1_camera/image"
    recorder = start_ros("recorder", name="sigusr1", command=[str(EXECUTABLES / "recorder"), "--out",
                                                                str(tmp_path / "recorded.jsonl")], remaps={"image": topic})
    camera = probe.node.create_publisher(Image, topic, 10)
    try:
        assert wait_until(lambda: camera.get_subscription_count() >= 1 or not recorder.alive(), STARTUP_S), \
            recorder.output()
        recorder.proc.send_signal(signal.SIGUSR1)
        assert wait_until(lambda: "in run_node" in recorder.output(), 10, 0.1), recorder.output()
        assert recorder.alive() and camera.get_subscription_count() >= 1
    finally:
        probe.node.destroy_publisher(camera)
    assert recorder.stop() == 0, recorder.output()
