"""The frame collector: what it keeps, rate limit, near-duplicates, disk bound, atomic writes, a full queue,
disk errors; and `replay --collect`."""

from __future__ import annotations

import json
import threading

import cv2
import numpy as np
import pytest

from glassware.edge_runtime.classifier import Prediction
from glassware.edge_runtime.collect import CollectError, FrameCollector, collected_frames, dhash, hamming

CLASSES = ["beaker", "flask", "background"]


def prediction(accepted: bool, top: int = 1, novelty: float = float("nan")) -> Prediction:
    scores = np.array([0.2, 0.7, 0.1], np.float32)
    return Prediction(CLASSES[top] if accepted else "unknown", top, float(scores[top]), accepted, scores, 1.0, 2.0,
                      novelty)


def scene(seed: int, size=(120, 160)) -> np.ndarray:
    """A distinct RGB frame per seed (blocks of random brightness: far apart in dHash)."""
    blocks = np.random.default_rng(seed).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return cv2.resize(blocks, size[::-1], interpolation=cv2.INTER_NEAREST)


def offer(collector: FrameCollector, frame, accepted=False, stamp_s=0.0, **meta) -> bool:
    return collector.offer(frame, prediction(accepted), CLASSES, stamp_s=stamp_s, **meta)


def test_keeps_unknown_frames_with_a_complete_sidecar(tmp_path):
    with FrameCollector(tmp_path, audit_share=0.0, max_rate_hz=0) as c:
        assert offer(c, scene(1), stamp_s=1.5, frame_index=45, frame_id="camera", bundle_id="b1", source="cam")
        assert not offer(c, scene(2), accepted=True, stamp_s=2.0)
    frames, problems = collected_frames(tmp_path)
    assert problems == [] and len(frames) == 1
    image, meta = frames[0]
    assert meta["kept"] == "unknown" and meta["raw_label"] == "unknown" and meta["top_class"] == "flask"
    assert (meta["stamp_s"], meta["frame_index"], meta["frame_id"], meta["bundle_id"], meta["source"]) == \
        (1.5, 45, "camera", "b1", "cam")
    assert meta["scores"] == pytest.approx({"beaker": 0.2, "flask": 0.7, "background": 0.1})
    assert meta["confidence"] == pytest.approx(0.7) and meta["novelty"] is None
    assert cv2.imread(str(image)).shape == (120, 160, 3)
    assert c.counters() == {"offered": 2, "not_selected": 1, "skipped_rate": 0, "dropped_queue_full": 0, "kept": 1,
                            "skipped_duplicate": 0, "deleted_for_space": 0, "errors": 0, "pending": 0}


def test_audit_share_keeps_accepted_frames_and_bgr_is_stored_as_seen(tmp_path):
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 2] = 255  # red in BGR
    with FrameCollector(tmp_path, audit_share=1.0, max_rate_hz=0) as c:
        c.offer(red, prediction(True), CLASSES, encoding="bgr8", stamp_s=0.0)
    (image, meta), = collected_frames(tmp_path)[0]
    assert meta["kept"] == "audit" and meta["raw_label"] == "flask"
    assert cv2.imread(str(image))[32, 32].tolist() == pytest.approx([0, 0, 255], abs=3)


def test_encoded_jpeg_is_kept_byte_for_byte(tmp_path):
    jpeg = cv2.imencode(".jpg", scene(3))[1].tobytes()
    with FrameCollector(tmp_path, max_rate_hz=0) as c:
        offer(c, jpeg, encoding="jpeg")
    (image, _), = collected_frames(tmp_path)[0]
    assert image.read_bytes() == jpeg


def test_rate_limit_on_frame_time(tmp_path):
    with FrameCollector(tmp_path, max_rate_hz=2.0, duplicate_bits=-1, queue_size=64) as c:
        queued = [offer(c, scene(i), stamp_s=i / 30) for i in range(60)]  # 2 s at 30 Hz
        assert offer(c, scene(99), stamp_s=0.0)  # a stamp going back starts afresh
    assert [i for i, q in enumerate(queued) if q] == [0, 15, 30, 45]
    assert c.counters()["skipped_rate"] == 56 and c.counters()["kept"] == 5


def test_near_duplicates_are_skipped_also_after_a_restart(tmp_path):
    noisy = lambda seed: np.clip(scene(1).astype(int) + np.random.default_rng(seed).integers(-3, 4, (120, 160, 3)),
                                 0, 255).astype(np.uint8)  # noqa: E731
    assert hamming(dhash(cv2.cvtColor(scene(1), cv2.COLOR_RGB2GRAY)),
                   dhash(cv2.cvtColor(scene(2), cv2.COLOR_RGB2GRAY))) > 10
    with FrameCollector(tmp_path, max_rate_hz=0) as c:
        for seed in range(4):
            offer(c, noisy(seed))
        offer(c, scene(2))
    assert (c.counters()["kept"], c.counters()["skipped_duplicate"]) == (2, 3)
    with FrameCollector(tmp_path, max_rate_hz=0) as again:
        offer(again, noisy(10))
    assert (again.counters()["kept"], again.counters()["skipped_duplicate"]) == (0, 1)


def test_disk_bound_drops_the_oldest_frames(tmp_path):
    with FrameCollector(tmp_path, max_rate_hz=0) as c:
        offer(c, scene(0))
    one_frame = sum(p.stat().st_size for p in tmp_path.iterdir())
    bound_mb = 3.5 * one_frame / 1e6
    with FrameCollector(tmp_path, max_rate_hz=0, max_mb=bound_mb, queue_size=16) as c:
        for i in range(1, 10):
            offer(c, scene(i), stamp_s=float(i))
    frames, _ = collected_frames(tmp_path)
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= bound_mb * 1e6
    assert [meta["stamp_s"] for _, meta in frames] == [7.0, 8.0, 9.0]
    assert c.counters()["deleted_for_space"] == 7  # the first session's frame too


def test_a_jpeg_without_its_sidecar_is_an_incomplete_write(tmp_path, monkeypatch):
    import glassware.edge_runtime.collect as collect

    real = collect.write_atomic

    def full_disk_for_sidecars(path, data):
        if path.suffix == ".json":
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(collect, "write_atomic", full_disk_for_sidecars)
    with FrameCollector(tmp_path, max_rate_hz=0) as c:
        assert offer(c, scene(1))  # accepted for writing; the failure stays in the writer
    assert c.counters()["errors"] == 1 and "No space left" in c.last_error
    assert list(tmp_path.iterdir()) == []  # the JPEG is removed, no temporary file is left

    (tmp_path / "20260101-000000-000000-0001.jpg").write_bytes(b"\xff\xd8 half a frame")  # a crash mid-write
    (tmp_path / "20260101-000000-000000-0002.json").write_text("{not json")
    (tmp_path / "20260101-000000-000000-0003.json").write_text("{}")
    frames, problems = collected_frames(tmp_path)
    assert frames == [] and [p["path"] for p in problems] == ["20260101-000000-000000-0002.json",
                                                                "20260101-000000-000000-0003.json"]


def test_a_full_queue_drops_and_never_blocks(tmp_path, monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(FrameCollector, "_keep", lambda self, item: release.wait())
    c = FrameCollector(tmp_path, max_rate_hz=0, queue_size=2)
    try:
        queued = [offer(c, scene(i)) for i in range(6)]  # the writer holds one, the queue two
        assert queued.count(True) in (2, 3) and c.counters()["dropped_queue_full"] == queued.count(False)
    finally:
        release.set()
        c.close()
    assert c.counters()["pending"] == 0 and not offer(c, scene(9))


def test_disk_and_frame_errors_are_counted_never_raised(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(CollectError):
        FrameCollector(tmp_path / "a_file" / "sub")
    out = tmp_path / "gone"
    with FrameCollector(out, max_rate_hz=0) as c:
        out.rmdir()  # e.g. a USB disk unplugged
        offer(c, scene(1))
        offer(c, b"not an image", encoding="jpeg")
        offer(c, np.zeros((10, 10), np.uint8), encoding="rgb8")
        c.flush()
        assert c.counters()["errors"] == 3 and c.counters()["kept"] == 0


def _clip(tiny_data, tmp_path) -> Path:
    """A 3 s video of six stress images, each held half a second."""
    images = [cv2.imread(str(p)) for p in sorted(tiny_data.stress.rglob("*.jpg"))[:6]]
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (200, 150))
    for image in images:
        for _ in range(5):
            writer.write(cv2.resize(image, (200, 150)))
    writer.release()
    return video


def test_replay_collect_writes_frames_and_reports_the_counters(tiny_data, tiny_bundle, tmp_path, capsys):
    from glassware.cli import main

    video = _clip(tiny_data, tmp_path)
    return_code = main(["replay", str(video), "--bundle", str(tiny_bundle), "--out",
                        str(tmp_path / "replay"), "--speed", "max", "--no-progress", "--collect",
                        str(tmp_path / "collected"), "--collect-audit-share", "1", "--require", "bad_frames<=0"])
    assert return_code == 0
    report = json.loads((tmp_path / "replay" / "replay.json").read_text())
    counts = report["collect"]
    frames, problems = collected_frames(tmp_path / "collected")
    assert problems == [] and 1 <= len(frames) == counts["kept"] <= 6
    assert counts["offered"] == report["frames"]["classified"] == 30
    assert counts["offered"] == (counts["skipped_rate"] + counts["dropped_queue_full"] + counts["kept"]
                                 + counts["skipped_duplicate"] + counts["errors"])  # audit share 1: all selected
    assert {meta["source"] for _, meta in frames} == {str(video)}
    assert "collected (kept / offered)" in capsys.readouterr().out


def test_a_replay_collects_the_same_frames_each_time(tiny_data, tiny_bundle, tmp_path):
    from glassware.cli import main

    video = _clip(tiny_data, tmp_path)

    def kept(name: str, seed: int) -> list[int]:
        assert main(["replay", str(video), "--bundle", str(tiny_bundle), "--out", str(tmp_path / f"r_{name}"),
                     "--speed", "max", "--no-progress", "--collect", str(tmp_path / name), "--collect-audit-share",
                     "0.5", "--collect-max-rate-hz", "0", "--collect-duplicate-bits", "-1",
                     "--collect-seed", str(seed), "--threshold", "0"]) in (0, 1)  # all accepted: audit draws decide
        return sorted(meta["frame_index"] for _, meta in collected_frames(tmp_path / name)[0])

    first = kept("a", 3)
    assert 0 < len(first) < 30 and kept("b", 3) == first
