"""`glassware evaluate`: a trained run's Keras model on a labelled class-folder dataset or its own val split.

Writes OUT/metrics.json (schema: docs/architecture.md, "metrics.json") and OUT/confusion_matrix.png.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from glassware.errors import DatasetError, ImageDecodeError
from glassware.metrics import classification_metrics
from glassware.preprocessing import IMAGE_SUFFIXES, Preprocessing, preprocess_file
from glassware.training.plots import plot_confusion_matrix
from glassware.training.run import load_run

log = logging.getLogger(__name__)


def evaluate(run_dir: str | Path, data: str | Path, out_dir: str | Path, batch_size: int = 64) -> dict:
    """Predict `data` ("val" or a class-folder dataset) with the run's model; write and return metrics.json."""
    run = load_run(run_dir)
    if str(data) == "val":
        (x, y), skipped, source = run.split("val"), [], "val"
    else:
        x, y, skipped = read_labelled_folder(data, run.class_names, run.preprocessing)
        source = str(Path(data).resolve())
    probs = run.model().predict(x.astype(np.float32), batch_size=batch_size, verbose=0)
    return write_evaluation(out_dir, probs, y, run, source, skipped)


def write_evaluation(out_dir: str | Path, probs: np.ndarray, y: np.ndarray, run, source: str,
                     skipped: list[dict]) -> dict:
    """metrics.json and confusion_matrix.png of the run's Keras probabilities `probs` on labels `y`."""
    metrics = classification_metrics(probs, y, run.class_names)
    metrics.update(data=source, run=str(run.path.resolve()), model=run.model_name, skipped=skipped)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    title = f"{run.model_name} on {Path(source).name}: accuracy {metrics['accuracy']:.3f} (n={metrics['n']})"
    plot_confusion_matrix(metrics["confusion_matrix"], run.class_names, out / "confusion_matrix.png", title)
    return metrics


def read_labelled_folder(folder: str | Path, class_names: list[str], spec: Preprocessing
                         ) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """A class-folder dataset as model input: x uint8 (N, H, W, 3), y int64 indices into `class_names`, skipped.

    Folders may cover a subset of `class_names`; a folder naming any other class is a DatasetError.
    Unreadable images are skipped, logged and returned as [{"path", "reason"}].
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such dataset folder")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [c for c in classes if c not in class_names]
    if unknown:
        raise DatasetError(f"{folder}: class folders {unknown} are not classes of the model ({', '.join(class_names)})")
    files = [(path, class_names.index(c)) for c in classes for path in _images_under(folder / c)]
    if not files:
        raise DatasetError(f"{folder}: no images in class sub-folders (expected {folder}/<class>/<image>)")
    images, labels, skipped = [], [], []
    for path, label in tqdm(files, desc=f"read {folder.name}", unit="img", file=sys.stderr, mininterval=2.0):
        try:
            images.append(preprocess_file(path, spec))
            labels.append(label)
        except ImageDecodeError as e:
            skipped.append({"path": str(path.relative_to(folder)), "reason": str(e)})
    if skipped:
        log.warning("%s: skipped %d unreadable of %d images: %s", folder, len(skipped), len(files),
                    ", ".join(s["path"] for s in skipped[:5]) + (" ..." if len(skipped) > 5 else ""))
    if not images:
        raise DatasetError(f"{folder}: none of the {len(files)} images could be read")
    return np.stack(images), np.asarray(labels, np.int64), skipped


def _images_under(class_dir: Path) -> list[Path]:
    """Image files below a class folder, recursively, hidden ones left out (as training's scan does)."""
    return sorted(p for p in class_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(class_dir).parts))


def metrics_table(metrics: dict) -> str:
    """Accuracy line and per-class precision/recall/F1/support, for the terminal."""
    lines = [
        f"{metrics['model']} on {metrics['data']}: n={metrics['n']}, skipped {len(metrics['skipped'])}",
        f"accuracy {metrics['accuracy']:.4f}   mean confidence {metrics['mean_confidence']:.3f}   "
        f"mean entropy {metrics['mean_entropy']:.3f}   ECE {metrics['ece']:.3f}",
        f"{'class':<10} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}",
    ]
    for name, c in metrics["per_class"].items():
        lines.append(f"{name:<10} {c['precision']:>9.3f} {c['recall']:>7.3f} {c['f1']:>7.3f} {c['support']:>8d}")
    return "\n".join(lines)
