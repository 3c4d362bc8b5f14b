"""A work source straight on the work queue, for IPC tests that play the worker themselves."""

from __future__ import annotations

import threading

from simcore.core.ipc.tokens import Caller
from simcore.core.work_queue import WorkItem, WorkQueue


class QueueWorkSource:
    """A WorkSource straight on the queue, for callers that are not managed worker processes."""

    def __init__(self, work_queue: WorkQueue):
        self.work_queue = work_queue
        self._held: dict[str, WorkItem] = {}
        self._lock = threading.Lock()

    def take_work(self, caller: Caller, timeout: float) -> WorkItem | None:
        """The next item for the caller's function, remembered as held by it."""
        item = self.work_queue.take(caller.function_arn, timeout)
        if item is not None:
            with self._lock:
                self._held[item.invocation_id] = item
        return item

    def finish_work(self, caller: Caller, invocation_id: str) -> WorkItem | None:
        """The held item `invocation_id` of the caller's function, forgotten; None if not held."""
        with self._lock:
            item = self._held.get(invocation_id)
            if item is None or item.function_arn != caller.function_arn:
                return None
            return self._held.pop(invocation_id)
