"""How a long-running command stops: a stop signal sets an event instead of killing the process.

SIGHUP counts as a stop, like SIGINT and SIGTERM: a closed terminal or a dropped SSH session must stop
the core (and its broker and workers) cleanly, not kill it with nothing cleaned up. The handlers are in
place from the moment a command enters `StopSignal`, before it starts anything, so a signal that comes
while it starts (a supervisor's SIGTERM as soon as the control file appears) still stops it cleanly.
"""

from __future__ import annotations

import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopSignal:
    """Within `with StopSignal() as stop:`, SIGINT/SIGTERM/SIGHUP set `stop.requested`; restored on exit.

    Handlers can only be set from the main thread; elsewhere (a test driving a command) only the event counts.
    """

    def __init__(self, requested: threading.Event | None = None) -> None:
        self.requested = requested or threading.Event()
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, lambda _signum, _frame: self.requested.set())
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def wait(self) -> None:
        """Block until a stop signal arrives or something else sets `requested` (e.g. `simcore stop`)."""
        while not self.requested.wait(0.5):
            pass
