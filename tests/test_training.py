"""Models, `glassware train` and `glassware evaluate` on tiny generated datasets (real TensorFlow, few epochs)."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from glassware import cli
from glassware.errors import DatasetError, GlasswareError, RunError

SHAPES = ("disc", "square", "triangle")
COLOURS = {"disc": (200, 50, 40), "square": (40, 150, 60), "triangle": (50, 60, 190)}  # RGB


def write_shapes(root: Path, per_class: int, seed: int, classes=SHAPES, size=(80, 60)) -> Path:
    """A tiny class-folder dataset: one coloured shape per image, random place, size, tint and table shade."""
    rng = np.random.default_rng(seed)
    width, height = size
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = np.full((height, width, 3), rng.integers(190, 256), np.uint8)
            colour = tuple(int(c) for c in np.clip(np.array(COLOURS[name]) + rng.integers(-30, 31, 3), 0, 255))
            cx, cy = int(rng.integers(25, width - 25)), int(rng.integers(20, height - 20))
            r = int(rng.integers(10, 18))
            if name == "disc":
                cv2.circle(img, (cx, cy), r, colour, -1)
            elif name == "square":
                cv2.rectangle(img, (cx - r, cy - r), (cx + r, cy + r), colour, -1)
            else:
                cv2.fillPoly(img, [np.array([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)])], colour)
            img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / name / f"{name}_{i:03d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return root


def glassware(*argv) -> int:
    return cli.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("shapes")
    train = write_shapes(root / "train", per_class=20, seed=1)
    (train / "disc" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    return {"train": train, "test": write_shapes(root / "test", per_class=10, seed=2)}


@pytest.fixture(scope="module")
def vgg_run(shapes, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "vgg"
    assert glassware("train", "--data", shapes["train"], "--model", "vgg", "--epochs", 8, "--patience", 8,
                     "--out", run) == 0
    return run


# --- models -----------------------------------------------------------------------------------------------

def test_vgg_parameter_count_is_the_papers_network():
    from glassware.training.models import make_vgg

    def conv(c_in, c_out, k=3):
        return k * k * c_in * c_out + c_out

    def dense(n_in, n_out):
        return n_in * n_out + n_out

    side = 150 - 2  # 3x3 "valid" convolution
    for _ in range(3):  # three 2x2 max-pools with "same" padding (the convolutions in between keep the size)
        side = math.ceil(side / 2)
    assert side == 19
    expected = conv(3, 32) + conv(32, 32) + conv(32, 64) + dense(side * side * 64, 64) + dense(64, 9)
    assert make_vgg(9).count_params() == expected


def test_vgg_layers_in_the_papers_order():
    from keras import layers

    from glassware.training.models import make_vgg

    model = make_vgg(9)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["InputLayer", "Rescaling", "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Conv2D",
                     "MaxPooling2D", "Flatten", "Dense", "Dropout", "Dense", "Activation"]
    assert model.input_shape == (None, 150, 150, 3)
    assert model.layers[1].scale == pytest.approx(1 / 255)
    convs = [layer for layer in model.layers if isinstance(layer, layers.Conv2D)]
    assert [c.padding for c in convs] == ["valid", "same", "same"] and [c.filters for c in convs] == [32, 32, 64]
    assert all(layer.padding == "same" for layer in model.layers if isinstance(layer, layers.MaxPooling2D))
    assert all(type(layer.kernel_initializer).__name__ == "HeUniform" for layer in convs + [model.get_layer("fc")])
    assert model.get_layer("dropout").rate == 0.5
    assert model.layers[-2].name == "logits" and model.layers[-1].name == "probs"


def test_logits_model_gives_the_logits_behind_the_softmax():
    from glassware.metrics import softmax
    from glassware.training.models import logits_model, make_vgg

    model = make_vgg(4)
    x = np.random.default_rng(0).integers(0, 256, (3, 150, 150, 3)).astype(np.float32)
    logits = logits_model(model).predict(x, verbose=0)
    assert logits.shape == (3, 4)
    np.testing.assert_allclose(softmax(logits), model.predict(x, verbose=0), atol=1e-5)


def test_mobilenet_without_pretrained_weights_trains_as_one_network():
    from glassware.training.models import make_mobilenet

    net = make_mobilenet(5, variant="v3small", alpha=0.75, weights="random")
    assert not net.pretrained and net.options["weights"] == "random"
    assert net.model.output_shape == (None, 5) and net.model.layers[-2].name == "logits"
    with pytest.raises(GlasswareError, match="no such file"):
        make_mobilenet(5, weights="/nonexistent/base.weights.h5")


def test_a_continued_run_fine_tunes_at_the_smaller_rate_unless_told():
    from glassware.training.run import DEFAULT_FINE_TUNE, TrainConfig

    lite0 = DEFAULT_FINE_TUNE["lite0"]
    assert lite0["continued_learning_rate"] < lite0["learning_rate"]
    fresh = TrainConfig(data_dir="d", out="o", model="lite0")
    continued = TrainConfig(data_dir="d", out="o", model="lite0", init_from="run", epochs=0)
    told = TrainConfig(data_dir="d", out="o", model="lite0", init_from="run", epochs=0, fine_tune_learning_rate=3e-4)
    assert fresh.fine_tune_learning_rate == lite0["learning_rate"]
    assert continued.fine_tune_learning_rate == lite0["continued_learning_rate"]
    assert told.fine_tune_learning_rate == 3e-4


def test_only_lite0_blends_by_default_and_a_bad_blend_is_refused():
    from glassware.training.run import TrainConfig

    assert TrainConfig(data_dir="d", out="o", model="lite0").blend == 0.2
    assert TrainConfig(data_dir="d", out="o", model="vgg").blend == 0.0
    assert TrainConfig(data_dir="d", out="o", model="lite0", blend=0.0).blend == 0.0
    with pytest.raises(GlasswareError, match="--blend"):
        TrainConfig(data_dir="d", out="o", model="lite0", blend=0.9)


# --- training and the run directory ------------------------------------------------------------------------

def test_training_learns_well_above_chance(vgg_run, shapes, tmp_path, capsys):
    assert glassware("evaluate", "--run", vgg_run, "--data", shapes["test"], "--out", tmp_path) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.8, metrics["confusion_matrix"]  # chance is 1/3
    assert "accuracy" in capsys.readouterr().out


def test_run_directory_is_as_documented(vgg_run):
    info = json.loads((vgg_run / "run.json").read_text())
    documented = {"schema", "model", "model_options", "class_names", "preprocessing", "data_dir", "seed",
                  "batch_size", "val_fraction", "splits", "split_labels", "skipped", "leakage", "params",
                  "epochs_run", "best_epoch", "best_val_accuracy", "train_seconds", "images_per_second",
                  "augmentation", "created"}
    assert documented <= set(info)
    assert info["schema"] == "glassware-run/1" and info["model"] == "vgg" and info["class_names"] == list(SHAPES)
    assert info["preprocessing"]["model_scaling"] == "x/255" and info["batch_size"] == 8
    assert [s["path"] for s in info["skipped"]] == ["disc/broken.jpg"]
    assert len(info["splits"]["train"]) + len(info["splits"]["val"]) == 60
    assert info["augmentation"]["rotation"] == 40 and info["images_per_second"] > 0
    rows = list(csv.DictReader((vgg_run / "history.csv").open()))
    assert len(rows) == info["epochs_run"] and {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(rows[0])
    assert float(rows[-1]["learning_rate"]) < 0.2 * float(rows[0]["learning_rate"])  # cosine schedule by default
    best = min(rows, key=lambda r: float(r["val_loss"]))  # early stopping restored the best epoch
    assert int(best["epoch"]) == info["best_epoch"]
    for name in ("model.keras", "training_curves.png", "checkpoints/last.keras", "checkpoints/state.json",
                 "cache/train_x.npy", "cache/val_y.npy"):
        assert (vgg_run / name).is_file(), name


def test_load_run_gives_model_and_cached_splits(vgg_run):
    from glassware.training.run import load_run

    run = load_run(vgg_run)
    x, y = run.split("val")
    assert x.dtype == np.uint8 and x.shape[1:] == (150, 150, 3) and len(x) == len(y) == len(run.info["splits"]["val"])
    assert run.preprocessing.model_scaling == "x/255" and run.class_names == list(SHAPES)
    probs = run.model().predict(x.astype(np.float32), verbose=0)
    best_val_accuracy = float((probs.argmax(1) == y).mean())
    assert best_val_accuracy == pytest.approx(run.info["best_val_accuracy"])  # model.keras holds the best weights
    assert run.logits_model().output_shape == (None, 3)
    with pytest.raises(RunError):
        load_run(vgg_run / "cache")


def test_evaluate_a_class_subset_and_the_val_split(vgg_run, shapes, tmp_path):
    subset = tmp_path / "subset"
    for name in ("square", "triangle"):
        (subset / name).mkdir(parents=True)
        for f in sorted((shapes["test"] / name).iterdir())[:4]:
            (subset / name / f.name).write_bytes(f.read_bytes())
    (subset / "square" / "empty.png").write_bytes(b"")
    for data, out in ((subset, tmp_path / "eval_subset"), ("val", tmp_path / "eval_val")):
        assert glassware("evaluate", "--run", vgg_run, "--data", data, "--out", out) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        documented = {"n", "accuracy", "class_names", "confusion_matrix", "per_class", "mean_confidence",
                      "mean_entropy", "ece", "data", "run", "model", "skipped"}
        assert documented <= set(metrics) and metrics["model"] == "vgg"
        cm = np.array(metrics["confusion_matrix"])
        assert cm.shape == (3, 3) and cm.sum() == metrics["n"] and np.trace(cm) / cm.sum() == pytest.approx(metrics["accuracy"])
        assert (out / "confusion_matrix.png").stat().st_size > 1000
    assert metrics["data"] == "val" and metrics["n"] == len(json.loads((vgg_run / "run.json").read_text())["splits"]["val"])
    subset_metrics = json.loads((tmp_path / "eval_subset" / "metrics.json").read_text())
    assert subset_metrics["n"] == 8 and subset_metrics["per_class"]["disc"]["support"] == 0
    assert [s["path"] for s in subset_metrics["skipped"]] == ["square/empty.png"]


def test_evaluate_rejects_unknown_classes(vgg_run, tmp_path):
    from glassware.training.evaluate import evaluate

    write_shapes(tmp_path / "data", per_class=1, seed=3)
    (tmp_path / "data" / "hexagon").mkdir()
    with pytest.raises(DatasetError, match="hexagon"):
        evaluate(vgg_run, tmp_path / "data", tmp_path / "out")


def test_resume_continues_from_the_checkpoint(shapes, tmp_path):
    import keras

    run = tmp_path / "run"
    common = ("--data", shapes["train"], "--out", run, "--patience", 10, "--no-augment")
    assert glassware("train", *common, "--epochs", 2) == 0
    after_two = keras.models.load_model(run / "checkpoints" / "last.keras")
    assert glassware("train", *common, "--epochs", 4, "--resume") == 0
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    after_four = keras.models.load_model(run / "checkpoints" / "last.keras")
    steps = math.ceil(len(json.loads((run / "run.json").read_text())["splits"]["train"]) / 8)
    assert int(after_two.optimizer.iterations) == 2 * steps
    assert int(after_four.optimizer.iterations) == 4 * steps  # Adam's state carried on, not restarted
    assert float(rows[3]["loss"]) < float(rows[0]["loss"])
    assert json.loads((run / "run.json").read_text())["epochs_run"] == 4


def test_bad_input_is_a_clear_error(shapes, tmp_path, capsys):
    assert glassware("train", "--data", tmp_path / "missing", "--out", tmp_path / "r1") == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert glassware("train", "--data", tmp_path / "empty", "--out", tmp_path / "r2") == 2
    assert "class" in capsys.readouterr().err
    assert glassware("train", "--data", shapes["train"], "--out", tmp_path / "r3", "--epochs", 0) == 2
    assert "--epochs must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        glassware("train", "--data", shapes["train"], "--out", tmp_path / "r4", "--model", "resnet")
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("keep me")
    assert glassware("train", "--data", shapes["train"], "--out", tmp_path / "used") == 2
    assert "not empty" in capsys.readouterr().err and (tmp_path / "used" / "notes.txt").read_text() == "keep me"
    assert glassware("evaluate", "--run", tmp_path / "used", "--data", "val", "--out", tmp_path / "e") == 2
    assert "run.json" in capsys.readouterr().err


# --- slow paths: MobileNet's two phases, MirroredStrategy ------------------------------------------------------

@pytest.mark.slow
def test_mobilenet_two_phases_from_a_local_weights_file(shapes, tmp_path):
    import keras

    from glassware.training.models import make_mobilenet

    source = make_mobilenet(3, variant="v2", alpha=0.35, weights="random").base
    source.save_weights(tmp_path / "base.weights.h5")
    small = write_shapes(tmp_path / "data", per_class=8, seed=4)
    run = tmp_path / "run"
    assert glassware("train", "--data", small, "--out", run, "--model", "mobilenet", "--alpha", 0.35,
                     "--weights", tmp_path / "base.weights.h5", "--epochs", 1, "--fine-tune-epochs", 1,
                     "--fine-tune-layers", 12) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["training"]["phases"] == ["head", "fine_tune"]
    assert info["model_options"]["weights"] == str((tmp_path / "base.weights.h5").resolve())
    assert info["preprocessing"]["model_scaling"] == "x/127.5-1"
    # The last checkpoint, after the fine-tuning epoch (model.keras may hold the head-only best epoch).
    last = keras.models.load_model(run / "checkpoints" / "last.keras")
    base = next(layer for layer in last.layers if isinstance(layer, keras.Model))
    changed = {layer.name for layer, before in zip(base.layers, source.layers)
               if any(not np.array_equal(a, b) for a, b in zip(layer.get_weights(), before.get_weights()))}
    top = {layer.name for layer in base.layers[-12:] if layer.weights}
    bn = {layer.name for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)}
    assert changed and changed <= top - bn  # only the unfrozen top moved; BatchNorm (stats too) untouched


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(shapes, tmp_path):
    script = textwrap.dedent(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from glassware.training.run import TrainConfig
        from glassware.training.train import train
        info = train(TrainConfig(data_dir={str(shapes['train'])!r}, out={str(tmp_path / 'run')!r}, epochs=1))
        print("replicas", info["training"]["replicas"])
    """)
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0"}  # oneDNN breaks replicated convolutions on CPUs
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "replicas 2" in result.stdout
    rows = list(csv.DictReader((tmp_path / "run" / "history.csv").open()))
    assert len(rows) == 1 and np.isfinite(float(rows[0]["loss"]))
