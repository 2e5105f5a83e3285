"""CLI: `glassware export` (run -> gated bundle, needs TensorFlow)."""

from __future__ import annotations

import argparse
from pathlib import Path

from glassware import formats


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="export a training run to an accuracy-gated TFLite/ONNX bundle",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--run", required=True, type=Path, help="run directory written by `glassware train`")
    p.add_argument("--out", required=True, type=Path, help="bundle directory to create (or replace)")
    p.add_argument("--formats", nargs="+", choices=formats.names(), default=list(formats.names()), metavar="FORMAT",
                   help=f"any of: {' '.join(formats.names())}")
    p.add_argument("--test", type=Path, help="held-out lab test set (class folders): the gate split")
    p.add_argument("--stress", type=Path, help="stress/new-environment set (class folders), reported too")
    p.add_argument("--calibration", type=Path, metavar="DIR", action="append",
                   help="held-out images (class folders, in neither train nor test; repeatable, e.g. lab photos "
                        "and frames labelled on the robot): confidence scaling and threshold are fitted on val "
                        "plus these (default: val alone)")
    p.add_argument("--not-glassware", type=Path, metavar="DIR",
                   help="images that are not glassware (any layout, e.g. from `glassware synth-openset`): every "
                        "format's glassware answers on them are counted, which should be none")
    p.add_argument("--not-glassware-fit", type=Path, metavar="DIR",
                   help="other images that are not glassware (never the --not-glassware folder), e.g. the robot's "
                        "cell with nothing to pick up: the open-set threshold is lowered until at most 5%% of those "
                        "the classifier takes for glassware pass it")
    p.add_argument("--evaluations", type=Path, metavar="DIR",
                   help="also write `glassware evaluate`'s metrics.json and confusion matrix of the Keras model on "
                        "--test and --stress into DIR/eval_<folder name> (eval_test and eval_stress if the two "
                        "names are alike), from the outputs the gate computes anyway")
    p.add_argument("--no-openset", dest="openset", action="store_false",
                   help="do not fit or ship the open-set score (novel images are then never refused)")
    p.add_argument("--no-perturb", dest="perturb", action="store_false",
                   help="fit calibration on the clean images only, not also on an augmented copy of each")
    p.add_argument("--tolerance", type=float, default=1.0, help="max accuracy drop vs Keras, in points")
    p.add_argument("--keep-failed", action="store_true", help="keep formats failing the gate and exit 0")
    p.add_argument("--target-precision", type=float, default=0.99, help="abstention threshold target precision")
    p.add_argument("--representative", type=int, default=300, metavar="N", help="int8 calibration images")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from glassware.export.export import export_run

    manifest = export_run(args.run, args.out, formats=args.formats, test_dir=args.test, stress_dir=args.stress,
                          calibration_dir=args.calibration, perturb=args.perturb, tolerance=args.tolerance,
                          keep_failed=args.keep_failed, target_precision=args.target_precision,
                          representative=args.representative, seed=args.seed, openset=args.openset,
                          not_glassware_dir=args.not_glassware, not_glassware_fit_dir=args.not_glassware_fit,
                          evaluations_dir=args.evaluations)
    c, failed = manifest["calibration"], manifest["gate"]["failed"]
    per_class = c.get("class_thresholds", [c["threshold"]])
    print(f"temperature {c['temperature']:.3f}, uniform mix {c['uniform_mix']:.4f}, threshold {c['threshold']:.4f} "
          f"(per class {min(per_class):.4f} to {max(per_class):.4f}); bundle {manifest['bundle_id']} in {args.out}")
    if "openset" in manifest:
        o = manifest["openset"]
        given = {s: m["glassware_answers"] for s, m in o["splits"].items()}
        print(f"open-set threshold {o['threshold']:.4f} (set by the {o['limited_by']}); "
              "glassware answers given (Keras): "
              + ", ".join(f"{s} {n}" for s, n in given.items()))
    if failed:
        action = "kept (--keep-failed)" if args.keep_failed else "removed from the bundle"
        print(f"gate FAILED for {', '.join(failed)}: {action}")
        return 0 if args.keep_failed else 1
    return 0
