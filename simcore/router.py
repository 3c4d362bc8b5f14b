"""Greengrass v1 message routing: the subscription table, topic matching and the bounded work queue.

A message moves only where a subscription matches its source and topic: to a function (a work item on the
shared work queue), to `cloud` (the cloud port), to `GGShadowService` (the shadow service) or to a connector.
Work items for all functions share one bound (`runtime.maxWorkItemCount`, 1024 by default). With
`BestEffort` a target whose queue is full loses the message (counted); with `AllOrError` the whole publish
fails when any function target is full, and nothing is delivered.
"""

from __future__ import annotations

import base64
import collections
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from simcore.group import CLOUD, SHADOW_SERVICE, Subscription

log = logging.getLogger(__name__)

DEFAULT_MAX_WORK_ITEMS = 1024
BEST_EFFORT = "BestEffort"
ALL_OR_ERROR = "AllOrError"
QUEUE_FULL_POLICIES = ("", BEST_EFFORT, ALL_OR_ERROR)
MAX_TOPIC_BYTES = 256

FUNC_ERR_NONE = ""
FUNC_ERR_HANDLED = "Handled"
FUNC_ERR_UNHANDLED = "Unhandled"


class RoutingError(Exception):
    """A publish was refused; `status` is the HTTP status the IPC server answers with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


class QueueFullError(RoutingError):
    """The work queue has no room for an item (or, for AllOrError, for all of a publish's items)."""

    def __init__(self, message: str):
        super().__init__(message, status=429)


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


class CloudPort(Protocol):
    """What the router needs from the cloud link."""

    def publish(self, topic: str, payload: bytes) -> None: ...


class ShadowPort(Protocol):
    """What the router needs from the shadow service (`simcore.shadow_service.ShadowService`)."""

    def handle(self, topic: str, payload: bytes) -> Any: ...


class ConnectorRegistry(Protocol):
    """Local connector implementations, keyed by connector ARN."""

    def has(self, connector_arn: str) -> bool: ...

    def deliver(self, connector_arn: str, topic: str, payload: bytes) -> None: ...


def validate_topic(topic: str) -> None:
    """Refuse a topic a message cannot be published on (empty, wildcards, too long, NUL)."""
    if not topic:
        raise RoutingError("The topic is empty: a message needs a topic to be published on")
    if "+" in topic or "#" in topic:
        raise RoutingError(f"The topic {topic!r} has a wildcard (+ or #): only subscriptions may have one")
    if "\x00" in topic:
        raise RoutingError("The topic has a NUL character")
    if len(topic.encode("utf-8")) > MAX_TOPIC_BYTES:
        raise RoutingError(f"The topic is longer than {MAX_TOPIC_BYTES} bytes")


def validate_filter(subject: str) -> None:
    """Refuse a subscription subject that is not an MQTT topic filter (`#` last and alone, `+` alone)."""
    if not subject:
        raise ValueError("A subscription subject is empty")
    levels = subject.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise ValueError(f"Subscription subject {subject!r}: '#' must be a whole level and the last one")
        if "+" in level and level != "+":
            raise ValueError(f"Subscription subject {subject!r}: '+' must be a whole level")


def topic_matches(subject: str, topic: str) -> bool:
    """Whether MQTT topic filter `subject` matches `topic` (`+` one level, `#` last: zero or more levels)."""
    filter_levels = subject.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)


@dataclass
class RouteOutcome:
    """Where one publish went."""

    delivered: int = 0
    dropped_queue_full: int = 0
    undeliverable: int = 0
    matched: int = 0


class Router:
    """The group's subscription table and the delivery of published messages to their targets."""

    def __init__(
        self,
        subscriptions: Iterable[Subscription],
        function_arns: Iterable[str],
        work_queue: WorkQueue,
        *,
        shadow_service: ShadowPort | None = None,
        cloud: CloudPort | None = None,
        connectors: ConnectorRegistry | None = None,
        connector_arns: Iterable[str] = (),
    ):
        self.work_queue = work_queue
        self.shadow_service = shadow_service
        self.cloud = cloud
        self.connectors = connectors
        self._functions = frozenset(function_arns)
        self._connector_arns = frozenset(connector_arns)
        # Exact subjects are a dict lookup; only wildcard subjects are scanned per publish.
        self._exact: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
        self._wildcard: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
        for subscription in subscriptions:
            validate_filter(subscription.subject)
            if "+" in subscription.subject or "#" in subscription.subject:
                self._wildcard[subscription.source].append((subscription.subject, subscription.target))
            else:
                self._exact[(subscription.source, subscription.subject)].append(subscription.target)
        self._lock = threading.Lock()
        self.routed = 0
        self.dropped_unmatched = 0
        self.dropped_queue_full = 0
        self.undeliverable = 0
        self.per_target: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        for target in self.unroutable_targets():
            log.warning("Subscription target %s has no local implementation: its messages are undeliverable", target)

    def set_cloud(self, cloud: CloudPort | None) -> None:
        """Attach (or detach) the cloud link."""
        self.cloud = cloud

    def set_shadow_service(self, shadow_service: ShadowPort | None) -> None:
        """Attach the shadow service that `GGShadowService` targets reach."""
        self.shadow_service = shadow_service

    def targets(self, source: str, topic: str) -> list[str]:
        """Targets of every subscription matching `source` and `topic`, in table order, each once."""
        found = list(self._exact.get((source, topic), ()))
        for subject, target in self._wildcard.get(source, ()):
            if topic_matches(subject, topic):
                found.append(target)
        if len(found) > 1:
            found = list(dict.fromkeys(found))
        return found

    def unroutable_targets(self) -> list[str]:
        """Subscription targets that are neither functions, cloud, the shadow service nor known connectors."""
        every_target = {t for targets in self._exact.values() for t in targets}
        every_target |= {t for pairs in self._wildcard.values() for _, t in pairs}
        unknown = []
        for target in sorted(every_target):
            if target in self._functions or target in (CLOUD, SHADOW_SERVICE):
                continue
            if self.connectors is not None and self.connectors.has(target):
                continue
            unknown.append(target)
        return unknown

    def route(self, source: str, topic: str, payload: bytes, queue_full_policy: str = "") -> RouteOutcome:
        """Deliver one published message to every matching target.

        Raises RoutingError for a bad topic or policy, QueueFullError (AllOrError) when a function target
        cannot take the message, in which case nothing is delivered.
        """
        validate_topic(topic)
        if queue_full_policy not in QUEUE_FULL_POLICIES:
            raise RoutingError(f"Unknown queueFullPolicy {queue_full_policy!r}: use BestEffort or AllOrError")
        outcome = RouteOutcome()
        targets = self.targets(source, topic)
        outcome.matched = len(targets)
        if not targets:
            with self._lock:
                self.dropped_unmatched += 1
            log.debug("No subscription matches %s on %r: message dropped", source, topic)
            return outcome
        function_targets = [t for t in targets if t in self._functions]
        other_targets = [t for t in targets if t not in self._functions]
        if function_targets:
            context = routed_client_context(topic, source)
            items = [WorkItem(arn, payload, context, "Event", subject=topic) for arn in function_targets]
            if queue_full_policy == ALL_OR_ERROR:
                try:
                    self.work_queue.put_all(items)
                except QueueFullError:
                    with self._lock:
                        self.dropped_queue_full += len(items)
                        for arn in function_targets:
                            self.per_target[arn]["dropped_queue_full"] += 1
                    raise
                self._count_delivered(function_targets, outcome)
            else:
                for item in items:
                    try:
                        self.work_queue.put(item)
                    except QueueFullError:
                        outcome.dropped_queue_full += 1
                        with self._lock:
                            self.dropped_queue_full += 1
                            self.per_target[item.function_arn]["dropped_queue_full"] += 1
                        log.warning("Work queue full: message on %r for %s dropped", topic, item.function_arn)
                        continue
                    self._count_delivered([item.function_arn], outcome)
        for target in other_targets:
            self._deliver_other(target, source, topic, payload, outcome)
        return outcome

    def _count_delivered(self, targets: list[str], outcome: RouteOutcome) -> None:
        outcome.delivered += len(targets)
        with self._lock:
            self.routed += len(targets)
            for target in targets:
                self.per_target[target]["delivered"] += 1

    def _count_undeliverable(self, target: str, outcome: RouteOutcome, why: str) -> None:
        outcome.undeliverable += 1
        with self._lock:
            self.undeliverable += 1
            self.per_target[target]["undeliverable"] += 1
        log.debug("Message for %s undeliverable: %s", target, why)

    def _deliver_other(self, target: str, source: str, topic: str, payload: bytes, outcome: RouteOutcome) -> None:
        try:
            if target == CLOUD:
                if self.cloud is None:
                    self._count_undeliverable(target, outcome, "no cloud link")
                    return
                self.cloud.publish(topic, payload)
            elif target == SHADOW_SERVICE:
                if self.shadow_service is None:
                    self._count_undeliverable(target, outcome, "no shadow service")
                    return
                shadow_outcome = self.shadow_service.handle(topic, payload)
                self._count_delivered([target], outcome)
                self.publish_all(SHADOW_SERVICE, getattr(shadow_outcome, "publications", ()))
                return
            elif self.connectors is not None and self.connectors.has(target):
                self.connectors.deliver(target, topic, payload)
            else:
                self._count_undeliverable(target, outcome, "no local implementation")
                return
        except Exception as error:
            # A failing target must not fail the publish for the others (nor for the publisher).
            log.exception("Delivering a message on %r from %s to %s failed", topic, source, target)
            self._count_undeliverable(target, outcome, f"delivery failed: {error}")
            return
        self._count_delivered([target], outcome)

    def publish_all(self, source: str, publications: Iterable[tuple[str, bytes]]) -> None:
        """Route each (topic, payload) from `source` best-effort (the shadow service's outcome topics)."""
        for topic, payload in publications:
            self.route(source, topic, payload, BEST_EFFORT)

    def counters(self) -> dict[str, Any]:
        """A snapshot: routed, dropped_unmatched, dropped_queue_full, undeliverable, queued, per_target."""
        with self._lock:
            return {
                "routed": self.routed,
                "dropped_unmatched": self.dropped_unmatched,
                "dropped_queue_full": self.dropped_queue_full,
                "undeliverable": self.undeliverable,
                "queued": len(self.work_queue),
                "per_target": {target: dict(counts) for target, counts in self.per_target.items()},
            }
