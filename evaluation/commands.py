"""CLI of the evaluation layer: `glassware demo`, `replay`, `bench`, `bench-train` and `bench-node`.

`replay` and `bench` run on an edge install (no TensorFlow): heavy imports happen inside the handlers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from glassware.evaluation.requirements import DEFAULT_REQUIREMENTS, METRICS
from glassware.formats import names


def register(subparsers) -> None:
    from glassware.evaluation import bench_node, bench_train, demo, node_stress

    demo.register(subparsers)
    _register_replay(subparsers)
    _register_bench(subparsers)
    bench_train.register(subparsers)
    bench_node.register(subparsers)
    node_stress.register(subparsers)


def _register_replay(subparsers) -> None:
    from glassware.edge_runtime.stream import LabelSmoother

    p = subparsers.add_parser(
        "replay", help="replay recorded frames through a bundle: latency, drops, accuracy, timeline plot",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("source", type=Path, help="video file, folder of images, or rosbag2 (folder, .db3 or .mcap)")
    p.add_argument("--bundle", required=True, type=Path, help="bundle directory (manifest.json)")
    p.add_argument("--out", required=True, type=Path, help="folder for replay.json, frames.csv, timeline.png")
    p.add_argument("--speed", type=_speed, default=1.0,
                   help="1.0 = real time on the frames' timestamps (frames the classifier misses are dropped); "
                        "2.0 = twice as fast; max = every sampled frame, as fast as possible (throughput)")
    p.add_argument("--format", default="auto", help=f"bundle format: {', '.join(names())}; auto = the fastest passing "
                                                    "format with int8 weights, timed here (CPU)")
    p.add_argument("--threads", type=int, default=1, help="inference threads")
    p.add_argument("--providers", default="", help="ONNX Runtime providers, e.g. tensorrt,cuda,cpu (default CPU)")
    p.add_argument("--threshold", type=float,
                   help="unknown below this confidence, for every class (default: the bundle's, one per class)")
    p.add_argument("--max-rate-hz", type=float, default=0.0,
                   help="classify at most this often (on frame time); 0 = no limit")
    p.add_argument("--every-n", type=int, default=1, help="classify only every N-th frame")
    p.add_argument("--truth", type=Path, help="ground-truth CSV (frame,time_s,label,domain,phase); "
                                              "default: SOURCE.csv beside a video")
    p.add_argument("--topic", help="rosbag2 image topic (default: the bag's only Image/CompressedImage topic; "
                                   "with several, an error lists them)")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate given to a folder of images")
    p.add_argument("--smooth-alpha", type=float, default=LabelSmoother.ALPHA,
                   help="weight of the newest frame in the moving average")
    p.add_argument("--switch-margin", type=float, default=0.1, help="a new label must beat the held one by this much")
    p.add_argument("--min-updates", type=int, default=2, help="... for this many consecutive classified frames")
    p.add_argument("--release-margin", type=float, default=0.05,
                   help="an answered label turns unknown only below threshold minus this")
    p.add_argument("--require", action="append", metavar="METRIC>=VALUE",
                   help="acceptance criterion, repeatable, e.g. lab_accuracy>=0.97 or latency_p99_ms<=10; "
                        "exit 1 when one is not met (default: " + ", ".join(DEFAULT_REQUIREMENTS)
                        + ", where measured). Metrics: " + ", ".join(METRICS))
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    collect = p.add_argument_group("collect", "keep the frames answered unknown, to label (glassware label DIR)")
    collect.add_argument("--collect", type=Path, metavar="DIR", help="folder for the kept frames (JPEG + JSON)")
    collect.add_argument("--collect-audit-share", type=float, default=0.02,
                         help="share of accepted frames kept too, for auditing")
    collect.add_argument("--collect-max-rate-hz", type=float, default=2.0,
                         help="at most this many kept frames per second of frame time; 0 = no limit")
    collect.add_argument("--collect-max-mb", type=float, default=500.0,
                         help="disk bound of the folder: the oldest kept frames are deleted past it")
    collect.add_argument("--collect-duplicate-bits", type=int, default=5,
                         help="skip a frame within this many bits (64-bit dHash) of a recently kept one; -1 = off")
    collect.add_argument("--collect-seed", type=int, default=0,
                         help="seed of the audit draw, so a replay of one recording keeps the same frames")
    p.set_defaults(func=_replay)


def _register_bench(subparsers) -> None:
    p = subparsers.add_parser("bench", help="batch-1 latency of every format in bundles (runs without TensorFlow)",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--bundle", required=True, type=Path, action="append", help="bundle directory (repeatable)")
    p.add_argument("--out", required=True, type=Path, help="folder for bench.json, bench.md, bench_latency.png")
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--runs", type=int, default=200, help="timed inferences per row")
    p.add_argument("--warmup", type=int, default=20, help="untimed inferences first")
    p.add_argument("--providers", default="cpu",
                   help="ONNX Runtime providers, one row each, e.g. tensorrt,cuda,cpu (missing ones are skipped)")
    p.add_argument("--no-keras", dest="keras", action="store_false", help="skip the Keras predict baseline")
    p.set_defaults(func=_bench)


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("speed must be > 0 or 'max'")
    return value


def _replay(args: argparse.Namespace) -> int:
    from glassware.edge_runtime.backends import parse_providers
    from glassware.edge_runtime.classifier import Classifier
    from glassware.edge_runtime.collect import FrameCollector
    from glassware.edge_runtime.sources import open_source
    from glassware.edge_runtime.stream import FrameSampler, LabelSmoother
    from glassware.evaluation import replay
    from glassware.evaluation.requirements import all_met, parse
    from glassware.evaluation.truth import Truth

    for text in args.require or ():
        parse(text)  # a typo is an error before minutes of replay
    source = open_source(args.source, topic=args.topic, fps=args.fps)
    providers = parse_providers(args.providers)
    try:
        classifier = Classifier(args.bundle, format=args.format, threads=args.threads, providers=providers,
                                threshold=args.threshold)
        sampler = FrameSampler(max_rate_hz=args.max_rate_hz, every_n=args.every_n)
        smoother = LabelSmoother(classifier.class_names, alpha=args.smooth_alpha, switch_margin=args.switch_margin,
                                 threshold=classifier.threshold, min_updates=args.min_updates,
                                 release_margin=args.release_margin, thresholds=classifier.thresholds)
        collector = FrameCollector(
            args.collect, audit_share=args.collect_audit_share, max_rate_hz=args.collect_max_rate_hz,
            max_mb=args.collect_max_mb, duplicate_bits=args.collect_duplicate_bits,
            seed=args.collect_seed) if args.collect else None
    except ValueError as e:  # an out-of-range option
        print(f"glassware replay: error: {e}", file=sys.stderr)
        return 2
    truth_file = args.truth or (args.source.with_suffix(".csv") if source.kind == "video" else None)
    truth = Truth(truth_file) if truth_file and (args.truth or truth_file.is_file()) else None
    try:
        out = replay.run(source, classifier, args.out, speed=args.speed, sampler=sampler, smoother=smoother,
                         truth=truth, progress=args.progress, requirements=args.require, collector=collector)
    finally:
        if collector is not None:
            collector.close()
    print(replay.summary_table(out))
    print(f"wrote {args.out / 'replay.json'}, {args.out / 'frames.csv'}, {args.out / 'timeline.png'}")
    return 0 if all_met(out["requirements"]) else 1


def _bench(args: argparse.Namespace) -> int:
    from glassware.edge_runtime.backends import parse_providers
    from glassware.evaluation.bench import bench

    bench(args.bundle, args.out, threads=args.threads, runs=args.runs, warmup=args.warmup,
          providers=parse_providers(args.providers) or [], keras_baseline=args.keras)
    return 0
