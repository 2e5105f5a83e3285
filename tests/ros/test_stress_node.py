"""`glassware stress-node` end to end, tiny sizes: each mode runs classifier_node over DDS and writes its JSON.
Asserts behaviour (alive, counts, disk bound, bundle ids), never timings; prints the tables."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def stress(mode: str, bundle, out, env, *options: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "glassware.cli", "stress-node", mode, "--bundle", str(bundle),
                             "--format", "tflite_int8", "--out", str(out), *options],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    print("\n" + result.stdout[result.stdout.index("\n|") + 1:])
    return json.loads((out / f"stress_node_{mode}.json").read_text())


def test_fuzz(ros_env, tiny_bundle, tmp_path):
    figures = stress("fuzz", tiny_bundle, tmp_path, ros_env, "--messages", "200")
    for run in figures["inputs"].values():
        assert run["alive"] and run["exit_code"] == 0
        assert run["every_message_accounted"]  # received = bad + replaced + processed
        # every malformed message the node took in is counted bad, unless a newer one replaced it first (the node
        # keeps the newest frame only); none was classified
        assert run["bad"] + run["node_replaced"] == run["malformed_received"]
        assert run["node_processed"] == run["labelled_frames"]
        assert run["answers_unchanged"] and run["answers_during_unchanged"]
    assert sum(run["sent"] for run in figures["inputs"].values()) == 200


def test_soak(ros_env, tiny_bundle, tmp_path):
    figures = stress("soak", tiny_bundle, tmp_path, ros_env, "--minutes", "0.1", "--size", "320x240")
    assert figures["checks"] == {"node_alive": True, "no_stale_frame_accepted": True}
    assert figures["classified"] > 0 and len(figures["per_minute"]) == 2
    assert all(b["rss_mb"] > 0 for b in figures["per_minute"])


def test_collect(ros_env, tiny_bundle, tmp_path):
    figures = stress("collect", tiny_bundle, tmp_path, ros_env, "--seconds", "3")
    assert all(figures["checks"].values()), figures["checks"]
    assert "kept" in figures["runs"]["with"]["collect"] and figures["folder_frames"] > 0


def test_swap(ros_env, tiny_bundle, tmp_path):
    figures = stress("swap", tiny_bundle, tmp_path, ros_env, "--seconds", "6", "--swap-every", "1.5")
    assert all(figures["checks"].values()), figures["checks"]
    assert figures["swaps_seen_in_results"] >= 1 and figures["exit_code"] == 0
