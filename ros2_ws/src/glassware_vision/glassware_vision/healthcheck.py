"""healthcheck: is a classifier node running and classifying? For container health checks and start-up scripts.

    ros2 run glassware_vision healthcheck [--node glassware_classifier] [--timeout 10]

Waits for the node's status on /diagnostics, prints it as JSON and a table, and exits 0 if it is OK
(frames coming in and being classified), 1 if it is WARN/ERROR (no input frames, malformed frames, a stalled
classifier), 2 if no status came within the timeout (node not running, or not on this ROS domain). A node
name without a leading / is in the healthcheck's own namespace (`--ros-args -r __ns:=/arm`), as in ROS.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.executors import ExternalShutdownException

LEVELS = {DiagnosticStatus.OK: "OK", DiagnosticStatus.WARN: "WARN", DiagnosticStatus.ERROR: "ERROR",
          DiagnosticStatus.STALE: "STALE"}


def wait_for_status(node_name: str, timeout: float) -> DiagnosticStatus | None:
    """The first status of the classifier `node_name` that is OK, else the last one seen before timeout."""
    found: list[DiagnosticStatus] = []
    node = rclpy.create_node("glassware_healthcheck")
    if not node_name.startswith("/"):
        node_name = f"{node.get_namespace().rstrip('/')}/{node_name}"

    def on_diagnostics(msg: DiagnosticArray) -> None:
        found.extend(s for s in msg.status if s.name == f"{node_name}: classification")

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not (found and found[-1].level == DiagnosticStatus.OK):
            rclpy.spin_once(node, timeout_sec=0.1)
    finally:
        node.destroy_node()
    return found[-1] if found else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="healthcheck", description=__doc__.splitlines()[0])
    parser.add_argument("--node", default="glassware_classifier", help="classifier node name: /namespace/name, or a name in this node's namespace")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for an OK status")
    args, ros_args = parser.parse_known_args(argv)
    rclpy.init(args=[sys.argv[0], *ros_args])
    try:
        status = wait_for_status(args.node, args.timeout)
    except (KeyboardInterrupt, ExternalShutdownException):
        return 130
    finally:
        rclpy.try_shutdown()
    if status is None:
        print(json.dumps({"node": args.node, "level": "NO_STATUS", "message": f"no diagnostics within {args.timeout} s"}))
        return 2
    report = {"node": args.node, "level": LEVELS.get(status.level, str(status.level)), "message": status.message,
              **{kv.key: kv.value for kv in status.values}}
    print(json.dumps(report))
    print("\n".join(f"{key:>18}  {value}" for key, value in report.items()), file=sys.stderr)
    return 0 if status.level == DiagnosticStatus.OK else 1


if __name__ == "__main__":
    sys.exit(main())
