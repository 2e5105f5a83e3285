"""classifier_node as a real process over DDS (loopback, private domain), against the in-process edge runtime."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import numpy as np
import pytest

from ros_harness import INSTALL, STARTUP_S, header, start_classifier, wait_until

pytestmark = pytest.mark.ros


def test_every_class_is_classified_with_the_input_header(raw_node, probe, class_frames, reference):
    from glassware_vision.messages import image_msg

    correct = 0
    for class_name, bgr in class_frames:
        sent = header(probe)
        raw_node.publisher.publish(image_msg(bgr, sent))
        out = raw_node.classification_for(sent.stamp)
        assert out is not None, f"no classification for the {class_name} frame\n{raw_node.process.output()}"
        expected = reference.classify_frame(bgr, "bgr8")
        assert out.header == sent
        assert list(out.class_names) == reference.class_names
        assert out.raw_label == reference.class_names[expected.class_index]
        np.testing.assert_allclose(np.array(out.scores), expected.scores, atol=1e-6)
        assert (out.label, out.accepted) == (expected.label, expected.accepted)
        assert out.confidence == pytest.approx(expected.confidence, abs=1e-6)
        assert out.bundle_id == reference.bundle.bundle_id and out.model_format == reference.format_name
        assert not out.smoothed and out.inference_ms > 0 and out.preprocess_ms > 0
        correct += out.raw_label == class_name
    print(f"\nnode top-1 on one frame per class: {correct}/{len(class_frames)} (tiny bundle)")


def test_compressed_input_smoothing_debug_image_and_corrupt_jpeg(start_ros, probe, tiny_bundle, class_frames,
                                                                   reference):
    from glassware_vision.messages import compressed_msg
    from sensor_msgs.msg import CompressedImage, Image

    node = start_classifier(start_ros, probe, tiny_bundle, "jpeg_classifier", compressed=True, smoothing=True,
                            publish_debug_image=True, format=reference.format_name)
    debug_subscription, debug_images = probe.collect(Image, f"/test/{node.name}/debug_image")
    # the debug topic keeps no history: match before the first frame, or its debug image can be lost
    assert wait_until(lambda: debug_subscription.get_publisher_count() > 0, 10), "debug_image never matched"
    for class_name, bgr in class_frames[:3]:
        msg = compressed_msg(bgr, header(probe))
        node.publisher.publish(msg)
        out = node.classification_for(msg.header.stamp)
        assert out is not None, f"no classification for the {class_name} JPEG\n{node.process.output()}"
        expected = reference.classify_bytes(msg.data.tobytes())
        assert out.header == msg.header and out.smoothed
        np.testing.assert_allclose(np.array(out.scores), expected.scores, atol=1e-6)  # this frame's own scores
        assert wait_until(lambda: any(m.header == msg.header for _, m in debug_images), 5), "no debug image"
    debug = next(m for _, m in debug_images if m.header == msg.header)
    assert (debug.width, debug.height, debug.encoding) == (640, 480, "bgr8")
    for data in (b"", b"\xff\xd8\xff\xe0 truncated jpeg", b"not an image at all"):
        node.publisher.publish(CompressedImage(header=header(probe), format="jpeg", data=data))
        time.sleep(0.05)  # one at a time, so none is replaced in the latest-frame slot
    values = node.status(lambda v: int(v["bad"]) >= 1)
    assert node.process.alive()
    assert "not a decodable image" in values["last_bad_frame"] or "empty" in values["last_bad_frame"]
    assert node.process.stop(signal.SIGTERM) == 0, node.process.output()


def test_malformed_burst_is_counted_and_survived(raw_node, probe, class_frames):
    from glassware_vision.messages import image_msg
    from sensor_msgs.msg import Image

    good = image_msg(class_frames[0][1], header(probe))
    malformed = [
        Image(height=480, width=640, encoding="bgr8", step=1920, data=bytes(1000)),  # size mismatch
        Image(height=480, width=640, encoding="bgr8", step=100, data=bytes(48000)),  # step shorter than a row
        Image(height=2, width=2, encoding="nv12", step=2, data=bytes(6)),  # unknown encoding
        Image(height=2, width=3, encoding="yuv422", step=6, data=bytes(12)),  # 4:2:2 with an odd width
        Image(height=0, width=0, encoding="rgb8", step=0, data=b""),  # empty
    ]
    before = raw_node.status()
    burst = 40
    for i in range(burst):
        raw_node.publisher.publish(malformed[i % len(malformed)])
        time.sleep(0.01)
    good.header = header(probe)
    raw_node.publisher.publish(good)
    assert raw_node.classification_for(good.header.stamp) is not None, raw_node.process.output()
    assert raw_node.process.alive()

    after = raw_node.status(lambda v: int(v["processed"]) > int(before["processed"]))
    delta = {k: int(after[k]) - int(before[k]) for k in ("received", "bad", "replaced", "skipped_by_rate", "processed")}
    assert delta["bad"] >= burst // 2, delta
    # nothing is lost silently: every frame taken in was classified, rejected as bad, or replaced by a newer one
    assert delta["received"] == delta["bad"] + delta["replaced"] + delta["skipped_by_rate"] + delta["processed"], delta
    assert raw_node.process.output().count("skipped a malformed frame") < delta["bad"], "warnings are not throttled"


def test_parameters_validated_and_applied_at_run_time(raw_node, probe, class_frames):
    from glassware_vision.messages import image_msg

    frame = class_frames[1][1]
    assert all(r.successful for r in raw_node.set_parameters(probe, threshold=0.0))
    out = raw_node.answer(probe, frame)
    assert out.threshold == 0.0 and out.accepted and out.label == out.raw_label
    assert all(r.successful for r in raw_node.set_parameters(probe, threshold=1.0))
    out = raw_node.answer(probe, frame)
    assert out.threshold == 1.0 and out.accepted == (out.confidence >= 1.0)

    rejected = {"threshold": 1.5, "max_rate_hz": -1.0, "bundle": "/elsewhere", "compressed": True}
    for name, value in rejected.items():
        [result] = raw_node.set_parameters(probe, **{name: value})
        assert not result.successful, f"{name}={value} was accepted"
    [result] = raw_node.set_parameters(probe, smoothing_alpha=0.0)  # in the range, refused by the node's own check
    assert not result.successful and "smoothing_alpha must be > 0" in result.reason

    assert all(r.successful for r in raw_node.set_parameters(probe, max_rate_hz=2.0))
    first = len(raw_node.results)
    start = time.monotonic()
    while time.monotonic() - start < 2.0:  # 30 Hz for 2 s, limited to 2 Hz -> about 4 classified
        raw_node.publisher.publish(image_msg(class_frames[2][1], header(probe)))
        time.sleep(1 / 30)
    time.sleep(0.3)  # the result of a frame still in the node may arrive (the last one may be skipped by rate)
    classified = len(raw_node.results) - first
    assert raw_node.set_parameters(probe, max_rate_hz=0.0)[0].successful
    assert 2 <= classified <= 6, f"{classified} classified in 2 s at max_rate_hz 2"


def test_the_bundles_class_thresholds_apply_unless_the_parameter_sets_one(start_ros, probe, tiny_bundle, tmp_path,
                                                                         class_frames, reference):
    """Without the `threshold` parameter the node keeps the bundle's per-class thresholds (the parameter shows
    the global one) and reports the threshold of the class it answered; setting it overrides every class."""
    import json
    import shutil

    from glassware.edge_runtime.bundle import MANIFEST, write_manifest

    frame = next(bgr for _, bgr in class_frames if not reference.classify_frame(bgr, "bgr8").refused)
    top = reference.classify_frame(frame, "bgr8").class_index
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    manifest = json.loads((bundle / MANIFEST).read_text())
    thresholds = [1.0] * len(manifest["class_names"])
    thresholds[top] = 0.0  # only the top class's own threshold can let this frame through
    manifest["calibration"]["class_thresholds"] = thresholds
    write_manifest(bundle, manifest)
    node = start_classifier(start_ros, probe, bundle, "per_class_classifier", format=reference.format_name)

    out = node.answer(probe, frame)
    assert out.accepted and out.label == out.raw_label and out.threshold == 0.0
    status = node.status()
    assert status["threshold"] == f"{manifest['calibration']['threshold']:.3f}"
    assert status["class_thresholds"] == " ".join(f"{t:.3f}" for t in thresholds)
    assert all(r.successful for r in node.set_parameters(probe, threshold=1.0))
    out = node.answer(probe, frame)
    assert out.threshold == 1.0 and out.accepted == (out.confidence >= 1.0)


def test_the_bundle_swaps_at_run_time_and_frames_it_is_unsure_of_are_collected(start_ros, probe, tiny_bundle,
                                                                                 class_frames, tmp_path):
    """Setting `bundle` while running: a tampered bundle is refused and the running model keeps answering (WARN);
    a good one takes over between two frames, and each message's bundle_id says which answered. With
    collect_dir set, frames answered unknown land there, for `glassware label`."""
    from glassware.edge_runtime.bundle import Bundle
    from glassware.edge_runtime.collect import collected_frames
    from glassware.evaluation.node_stress import second_bundle

    fmt = "tflite_int8"
    other, tampered = second_bundle(tiny_bundle, fmt, tmp_path)  # one format only: another bundle_id
    before, after = Bundle.load(tiny_bundle).bundle_id, Bundle.load(other).bundle_id
    assert before != after
    collected = tmp_path / "collected"
    node = start_classifier(start_ros, probe, tiny_bundle, "swap_classifier", format=fmt, collect_dir=collected,
                            collect_max_rate_hz=0.0, collect_audit_share=1.0)
    frame = class_frames[0][1]

    assert node.answer(probe, frame).bundle_id == before
    assert all(r.successful for r in node.set_parameters(probe, bundle=str(tampered)))
    status = node.status(lambda v: "refused" in v["bundle_swap"], timeout=30)
    assert status["level"] >= 1  # WARN: the new bundle was refused (or no frames lately), never OK
    assert node.answer(probe, frame).bundle_id == before
    assert all(r.successful for r in node.set_parameters(probe, bundle=str(other)))
    assert wait_until(lambda: node.answer(probe, frame).bundle_id == after, 30), node.process.output()
    assert node.status(lambda v: "swapped" in v["bundle_swap"], timeout=10)
    assert wait_until(lambda: len(collected_frames(collected)[0]) > 0, 10)
    frames, problems = collected_frames(collected)
    assert problems == [] and {meta["bundle_id"] for _, meta in frames} <= {before, after}
    assert all(meta["frame_id"] == "gripper_camera" and meta["source"] == node.image_topic for _, meta in frames)


@pytest.mark.parametrize("case", ["missing", "tampered"])
def test_bad_bundle_exits_with_a_clear_error(case, ros_env, tiny_bundle, tmp_path):
    import shutil

    bundle = tmp_path / "bundle"
    if case == "tampered":
        shutil.copytree(tiny_bundle, bundle)
        model = next(bundle.glob("*.tflite"))
        data = bytearray(model.read_bytes())
        data[len(data) // 2] ^= 0xFF
        model.write_bytes(bytes(data))
    result = subprocess.run([str(INSTALL / "glassware_vision/lib/glassware_vision/classifier_node"), "--ros-args",
                             "-p", f"bundle:={bundle}"], env=ros_env, capture_output=True, text=True, timeout=STARTUP_S)
    assert result.returncode == 2
    expected = "not a model bundle" if case == "missing" else "fails its sha256 check"
    assert f"classifier_node: cannot start: {bundle}" in result.stderr and expected in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_30hz_640x480_soak_latency(raw_node, probe, class_frames, ros_env):
    """30 s of 640x480 bgr8 at 30 Hz: every classified frame is fresh (latest-frame, no queue)."""
    from glassware_vision.messages import image_msg

    period_s, seconds = 1 / 30, 30.0
    first = len(raw_node.results)
    healthcheck = subprocess.Popen([str(INSTALL / "glassware_vision/lib/glassware_vision/healthcheck"),
                                    "--node", "/test/raw_classifier", "--timeout", "20"],
                                   env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    msg = image_msg(class_frames[3][1], header(probe))
    start = time.monotonic()
    sent = 0
    while (due := start + sent * period_s) < start + seconds:
        time.sleep(max(due - time.monotonic(), 0))
        msg.header = header(probe)
        raw_node.publisher.publish(msg)
        sent += 1
    assert raw_node.classification_for(msg.header.stamp) is not None, "the newest frame is always classified"
    health_out, health_err = healthcheck.communicate(timeout=30)

    results = list(raw_node.results)[first:]
    age_ms = np.array([(t - (m.header.stamp.sec * 10**9 + m.header.stamp.nanosec)) / 1e6 for t, m in results])
    work_ms = np.array([m.preprocess_ms + m.inference_ms for _, m in results])
    p50, p99 = np.percentile(age_ms, [50, 99])
    print(f"\n30 Hz 640x480 bgr8 for {seconds:.0f} s: {sent} sent, {len(results)} classified; end-to-end latency "
          f"(header stamp -> classification received) p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {age_ms.max():.1f} ms; "
          f"node work p50 {np.median(work_ms):.1f} ms")
    assert len(results) >= 0.5 * sent, "the node classified fewer than half of the frames"
    # Latest frame only: a result is never older than one period (at most one frame waits for the worker) plus
    # its own preprocessing and inference, plus delivery both ways. How much delivery and scheduling add depends
    # on what else the 2 cores run, so the test asserts what a queue would break, not an absolute bound: the
    # lateness does not grow over the 30 s (a queue of frames the node cannot keep up with grows every second),
    # and no result is ever a second late. The figures are printed for the closing note.
    late_ms = age_ms - work_ms - 1e3 * period_s
    third = len(late_ms) // 3
    first_third, last_third = np.median(late_ms[:third]), np.median(late_ms[-third:])
    print(f"beyond one period + own work: p50 {np.median(late_ms):.1f} ms, p99 {np.percentile(late_ms, 99):.1f} ms, "
          f"max {late_ms.max():.1f} ms; median first/last 10 s {first_third:.1f}/{last_third:.1f} ms "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    assert last_third <= first_third + 2e3 * period_s, "lateness grows: frames are queueing"
    assert late_ms.max() <= 1000.0
    assert healthcheck.returncode == 0, f"healthcheck: {health_out}\n{health_err}"


def test_a_collect_dir_that_cannot_be_written_is_reported_and_classification_goes_on(start_ros, probe, tiny_bundle,
                                                                                     class_frames, tmp_path):
    from glassware_vision.messages import image_msg

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    node = start_classifier(start_ros, probe, tiny_bundle, "unwritable_collect", format="tflite_int8",
                            collect_dir=blocker / "collected")
    for _ in range(3):
        msg = image_msg(class_frames[0][1], header(probe))
        node.publisher.publish(msg)
        assert node.classification_for(msg.header.stamp) is not None, node.process.output()
    assert str(blocker) in node.status(lambda v: v["collect"] != "off", timeout=10)["collect"]
    assert node.status(lambda v: v["message"].startswith("not collecting"), timeout=10)["level"] == 1
