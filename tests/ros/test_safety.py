"""What the arm may act on: no smoothed history across a gap in the stream, no accepted answer from a stale or
unstamped frame, and every decision made with one snapshot of the parameters."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from ros_harness import header, start_classifier, wait_until

pytestmark = pytest.mark.ros


def _stamped(probe, offset_ms: float):
    """A header stamped `offset_ms` from now (negative: in the past)."""
    from builtin_interfaces.msg import Time

    ns = probe.node.get_clock().now().nanoseconds + int(offset_ms * 1e6)
    h = header(probe)
    h.stamp = Time(sec=ns // 10**9, nanosec=ns % 10**9)
    return h


@pytest.fixture(scope="module")
def sharp_bundle(tiny_bundle, tmp_path_factory):
    """The tiny bundle with a near-zero temperature and no open-set score: its scores are almost one-hot, so
    which frames a smoothed answer owes something to shows in the label."""
    import json
    import shutil

    from glassware.edge_runtime.bundle import MANIFEST, write_manifest

    bundle = tmp_path_factory.mktemp("sharp") / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["calibration"].update(temperature=1e-4, uniform_mix=0.0)
    manifest.pop("openset", None)
    write_manifest(bundle, manifest)
    return bundle


def test_a_gap_or_a_jump_back_in_the_stamps_resets_the_smoother(start_ros, probe, sharp_bundle, class_frames):
    from glassware.edge_runtime.classifier import Classifier
    from glassware_vision.messages import image_msg

    reference = Classifier(sharp_bundle, format="tflite_int8")
    rng = np.random.default_rng(0)
    candidates = [bgr for _, bgr in class_frames] + [np.full((480, 640, 3), (b, g, r), np.uint8)
                                                     for b, g, r in rng.integers(0, 256, (30, 3))]
    tops = {reference.classify_frame(bgr, "bgr8").class_index: bgr for bgr in candidates}
    assert len(tops) >= 2, "no two frames with different top classes"
    (first, a), (second, b) = list(tops.items())[:2]
    after = reference.classify_frame(b, "bgr8")
    node = start_classifier(start_ros, probe, sharp_bundle, "gap_classifier", smoothing=True, threshold=0.0,
                            smoothing_reset_gap_ms=500.0, format="tflite_int8")
    base = _stamped(probe, 0).stamp
    sent = 0

    def send(bgr, jump_ms: float = 0.0):
        nonlocal sent
        h = header(probe)
        ns = base.sec * 10**9 + base.nanosec + sent * 33_000_000 + int(jump_ms * 1e6)
        h.stamp.sec, h.stamp.nanosec = ns // 10**9, ns % 10**9
        sent += 1
        node.publisher.publish(image_msg(bgr, h))
        out = node.classification_for(h.stamp)
        assert out is not None, node.process.output()
        return out

    for jump_ms in (None, 2000.0, -60_000.0):  # no gap (the control), a pause, stamps jumping back a minute
        held = [send(a) for _ in range(6)][-1]
        assert held.label == reference.class_names[first]
        out = send(b, jump_ms or 0.0)
        if jump_ms is None:  # the smoother still holds the object before
            assert out.label == reference.class_names[first], out
        else:  # the first answer after the gap is the new frame's own
            assert out.label == reference.class_names[second] and out.smoothed
            assert out.confidence == pytest.approx(after.confidence, abs=1e-6)
            base.sec += int(jump_ms / 1000)  # the stream goes on from the new stamps
    assert int(node.status(lambda v: int(v["gaps"]) >= 2)["gaps"]) >= 2


def test_stale_and_unstamped_frames_are_never_accepted_and_are_counted(raw_node, probe, class_frames, reference):
    from glassware_vision.messages import image_msg
    from std_msgs.msg import Header

    bgr = class_frames[0][1]
    assert all(r.successful for r in raw_node.set_parameters(probe, threshold=0.0, max_frame_age_ms=1500.0))
    before = raw_node.status()
    try:
        stale = image_msg(bgr, _stamped(probe, -10_000))
        raw_node.publisher.publish(stale)
        out = raw_node.classification_for(stale.header.stamp)
        assert out is not None and out.stale and not out.accepted and out.label == "unknown"
        assert out.frame_age_ms >= 10_000 and out.raw_label == reference.class_names[
            reference.classify_frame(bgr, "bgr8").class_index]  # the frame's own scores are still there

        unstamped = image_msg(bgr, Header(frame_id="no_stamp"))
        raw_node.publisher.publish(unstamped)
        assert wait_until(lambda: any(m.header.frame_id == "no_stamp" for _, m in raw_node.results), 10)
        out = next(m for _, m in raw_node.results if m.header.frame_id == "no_stamp")
        assert out.stale and not out.accepted and math.isnan(out.frame_age_ms)

        after = raw_node.status(lambda v: int(v["unstamped"]) > int(before["unstamped"]))
        assert int(after["stale"]) - int(before["stale"]) == 2
        assert int(after["unstamped"]) - int(before["unstamped"]) == 1
        assert after["latency_p99_ms"] != "nan"  # the unstamped frame is not in the latency figures
    finally:
        assert all(r.successful for r in raw_node.set_parameters(probe, max_frame_age_ms=0.0))


def test_each_decision_agrees_with_the_threshold_it_reports_while_the_threshold_changes(raw_node, probe,
                                                                                         class_frames):
    """The threshold changes on the executor thread while the worker decides: each message must show the
    threshold its own decision used."""
    from glassware_vision.messages import image_msg

    first = len(raw_node.results)
    frames = [bgr for _, bgr in class_frames]
    for k in range(40):
        raw_node.publisher.publish(image_msg(frames[k % len(frames)], header(probe)))
        if k % 4 == 0:
            raw_node.set_parameters(probe, threshold=float(np.random.default_rng(k).uniform(0.2, 0.9)))
        time.sleep(0.01)
    time.sleep(0.5)  # the last results in flight
    results = [m for _, m in list(raw_node.results)[first:] if not m.refused]
    assert len(results) >= 5
    for m in results:
        assert m.accepted == (m.confidence >= m.threshold), (m.confidence, m.threshold, m.accepted)
