"""Shared session fixtures: a tiny synthetic lab dataset, a VGG run trained on it, and its exported bundle.

Kept small (a few images per class, a few epochs) so the whole suite stays fast on 2 busy cores; the model
input stays the real 150x150. API (stable): `tiny_data` has .train/.test/.stress/.calibration Paths and .class_names;
`tiny_run` is the run directory Path; `tiny_bundle` the bundle directory Path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

TINY_SIZE = {"width": 200, "height": 150}  # rendered small: the model input is 150x150 anyway
TINY_EPOCHS = 6
TINY_FORMATS = ("tflite_fp32", "tflite_int8", "onnx_fp32", "onnx_int8")


@dataclass(frozen=True)
class TinyData:
    train: Path
    test: Path
    stress: Path
    calibration: Path
    class_names: list[str]


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> TinyData:
    from glassware.synthetic import CLASSES
    from glassware.synthetic.images import write_dataset

    root = tmp_path_factory.mktemp("tiny_data")
    sets = (("train", "lab", 10, 1), ("test", "lab", 3, 2), ("stress", "stress", 3, 3), ("calibration", "lab", 3, 4))
    for name, domain, per_class, seed in sets:
        write_dataset(root / name, domain, per_class=per_class, seed=seed, **TINY_SIZE)
    return TinyData(**{name: root / name for name, *_ in sets}, class_names=list(CLASSES))


@pytest.fixture(scope="session")
def tiny_run(tiny_data, tmp_path_factory) -> Path:
    from glassware.training.run import TrainConfig
    from glassware.training.train import train

    out = tmp_path_factory.mktemp("tiny_run") / "run"
    train(TrainConfig(data_dir=str(tiny_data.train), out=str(out), model="vgg", epochs=TINY_EPOCHS, augment=False,
                      val_fraction=0.2, patience=TINY_EPOCHS, workers=2))
    return out


@pytest.fixture(scope="session")
def tiny_bundle(tiny_run, tiny_data, tmp_path_factory) -> Path:
    from glassware.export.export import export_run

    out = tmp_path_factory.mktemp("tiny_bundle") / "bundle"
    export_run(tiny_run, out, formats=TINY_FORMATS, test_dir=tiny_data.test, stress_dir=tiny_data.stress,
               calibration_dir=tiny_data.calibration, keep_failed=True, representative=60)
    return out
