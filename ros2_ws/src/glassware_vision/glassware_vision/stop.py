"""SIGINT and SIGTERM stop a node once and cleanly: exit 0 and no traceback, however often they come.

A terminal's Ctrl-C reaches a launched node twice (through its process group, then from launch), and a
supervisor may signal again while the node shuts down. Python's default turns every SIGINT into a
KeyboardInterrupt wherever the program is: in an import, inside rclpy while it builds an executor, or in the
worker's join during shutdown. This module imports nothing heavy, so an executable can install it before its
own imports.
"""

import os
import signal
import sys

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received = False


def exit_on_first_signal() -> None:
    """Before rclpy is initialised: the first SIGINT/SIGTERM exits with 0 at once (there is nothing to shut down
    yet), later ones are ignored."""
    for signum in SIGNALS:
        signal.signal(signum, _exit)


def defer_signals(until_exit: bool = False) -> None:
    """From here on a signal interrupts no Python code, it is only noted (`received`). Installed before
    rclpy.init: rclpy's handlers then shut the context down, which ends the node's spin, and call this one.
    `until_exit`: SIG_IGN, which Python's finalisation keeps; it resets Python handlers to the default, and a
    signal while DDS is torn down at exit would kill the process."""
    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_IGN if until_exit else _note)


def received() -> bool:
    return _received


def _exit(signum, frame) -> None:
    # os._exit, not SystemExit: the signal may land inside a C extension's module initialisation (rclpy's), which
    # turns any exception into "ImportError: initialization failed" and exit 1. Nothing is running to stop yet.
    _note(signum, frame)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _note(signum, frame) -> None:
    global _received
    _received = True
