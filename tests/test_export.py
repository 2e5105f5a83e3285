"""Export: bundle round trip, tamper refusal, int8 calibration on the training preprocessing, the gate."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from glassware.edge_runtime.backends import open_backend
from glassware.edge_runtime.bundle import MANIFEST, Bundle
from glassware.errors import BundleError, ExportError
from glassware.export.gate import run_logits, split_metrics, verdict

TINY_FORMATS = {"tflite_fp32", "tflite_int8", "onnx_fp32", "onnx_int8"}  # what conftest's tiny_bundle exports


def test_bundle_round_trip(tiny_bundle, tiny_run, tiny_data):
    bundle = Bundle.load(tiny_bundle)
    m = bundle.manifest
    assert bundle.class_names == tiny_data.class_names
    assert m["output"] == "logits"
    assert m["preprocessing"] == json.loads((tiny_run / "run.json").read_text())["preprocessing"]
    assert set(bundle.formats) == TINY_FORMATS
    # every model file and the Keras copy are hashed; nothing listed is missing
    assert set(m["files"]) == {f["file"] for f in bundle.formats.values()} | {"vgg.keras", "openset.npz"}
    o = m["openset"]  # the bank: 10 training images per class here (fewer than the per-class sample size)
    assert o["file"] == "openset.npz" and o["feature_dims"] == 64 and o["k"] == 5
    assert o["applies_to"] == [c for c in tiny_data.class_names if c not in ("background", "other")]
    assert {"val", "test", "stress"} == set(o["splits"]) and 0 <= o["threshold"] <= 2
    assert {"vgg_fp32.tflite", "vgg_int8.tflite", "vgg_fp32.onnx", "vgg_int8.onnx"} <= set(m["files"])
    c = m["calibration"]
    assert c["temperature"] > 0 and 0.5 <= c["threshold"] <= 1 and c["target_precision"] == 0.99
    assert 0 <= c["uniform_mix"] < 0.5 and c["threshold"] <= c["max_confidence"] <= 1
    n_val = len(json.loads((tiny_run / "run.json").read_text())["splits"]["val"])
    assert c["fitted_on"] == "val + calibration + an augmented copy of each (half strength)"
    assert c["fitted_n"] == 2 * (n_val + 27)  # 3 per class held out, each image also perturbed once
    assert m["gate"]["datasets"]["calibration"]["n"] == 27 and "calibration" not in c["splits"]
    assert {"val", "test", "stress"} == set(c["splits"])
    assert all({"ece_before", "ece_after", "brier_before", "brier_after"} <= set(s) for s in c["splits"].values())
    for name in ("reliability.png", "export_report.md"):
        assert (tiny_bundle / name).stat().st_size > 0
    assert bundle.formats["tflite_int8"]["input_dtype"] == "uint8"
    int8, fp32 = (tiny_bundle / "vgg_int8.tflite").stat().st_size, (tiny_bundle / "vgg_fp32.tflite").stat().st_size
    assert int8 <= 0.3 * fp32


def test_every_format_reproduces_its_recorded_metrics(tiny_bundle, tiny_data):
    from glassware.training.evaluate import read_labelled_folder

    bundle = Bundle.load(tiny_bundle)
    x, y, _ = read_labelled_folder(tiny_data.test, bundle.class_names, bundle.preprocessing)
    for name, fmt in bundle.formats.items():
        logits = run_logits(open_backend(bundle.file(name), fmt["runtime"]), x)
        assert logits.shape == (len(y), len(bundle.class_names))
        assert (logits.argmax(-1) == y).mean() == pytest.approx(fmt["metrics"]["test"]["accuracy"])
        shares = fmt["metrics"]["test"]["class_coverage"]  # per true class; the overall share is their mean
        counts = np.bincount(y, minlength=len(bundle.class_names))
        assert len(shares) == len(counts) and all((s is None) == (n == 0) for s, n in zip(shares, counts))
        answered = sum(s * n for s, n in zip(shares, counts) if n)
        assert answered / len(y) == pytest.approx(fmt["metrics"]["test"]["coverage"])


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path):
    return shutil.copytree(tiny_bundle, tmp_path / "bundle")


def test_tampered_model_file_is_refused(bundle_copy):
    path = bundle_copy / "vgg_int8.tflite"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="vgg_int8.tflite fails its sha256 check"):
        Bundle.load(bundle_copy)


def test_edited_manifest_is_refused(bundle_copy):
    manifest = json.loads((bundle_copy / MANIFEST).read_text())
    manifest["calibration"]["threshold"] = 0.0  # someone "tunes" the bundle by hand
    (bundle_copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="integrity check"):
        Bundle.load(bundle_copy)


def test_gate_verdict():
    assert verdict(0.95, 0.955, 1.0)[0] == "pass"
    assert verdict(0.93, 0.95, 1.0)[0] == "fail"
    assert verdict(0.99, 0.95, 1.0)[0] == "pass"  # better than Keras is never a failure


def test_the_gate_counts_each_class_answered():
    """The tiny model answers almost nothing: here hand-made logits, some above the per-class thresholds."""
    sure, unsure = 10.0, 0.1
    logits = np.array([[sure, 0, 0], [unsure, 0, 0], [0, sure, 0], [0, sure, 0], [sure, 0, 0]])
    y = np.array([0, 0, 1, 1, 1])  # class 2 has no images; the last class-1 image is answered, wrongly, as 0
    m = split_metrics(logits, y, logits, {"temperature": 1.0, "uniform_mix": 0.0}, [0.9, 0.9, 0.9])
    assert m["class_coverage"] == [0.5, 1.0, None] and m["coverage"] == pytest.approx(4 / 5)


def test_the_converters_cover_exactly_the_format_table():
    from glassware.export.convert import CONVERTERS
    from glassware.formats import FORMATS

    assert {(f.runtime, f.precision) for f in FORMATS.values()} == set(CONVERTERS)
    assert len(CONVERTERS) == len(FORMATS)  # one converter per format, none shared


def test_export_refuses_to_overwrite_a_folder_that_is_not_a_bundle(tiny_run, tmp_path):
    from glassware.export.export import export_run

    (tmp_path / "precious.txt").write_text("mine")
    with pytest.raises(ExportError, match="not a model bundle"):
        export_run(tiny_run, tmp_path, formats=["tflite_fp32"])
    assert (tmp_path / "precious.txt").exists()


def test_int8_conversion_refuses_a_zero_one_scaled_representative_set(tiny_run, tmp_path):
    from glassware.export.convert import Converter
    from glassware.training.run import load_run

    x, _ = load_run(tiny_run).split("train")
    with pytest.raises(ExportError, match=r"\[0, 1\]-scaled"):  # refused before any conversion
        Converter(None, tmp_path).convert("tflite_int8", tmp_path / "never.tflite", x[:8] / 255.0)
    assert not (tmp_path / "never.tflite").exists()


@pytest.fixture
def keras_labelled(tiny_run, tiny_data, tmp_path):
    """The tiny test and stress images filed under the class the Keras model predicts: Keras is 100 % right on
    them by construction, so the gate sees any export that changes predictions, however weak the tiny model."""
    from glassware.preprocessing import preprocess_file
    from glassware.training.run import load_run

    run = load_run(tiny_run)
    files = sorted(tiny_data.test.rglob("*.jpg")) + sorted(tiny_data.stress.rglob("*.jpg"))
    x = np.stack([preprocess_file(f, run.preprocessing) for f in files]).astype(np.float32)
    for f, k in zip(files, run.logits_model().predict(x, verbose=0).argmax(-1)):
        (tmp_path / "labelled" / run.class_names[k]).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, tmp_path / "labelled" / run.class_names[k] / f"{f.parent.parent.name}_{f.name}")
    return tmp_path / "labelled"


def test_gate_fails_a_corrupted_export_and_the_command_exits_nonzero(tiny_run, keras_labelled, tmp_path,
                                                                     monkeypatch, capsys):
    """The int8 file is exported from a model whose logits layer got corrupted (sign-flipped): it loads and
    runs fine, but the gate must catch it on the test set, drop it from the bundle and fail the command."""
    import keras

    from glassware import cli
    from glassware.export.convert import Converter

    real_convert = Converter.convert

    def corrupted(self, name, out_path, representative=None, check_range=True):
        if name != "tflite_int8":
            return real_convert(self, name, out_path, representative)
        broken = keras.models.clone_model(self.model)
        broken.set_weights(self.model.get_weights())
        logits = broken.get_layer("logits")
        logits.set_weights([-w for w in logits.get_weights()])
        return real_convert(Converter(broken, tmp_path), name, out_path, representative)

    monkeypatch.setattr(Converter, "convert", corrupted)
    out = tmp_path / "bundle"
    code = cli.main(["export", "--run", str(tiny_run), "--out", str(out), "--formats", "tflite_fp32", "tflite_int8",
                     "--test", str(keras_labelled), "--representative", "30"])
    printed = capsys.readouterr().out
    assert code == 1
    assert "gate FAILED for tflite_int8" in printed and "❌" in printed
    bundle = Bundle.load(out)
    assert set(bundle.formats) == {"tflite_fp32"} and not (out / "vgg_int8.tflite").exists()
    assert bundle.manifest["gate"]["failed"] == ["tflite_int8"] == bundle.manifest["gate"]["removed"]
    assert bundle.formats["tflite_fp32"]["metrics"]["test"]["accuracy"] == 1.0
    assert "❌" in (out / "export_report.md").read_text()


def test_calibration_is_fitted_on_every_held_out_folder_given(tiny_run, tiny_data, tmp_path):
    """Lab photos and frames labelled on the robot, each folder with the classes it has."""
    from glassware import cli

    robot = tmp_path / "robot"
    for name in tiny_data.class_names[:2]:
        shutil.copytree(tiny_data.stress / name, robot / name)
    out = tmp_path / "bundle"
    assert cli.main(["export", "--run", str(tiny_run), "--out", str(out), "--formats", "onnx_fp32",
                     "--calibration", str(tiny_data.calibration), "--calibration", str(robot), "--no-openset",
                     "--keep-failed"]) == 0
    manifest = Bundle.load(out).manifest
    n_lab = sum(1 for _ in tiny_data.calibration.rglob("*.jpg"))
    n_robot = sum(1 for _ in robot.rglob("*.jpg"))
    assert manifest["gate"]["datasets"]["calibration"]["n"] == n_lab + n_robot
    sources = manifest["gate"]["datasets"]["calibration"]["source"]
    assert sources == [str(tiny_data.calibration.resolve()), str(robot.resolve())]


def test_export_writes_the_keras_evaluation_that_evaluate_would(tiny_run, tiny_data, tmp_path):
    """The demo evaluates through the export, which has the Keras outputs already: same figures, same skips."""
    from glassware import cli

    test = shutil.copytree(tiny_data.test, tmp_path / "lab_test")
    (test / tiny_data.class_names[0] / "corrupt.jpg").write_bytes(b"not a jpeg")
    assert cli.main(["export", "--run", str(tiny_run), "--out", str(tmp_path / "bundle"), "--formats", "onnx_fp32",
                     "--test", str(test), "--evaluations", str(tmp_path / "from_export"), "--no-openset",
                     "--keep-failed"]) == 0
    assert cli.main(["evaluate", "--run", str(tiny_run), "--data", str(test), "--out", str(tmp_path / "alone")]) == 0
    ours = json.loads((tmp_path / "from_export" / "eval_lab_test" / "metrics.json").read_text())
    alone = json.loads((tmp_path / "alone" / "metrics.json").read_text())
    assert ours["confusion_matrix"] == alone["confusion_matrix"] and ours["n"] == alone["n"] > 0
    assert ours["mean_confidence"] == pytest.approx(alone["mean_confidence"], abs=1e-4)
    assert ours["skipped"] == alone["skipped"] and len(ours["skipped"]) == 1
    assert (tmp_path / "from_export" / "eval_lab_test" / "confusion_matrix.png").stat().st_size > 0
    assert not (tmp_path / "from_export" / "eval_stress").exists()  # no --stress given
    stress = shutil.copytree(tiny_data.stress, tmp_path / "elsewhere" / "lab_test")  # two folders of one name
    assert cli.main(["export", "--run", str(tiny_run), "--out", str(tmp_path / "bundle"), "--formats", "onnx_fp32",
                     "--test", str(test), "--stress", str(stress), "--evaluations", str(tmp_path / "same_name"),
                     "--no-openset", "--keep-failed"]) == 0
    assert sorted(p.name for p in (tmp_path / "same_name").iterdir()) == ["eval_stress", "eval_test"]
