"""Waiting for something another thread or process does, with a deadline that names what was awaited.

Standard library only and Python 3.8-compatible: the Lambdas' unit tests also run under Python 3.8.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout_s: float = 20.0,
    *,
    message: str | Callable[[], str],
    interval_s: float = 0.02,
) -> T:
    """Poll `predicate` until it returns something truthy, and return that value.

    AssertionError when `timeout_s` passes first, saying what was awaited: `message`, or what `message()`
    returns then (to show the state at the deadline). The last ask comes after the deadline, so a condition
    that holds by then passes however slowly the polls ran.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            what = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        # Polling, not synchronisation: the predicate decides; the pause only spares the CPU between asks.
        time.sleep(interval_s)
