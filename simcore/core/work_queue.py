"""The core's work queue: invocations waiting for a worker, bounded across all functions, and their results."""

from __future__ import annotations

import base64
import collections
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from simcore.defaults import DEFAULT_MAX_WORK_ITEMS  # `runtime.maxWorkItemCount` of a v1 core's config.json
from simcore.errors import QueueFullError

FUNC_ERR_NONE = ""
FUNC_ERR_HANDLED = "Handled"
FUNC_ERR_UNHANDLED = "Unhandled"


class InvocationResult:
    """The outcome of one RequestResponse invocation, completed once by whoever finishes first."""

    __slots__ = ("_done", "payload", "func_err")

    def __init__(self) -> None:
        self._done = threading.Event()
        self.payload = b""
        self.func_err = FUNC_ERR_NONE

    def complete(self, payload: bytes, func_err: str = FUNC_ERR_NONE) -> bool:
        """Record the outcome; False (and no change) if it was already recorded."""
        if self._done.is_set():
            return False
        self.payload = payload
        self.func_err = func_err
        self._done.set()
        return True

    def fail_unhandled(self, message: str) -> bool:
        """Record an `Unhandled` error (timeout, crash, out of memory) with AWS's error body."""
        return self.complete(json.dumps({"errorMessage": message}).encode(), FUNC_ERR_UNHANDLED)

    @property
    def done(self) -> bool:
        """Whether an outcome is recorded."""
        return self._done.is_set()

    def wait(self, timeout: float | None) -> bool:
        """Wait for the outcome; True if it is there."""
        return self._done.wait(timeout)


@dataclass(eq=False)
class WorkItem:
    """One invocation of a user function waiting for, or held by, a worker."""

    function_arn: str
    payload: bytes
    client_context: str
    invocation_type: str = "Event"
    invocation_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    result: InvocationResult | None = None
    caller: str | None = None
    subject: str | None = None
    posted_at: float = field(default_factory=time.monotonic)
    dispatched_at: float | None = None
    attempts: int = 0
    cancelled: bool = False


def routed_client_context(subject: str, source: str) -> str:
    """The client context a routed message carries: base64 of `{"custom": {"subject", "source"}}`."""
    document = json.dumps({"custom": {"subject": subject, "source": source}}, separators=(",", ":"))
    return base64.b64encode(document.encode()).decode("ascii")


class WorkQueue:
    """Queued work items per function, bounded by one total across all functions.

    Items a worker holds do not count; an item put back after a worker crash goes to the front and may
    exceed the bound (it was accepted already, and accepted data is never dropped).
    """

    def __init__(self, max_items: int = DEFAULT_MAX_WORK_ITEMS):
        if max_items < 1:
            raise ValueError(f"maxWorkItemCount must be at least 1, not {max_items}")
        self.max_items = max_items
        self._queued: dict[str, collections.deque[WorkItem]] = collections.defaultdict(collections.deque)
        self._count = 0
        self._changed = threading.Condition()
        self._listeners: list[Callable[[str], None]] = []
        self._closed = False

    def add_listener(self, on_enqueue: Callable[[str], None]) -> None:
        """Call `on_enqueue(function_arn)` after items are queued (outside the queue's lock)."""
        self._listeners.append(on_enqueue)

    def __len__(self) -> int:
        return self._count

    def pending(self, function_arn: str) -> int:
        """How many items wait for `function_arn` (cancelled ones included until a worker skips them)."""
        return len(self._queued.get(function_arn, ()))

    def pending_by_function(self) -> dict[str, int]:
        """Queued item counts per function ARN (non-empty only)."""
        with self._changed:
            return {arn: len(items) for arn, items in self._queued.items() if items}

    def put(self, item: WorkItem) -> None:
        """Queue one item; QueueFullError when the bound is reached."""
        self.put_all([item])

    def put_all(self, items: list[WorkItem]) -> None:
        """Queue all items or none (QueueFullError)."""
        if not items:
            return
        with self._changed:
            if self._count + len(items) > self.max_items:
                raise QueueFullError(
                    f"The work queue is full ({self._count} of {self.max_items} items): "
                    f"{len(items)} more cannot be queued"
                )
            for item in items:
                self._queued[item.function_arn].append(item)
            self._count += len(items)
            self._changed.notify_all()
        self._notify(items)

    def put_back(self, item: WorkItem) -> None:
        """Return an item a worker held to the front of its function's queue (no bound check)."""
        item.dispatched_at = None
        with self._changed:
            self._queued[item.function_arn].appendleft(item)
            self._count += 1
            self._changed.notify_all()
        self._notify([item])

    def take(self, function_arn: str, timeout: float | None) -> WorkItem | None:
        """The next live item for `function_arn`, waiting up to `timeout` seconds; None if none came."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while not self._closed:
                items = self._queued.get(function_arn)
                while items:
                    item = items.popleft()
                    self._count -= 1
                    if not item.cancelled:
                        item.dispatched_at = time.monotonic()
                        return item
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._changed.wait(remaining)
            return None

    def close(self) -> None:
        """Stop serving: every waiting and future `take` returns None (queued items stay, for status)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def discard(self, item: WorkItem) -> bool:
        """Remove a queued item (a caller gave up on it); False if a worker already took it."""
        with self._changed:
            items = self._queued.get(item.function_arn)
            if not items:
                return False
            try:
                items.remove(item)
            except ValueError:
                return False
            self._count -= 1
            return True

    def drain(self, function_arn: str) -> list[WorkItem]:
        """Remove and return every item queued for `function_arn`."""
        with self._changed:
            items = list(self._queued.pop(function_arn, ()))
            self._count -= len(items)
            return items

    def _notify(self, items: Iterable[WorkItem]) -> None:
        if not self._listeners:
            return
        for function_arn in {item.function_arn for item in items}:
            for listener in self._listeners:
                listener(function_arn)
