"""`glassware bench`: documented bench.json keys, the Markdown table, and running without TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from glassware.edge_runtime.bundle import Bundle

# The keys documented in docs/architecture.md ("Benchmark output").
TOP_KEYS = {"schema", "created", "machine", "settings", "rows", "speedup", "notes"}
ROW_KEYS = {"bundle_id", "model", "format", "runtime", "backend", "threads", "file", "size_bytes", "p50_ms", "p90_ms",
            "p99_ms", "mean_ms", "fps", "runs", "accuracy", "gate"}
SPEEDUP_KEYS = {"fastest_format", "backend", "threads", "fastest_p50_ms", "keras_p50_ms", "ratio"}

# Runs the real CLI with TensorFlow (and everything that needs it) unimportable, as on an edge install.
NO_TF = """
import sys
for name in ("tensorflow", "keras", "tf2onnx", "tf_keras"):
    sys.modules[name] = None  # `import name` now raises ImportError
from glassware.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_bench_json_has_the_documented_keys(tiny_bundle, tmp_path):
    from glassware.evaluation.bench import KERAS_ROW, bench

    result = bench([tiny_bundle], tmp_path, threads=[1, 2], runs=5, warmup=1)
    assert json.loads((tmp_path / "bench.json").read_text()) == result
    assert set(result) == TOP_KEYS and result["schema"] == "glassware-bench/1"
    formats = Bundle.load(tiny_bundle).formats
    rows = result["rows"]
    assert all(set(r) == ROW_KEYS for r in rows)
    assert {(r["format"], r["threads"]) for r in rows if r["format"] != KERAS_ROW} == {
        (f, t) for f in formats for t in (1, 2)}
    assert all(0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] for r in rows)
    keras_rows = [r for r in rows if r["format"] == KERAS_ROW]
    assert len(keras_rows) == 1 and keras_rows[0]["threads"] == 1
    (speedup,) = result["speedup"].values()
    assert set(speedup) == SPEEDUP_KEYS and speedup["ratio"] == keras_rows[0]["p50_ms"] / speedup["fastest_p50_ms"]
    for r in rows:
        if r["format"] != KERAS_ROW:
            assert r["gate"] == formats[r["format"]]["gate"]
            assert r["accuracy"] == formats[r["format"]]["metrics"]["test"]["accuracy"]
    table = (tmp_path / "bench.md").read_text()
    assert table.count("✅") + table.count("❌") == len(rows) - 1
    assert (tmp_path / "bench_latency.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_runs_without_tensorflow(tiny_bundle, tmp_path):
    out = tmp_path / "bench"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", NO_TF, "bench", "--bundle", str(tiny_bundle), "--out", str(out),
                           "--threads", "1", "--runs", "3", "--warmup", "1"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=Path(__file__).parent)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "bench.json").read_text())
    assert {r["format"] for r in result["rows"]} == set(Bundle.load(tiny_bundle).formats)  # no Keras row
    assert any("TensorFlow is not installed" in n for n in result["notes"])
    assert result["speedup"] == {}
    assert "tflite_int8" in proc.stdout  # the table is printed
