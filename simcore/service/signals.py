"""How a long-running command waits: until a stop signal arrives or something sets its stop event."""

from __future__ import annotations

import signal
import threading


def wait_for_signal(stopped: threading.Event) -> None:
    """Block until SIGINT/SIGTERM or until `stopped` is set (e.g. by `simcore stop`)."""
    def handle(signum: int, _frame: object) -> None:
        stopped.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    while not stopped.wait(0.5):
        pass
