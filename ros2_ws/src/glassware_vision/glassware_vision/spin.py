"""How every glassware_vision executable runs its node: start rclpy, spin until SIGINT/SIGTERM, shut down cleanly.

rclpy.init installs handlers for SIGINT and SIGTERM that shut the context down; a spinning executor then raises
ExternalShutdownException, a normal stop. Python's own handlers only note the signal (glassware_vision.stop), so
no KeyboardInterrupt lands in the middle of rclpy or of the clean-up, however often the signal comes. A node
still being made finishes loading, then stops.

SIGUSR1 prints every thread's Python stack to stderr and the node goes on: what a node that does not stop or
answer is doing (`kill -USR1 PID`).
"""

from __future__ import annotations

import faulthandler
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import rclpy
from glassware.errors import GlasswareError
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from glassware_vision.stop import defer_signals, received

N = TypeVar("N", bound=Node)


def run_node(make_node: Callable[[], N], args: list[str] | None = None,
             work: Callable[[N], None] | None = None) -> int:
    """rclpy.init(args), make the node, spin it until SIGINT, SIGTERM or shutdown; then destroy it and shut down.

    With `work`, this thread runs `work(node)` instead while a background executor serves the node (parameter
    services and the like); the node stops when `work` returns.
    Exit code: 0; 2 on a GlasswareError or bad parameter (e.g. a missing or tampered bundle), told in one line
    on stderr; 1 if the node set `failed` (it shut itself down on a bug).
    """
    defer_signals()  # rclpy's handlers stop the node; nothing may be interrupted halfway (see glassware_vision.stop)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    rclpy.init(args=args)
    node = None
    try:
        if received():
            return 0  # a signal came before rclpy's handlers were there
        node = make_node()
        if not rclpy.ok():
            pass  # a signal came while the node was being made
        elif work is None:
            rclpy.spin(node)
        else:
            _work_while_spinning(node, work)
    except (GlasswareError, ParameterException) as e:
        print(f"{Path(sys.argv[0]).stem}: {'cannot start' if node is None else 'stopped'}: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
        # else a signal shut the context down while the node was being made: part of stopping, not an error
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        defer_signals(until_exit=True)
    return 1 if getattr(node, "failed", False) else 0


def _work_while_spinning(node: N, work: Callable[[N], None]) -> None:
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=_spin, args=(executor,))
    spinner.start()
    try:
        work(node)
    finally:
        executor.shutdown()
        spinner.join()


def _spin(executor: SingleThreadedExecutor) -> None:
    try:
        executor.spin()
    except ExternalShutdownException:
        pass
