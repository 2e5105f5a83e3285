"""Synthetic glassware photos: one image (`render`) or a class-folder dataset of JPEGs (`write_dataset`).

Every image has its own random generator, seeded by (seed, class, index), so a dataset is the same bytes
for the same arguments however many worker processes write it.
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from glassware.errors import SynthesisError
from glassware.synthetic import BACKGROUND, CLASSES, DATASET_CLASSES
from glassware.synthetic.objects import pyramid, variants
from glassware.synthetic.scene import DOMAINS, compose, draw_scene, random_placement

MAX_SIDE = 8192
SHEET_SAMPLES = 6  # per class on the contact sheet
_CHUNK = 32  # images per task handed to a worker


def render(class_name: str, domain: str, rng: np.random.Generator, width: int = 640, height: int = 480) -> np.ndarray:
    """One photo of an object of `class_name` in `domain` ("lab" or "stress"): RGB uint8 (height, width, 3)."""
    check(domain=domain, width=width, height=height, class_name=class_name)
    return cv2.cvtColor(_render(class_name, domain, rng, width, height)[0], cv2.COLOR_BGR2RGB)


def write_dataset(out: str | Path, domain: str = "lab", per_class: int = 100, seed: int = 0, width: int = 640,
                  height: int = 480, quality: int = 90, workers: int = 1, counts: dict[str, int] | None = None) -> dict:
    """Write OUT/<class>/<class>_<seed>_<i>.jpg for every class, OUT/contact_sheet.png and OUT/synth.json.
    `counts` overrides `per_class` for the classes it names. `quality` is the JPEG quality; stress images come
    from another camera with its own, lower quality (35-74, capped at `quality`). Returns the summary written
    to synth.json (counts, seconds, images_per_second...). Image i of a class is the same whatever the counts."""
    check(domain=domain, width=width, height=height, per_class=per_class, seed=seed, quality=quality, workers=workers)
    n = {name: per_class for name in CLASSES} | {BACKGROUND: 0}
    for name, count in (counts or {}).items():
        check(class_name=name, per_class=count)
        n[name] = count
    classes = [name for name in DATASET_CLASSES if n[name]]
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SynthesisError(f"{out} exists and is not a folder")
    _refuse_strays(out, seed, n)
    for name in classes:
        (out / name).mkdir(parents=True, exist_ok=True)
    jobs = [(c, i) for c, name in enumerate(DATASET_CLASSES) for i in range(n[name])]
    chunks = [jobs[k:k + _CHUNK] for k in range(0, len(jobs), _CHUNK)]
    task = (str(out), domain, seed, width, height, quality)

    from tqdm import tqdm

    start, cpu_start = time.perf_counter(), _cpu_seconds()
    written = 0
    with tqdm(total=len(jobs), desc=f"synth {domain}", unit="img", file=sys.stderr) as bar:
        if workers == 1:
            threads = cv2.getNumThreads()
            cv2.setNumThreads(1)  # "1 worker" means one core, as in the pool
            try:
                written = _drain((_write_chunk(task, chunk) for chunk in chunks), bar)
            finally:
                cv2.setNumThreads(threads)
        else:
            ctx = multiprocessing.get_context("spawn")  # never fork a process that may hold TensorFlow threads
            with ctx.Pool(workers, initializer=_one_thread) as pool:
                written = _drain(pool.imap_unordered(_write_chunk_star, [(task, c) for c in chunks]), bar)
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start

    sheet = contact_sheet(out, classes, f"{domain} domain, seed {seed}, {width}x{height}")
    summary = {
        "schema": "glassware-synth/1",
        "domain": domain,
        "seed": seed,
        "width": width,
        "height": height,
        "quality": quality,
        "workers": workers,
        "classes": classes,
        "counts": {name: n[name] for name in classes},
        "total": len(jobs),
        "bytes": written,
        "seconds": round(seconds, 3),
        "images_per_second": round(len(jobs) / seconds, 1),
        "cpu_seconds": round(cpu, 3),  # all processes: robust to other load on the machine
        "images_per_cpu_second": round(len(jobs) / max(cpu, 1e-9), 1),
        "contact_sheet": sheet.name,
    }
    (out / "synth.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def check(domain: str | None = None, width: int | None = None, height: int | None = None,
          class_name: str | None = None, per_class: int | None = None, seed: int | None = None,
          quality: int | None = None, workers: int | None = None) -> None:
    """Raise SynthesisError for arguments that cannot make a dataset; None means not given."""
    if domain is not None and domain not in DOMAINS:
        raise SynthesisError(f"unknown domain {domain!r}; choose one of: {', '.join(DOMAINS)}")
    if class_name is not None and class_name not in DATASET_CLASSES:
        raise SynthesisError(f"unknown class {class_name!r}; classes: {', '.join(DATASET_CLASSES)}")
    for name, value, low, high in (("width", width, 32, MAX_SIDE), ("height", height, 32, MAX_SIDE),
                                   ("per-class", per_class, 1, None), ("seed", seed, 0, 2 ** 63 - 1),
                                   ("quality", quality, 1, 100), ("workers", workers, 1, 256)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise SynthesisError(f"{name} must be an integer, got {value!r}")
        if value < low or (high is not None and value > high):
            allowed = f"in {low}..{high}" if high is not None else f"at least {low}"
            raise SynthesisError(f"{name} must be {allowed}, got {value}")


def parse_size(text: str) -> tuple[int, int]:
    """'640x480' -> (640, 480); raises SynthesisError for anything else."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SynthesisError(f"size must be WIDTHxHEIGHT such as 640x480, got {text!r}") from None
    check(width=w, height=h)
    return w, h


def parse_counts(items: list[str]) -> dict[str, int]:
    """['other=600', ...] -> {'other': 600}; raises SynthesisError for anything else."""
    counts = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise SynthesisError(f"--count takes CLASS=N such as other=600, got {item!r}")
        check(class_name=name.strip())
        counts[name.strip()] = int(value)
    return counts


def _refuse_strays(out: Path, seed: int, counts: dict[str, int]) -> None:
    """A reader takes every image under OUT/<class>/ as data: images left by another run would mix in."""
    if not out.is_dir():
        return
    from glassware.preprocessing import IMAGE_SUFFIXES

    ours = {f"{c}/{c}_{seed}_{i}.jpg" for c, n in counts.items() for i in range(n)}
    strays = [p for p in out.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES
              and p.relative_to(out).as_posix() not in ours]
    if strays:
        raise SynthesisError(f"{out} already holds {len(strays)} images this run would not write "
                             f"(e.g. {strays[0].relative_to(out)}): use an empty folder or delete them")


def contact_sheet(out: Path, classes: list[str], title: str, samples: int = SHEET_SAMPLES) -> Path:
    """A labelled grid of the first few images of each class (as written, JPEG and all): OUT/contact_sheet.png."""
    tw, th, title_h = 200, 150, 30
    label_w = 70 if max(map(len, classes)) < 6 else 110
    sheet = np.full((title_h + th * len(classes), label_w + tw * samples, 3), 255, np.uint8)
    cv2.putText(sheet, title, (8, 21), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    for row, name in enumerate(classes):
        y = title_h + row * th
        scale = 0.8 if len(name) < 3 else 0.6 if len(name) < 6 else 0.4
        cv2.putText(sheet, name, (8, y + th // 2 + 8), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 2, cv2.LINE_AA)
        files = sorted((out / name).glob(f"{name}_*.jpg"), key=_index)[:samples]
        for col, path in enumerate(files):
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is not None:
                x = label_w + col * tw
                thumb = cv2.resize(img, (tw - 2, th - 2), interpolation=cv2.INTER_AREA)
                sheet[y + 1:y + th - 1, x + 1:x + tw - 1] = thumb
    path = out / "contact_sheet.png"
    if not cv2.imwrite(str(path), sheet):
        raise SynthesisError(f"cannot write {path}")
    return path


def image_rng(seed: int, class_index: int, index: int) -> np.random.Generator:
    """The generator of one image: independent of every other image, of order and of worker count."""
    return np.random.default_rng(np.random.SeedSequence([seed, class_index, index]))


def sprite_px(width: int, height: int) -> int:
    """Resolution to draw objects at for this frame size: about half the biggest object scale, so drawing
    stays cheap and the largest objects are magnified at most ~1.7x (more above 1280 px, where it is capped)."""
    return int(min(640, -(-0.47 * max(width, height) // 32) * 32))


def _render(class_name, domain, rng, width, height) -> tuple[np.ndarray, int | None]:
    """(BGR picture, the camera's JPEG quality or None)."""
    scene = draw_scene(domain, rng, width, height)
    if class_name == BACKGROUND:
        return compose(scene, None, None, rng), scene.jpeg_quality
    variant = int(rng.integers(variants(class_name)))  # turned about its axis (or which `other` vessel)
    levels = pyramid(class_name, variant, sprite_px(width, height))
    where = random_placement(rng, levels[0].extent, width, height)
    return compose(scene, levels, where, rng), scene.jpeg_quality


def _write_chunk(task, chunk) -> tuple[int, int]:
    """Render, encode and write a list of (class index, image index); returns (images, bytes)."""
    out, domain, seed, width, height, quality = task
    written = 0
    for c, i in chunk:
        name = DATASET_CLASSES[c]
        bgr, camera_quality = _render(name, domain, image_rng(seed, c, i), width, height)
        q = quality if camera_quality is None else min(quality, camera_quality)
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, q])
        if not ok:
            raise SynthesisError(f"JPEG encoding failed for {name} #{i}")
        with open(f"{out}/{name}/{name}_{seed}_{i}.jpg", "wb") as f:
            f.write(data)
        written += data.size
    return len(chunk), written


def _write_chunk_star(args) -> tuple[int, int]:
    return _write_chunk(*args)


def _drain(results, bar) -> int:
    total = 0
    for n_images, n_bytes in results:
        total += n_bytes
        bar.update(n_images)
    return total


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the worker pool)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _one_thread() -> None:
    cv2.setNumThreads(1)  # one process per core; OpenCV's own threads would only contend


def _index(path: Path) -> int:
    return int(path.stem.rsplit("_", 1)[1])
