"""`glassware bench-train`: training images/s of this pipeline against the paper's, on the same 4K JPEGs.

Both train the paper's VGG with the same augmentation on the same training split, one after the other:
- ours: every image decoded and resized once into the uint8 cache (timed on its own), then tf.data from
  the cache, augmentation per batch in parallel `map`, prefetch;
- paper-style: what Keras' `flow_from_directory` did for the paper, in a `PyDataset` with Keras' default
  single worker: each step reads, decodes and resizes its JPEGs again and augments them one image at a time.
Steady-state images/s leaves out the first epoch (graph tracing, warm-up).

Two more rows say where the time goes: each input pipeline alone (batches made and dropped, no model), and
the model alone (the same VGG on in-memory tensors, no augmentation): the ceiling of any input pipeline on
this machine.

This module imports only the standard library at load time: `register` runs for every `glassware` call.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

PAPER_SIZE = (3840, 2160)  # the paper's camera frames
PAPER_QUALITY = 90  # synthetic 4K frames at JPEG quality 90 average ~590 KB, the paper's were 626 KB
MARKER = "bench_images.json"  # marks a generated image folder as ours, with the arguments that made it


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `glassware bench-train`."""
    p = subparsers.add_parser(
        "bench-train",
        help="training images/s: cached tf.data pipeline vs paper-style JPEG decoding every epoch",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--out", type=Path, required=True, help="folder for bench_train.json/.md, the cache, images")
    p.add_argument("--data", type=Path, help="class-folder dataset to use (default: generate paper-like 4K JPEGs)")
    p.add_argument("--images", type=int, default=48,
                   help="images to generate without --data, rounded up to a multiple of the 9 classes (default 48)")
    p.add_argument("--epochs", type=int, default=2, help="epochs per pipeline, >= 2; the first is warm-up")
    p.add_argument("--batch-size", type=int, default=8, help="the paper's mini-batch size (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> int:
    result = bench_train(args.out, data_dir=args.data, images=args.images, epochs=args.epochs,
                         batch_size=args.batch_size, seed=args.seed)
    print(markdown_table(result))
    print(f"\nwrote {args.out / 'bench_train.json'} and {args.out / 'bench_train.md'}")
    return 0


def bench_train(out: str | Path, data_dir: str | Path | None = None, images: int = 48, epochs: int = 2,
                batch_size: int = 8, seed: int = 0) -> dict:
    """Run both pipelines; write OUT/bench_train.json and OUT/bench_train.md; return the result dict."""
    from glassware.errors import GlasswareError

    if epochs < 2:
        raise GlasswareError(f"--epochs must be >= 2 (the first epoch is warm-up), got {epochs}")
    if batch_size < 1:
        raise GlasswareError(f"--batch-size must be >= 1, got {batch_size}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    generated = data_dir is None
    data_dir = _paper_like_images(out / "images", images, seed) if generated else Path(data_dir)

    from glassware.preprocessing import Preprocessing
    from glassware.training.data import prepare_data

    spec = Preprocessing()
    shutil.rmtree(out / "cache", ignore_errors=True)  # time the one-time build, not a cache hit
    data = prepare_data(data_dir, spec, out / "cache", seed=seed)
    n_decoded = len(data.train.y) + len(data.val.y)
    files = [data_dir / p for p in data.train.paths]

    import keras

    from glassware.training.augment import augmentation_config, make_augmentation
    from glassware.training.pipeline import make_dataset

    augmentation = make_augmentation()
    dataset = make_dataset(data.train.x, data.train.y, batch_size, training=True, augmentation=augmentation, seed=seed)
    ours = _train("ours", "tf.data from the uint8 cache; per-batch augmentation in parallel map; prefetch",
                  dataset, len(files), batch_size, len(data.class_names), epochs, seed)
    paper_style = _paper_style_dataset(files, data.train.y, spec, batch_size, augmentation, seed)
    paper = _train("paper-style", "PyDataset, 1 worker (Keras default): read, decode, resize, augment per image",
                   paper_style, len(files), batch_size, len(data.class_names), epochs, seed)
    ours["input_only_images_per_second"] = _input_only(lambda: iter(dataset), len(files))
    paper["input_only_images_per_second"] = _input_only(lambda: _iterate(paper_style), len(files))
    in_memory = make_dataset(data.train.x, data.train.y, batch_size, training=True, seed=seed).cache()
    model_only = _train("model only", "VGG on in-memory tensors, no augmentation: the ceiling", in_memory,
                        len(files), batch_size, len(data.class_names), epochs, seed)
    ratio = ours["steady_images_per_second"] / paper["steady_images_per_second"]
    input_ratio = ours["input_only_images_per_second"] / paper["input_only_images_per_second"]
    ceiling = model_only["steady_images_per_second"]
    ceiling_ratio = ceiling / paper["steady_images_per_second"]
    result = {
        "schema": "glassware-bench-train/1",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data_dir": str(data_dir),
        "generated": generated,
        "images": n_decoded,
        "train_images": len(files),
        "mean_file_kb": round(sum(f.stat().st_size for f in files) / len(files) / 1000, 1),
        "image_size": _image_size(files[0]),
        "model": "vgg",
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "augmentation": augmentation_config(),
        "cache_build_seconds": round(data.cache_seconds, 2),
        "cache_build_images_per_second": round(n_decoded / data.cache_seconds, 1),
        "ours": ours,
        "paper_style": paper,
        "model_only": model_only,
        "ratio": round(ratio, 1),
        "input_only_ratio": round(input_ratio, 1),
        "ceiling_ratio": round(ceiling_ratio, 1),  # no input pipeline trains faster than the model alone
        "machine": {"cpus": os.cpu_count(), "loadavg_before": [round(v, 2) for v in load_before],
                    "loadavg_after": [round(v, 2) for v in os.getloadavg()], "keras": keras.__version__,
                    "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS")},
    }
    (out / "bench_train.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "bench_train.md").write_text(markdown_table(result) + "\n")
    return result


def markdown_table(result: dict) -> str:
    ours, paper, model = result["ours"], result["paper_style"], result["model_only"]
    w, h = result["image_size"]

    from glassware.markdown import table

    def row(name, r, cache="-", input_only="-"):
        return [name, f"{r['steady_images_per_second']:.1f}", input_only, f"{r['own_cpu_ms_per_image']:.1f}",
                ", ".join(f"{s:.2f}" for s in r["epoch_seconds"]), cache, _percent(r)]

    def speedup(ratio, rate):
        return f"**{ratio:.1f}x**, ours {rate:.0f} images/s"

    lines = [
        f"Training benchmark: VGG, {result['train_images']} training images of {w}x{h} "
        f"(~{result['mean_file_kb']:.0f} KB JPEG), batch {result['batch_size']}, {result['epochs']} epochs, "
        f"full augmentation, {result['machine']['cpus']} CPUs",
        "",
        table(["pipeline", "training, steady-state images/s", "input alone, images/s", "own CPU ms/image (training)",
               "epoch seconds", "one-time cache build", "CPU taken by other processes"], [
            row("ours (cache + tf.data)", ours, f"{result['cache_build_seconds']:.1f} s "
                f"({result['cache_build_images_per_second']:.0f} images/s)",
                f"{ours['input_only_images_per_second']:.0f}"),
            row("paper-style (decode every epoch)", paper, input_only=f"{paper['input_only_images_per_second']:.1f}"),
            row("model alone (in memory, no augmentation)", model)], align="lrrrlrr"),
        "",
        f"Training, ours / paper-style: {speedup(result['ratio'], ours['steady_images_per_second'])}.",
        f"Input pipelines alone, ours / paper-style: "
        f"{speedup(result['input_only_ratio'], ours['input_only_images_per_second'])}.",
        f"Ours trains at {ours['steady_images_per_second'] / model['steady_images_per_second'] * 100:.0f} % of "
        "the model-alone ceiling: beyond it only a faster CPU (or GPU) helps.",
        f"That ceiling is {model['steady_images_per_second']:.0f} images/s, "
        f"{result['ceiling_ratio']:.1f}x the paper-style pipeline: no input pipeline can beat that here.",
    ]
    return "\n".join(lines)


def _percent(pipeline: dict) -> str:
    value = pipeline["cpu_used_by_other_processes_percent"]
    return "n/a" if value is None else f"{value:.0f} %"


def _paper_like_images(folder: Path, images: int, seed: int) -> Path:
    """Generate (or reuse, if made with the same arguments) a class folder of 3840x2160 JPEGs."""
    from glassware.errors import GlasswareError
    from glassware.synthetic import CLASSES
    from glassware.synthetic.images import write_dataset

    per_class = max(2, math.ceil(images / len(CLASSES)))
    wanted = {"per_class": per_class, "seed": seed, "size": list(PAPER_SIZE), "quality": PAPER_QUALITY}
    marker = folder / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return folder
    if folder.exists():
        if not marker.is_file():
            raise GlasswareError(f"{folder} exists and was not made by bench-train; use another --out")
        shutil.rmtree(folder)
    write_dataset(folder, domain="lab", per_class=per_class, seed=seed, width=PAPER_SIZE[0],
                  height=PAPER_SIZE[1], quality=PAPER_QUALITY, workers=os.cpu_count() or 1)
    marker.write_text(json.dumps(wanted))
    return folder


def _image_size(path: Path) -> list[int]:
    from glassware.preprocessing import read_image

    h, w = read_image(path).shape[:2]
    return [w, h]


def _train(name: str, loader: str, data, n_images: int, batch_size: int, num_classes: int, epochs: int,
           seed: int) -> dict:
    """Train a fresh VGG on `data` (a tf.data.Dataset or PyDataset); return per-epoch and steady-state figures."""
    import keras

    from glassware.training.models import make_vgg

    keras.utils.set_random_seed(seed)
    model = make_vgg(num_classes)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    timer = _epoch_timer(name, epochs * math.ceil(n_images / batch_size))
    model.fit(data, epochs=epochs, verbose=0, shuffle=False, callbacks=[timer])  # both shuffle themselves
    begin, end = timer.epochs[1][0], timer.epochs[-1][1]  # steady state: from epoch 2 to the end
    wall, own, n = end.wall - begin.wall, end.own - begin.own, n_images * (epochs - 1)
    others = None if end.everyone is None else max(end.everyone - begin.everyone - own, 0.0)
    return {
        "loader": loader,
        "epoch_seconds": [round(e.wall - b.wall, 3) for b, e in timer.epochs],
        "steady_images_per_second": round(n / wall, 1),
        "own_cpu_ms_per_image": round(own / n * 1000, 1),
        # CPU that other processes took meanwhile, as a share of the whole machine
        "cpu_used_by_other_processes_percent": None if others is None else
        round(others / (wall * (os.cpu_count() or 1)) * 100, 1),
    }


class _Usage:
    """A moment's wall clock, this process's CPU seconds, and all processes' CPU seconds (None off Linux)."""

    def __init__(self):
        times = os.times()
        self.wall, self.own, self.everyone = time.perf_counter(), times.user + times.system, _cpu_busy_seconds()


def _cpu_busy_seconds() -> float | None:
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and I/O wait


# The two classes below subclass Keras types, so they are defined when first needed: importing this module
# must not import TensorFlow.

def _epoch_timer(name: str, total_steps: int):
    import keras
    from tqdm import tqdm

    class EpochTimer(keras.callbacks.Callback):
        """(begin, end) `_Usage` of each epoch, and a progress bar over all steps."""

        def __init__(self):
            super().__init__()
            self.epochs: list[tuple[_Usage, _Usage]] = []
            self.bar = tqdm(total=total_steps, desc=name, unit="step")

        def on_epoch_begin(self, epoch, logs=None):
            self.begin = _Usage()

        def on_train_batch_end(self, batch, logs=None):
            self.bar.update()

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append((self.begin, _Usage()))

        def on_train_end(self, logs=None):
            self.bar.close()

    return EpochTimer()


def _input_only(batches, n_images: int) -> float:
    """Images/s of an input pipeline alone: one epoch to warm up, then one timed epoch."""
    for _ in batches():
        pass
    start = time.perf_counter()
    for _ in batches():
        pass
    return round(n_images / (time.perf_counter() - start), 1)


def _iterate(sequence):
    """One epoch of a PyDataset, as Keras' fit walks it."""
    for i in range(len(sequence)):
        yield sequence[i]
    sequence.on_epoch_end()


def _paper_style_dataset(files, labels, spec, batch_size, augmentation, seed):
    import keras
    import numpy as np
    import tensorflow as tf

    from glassware.preprocessing import preprocess_file
    from glassware.training.augment import apply_augmentation

    class PaperStyle(keras.utils.PyDataset):
        """flow_from_directory as the paper used it: every step reads, decodes and resizes its files again
        and augments them one at a time; the order is reshuffled each epoch."""

        def __init__(self):
            super().__init__()  # Keras' defaults: one worker, no multiprocessing
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(len(files))
            self.augment_one = tf.function(lambda image, s: apply_augmentation(augmentation, image[None], s)[0])

        def __len__(self):
            return math.ceil(len(files) / batch_size)

        def __getitem__(self, i):
            chosen = self.order[i * batch_size:(i + 1) * batch_size]
            return np.stack([self._load(files[j]) for j in chosen]), labels[chosen]

        def _load(self, path):
            image = preprocess_file(path, spec).astype(np.float32)
            return self.augment_one(image, self.rng.integers(2**31, size=2)).numpy()

        def on_epoch_end(self):
            self.order = self.rng.permutation(len(files))

    return PaperStyle()
