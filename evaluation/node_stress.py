"""`glassware stress-node`: classifier_node under fuzz, a soak, collecting and bundle swaps, over DDS here.

    glassware stress-node fuzz    --bundle BUNDLE [--messages 10000] [--exclude KIND] [--out DIR]
    glassware stress-node soak    --bundle BUNDLE [--minutes 10] [--size 1920x1080] [--out DIR]
    glassware stress-node collect --bundle BUNDLE [--seconds 30] [--out DIR]
    glassware stress-node swap    --bundle BUNDLE [--seconds 30] [--swap-every 3] [--out DIR]

(in a shell with the ROS 2 workspace sourced, as for `glassware bench-node`, whose Feeder feeds the node here).
classifier_node runs as its own process, this process publishes the frames and reads the results and
/diagnostics, all on loopback with the package's Fast DDS profile:
  fuzz     malformed Image and CompressedImage messages of every kind in `fuzz_kinds` (one node per input type),
           with labelled frames before, every 1000 messages and after: the node stays up, its `bad` counter
           equals the malformed messages it received, and the labelled frames' answers do not change
  soak     a labelled frame at 30 Hz (1080p bgr8 by default): per-minute latency (header stamp -> result
           received) and node RSS; accepted results from frames older than max_frame_age_ms (must be 0)
  collect  640x480 at 30 Hz, every frame offered to the collector (rate limit off, audit share 1) against no
           collector: latency p99 both ways, the folder under its disk bound; then an unwritable collect_dir
  swap     640x480 at 30 Hz while `bundle` is set to a second bundle and back every few seconds, and once to a
           tampered copy: the longest wait for a result, every bundle_id a good one, the tampered one refused
Writes stress_node_<mode>.json into --out and prints it and a table. Figures only, no pass/fail on timings:
the machine is shared; `checks` holds the behaviour (alive, counts, bounds, bundle ids).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glassware.evaluation.bench_node import Feeder, _stop

MODES = ("fuzz", "soak", "collect", "swap")
RATE_HZ = 30.0
SMALL = (640, 480)
COMPRESSED_TOPIC = "/bench/compressed"  # the Feeder publishes raw frames on /bench/image
FUZZ_PERIOD_S = 0.005  # between malformed messages: the worker takes each before the next (a truncated PNG: 3 ms)
CHECK_EVERY = 1000  # a labelled frame among the malformed ones every this many


def register(subparsers) -> None:
    p = subparsers.add_parser("stress-node", help="the ROS 2 classifier_node under fuzz, a soak, collecting and "
                                                  "bundle swaps, over DDS (ROS 2 workspace sourced)")
    p.add_argument("mode", choices=MODES)
    p.add_argument("--bundle", type=Path, required=True, help="bundle directory")
    p.add_argument("--format", default="auto", help="format classifier_node runs (default auto)")
    p.add_argument("--out", type=Path, default=Path("stress_node"), help="folder for stress_node_<mode>.json")
    p.add_argument("--messages", type=int, default=10_000, help="fuzz: malformed messages in all")
    p.add_argument("--exclude", action="append", default=[], metavar="KIND", help="fuzz: leave out a kind")
    p.add_argument("--minutes", type=float, default=10.0, help="soak: length")
    p.add_argument("--size", type=_size, default=(1920, 1080), help="soak: frame size WxH (bgr8)")
    p.add_argument("--max-frame-age-ms", type=float, default=500.0, help="soak: the node's max_frame_age_ms")
    p.add_argument("--seconds", type=float, default=30.0, help="collect, swap: length of a run")
    p.add_argument("--swap-every", type=float, default=3.0, help="swap: seconds between bundle changes")
    p.set_defaults(func=_command)


def _size(text: str) -> tuple[int, int]:
    width, height = (int(v) for v in text.lower().split("x"))
    return width, height


def _command(args: argparse.Namespace) -> int:
    from glassware.evaluation.bench import _cpu_model

    with Session(args.bundle, args.format) as session:
        if args.mode == "fuzz":
            figures = fuzz(session, args.messages, set(args.exclude))
        elif args.mode == "soak":
            figures = soak(session, args.minutes, args.size, args.max_frame_age_ms)
        elif args.mode == "collect":
            figures = collect(session, args.seconds)
        else:
            figures = swap(session, args.seconds, args.swap_every)
    figures = {"mode": args.mode, "bundle": str(args.bundle), "format": args.format, **figures,
               "machine": {"processor": _cpu_model(), "cpu_count": os.cpu_count()},
               "load_average_1min": os.getloadavg()[0]}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"stress_node_{args.mode}.json"
    path.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    print(TABLES[args.mode](figures))
    print(f"wrote {path}")
    return 0


# --- the node and this process's end of the wire -----------------------------------------------------------

@dataclass
class NodeProcess:
    name: str
    process: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> int:
        """Exit code: 0 when it stopped cleanly, the code it died with if it was dead already."""
        _stop(self.process, self.name, self.log)
        return self.process.returncode


class StressFeeder(Feeder):
    """bench_node's Feeder, also keeping each result message and the diagnostics, with a CompressedImage
    publisher beside its Image one."""

    def __init__(self) -> None:
        super().__init__()
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import CompressedImage

        self.answers: list = []  # (received ns, Classification)
        self.statuses: list[tuple[int, str, dict]] = []  # (stamp ns, status name, values + level + message)
        self.publishers = {"Image": self.publisher,
                           "CompressedImage": self.node.create_publisher(CompressedImage, COMPRESSED_TOPIC, 10)}
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self._clients: dict = {}

    def connect(self, topic: str, process: subprocess.Popen, log: Path) -> None:
        self.answers = []
        super().connect(topic, process, log)

    def use(self, message) -> None:
        """The frame `connect` and `saturate` send: an Image or a CompressedImage, on the matching topic."""
        self.message, self.publisher = message, self.publishers[type(message).__name__]

    def send(self, message) -> None:
        """Publish `message` now, stamped now."""
        message.header = self._header()
        self.publishers[type(message).__name__].publish(message)

    def answer(self, message, timeout: float = 10.0):
        """Publish `message` and return the node's Classification of it (None if none came)."""
        self.send(message)
        stamp, deadline = message.header.stamp, time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((m for _, m in reversed(self.answers) if m.header.stamp == stamp), None)
            if found is not None:
                return found
            time.sleep(0.005)
        return None

    def stream(self, messages: list, seconds: float, tick=None, hz: float = RATE_HZ) -> int:
        """Publish `messages` in turn at `hz` for `seconds`, calling `tick(elapsed_s)` after each; the count sent."""
        t0, sent = time.monotonic(), 0
        while (due := t0 + sent / hz) < t0 + seconds:
            time.sleep(max(due - time.monotonic(), 0.0))
            self.send(messages[sent % len(messages)])
            sent += 1
            if tick is not None:
                tick(time.monotonic() - t0)
        return sent

    def status(self, node: str, after_ns: int | None = None, timeout: float = 10.0) -> dict:
        """The first diagnostics of `node` stamped after `after_ns` (default now): its counters then include
        every frame the node answered before that."""
        after_ns = self.node.get_clock().now().nanoseconds if after_ns is None else after_ns
        name, deadline = f"/{node}: classification", time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((v for stamp, n, v in list(self.statuses) if n == name and stamp > after_ns), None)
            if found is not None:
                return found
            time.sleep(0.05)
        raise RuntimeError(f"no diagnostics from {node} within {timeout:g} s")

    def set_parameters(self, node: str, **values):
        """Send SetParameters to `node`; returns the future (its result: one SetParametersResult per value)."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        client = self._clients.get(node) or self.node.create_client(SetParameters, f"/{node}/set_parameters")
        self._clients[node] = client
        if not client.wait_for_service(timeout_sec=10.0):
            raise RuntimeError(f"/{node}/set_parameters not available")
        return client.call_async(SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]))

    def _on_result(self, msg) -> None:
        super()._on_result(msg)
        self.answers.append((self.results[-1][0], msg))

    def _on_diagnostics(self, msg) -> None:
        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        for s in msg.status:
            values = {kv.key: kv.value for kv in s.values} | {"level": s.level[0], "message": s.message}
            self.statuses.append((stamp, s.name, values))


class Session:
    """The ROS environment of this process and the nodes it starts, the feeder, and a folder for logs and files."""

    def __init__(self, bundle: Path, model_format: str) -> None:
        from ament_index_python.packages import get_package_share_directory

        self.bundle, self.format = bundle, model_format
        self.dir = Path(tempfile.mkdtemp(prefix="stress_node_"))
        profile = Path(get_package_share_directory("glassware_vision")) / "config" / "fastdds_large_images.xml"
        os.environ.update(ROS_DOMAIN_ID=os.environ.get("GLASSWARE_BENCH_DOMAIN", str(1 + os.getpid() % 100)),
                          FASTDDS_DEFAULT_PROFILES_FILE=str(profile), ROS_LOG_DIR=str(self.dir / "ros_log"))
        for name in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_STATIC_PEERS", "ROS_LOCALHOST_ONLY"):
            os.environ.pop(name, None)  # they would override the profile's loopback transports
        self.feeder = StressFeeder()  # after the environment: rclpy reads it once
        self.nodes: list[NodeProcess] = []

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        for node in self.nodes:
            if node.alive():
                node.stop()
        self.feeder.__exit__(*exc)
        for copy in ("second_bundle", "tampered_bundle", "collected"):  # bulky; the logs stay for a look
            shutil.rmtree(self.dir / copy, ignore_errors=True)

    def start(self, name: str, first_message, **params) -> NodeProcess:
        """classifier_node as `name` on the topic of `first_message`'s type, answering it once (bounded wait)."""
        compressed = type(first_message).__name__ == "CompressedImage"
        params = {"bundle": self.bundle, "format": self.format, "smoothing": False, "compressed": compressed, **params}
        command = [sys.executable, "-m", "glassware_vision.classifier_node", "--ros-args", "-r", f"__node:={name}",
                   "-r", f"image:={COMPRESSED_TOPIC if compressed else '/bench/image'}"]
        for key, value in params.items():
            command += ["-p", f"{key}:={str(value).lower() if isinstance(value, bool) else value}"]
        log = self.dir / f"{name}.log"
        with open(log, "w") as out:
            node = NodeProcess(name, subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT), log)
        self.nodes.append(node)
        self.feeder.use(first_message)
        self.feeder.connect(f"/{name}/classification", node.process, log)
        return node


def labelled_frames(size: tuple[int, int] = SMALL) -> list[tuple[str, np.ndarray]]:
    """One synthetic lab photo (BGR) per glassware class: frames with a known answer."""
    import cv2

    from glassware.synthetic import CLASSES
    from glassware.synthetic.images import render

    return [(name, cv2.cvtColor(render(name, "lab", np.random.default_rng(i), *size), cv2.COLOR_RGB2BGR))
            for i, name in enumerate(CLASSES)]


def _image(bgr: np.ndarray):
    from glassware_vision.messages import image_msg
    from std_msgs.msg import Header

    return image_msg(bgr, Header())  # stamped when sent


def _latency(answers: list) -> dict:
    """p50/p99/max of header stamp -> result received, ms."""
    ms = np.array([(t - (m.header.stamp.sec * 10**9 + m.header.stamp.nanosec)) / 1e6 for t, m in answers])
    if not ms.size:
        return {"classified": 0, "latency_p50_ms": None, "latency_p99_ms": None, "latency_max_ms": None}
    p50, p99 = np.percentile(ms, [50, 99])
    return {"classified": int(ms.size), "latency_p50_ms": round(float(p50), 2),
            "latency_p99_ms": round(float(p99), 2), "latency_max_ms": round(float(ms.max()), 2)}


def _progress(total: float, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="s" if desc != "fuzz" else "msg")


# --- fuzz ----------------------------------------------------------------------------------------------------

def fuzz_kinds(seed: int = 0) -> dict[str, callable]:
    """Malformed messages by kind: name -> make(rng) -> message. `raw_*` are sensor_msgs/Image, `jpeg_*`/`png_*`/
    `compressed_*` CompressedImage. Each one is malformed whatever rng draws (glassware.preprocessing refuses it)."""
    import cv2
    from sensor_msgs.msg import CompressedImage, Image

    photo = labelled_frames()[0][1]  # a real picture, so that truncations cut real JPEG/PNG structure
    jpeg, png = (cv2.imencode(ext, photo)[1].tobytes() for ext in (".jpg", ".png"))
    sof = jpeg.index(b"\xff\xc0")  # baseline frame header: precision, height, width follow the length

    def raw(width, height, encoding="bgr8", step=None, size=None, bigendian=0, channels=3):
        step = width * channels if step is None else step
        return Image(height=height, width=width, encoding=encoding, is_bigendian=bigendian, step=step,
                     data=bytes(step * height if size is None else size))

    def jpeg_declaring(height, width):
        data = bytearray(jpeg)
        data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
        return data

    def png_declaring(height, width):
        data = bytearray(png)
        data[16:24] = struct.pack(">II", width, height)
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # a valid IHDR: the decoder believes it
        return data

    def compressed(data, fmt="jpeg"):
        return CompressedImage(format=fmt, data=bytes(data))

    def w(rng):  # a width, often odd
        return int(rng.integers(1, 800))

    def h(rng):
        return int(rng.integers(1, 600))

    return {
        "raw_step_shorter_than_row": lambda r: raw(w(r) + 1, h(r), step=int(r.integers(0, 3))),
        "raw_data_too_short": lambda r: (lambda x, y: raw(x, y, size=int(r.integers(0, x * y * 3))))(w(r), h(r)),
        "raw_data_too_long": lambda r: (lambda x, y: raw(x, y, size=x * y * 3 + int(r.integers(1, 64))))(w(r), h(r)),
        "raw_zero_width": lambda r: raw(0, h(r), step=0, size=int(r.integers(0, 100))),
        "raw_zero_height": lambda r: raw(w(r), 0, size=int(r.integers(0, 100))),
        "raw_huge_declared_tiny_data": lambda r: raw(int(r.integers(2**16, 2**31)), int(r.integers(2**16, 2**31)),
                                                     step=2**32 - 1, size=int(r.integers(0, 64))),
        "raw_unknown_encoding": lambda r: raw(w(r), h(r), encoding=str(r.choice(
            ["nv12", "", "32FC1", "16UC1", "rgb16", "BGR8", "bayer_rggb16", "yuv420", "jpeg", "mono 8"]))),
        "raw_bayer_odd_width": lambda r: raw(2 * w(r) + 1, h(r) + 1, encoding=str(r.choice(
            ["bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8"])), channels=1),
        "raw_bayer_one_row": lambda r: raw(2 * w(r), 1, encoding="bayer_rggb8", channels=1),
        "raw_yuv422_odd_width": lambda r: raw(2 * w(r) + 1, h(r), encoding=str(r.choice(["yuv422", "yuv422_yuy2"])),
                                              channels=2),
        "raw_mono16_odd_bytes": lambda r: (lambda x, y: raw(x, y, "mono16", step=2 * x, size=2 * x * y - 1,
                                                            bigendian=int(r.integers(0, 2))))(w(r), h(r)),
        "raw_mono16_8bit_step_bigendian": lambda r: (lambda x: raw(x, h(r), "mono16", step=x, bigendian=1))(w(r) + 1),
        "raw_bigendian_short_bgr8": lambda r: (lambda x, y: raw(x, y, size=x * y * 3 - 1, bigendian=1))(w(r), h(r)),
        "raw_rgba8_with_3_channel_rows": lambda r: (lambda x: raw(x, h(r), "rgba8", step=3 * x))(w(r)),
        "compressed_empty": lambda r: compressed(b"", str(r.choice(["jpeg", "png", ""]))),
        "compressed_garbage": lambda r: compressed(r.integers(0, 256, int(r.integers(1, 100_000)), np.uint8)),
        "jpeg_truncated": lambda r: compressed(jpeg[:int(r.integers(2, len(jpeg) * 98 // 100))]),
        "jpeg_header_only": lambda r: compressed(jpeg[:sof + int(r.integers(0, 20))]),
        "jpeg_declares_over_opencv_limit": lambda r: compressed(jpeg_declaring(65000, int(r.integers(40000, 65000)))),
        "jpeg_bomb_400_megapixels": lambda r: compressed(jpeg_declaring(20000, 20000)),  # under OpenCV's own limit
        "png_truncated": lambda r: compressed(png[:int(r.integers(8, len(png) * 98 // 100))], "png"),
        "png_signature_only": lambda r: compressed(png[:8], "png"),
        "png_declares_over_opencv_limit": lambda r: compressed(png_declaring(100_000, int(r.integers(20000, 100_000))),
                                                               "png"),
        "png_as_jpeg_garbage_tail": lambda r: compressed(png[:33] + bytes(r.integers(0, 256, 500, np.uint8)), "jpeg"),
    }


def fuzz(session: Session, messages: int, exclude: set[str]) -> dict:
    """Malformed messages, one node per input type; labelled frames before, among them and after."""
    from glassware_vision.messages import compressed_msg
    from std_msgs.msg import Header

    every = fuzz_kinds()
    kinds = {name: make for name, make in every.items() if name not in exclude}
    unknown = exclude - set(every)
    if unknown:
        raise SystemExit(f"glassware stress-node: unknown fuzz kinds: {sorted(unknown)}")
    names = list(kinds)
    plan = [names[i % len(names)] for i in range(messages)]
    frames = labelled_frames()
    figures: dict = {"messages": messages, "kinds": names, "excluded": sorted(exclude), "inputs": {}}
    rng = np.random.default_rng(0)
    with _progress(messages, "fuzz") as bar:
        for input_type, labelled in (("Image", [(n, _image(f)) for n, f in frames]),
                                     ("CompressedImage", [(n, compressed_msg(f, Header())) for n, f in frames])):
            mine = [k for k in plan if not k.startswith("raw_")] if input_type == "CompressedImage" \
                else [k for k in plan if k.startswith("raw_")]
            if not mine:
                continue
            node = session.start(f"fuzz_{input_type.lower()}", labelled[0][1])
            figures["inputs"][input_type] = _fuzz_one(session, node, mine, kinds, labelled, rng, bar)
    runs = figures["inputs"].values()
    figures["checks"] = {
        "node_alive": all(r["alive"] for r in runs),
        "crashes": sum(not r["alive"] for r in runs),
        "bad_equals_malformed_received": all(r["alive"] and r["bad"] == r["malformed_received"] for r in runs),
        # the node keeps only the newest frame: a malformed one replaced before the worker saw it is not counted bad
        "bad_plus_replaced_equals_malformed_received": all(
            r["alive"] and r["bad"] + r["node_replaced"] == r["malformed_received"] for r in runs),
        "labelled_answers_unchanged": all(r["answers_unchanged"] for r in runs),
    }
    return figures


def _fuzz_one(session: Session, node: NodeProcess, plan: list[str], kinds: dict, labelled: list, rng,
              bar) -> dict:
    feeder = session.feeder

    def answers() -> dict:  # each labelled frame's answer; none after the first unanswered (the node is gone)
        out = {}
        for name, msg in labelled:
            out[name] = feeder.answer(msg) if all(out.values()) else None
        return out

    before, checks = answers(), []
    start = feeder.status(node.name)
    sent: dict[str, int] = {}
    for i, kind in enumerate(plan):
        if not node.alive():
            break
        feeder.send(kinds[kind](rng))
        sent[kind] = sent.get(kind, 0) + 1
        time.sleep(FUZZ_PERIOD_S)
        bar.update(1)
        if (i + 1) % CHECK_EVERY == 0 and i + 1 < len(plan):  # still classifying among the malformed frames?
            time.sleep(0.05)  # the last malformed one out of the latest-frame slot first
            name, msg = labelled[(i // CHECK_EVERY) % len(labelled)]
            checks.append((name, i + 1, feeder.answer(msg)))
    time.sleep(0.05)  # the last malformed one out of the latest-frame slot first
    after = answers() if node.alive() else {}
    # alive = still answering: a node whose worker died may linger as a process (see the README's report)
    alive = node.alive() and bool(after) and all(after.values())
    out = {"sent": sum(sent.values()), "sent_by_kind": sent, "alive": alive, "process_alive": node.alive()}
    if not alive:
        unanswered = next((at for _, at, a in checks if a is None), None)
        log = node.log.read_text(errors="replace")
        failure = log.find("classification worker failed")
        return out | {"bad": None, "malformed_received": None, "answers_unchanged": False,
                      "first_unanswered_check_after": unanswered, "exit_code": node.stop(),
                      "failure": log[failure:failure + 2500] if failure >= 0 else log[-2500:]}
    end = feeder.status(node.name)
    good = len(checks) + len(after)  # labelled frames since the first snapshot
    delta = {k: int(end[k]) - int(start[k]) for k in ("received", "bad", "replaced", "processed", "skipped_by_rate")}
    diffs = [float(np.abs(np.array(a.scores) - np.array(after[n].scores)).max()) if a else None
             for n, a in before.items()]  # the same frame, model and input: bit-identical scores
    return out | {
        "labelled_frames": good,
        **{f"node_{k}": v for k, v in delta.items()},
        "bad": delta["bad"],
        # what the node took in, less the labelled frames (each answered, so each processed)
        "malformed_received": delta["received"] - good,
        "malformed_lost_in_dds": sum(sent.values()) - (delta["received"] - good),
        "every_message_accounted": delta["received"] == sum(delta[k] for k in ("bad", "replaced", "processed",
                                                                              "skipped_by_rate")),
        "answers": {n: a.label if a else None for n, a in before.items()},
        "answers_during_unchanged": all(a is not None and before[n] is not None and a.label == before[n].label
                                        for n, _, a in checks),
        "max_score_change": max((d for d in diffs if d is not None), default=None),
        "answers_unchanged": all(d == 0.0 for d in diffs) and all(before[n].label == after[n].label for n in before),
        "exit_code": node.stop(),
    }


def fuzz_table(figures: dict) -> str:
    from glassware.markdown import table

    runs = figures["inputs"]
    rows = [("malformed sent", "sent"),
            ("received by the node (its `received` less labelled frames)", "malformed_received"),
            ("counted `bad` in /diagnostics", "bad"), ("replaced in the latest-frame slot", "node_replaced"),
            ("lost in DDS (best effort, depth 1)", "malformed_lost_in_dds"),
            ("labelled frames answered", "labelled_frames"), ("labelled answers before = after", "answers_unchanged"),
            ("still answering at the end", "alive"), ("process alive at the end", "process_alive"),
            ("first unanswered labelled frame, after message", "first_unanswered_check_after")]
    cells = [[label, *(runs[t].get(key, "") for t in runs)] for label, key in rows]
    return (table(["fuzz", *(f"classifier_node on {t}" for t in runs)], cells, "l" + "r" * len(runs))
            + f"\n\nchecks: {figures['checks']}; kinds: {len(figures['kinds'])} (excluded: "
              f"{figures['excluded'] or 'none'}); load average {figures['load_average_1min']:.1f}")


# --- soak ----------------------------------------------------------------------------------------------------

def soak(session: Session, minutes: float, size: tuple[int, int], max_frame_age_ms: float) -> dict:
    """A labelled frame at 30 Hz for `minutes`, node defaults (smoothing on); figures per minute (per half for a
    run shorter than two minutes)."""
    seconds = minutes * 60
    bucket_s = 60.0 if seconds >= 120 else seconds / 2
    msg = _image(labelled_frames(size)[0][1])
    node = session.start("soak_classifier", msg, smoothing=True, max_frame_age_ms=max_frame_age_ms)
    feeder, rss = session.feeder, []
    t0 = feeder.node.get_clock().now().nanoseconds
    with _progress(seconds, "soak") as bar:
        def tick(elapsed):
            bar.n = round(elapsed, 1)
            bar.refresh()
            if elapsed >= (len(rss) + 1) * bucket_s - 1.0 and node.alive():  # in each bucket's last second:
                rss.append(round(node.rss_mb(), 1))  # while frames flow (an idle node has freed its buffers)
        sent = feeder.stream([msg], seconds, tick)
    time.sleep(1.0)  # results still in flight
    alive = node.alive()
    answers = [(t, m) for t, m in feeder.answers if m.header.stamp.sec * 10**9 + m.header.stamp.nanosec >= t0]
    end = feeder.status(node.name) if alive else {}
    buckets = []
    for i in range(int(round(seconds / bucket_s))):
        lo, hi = t0 + i * bucket_s * 1e9, t0 + (i + 1) * bucket_s * 1e9
        mine = [(t, m) for t, m in answers if lo <= m.header.stamp.sec * 10**9 + m.header.stamp.nanosec < hi]
        buckets.append({"minute": i + 1, **_latency(mine), "rss_mb": rss[i] if i < len(rss) else None})
    stale_accepted = sum(m.accepted and not m.frame_age_ms <= max_frame_age_ms for _, m in answers)
    first, last = buckets[0], buckets[-1]
    return {
        "minutes": minutes, "minutes_requested_by_issue": 10, "bucket_s": bucket_s,
        "frame": f"{size[0]}x{size[1]} bgr8", "rate_hz": RATE_HZ, "max_frame_age_ms": max_frame_age_ms,
        "sent": sent, **_latency(answers), "per_minute": buckets,
        "accepted": sum(m.accepted for _, m in answers), "stale": sum(m.stale for _, m in answers),
        "stale_accepted": stale_accepted,
        "node_counters": {k: end.get(k) for k in ("received", "replaced", "processed", "stale", "gaps")},
        "p99_last_over_first": (last["latency_p99_ms"] / first["latency_p99_ms"]
                                if first["latency_p99_ms"] and last["latency_p99_ms"] else None),
        "rss_growth_pct": (100 * (rss[-1] - rss[0]) / rss[0]) if len(rss) >= 2 else None,
        "checks": {"node_alive": alive, "no_stale_frame_accepted": stale_accepted == 0},
        "exit_code": node.stop(),
    }


def soak_table(figures: dict) -> str:
    from glassware.markdown import table

    per = figures["per_minute"]
    cells = [[b["minute"], b["classified"], b["latency_p50_ms"], b["latency_p99_ms"], b["latency_max_ms"],
              b["rss_mb"]] for b in per]
    unit = "minute" if figures["bucket_s"] == 60 else f"{figures['bucket_s']:g} s"
    ratio, growth = figures["p99_last_over_first"], figures["rss_growth_pct"]
    return (table([unit, "classified", "latency p50 (ms)", "p99 (ms)", "max (ms)", "node RSS (MB)"], cells,
                  "rrrrrr")
            + f"\n\n{figures['frame']} at {figures['rate_hz']:g} Hz for {figures['minutes']:g} min (the issue asks "
              f"{figures['minutes_requested_by_issue']}): {figures['classified']} of {figures['sent']} classified; "
              f"p99 last/first {'-' if ratio is None else f'{ratio:.2f}'}; RSS growth "
              f"{'-' if growth is None else f'{growth:+.1f} %'}; accepted {figures['accepted']}, stale "
              f"{figures['stale']}, accepted from a frame older than {figures['max_frame_age_ms']:g} ms: "
              f"{figures['stale_accepted']}; checks {figures['checks']}; load average "
              f"{figures['load_average_1min']:.1f}")


# --- collect -------------------------------------------------------------------------------------------------

def collect(session: Session, seconds: float, max_mb: float = 5.0) -> dict:
    """The collector's cost at 30 Hz 640x480: without it, then with every frame offered; then an unwritable
    collect_dir. Distinct noise frames, so none is skipped as a near-duplicate and the disk bound is reached."""
    rng = np.random.default_rng(1)
    frames = [_image(rng.integers(0, 256, (SMALL[1], SMALL[0], 3), np.uint8)) for _ in range(90)]
    folder = session.dir / "collected"
    blocker = session.dir / "a_file"
    blocker.write_text("not a folder")
    runs = {"without": {}, "with": {"collect_dir": folder, "collect_max_rate_hz": 0.0, "collect_audit_share": 1.0,
                                    "collect_max_mb": max_mb},
            "unwritable": {"collect_dir": blocker / "collected"}}
    figures: dict = {"seconds": seconds, "frame": f"{SMALL[0]}x{SMALL[1]} bgr8", "rate_hz": RATE_HZ,
                     "collect_max_mb": max_mb, "runs": {}}
    with _progress(seconds * 2 + min(seconds, 5.0), "collect") as bar:
        for run, params in runs.items():
            length = seconds if run != "unwritable" else min(seconds, 5.0)
            node = session.start(f"collect_{run}", frames[0], **params)
            first = len(session.feeder.answers)
            sent = session.feeder.stream(frames, length)
            streaming = session.feeder.node.get_clock().now().nanoseconds - 1.5e9  # a report while frames flowed
            bar.update(length)
            time.sleep(1.0)  # results in flight; the collector's queue written
            alive = node.alive()
            during = session.feeder.status(node.name, streaming) if alive else {}
            final = session.feeder.status(node.name) if alive else {}
            figures["runs"][run] = {"sent": sent, **_latency(session.feeder.answers[first:]), "alive": alive,
                                    "diagnostics_level": during.get("level"), "diagnostics_message":
                                    during.get("message"), "collect": final.get("collect"),
                                    "exit_code": node.stop()}
    files = [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
    with_, without, unwritable = (figures["runs"][r] for r in ("with", "without", "unwritable"))
    figures |= {
        "latency_p99_difference_ms": (with_["latency_p99_ms"] - without["latency_p99_ms"]
                                      if with_["latency_p99_ms"] is not None and without["latency_p99_ms"] is not None
                                      else None),
        "folder_mb": round(sum(p.stat().st_size for p in files) / 1e6, 3), "folder_frames": sum(
            p.suffix == ".jpg" for p in files)}
    figures["checks"] = {
        "nodes_alive": all(r["alive"] for r in figures["runs"].values()),
        "folder_under_bound": figures["folder_mb"] <= max_mb,
        "unwritable_still_classifying": unwritable["classified"] > 0,
        "unwritable_reported": bool(unwritable["collect"]) and str(blocker) in unwritable["collect"]
                               and unwritable["diagnostics_level"] >= 1,
    }
    return figures


def collect_table(figures: dict) -> str:
    from glassware.markdown import table

    runs = figures["runs"]
    rows = [("classified / sent", lambda r: f"{r['classified']} / {r['sent']}"),
            ("latency p50 (ms)", lambda r: r["latency_p50_ms"]), ("latency p99 (ms)", lambda r: r["latency_p99_ms"]),
            ("latency max (ms)", lambda r: r["latency_max_ms"]), ("diagnostics", lambda r: r["diagnostics_message"]),
            ("`collect` value", lambda r: r["collect"])]
    cells = [[label, *(get(runs[r]) for r in ("without", "with", "unwritable"))] for label, get in rows]
    diff = figures["latency_p99_difference_ms"]
    return (table([f"{figures['frame']} at {figures['rate_hz']:g} Hz", f"no collector ({figures['seconds']:g} s)",
                   f"every frame offered, {figures['collect_max_mb']:g} MB bound", "unwritable collect_dir"], cells)
            + f"\n\np99 with - without: {'-' if diff is None else f'{diff:+.2f} ms'}; folder at the end "
              f"{figures['folder_mb']:.2f} MB ({figures['folder_frames']} frames) of {figures['collect_max_mb']:g} MB; "
              f"checks {figures['checks']}; load average {figures['load_average_1min']:.1f}")


# --- swap ----------------------------------------------------------------------------------------------------

def swap(session: Session, seconds: float, every_s: float) -> dict:
    """A labelled frame at 30 Hz while `bundle` alternates between the given one and a second one (the same model
    with only the running format: other files, another bundle_id), and once, while the second runs, a tampered copy
    of the first."""
    msg = _image(labelled_frames()[0][1])
    node = session.start("swap_classifier", msg)
    feeder = session.feeder
    first_id = feeder.answers[-1][1].bundle_id
    second, tampered = second_bundle(session.bundle, feeder.model_format, session.dir)
    from glassware.edge_runtime.bundle import Bundle

    second_id = Bundle.load(second).bundle_id
    plan = [second, tampered] + [session.bundle, second] * int(seconds / every_s)  # tampered while `second` runs
    requests: list[dict] = []  # {t_ns, bundle, future}
    start_ns = feeder.node.get_clock().now().nanoseconds

    with _progress(seconds, "swap") as bar:
        def tick(elapsed):  # a request every `every_s`, the next one once the last is answered
            bar.n = round(elapsed, 1)
            bar.refresh()
            if requests and requests[-1]["accepted"] is None:
                if not requests[-1]["future"].done():
                    return
                _settle(requests[-1])
            if elapsed >= (len(requests) + 1) * every_s and node.alive():
                target = plan[sum(bool(r["accepted"]) for r in requests)]  # a refused request is tried again
                requests.append({"t_ns": feeder.node.get_clock().now().nanoseconds, "bundle": target,
                                 "future": feeder.set_parameters(node.name, bundle=str(target)), "accepted": None})
        sent = feeder.stream([msg], seconds, tick)
    time.sleep(1.0)
    alive = node.alive()
    statuses = [v.get("bundle_swap", "") for _, n, v in feeder.statuses if n == f"/{node.name}: classification"]
    answers = [(t, m) for t, m in feeder.answers if t >= start_ns]
    ids = [m.bundle_id for _, m in answers]
    gaps = np.diff([t for t, _ in answers]) / 1e9 * RATE_HZ if len(answers) > 1 else np.array([0.0])
    accepted = [r for r in requests if r["accepted"]]
    tampered_at = next((r["t_ns"] for r in accepted if r["bundle"] == tampered), None)
    after_tampered = []
    if tampered_at is not None:
        until = next((r["t_ns"] for r in accepted if r["t_ns"] > tampered_at), float("inf"))
        after_tampered = [m.bundle_id for t, m in answers if tampered_at < t < until]
    running_at_tampered = next((m.bundle_id for t, m in reversed(answers) if t <= (tampered_at or 0)), None)
    figures = {
        "seconds": seconds, "swap_every_s": every_s, "frame": f"{SMALL[0]}x{SMALL[1]} bgr8", "rate_hz": RATE_HZ,
        "model_format": feeder.model_format, "bundles": {"first": first_id, "second": second_id},
        "sent": sent, **_latency(answers),
        "swaps_requested": sum(r["bundle"] != tampered for r in accepted),
        "swap_requests_refused_busy": sum(r["accepted"] is False for r in requests),
        "swaps_seen_in_results": int(sum(a != b for a, b in zip(ids, ids[1:]))),
        "longest_gap_frame_periods": round(float(gaps.max()), 2),
        "gaps_over_2_periods": int((gaps > 2).sum()),
        "results_by_bundle": {i: ids.count(i) for i in set(ids)},
        "tampered": {"requested": tampered_at is not None, "running_then": running_at_tampered,
                     "results_until_next_swap": len(after_tampered),
                     "refused_in_diagnostics": any("refused" in s for s in statuses)},
    }
    figures["checks"] = {
        "node_alive": alive,
        "every_bundle_id_good": set(ids) <= {first_id, second_id},
        "tampered_refused_old_one_answers": bool(after_tampered) and set(after_tampered) == {running_at_tampered}
                                            and figures["tampered"]["refused_in_diagnostics"],
    }
    figures["exit_code"] = node.stop()
    return figures


def _settle(request: dict) -> None:
    """Record whether the node took the request (it refuses one while a bundle is still loading)."""
    results = request["future"].result().results
    request["accepted"] = all(r.successful for r in results)
    request["future"] = None


def second_bundle(bundle: Path, model_format: str, folder: Path) -> tuple[Path, Path]:
    """(the bundle with only `model_format`: another bundle_id; a copy of `bundle` with that format's file
    tampered, which a swap must refuse)."""
    from glassware.edge_runtime.bundle import MANIFEST, write_manifest

    second, tampered = folder / "second_bundle", folder / "tampered_bundle"
    shutil.copytree(bundle, second)
    manifest = json.loads((second / MANIFEST).read_text())
    kept = manifest["formats"][model_format]["file"]
    manifest["formats"] = {model_format: manifest["formats"][model_format]}
    manifest["files"] = {name: digest for name, digest in manifest["files"].items()
                         if name == kept or not name.endswith((".tflite", ".onnx"))}
    write_manifest(second, manifest)
    shutil.copytree(bundle, tampered)
    data = bytearray((tampered / kept).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tampered / kept).write_bytes(bytes(data))
    return second, tampered


def swap_table(figures: dict) -> str:
    from glassware.markdown import table

    t = figures["tampered"]
    cells = [
        ("classified / sent", f"{figures['classified']} / {figures['sent']}"),
        ("latency p50 / p99 / max (ms)", f"{figures['latency_p50_ms']} / {figures['latency_p99_ms']} / "
                                         f"{figures['latency_max_ms']}"),
        ("swaps requested / seen in the results", f"{figures['swaps_requested']} / {figures['swaps_seen_in_results']}"),
        ("requests refused while a bundle loaded", figures["swap_requests_refused_busy"]),
        ("longest wait between two results (frame periods)", figures["longest_gap_frame_periods"]),
        ("waits over 2 frame periods", figures["gaps_over_2_periods"]),
        ("results by bundle_id", ", ".join(f"{k}: {v}" for k, v in sorted(figures["results_by_bundle"].items()))),
        ("tampered copy: refused in diagnostics / results after it",
         f"{t['refused_in_diagnostics']} / {t['results_until_next_swap']} from {t['running_then']}"),
    ]
    return (table([f"{figures['frame']} at {figures['rate_hz']:g} Hz for {figures['seconds']:g} s "
                   f"({figures['model_format']})", ""], cells)
            + f"\n\nchecks {figures['checks']}; load average {figures['load_average_1min']:.1f}")


TABLES = {"fuzz": fuzz_table, "soak": soak_table, "collect": collect_table, "swap": swap_table}
