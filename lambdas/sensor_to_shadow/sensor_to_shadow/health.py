"""The sensor's health and the Lambda's error counters, as reported in the shadow (`reported.sensor`)."""

from __future__ import annotations

import threading
from typing import Dict, Optional

OK = "ok"
STARTING = "starting"
ERROR = "error"  # the chip or bus failed; retrying with backoff
INVALID = "invalid-reading"  # the last reading was out of range / NaN / missing
FINISHED = "replay-finished"
CONFIG_ERROR = "config-error"  # no usable source: nothing will be read until the group is fixed


class SensorHealth:
    """Thread-safe status and counters; `as_reported()` is the `reported.sensor` object."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.status = STARTING
        self.last_error: Optional[str] = None
        self.counts: Dict[str, int] = {
            "readings": 0,           # written to the shadow
            "errors": 0,             # chip/bus failures
            "invalid_readings": 0,   # failed validation, never written
            "shadow_errors": 0,      # update_thing_shadow failed
            "shadow_rejected": 0,    # update/rejected messages received
            "bad_messages": 0,       # malformed delta/rejected/unknown messages
            "readings_dropped": 0,   # unwritten readings pushed out of the full buffer (oldest first)
        }
        self.unwritten_readings = 0  # readings the shadow could not store yet, kept to be written later

    def count(self, name: str, amount: int = 1) -> None:
        """Add to one counter."""
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + amount

    def set_status(self, status: str, error: Optional[str] = None) -> bool:
        """Set the status (and the last error, when given); True when the status changed."""
        with self._lock:
            changed = status != self.status
            self.status = status
            if error is not None:
                self.last_error = error
            return changed

    def set_unwritten(self, count: int) -> None:
        """How many readings wait to be written (the shadow could not store them)."""
        with self._lock:
            self.unwritten_readings = count

    def note_error(self, reason: str) -> None:
        """Remember a reason as the last error without changing the status."""
        with self._lock:
            self.last_error = reason

    def as_reported(self) -> Dict[str, object]:
        """The `reported.sensor` object: status, error counts and the last error's reason."""
        with self._lock:
            return {
                "status": self.status,
                "errors": self.counts["errors"],
                "invalid_readings": self.counts["invalid_readings"],
                "shadow_errors": self.counts["shadow_errors"],
                "unwritten_readings": self.unwritten_readings,
                "readings_dropped": self.counts["readings_dropped"],
                "last_error": self.last_error,
            }
