"""The demo's replay through the real ROS 2 graph: replay_publisher -> classifier_node -> recorder.

All three are separate processes from the colcon-built workspace, on a private ROS domain with the
loopback Fast DDS profile (raw 640x480 frames need its large shared-memory segment; nothing leaves
127.0.0.1). The recorder's log is scored with the edge runtime's own replay scoring, so the two replays
in the report are comparable; latency here is end to end: header stamp -> classification received.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np

from glassware.edge_runtime import replay
from glassware.edge_runtime.bundle import Bundle
from glassware.labels import UNKNOWN
from glassware.errors import GlasswareError
from glassware.ros_env import INSTALL, ros_environment

log = logging.getLogger(__name__)

IMAGE_TOPIC = "/camera/image_raw"
NODE = "glassware_classifier"


def _start(executable: str, args: list[str], env: dict, log_file: Path) -> subprocess.Popen:
    exe = INSTALL / "glassware_vision" / "lib" / "glassware_vision" / executable
    return subprocess.Popen([str(exe), *args], env=env, stdout=open(log_file, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(process: subprocess.Popen, timeout: float = 10.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run(video: Path, bundle_dir: Path, out: Path, timeout_s: float = 600.0) -> dict:
    """Replay `video` at its recorded rate through the node; write replay.json and timeline.png into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    env = ros_environment(out / "ros_log", domain_id=81 + os.getpid() % 21)  # 81-101: clear of the tests
    records = out / "recorder.jsonl"
    node = _start("classifier_node", ["--ros-args", "-p", f"bundle:={bundle_dir}", "-r", f"__node:={NODE}",
                                      "-r", f"image:={IMAGE_TOPIC}"], env, out / "classifier_node.log")
    recorder = _start("recorder", ["--out", str(records), "--ros-args", "-r", f"image:={IMAGE_TOPIC}",
                                   "-r", f"classification:=/{NODE}/classification"], env, out / "recorder.log")
    publisher = _start("replay_publisher", ["--ros-args", "-p", f"source:={video}", "-p", "speed:=1.0",
                                            "-p", "wait_for_subscribers:=2", "-p", "wait_timeout_s:=120.0",
                                            "-r", f"image:={IMAGE_TOPIC}"], env, out / "replay_publisher.log")
    try:
        publisher.wait(timeout_s)
        time.sleep(1.0)  # the last frames' classifications are still in flight
        if node.poll() is not None:
            raise GlasswareError(f"classifier_node exited ({node.returncode}); see {out / 'classifier_node.log'}")
    finally:
        for p in (publisher, node, recorder):
            _stop(p)
    result = score(records, Bundle.load(bundle_dir, verify=False), replay.Truth(video.with_suffix(".csv")), video)
    (out / "replay.json").write_text(json.dumps(result["report"], indent=2) + "\n")
    replay.plot_timeline(result["log"], result["truth"], result["class_names"], result["thresholds"],
                         out / "timeline.png")
    print(json.dumps({k: result["report"][k] for k in ("frames", "latency_ms")}, indent=2))
    return result["report"]


def score(records: Path, bundle: Bundle, truth: replay.Truth, video: Path) -> dict:
    """Turn the recorder's log into a replay.json like the edge runtime's, scored against ground truth."""
    lines = [json.loads(line) for line in records.read_text().splitlines() if line.strip()]
    index_of = {r["stamp_ns"]: r["index"] for r in lines if r["kind"] == "frame"}
    results = [r for r in lines if r["kind"] == "classification" and r["stamp_ns"] in index_of]
    if not results:
        raise GlasswareError(f"no classifications recorded in {records}; see the node logs beside it")
    thresholds = dict(zip(bundle.class_names, np.float32(bundle.class_thresholds)))  # as the node compares
    log_ = replay.ReplayLog()
    for r in results:
        k = index_of[r["stamp_ns"]]
        log_.index.append(k)
        log_.time_s.append(float(truth.time_s[k]) if k < len(truth.time_s) else k / 30.0)
        answered = r["raw_confidence"] >= thresholds[r["raw_label"]] and not r["refused"]
        log_.raw.append(r["raw_label"] if answered else UNKNOWN)
        log_.raw_top.append(r["raw_label"])
        log_.raw_confidence.append(r["raw_confidence"])
        log_.smoothed.append(r["label"])
        log_.smoothed_confidence.append(r["confidence"])
        log_.preprocess_ms.append(r["preprocess_ms"])
        log_.inference_ms.append(r["inference_ms"])
        log_.novelty.append(r["novelty"])
    rows = replay.match_truth(log_, truth, by_index=True)
    e2e = np.array([(r["received_ns"] - r["stamp_ns"]) / 1e6 for r in results])
    wall = (max(r["received_ns"] for r in results) - min(r["stamp_ns"] for r in results)) / 1e9
    report = {
        "schema": replay.SCHEMA,
        "source": {"path": str(video), "kind": "ros2 graph: replay_publisher -> classifier_node", "problems": []},
        "bundle": {"path": str(bundle.path), "bundle_id": results[0]["bundle_id"]},
        "format": results[0]["model_format"],
        "speed": 1.0,
        "threshold": bundle.threshold,
        "class_thresholds": bundle.class_thresholds,
        "frames": {"in": len(index_of), "classified": len(results), "dropped": len(index_of) - len(results), "bad": 0},
        "latency_ms": {"end_to_end": replay._percentiles(e2e), "preprocess": replay._percentiles(log_.preprocess_ms),
                       "inference": replay._percentiles(log_.inference_ms)},
        "wall_s": wall,
        "throughput_fps": len(results) / wall if wall > 0 else 0.0,
        "truth": replay.accuracy(log_, truth, rows, bundle.class_names),
    }
    return {"report": report, "log": log_, "truth": truth, "class_names": bundle.class_names,
            "thresholds": bundle.class_thresholds}
