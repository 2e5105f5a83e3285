"""The glassware_vision modules that need no running graph: message conversions, statistics, sources."""

from __future__ import annotations

import array
import sys

import cv2
import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.usefixtures("ros_env")]


def test_frame_of_honours_step_padding_and_byte_order():
    from glassware_vision.messages import frame_of
    from sensor_msgs.msg import Image

    rgb = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    padded = np.zeros((4, 20), np.uint8)
    padded[:, :15] = rgb.reshape(4, 15)
    msg = Image(height=4, width=5, encoding="rgb8", step=20, data=array.array("B", padded.tobytes()))
    assert np.array_equal(frame_of(msg), rgb)

    mono16 = np.array([[1, 256], [4096, 65535]], np.uint16)
    big_endian = Image(height=2, width=2, encoding="mono16", step=4, is_bigendian=1,
                       data=array.array("B", mono16.astype(">u2").tobytes()))
    assert np.array_equal(frame_of(big_endian)[:, :, 0], mono16) or sys.byteorder == "big"


def test_image_and_compressed_messages_round_trip():
    from glassware_vision.messages import bgr_of, compressed_msg, frame_of, image_msg
    from std_msgs.msg import Header

    bgr = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8), (5, 5), 0)
    header = Header(frame_id="cam")
    raw = image_msg(bgr, header)
    assert (raw.height, raw.width, raw.step, raw.encoding, raw.header) == (48, 64, 192, "bgr8", header)
    assert np.array_equal(frame_of(raw), bgr) and np.array_equal(bgr_of(raw), bgr)
    blue = np.zeros((48, 64, 3), np.uint8)
    blue[..., 0] = 200
    jpeg = compressed_msg(blue, header, quality=95)
    assert jpeg.format == "jpeg" and np.abs(bgr_of(jpeg).astype(int) - blue).max() <= 4  # still blue, not red


def test_classification_message_carries_decision_and_raw_scores():
    from glassware.edge_runtime.classifier import Prediction
    from glassware_vision.messages import Decision, classification_msg
    from std_msgs.msg import Header

    scores = np.array([0.1, 0.7, 0.2], np.float32)
    prediction = Prediction("b", 1, 0.7, True, scores, 1.5, 0.5)
    decision = Decision("unknown", 0.45, False, 0.5, True, False, 12.5)
    msg = classification_msg(Header(frame_id="cam"), prediction, decision, ["a", "b", "c"], "vgg-0123456789ab",
                             "tflite_int8")
    assert (msg.label, msg.accepted, msg.smoothed, msg.raw_label, msg.stale) == ("unknown", False, True, "b", False)
    assert msg.threshold == 0.5 and msg.frame_age_ms == 12.5
    assert msg.raw_confidence == pytest.approx(0.7) and msg.confidence == pytest.approx(0.45)
    assert list(msg.class_names) == ["a", "b", "c"] and np.allclose(msg.scores, scores)
    assert (msg.bundle_id, msg.model_format, msg.header.frame_id) == ("vgg-0123456789ab", "tflite_int8", "cam")


def test_draw_label_marks_a_copy():
    from glassware_vision.messages import draw_label

    bgr = np.full((480, 640, 3), 128, np.uint8)
    drawn = draw_label(bgr, "B 0.93", accepted=True)
    assert drawn.shape == bgr.shape and (drawn != 128).any() and (bgr == 128).all()


def test_stream_stats_report_and_diagnostic_levels():
    from diagnostic_msgs.msg import DiagnosticStatus
    from glassware_vision.stats import StreamStats, diagnostic_status

    stats = StreamStats()
    def status(report, extra=None):
        return diagnostic_status("/ns/n: c", "id", report, extra or {}, topic="/cam/image", stall_s=0.5)

    first = status(stats.report())
    assert first.level == DiagnosticStatus.WARN and first.message == "no frames on /cam/image"
    for latency in range(1, 101):
        stats.count("received")
        stats.processed(float(latency), 0.5)
    stats.count("received")
    stats.count("bad")
    stats.count("received")
    stats.processed(float("nan"), 0.5, stale=True)  # no stamp: counted, not a latency
    report = stats.report()
    assert (report["received"], report["processed"], report["bad"]) == (102, 101, 1)
    assert (report["unstamped"], report["stale"]) == (1, 1)
    assert report["latency_p50_ms"] == pytest.approx(50.5) and report["latency_p99_ms"] == pytest.approx(99.01)
    assert report["input_rate_hz"] > 0
    malformed = status(report, {"backend": "x"})
    assert malformed.level == DiagnosticStatus.WARN and "1 malformed" in malformed.message
    assert {kv.key: kv.value for kv in malformed.values}["backend"] == "x"
    stats.count("received")
    stats.processed(1.0, 0.5)
    report = stats.report()
    assert status(report).level == DiagnosticStatus.OK
    stalled = status(report | {"waiting_s": 0.7})
    assert stalled.level == DiagnosticStatus.ERROR and stalled.message.startswith("stalled")


def test_bag_sources_refuse_unreadable_input(tmp_path):
    from glassware.edge_runtime.sources import SourceError
    from glassware_vision.sources import bag_topic, is_bag

    (tmp_path / "bag").mkdir()
    (tmp_path / "bag" / "metadata.yaml").write_text("rosbag2_bagfile_information: {}\n")
    assert is_bag(tmp_path / "bag") and is_bag(tmp_path / "x.mcap") and not is_bag(tmp_path / "x.mp4")
    with pytest.raises(SourceError, match="not a readable rosbag2"):
        bag_topic(tmp_path / "bag")


def test_one_rule_picks_a_bags_camera_topic_for_replay_and_the_replay_publisher(tmp_path):
    """The topic named wins; else the only image topic; several are an error that lists them."""
    from glassware.edge_runtime.sources import SourceError, open_source
    from glassware_vision.sources import bag_topic
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.LATEST)
    image = "sensor_msgs/msg/Image"
    for name, topics in {"one": ["/cam/a", "/chatter"], "two": ["/cam/a", "/cam/b", "/chatter"]}.items():
        with Writer(tmp_path / name, version=9) as writer:
            for topic in topics:
                writer.add_connection(topic, "std_msgs/msg/String" if topic == "/chatter" else image, typestore=store)
    assert bag_topic(tmp_path / "one") == open_source(tmp_path / "one").topic == "/cam/a"
    assert bag_topic(tmp_path / "two", "/cam/b") == open_source(tmp_path / "two", "/cam/b").topic == "/cam/b"
    with pytest.raises(SourceError, match=r"2 image topics \['/cam/a', '/cam/b'\]; choose one with the bag_topic"):
        bag_topic(tmp_path / "two")
    with pytest.raises(SourceError, match=r"2 image topics .*; choose one with --topic"):
        open_source(tmp_path / "two")
    with pytest.raises(SourceError, match=r"no Image/CompressedImage topic '/chatter'"):
        bag_topic(tmp_path / "one", "/chatter")
