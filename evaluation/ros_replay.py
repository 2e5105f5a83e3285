"""The demo's replay through the real ROS 2 graph: replay_publisher -> classifier_node -> recorder.

All three are separate processes from the colcon-built workspace, on a private ROS domain with the
loopback Fast DDS profile (raw 640x480 frames need its large shared-memory segment; nothing leaves
127.0.0.1). The recorder's log becomes the same per-frame records and replay.json as the edge replay, so the
two replays in the report are comparable; latency here is end to end: header stamp -> classification received.
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

from glassware.edge_runtime.bundle import Bundle
from glassware.edge_runtime.replay import FrameRecord
from glassware.errors import GlasswareError
from glassware.evaluation import requirements as req
from glassware.evaluation.replay import build_report, summary_table, truth_rows, write
from glassware.evaluation.ros_env import INSTALL, ros_environment
from glassware.evaluation.truth import Truth
from glassware.labels import UNKNOWN

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
    bundle, truth = Bundle.load(bundle_dir, verify=False), Truth(video.with_suffix(".csv"))
    report, frames, rows = score(records, bundle, truth, video)
    write(report, frames, truth, rows, bundle.class_names, bundle.class_thresholds, out)
    print(summary_table(report))
    return report


def score(records: Path, bundle: Bundle, truth: Truth, video: Path,
          requirements: list[str] | None = None) -> tuple[dict, list[FrameRecord], list[int | None]]:
    """The replay.json built from the recorder's log as the edge replay's is, its per-frame records, and their
    truth rows."""
    lines = [json.loads(line) for line in records.read_text().splitlines() if line.strip()]
    index_of = {r["stamp_ns"]: r["index"] for r in lines if r["kind"] == "frame"}
    results = [r for r in lines if r["kind"] == "classification" and r["stamp_ns"] in index_of]
    if not results:
        raise GlasswareError(f"no classifications recorded in {records}; see the node logs beside it")
    thresholds = dict(zip(bundle.class_names, np.float32(bundle.class_thresholds)))  # as the node compares
    frames = []
    for r in results:
        k = index_of[r["stamp_ns"]]
        answered = r["raw_confidence"] >= thresholds[r["raw_label"]] and not r["refused"]
        frames.append(FrameRecord(
            index=k, time_s=float(truth.time_s[k]) if k < len(truth.time_s) else k / 30.0,
            raw=r["raw_label"] if answered else UNKNOWN, raw_top=r["raw_label"], raw_confidence=r["raw_confidence"],
            smoothed=r["label"], smoothed_confidence=r["confidence"], preprocess_ms=r["preprocess_ms"],
            inference_ms=r["inference_ms"], novelty=r["novelty"],
            end_to_end_ms=(r["received_ns"] - r["stamp_ns"]) / 1e6))
    wall = (max(r["received_ns"] for r in results) - min(r["stamp_ns"] for r in results)) / 1e9
    header = {
        "source": {"path": str(video), "kind": "ros2 graph: replay_publisher -> classifier_node", "problems": []},
        "bundle": {"path": str(bundle.path), "bundle_id": results[0]["bundle_id"]},
        "format": results[0]["model_format"],
        "speed": 1.0,
        "threshold": bundle.threshold,
        "class_thresholds": bundle.class_thresholds,
    }
    counts = {"in": len(index_of), "classified": len(results), "dropped": len(index_of) - len(results), "bad": 0}
    rows = truth_rows(frames, truth, "video")
    out = build_report(frames, header, counts, wall, truth, rows, bundle.class_names)
    out["requirements"] = req.check(out, requirements)
    return out, frames, rows
