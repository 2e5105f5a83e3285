"""`glassware synth`, `glassware synth-video` and `glassware synth-openset`: the embedded default data
(synthetic glassware), and images that are not glassware for testing the open-set refusal."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth", help="render a class-folder dataset of synthetic glassware photos",
        description="Render OUT/<class>/<class>_<seed>_<i>.jpg for the nine classes (paper Table 2), plus "
                    "OUT/contact_sheet.png and OUT/synth.json. Same arguments, same bytes.")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--domain", default="lab", metavar="lab|stress",
                   help="lab: white surface, diffuse light (the training setup); "
                        "stress: dark murky light, busy background, styrofoam box, another camera")
    p.add_argument("--per-class", type=int, default=100, metavar="N", help="images per class (default 100)")
    p.add_argument("--count", action="append", default=[], metavar="CLASS=N",
                   help="images of one class instead of --per-class (repeatable), e.g. other=600; "
                        "background=N adds N empty scenes as class 'background' (nothing in view)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--size", default="640x480", metavar="WxH",
                   help="image size (default 640x480; 3840x2160 for paper-like 4K frames)")
    p.add_argument("--quality", type=int, default=90, metavar="Q", help="JPEG quality 1-100 (default 90)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="processes (output does not depend on it)")
    p.set_defaults(func=_synth)

    v = subparsers.add_parser(
        "synth-video", help="render a synthetic gripper-camera video with frame-accurate ground truth",
        description="Write FILE.mp4 (mp4v), FILE.csv (frame,time_s,label,domain,phase; label 'none' when no "
                    "object is fully in view) and FILE.json.")
    v.add_argument("--out", required=True, metavar="FILE.mp4")
    v.add_argument("--seconds", type=float, default=60.0, help="length (default 60)")
    v.add_argument("--fps", type=float, default=30.0, help="frames per second (default 30)")
    v.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    v.add_argument("--size", default="640x480", metavar="WxH", help="frame size (default 640x480)")
    v.add_argument("--stress-share", type=float, metavar="P",
                   help="chance of each object's visit being in the stress domain, 0..1 (default about a third)")
    v.set_defaults(func=_synth_video)

    o = subparsers.add_parser(
        "synth-openset", help="render images that are not glassware, to test that the open-set score refuses them",
        description="Render OUT/<kind>/<kind>_<seed>_<i>.jpg for six kinds of image with no glassware in it "
                    "(texture, pattern, text, clutter, scene: the lab or stress scene with another object, "
                    "noise: bad frames), plus OUT/contact_sheet.png and OUT/openset.json. Same arguments, "
                    "same bytes.")
    o.add_argument("--out", required=True, metavar="DIR",
                   help="output folder (created; an existing one must hold only an earlier synth-openset output)")
    o.add_argument("--per-kind", type=int, default=40, metavar="N", help="images per kind (default 40)")
    o.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    o.add_argument("--size", default="640x480", metavar="WxH", help="image size (default 640x480)")
    o.add_argument("--quality", type=int, default=90, metavar="Q", help="JPEG quality 1-100 (default 90)")
    o.set_defaults(func=_synth_openset)


def _synth(args: argparse.Namespace) -> int:
    from glassware.synthetic.images import parse_counts, parse_size, write_dataset

    width, height = parse_size(args.size)
    s = write_dataset(args.out, domain=args.domain, per_class=args.per_class, seed=args.seed, width=width,
                      height=height, quality=args.quality, workers=args.workers, counts=parse_counts(args.count))
    print(f"synth: {s['total']} images, {args.domain} domain, seed {s['seed']}, {width}x{height}, "
          f"JPEG q{s['quality']} -> {args.out}")
    print(f"  {'class':<11}{'images':>7}")
    for name in s["classes"]:
        print(f"  {name:<11}{s['counts'][name]:>7}")
    print(f"  {s['bytes'] / s['total'] / 1024:.0f} KB per image; contact sheet {args.out}/{s['contact_sheet']}; "
          f"summary {args.out}/synth.json")
    print(f"  {s['seconds']:.2f} s, {s['images_per_second']:.1f} images/s with {s['workers']} worker(s) "
          f"({s['images_per_cpu_second']:.1f} images per CPU-second)")
    return 0


def _synth_video(args: argparse.Namespace) -> int:
    from glassware.synthetic.images import parse_size
    from glassware.synthetic.video import write_video

    width, height = parse_size(args.size)
    s = write_video(args.out, seconds=args.seconds, fps=args.fps, seed=args.seed, width=width, height=height,
                    stress_share=args.stress_share)
    print(f"synth-video: {s['frames']} frames ({s['seconds']:.1f} s at {s['fps']:g} fps), {width}x{height}, "
          f"seed {s['seed']} -> {args.out}")
    print(f"  {'label':<7}{'frames':>7}")
    for name, n in s["label_counts"].items():
        print(f"  {name:<7}{n:>7}")
    print(f"  objects visited: {len(s['segments'])}; frames in the stress domain: {s['stress_frames']}; "
          f"ground truth {s['ground_truth']}")
    print(f"  rendered in {s['render_seconds']:.1f} s ({s['frames_per_second']:.1f} frames/s)")
    return 0


def _synth_openset(args: argparse.Namespace) -> int:
    from glassware.synthetic.images import parse_size
    from glassware.synthetic.openset import write_openset

    width, height = parse_size(args.size)
    s = write_openset(args.out, per_kind=args.per_kind, seed=args.seed, width=width, height=height,
                      quality=args.quality)
    print(f"synth-openset: {s['total']} images that are not glassware, seed {s['seed']}, {width}x{height}, "
          f"JPEG q{s['quality']} -> {args.out}")
    print(f"  {'kind':<11}{'images':>7}")
    for kind in s["kinds"]:
        print(f"  {kind:<11}{s['counts'][kind]:>7}")
    print(f"  {s['bytes'] / s['total'] / 1024:.0f} KB per image; contact sheet {args.out}/{s['contact_sheet']}; "
          f"summary {args.out}/openset.json")
    print(f"  {s['seconds']:.2f} s, {s['images_per_second']:.1f} images/s")
    return 0
