"""Training data pipeline: scan, split, leakage checks, cache, augmentation and tf.data (small images)."""

import logging
import os
import shutil

import cv2
import numpy as np
import pytest

from glassware.errors import DatasetError, GlasswareError
from glassware.preprocessing import Preprocessing, preprocess_bytes
from glassware.training.data import NEAR_DUPLICATE_MAX_BITS, perceptual_hash, prepare_data, stratified_split

SPEC = Preprocessing()
FORMATS = [".jpg", ".JPEG", ".png", ".bmp", ".webp"]


def picture(seed: int, width: int = 160, height: int = 120) -> np.ndarray:
    """A distinct BGR picture: a few coloured shapes on a light, lit-from-one-side background."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(200, 250, width, dtype=np.float32)[None, :, None]
    img = np.broadcast_to(ramp, (height, width, 3)).astype(np.uint8).copy()
    for _ in range(3):
        colour = tuple(int(c) for c in rng.integers(0, 200, 3))
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        if rng.random() < 0.5:
            cv2.circle(img, centre, int(rng.integers(8, height // 2)), colour, -1)
        else:
            size = rng.integers(10, height // 2, 2)
            cv2.rectangle(img, centre, (centre[0] + int(size[0]), centre[1] + int(size[1])), colour, -1)
    return img


def write(path, bgr, quality=90):
    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix.lower() in (".jpg", ".jpeg") else []
    ok, data = cv2.imencode(path.suffix.lower(), bgr, params)
    assert ok
    path.write_bytes(data.tobytes())


def make_dataset_folder(root, classes=("cat_a", "cat_b", "cat_c"), per_class=10, seed=0):
    for c, name in enumerate(classes):
        for i in range(per_class):
            size = (120 + 40 * (i % 3), 90 + 50 * (i % 2))  # assorted sizes and aspects
            write(root / name / f"img_{i}{FORMATS[i % len(FORMATS)]}", picture(1000 * seed + 100 * c + i, *size))
    return root


@pytest.fixture
def planted(tmp_path):
    """Three classes of distinct pictures plus two 2-image classes whose images leak across the 1/1 split:
    `dup` holds one picture and its re-encoded, resized copy; `copy` holds the same bytes under two names."""
    root = make_dataset_folder(tmp_path / "data")
    original = picture(777, 640, 480)
    write(root / "dup" / "original.jpg", original, quality=95)
    write(root / "dup" / "smaller.jpg", cv2.resize(original, (560, 420), interpolation=cv2.INTER_AREA), quality=60)
    write(root / "copy" / "one.png", picture(888))
    shutil.copy(root / "copy" / "one.png", root / "copy" / "two.png")
    return root


def test_split_is_stratified_deterministic_and_finds_planted_leaks(planted, tmp_path):
    data = prepare_data(planted, SPEC, tmp_path / "cache")
    assert data.class_names == ["cat_a", "cat_b", "cat_c", "copy", "dup"]
    for label, name in enumerate(data.class_names):
        n_val = int(np.sum(data.val.y == label))
        n_train = int(np.sum(data.train.y == label))
        assert (n_train, n_val) == ((8, 2) if name.startswith("cat") else (1, 1)), name
        assert all(p.startswith(name + "/") for p, y in zip(data.train.paths + data.val.paths,
                                                             np.concatenate([data.train.y, data.val.y])) if y == label)
    assert not set(data.train.paths) & set(data.val.paths)
    assert data.train.x.shape == (len(data.train.paths), 150, 150, 3) and data.train.x.dtype == np.uint8
    assert data.val.y.dtype == np.int64

    leak = data.leakage
    assert not leak["ok"]
    assert leak["same_file"] == 1 and sorted(leak["same_file_pairs"][0][:2]) == ["copy/one.png", "copy/two.png"]
    assert leak["same_file_pairs"][0][2] == "same content"
    # Exactly the planted near-duplicate, none among the 30 distinct pictures.
    assert leak["near_duplicate_count"] == 1
    assert sorted(leak["near_duplicates"][0][:2]) == ["dup/original.jpg", "dup/smaller.jpg"]

    again = prepare_data(planted, SPEC, tmp_path / "cache2")
    assert again.train.paths == data.train.paths and again.val.paths == data.val.paths
    other_seed = prepare_data(planted, SPEC, tmp_path / "cache3", seed=1)
    assert other_seed.val.paths != data.val.paths


def test_split_keeps_near_duplicates_together_when_the_class_allows(tmp_path):
    """Three pictures of cat_a also appear re-encoded and resized: each pair lands on one side, so the split
    is leak-free, and a class of all-distinct pictures is split exactly as without groups."""
    root = make_dataset_folder(tmp_path / "data", per_class=10)
    for i in range(3):
        original = cv2.imread(str(next((root / "cat_a").glob(f"img_{i}.*"))))
        write(root / "cat_a" / f"again_{i}.jpg", cv2.resize(original, (100, 80), interpolation=cv2.INTER_AREA),
              quality=55)
    data = prepare_data(root, SPEC, tmp_path / "cache")
    assert data.leakage["ok"] and data.leakage["grouped_images"] == 6
    val = set(data.val.paths)
    for i in range(3):
        pair = [p for p in data.train.paths + data.val.paths if p.startswith((f"cat_a/img_{i}.", f"cat_a/again_{i}."))]
        assert len(pair) == 2 and len({p in val for p in pair}) == 1, pair
    assert int(np.sum(data.val.y == 0)) == 2  # cat_a: 13 images, its val share still met

    labels = np.repeat([0, 1], [10, 7])
    assert all(np.array_equal(a, b) for a, b in zip(stratified_split(labels, 0.2, 3),
                                                    stratified_split(labels, 0.2, 3, np.arange(17))))


def test_leak_free_dataset_reports_ok(tmp_path, caplog):
    root = make_dataset_folder(tmp_path / "data", per_class=7)
    with caplog.at_level(logging.WARNING):
        data = prepare_data(root, SPEC, tmp_path / "cache")
    assert data.leakage["ok"] and data.leakage["same_file"] == 0 and data.leakage["near_duplicates"] == []
    assert "LEAKAGE" not in caplog.text


def test_symlink_into_another_split_is_the_same_file(tmp_path):
    root = make_dataset_folder(tmp_path / "data", classes=("a", "b"), per_class=4)
    (root / "c").mkdir()
    write(root / "c" / "own.jpg", picture(4242))
    (root / "c" / "link.jpg").symlink_to(root / "c" / "own.jpg")
    data = prepare_data(root, SPEC, tmp_path / "cache")
    assert data.leakage["same_file"] == 1 and data.leakage["same_file_pairs"][0][2] == "same path"


def test_perceptual_hash_separates_distinct_synthetic_glassware():
    images = pytest.importorskip("glassware.synthetic.images")
    from glassware.synthetic import CLASSES

    hashes, copies = [], []
    for c, name in enumerate(CLASSES):
        for i in range(4):
            bgr = cv2.cvtColor(images.render(name, "lab", images.image_rng(3, c, i), 320, 240), cv2.COLOR_RGB2BGR)
            hashes.append(perceptual_hash(preprocess_bytes(cv2.imencode(".jpg", bgr)[1], SPEC)))
            worse = cv2.imencode(".jpg", cv2.resize(bgr, (280, 210)), [cv2.IMWRITE_JPEG_QUALITY, 50])[1]
            copies.append(perceptual_hash(preprocess_bytes(worse, SPEC)))
    bits = np.unpackbits(np.stack(hashes), axis=1).astype(int)
    distance = (bits[:, None, :] != bits[None, :, :]).sum(axis=2)
    np.fill_diagonal(distance, 256)
    assert distance.min() > NEAR_DUPLICATE_MAX_BITS  # distinct objects on the same white table
    copy_bits = np.unpackbits(np.stack(copies), axis=1).astype(int)
    assert (bits != copy_bits).sum(axis=1).max() <= NEAR_DUPLICATE_MAX_BITS  # re-encoded, resized


def test_stratified_split_keeps_every_class_on_both_sides():
    labels = np.repeat([0, 1, 2, 3], [2, 3, 20, 100])
    train, val = stratified_split(labels, 0.15, seed=5)
    assert np.bincount(labels[val]).tolist() == [1, 1, 3, 15]
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == len(labels)
    again = stratified_split(labels, 0.15, seed=5)
    assert np.array_equal(again[1], val)


def test_unreadable_files_are_skipped_and_reported(tmp_path, caplog):
    root = make_dataset_folder(tmp_path / "data", classes=("a", "b"), per_class=4)
    good = (root / "a" / "img_0.jpg").read_bytes()
    (root / "a" / "empty.jpg").write_bytes(b"")
    (root / "a" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (root / "b" / "text.png").write_text("not a picture")
    (root / "b" / ".hidden.jpg").write_bytes(good)
    (root / "b" / "notes.txt").write_text("ignored")
    (root / "README.md").write_text("ignored")
    with caplog.at_level(logging.WARNING):
        data = prepare_data(root, SPEC, tmp_path / "cache")
    skipped = {s["path"]: s["reason"] for s in data.skipped}
    assert sorted(skipped) == ["a/empty.jpg", "a/truncated.jpg", "b/text.png"]
    assert "empty" in skipped["a/empty.jpg"] and "decodable" in skipped["a/truncated.jpg"]
    assert sorted(data.ignored) == ["README.md", "b/.hidden.jpg", "b/notes.txt"]
    assert len(data.train.paths) + len(data.val.paths) == 8
    assert "skipped 3 unreadable" in caplog.text


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"),
    ("file", "is not a folder"),
    ("no_classes", "no class sub-folders"),
    ("one_class", "only class folder 'a'"),
    ("empty_class", "class 'b'"),
    ("single_image_class", "class 'b' has 1 readable"),
    ("one_readable", "class 'b' has 1 readable image(s) (1 unreadable)"),
])
def test_datasets_that_cannot_be_trained_on_are_clear_errors(tmp_path, case, message):
    root = tmp_path / "data"
    if case == "file":
        root.write_text("x")
    elif case == "no_classes":
        write(root / "loose.jpg", picture(1))
    elif case == "one_class":
        make_dataset_folder(root, classes=("a",), per_class=3)
    elif case != "missing":
        make_dataset_folder(root, classes=("a",), per_class=3)
        b = root / "b"
        b.mkdir()
        if case == "empty_class":
            (b / "notes.txt").write_text("no images here")
        if case in ("single_image_class", "one_readable"):
            write(b / "only.jpg", picture(2))
        if case == "one_readable":
            (b / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0broken")
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        prepare_data(root, SPEC, tmp_path / "cache")


def test_bad_val_fraction_is_an_error(tmp_path):
    with pytest.raises(GlasswareError, match="val_fraction"):
        prepare_data(make_dataset_folder(tmp_path / "data"), SPEC, tmp_path / "cache", val_fraction=1.0)


def test_cache_is_reused_and_rebuilt_when_a_file_changes(tmp_path):
    root = make_dataset_folder(tmp_path / "data", classes=("a", "b"), per_class=5)
    cache = tmp_path / "cache"
    first = prepare_data(root, SPEC, cache)
    assert not first.cache_hit
    assert sorted(p.name for p in cache.iterdir()) == ["cache.json", "train_x.npy", "train_y.npy", "val_x.npy",
                                                       "val_y.npy"]
    second = prepare_data(root, SPEC, cache)
    assert second.cache_hit
    assert np.array_equal(second.train.x, first.train.x) and second.val.paths == first.val.paths
    assert second.leakage == first.leakage

    changed = root / first.train.paths[0]
    write(changed, picture(999, 200, 150))
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    third = prepare_data(root, SPEC, cache)
    assert not third.cache_hit
    i = third.train.paths.index(first.train.paths[0]) if first.train.paths[0] in third.train.paths else None
    new_x = third.train.x[i] if i is not None else third.val.x[third.val.paths.index(first.train.paths[0])]
    assert not np.array_equal(new_x, first.train.x[0])

    assert not prepare_data(root, SPEC, cache, seed=1).cache_hit  # another split
    assert not prepare_data(root, SPEC, cache, seed=1, val_fraction=0.3).cache_hit
    assert not prepare_data(root, Preprocessing(height=96, width=96), cache, seed=1, val_fraction=0.3).cache_hit
    (cache / "val_x.npy").unlink()
    assert not prepare_data(root, Preprocessing(height=96, width=96), cache, seed=1, val_fraction=0.3).cache_hit
    (cache / "cache.json").write_text("{not json")
    assert not prepare_data(root, Preprocessing(height=96, width=96), cache, seed=1, val_fraction=0.3).cache_hit


# --- augmentation and tf.data --------------------------------------------------------------------------

def smooth_images(n, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([cv2.GaussianBlur(rng.integers(0, 256, (150, 150, 3), dtype=np.uint8), (0, 0), 4)
                     for _ in range(n)])


def batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def test_make_dataset_without_training_is_the_cache_in_order():
    from glassware.training.pipeline import make_dataset

    x, y = smooth_images(20), np.arange(20) % 3
    out = batches(make_dataset(x, y, batch_size=8, training=False))
    assert [len(b[0]) for b in out] == [8, 8, 4]
    assert all(b[0].dtype == np.float32 and b[1].dtype == np.int64 and b[0].shape[1:] == (150, 150, 3) for b in out)
    assert np.array_equal(np.concatenate([b[0] for b in out]), x.astype(np.float32))
    assert np.array_equal(np.concatenate([b[1] for b in out]), y)


def test_training_dataset_augments_within_range_and_reproducibly():
    from glassware.training.augment import make_augmentation
    from glassware.training.pipeline import make_dataset

    x, y = smooth_images(24), np.arange(24) % 3
    ds = make_dataset(x, y, batch_size=8, training=True, augmentation=make_augmentation(), seed=7)
    epoch1, epoch2 = batches(ds), batches(ds)
    labels = np.concatenate([b[1] for b in epoch1])
    assert sorted(labels.tolist()) == sorted(y.tolist())  # every image once, shuffled
    images = np.concatenate([b[0] for b in epoch1])
    assert images.dtype == np.float32 and images.shape == (24, 150, 150, 3)
    assert images.min() >= 0 and images.max() <= 255
    assert images.max() - images.min() > 150  # still pixels on the 0..255 scale, not 0..1
    assert min(np.abs(img - src).mean() for img in images for src in x.astype(np.float32)) > 1  # all augmented
    assert not np.array_equal(epoch1[0][0], epoch2[0][0])  # new shuffle and transforms each epoch

    again = batches(make_dataset(x, y, batch_size=8, training=True, augmentation=make_augmentation(), seed=7))
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(epoch1, again))
    other = batches(make_dataset(x, y, batch_size=8, training=True, augmentation=make_augmentation(), seed=8))
    assert not np.array_equal(other[0][0], epoch1[0][0])


def test_augmentation_config_switches_layers_off_and_rejects_unknown_keys():
    from glassware.training.augment import AUGMENTATION_DEFAULTS, augmentation_config, make_augmentation

    names = [type(layer).__name__ for layer in make_augmentation().layers]
    assert names == ["RandomAffine", "RandomBrightness", "RandomContrast", "RandomBackdrop"]
    assert "RandomBrightness" not in [type(layer).__name__ for layer in make_augmentation({"brightness": 0}).layers]
    assert augmentation_config({"brightness": 0})["rotation"] == AUGMENTATION_DEFAULTS["rotation"]
    off = {key: 0 for key in ("rotation", "shift", "shear", "zoom", "brightness", "contrast", "backdrop")}
    assert make_augmentation(off).layers == []
    with pytest.raises(GlasswareError, match="unknown augmentation keys"):
        make_augmentation({"hue": 0.1})
    with pytest.raises(GlasswareError, match="rotation"):
        make_augmentation({"rotation": 400})


def dot_positions(config, offset=(0, 0), n=64):
    """Where a bright dot at `offset` (dy, dx) from the centre of a 151x151 image lands, per augmented copy."""
    import tensorflow as tf

    from glassware.training.augment import apply_augmentation, make_augmentation

    images = np.zeros((n, 151, 151, 3), np.float32)
    images[:, 75 + offset[0], 75 + offset[1]] = 255
    blurred = np.stack([cv2.GaussianBlur(img, (0, 0), 2) for img in images])  # survives bilinear resampling
    out = apply_augmentation(make_augmentation({**config, "brightness": 0, "contrast": 0, "backdrop": 0}), tf.constant(blurred),
                             tf.constant([3, 4], tf.int64)).numpy().sum(axis=3)
    return np.array([np.unravel_index(np.argmax(img), img.shape) for img in out]) - 75


def test_geometric_augmentation_stays_within_the_papers_limits():
    still = {"rotation": 0, "shift": 0, "shear": 0, "zoom": 0}
    # Rotation, shear and zoom act about the centre: a dot there stays put.
    assert np.abs(dot_positions({"shift": 0})).max() <= 1
    # Shifts move it by up to 20 % of the image (151 px -> 30 px) in x and y, in both directions.
    moved = dot_positions({**still, "shift": 0.2})
    assert np.abs(moved).max() <= 31 and moved.min() < -10 and moved.max() > 10
    # Rotation turns a dot 50 px right of the centre by at most 40 degrees, both ways.
    dy, dx = dot_positions({**still, "rotation": 40}, offset=(0, 50)).T
    angles = np.degrees(np.arctan2(dy, dx))
    assert np.abs(angles).max() <= 41 and angles.min() < -15 and angles.max() > 15
    assert np.abs(np.hypot(dy, dx) - 50).max() <= 2  # turned, not scaled
    # Zoom scales that distance by 0.8..1.2.
    dy, dx = dot_positions({**still, "zoom": 0.2}, offset=(0, 50)).T
    assert np.abs(dy).max() <= 1 and 38 <= np.abs(dx).min() and np.abs(dx).max() <= 63


@pytest.mark.parametrize("level", [0, 128, 255])
def test_photometric_layers_keep_flat_images_in_range(level):
    import tensorflow as tf

    from glassware.training.augment import apply_augmentation, make_augmentation

    off = {"rotation": 0, "shift": 0, "shear": 0, "zoom": 0}
    flat = tf.fill((16, 150, 150, 3), float(level))
    out = apply_augmentation(make_augmentation({**off, "brightness": 0.5, "contrast": 0.5, "backdrop": 0}), flat,
                             tf.constant([1, 2], tf.int64)).numpy()
    assert out.min() >= 0 and out.max() <= 255
    assert len(np.unique(out.mean(axis=(1, 2, 3)).round(3))) > 1  # brightness moved the images differently
    only_backdrop = {**off, "brightness": 0, "contrast": 0, "backdrop": 0.5}
    out = apply_augmentation(make_augmentation(only_backdrop), flat, tf.constant([1, 2], tf.int64)).numpy()
    assert out.min() >= 0 and out.max() <= 255
    assert np.median(out.std(axis=(1, 2))) > 2  # it varies across each picture, unlike brightness
    assert np.abs(out - level).max() <= 0.5 * 255 + 1e-3  # a blend of at most half a field


# --- bench-train ---------------------------------------------------------------------------------------

def test_bench_train_registers_without_importing_tensorflow():
    import subprocess
    import sys

    code = ("import argparse, sys\n"
            "from glassware.evaluation.bench_train import register\n"
            "sub = argparse.ArgumentParser().add_subparsers()\n"
            "register(sub)\n"
            "args = sub.choices['bench-train'].parse_args(['--out', 'o', '--images', '20'])\n"
            "assert args.images == 20 and args.epochs == 2 and args.batch_size == 8 and callable(args.func)\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_bench_train_times_both_pipelines(tmp_path):
    from glassware.evaluation.bench_train import bench_train

    data = make_dataset_folder(tmp_path / "data", classes=("a", "b"), per_class=10)
    result = bench_train(tmp_path / "out", data_dir=data, epochs=2, batch_size=4)
    assert result["train_images"] == 16 and result["images"] == 20
    for pipeline in ("ours", "paper_style", "model_only"):
        assert len(result[pipeline]["epoch_seconds"]) == 2 and result[pipeline]["steady_images_per_second"] > 0
    for pipeline in ("ours", "paper_style"):
        assert result[pipeline]["input_only_images_per_second"] > 0
    assert result["ratio"] > 0 and result["input_only_ratio"] > 0 and result["cache_build_seconds"] > 0
    ceiling = result["model_only"]["steady_images_per_second"] / result["paper_style"]["steady_images_per_second"]
    assert result["ceiling_ratio"] == pytest.approx(ceiling, abs=0.06)
    assert (tmp_path / "out" / "bench_train.json").is_file()
    assert "paper-style" in (tmp_path / "out" / "bench_train.md").read_text()
    with pytest.raises(GlasswareError, match="epochs"):
        bench_train(tmp_path / "out", data_dir=data, epochs=1)


def test_repeat_extra_repeats_only_the_images_of_extra_folders():
    from glassware.training.data import repeat_extra

    paths = ["A/1.jpg", "/robot/A/2.jpg", "B/3.jpg", "/robot/B/4.jpg"]
    assert repeat_extra(paths, 3).tolist() == [0, 1, 1, 1, 2, 3, 3, 3]
    assert repeat_extra(paths, 1).tolist() == [0, 1, 2, 3]


def test_blend_adds_a_faint_batch_mate_to_about_half_of_the_images():
    """Each image stays itself, or becomes (1 - w) itself + w another image of the batch with w <= 0.2."""
    import tensorflow as tf

    from glassware.training.augment import apply_augmentation, make_augmentation

    only_blend = {key: 0 for key in ("rotation", "shift", "shear", "zoom", "brightness", "contrast", "backdrop")}
    levels = np.arange(32) * 8.0
    flat = tf.constant(np.broadcast_to(levels[:, None, None, None], (32, 150, 150, 3)).astype(np.float32))
    out = apply_augmentation(make_augmentation(only_blend, blend=0.2), flat, tf.constant([5, 6], tf.int64)).numpy()
    assert out.std(axis=(1, 2, 3)).max() < 1e-3  # a whole image blended in, not a patch
    value = out.mean(axis=(1, 2, 3))
    moved = np.abs(value - levels) > 1e-3
    assert 0.25 < moved.mean() < 0.75
    for i in np.flatnonzero(moved):
        others = np.delete(levels, i)
        weight = (value[i] - levels[i]) / (others - levels[i])
        assert ((weight > 0) & (weight <= 0.2 + 1e-5)).any(), i
    again = apply_augmentation(make_augmentation(only_blend, blend=0.2), flat, tf.constant([5, 6], tf.int64))
    assert np.array_equal(again.numpy(), out)  # the seed decides
