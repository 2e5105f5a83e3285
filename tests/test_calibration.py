"""Calibration: representative set, confidence scaling, abstention threshold (NumPy, plus the tiny run)."""

from __future__ import annotations

import numpy as np
import pytest

from glassware.calibration.representative import check_pixel_range, representative_set, stratified_indices
from glassware.calibration.temperature import (brier, calibration_summary, fit_scaling, nll, plot_reliability,
                                               scaled_probs)
from glassware.calibration.threshold import abstention_threshold, selective_metrics
from glassware.errors import ExportError
from glassware.metrics import softmax


def overconfident_logits(n=3000, classes=9, true_temperature=3.0, seed=0):
    """Labels drawn from softmax(z): z is calibrated, so z * true_temperature is overconfident by that T."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, classes))
    z[np.arange(n), rng.integers(0, classes, n)] += 3.0
    p = softmax(z)
    y = np.array([rng.choice(classes, p=row) for row in p])
    return z * true_temperature, y


def test_stratified_sample_keeps_every_class_in_proportion():
    y = np.repeat(np.arange(3), [100, 50, 10])
    idx = stratified_indices(y, 32, seed=0)
    counts = np.bincount(y[idx], minlength=3)
    assert list(counts) == [20, 10, 2]
    assert np.array_equal(idx, stratified_indices(y, 32, seed=0))  # reproducible
    assert len(np.unique(idx)) == len(idx)
    assert np.array_equal(stratified_indices(y, 1000), np.arange(len(y)))
    assert (np.bincount(y[stratified_indices(y, 5)], minlength=3) >= 1).all()  # rare classes still present


def test_representative_set_is_the_cached_training_input(tiny_run):
    """The int8 calibration data is the training preprocessing's own output: rows of RUN/cache/train_x.npy."""
    from glassware.preprocessing import preprocess_file
    from glassware.training.run import load_run

    run = load_run(tiny_run)
    x_train, y_train = run.split("train")
    rep = representative_set(x_train, y_train, n=20, seed=0)
    picked = stratified_indices(y_train, 20, seed=0)
    assert rep.dtype == np.uint8 and rep.shape[1:] == x_train.shape[1:]
    assert rep.max() > 1  # 0..255 pixels, not [0, 1]
    assert np.array_equal(rep, x_train[picked])
    # ...which are, bit for bit, the shared preprocessing of the training files (as the robot will see them)
    for row, i in zip(rep[:3], picked[:3]):
        assert np.array_equal(row, preprocess_file(run.data_dir / run.info["splits"]["train"][i], run.preprocessing))


def test_pixel_range_check_refuses_scaled_inputs():
    pixels = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3)).astype(np.uint8)
    check_pixel_range(pixels)
    check_pixel_range(pixels.astype(np.float32))
    with pytest.raises(ExportError, match=r"\[0, 1\]-scaled"):
        check_pixel_range(pixels / 255.0)
    with pytest.raises(ExportError, match="outside the 0..255"):
        check_pixel_range(pixels / 127.5 - 1)
    with pytest.raises(ExportError, match="shape"):
        check_pixel_range(pixels[..., 0])


def test_scaling_recovers_known_overconfidence():
    logits, y = overconfident_logits(n=10000, true_temperature=3.0)
    fit = fit_scaling(logits, y)
    assert fit["temperature"] == pytest.approx(3.0, rel=0.05) and fit["uniform_mix"] < 0.01
    assert nll(logits, y, fit["temperature"]) < nll(logits, y)
    s = calibration_summary(logits, y, fit)
    assert s["ece_after"] < 0.03 < s["ece_before"] and s["brier_after"] < s["brier_before"]
    # scaling never changes the predicted class
    assert np.array_equal(scaled_probs(logits, fit["temperature"], fit["uniform_mix"]).argmax(-1), logits.argmax(-1))


def test_scaling_recovers_confident_errors_as_a_uniform_mix():
    """Calibrated logits, but 6 % of the labels replaced by a random class whatever the model says (the
    `other` vessel that looks exactly like J): the truth is T = 1 with a mix of 0.06. A temperature alone
    cannot say "sure, and still wrong 5 % of the time"; the mix can, and the NLL fit of T alone would soften
    every answer instead."""
    logits, y = overconfident_logits(n=20000, true_temperature=1.0, seed=1)
    rng = np.random.default_rng(2)
    noisy = rng.random(len(y)) < 0.06
    y = np.where(noisy, rng.integers(0, 9, len(y)), y)
    fit = fit_scaling(logits, y)
    assert fit["temperature"] == pytest.approx(1.0, abs=0.1) and fit["uniform_mix"] == pytest.approx(0.06, abs=0.02)
    assert brier(logits, y, fit["temperature"], fit["uniform_mix"]) < brier(logits, y)
    p = scaled_probs(logits, fit["temperature"], fit["uniform_mix"])
    assert p.max() <= 1 - fit["uniform_mix"] * 8 / 9 + 1e-12 and np.allclose(p.sum(-1), 1)
    assert calibration_summary(logits, y, fit)["ece_after"] < 0.02


def test_scaling_is_identity_without_validation_errors():
    logits = np.eye(4)[[0, 1, 2, 3, 0]] * 5
    fit = fit_scaling(logits, np.array([0, 1, 2, 3, 0]))
    assert (fit["temperature"], fit["uniform_mix"]) == (1.0, 0.0) and "no misclassified image" in fit["method"]


def test_threshold_is_the_lowest_meeting_the_target():
    # confidences high to low, with the 4th and 6th most confident wrong
    conf = np.array([0.99, 0.97, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6])
    correct = np.array([1, 1, 1, 0, 1, 0, 1, 1], bool)
    probs = np.stack([conf, 1 - conf], 1)
    y = np.where(correct, 0, 1)
    chosen = abstention_threshold(probs, y, target_precision=0.75)
    assert chosen["threshold"] == 0.6 and chosen["target_met"]  # 6/8 right when accepting all
    chosen = abstention_threshold(probs, y, target_precision=0.8)
    assert chosen["threshold"] == 0.85 and chosen["val"]["precision"] == 0.8  # top 5: 4 right
    chosen = abstention_threshold(probs, y, target_precision=1.0)
    assert chosen["threshold"] == 0.95 and chosen["val"]["coverage"] == 3 / 8
    assert chosen["val"]["unknown_errors"] == 2


def test_threshold_floor_when_val_is_perfect():
    """Every val prediction right: any threshold meets the target on val, so the floor decides."""
    probs = np.array([[0.98, 0.01, 0.01], [0.7, 0.2, 0.1], [0.4, 0.3, 0.3]])
    chosen = abstention_threshold(probs, np.array([0, 0, 0]))
    assert chosen["threshold"] == 0.5 and chosen["limited_by"] == "floor" and chosen["val_errors"] == 0
    assert chosen["val"]["coverage"] == 2 / 3  # the 0.4 guess is `unknown` even though it happened to be right
    assert abstention_threshold(probs, np.array([0, 0, 0]), floor=0.3)["threshold"] == 0.4


def test_threshold_when_target_is_unreachable():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]])
    chosen = abstention_threshold(probs, np.array([1, 1, 0]), target_precision=0.99)
    assert not chosen["target_met"]
    assert chosen["threshold"] == 0.7  # best precision (1/3) first reached when accepting all


def test_selective_metrics():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    m = selective_metrics(probs, np.array([0, 1, 1]), 0.7)
    assert m == {"n": 3, "accepted": 2, "coverage": 2 / 3, "precision": 1.0, "unknown_errors": 1}


def test_reliability_diagram_is_a_png(tmp_path):
    logits, y = overconfident_logits(n=300)
    scaling = {"temperature": 3.0, "uniform_mix": 0.01}
    path = plot_reliability({"val": (logits, y), "test": (logits[:100], y[:100])}, scaling, tmp_path / "r.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_perturbed_copies_are_reproducible_augmented_pixels():
    from glassware.calibration.perturbed import perturbed_copies

    x = np.random.default_rng(0).integers(0, 256, (5, 150, 150, 3)).astype(np.uint8)
    copies = perturbed_copies(x, None, seed=3)
    assert copies.shape == x.shape and copies.dtype == np.float32
    assert 0 <= copies.min() and copies.max() <= 255  # still the model's 0..255 input
    assert np.abs(copies - x).mean() > 5  # actually perturbed
    assert np.array_equal(copies, perturbed_copies(x, None, seed=3))
    assert not np.array_equal(copies, perturbed_copies(x, None, seed=4))
    assert perturbed_copies(x[:0]).shape == (0, 150, 150, 3)
