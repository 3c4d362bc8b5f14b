"""How a long-running command waits: until a stop signal arrives or something sets its stop event.

SIGHUP counts as a stop, like SIGINT and SIGTERM: a closed terminal or a dropped SSH session must stop
the core (and its broker and workers) cleanly, not kill it with nothing cleaned up.
"""

from __future__ import annotations

import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def wait_for_signal(stopped: threading.Event) -> None:
    """Block until SIGINT/SIGTERM/SIGHUP or until `stopped` is set (e.g. by `simcore stop`)."""
    def handle(signum: int, _frame: object) -> None:
        stopped.set()

    for signum in STOP_SIGNALS:
        signal.signal(signum, handle)
    while not stopped.wait(0.5):
        pass
