"""`glassware export`: a training run -> one self-describing, accuracy-gated model bundle.

Steps: open the run; Keras logits and features on val and the test/stress folders; confidence scaling and
abstention threshold fitted on val (plus the calibration folder, plus an augmented copy of each); the open-set
score's bank and threshold fitted on training features and that same set; int8 representative set from the
cached training images; every format converted (outputs "logits" and "features"), then run on its own runtime
and gated against Keras; model files, the open-set bank, the Keras model, manifest, reliability diagram and
`export_report.md` written. The bundle is built next to `out_dir` and moved into place only when complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm import tqdm

from glassware import __version__
from glassware.calibration.openset import bank_rows, fit_openset
from glassware.calibration.perturbed import perturbed_copies
from glassware.calibration.representative import DEFAULT_SIZE, representative_set
from glassware.calibration.temperature import calibration_summary, fit_scaling, plot_reliability, scaled_probs
from glassware.calibration.threshold import (DEFAULT_TARGET_PRECISION, class_thresholds, confidence_floor,
                                             selective_metrics)
from glassware.edge_runtime.backends import open_backend
from glassware.edge_runtime.bundle import MANIFEST, write_manifest
from glassware.errors import ExportError
from glassware.export.convert import Converter
from glassware.export.gate import gate_table, openset_metrics, run_outputs, split_metrics, verdict
from glassware.formats import FORMATS
from glassware.labels import CATCH_ALL
from glassware.markdown import table as markdown_table
from glassware.metrics import expected_calibration_error, softmax

DEFAULT_FORMATS = tuple(FORMATS)
REPORT = "export_report.md"
OPENSET_FILE = "openset.npz"
RELIABILITY_PNG = "reliability.png"


def export_run(run_dir: str | Path, out_dir: str | Path, formats: tuple[str, ...] | list[str] = DEFAULT_FORMATS,
               test_dir: str | Path | None = None, stress_dir: str | Path | None = None,
               calibration_dir: str | Path | list | None = None, perturb: bool = True, tolerance: float = 1.0,
               keep_failed: bool = False, target_precision: float = DEFAULT_TARGET_PRECISION,
               representative: int = DEFAULT_SIZE, seed: int = 0, openset: bool = True,
               not_glassware_dir: str | Path | None = None, not_glassware_fit_dir: str | Path | None = None,
               evaluations_dir: str | Path | None = None) -> dict:
    """Export `run_dir` into the bundle `out_dir`; return the manifest as written.

    Formats failing the gate (accuracy more than `tolerance` points below Keras on the test split, or on
    val when no test folder is given) are deleted from the bundle unless `keep_failed`; either way they
    are listed in manifest["gate"]["failed"] and the caller decides the exit code.

    `calibration_dir`: held-out images (one folder or a list), in neither the run nor the test folder,
    fitted on together with val: lab photos, and frames of a new environment labelled on the robot (a val
    split alone holds too few errors to fit the scaling on: docs/results.md). `perturb`: also fit on one augmented copy of each of those
    images (`glassware.calibration.perturbed`). `openset`: fit and ship the open-set score
    (`glassware.calibration.openset`). `not_glassware_dir`: a folder of images that are not glassware (any
    layout), on which every format's accepted glassware answers are counted: the open-set check.
    `not_glassware_fit_dir`: other images that are not glassware, which the open-set threshold is fitted
    against (`glassware.calibration.openset`); never the check folder, or the check would check nothing.
    `evaluations_dir`: also write `glassware evaluate`'s metrics.json and confusion matrix of the Keras model
    on the test and stress folders, into `evaluations_dir`/eval_<folder name>, from the outputs computed here.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ExportError(f"unknown formats {unknown}; choose from {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)

    from glassware.training.models import export_model  # TensorFlow: only once the checks pass
    from glassware.training.run import load_run

    run = load_run(run_dir)
    splits, datasets, unreadable = _evaluation_splits(run, test_dir, stress_dir)
    calibration_dirs = [calibration_dir] if isinstance(calibration_dir, (str, Path)) else list(calibration_dir or [])
    held_out = None
    if calibration_dirs:
        parts = [_labelled(folder, run) for folder in calibration_dirs]
        held_out = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                    sum(len(p[2]) for p in parts))
        sources = [str(Path(folder).resolve()) for folder in calibration_dirs]
        datasets["calibration"] = {"source": sources[0] if len(sources) == 1 else sources,
                                   "n": len(held_out[1]), "skipped": held_out[2]}
    if not_glassware_fit_dir is not None and not openset:
        raise ExportError("--not-glassware-fit fits the open-set threshold, which --no-openset leaves out")
    _refuse_fitting_on_the_check(not_glassware_dir, not_glassware_fit_dir)
    unlabelled, negatives_x = {}, None
    if not_glassware_dir is not None:
        unlabelled["not_glassware"] = _unlabelled(not_glassware_dir, run, "--not-glassware", datasets)
    if not_glassware_fit_dir is not None:  # fits the open-set threshold: the formats are checked on the other
        negatives_x = _unlabelled(not_glassware_fit_dir, run, "--not-glassware-fit", datasets)
    gate_split = "test" if "test" in splits else "val"

    model = run.model()
    reference_model = export_model(model)
    keras_out = {name: _predict(reference_model, x) for name, x in
                 tqdm({**{n: x for n, (x, _) in splits.items()}, **unlabelled}.items(), desc="keras reference",
                      unit="split")}
    keras_logits = {name: keras_out[name]["logits"] for name in splits}
    if evaluations_dir is not None:
        _write_evaluations(Path(evaluations_dir), run, splits, keras_logits, datasets, unreadable)
    fit_logits, fit_features, fit_y, fitted_on = _fitting_set(reference_model, run, splits["val"], keras_out["val"],
                                                              held_out, perturb, seed)
    catch_all = tuple(k for k, name in enumerate(run.class_names) if name in CATCH_ALL)
    calibration = _calibrate(keras_logits, splits, (fit_logits, fit_y), target_precision, catch_all)
    calibration["fitted_on"] = fitted_on
    negatives = None if negatives_x is None else _predict(reference_model, negatives_x)
    bank, openset_entry = (_fit_openset(reference_model, run, fit_features, fit_logits, fitted_on, seed, negatives)
                           if openset else (None, None))
    if openset_entry is not None:
        measured = {**keras_out, **({"not_glassware_fit": negatives} if negatives is not None else {})}
        openset_entry["splits"] = {name: openset_metrics(out["logits"], out["features"], calibration, bank,
                                                          openset_entry, run.class_names)
                                   for name, out in measured.items()}
    scaling = calibration["temperature"], calibration["uniform_mix"]
    reference = {name: {"n": len(y), "accuracy": float((keras_logits[name].argmax(-1) == y).mean()),
                        "ece": expected_calibration_error(scaled_probs(keras_logits[name], *scaling), y)}
                 for name, (_, y) in splits.items()}
    rep = None
    if any(FORMATS[f].needs_representative for f in formats):
        rep = representative_set(*run.split("train"), n=representative, seed=seed)
        calibration["representative"] = {"size": len(rep), "seed": seed, "source": "run cache, train split, stratified",
                                         "pixel_min": int(rep.min()), "pixel_max": int(rep.max())}

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))  # moved into place when complete
    try:
        with tempfile.TemporaryDirectory() as scratch:
            converter = Converter(reference_model, scratch)
            paths = {name: converter.convert(name, work / FORMATS[name].filename(run.model_name), rep)
                     for name in tqdm(formats, desc="convert", unit="format")}
        results = {name: _gate_one(name, path, splits, keras_logits, reference[gate_split]["accuracy"], gate_split,
                                   calibration, tolerance, unlabelled, (bank, openset_entry), run.class_names)
                   for name, path in tqdm(paths.items(), desc="gate", unit="format")}
        failed = [n for n, r in results.items() if r["gate"] == "fail"]
        removed = [] if keep_failed else failed
        for name in removed:
            paths[name].unlink()

        keras_file = f"{run.model_name}.keras"
        model.save(work / keras_file)  # loaded uncompiled: no optimizer state, a third of the run's file
        files = {keras_file: ""}
        if bank is not None:
            np.savez(work / OPENSET_FILE, bank=bank)
            files[OPENSET_FILE] = ""
            openset_entry["file"] = OPENSET_FILE
        plot_reliability({s: (keras_logits[s], y) for s, (_, y) in splits.items()}, calibration,
                         work / RELIABILITY_PNG)
        calibration["plots"] = [RELIABILITY_PNG]
        manifest = write_manifest(work, {
            "model": run.model_name,
            "class_names": run.class_names,
            "preprocessing": run.preprocessing.to_dict(),
            "output": "logits",
            "calibration": calibration,
            **({"openset": openset_entry} if openset_entry is not None else {}),
            "formats": {n: r for n, r in results.items() if n not in removed},
            "reference": {"file": keras_file, "metrics": reference},
            "gate": {"split": gate_split, "tolerance_points": tolerance, "failed": failed, "removed": removed,
                     "datasets": datasets},
            "files": files,
            "source_run": str(Path(run_dir).resolve()),
            "model_options": run.info.get("model_options", {}),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "glassware_version": __version__,
        })
        table = gate_table(results, reference, gate_split)
        (work / REPORT).write_text(_report(manifest, table))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        work.rename(out_dir)
        out_dir.chmod(0o755)  # mkdtemp made it private; a bundle is meant to be copied and shared
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(table)
    return manifest


def _evaluation_splits(run, test_dir, stress_dir) -> tuple[dict, dict, dict]:
    """{split: (x, y)} for the run's val split and the given test/stress folders, where each came from, and
    the unreadable files skipped in each folder."""
    splits, skipped_files = {"val": run.split("val")}, {}
    datasets = {"val": {"source": "run val split", "n": len(splits["val"][1]), "skipped": 0}}
    for name, folder in (("test", test_dir), ("stress", stress_dir)):
        if folder is not None:
            x, y, skipped = _labelled(folder, run)
            splits[name] = (x, y)
            datasets[name] = {"source": str(Path(folder).resolve()), "n": len(y), "skipped": len(skipped)}
            skipped_files[name] = skipped
    return splits, datasets, skipped_files


def _write_evaluations(out: Path, run, splits: dict, keras_logits: dict, datasets: dict, skipped: dict) -> None:
    """`glassware evaluate`'s output for each labelled folder, without predicting it a second time: into
    eval_<folder name>, or eval_<split> when the two folders share a name."""
    from glassware.training.evaluate import write_evaluation

    labelled = [name for name in ("test", "stress") if name in splits]
    folders = {name: Path(datasets[name]["source"]).name for name in labelled}
    for name in labelled:
        folder = folders[name] if len(set(folders.values())) == len(folders) else name
        write_evaluation(out / f"eval_{folder}", softmax(keras_logits[name]), splits[name][1], run,
                         datasets[name]["source"], skipped[name])


def _predict(reference_model, x: np.ndarray) -> dict[str, np.ndarray]:
    """{"logits", "features"} of the Keras export model on images x."""
    return reference_model.predict(np.asarray(x, np.float32), batch_size=32, verbose=0)


def _fitting_set(reference_model, run, val: tuple, val_out: dict, held_out: tuple | None, perturb: bool, seed: int):
    """(logits, features, y, description) of the images confidence scaling, threshold and open-set threshold
    are fitted on: val (whose outputs the caller has), the held-out calibration folder if any, and with
    `perturb` one augmented copy of each."""
    x = [val[0]] + ([held_out[0]] if held_out else [])
    y = np.concatenate([val[1]] + ([held_out[1]] if held_out else []))
    if perturb:
        x.append(perturbed_copies(np.concatenate(x), run.info.get("augmentation"), seed))
        y = np.concatenate([y, y])
    outs = [val_out] + ([_predict(reference_model, np.concatenate(x[1:]))] if len(x) > 1 else [])
    parts = ["val"] + ["calibration"] * (held_out is not None) + ["an augmented copy of each (half strength)"] * perturb
    return (np.concatenate([o["logits"] for o in outs]), np.concatenate([o["features"] for o in outs]), y,
            " + ".join(parts))


def _fit_openset(reference_model, run, fit_features: np.ndarray, fit_logits: np.ndarray, fitted_on: str, seed: int,
                 negatives: dict | None) -> tuple:
    """The open-set bank, a stratified sample of the training split and of an augmented copy of each image,
    and its manifest entry, with a threshold fitted on the fitting set's outputs and those of the not-glassware
    fitting images, if any."""
    x, y = run.split("train")
    rows = bank_rows(np.concatenate([y, y]), len(run.class_names), seed=seed)  # row i >= len(x): copy of i - len(x)
    originals, copies = rows[rows < len(x)], rows[rows >= len(x)] - len(x)
    images = np.concatenate([x[originals].astype(np.float32),
                             perturbed_copies(x[copies], run.info.get("augmentation"), seed + 1, strength=1.0)])
    bank, entry = fit_openset(_predict(reference_model, images)["features"], fit_features, run.class_names,
                              negatives=None if negatives is None else (negatives["features"], negatives["logits"]),
                              fit_logits=fit_logits)
    entry.update(output="features", bank_from="training images and augmented copies, a stratified sample",
                 fitted_on=fitted_on)
    return bank, entry


def _refuse_fitting_on_the_check(check_dir, fit_dir) -> None:
    if check_dir is None or fit_dir is None:
        return
    check, fit = Path(check_dir).resolve(), Path(fit_dir).resolve()
    if check == fit or check in fit.parents or fit in check.parents:
        raise ExportError(f"--not-glassware-fit {fit_dir} overlaps --not-glassware {check_dir}: the threshold would "
                          "be fitted on the images that check it; give two separate folders")


def _unlabelled(folder, run, option: str, datasets: dict) -> np.ndarray:
    """Every image under `folder`, preprocessed as the run was; its source, count and unreadable files skipped
    recorded in `datasets` under the option's name."""
    from glassware.errors import ImageDecodeError
    from glassware.preprocessing import IMAGE_SUFFIXES, preprocess_file

    folder = Path(folder)
    if not folder.is_dir():
        raise ExportError(f"{option} {folder}: no such folder")
    images, skipped = [], 0
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        try:
            images.append(preprocess_file(path, run.preprocessing))
        except ImageDecodeError:
            skipped += 1
    if not images:
        raise ExportError(f"{option} {folder}: no readable images")
    datasets[option.lstrip("-").replace("-", "_")] = {"source": str(folder.resolve()), "n": len(images),
                                                      "skipped": skipped}
    return np.stack(images)


def _labelled(folder, run) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """(x, y, unreadable files skipped) of a class-folder set, preprocessed as the run was."""
    from glassware.training.evaluate import read_labelled_folder

    return read_labelled_folder(folder, run.class_names, run.preprocessing)


def _gate_one(name: str, path: Path, splits: dict, keras_logits: dict, keras_accuracy: float, gate_split: str,
              calibration: dict, tolerance: float, unlabelled: dict, openset: tuple, class_names: list[str]) -> dict:
    """Run one exported file on its own runtime over every split; its manifest entry with the verdict."""
    fmt = FORMATS[name]
    backend = open_backend(path, fmt.runtime, threads=os.cpu_count() or 1)  # offline: every core
    bank, entry = openset
    metrics = {}
    for s, x in {**{n: x for n, (x, _) in splits.items()}, **unlabelled}.items():
        logits, features = run_outputs(backend, x)
        metrics[s] = split_metrics(logits, splits[s][1], keras_logits[s], calibration,
                                   calibration["class_thresholds"]) if s in splits else {"n": len(x)}
        if entry is not None:
            metrics[s]["openset"] = openset_metrics(logits, features, calibration, bank, entry, class_names)
    status, reason = verdict(metrics[gate_split]["accuracy"], keras_accuracy, tolerance)
    return {"file": path.name, "runtime": fmt.runtime, "precision": fmt.precision,
            "input_dtype": backend.input_dtype.name, "size_bytes": path.stat().st_size,
            "metrics": metrics, "gate": status, "gate_reason": reason}


def _calibrate(keras_logits: dict, splits: dict, fit_on: tuple, target_precision: float,
               catch_all: tuple[int, ...] = ()) -> dict:
    """Scaling, global and per-class thresholds fitted on `fit_on` (logits, y); ECE before/after and selective
    accuracy on every split (at the per-class thresholds; `coverage_global`: at the global one)."""
    fit_logits, fit_y = fit_on
    fit = fit_scaling(fit_logits, fit_y)
    scaling = fit["temperature"], fit["uniform_mix"]
    max_confidence = 1.0 - fit["uniform_mix"] * (1 - 1 / fit_logits.shape[-1])
    per_class = class_thresholds(scaled_probs(fit_logits, *scaling), fit_y, target_precision,
                                 floor=confidence_floor(max_confidence, target_precision), catch_all=catch_all)
    chosen = per_class["global"]
    summary = {}
    for name, (_, y) in splits.items():
        probs = scaled_probs(keras_logits[name], *scaling)
        summary[name] = calibration_summary(keras_logits[name], y, fit)
        summary[name].update(selective_metrics(probs, y, per_class["thresholds"]),
                             coverage_global=selective_metrics(probs, y, chosen["threshold"])["coverage"])
    return {
        "temperature": fit["temperature"],
        "uniform_mix": fit["uniform_mix"],
        "max_confidence": max_confidence,
        "scaling_method": fit["method"],
        "threshold": chosen["threshold"],
        "class_thresholds": per_class["thresholds"],
        "class_threshold_fit": {"method": per_class["method"], "min_support": per_class["min_support"],
                                "z": per_class["z"], "target_met": per_class["target_met"],
                                "coverage": per_class["fit"]["coverage"], "precision": per_class["fit"]["precision"],
                                "classes": per_class["classes"]},
        "target_precision": target_precision,
        "threshold_target_met": chosen["target_met"],
        "threshold_limited_by": chosen["limited_by"],
        "threshold_floor": chosen["floor"],
        "fit_errors": chosen["val_errors"],
        "fitted_n": int(len(fit_y)),
        "splits": summary,
    }


def _check_out_dir(out_dir: Path) -> None:
    """Refuse to replace a non-empty folder that is not a bundle (never delete a user's files)."""
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file())):
        raise ExportError(f"{out_dir}: exists and is not a model bundle; choose an empty or new --out")


def _report(manifest: dict, table: str) -> str:
    c, g = manifest["calibration"], manifest["gate"]
    lines = [
        f"# Export report: {manifest['bundle_id']}", "",
        f"Source run `{manifest['source_run']}`; gate split **{g['split']}**, tolerance {g['tolerance_points']:g} "
        f"accuracy points against Keras. Failed: {', '.join(g['failed']) or 'none'}; "
        f"removed from the bundle: {', '.join(g['removed']) or 'none'}.", "",
        table, "",
        "## Calibration", "",
        f"Temperature **{c['temperature']:.3f}**, uniform mix **{c['uniform_mix']:.4f}** (so no answer is surer "
        f"than {100 * c['max_confidence']:.1f}%; {c['scaling_method']}); abstention threshold "
        f"**{c['threshold']:.4f}** for a target precision of {100 * c['target_precision']:g}% (set by "
        f"{'the data' if c['threshold_limited_by'] == 'val' else 'the floor'}; target met: "
        f"{c['threshold_target_met']}). Both fitted on {c['fitted_on']}, {c['fitted_n']} images, "
        f"{c['fit_errors']} of them misclassified. "
        "Keras model, before → after scaling; coverage and precision at the per-class thresholds (below):", "",
    ]
    rows = []
    for name, s in c["splits"].items():
        precision = f"{100 * s['precision']:.1f}%" if s["accepted"] else "none accepted"
        single = f"{100 * s['coverage_global']:.1f}%" if "coverage_global" in s else ""
        rows.append([name, s["n"], f"{100 * s['ece_before']:.2f}%", f"{100 * s['ece_after']:.2f}%",
                     f"{s['brier_before']:.4f}", f"{s['brier_after']:.4f}", f"{s['nll_before']:.3f}",
                     f"{s['nll_after']:.3f}", f"{100 * s['coverage']:.1f}%", single, precision])
    lines += [markdown_table(["split", "n", "ECE before", "ECE after", "Brier before", "Brier after", "NLL before",
                              "NLL after", "coverage", "coverage, one threshold", "precision of accepted"], rows),
              "", f"![reliability diagram]({RELIABILITY_PNG})", ""]
    if "class_threshold_fit" in c:
        lines += _class_threshold_report(c, manifest["class_names"])
    if "openset" in manifest:
        lines += _openset_report(manifest["openset"])
    return "\n".join(lines)


def _class_threshold_report(c: dict, class_names: list[str]) -> list[str]:
    f = c["class_threshold_fit"]
    precision = f"precision {100 * f['precision']:.2f}%" if f["coverage"] else "none accepted"
    lines = [
        "### Per-class thresholds", "",
        f"{f['method'][0].upper()}{f['method'][1:]}. On the fitting set: coverage {100 * f['coverage']:.1f}%, "
        f"{precision} (target met: {f['target_met']}).", "",
        markdown_table(["class", "threshold", "predicted", "wrong", "accepted", "wrong accepted", "set by"],
                       [[name, f"{t:.4f}", e["n"], e["errors"], e["accepted"], e["accepted_errors"], e["limited_by"]]
                        for name, t, e in zip(class_names, c["class_thresholds"], f["classes"])]),
    ]
    return lines + [""]


def _openset_report(o: dict) -> list[str]:
    lines = [
        "## Open-set score", "",
        f"Cosine distance to the {o['k']}th nearest of {o['bank_size']} training feature vectors ({o['bank_from']}); "
        f"threshold **{o['threshold']:.4f}**, {_openset_fit_text(o)}. "
        f"Above it an answer of {', '.join(o['applies_to'])} becomes `unknown`. Keras model:", "",
        markdown_table(["split", "n", "novel", "answers refused by it", "glassware answers given"],
                       [[name, m["n"], f"{100 * m['novel']:.1f}%", f"{100 * m['vetoed']:.1f}%", m["glassware_answers"]]
                        for name, m in o["splits"].items()]),
    ]
    return lines + [""]


def _openset_fit_text(o: dict) -> str:
    known = f"passing {100 * o['quantile']:g}% of {o['fitted_n']} fitting images ({o['fitted_on']})"
    neg = o.get("negatives")
    if neg is None:
        return known
    taken = f"{neg['taken_for_glassware']} of the {neg['n']} not-glassware fitting images taken for glassware"
    if o.get("limited_by") == "negatives":
        return f"passing {100 * neg['quantile']:g}% of the {taken} (lower than {known})"
    if o.get("limited_by") == "floor":
        return (f"refusing {100 * neg['max_known_refused']:g}% of the fitting images' glassware answers, its floor: "
                f"passing {100 * neg['quantile']:g}% of the {taken} would have refused more (features that do not "
                "tell them apart)")
    if "threshold" not in neg:
        return f"{known}; only {taken}, too few to fit on (at least {neg['min_taken']})"
    return f"{known}, which passes fewer than {100 * neg['quantile']:g}% of the {taken}"
