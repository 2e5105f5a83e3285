"""CLI: `glassware label DIR --bundle BUNDLE`, the label page for collected frames."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

LOOPBACK = ("127.0.0.1", "localhost")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "label", help="label collected frames in a browser page: class folders that train --data reads",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("collected", type=Path, metavar="DIR", help="folder of collected frames (replay --collect DIR)")
    p.add_argument("--bundle", required=True, type=Path, help="bundle whose classes are the labels")
    p.add_argument("--out", type=Path, help="folder for the class folders (default: DIR/labelled)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; anything but loopback lets others on the network label")
    p.set_defaults(func=_label)


def _label(args: argparse.Namespace) -> int:
    from glassware.edge_runtime.bundle import Bundle
    from glassware.labelling.store import LabelStore

    try:
        from glassware.labelling.server import make_label_server
    except ModuleNotFoundError as e:
        if e.name != "bottle":
            raise
        print("glassware label: error: needs the label extra: pip install 'glassware-vision[label]'",
              file=sys.stderr)
        return 2

    class_names = Bundle.load(args.bundle).class_names
    store = LabelStore(args.collected, args.out or args.collected / "labelled", class_names)
    if args.host not in LOOPBACK:
        print(f"glassware label: warning: listening on {args.host}: anyone who can reach this machine can see "
              "the frames and change the labels", file=sys.stderr)
    try:
        server = make_label_server(store, args.host, args.port)
    except OSError as e:
        print(f"glassware label: error: cannot listen on {args.host}:{args.port}: {e.strerror or e}",
              file=sys.stderr)
        return 2
    with server:
        print(f"label page: http://{args.host}:{server.server_port}/  ({len(store.frames)} frames in "
              f"{store.collected}, labels into {store.out}); Ctrl+C to stop", flush=True)
        server.serve_forever()
    return 0
