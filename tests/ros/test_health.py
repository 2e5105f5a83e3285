"""Health that tells the truth: a stalled classifier is ERROR and fails the healthcheck; no frames is WARN naming
the topic; status names are fully qualified."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ros_harness import EXECUTABLES, NS, header, start_classifier

pytestmark = pytest.mark.ros
ERROR, WARN = 2, 1


def test_a_stalled_classifier_is_an_error_and_fails_the_healthcheck(start_ros, probe, tiny_bundle, class_frames,
                                                                   ros_env, tmp_path):
    from glassware_vision.messages import image_msg

    flag = tmp_path / "stall"
    node = start_classifier(start_ros, probe, tiny_bundle, "stalling_classifier", format="tflite_int8",
                            command=[sys.executable, str(Path(__file__).with_name("stalling_node.py")), str(flag)])
    flag.touch()
    sent = probe.node.get_clock().now().nanoseconds
    node.publisher.publish(image_msg(class_frames[0][1], header(probe)))
    values = node.status(lambda v: v["level"] == ERROR, timeout=15)
    assert values["message"].startswith("stalled: a frame has waited")
    error_at = next(t for t, a in node.diagnostics for s in a.status
                    if s.name == f"{NS}/{node.name}: classification" and s.level[0] == ERROR)
    print(f"\nERROR reported {(error_at - sent) / 1e9:.2f} s after the frame the classifier stalled on "
          f"(stall_timeout_ms 500, diagnostics at 1 Hz)")

    check = subprocess.run([str(EXECUTABLES / "healthcheck"), "--node", f"{NS}/{node.name}", "--timeout", "10"],
                           env=ros_env, capture_output=True, text=True, timeout=60)
    assert check.returncode == 1 and '"level": "ERROR"' in check.stdout, check

    flag.unlink()  # the classifier goes on; with no frames coming the status says where it waits for them
    values = node.status(lambda v: v["level"] == WARN, timeout=15)
    assert values["message"] == f"no frames on {node.image_topic}"
    assert node.process.alive()
