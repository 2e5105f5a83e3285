"""replay_publisher as a real process: videos and rosbag2 files (mcap, sqlite3) onto a camera topic."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ros_harness import STARTUP_S, wait_until

pytestmark = pytest.mark.ros
BAG_STAMP_S = 1_600_000_000  # recorded header stamps: 2020, far from now


def write_video(path, frames: int, fps: float = 30.0, size=(640, 480)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(cv2.GaussianBlur(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), (9, 9), 0))
    writer.release()


def write_bag(path, storage: str, compressed: bool, frames: int = 5) -> list:
    """A rosbag2 with `frames` camera messages at 10 Hz log time; returns the messages written."""
    from glassware_vision.messages import compressed_msg, image_msg
    from rclpy.serialization import serialize_message
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    from std_msgs.msg import Header

    msg_type = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    written = []
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        connection = writer.add_connection("/camera/image_raw", msg_type, typestore=get_typestore(Stores.ROS2_KILTED))
        for i in range(frames):
            bgr = np.full((48, 64, 3), 40 * i, np.uint8)
            header = Header(frame_id="bag_camera")
            header.stamp.sec, header.stamp.nanosec = BAG_STAMP_S, i * 100_000_000
            msg = compressed_msg(bgr, header) if compressed else image_msg(bgr, header)
            writer.write(connection, BAG_STAMP_S * 10**9 + i * 100_000_000, serialize_message(msg))
            written.append(msg)
    return written


def test_video_replays_through_the_classifier_at_the_recorded_rate(start_ros, probe, raw_node, tmp_path):
    from sensor_msgs.msg import Image

    frames = 20
    write_video(tmp_path / "gripper.mp4", frames)
    _, seen = probe.collect(Image, raw_node.image_topic, 50)  # reliable, deep: the probe must see every frame
    first_result = len(raw_node.results)
    replay = start_ros("replay_publisher", params={"source": tmp_path / "gripper.mp4", "wait_for_subscribers": 2},
                       remaps={"image": raw_node.image_topic})
    assert replay.proc.wait(timeout=STARTUP_S) == 0, replay.output()
    assert f"published {frames} frames" in replay.output()
    assert wait_until(lambda: len(seen) == frames, 5), f"{len(seen)} of {frames} frames seen"

    stamps_ns = np.array([m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m in seen])
    assert all(m.frame_id == "camera" for m in (msg.header for _, msg in seen))
    assert all(m.encoding == "bgr8" and (m.width, m.height) == (640, 480) for _, m in seen)
    period_ms = np.median(np.diff(stamps_ns)) / 1e6
    assert period_ms == pytest.approx(1000 / 30, abs=8), "not replayed at the recorded 30 fps"
    assert np.median([(t - s) / 1e6 for (t, _), s in zip(seen, stamps_ns)]) < 100, "stamps are not the publish time"

    results = raw_node.results[first_result:]
    assert len(results) >= frames // 2, f"only {len(results)} of {frames} replayed frames classified"
    assert {m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for _, m in results} <= set(stamps_ns.tolist())


@pytest.mark.parametrize("storage, recorded_compressed, restamp", [("mcap", True, False), ("sqlite3", False, True)])
def test_bag_replays_with_recorded_or_new_stamps(storage, recorded_compressed, restamp, start_ros, probe, tmp_path):
    from sensor_msgs.msg import CompressedImage

    written = write_bag(tmp_path / "bag", storage, recorded_compressed)
    topic = f"/test/replay_{storage}"
    _, seen = probe.collect(CompressedImage, topic, 50)
    replay = start_ros("replay_publisher", remaps={"image": topic}, params={
        "source": tmp_path / "bag", "compressed": True, "restamp": restamp, "speed": 0.0, "wait_for_subscribers": 1})
    assert replay.proc.wait(timeout=STARTUP_S) == 0, replay.output()
    assert wait_until(lambda: len(seen) == len(written), 5), f"{len(seen)} of {len(written)} messages seen"

    for (received_ns, out), original in zip(seen, written):
        assert out.header.frame_id == "bag_camera"
        if restamp:
            assert abs(received_ns - (out.header.stamp.sec * 10**9 + out.header.stamp.nanosec)) < 1e9
        else:
            assert out.header.stamp == original.header.stamp
        if recorded_compressed:
            assert bytes(out.data) == bytes(original.data)  # published as recorded, not re-encoded
        else:
            decoded = cv2.imdecode(np.frombuffer(bytes(out.data), np.uint8), cv2.IMREAD_COLOR)
            expected = np.frombuffer(bytes(original.data), np.uint8).reshape(48, 64, 3)
            assert np.abs(decoded.astype(int) - expected).max() <= 8  # raw frames compressed to JPEG on the way


def test_image_folder_replays_its_files_untouched(start_ros, probe, tmp_path):
    from sensor_msgs.msg import CompressedImage

    files = []
    for i in range(3):
        ok, jpeg = cv2.imencode(".jpg", np.full((48, 64, 3), 60 * i, np.uint8))
        (tmp_path / "frames" / f"{i:02d}.jpg").parent.mkdir(exist_ok=True)
        (tmp_path / "frames" / f"{i:02d}.jpg").write_bytes(jpeg.tobytes())
        files.append(jpeg.tobytes())
    topic = "/test/replay_folder"
    _, seen = probe.collect(CompressedImage, topic, 50)
    replay = start_ros("replay_publisher", remaps={"image": topic}, params={
        "source": tmp_path / "frames", "compressed": True, "speed": 0.0, "wait_for_subscribers": 1})
    assert replay.proc.wait(timeout=STARTUP_S) == 0, replay.output()
    assert wait_until(lambda: len(seen) == len(files), 5), f"{len(seen)} of {len(files)} images seen"
    assert [bytes(m.data) for _, m in seen] == files and {m.format for _, m in seen} == {"jpg"}


@pytest.mark.parametrize("source", ["missing.mp4", "not_a_video.mp4", "empty_bag"])
def test_unreadable_source_exits_with_a_clear_error(source, ros_env, tmp_path):
    import subprocess

    from ros_harness import INSTALL

    (tmp_path / "not_a_video.mp4").write_text("hello")
    (tmp_path / "empty_bag").mkdir()
    (tmp_path / "empty_bag" / "metadata.yaml").write_text("not: a bag\n")
    result = subprocess.run([str(INSTALL / "glassware_vision/lib/glassware_vision/replay_publisher"), "--ros-args",
                             "-p", f"source:={tmp_path / source}"], env=ros_env, capture_output=True, text=True,
                            timeout=STARTUP_S)
    assert result.returncode == 2 and "replay_publisher: cannot start:" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
