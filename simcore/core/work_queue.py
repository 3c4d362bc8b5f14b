"""The core's work queue: invocations waiting for a worker, bounded per function and in total, and their results.

Bounds (docs/isolation.md "Work queue"): `max_items` (`runtime.maxWorkItemCount`) and `max_bytes` (payload and
client-context bytes) bound what waits for all functions together. When the queue knows the group's functions
(`targets`), each function gets an equal share of both, so a flood aimed at one function never takes another's
room; and within a share, direct invokes (`WorkItem.caller` set: any function may invoke any other, no
subscription needed) may fill at most half, so routed messages (which a subscription allowed) keep room too.
An item that does not fit is refused with QueueFullError (429); nothing already queued is dropped.
"""

from __future__ import annotations

import base64
import collections
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

# `runtime.maxWorkItemCount` of a v1 core's config.json, and simcore's byte bound beside it.
from simcore.defaults import DEFAULT_MAX_WORK_BYTES, DEFAULT_MAX_WORK_ITEMS
from simcore.errors import QueueFullError

FUNC_ERR_NONE = ""
FUNC_ERR_HANDLED = "Handled"
FUNC_ERR_UNHANDLED = "Unhandled"
# Room for one invoke at AWS Lambda's 6 MB payload limit (and its client context): every function's share holds
# at least two, and its invoke half at least one, so a legal invoke always fits in an empty share.
INVOKE_ROOM_BYTES = 6 * 1024 * 1024 + 8 * 1024


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

    @property
    def size(self) -> int:
        """The bytes it holds in the queue: payload and client context."""
        return len(self.payload) + len(self.client_context)

    @property
    def invoked(self) -> bool:
        """A direct invoke by a function (not a message a subscription routed)."""
        return self.caller is not None


@dataclass
class _Share:
    """What waits for one function: items and bytes, all of them and the direct invokes among them."""

    items: int = 0
    bytes: int = 0
    invoke_items: int = 0
    invoke_bytes: int = 0

    def add(self, item: WorkItem, sign: int = 1) -> None:
        self.items += sign
        self.bytes += sign * item.size
        if item.invoked:
            self.invoke_items += sign
            self.invoke_bytes += sign * item.size


def routed_client_context(subject: str, source: str) -> str:
    """The client context a routed message carries: base64 of `{"custom": {"subject", "source"}}`."""
    document = json.dumps({"custom": {"subject": subject, "source": source}}, separators=(",", ":"))
    return base64.b64encode(document.encode()).decode("ascii")


class WorkQueue:
    """Queued work items per function, bounded in items and bytes, in total and per function's share.

    Items a worker holds do not count; an item put back after a worker crash goes to the front and may
    exceed the bounds (it was accepted already, and accepted data is never dropped).
    """

    def __init__(
        self,
        max_items: int = DEFAULT_MAX_WORK_ITEMS,
        max_bytes: int = DEFAULT_MAX_WORK_BYTES,
        targets: Iterable[str] = (),
    ):
        if max_items < 1:
            raise ValueError(f"maxWorkItemCount must be at least 1, not {max_items}")
        if max_bytes < 1:
            raise ValueError(f"the work queue's byte bound must be at least 1, not {max_bytes}")
        self.max_items = max_items
        self.max_bytes = max_bytes
        functions = len(set(targets))
        if functions:
            self.share_items = max(1, max_items // functions)
            self.share_bytes = max(max_bytes // functions, min(max_bytes, 2 * INVOKE_ROOM_BYTES))
            self.invoke_items = max(1, self.share_items // 2)
            self.invoke_bytes = max(self.share_bytes // 2, min(self.share_bytes, INVOKE_ROOM_BYTES))
        else:  # no group declared (a bare queue): one bound for everything, as v1's shared maxWorkItemCount
            self.share_items, self.share_bytes = max_items, max_bytes
            self.invoke_items, self.invoke_bytes = max_items, max_bytes
        self._queued: dict[str, collections.deque[WorkItem]] = collections.defaultdict(collections.deque)
        self._shares: dict[str, _Share] = collections.defaultdict(_Share)
        self._count = 0
        self._bytes = 0
        self.peak_bytes = 0
        self.refused: collections.Counter[str] = collections.Counter()
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

    def pending_bytes(self, function_arn: str) -> int:
        """Bytes waiting for `function_arn`."""
        with self._changed:
            return self._shares[function_arn].bytes if function_arn in self._shares else 0

    @property
    def queued_bytes(self) -> int:
        """Bytes (payloads and client contexts) waiting for all functions."""
        return self._bytes

    def limits(self) -> dict[str, int]:
        """The bounds in force: in total, per function's share, and for direct invokes within a share."""
        return {
            "max_items": self.max_items,
            "max_bytes": self.max_bytes,
            "share_items": self.share_items,
            "share_bytes": self.share_bytes,
            "invoke_items": self.invoke_items,
            "invoke_bytes": self.invoke_bytes,
        }

    def _room_for(self, items: list[WorkItem]) -> str | None:
        """Why `items` do not fit (a message for QueueFullError), or None when they all do. Under the lock."""
        total_bytes = sum(item.size for item in items)
        if self._count + len(items) > self.max_items:
            return f"the work queue is full ({self._count} of {self.max_items} items)"
        if self._bytes + total_bytes > self.max_bytes:
            return f"the work queue is full ({self._bytes} of {self.max_bytes} bytes)"
        wanted: dict[str, _Share] = collections.defaultdict(_Share)
        for item in items:
            wanted[item.function_arn].add(item)
        for arn, more in wanted.items():
            held = self._shares[arn]
            if held.items + more.items > self.share_items or held.bytes + more.bytes > self.share_bytes:
                return (
                    f"the queue share of {arn} is full ({held.items} of {self.share_items} items, "
                    f"{held.bytes} of {self.share_bytes} bytes)"
                )
            if more.invoke_items and (
                held.invoke_items + more.invoke_items > self.invoke_items
                or held.invoke_bytes + more.invoke_bytes > self.invoke_bytes
            ):
                return (
                    f"invokes of {arn} fill their part of its queue share ({held.invoke_items} of "
                    f"{self.invoke_items} items, {held.invoke_bytes} of {self.invoke_bytes} bytes)"
                )
        return None

    def _added(self, item: WorkItem) -> None:
        self._count += 1
        self._bytes += item.size
        self.peak_bytes = max(self.peak_bytes, self._bytes)
        self._shares[item.function_arn].add(item)

    def _removed(self, item: WorkItem) -> None:
        self._count -= 1
        self._bytes -= item.size
        self._shares[item.function_arn].add(item, -1)

    def put(self, item: WorkItem) -> None:
        """Queue one item; QueueFullError when a bound is reached."""
        self.put_all([item])

    def put_all(self, items: list[WorkItem]) -> None:
        """Queue all items or none (QueueFullError, counted per function in `refused`)."""
        if not items:
            return
        with self._changed:
            why = self._room_for(items)
            if why is not None:
                for item in items:
                    self.refused[item.function_arn] += 1
                raise QueueFullError(f"{why[0].upper()}{why[1:]}: {len(items)} more cannot be queued")
            for item in items:
                self._queued[item.function_arn].append(item)
                self._added(item)
            self._changed.notify_all()
        self._notify(items)

    def put_back(self, item: WorkItem) -> None:
        """Return an item a worker held to the front of its function's queue (no bound check)."""
        item.dispatched_at = None
        with self._changed:
            self._queued[item.function_arn].appendleft(item)
            self._added(item)
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
                    self._removed(item)
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
            self._removed(item)
            return True

    def drain(self, function_arn: str) -> list[WorkItem]:
        """Remove and return every item queued for `function_arn`."""
        with self._changed:
            items = list(self._queued.pop(function_arn, ()))
            for item in items:
                self._removed(item)
            return items

    def _notify(self, items: Iterable[WorkItem]) -> None:
        if not self._listeners:
            return
        for function_arn in {item.function_arn for item in items}:
            for listener in self._listeners:
                listener(function_arn)
