"""Calibration: representative set, confidence scaling, abstention threshold (NumPy, plus the tiny run)."""

from __future__ import annotations

import numpy as np
import pytest

from glassware.calibration.representative import check_pixel_range, representative_set, stratified_indices
from glassware.calibration.temperature import (MIN_ERRORS_TO_SHARPEN, brier, calibration_summary, fit_scaling, nll,
                                               plot_reliability, scaled_probs)
from glassware.calibration.threshold import abstention_threshold, class_thresholds, selective_metrics
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


def test_scaling_sharpens_only_with_enough_errors():
    # An under-confident model (true T = 0.5): with many errors the fit finds it; with a few left, sharpening
    # would rest on them alone, so the fit keeps the model's own confidence.
    logits, y = overconfident_logits(n=10000, true_temperature=0.5, seed=3)
    assert fit_scaling(logits, y)["temperature"] == pytest.approx(0.5, rel=0.1)
    wrong = np.flatnonzero(logits.argmax(-1) != y)
    few = np.ones(len(y), bool)
    few[wrong[MIN_ERRORS_TO_SHARPEN - 1:]] = False  # keep one error fewer than the minimum
    fit = fit_scaling(logits[few], y[few])
    assert fit["temperature"] == 1.0 and "fewer than" in fit["method"]
    overconfident, y2 = overconfident_logits(n=20, true_temperature=3.0, seed=3)  # 7 errors: softening still fits
    assert (overconfident.argmax(-1) != y2).sum() < MIN_ERRORS_TO_SHARPEN
    assert fit_scaling(overconfident, y2)["temperature"] > 2.0


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


def test_threshold_stays_above_a_floor_that_would_miss_the_target():
    """The fitted cut is below the floor, but the floor's own set (what a threshold at the floor accepts)
    misses the target: the lowest cut above the floor that meets it, not the floor."""
    conf = np.array([0.95, 0.9, 0.85, 0.7] + [0.45] * 6)
    correct = np.array([1, 1, 1, 0] + [1] * 6, bool)
    probs = np.stack([conf, 1 - conf], 1)
    chosen = abstention_threshold(probs, np.where(correct, 0, 1), target_precision=0.8)
    assert chosen["threshold"] == 0.85 and chosen["target_met"] and chosen["val"]["precision"] == 1.0


def test_selective_metrics():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    m = selective_metrics(probs, np.array([0, 1, 1]), 0.7)
    assert m == {"n": 3, "accepted": 2, "coverage": 2 / 3, "precision": 1.0, "unknown_errors": 1}
    # one threshold per class: each answer against the threshold of its top class
    m = selective_metrics(probs, np.array([0, 1, 1]), np.array([0.95, 0.5]))
    assert m == {"n": 3, "accepted": 1, "coverage": 1 / 3, "precision": 1.0, "unknown_errors": 1}
    assert selective_metrics(probs, np.array([0, 1, 1]), [0.7, 0.7]) == selective_metrics(probs, [0, 1, 1], 0.7)
    with pytest.raises(ValueError, match="one per class"):
        selective_metrics(probs, np.array([0, 1, 1]), [0.5, 0.5, 0.5])


def answers(*classes) -> tuple[np.ndarray, np.ndarray]:
    """(probs, y) from per-class (confidences, right) of the answers predicted as that class."""
    k = len(classes)
    conf = np.concatenate([c for c, _ in classes])
    pred = np.concatenate([np.full(len(c), i) for i, (c, _) in enumerate(classes)])
    right = np.concatenate([r for _, r in classes])
    probs = np.repeat(((1 - conf) / (k - 1))[:, None], k, 1)
    probs[np.arange(len(conf)), pred] = conf
    return probs, np.where(right, pred, (pred + 1) % k)


def test_class_thresholds_lower_clean_classes_below_a_noisy_one():
    """One class confidently wrong 12 times between 0.90 and 0.98 drags the one threshold above 0.98; the two
    classes never wrong get their own, lower ones, so far more answers are given, still at the target."""
    conf = np.linspace(0.6, 0.989, 300)
    noisy = np.ones(300, bool)
    noisy[np.linspace(np.searchsorted(conf, 0.9), np.searchsorted(conf, 0.98), 12).astype(int)] = False
    probs, y = answers((conf, np.ones(300, bool)), (conf, np.ones(300, bool)), (conf, noisy))
    fit = class_thresholds(probs, y, target_precision=0.99)
    g = fit["global"]["threshold"]
    assert g > 0.98 and fit["global"]["target_met"]
    assert fit["thresholds"][0] == fit["thresholds"][1] == conf[0] < g  # 300 right answers: decisive
    assert fit["thresholds"][2] == g and fit["classes"][2]["limited_by"] == "global"
    assert [c["limited_by"] for c in fit["classes"][:2]] == ["class", "class"]
    assert (fit["classes"][2]["n"], fit["classes"][2]["errors"]) == (300, 12)
    per_class, single = selective_metrics(probs, y, fit["thresholds"]), selective_metrics(probs, y, g)
    assert per_class == fit["fit"] and fit["target_met"] and per_class["precision"] >= 0.99
    assert per_class["coverage"] > 0.65 > 0.05 > single["coverage"]
    for k in range(3):  # every class's accepted answers meet the target
        mine = probs.argmax(-1) == k
        assert selective_metrics(probs[mine], y[mine], fit["thresholds"])["precision"] >= 0.99


def test_class_thresholds_do_not_follow_noise():
    """A class with 40 answers, all right, does not go below the global threshold (40 right answers do not show
    99 %); a class with 2 errors in 150 answers (98.7 %) is not raised above it. A bare empirical fit does both."""
    conf = np.linspace(0.6, 0.989, 600)
    errors = np.ones(600, bool)
    errors[np.linspace(np.searchsorted(conf, 0.9), np.searchsorted(conf, 0.98), 8).astype(int)] = False
    few = np.linspace(0.6, 0.9, 40)
    probs, y = answers((conf, errors), (few, np.ones(40, bool)))
    fit = class_thresholds(probs, y)
    g = fit["global"]["threshold"]
    assert g > 0.9 and fit["thresholds"][1] == g and fit["classes"][1]["limited_by"] == "global"
    assert class_thresholds(probs, y, min_support=1, z=0.0)["thresholds"][1] == few[0]  # what noise would give

    conf = np.linspace(0.6, 0.989, 150)
    couple = np.ones(150, bool)
    couple[[60, 120]] = False
    probs, y = answers((np.linspace(0.6, 0.989, 1000), np.ones(1000, bool)), (conf, couple))
    fit = class_thresholds(probs, y)
    g = fit["global"]["threshold"]
    assert fit["thresholds"][1] == g and fit["classes"][1]["accepted_errors"] == 2
    assert class_thresholds(probs, y, min_support=1, z=0.0)["thresholds"][1] > conf[120]


def test_class_thresholds_keep_the_union_at_the_target():
    """Class 0 alone meets the target well below the global threshold (3000 answers, 30 wrong), but the global
    threshold's set needed its perfect top to carry class 1 (98.9 %, not decisively below 99 % in 10000
    answers): lowering class 0 would take the union below the target, so it is put back."""
    b = np.ones(10000, bool)
    b[np.linspace(0, 9999, 110).astype(int)] = False
    a_conf = np.r_[np.linspace(0.951, 0.99, 2000), np.linspace(0.94, 0.949, 30), np.linspace(0.6, 0.939, 970)]
    probs, y = answers((a_conf, np.r_[np.ones(2000, bool), np.zeros(30, bool), np.ones(970, bool)]),
                       (np.linspace(0.95, 0.99, 10000), b))
    fit = class_thresholds(probs, y)
    g = fit["global"]["threshold"]
    assert fit["thresholds"] == [g, g] and [c["limited_by"] for c in fit["classes"]] == ["overall", "global"]
    lowered = selective_metrics(probs, y, [a_conf.min(), g])
    assert selective_metrics(probs[:3000], y[:3000], a_conf.min())["precision"] >= 0.99  # class 0 alone: fine
    assert fit["target_met"] and fit["fit"]["precision"] >= 0.99 > lowered["precision"]


def test_class_thresholds_meet_the_target_on_random_sets():
    """Whatever the data, the union of accepted answers meets the target whenever the global threshold does,
    and every class below the global threshold meets it on its own."""
    for seed in range(40):
        rng = np.random.default_rng(seed)
        k, n = int(rng.integers(2, 6)), int(rng.integers(100, 3000))
        y = rng.integers(0, k, n)
        pred = np.where(rng.random(n) < rng.uniform(0, 0.05, k)[y], (y + 1) % k, y)
        conf = np.clip(rng.uniform(1 / k, 1.0, n) ** rng.uniform(0.1, 1, k)[pred], 1 / k + 0.01, 0.999)
        probs = np.repeat(((1 - conf) / (k - 1))[:, None], k, 1)
        probs[np.arange(n), pred] = conf
        fit = class_thresholds(probs, y)
        assert len(fit["thresholds"]) == k and all(t >= 0.5 for t in fit["thresholds"])
        if fit["global"]["target_met"]:
            assert fit["target_met"] and not fit["fit"]["precision"] < 0.99, seed
        for c, t in enumerate(fit["thresholds"]):
            if t < fit["global"]["threshold"]:
                mine = pred == c
                assert selective_metrics(probs[mine], y[mine], fit["thresholds"])["precision"] >= 0.99, seed


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


def test_calibration_copies_are_milder_than_training_augmentation():
    # A copy whose object left the frame keeps a label that is now wrong; the fit must not learn from those.
    from glassware.calibration.perturbed import CALIBRATION_STRENGTH, perturbed_copies

    x = np.full((16, 150, 150, 3), 235, np.uint8)
    x[:, 60:90, 60:90] = (20, 40, 200)  # a dark square in the middle of a white bench
    assert perturbed_copies(x, None, seed=1, strength=0.0) == pytest.approx(x)
    full = perturbed_copies(x, None, seed=1, strength=1.0)
    default = perturbed_copies(x, None, seed=1)
    assert CALIBRATION_STRENGTH == 0.5
    assert np.abs(default - x).mean() < np.abs(full - x).mean()
    assert np.abs(default - x).mean() > 2  # still perturbed


def test_class_thresholds_let_the_classes_the_robot_does_not_act_on_below_the_floor():
    """Floor 0.99 (the target): a glassware class whose 300 answers from 0.9 up are all right stays at 0.99, for
    a wrong one would make the arm grasp. The same answers of a class in `catch_all` (a wrong one makes it
    wait) set its threshold; one with answers from 0.4 goes down to 0.5, no further."""
    ones = np.ones(300, bool)
    conf = np.linspace(0.9, 0.999, 300)
    probs, y = answers((conf, ones), (conf, ones), (np.linspace(0.4, 0.999, 600), np.ones(600, bool)))
    strict = class_thresholds(probs, y, floor=0.99)
    assert strict["thresholds"] == [0.99] * 3
    fit = class_thresholds(probs, y, floor=0.99, catch_all=(1, 2))
    assert fit["thresholds"] == [0.99, conf[0], 0.5]
    assert [c["limited_by"] for c in fit["classes"]] == ["global", "class", "floor"]
    assert fit["target_met"] and fit["fit"]["coverage"] > selective_metrics(probs, y, 0.99)["coverage"] + 0.5
