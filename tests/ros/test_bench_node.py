"""`glassware bench-node` end to end, short phases: both nodes over DDS, JSON and table out. Prints the figures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_bench_node_compares_with_the_naive_node(ros_env, tiny_bundle, tmp_path):
    pytest.importorskip("keras", reason="the naive baseline needs TensorFlow (train extra)")
    result = subprocess.run([sys.executable, "-m", "glassware.cli", "bench-node", "--bundle", str(tiny_bundle),
                             "--seconds", "3", "--latency-seconds", "4", "--out", str(tmp_path)],
                            env=ros_env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    print("\n" + result.stdout[result.stdout.index("| 640x480"):])
    figures = json.loads((tmp_path / "bench_node.json").read_text())
    ours, naive, echo = figures["classifier_node"], figures["naive_node"], figures["echo_node"]
    assert naive["saturated_classified_fps"] > 0 and naive["classified"] > 0
    assert ours["saturated_classified_fps"] > naive["saturated_classified_fps"]
    assert ours["classified"] >= 0.8 * ours["sent"]
    assert ours["latency_p50_ms"] < naive["latency_p50_ms"]
    # auto resolved (to whichever int8-weight format was fastest here at start-up), and reported
    assert ours["model_format"].endswith(("int8", "dynamic")) and naive["model_format"] == "keras"
    assert echo["model_format"] == "echo" and echo["classified"] >= 0.8 * echo["sent"]
