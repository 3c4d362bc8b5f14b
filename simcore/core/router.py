"""Greengrass v1 message routing: the subscription table, topic matching and the bounded work queue.

A message moves only where a subscription matches its source and topic: to a function (a work item on the
work queue), to `cloud` (the cloud port), to `GGShadowService` (the shadow service), to a connector or to a
device (the device server, which sends it when the device is connected and subscribed to a matching filter;
otherwise it is counted undeliverable: local traffic is QoS 0, nothing waits for a device).
Work items are bounded in items (`runtime.maxWorkItemCount`, 1024 by default) and bytes, each function with
its own share (simcore.core.work_queue). With `BestEffort` a target whose share is full loses the message
(counted); with `AllOrError` the whole publish fails when any function target is full, and nothing is
delivered.

A publish no subscription matches is counted in one of two ways. The shadow service's own outcome topics
(`.../update/accepted`, `.../delta`, `.../documents` ... published for every request, whether anyone listens,
as AWS IoT publishes them) are `unrouted_no_subscription`: nothing was meant to receive them, nothing is lost.
Any other source's (a Lambda's, the cloud's, a connector's) is `dropped_unmatched`: a message someone sent
that reached no one.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from simcore.core.work_queue import WorkItem, WorkQueue, routed_client_context
from simcore.errors import QueueFullError, RoutingError
from simcore.group import CLOUD, SHADOW_SERVICE, Subscription
from simcore.shadow.service import ShadowHandler, handle_and_publish
from simcore.topics import topic_matches, validate_filter, validate_topic

log = logging.getLogger(__name__)

BEST_EFFORT = "BestEffort"
ALL_OR_ERROR = "AllOrError"
QUEUE_FULL_POLICIES = ("", BEST_EFFORT, ALL_OR_ERROR)


class CloudPort(Protocol):
    """What the router needs from the cloud link."""

    def publish(self, topic: str, payload: bytes) -> None: ...


class DevicePort(Protocol):
    """What the router needs from the core's device server (simcore.devices.server)."""

    def has(self, thing_arn: str) -> bool: ...

    def deliver(self, thing_arn: str, topic: str, payload: bytes) -> bool: ...


class ConnectorRegistry(Protocol):
    """Local connector implementations, keyed by connector ARN."""

    def has(self, connector_arn: str) -> bool: ...

    def deliver(self, connector_arn: str, topic: str, payload: bytes) -> None: ...


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
        shadow_service: ShadowHandler | None = None,
        cloud: CloudPort | None = None,
        connectors: ConnectorRegistry | None = None,
        connector_arns: Iterable[str] = (),
        device_arns: Iterable[str] = (),
        devices: DevicePort | None = None,
    ):
        self.work_queue = work_queue
        self.shadow_service = shadow_service
        self.cloud = cloud
        self.connectors = connectors
        self._functions = frozenset(function_arns)
        self._connector_arns = frozenset(connector_arns)
        self._device_arns = frozenset(device_arns)
        self.devices = devices
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
        self.unrouted_no_subscription = 0
        self.dropped_queue_full = 0
        self.undeliverable = 0
        self.per_target: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        for target in self.unroutable_targets():
            log.warning("Subscription target %s has no local implementation: its messages are undeliverable", target)

    def set_cloud(self, cloud: CloudPort | None) -> None:
        """Attach (or detach) the cloud link."""
        self.cloud = cloud

    def set_devices(self, devices: DevicePort | None) -> None:
        """Attach (or detach) the device server: messages to a device's thing ARN go to its `deliver`."""
        self.devices = devices

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
            if target in self._functions or target in (CLOUD, SHADOW_SERVICE) or target in self._device_arns:
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
                if source == SHADOW_SERVICE:
                    self.unrouted_no_subscription += 1
                else:
                    self.dropped_unmatched += 1
            log.debug("No subscription matches %s on %r: message not routed", source, topic)
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
                handle_and_publish(self.shadow_service, topic, payload, self.publish_shadow_outcome)
            elif self.connectors is not None and self.connectors.has(target):
                self.connectors.deliver(target, topic, payload)
            elif target in self._device_arns:
                if self.devices is None:
                    self._count_undeliverable(target, outcome, "no device server")
                    return
                if not self.devices.deliver(target, topic, payload):
                    self._count_undeliverable(target, outcome, "the device is not connected or not subscribed")
                    return
            else:
                self._count_undeliverable(target, outcome, "no local implementation")
                return
        except Exception as error:
            # A failing target must not fail the publish for the others (nor for the publisher).
            log.exception("Delivering a message on %r from %s to %s failed", topic, source, target)
            self._count_undeliverable(target, outcome, f"delivery failed: {error}")
            return
        self._count_delivered([target], outcome)

    def publish_shadow_outcome(self, topic: str, payload: bytes) -> None:
        """Route one of the shadow service's outcome topics from `GGShadowService`, best-effort."""
        self.route(SHADOW_SERVICE, topic, payload, BEST_EFFORT)

    def counters(self) -> dict[str, Any]:
        """A snapshot: routed, dropped_unmatched, unrouted_no_subscription, dropped_queue_full, undeliverable,
        queued, per_target."""
        with self._lock:
            return {
                "routed": self.routed,
                "dropped_unmatched": self.dropped_unmatched,
                "unrouted_no_subscription": self.unrouted_no_subscription,
                "dropped_queue_full": self.dropped_queue_full,
                "undeliverable": self.undeliverable,
                "queued": len(self.work_queue),
                "per_target": {target: dict(counts) for target, counts in self.per_target.items()},
            }
