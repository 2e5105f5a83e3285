import csv
import json

import cv2
import numpy as np
import pytest

from glassware.cli import main
from glassware.errors import SynthesisError
from glassware.synthetic import CLASSES, DATASET_CLASSES, images, video

SMALL = dict(width=160, height=120)


def test_render_is_rgb_and_deterministic_for_a_seed():
    a = images.render("F", "lab", np.random.default_rng(3), width=200, height=100)
    b = images.render("F", "lab", np.random.default_rng(3), width=200, height=100)
    c = images.render("F", "lab", np.random.default_rng(4), width=200, height=100)
    assert a.shape == (100, 200, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.jpg")}


def test_dataset_layout_counts_and_bytes_do_not_depend_on_workers(tmp_path):
    one = images.write_dataset(tmp_path / "one", "stress", per_class=3, seed=7, workers=1, **SMALL)
    two = images.write_dataset(tmp_path / "two", "stress", per_class=3, seed=7, workers=2, **SMALL)
    files = _files(tmp_path / "one")
    assert set(files) == {f"{c}/{c}_7_{i}.jpg" for c in CLASSES for i in range(3)}
    assert files == _files(tmp_path / "two")  # same bytes, whatever the worker count
    assert one["counts"] == two["counts"] == {c: 3 for c in CLASSES} and one["total"] == 27
    summary = json.loads((tmp_path / "one" / "synth.json").read_text())
    assert (summary["domain"], summary["seed"], summary["width"], summary["height"]) == ("stress", 7, 160, 120)
    assert summary["images_per_second"] > 0 and summary["seconds"] > 0
    sheet = cv2.imread(str(tmp_path / "one" / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[0] > 9 * 100  # a row per class


def test_rerun_overwrites_but_other_images_are_refused(tmp_path):
    images.write_dataset(tmp_path, per_class=2, **SMALL)
    images.write_dataset(tmp_path, per_class=2, **SMALL)  # the same files again: fine
    with pytest.raises(SynthesisError, match="would not write"):
        images.write_dataset(tmp_path, per_class=1, **SMALL)  # A_0_1.jpg would be left over
    with pytest.raises(SynthesisError, match="would not write"):
        images.write_dataset(tmp_path, per_class=2, seed=1, **SMALL)


def test_counts_override_per_class_and_keep_every_image(tmp_path):
    """More images of one class add images; they change none of the others (image i is image i)."""
    base = images.write_dataset(tmp_path / "base", per_class=2, **SMALL)
    more = images.write_dataset(tmp_path / "more", per_class=2, counts={"other": 4}, **SMALL)
    assert base["counts"]["other"] == 2 and more["counts"] == {**base["counts"], "other": 4}
    assert more["total"] == base["total"] + 2 and len(list((tmp_path / "more" / "other").iterdir())) == 4
    for rel in ("other/other_0_1.jpg", "A/A_0_0.jpg"):
        assert (tmp_path / "base" / rel).read_bytes() == (tmp_path / "more" / rel).read_bytes()
    assert images.parse_counts(["other=600", " J = 3"]) == {"other": 600, "J": 3}
    for bad in (["other"], ["other=x"], ["flask=3"]):
        with pytest.raises(SynthesisError):
            images.parse_counts(bad)
    with pytest.raises(SynthesisError, match="per-class"):
        images.write_dataset(tmp_path / "zero", per_class=2, counts={"other": 0}, **SMALL)


def test_background_class_is_the_empty_scene_and_only_on_request(tmp_path):
    plain = images.write_dataset(tmp_path / "plain", per_class=2, **SMALL)
    assert "background" not in plain["classes"] and not (tmp_path / "plain" / "background").exists()
    more = images.write_dataset(tmp_path / "more", per_class=2, counts={"background": 3}, **SMALL)
    assert more["classes"] == [*CLASSES, "background"] and more["counts"]["background"] == 3
    assert (tmp_path / "plain" / "A" / "A_0_1.jpg").read_bytes() == (tmp_path / "more" / "A" / "A_0_1.jpg").read_bytes()
    k = DATASET_CLASSES.index("background")
    for domain in ("lab", "stress"):  # the empty scene: its object's render would differ from it, pixel by pixel
        empty = images.render("background", domain, images.image_rng(0, k, 0), **SMALL).astype(float)
        flask = images.render("A", domain, images.image_rng(0, k, 0), **SMALL).astype(float)
        assert np.abs(empty - flask).max() > 100
        assert np.abs(empty - cv2.GaussianBlur(empty, (0, 0), 8)).mean() < np.abs(flask - cv2.GaussianBlur(flask, (0, 0), 8)).mean()


def test_images_have_the_requested_size_and_quality(tmp_path):
    images.write_dataset(tmp_path / "q90", per_class=1, width=320, height=96, quality=90)
    images.write_dataset(tmp_path / "q30", per_class=1, width=320, height=96, quality=30)
    for c in CLASSES:
        img = cv2.imread(str(tmp_path / "q90" / c / f"{c}_0_0.jpg"))
        assert img.shape == (96, 320, 3)
    size = lambda d: sum(p.stat().st_size for p in (tmp_path / d).rglob("*.jpg"))  # noqa: E731
    assert size("q30") < size("q90")


def _silhouette(class_name, size=160):
    """Where the upright object is drawn (glass, label or cap), on a common canvas aligned at its top centre."""
    from glassware.synthetic.objects import pyramid

    s = pyramid(class_name, 0, size)[0]
    drawn = (s.TC[..., 3] < 245) | (s.TC[..., :3].max(axis=2) > 30)
    out = np.zeros((2 * size, 2 * size), bool)
    x0, y0 = int(size - s.origin[0]), int(size // 4 - s.origin[1])
    out[y0:y0 + drawn.shape[0], x0:x0 + drawn.shape[1]] = drawn
    return out


def test_flasks_and_gel_bottles_differ_in_shape():
    masks = {c: _silhouette(c) for c in "ABCDFG"}
    iou = lambda a, b: (masks[a] & masks[b]).sum() / (masks[a] | masks[b]).sum()  # noqa: E731
    for a, b in [("A", "B"), ("A", "C"), ("A", "D"), ("B", "C"), ("B", "D"), ("C", "D")]:
        assert iou(a, b) < 0.9, (a, b)  # body shape and neck
    assert iou("F", "G") < 0.96  # same bottle but cap, shoulder
    from glassware.synthetic.objects import pyramid

    def cap_rows(c):  # the run of rows holding opaque blue at the top: the cap (the gel comes later)
        tc = pyramid(c, 0, 160)[0].TC
        blue = ((tc[..., 2] > 120) & (tc[..., 0] < 80) & (tc[..., 3] < 30)).any(axis=1)
        first = int(np.argmax(blue))
        return int(np.argmin(blue[first:]))

    assert cap_rows("G") > 1.8 * cap_rows("F")  # G's cap is much taller


def _hue_signature(class_name, indices, domain="lab"):
    """Share of the picture in each of 12 hue bins, saturated pixels only, averaged over some renders."""
    k = CLASSES.index(class_name)
    out = []
    for i in indices:
        hsv = cv2.cvtColor(images.render(class_name, domain, images.image_rng(0, k, i), **SMALL), cv2.COLOR_RGB2HSV)
        hue = hsv[..., 0][hsv[..., 1] > 80] // 15
        out.append(np.bincount(hue, minlength=12)[:12] / hsv[..., 0].size)
    return np.mean(out, axis=0)


def test_labels_and_caps_give_each_class_its_own_colours_and_poses_vary():
    named = ["A", "B", "C", "D", "E", "F", "J"]
    halves = {c: (_hue_signature(c, range(8)), _hue_signature(c, range(8, 16))) for c in named}
    noise = {c: np.abs(h[0] - h[1]).sum() for c, h in halves.items()}
    for i, a in enumerate(named):
        for b in named[i + 1:]:
            between = np.abs(sum(halves[a]) - sum(halves[b])).sum() / 2
            assert between > 1.5 * max(noise[a], noise[b]) and between > 0.005, (a, b)
    for k, c in enumerate(CLASSES):
        shots = np.stack([images.render(c, "lab", images.image_rng(1, k, i), **SMALL) for i in range(6)]).astype(float)
        assert shots.std(axis=0).mean() > 5, f"{c}: every image looks the same (no pose variety)"


def test_stress_is_darker_noisier_and_busier_than_lab():
    def stats(domain):
        imgs = [images.render(c, domain, images.image_rng(5, k, i), **SMALL)
                for k, c in enumerate(CLASSES) for i in range(4)]
        grey = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(np.float32) for im in imgs]
        brightness = np.mean([g.mean() for g in grey])
        detail = np.mean([np.abs(g - cv2.blur(g, (3, 3))).mean() for g in grey])  # noise + texture
        spread = np.mean([g.std() for g in grey])
        return brightness, detail, spread

    lab, stress = stats("lab"), stats("stress")
    assert lab[0] > 200 and stress[0] < lab[0] - 70  # darker, murkier light
    assert stress[1] > 1.5 * lab[1]  # sensor noise and busy backgrounds


def test_video_frames_match_ground_truth(tmp_path):
    out = tmp_path / "v.mp4"
    s = video.write_video(out, seconds=4, fps=10, seed=2, **SMALL)
    rows = list(csv.DictReader((tmp_path / "v.csv").open()))
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == len(rows) == s["frames"] == 40
    assert [int(r["frame"]) for r in rows] == list(range(40))
    assert {r["label"] for r in rows} <= set(CLASSES) | {"none"}
    assert {r["phase"] for r in rows} <= set(video.PHASES) and {r["domain"] for r in rows} <= {"lab", "stress"}
    assert all(r["label"] == "none" for r in rows if r["phase"] == "gap")
    assert all(r["label"] in CLASSES for r in rows if r["phase"] == "hold")
    assert any(r["phase"] == "hold" for r in rows)
    assert json.loads((tmp_path / "v.json").read_text())["frames"] == 40
    video.write_video(tmp_path / "again.mp4", seconds=4, fps=10, seed=2, **SMALL)
    assert (tmp_path / "again.csv").read_text() == (tmp_path / "v.csv").read_text()
    assert (tmp_path / "again.mp4").read_bytes() == out.read_bytes()


def test_long_video_visits_many_objects_with_long_holds():
    # The schedule only (no rendering): a minute holds several objects, each for several seconds.
    rng = np.random.default_rng(0)
    segments = video._schedule(rng, 60 * 30, 30, 640, 480)
    assert len(segments) >= 6 and len({s.class_name for s in segments}) >= 6
    assert any(s.domain == "stress" for s in segments) and any(s.domain == "lab" for s in segments)
    assert all(b - a >= 5 * 30 for s in segments for a, b in [s.phases["hold"]])


@pytest.mark.parametrize("call", [
    lambda: images.render("Z", "lab", np.random.default_rng()),
    lambda: images.render("A", "dark", np.random.default_rng()),
    lambda: images.render("A", "lab", np.random.default_rng(), width=0),
    lambda: images.write_dataset("/tmp/unused", per_class=0),
    lambda: images.write_dataset("/tmp/unused", domain="night"),
    lambda: images.write_dataset("/tmp/unused", quality=101),
    lambda: images.parse_size("640by480"),
    lambda: images.parse_size("640x99999"),
    lambda: video.write_video("/tmp/unused.avi"),
    lambda: video.write_video("/tmp/unused.mp4", fps=0),
    lambda: video.write_video("/tmp/unused.mp4", seconds=-1),
])
def test_bad_arguments_raise_a_clear_error(call):
    with pytest.raises(SynthesisError):
        call()


def test_cli_synth_and_its_errors(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "d"), "--per-class", "1", "--size", "160x120"]) == 0
    out = capsys.readouterr().out
    assert "images/s" in out and (tmp_path / "d" / "A" / "A_0_0.jpg").exists()
    assert main(["synth", "--out", str(tmp_path / "e"), "--domain", "dark"]) == 2
    assert "unknown domain" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path / "e"), "--size", "big"]) == 2
    assert main(["synth", "--out", str(tmp_path / "e"), "--per-class", "0"]) == 2


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_video_stress_share_sets_the_domain_of_every_visit(share, tmp_path):
    summary = video.write_video(tmp_path / "v.mp4", seconds=3, fps=10, seed=4, width=160, height=120, stress_share=share)
    assert summary["stress_frames"] == share * summary["frames"]
    with pytest.raises(SynthesisError, match="stress share"):
        video.write_video(tmp_path / "w.mp4", seconds=1, stress_share=1.5)
