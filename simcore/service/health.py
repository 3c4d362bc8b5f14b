"""Whether a newly started version of the group runs: its pinned Lambdas up and staying up.

A v1 core counts a pinned function running once its process is up; a version whose pinned Lambda cannot be
imported is only seen failing when its worker exits and is restarted. So a new version must hold for a settle
time: every pinned function with a worker past `starting`, none marked failed (`max_failed_starts` starts in a
row failed), none restarted or crashed meanwhile.
"""

from __future__ import annotations

import threading
import time
from typing import Any

POLL_S = 0.1


def pinned_failure(functions: dict[str, Any], settled: bool) -> str | None:
    """Why the pinned functions in a core's status are not healthy (None: healthy so far)."""
    for arn, function in sorted(functions.items()):
        if not function["pinned"]:
            continue
        name = function["name"]
        if function["failed"]:
            return f"function {name} failed to start: {function['failed']}"
        if function["restarts"] or function["crashes"]:
            return f"function {name} exited after it started: {function['last_error'] or function['last_exit']}"
        if settled and not any(worker["state"] != "starting" for worker in function["workers"]):
            return f"function {name} ({arn}) has no running worker"
    return None


def wait_pinned_healthy(core: Any, settle_s: float, cancelled: threading.Event | None = None) -> str | None:
    """Watch `core` (a started `simcore.core.assemble.Core`) for `settle_s`; the first failure seen, or None."""
    deadline = time.monotonic() + settle_s
    while True:
        settled = time.monotonic() >= deadline
        reason = pinned_failure(core.status()["functions"], settled)
        if reason is not None or settled:
            return reason
        if cancelled is not None and cancelled.is_set():
            return "the job was cancelled during the swap"
        time.sleep(POLL_S)
