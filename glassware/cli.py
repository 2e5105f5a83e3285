"""`glassware` command line: one entry, one sub-command per job.

Each sub-package registers its own sub-commands in its `commands.py`, which imports only argparse at
module level; heavy imports (TensorFlow, ONNX Runtime) happen inside the handlers, so `glassware bench`
and `glassware replay` run on an edge install with no TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from glassware import __version__
from glassware.errors import GlasswareError

# Modules providing register(subparsers); a missing one (work in progress) is skipped, never fatal.
COMMAND_MODULES = (
    "glassware.synthetic.commands",
    "glassware.training.commands",
    "glassware.export.commands",
    "glassware.evaluation.commands",
    "glassware.labelling.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="glassware", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"glassware-vision {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args.func(args) or 0)
    except GlasswareError as e:
        print(f"glassware {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"glassware {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
