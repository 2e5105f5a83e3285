"""`glassware replay` and its sources: video, image folders, rosbag2 (sqlite3 and mcap), damaged recordings."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from glassware.edge_runtime.classifier import Classifier
from glassware.edge_runtime.replay import FrameRecord
from glassware.edge_runtime.sources import SourceError, open_source
from glassware.edge_runtime.stream import FrameSampler
from glassware.evaluation import replay
from glassware.evaluation.truth import Truth, accuracy, match_truth

CLIP_FPS, CLIP_SIZE = 15, (320, 240)


def first_images(folder: Path, per_class: int = 1) -> list[tuple[str, Path]]:
    """(class name, path) for the first images of each class folder."""
    return [(d.name, p) for d in sorted(folder.iterdir()) if d.is_dir() for p in sorted(d.glob("*.jpg"))[:per_class]]


@pytest.fixture(scope="module")
def clip(tiny_data, tmp_path_factory) -> Path:
    """A small mp4 with frame-accurate truth beside it: every class held 5 frames, a gap, a stress stretch."""
    shots = [(name, "lab", cv2.imread(str(p))) for name, p in first_images(tiny_data.test)]
    shots.append(("none", "lab", np.full((240, 320, 3), 128, np.uint8)))
    shots += [(name, "stress", cv2.imread(str(p))) for name, p in first_images(tiny_data.stress)[:2]]
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), CLIP_FPS, CLIP_SIZE)
    with open(path.with_suffix(".csv"), "w", newline="") as f:
        rows = csv.writer(f)
        rows.writerow(["frame", "time_s", "label", "domain", "phase"])
        index = 0
        for label, domain, image in shots:
            for _ in range(5):
                writer.write(cv2.resize(image, CLIP_SIZE))
                rows.writerow([index, f"{index / CLIP_FPS:.6f}", label, domain, "hold"])
                index += 1
    writer.release()
    return path


@pytest.fixture(scope="module")
def classifier(tiny_bundle) -> Classifier:
    return Classifier(tiny_bundle)


def clip_frames(clip: Path) -> int:
    return sum(1 for _ in open(clip.with_suffix(".csv"))) - 1


def test_video_replay_at_max_speed_reports_everything(clip, classifier, tmp_path):
    n = clip_frames(clip)
    out = replay.run(open_source(clip), classifier, tmp_path, speed=None, truth=Truth(clip.with_suffix(".csv")),
                     progress=False)
    assert out == json.loads((tmp_path / "replay.json").read_text())
    assert out["frames"] == {"in": n, "unreadable": 0, "sampled": n, "classified": n, "dropped": 0, "bad": 0}
    assert out["speed"] == "max" and out["format"] == classifier.format_name
    lat = out["latency_ms"]["preprocess_plus_inference"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"]
    assert out["throughput_fps"] > 0 and out["peak_rss_mb"] > 50
    assert out["overhead"]["frame_size"] == "320x240" and out["overhead"]["ratio"] > 0
    assert [r["requirement"] for r in out["requirements"]] == ["lab_accuracy>=0.97", "stress_confidently_wrong<=0.01"]
    assert all(r["met"] == (r["measured"] >= 0.97 if r["requirement"].startswith("lab") else r["measured"] <= 0.01)
               for r in out["requirements"])

    # the accuracy figures agree with the per-frame log
    with open(tmp_path / "frames.csv") as f:
        frames = list(csv.DictReader(f))
    assert [int(r["frame"]) for r in frames] == list(range(n))
    known = [r for r in frames if r["truth"] in classifier.class_names]
    truth = out["truth"]
    assert truth["frames_matched"] == n and truth["known_class_frames"] == len(known) == n - 5
    assert truth["smoothed_accuracy"] == pytest.approx(np.mean([r["smoothed_label"] == r["truth"] for r in known]))
    assert truth["raw_accuracy"] == pytest.approx(np.mean([r["raw_label"] == r["truth"] for r in known]))
    lab = [r for r in known if r["domain"] == "lab"]  # the 97 % target leaves the stress stretch out
    assert truth["lab"]["frames"] == len(lab) == len(known) - 2 * 5
    assert truth["lab"]["smoothed_accuracy"] == pytest.approx(np.mean([r["smoothed_label"] == r["truth"] for r in lab]))
    assert truth["label_switches"]["truth"] == 11
    raw = [r["raw_label"] for r in frames]
    assert truth["label_switches"]["raw"] == sum(a != b for a, b in zip(raw, raw[1:]))
    stress = [r for r in known if r["domain"] == "stress"]
    assert truth["stress"]["frames"] == len(stress) == 10
    unknown_share = np.mean([r["smoothed_label"] == "unknown" for r in stress])
    assert truth["stress"]["smoothed_unknown"] == pytest.approx(unknown_share)
    assert (tmp_path / "timeline.png").read_bytes()[:4] == b"\x89PNG"


def test_accuracy_counts_background_as_right_where_nothing_is_in_view(tmp_path):
    """Truth 'none' (no whole object) is answered rightly by unknown or by a `background` class, never a class."""
    truth_csv = tmp_path / "truth.csv"
    labels = ["none"] * 4 + ["A"] * 4 + ["none"] * 2
    with open(truth_csv, "w", newline="") as f:
        rows = csv.writer(f)
        rows.writerow(["frame", "time_s", "label", "domain", "phase"])
        rows.writerows([k, k / 10, label, "lab", "gap" if label == "none" else "hold"]
                       for k, label in enumerate(labels))
    smoothed = ["background", "background", "unknown", "A", "A", "A", "A", "unknown", "background", "B"]
    records = [FrameRecord(k, k / 10, label, label, 1.0, label, 1.0, 0.0, 0.0) for k, label in enumerate(smoothed)]
    truth = Truth(truth_csv)
    out = accuracy(records, truth, match_truth(records, truth, by_index=True), ["A", "B", "background"])
    assert out["known_class_frames"] == 4 and out["lab"]["smoothed_accuracy"] == 0.75
    assert out["no_object_frames"] == {"frames": 6, "smoothed_unknown": 1 / 6, "smoothed_background": 3 / 6,
                                       "smoothed_an_object": 2 / 6}


def test_cli_replay_picks_up_the_truth_beside_the_video_and_samples(clip, tiny_bundle, tmp_path, capsys):
    from glassware.cli import main

    n = clip_frames(clip)
    code = main(["replay", str(clip), "--bundle", str(tiny_bundle), "--out", str(tmp_path), "--speed", "max",
                 "--every-n", "2", "--no-progress"])
    out = json.loads((tmp_path / "replay.json").read_text())
    assert out["truth"]["truth_file"] == str(clip.with_suffix(".csv"))
    assert out["frames"]["sampled"] == out["frames"]["classified"] == (n + 1) // 2
    assert out["sampler"] == {"max_rate_hz": 0.0, "every_n": 2}
    printed = capsys.readouterr().out
    assert f"{n} / {(n + 1) // 2} / {(n + 1) // 2}" in printed and "accuracy raw / smoothed" in printed
    lab = out["requirements"][0]  # the default requirements, measured here: the tiny model meets the lab one or not
    assert lab["requirement"] == "lab_accuracy>=0.97" and code == (0 if lab["met"] else 1)
    assert main(["replay", str(clip), "--bundle", str(tmp_path / "no_bundle"), "--out", str(tmp_path)]) == 2


def write_images(folder: Path, tiny_data, count: int, size: tuple[int, int], suffix: str = ".jpg") -> None:
    folder.mkdir(parents=True)
    images = [cv2.imread(str(p)) for _, p in first_images(tiny_data.test)]
    for k in range(count):
        cv2.imwrite(str(folder / f"{k:03d}{suffix}"), cv2.resize(images[k % len(images)], size))


def test_real_time_replay_honours_the_frame_clock(tiny_data, classifier, tmp_path):
    write_images(tmp_path / "images", tiny_data, 6, CLIP_SIZE)
    classifier.classify_bytes((tmp_path / "images" / "000.jpg").read_bytes())  # warm: 250 ms a frame even on busy cores
    out = replay.run(open_source(tmp_path / "images", fps=4), classifier, tmp_path / "out", speed=1.0, progress=False)
    assert out["wall_s"] >= 5 / 4 - 0.01  # 6 frames at 4 Hz span 1.25 s
    assert out["frames"]["classified"] == 6 and out["frames"]["dropped"] == 0
    fast = replay.run(open_source(tmp_path / "images", fps=4), classifier, tmp_path / "fast", speed=2.0,
                      progress=False)
    assert 5 / 8 - 0.01 <= fast["wall_s"] < out["wall_s"]


def test_real_time_replay_drops_frames_the_classifier_cannot_take(tiny_data, classifier, tmp_path):
    write_images(tmp_path / "images", tiny_data, 40, (640, 480), ".png")
    out = replay.run(open_source(tmp_path / "images", fps=2000), classifier, tmp_path / "out", speed=1.0,
                     progress=False)
    frames = out["frames"]
    assert frames["sampled"] == 40 and frames["dropped"] > 0 and frames["bad"] == 0
    assert frames["classified"] + frames["dropped"] == 40
    last = json.loads((tmp_path / "out" / "replay.json").read_text())
    assert last["frames"] == frames
    with open(tmp_path / "out" / "frames.csv") as f:
        assert list(csv.DictReader(f))[-1]["frame"] == "39"  # the newest frame is never the one dropped


def test_max_rate_limits_on_frame_time(clip, classifier, tmp_path):
    n = clip_frames(clip)
    out = replay.run(open_source(clip), classifier, tmp_path, speed=None, sampler=FrameSampler(max_rate_hz=5),
                     progress=False, overhead=False)
    assert out["frames"]["sampled"] == out["frames"]["classified"] == len(range(0, n, CLIP_FPS // 5))


def test_bad_image_files_are_counted_and_the_replay_goes_on(tiny_data, classifier, tmp_path):
    folder = tmp_path / "images"
    write_images(folder, tiny_data, 6, CLIP_SIZE)
    good = (folder / "000.jpg").read_bytes()
    (folder / "100_empty.jpg").write_bytes(b"")
    (folder / "101_truncated.jpg").write_bytes(good[: len(good) // 3])
    (folder / "102_text.png").write_text("this is not a picture")
    out = replay.run(open_source(folder), classifier, tmp_path / "out", speed=None, progress=False, overhead=False)
    assert out["frames"]["in"] == 9 and out["frames"]["classified"] == 6 and out["frames"]["bad"] == 3
    reasons = [b["reason"] for b in out["bad_frames"]]
    assert "empty image data" in reasons[0] and all("not a decodable image" in r for r in reasons[1:])


# --- rosbag2 -------------------------------------------------------------------------------------------------

BAG_START_S = 1_700_000_000


def write_bag(path: Path, storage: str, msgtype: str, images: list[np.ndarray], bad: set[int] = frozenset(),
              rate_hz: float = 10.0) -> None:
    """A rosbag2 with one camera topic (Image bgr8 or CompressedImage jpeg) plus an unrelated topic."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.LATEST)
    Image, Compressed = store.types["sensor_msgs/msg/Image"], store.types["sensor_msgs/msg/CompressedImage"]
    Header, String = store.types["std_msgs/msg/Header"], store.types["std_msgs/msg/String"]
    Time = store.types["builtin_interfaces/msg/Time"]
    plugin = StoragePlugin.SQLITE3 if storage == "sqlite3" else StoragePlugin.MCAP
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        camera = writer.add_connection("/camera/image", msgtype, typestore=store)
        chatter = writer.add_connection("/chatter", String.__msgtype__, typestore=store)
        for k, image in enumerate(images):
            ns = BAG_START_S * 10**9 + int(k * 1e9 / rate_hz)
            header = Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9), frame_id="camera")
            if msgtype == Image.__msgtype__:
                data = image.reshape(-1)[:-7] if k in bad else image.reshape(-1)  # a bad one is short of bytes
                msg = Image(header=header, height=image.shape[0], width=image.shape[1], encoding="bgr8",
                            is_bigendian=0, step=image.shape[1] * 3, data=data)
            else:
                jpeg = np.frombuffer(b"garbage", np.uint8) if k in bad else cv2.imencode(".jpg", image)[1].reshape(-1)
                msg = Compressed(header=header, format="jpeg", data=jpeg)
            writer.write(camera, ns - 5_000_000, store.serialize_cdr(msg, msgtype))  # recorded 5 ms after capture
            writer.write(chatter, ns, store.serialize_cdr(String(data=f"frame {k}"), String.__msgtype__))


def bag_images(tiny_data, count: int, size=(160, 120)) -> list[np.ndarray]:
    images = [cv2.resize(cv2.imread(str(p)), size) for _, p in first_images(tiny_data.test)]
    return [images[k % len(images)] for k in range(count)]


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
@pytest.mark.parametrize("msgtype", ["sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"])
def test_rosbag_replay_with_a_bad_message_and_truth_by_time(storage, msgtype, tiny_data, classifier, tmp_path):
    images = bag_images(tiny_data, 12)
    write_bag(tmp_path / "bag", storage, msgtype, images, bad={5})
    names = [name for name, _ in first_images(tiny_data.test)]
    with open(tmp_path / "truth.csv", "w", newline="") as f:
        rows = csv.writer(f)
        rows.writerow(["frame", "time_s", "label", "domain", "phase"])
        rows.writerows([k, k / 10, names[k % len(names)], "lab", "hold"] for k in range(12))
    source = open_source(tmp_path / "bag")
    assert (source.kind, source.topic, source.msgtype) == ("rosbag2", "/camera/image", msgtype)
    out = replay.run(source, classifier, tmp_path / "out", speed=None, truth=Truth(tmp_path / "truth.csv"),
                     progress=False, overhead=False)
    assert out["frames"]["in"] == 12 and out["frames"]["classified"] == 11 and out["frames"]["bad"] == 1
    assert out["truth"]["frames_matched"] == 11  # by header stamp: the 5 ms recording delay does not matter
    with open(tmp_path / "out" / "frames.csv") as f:
        assert [r["truth"] for r in csv.DictReader(f)] == [names[k % len(names)] for k in range(12) if k != 5]


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_truncated_bag_replays_what_is_readable_and_reports_the_rest(storage, tiny_data, classifier, tmp_path):
    write_bag(tmp_path / "bag", storage, "sensor_msgs/msg/Image", bag_images(tiny_data, 30))
    (storage_file,) = [p for p in (tmp_path / "bag").iterdir() if p.suffix in (".db3", ".mcap")]
    data = storage_file.read_bytes()
    storage_file.write_bytes(data[: int(len(data) * 0.6)])
    for path in (tmp_path / "bag", storage_file):  # the bag folder, or the storage file alone
        out = replay.run(open_source(path), classifier, tmp_path / "out", speed=None, progress=False, overhead=False)
        assert 5 <= out["frames"]["classified"] < 30
        (problem,) = out["source"]["problems"]
        assert "bag damaged" in problem["reason"] and "rest is unreadable" in problem["reason"]


def test_truncated_video_replays_what_is_readable_and_reports_the_rest(tiny_data, classifier, tmp_path):
    images = bag_images(tiny_data, 30)
    for name, fourcc in (("clip.mp4", "mp4v"), ("clip.avi", "MJPG")):
        writer = cv2.VideoWriter(str(tmp_path / name), cv2.VideoWriter_fourcc(*fourcc), 15, (160, 120))
        for image in images:
            writer.write(image)
        writer.release()
        data = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(data[: int(len(data) * 0.6)])

    # An OpenCV mp4 keeps its frame index at the end: cut, nothing can be located, and the error says why.
    with pytest.raises(SourceError, match="'moov' index"):
        open_source(tmp_path / "clip.mp4")
    out = replay.run(open_source(tmp_path / "clip.avi"), classifier, tmp_path / "out", speed=None, progress=False,
                     overhead=False)
    classified = out["frames"]["classified"]
    assert 5 <= classified < 30
    assert out["frames"]["unreadable"] == 30 - classified and out["frames"]["in"] == 30
    assert "truncated" in out["source"]["problems"][0]["reason"]


def test_unusable_sources_raise_clear_errors(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        open_source(tmp_path / "missing.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no image files"):
        open_source(tmp_path / "empty")
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(SourceError, match="cannot open video"):
        open_source(tmp_path / "notes.mp4")
    (tmp_path / "truth.csv").write_text("frame,label\n0,A\n")
    with pytest.raises(SourceError, match="missing"):
        Truth(tmp_path / "truth.csv")


def test_requirements_are_the_users_and_decide_the_exit_code(clip, tiny_bundle, tmp_path, capsys):
    from glassware.cli import main

    base = ["replay", str(clip), "--bundle", str(tiny_bundle), "--speed", "max", "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "a"), "--require", "throughput_fps>=0.001",
                 "--require", "bad_frames<=0"]) == 0
    out = json.loads((tmp_path / "a" / "replay.json").read_text())
    assert [r["requirement"] for r in out["requirements"]] == ["throughput_fps>=0.001", "bad_frames<=0"]
    assert all(r["met"] for r in out["requirements"])
    assert re.search(r"require bad_frames<=0 +met \(0\)", capsys.readouterr().out)
    assert main([*base, "--out", str(tmp_path / "b"), "--require", "latency_p99_ms<=0"]) == 1
    assert "NOT met" in capsys.readouterr().out
    assert main([*base, "--out", str(tmp_path / "c"), "--require", "lab_acuracy>=0.9"]) == 2  # a typo: no replay
    assert "unknown metric 'lab_acuracy'" in capsys.readouterr().err and not (tmp_path / "c").exists()


def test_a_required_metric_the_replay_cannot_measure_is_not_met(tiny_data, classifier, tmp_path):
    write_images(tmp_path / "images", tiny_data, 3, CLIP_SIZE)
    out = replay.run(open_source(tmp_path / "images"), classifier, tmp_path / "out", speed=None, progress=False,
                     overhead=False, requirements=["lab_accuracy>=0.5"])  # no truth: nothing to measure it on
    assert out["requirements"] == [{"requirement": "lab_accuracy>=0.5", "measured": None, "met": False}]
    assert replay.run(open_source(tmp_path / "images"), classifier, tmp_path / "out", speed=None, progress=False,
                      overhead=False)["requirements"] == []  # the defaults apply only where measured
