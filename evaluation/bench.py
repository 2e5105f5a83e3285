"""`glassware bench`: batch-1 latency of every format of one or more bundles, against naive Keras `predict`.

Runs on the robot with only the `edge` extra: no TensorFlow is imported unless the Keras baseline is asked
for and TensorFlow is installed. Every row: one format x thread count (x ONNX provider) x bundle, timed
after warm-up on one fixed frame (latency does not depend on the picture for these CNNs).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
from tqdm import tqdm

from glassware.edge_runtime.backends import execution_provider, open_backend
from glassware.edge_runtime.bundle import Bundle
from glassware.errors import BundleError, GlasswareError
from glassware.markdown import table

log = logging.getLogger(__name__)

SCHEMA = "glassware-bench/1"
KERAS_ROW = "keras_predict"
KERAS_MAX_RUNS = 50  # ~40 ms a call: enough for stable percentiles without dominating the run


def bench(bundles: list[str | Path], out_dir: str | Path, threads: list[int] = (1, 2), runs: int = 200,
          warmup: int = 20, providers: list[str] = ("cpu",), keras_baseline: bool = True) -> dict:
    """Time every format of every bundle; write bench.json, bench.md and bench_latency.png; return the JSON."""
    if runs < 1 or warmup < 0 or not threads or min(threads) < 1:
        raise GlasswareError("bench needs --runs >= 1, --warmup >= 0 and --threads >= 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    opened = [Bundle.load(b) for b in bundles]
    rows, notes = [], []
    for bundle in opened:
        frame = _frame(bundle)
        jobs = [(name, t, p) for name, fmt in bundle.formats.items() for t in threads
                for p in (providers if fmt["runtime"] == "onnx" else [None])]
        for name, t, provider in tqdm(jobs, desc=f"bench {bundle.bundle_id}", unit="row"):
            row = _format_row(bundle, name, t, provider, frame, runs, warmup)
            if row is not None:
                rows.append(row)
        if keras_baseline:
            row, note = _keras_row(bundle, frame, min(threads), min(runs, KERAS_MAX_RUNS), min(warmup, 5))
            rows += [row] if row else []
            notes += [note] if note and note not in notes else []
    result = {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
        "settings": {"batch": 1, "threads": list(threads), "runs": runs, "warmup": warmup,
                     "providers": list(providers), "keras_baseline": keras_baseline},
        "rows": rows,
        "speedup": _speedups(rows),
        "notes": notes,
    }
    (out_dir / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    table = bench_table(result)
    (out_dir / "bench.md").write_text(f"# Latency benchmark ({result['machine']['processor']})\n\n{table}\n")
    plot_latency(rows, out_dir / "bench_latency.png")
    print(table)
    return result


def time_calls(fn, runs: int, warmup: int) -> dict:
    """Call `fn` warmup + runs times; latency percentiles (ms) of the timed runs and frames per second."""
    for _ in range(warmup):
        fn()
    ms = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        fn()
        ms[i] = (time.perf_counter() - start) * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99), "mean_ms": float(ms.mean()),
            "fps": float(1e3 / ms.mean()), "runs": runs}


def bench_table(result: dict) -> str:
    """Markdown table of bench.json rows, with the speed-up of the fastest format over Keras predict."""
    head = ["model", "bundle", "format", "runtime", "threads", "p50 ms", "p90 ms", "p99 ms", "frames/s", "MB",
            "accuracy", "gate"]
    rows = []
    for r in result["rows"]:
        gate = {"pass": "✅", "fail": "❌"}.get(r["gate"], "")
        acc = f"{100 * r['accuracy']:.1f}%" if r["accuracy"] is not None else ""
        size = f"{r['size_bytes'] / 1e6:.2f}" if r["size_bytes"] else ""
        rows.append([r["model"], r["bundle_id"], r["format"], r["backend"], r["threads"], f"{r['p50_ms']:.2f}",
                     f"{r['p90_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{r['fps']:.0f}", size, acc, gate])
    lines = [table(head, rows)]
    for bundle_id, s in result["speedup"].items():
        lines.append(f"\n{bundle_id}: fastest {s['fastest_format']} ({s['fastest_p50_ms']:.2f} ms, {s['threads']} thread) "
                     f"is **{s['ratio']:.0f}×** faster than Keras predict ({s['keras_p50_ms']:.1f} ms).")
    lines += [f"\nNote: {n}" for n in result["notes"]]
    return "\n".join(lines)


def plot_latency(rows: list[dict], path: str | Path) -> Path:
    """Horizontal bars of p50 latency (log scale) with the p90 as a whisker, one bar per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['model']} {r['format']} {r['backend'].split(':')[-1].replace('ExecutionProvider', '')} "
              f"{r['threads']}t" for r in rows]
    p50 = np.array([r["p50_ms"] for r in rows])
    p90 = np.array([r["p90_ms"] for r in rows])
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(rows) + 1.2))
    colors = ["tab:red" if r["format"] == KERAS_ROW else "tab:blue" for r in rows]
    ax.barh(range(len(rows)), p50, xerr=[np.zeros_like(p50), p90 - p50], color=colors, capsize=2)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("latency per frame, batch 1 (ms; bar p50, whisker p90; log scale)")
    ax.grid(axis="x", alpha=0.3, which="both")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _format_row(bundle: Bundle, name: str, threads: int, provider: str | None, frame: np.ndarray,
                runs: int, warmup: int) -> dict | None:
    fmt = bundle.formats[name]
    try:
        backend = open_backend(bundle.file(name), fmt["runtime"], threads, [provider] if provider else None)
    except BundleError as e:
        log.warning("%s %s: cannot open (%s); row skipped", bundle.bundle_id, name, e)
        return None
    if provider and execution_provider(provider) not in backend.name:
        log.warning("%s %s: provider %s unavailable here; row skipped", bundle.bundle_id, name, provider)
        return None
    x = frame[None].astype(backend.input_dtype)  # as the runtime takes it: no per-call cast in the timing
    timing = time_calls(lambda: backend.run(x), runs, warmup)
    return _row(bundle, name, fmt["runtime"], backend.name, threads, bundle.file(name), timing,
                _accuracy(bundle, fmt), fmt.get("gate"))


def _keras_row(bundle: Bundle, frame: np.ndarray, threads: int, runs: int, warmup: int) -> tuple[dict | None, str | None]:
    """The naive baseline: `model.predict` on the bundle's Keras model, one frame per call."""
    reference = bundle.manifest.get("reference", {})
    path = bundle.path / reference.get("file", "")
    if not reference.get("file") or not path.is_file():
        return None, f"{bundle.bundle_id}: no Keras model in the bundle; Keras baseline skipped"
    try:
        import tensorflow as tf
        import keras
    except ImportError:
        return None, "TensorFlow is not installed here (edge install): Keras predict baseline skipped"
    note = None
    if tf.config.threading.get_intra_op_parallelism_threads() != threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TensorFlow already initialised in this process: its thread pools are fixed
            note = f"TensorFlow was already initialised: Keras predict ran on its existing thread pool, not {threads}"
    model = keras.models.load_model(path, compile=False)
    x = frame[None].astype(np.float32)
    timing = time_calls(lambda: model.predict(x, verbose=0), runs, warmup)
    accuracy = reference.get("metrics", {}).get(bundle.manifest.get("gate", {}).get("split", "test"), {}).get("accuracy")
    return _row(bundle, KERAS_ROW, "keras", f"keras {keras.__version__}", threads, path, timing, accuracy, None), note


def _row(bundle: Bundle, name: str, runtime: str, backend: str, threads, path: Path, timing: dict,
         accuracy: float | None, gate: str | None) -> dict:
    return {"bundle_id": bundle.bundle_id, "model": bundle.manifest["model"], "format": name, "runtime": runtime,
            "backend": backend, "threads": threads, "file": path.name, "size_bytes": path.stat().st_size,
            **timing, "accuracy": accuracy, "gate": gate}


def _accuracy(bundle: Bundle, fmt: dict) -> float | None:
    split = bundle.manifest.get("gate", {}).get("split", "test")
    return fmt.get("metrics", {}).get(split, {}).get("accuracy")


def _speedups(rows: list[dict]) -> dict:
    """Per bundle: fastest format that passed the gate, at the baseline's thread count, vs Keras predict."""
    out = {}
    for base in (r for r in rows if r["format"] == KERAS_ROW):
        same = [r for r in rows if r["bundle_id"] == base["bundle_id"] and r["format"] != KERAS_ROW
                and r["threads"] == base["threads"] and r["gate"] == "pass"]  # a fast wrong model is no win
        if same:
            best = min(same, key=lambda r: r["p50_ms"])
            out[base["bundle_id"]] = {"fastest_format": best["format"], "backend": best["backend"],
                                      "threads": best["threads"], "fastest_p50_ms": best["p50_ms"],
                                      "keras_p50_ms": base["p50_ms"], "ratio": base["p50_ms"] / best["p50_ms"]}
    return out


def _frame(bundle: Bundle) -> np.ndarray:
    spec = bundle.preprocessing
    return np.random.default_rng(0).integers(0, 256, (spec.height, spec.width, 3), dtype=np.uint8)


def _machine() -> dict:
    versions = {}
    for package in ("ai-edge-litert", "onnxruntime", "onnxruntime-gpu", "tensorflow", "tensorflow-cpu", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return {"platform": platform.platform(), "processor": _cpu_model(), "machine": platform.machine(),
            "python": platform.python_version(), "cpu_count": cpus, "packages": versions}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
