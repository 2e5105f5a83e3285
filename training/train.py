"""`glassware train`: fit a classifier (VGG, EfficientNet-Lite0, MobileNet) on a class-folder dataset into a run.

Training runs in phases: one for VGG ("train") and for a transfer model from random init ("full"); two for
a pretrained one: "head", the new classifier on frozen-backbone features computed once
(`glassware.training.features`), then "fine_tune" of the backbone's top layers on augmented images with
BatchNorm in inference mode. After every epoch the model (with optimizer state in the image phases) and
`checkpoints/state.json` (epoch, phase, early-stopping state, history) are written, so `--resume` continues
where a run stopped; "head" writes them when it ends, and a run stopped within it redoes that phase (seconds,
from the cached features).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from glassware.errors import RunError
from glassware.preprocessing import Preprocessing
from glassware.training import models
from glassware.training.augment import augmentation_config, make_augmentation
from glassware.training.data import prepare_data, repeat_extra
from glassware.training.features import cached_features
from glassware.training.pipeline import make_dataset
from glassware.training.plots import plot_training_curves
from glassware.training.run import RUN_SCHEMA, TrainConfig

log = logging.getLogger(__name__)

BEST_WEIGHTS = "best.weights.h5"  # in RUN/checkpoints: the best epoch so far, kept across a resume
HISTORY_FIELDS = ("epoch", "phase", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate",
                  "seconds", "images_per_second")


@dataclass
class Phase:
    name: str
    epochs: int
    learning_rate: float


def train(config: TrainConfig, resume: bool = False) -> dict:
    """Train into `config.out` (see docs/architecture.md, run directory) and return run.json as a dict."""
    out = Path(config.out)
    state = _open_run_dir(out, config, resume)
    if state is None and config.model == "lite0":
        models.check_lite0_weights(config.weights)  # a bad weights file fails before anything is written
    if state is None and config.init_from:
        _init_source(config)  # so does a wrong --init-from
    keras.utils.set_random_seed(config.seed)
    spec = Preprocessing(model_scaling=models.SCALINGS[config.model])
    data = prepare_data(config.data_dir, spec, out / "cache", val_fraction=config.val_fraction,
                        seed=config.seed, workers=config.workers, extra_dirs=tuple(config.extra_data))
    if state and state["class_names"] != data.class_names:
        raise RunError(f"{out}: checkpoint classes {state['class_names']} differ from {data.class_names} in {config.data_dir}")
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)  # only now: bad data leaves no half-made run behind

    strategy = _strategy()
    with strategy.scope():
        resumed = state is not None  # then the model comes compiled, mid-phase, with its optimizer state
        if resumed:
            model = keras.models.load_model(out / "checkpoints" / "last.keras")
            log.info("resuming %s after epoch %d (phase %s)", out, state["epoch"], state["phase"])
        else:
            model, model_options = _build(config, len(data.class_names))
            if config.init_from:
                model_options["init_from"] = _init_from(model, config, data.class_names)
            state = _new_state(config, data.class_names, model_options)
        augmentation = make_augmentation(blend=config.blend) if config.augment else None  # not phase 1's features
        seen = repeat_extra(data.train.paths, config.extra_repeat)
        images = (make_dataset(data.train.x[seen], data.train.y[seen], config.batch_size, training=True,
                               augmentation=augmentation, seed=config.seed),
                  make_dataset(data.val.x, data.val.y, config.batch_size, training=False), len(seen))
        checkpoint = RunCheckpoint(out, state, config, n_train=len(data.train.y), target=model)
        _run_phases(model, config, state, resumed, images, lambda: _head_features(model, config, state, data, out),
                    checkpoint)
    return _finish(out, model, config, data, spec, state, strategy)


def _run_phases(model: keras.Model, config: TrainConfig, state: dict, resumed: bool, images: tuple,
                head_features, checkpoint: "RunCheckpoint") -> None:
    """Fit each phase not yet done; a resumed model continues its current phase where it stopped.
    `images`: (train, val) image datasets and the number of training images; `head_features()`: the same for
    the features "head" trains on."""
    for index, phase in enumerate(_phases(config, state["model_options"])):
        if index < state["phase_index"]:
            continue
        fit_model, (train_ds, val_ds, checkpoint.n_train) = model, images
        if phase.name == "head":
            train_ds, val_ds, checkpoint.n_train = head_features()
            fit_model = _feature_head(model)
        steps_per_epoch = int(train_ds.cardinality())
        if index > state["phase_index"] or not resumed:
            _start_phase(model, phase, index, config, state, checkpoint.dir, steps_per_epoch)
        if phase.name == "head" or (resumed and config.lr_schedule == "cosine"):
            # The head model is rebuilt for every run of its phase, and a resumed image phase may have more
            # --epochs than it started with: its rate curve is stretched to them.
            _compile(fit_model, _learning_rate(phase, config, steps_per_epoch), keep_optimizer=phase.name != "head")
        end = state["phase_start"] + phase.epochs
        if state["stopped"] or state["epoch"] >= end:
            log.info("phase %s already complete (epoch %d%s)", phase.name, state["epoch"],
                     ", stopped early" if state["stopped"] else "")
            continue
        fit_model.fit(train_ds, validation_data=val_ds, initial_epoch=state["epoch"], epochs=end, verbose=0,
                      shuffle=False, callbacks=[EpochProgress(phase.name, end), checkpoint])


def _head_features(model: keras.Model, config: TrainConfig, state: dict, data, out: Path) -> tuple:
    """(train, val, n train) datasets of frozen-backbone features: training images and augmented copies, val."""
    copies = config.feature_copies if config.augment else 0
    start = time.perf_counter()
    options = state["model_options"]
    weights = {"weights": options.get("weights_provenance", options), "init_from": options.get("init_from")}
    features = cached_features(model, out / "cache", data, copies, augmentation_config() if config.augment else None,
                               config.seed, weights)
    state["feature_seconds"] = round(state.get("feature_seconds", 0.0) + time.perf_counter() - start, 1)
    n, seen = len(data.train.y), repeat_extra(data.train.paths, config.extra_repeat)
    rows = np.concatenate([seen + n * copy for copy in range(len(features.train_y) // n)])  # originals, copies
    features.train_x, features.train_y = features.train_x[rows], features.train_y[rows]
    return (make_dataset(features.train_x, features.train_y, config.batch_size, training=True, seed=config.seed),
            make_dataset(features.val_x, features.val_y, config.batch_size, training=False), len(features.train_y))


def _feature_head(model: keras.Model) -> keras.Model:
    """The classifier's own head layers (dropout, logits, softmax) on a features input: training it trains them."""
    pool = model.get_layer("pool")
    x = inputs = keras.Input(pool.output.shape[1:], name="features")
    for name in ("dropout", "logits", "probs"):
        x = model.get_layer(name)(x)
    return keras.Model(inputs, x, name=f"{model.name}_head")


def _compile(model: keras.Model, learning_rate, keep_optimizer: bool = False) -> None:
    if keep_optimizer and model.optimizer is not None and model.compiled:
        model.optimizer.learning_rate = learning_rate
        return
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])


class RunCheckpoint(keras.callbacks.Callback):
    """Per epoch: history row, early stopping on `config.monitor`, best weights, last.keras + state.json.

    The "head" phase writes them once, when it ends: on lite0 each of its epochs takes 0.5 s, and writing the
    model (35 MB with optimizer state) and the best weights took 0.9 s more; a run stopped within the phase
    redoes it from the cached features."""

    def __init__(self, out: Path, state: dict, config: TrainConfig, n_train: int, target: keras.Model):
        super().__init__()
        self.dir = out / "checkpoints"
        self.state, self.config, self.n_train = state, config, n_train
        self.target = target  # the whole classifier, also while only its head is being fit
        self.best_weights = None  # the head phase's best epoch, until the phase ends

    @property
    def each_epoch(self) -> bool:
        return self.state["phase"] != "head"

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
        self.train_seconds = None

    def on_test_begin(self, logs=None):  # validation starts: the training part of the epoch is over
        if self.train_seconds is None:
            self.train_seconds = time.perf_counter() - self.started

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.state["history"].append(self._history_row(epoch, logs))
        self.state["epoch"] = epoch + 1
        self._early_stopping(epoch, logs)
        if self.each_epoch:
            _save_checkpoint(self.target, self.state, self.dir)

    def on_train_end(self, logs=None):
        if self.each_epoch:
            return
        if self.best_weights is not None:
            current = self.target.get_weights()
            self.target.set_weights(self.best_weights)
            self.target.save_weights(self.dir / BEST_WEIGHTS)
            self.target.set_weights(current)
            self.best_weights = None
        _save_checkpoint(self.target, self.state, self.dir)

    def _history_row(self, epoch: int, logs: dict) -> dict:
        train_seconds = self.train_seconds or time.perf_counter() - self.started
        learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        return {
            "epoch": epoch, "phase": self.state["phase"],
            **{k: float(logs.get(k, float("nan"))) for k in ("loss", "accuracy", "val_loss", "val_accuracy")},
            "learning_rate": float(f"{learning_rate:.6g}"),
            "seconds": round(time.perf_counter() - self.started, 3),
            "images_per_second": round(self.n_train / train_seconds, 1),
        }

    def _early_stopping(self, epoch: int, logs: dict) -> None:
        """Keep the best weights; stop after `patience` epochs without improvement."""
        state, monitor = self.state, self.config.monitor
        value = float(logs.get(monitor, float("nan")))
        if _improved(value, state["best"], monitor):
            state["best"] = {"epoch": epoch, "value": value, "val_accuracy": float(logs.get("val_accuracy", float("nan")))}
            state["wait"] = 0
            if self.each_epoch:
                self.target.save_weights(self.dir / BEST_WEIGHTS)
            else:
                self.best_weights = self.target.get_weights()
            return
        state["wait"] += 1
        if state["wait"] >= self.config.patience:
            best = state["best"]
            log.info("early stopping: %s has not improved for %d epochs (%s)", monitor, state["wait"],
                     f"best {best['value']:.4f} at epoch {best['epoch'] + 1}" if best else "never finite")
            state["stopped"] = True
            self.model.stop_training = True


class EpochProgress(keras.callbacks.Callback):
    """A tqdm bar per epoch over training batches; the line it leaves shows the epoch's metrics."""

    def __init__(self, phase: str, last_epoch: int):
        super().__init__()
        self.phase, self.last_epoch = phase, last_epoch

    def on_epoch_begin(self, epoch, logs=None):
        steps = self.params.get("steps")
        self.bar = tqdm(total=steps, desc=f"{self.phase} epoch {epoch + 1}/{self.last_epoch}", unit="batch",
                        file=sys.stderr, mininterval=2.0, leave=True)

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(1)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.bar.set_postfix_str(" ".join(f"{k}={logs[k]:.4f}" for k in
                                          ("loss", "accuracy", "val_loss", "val_accuracy") if k in logs))
        self.bar.close()


def _open_run_dir(out: Path, config: TrainConfig, resume: bool) -> dict | None:
    """Refuse to overwrite a used RUN; with --resume return its checkpoint state (None if there is none yet)."""
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is a file")
    state_file = out / "checkpoints" / "state.json"
    if resume and state_file.is_file():
        if not (out / "checkpoints" / "last.keras").is_file():
            raise RunError(f"{out}: checkpoints/state.json without last.keras; cannot resume (start a new --out)")
        state = json.loads(state_file.read_text())
        before = state["config"]
        same_data = [Path(d).resolve() for d in [before["data_dir"], *before.get("extra_data", [])]] == \
            [Path(d).resolve() for d in [config.data_dir, *config.extra_data]]
        if before["model"] != config.model or not same_data:
            raise RunError(f"{out} was trained with --model {before['model']} --data {before['data_dir']}; "
                           f"resume it with the same model and data")
        state["config"] = config.to_dict()
        return state
    if resume:
        log.info("%s: no checkpoint to resume; starting from epoch 1", out)
    elif out.is_dir() and any(out.iterdir()):
        raise RunError(f"--out {out} exists and is not empty; pass --resume to continue that run, or choose a new --out")
    return None


def _new_state(config: TrainConfig, class_names: list[str], model_options: dict) -> dict:
    return {"config": config.to_dict(), "class_names": class_names, "model_options": model_options,
            "epoch": 0, "phase_index": 0, "phase": None, "phase_start": 0, "wait": 0, "stopped": False,
            "best": None, "history": []}


def _build(config: TrainConfig, num_classes: int) -> tuple[keras.Model, dict]:
    if config.model == "vgg":
        return models.make_vgg(num_classes), {"scaling": models.VGG_SCALING}
    if config.model == "lite0":
        net = models.make_lite0(num_classes, weights=config.weights)
    else:
        net = models.make_mobilenet(num_classes, variant=config.variant, alpha=config.alpha, weights=config.weights)
    options = dict(net.options)
    if net.pretrained:
        options["fine_tune_layers"] = config.fine_tune_layers
        options["feature_copies"] = config.feature_copies if config.augment else 0
    else:
        options["note"] = ("no pretrained weights: a frozen random base cannot learn, so the whole network "
                           "was trained in one phase ('full') with BatchNorm in training mode")
        log.warning("%s without pretrained weights: training the whole network from scratch (one phase)", config.model)
    return net.model, options


def _init_from(model: keras.Model, config: TrainConfig, class_names: list[str]) -> dict:
    """Copy the weights of run `config.init_from` into `model`; its provenance for run.json."""
    from glassware.checksum import sha256_file

    source = _init_source(config)
    if source.class_names != class_names:
        raise RunError(f"--init-from {config.init_from}: a {source.model_name} run of classes "
                       f"{source.class_names}; this run is {config.model} of {class_names}")
    weights = source.model().get_weights()
    if [w.shape for w in weights] != [w.shape for w in model.get_weights()]:
        raise RunError(f"--init-from {config.init_from}: its weights do not fit this {config.model} "
                       f"(trained with other model options?)")
    model.set_weights(weights)
    log.info("weights from %s", source.model_path)
    return {"run": str(source.path.resolve()), "model_sha256": sha256_file(source.model_path)}


def _init_source(config: TrainConfig):
    from glassware.training.run import load_run

    source = load_run(config.init_from)
    if source.model_name != config.model:
        raise RunError(f"--init-from {config.init_from} is a {source.model_name} run; this run is {config.model}")
    return source


def _phases(config: TrainConfig, model_options: dict) -> list[Phase]:
    if config.model == "vgg":
        return [Phase("train", config.epochs, config.learning_rate)]
    if model_options["weights"] == "random":
        return [Phase("full", config.epochs, config.learning_rate)]
    # --init-from with --epochs 0 keeps the deployed head: re-training it on frozen features, the new frames
    # repeated, pulled a lab class under its threshold (docs/results.md).
    phases = [Phase("head", config.epochs, config.learning_rate)] if config.epochs else []
    if config.fine_tune_epochs and config.fine_tune_layers:
        phases.append(Phase("fine_tune", config.fine_tune_epochs, config.fine_tune_learning_rate))
    return phases


def _start_phase(model: keras.Model, phase: Phase, index: int, config: TrainConfig, state: dict,
                 checkpoints: Path, steps_per_epoch: int) -> None:
    """Set what trains in this phase and compile a fresh optimizer; fine-tuning starts from the best head."""
    if index > 0:
        _restore_best(model, checkpoints)
    base = _backbone(model)
    if phase.name == "head":
        base.trainable = False
    elif phase.name == "fine_tune":
        models.set_fine_tune(base, config.fine_tune_layers)
    if phase.name != "head":  # the head phase fits its own small model (_feature_head)
        _compile(model, _learning_rate(phase, config, steps_per_epoch))
    trainable = sum(int(tf.size(w)) for w in model.trainable_weights)
    log.info("phase %s: %d epochs at learning rate %g, %d trainable parameters", phase.name, phase.epochs,
             phase.learning_rate, trainable)
    # Early stopping and the best epoch are per phase: the run ends with the best epoch of its last phase.
    # Lab val cannot show what fine-tuning on augmented images is for (it is near 100 % after the head alone):
    # compared across phases, the head would always win.
    state.update(phase_index=index, phase=phase.name, phase_start=state["epoch"], wait=0, stopped=False, best=None)


def _learning_rate(phase: Phase, config: TrainConfig, steps_per_epoch: int):
    """The phase's rate, constant or cosine-decayed to 1 % over its epochs. A schedule lives in the optimizer,
    which the checkpoint saves with its step count, so a resumed run continues on the same curve."""
    if config.lr_schedule == "constant":
        return phase.learning_rate
    return keras.optimizers.schedules.CosineDecay(phase.learning_rate, decay_steps=phase.epochs * steps_per_epoch,
                                                  alpha=0.01)


def _restore_best(model: keras.Model, checkpoints: Path) -> None:
    """Load the best epoch's weights, if there is one. The file also holds that epoch's optimizer state, which
    nothing here needs (a phase compiles a fresh optimizer; the finished model is for inference) and which
    Keras refuses, with a warning, when the best epoch came from an earlier phase with fewer trainable weights."""
    best = checkpoints / BEST_WEIGHTS
    if best.is_file():
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Skipping variable loading for optimizer")
            model.load_weights(best)


def _backbone(model: keras.Model) -> keras.Model | None:
    """The nested MobileNet base of a MobileNet classifier (None for VGG)."""
    return next((layer for layer in model.layers if isinstance(layer, keras.Model)), None)


def _improved(value: float, best: dict | None, monitor: str) -> bool:
    if value != value:  # NaN never improves
        return False
    if best is None:
        return True
    return value < best["value"] if monitor.endswith("loss") else value > best["value"]


def _save_checkpoint(model: keras.Model, state: dict, directory: Path) -> None:
    """Model then state, each written to a temporary file and renamed, so a kill never leaves half a file."""
    partial = directory / "last.partial.keras"
    model.save(partial)
    os.replace(partial, directory / "last.keras")
    _write_json(directory / "state.json", state)


def _strategy() -> tf.distribute.Strategy:
    """MirroredStrategy over all GPUs, or all logical CPUs if there are several; else the default."""
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    if len(devices) > 1 and devices[0].device_type == "CPU" and os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "1":
        # TF 2.21's oneDNN kernels break replicated convolutions ("input depth must be evenly divisible by
        # filter depth: 3 vs 32" in replica 1); one CPU device already uses every core.
        log.warning("%d logical CPUs: not mirroring, because oneDNN is on (TF_ENABLE_ONEDNN_OPTS=0 to mirror)",
                    len(devices))
        return tf.distribute.get_strategy()
    if len(devices) > 1:
        log.info("MirroredStrategy over %d devices: %s", len(devices), ", ".join(d.name for d in devices))
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    return tf.distribute.get_strategy()


def _finish(out: Path, model: keras.Model, config: TrainConfig, data, spec: Preprocessing, state: dict,
            strategy: tf.distribute.Strategy) -> dict:
    """Restore the best weights; write model.keras, history.csv, training_curves.png and run.json."""
    _restore_best(model, out / "checkpoints")
    model.save(out / "model.keras")
    _write_history(out, state["history"], title=f"{config.model} on {Path(config.data_dir).name}")
    info = _run_info(model, config, data, spec, state, strategy)
    _write_json(out / "run.json", info)
    return info


def _write_history(out: Path, history: list[dict], title: str) -> None:
    with open(out / "history.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_FIELDS)
        writer.writeheader()
        writer.writerows(history)
    plot_training_curves(history, out / "training_curves.png", title=title)


def _run_info(model: keras.Model, config: TrainConfig, data, spec: Preprocessing, state: dict,
              strategy: tf.distribute.Strategy) -> dict:
    """run.json (docs/architecture.md, "Training run directory")."""
    history = state["history"]
    # Steady state of the image phases (a "head" phase reads features): leave out each phase's first epoch
    # (graph tracing); the median shrugs off a resume's.
    rows = [row for row in history if row["phase"] != "head"] or history
    steady = ([row["images_per_second"] for prev, row in zip(rows, rows[1:]) if row["phase"] == prev["phase"]]
              or [row["images_per_second"] for row in rows])
    return {
        "schema": RUN_SCHEMA,
        "model": config.model,
        "model_options": state["model_options"],
        "class_names": data.class_names,
        "preprocessing": spec.to_dict(),
        "data_dir": str(Path(config.data_dir).resolve()),
        "extra_data": [str(Path(d).resolve()) for d in config.extra_data],
        "extra_repeat": config.extra_repeat,
        "seed": config.seed,
        "batch_size": config.batch_size,
        "val_fraction": config.val_fraction,
        "splits": {"train": list(data.train.paths), "val": list(data.val.paths)},
        "split_labels": {"train": data.train.y.tolist(), "val": data.val.y.tolist()},
        "skipped": data.skipped,
        "leakage": data.leakage,
        "params": int(model.count_params()),
        "epochs_run": state["epoch"],
        "best_epoch": state["best"]["epoch"] if state["best"] else None,
        "best_val_accuracy": state["best"]["val_accuracy"] if state["best"] else None,
        "train_seconds": round(sum(row["seconds"] for row in history) + state.get("feature_seconds", 0.0), 1),
        "phase_seconds": {"features": state.get("feature_seconds", 0.0),
                          **{phase: round(sum(r["seconds"] for r in history if r["phase"] == phase), 1)
                             for phase in dict.fromkeys(row["phase"] for row in history)}},
        "images_per_second": round(statistics.median(steady), 1) if steady else None,
        "augmentation": augmentation_config() if config.augment else {},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "training": {"learning_rate": config.learning_rate, "lr_schedule": config.lr_schedule,
                     "monitor": config.monitor, "patience": config.patience,
                     "blend": config.blend if config.augment else 0.0,
                     "epochs_requested": config.epochs, "stopped_early": state["stopped"],
                     "phases": list(dict.fromkeys(row["phase"] for row in history)),
                     "replicas": strategy.num_replicas_in_sync,
                     "versions": {"tensorflow": tf.__version__, "keras": keras.__version__}},
    }


def _write_json(path: Path, obj: dict) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(obj, indent=2))
    os.replace(partial, path)


def summary_table(info: dict, out: str | Path) -> str:
    """A few readable lines about a finished run."""
    options = info["model_options"]
    model = {"vgg": "vgg (the paper's)", "lite0": f"EfficientNet-Lite0 (weights: {options.get('weights')})"}.get(
        info["model"]) or f"mobilenet {options['variant']} alpha {options['alpha']} (weights: {options['weights']})"
    best = info["best_epoch"]
    rows = [
        ("run", str(out)),
        ("model", f"{model}, {info['params']:,} parameters"),
        ("classes", f"{len(info['class_names'])}: {' '.join(info['class_names'])}"),
        ("images", f"{len(info['splits']['train'])} train, {len(info['splits']['val'])} val, "
                   f"{len(info['skipped'])} skipped, leakage ok: {info['leakage'].get('ok')}"),
        ("epochs", f"{info['epochs_run']} run ({' -> '.join(info['training']['phases'])}), "
                   f"best {best + 1 if best is not None else '-'}"),
        ("best val accuracy", f"{info['best_val_accuracy']:.4f}" if info["best_val_accuracy"] is not None else "-"),
        ("training time", f"{info['train_seconds']:.0f} s, {info['images_per_second']} images/s steady state"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
