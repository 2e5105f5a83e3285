"""A class-folder dataset -> decoded-once, stratified, leak-checked training data.

`prepare_data` scans the class folders, decodes and resizes every image once (in parallel, with the shared
`glassware.preprocessing` definition), splits each class by seed keeping near-duplicates together, checks
the split for leaks (the same file, or a near-duplicate by perceptual hash, on both sides), and caches the
uint8 arrays so later runs and every epoch skip JPEG decoding. Needs numpy and OpenCV only, no TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from glassware.errors import DatasetError, GlasswareError, ImageDecodeError
from glassware.preprocessing import IMAGE_SUFFIXES, Preprocessing, preprocess_bytes

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # 2: near-duplicates kept on one side of the split
CACHE_KEY_FILE = "cache.json"  # written last: its presence means the arrays beside it are complete
# pHash bits (of 256) two images may differ in and still count as the same picture. Measured on synthetic
# 150x150 glassware: re-encoding at JPEG quality 40, resizing, brightness +-15 and 2 % crops stay <= 28;
# different images are >= 46 apart.
NEAR_DUPLICATE_MAX_BITS = 32
MAX_REPORTED_PAIRS = 1000


@dataclass
class Split:
    paths: list[str]  # relative to the data folder, "/"-separated
    x: np.ndarray  # uint8 (N, H, W, 3)
    y: np.ndarray  # int64 (N,)


@dataclass
class PreparedData:
    class_names: list[str]
    train: Split
    val: Split
    skipped: list[dict]  # unreadable image files: {"path", "reason"}
    leakage: dict  # see check_leakage
    ignored: list[str] = field(default_factory=list)  # hidden and non-image files, not used
    cache_hit: bool = False
    cache_seconds: float = 0.0  # time to build (decode everything) or to load the cache


@dataclass(frozen=True)
class Fingerprint:
    """What identifies one image for the leakage checks."""

    path: str  # relative to the data folder
    real_path: str  # resolved: symlinks followed
    sha256: str  # of the file's bytes
    phash: np.ndarray  # perceptual_hash of the decoded, resized image


@dataclass
class Scan:
    class_names: list[str]
    files: list[tuple[str, int]]  # (relative path, label), sorted by path
    ignored: list[str]


def prepare_data(
    data_dir: str | Path,
    spec: Preprocessing,
    cache_dir: str | Path,
    val_fraction: float = 0.15,
    seed: int = 0,
    workers: int | None = None,
    extra_dirs: tuple = (),
) -> PreparedData:
    """Scan, decode once, split per class and check for leaks; reuse `cache_dir` when nothing changed.
    `extra_dirs`: more class folders of the same classes (e.g. frames labelled on the robot), merged in."""
    if not 0 < val_fraction < 1:
        raise GlasswareError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    data_dir, cache_dir = Path(data_dir), Path(cache_dir)
    scan = scan_dataset(data_dir, extra_dirs)
    key = _cache_key(data_dir, scan, spec, val_fraction, seed)
    start = time.perf_counter()
    data = _load_cache(cache_dir, key)
    if data is None:
        data = _build(data_dir, scan, spec, val_fraction, seed, workers)
        _save_cache(cache_dir, key, data)
    data.cache_seconds = time.perf_counter() - start
    _log_summary(data, cache_dir)
    return data


def repeat_extra(paths: list[str], times: int) -> np.ndarray:
    """Indices into `paths` with each image of an extra folder (an absolute path, see `scan_dataset`) `times`
    times and every other once."""
    return np.repeat(np.arange(len(paths)), [times if p.startswith("/") else 1 for p in paths])


def scan_dataset(data_dir: str | Path, extra_dirs: tuple = ()) -> Scan:
    """List the image files of each class folder (sorted); raise DatasetError if there is nothing to train on.

    Files of `extra_dirs` are listed by absolute path (so `data_dir / path` finds them too); their class
    folders must be classes of `data_dir`, and an empty one adds nothing.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DatasetError(f"dataset folder {data_dir} does not exist" if not data_dir.exists()
                           else f"dataset path {data_dir} is not a folder")
    entries = sorted(data_dir.iterdir(), key=lambda p: p.name)
    class_dirs = [p for p in entries if p.is_dir() and not p.name.startswith(".")]
    ignored = [_relative(p, data_dir) for p in entries if p not in class_dirs]
    if len(class_dirs) < 2:
        found = f"only class folder {class_dirs[0].name!r}" if class_dirs else "no class sub-folders"
        raise DatasetError(f"{data_dir}: {found}; a dataset needs one sub-folder of images per class, at least 2")
    files = []
    for label, class_dir in enumerate(class_dirs):
        images, others = _list_class(data_dir, class_dir)
        if not images:
            raise DatasetError(f"class {class_dir.name!r} ({class_dir}) has no images "
                               f"({', '.join(IMAGE_SUFFIXES)}){f'; {len(others)} other files' if others else ''}")
        files += [(path, label) for path in images]
        ignored += others
    class_names = [d.name for d in class_dirs]
    for extra in map(Path, extra_dirs):
        files += _scan_extra(extra, class_names)
    return Scan(class_names, sorted(files), sorted(ignored))


def _scan_extra(folder: Path, class_names: list[str]) -> list[tuple[str, int]]:
    if not folder.is_dir():
        raise DatasetError(f"dataset folder {folder} does not exist" if not folder.exists()
                           else f"dataset path {folder} is not a folder")
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [d.name for d in class_dirs if d.name not in class_names]
    if unknown:
        raise DatasetError(f"{folder}: class folders {unknown} are not classes of the first --data folder "
                           f"({', '.join(class_names)})")
    files = []
    for class_dir in class_dirs:
        images, _ = _list_class(folder, class_dir)
        files += [((folder / path).resolve().as_posix(), class_names.index(class_dir.name)) for path in images]
    log.info("%s: %d more images in %d class folders", folder, len(files), len(class_dirs))
    return files


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int,
                     groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val), sorted: each class shuffled by (seed, class) and cut, at least one image per side.

    `groups` (one id per image, see `duplicate_groups`) keeps images of one group on one side: whole groups
    are drawn into val until it has its share. A class whose groups cannot be kept whole (every group is
    larger than its val share) is cut image by image, and the leakage check then reports the pairs.
    With all-distinct groups the split is the same as without them.
    """
    labels = np.asarray(labels)
    groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
    train, val = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng = np.random.default_rng([seed, int(label)])
        n_val = min(len(members) - 1, max(1, int(len(members) * val_fraction + 0.5)))
        picked: list[int] = []
        for g in rng.permutation(np.unique(groups[members])):
            in_group = members[groups[members] == g]
            if len(picked) + len(in_group) <= n_val:
                picked += in_group.tolist()
            if len(picked) == n_val:
                break
        if not picked:
            picked = rng.permutation(members)[:n_val].tolist()
        in_val = np.isin(members, picked)
        val.append(members[in_val])
        train.append(members[~in_val])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def duplicate_groups(prints: list[Fingerprint], max_bits: int = NEAR_DUPLICATE_MAX_BITS) -> np.ndarray:
    """A group id per image: the same file (path or content) or a near-duplicate, transitively, share one."""
    parent = list(range(len(prints)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int) -> None:
        parent[root(j)] = root(i)

    for key in ("real_path", "sha256"):
        first: dict[str, int] = {}
        for i, f in enumerate(prints):
            join(first.setdefault(getattr(f, key), i), i)
    if prints:
        hashes = np.stack([f.phash for f in prints])
        for i, j, _ in _near_pairs(hashes, hashes, max_bits):
            if i < j:
                join(i, j)
    return np.array([root(i) for i in range(len(prints))], np.int64)


def perceptual_hash(image: np.ndarray) -> np.ndarray:
    """256-bit DCT perceptual hash (pHash) of an RGB image, as 32 bytes.

    The 16x16 lowest spatial frequencies of a 64x64 gray copy, one bit each for "above the median": JPEG
    re-encoding, resizing and brightness changes keep most bits, different scenes differ in about half.
    (The common 64-bit pHash is too coarse here: it is dominated by the lighting of the table, and two
    different flasks on a white table can be 2 bits apart.)
    """
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    low = cv2.dct(cv2.resize(gray, (64, 64), interpolation=cv2.INTER_AREA))[:16, :16].reshape(-1)
    return np.packbits(low > np.median(low[1:]))  # the DC term says only "how bright", not "what"


def check_leakage(train: list[Fingerprint], val: list[Fingerprint], max_bits: int = NEAR_DUPLICATE_MAX_BITS) -> dict:
    """Find validation images that training also sees.

    The same file is the same resolved path (a symlink) or the same sha256 (a copy under another name); a
    near-duplicate is a perceptual-hash distance <= `max_bits` (the picture re-encoded, resized, retouched).
    """
    by_real = {f.real_path: f for f in train}
    by_content = {f.sha256: f for f in train}
    same_file = []
    for f in val:
        if f.real_path in by_real:
            same_file.append([by_real[f.real_path].path, f.path, "same path"])
        elif f.sha256 in by_content:
            same_file.append([by_content[f.sha256].path, f.path, "same content"])
    exact = {(a, b) for a, b, _ in same_file}
    near = [[train[i].path, val[j].path, d]
            for i, j, d in _near_pairs(np.stack([f.phash for f in train]), np.stack([f.phash for f in val]), max_bits)
            if (train[i].path, val[j].path) not in exact]
    near.sort(key=lambda pair: (pair[2], pair[0], pair[1]))
    return {
        "same_file": len(same_file),
        "same_file_pairs": same_file[:MAX_REPORTED_PAIRS],
        "near_duplicate_count": len(near),
        "near_duplicates": near[:MAX_REPORTED_PAIRS],
        "hash": "phash256",
        "max_hamming": max_bits,
        "ok": not same_file and not near,
    }


# --- building -----------------------------------------------------------------------------------------

def _list_class(data_dir: Path, class_dir: Path) -> tuple[list[str], list[str]]:
    """(image files, other files) under a class folder, recursively, hidden entries counted as other."""
    images, others = [], []
    for root, dirs, names in os.walk(class_dir):
        others += [_relative(Path(root) / d, data_dir) for d in dirs if d.startswith(".")]
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            usable = not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES
            (images if usable else others).append(_relative(Path(root) / name, data_dir))
    return sorted(images), sorted(others)


def _relative(path: Path, data_dir: Path) -> str:
    """How a path is reported: relative to the data folder, "/"-separated, folders ending in "/"."""
    return path.relative_to(data_dir).as_posix() + ("/" if path.is_dir() else "")


def _build(data_dir: Path, scan: Scan, spec: Preprocessing, val_fraction: float, seed: int,
           workers: int | None) -> PreparedData:
    x, ids, skipped = _decode_all(data_dir, [path for path, _ in scan.files], spec, workers)
    readable = np.array([i for i in range(len(scan.files)) if i not in skipped], np.int64)
    paths = [scan.files[i][0] for i in readable]
    labels = np.array([scan.files[i][1] for i in readable], np.int64)
    _check_class_sizes(scan, labels, skipped)
    if skipped:
        x = x[readable]
    prints = [Fingerprint(path, *ids[i], perceptual_hash(image)) for path, i, image in zip(paths, readable, x)]
    groups = duplicate_groups(prints)
    train, val = stratified_split(labels, val_fraction, seed, groups)
    leakage = check_leakage([prints[i] for i in train], [prints[i] for i in val])
    leakage["grouped_images"] = int((np.bincount(groups)[groups] > 1).sum())  # kept with their near-duplicates
    return PreparedData(
        class_names=scan.class_names,
        train=Split([paths[i] for i in train], x[train], labels[train]),
        val=Split([paths[i] for i in val], x[val], labels[val]),
        skipped=[{"path": scan.files[i][0], "reason": reason} for i, reason in sorted(skipped.items())],
        leakage=leakage,
        ignored=scan.ignored,
    )


def _decode_all(data_dir: Path, paths: list[str], spec: Preprocessing, workers: int | None
                ) -> tuple[np.ndarray, list[tuple[str, str]], dict[int, str]]:
    """Decode+resize every file once, in parallel (OpenCV releases the GIL).

    Returns the images (unreadable ones left black), (resolved path, sha256) per file, and {index: reason}
    for the files that could not be read or decoded.
    """
    x = np.zeros((len(paths), spec.height, spec.width, 3), np.uint8)
    real_paths, digests = [""] * len(paths), [""] * len(paths)
    skipped: dict[int, str] = {}

    def load(i: int) -> None:
        path = data_dir / paths[i]
        real_paths[i] = str(path.resolve())
        try:
            data = path.read_bytes()
            digests[i] = hashlib.sha256(data).hexdigest()
            x[i] = preprocess_bytes(data, spec)  # the shared definition; one read serves hash and decode
        except OSError as e:
            skipped[i] = f"cannot read: {e.strerror or e}"
        except (ImageDecodeError, cv2.error) as e:
            skipped[i] = str(e).strip().splitlines()[-1]

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        list(tqdm(pool.map(load, range(len(paths))), total=len(paths), desc="decoding images", unit="img"))
    return x, list(zip(real_paths, digests)), skipped


def _check_class_sizes(scan: Scan, labels: np.ndarray, skipped: dict[int, str]) -> None:
    counts = np.bincount(labels, minlength=len(scan.class_names))
    for label, name in enumerate(scan.class_names):
        if counts[label] < 2:
            unreadable = sum(scan.files[i][1] == label for i in skipped)
            detail = f" ({unreadable} unreadable)" if unreadable else ""
            raise DatasetError(f"class {name!r} has {counts[label]} readable image(s){detail}; "
                               "each class needs at least 2 (one to train on, one to validate)")


def _log_summary(data: PreparedData, cache_dir: Path) -> None:
    how = "loaded from cache" if data.cache_hit else "decoded and cached"
    log.info("%d classes, %d train / %d val images %s in %s (%.1f s)", len(data.class_names), len(data.train.y),
             len(data.val.y), how, cache_dir, data.cache_seconds)
    if data.ignored:
        log.info("ignored %d hidden or non-image files, e.g. %s", len(data.ignored), data.ignored[0])
    if data.skipped:
        log.warning("skipped %d unreadable image files, e.g. %s: %s", len(data.skipped), data.skipped[0]["path"],
                    data.skipped[0]["reason"])
    leak = data.leakage
    if not leak["ok"]:
        example = (leak["same_file_pairs"] or leak["near_duplicates"])[0]
        log.warning("LEAKAGE: %d files and %d near-duplicates are in both train and val, e.g. %s <-> %s; "
                    "validation accuracy will be optimistic", leak["same_file"], leak["near_duplicate_count"],
                    example[0], example[1])


def _near_pairs(a: np.ndarray, b: np.ndarray, max_bits: int) -> list[tuple[int, int, int]]:
    """(i, j, distance) for every pair of packed hashes a[i], b[j] within `max_bits` of each other."""
    a_bits = np.unpackbits(a, axis=1).astype(np.float32)
    b_bits = np.unpackbits(b, axis=1).astype(np.float32)
    pairs = []
    chunk = max(1, 4_000_000 // max(len(b), 1))  # bound the (chunk, len(b)) distance matrix
    for start in range(0, len(a), chunk):
        rows = a_bits[start:start + chunk]
        # Hamming distance of 0/1 vectors: |x| + |y| - 2 x.y, one matrix product for the whole block.
        distance = rows.sum(1)[:, None] + b_bits.sum(1)[None, :] - 2 * rows @ b_bits.T
        for i, j in zip(*np.nonzero(distance <= max_bits)):
            pairs.append((start + int(i), int(j), int(round(distance[i, j]))))
    return pairs


# --- cache --------------------------------------------------------------------------------------------

_ARRAYS = ("train_x", "train_y", "val_x", "val_y")


def _cache_key(data_dir: Path, scan: Scan, spec: Preprocessing, val_fraction: float, seed: int) -> str:
    files = []
    for path, label in scan.files:
        st = (data_dir / path).stat()
        files.append([path, label, st.st_size, st.st_mtime_ns])
    description = {"version": CACHE_VERSION, "data_dir": str(data_dir.resolve()), "classes": scan.class_names,
                   "files": files, "preprocessing": spec.to_dict(), "val_fraction": val_fraction, "seed": seed,
                   "near_duplicate_max_bits": NEAR_DUPLICATE_MAX_BITS}
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()


def _load_cache(cache_dir: Path, key: str) -> PreparedData | None:
    try:
        meta = json.loads((cache_dir / CACHE_KEY_FILE).read_text())
        if meta.get("key") != key:
            log.info("cache in %s is stale (files, split or preprocessing changed): rebuilding", cache_dir)
            return None
        arrays = {name: np.load(cache_dir / f"{name}.npy") for name in _ARRAYS}
        train = Split(meta["train_paths"], arrays["train_x"], arrays["train_y"])
        val = Split(meta["val_paths"], arrays["val_x"], arrays["val_y"])
        if any(len(s.paths) != len(s.x) or len(s.x) != len(s.y) for s in (train, val)):
            raise ValueError("array lengths differ from the file lists")
        return PreparedData(meta["class_names"], train, val, meta["skipped"], meta["leakage"], meta["ignored"],
                            cache_hit=True)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("cache in %s unreadable (%s): rebuilding", cache_dir, e)
        return None


def _save_cache(cache_dir: Path, key: str, data: PreparedData) -> None:
    arrays = {"train_x": data.train.x, "train_y": data.train.y, "val_x": data.val.x, "val_y": data.val.y}
    meta = {"key": key, "class_names": data.class_names, "train_paths": data.train.paths,
            "val_paths": data.val.paths, "skipped": data.skipped, "leakage": data.leakage, "ignored": data.ignored}
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        (cache_dir / CACHE_KEY_FILE).unlink(missing_ok=True)  # no valid key while the arrays are being replaced
        for name in _ARRAYS:
            tmp = cache_dir / f"{name}.tmp.npy"
            np.save(tmp, arrays[name])
            tmp.replace(cache_dir / f"{name}.npy")
        tmp = cache_dir / f"{CACHE_KEY_FILE}.tmp"
        tmp.write_text(json.dumps(meta, indent=1))
        tmp.replace(cache_dir / CACHE_KEY_FILE)
    except OSError as e:
        raise GlasswareError(f"cannot write the image cache in {cache_dir}: {e}") from e
