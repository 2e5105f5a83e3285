"""SIGINT and SIGTERM stop a node once and cleanly: exit 0 and no traceback, however often they come.

A terminal's Ctrl-C reaches a launched node twice (through its process group, then from launch), and a
supervisor may signal again while the node shuts down. Python's default turns every SIGINT into a
KeyboardInterrupt wherever the program is: in an import, while loading the model, or in the worker's join
during shutdown. This module imports nothing heavy, so an executable can install it before its own imports.
"""

import signal

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def exit_on_first_signal() -> None:
    """The first SIGINT/SIGTERM exits with 0, later ones are ignored. rclpy.init later installs its own handlers,
    which shut the ROS context down and then call these."""
    for signum in SIGNALS:
        signal.signal(signum, _exit)


def ignore_signals(until_exit: bool = False) -> None:
    """The node is stopping: no signal may interrupt its clean-up. A Python no-op handler while rclpy may still
    restore the handlers it found; then (`until_exit`) SIG_IGN, which Python's finalisation keeps: it resets
    Python handlers to the default, and a signal while DDS is torn down at exit would kill the process."""
    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_IGN if until_exit else _ignore)


def _exit(signum, frame) -> None:
    ignore_signals(until_exit=True)
    raise SystemExit(0)


def _ignore(signum, frame) -> None:
    pass
