"""The shared work queue, QueueFullPolicy, and targets other than functions: cloud, shadow, connectors."""

from __future__ import annotations

import json

import pytest
from support.recorders import RecordingCloud

from simcore.core.router import ALL_OR_ERROR, BEST_EFFORT, Router
from simcore.core.work_queue import WorkItem, WorkQueue
from simcore.errors import QueueFullError
from simcore.group import CLOUD, SHADOW_SERVICE, Subscription
from simcore.shadow.service import open_shadow_service

A = "arn:aws:lambda:us-east-1:123456789012:function:a:live"
B = "arn:aws:lambda:us-east-1:123456789012:function:b:live"
C = "arn:aws:lambda:us-east-1:123456789012:function:c:live"
CONNECTOR = "arn:aws:greengrass:us-east-1::/connectors/CloudWatchMetrics/versions/4"


class Connectors:
    def __init__(self):
        self.delivered = []

    def has(self, arn):
        return arn == CONNECTOR

    def deliver(self, arn, topic, payload):
        self.delivered.append((arn, topic, payload))


def make_router(routes, max_items=1024, **ports):
    subscriptions = [Subscription(f"s{i}", s, subject, t) for i, (s, subject, t) in enumerate(routes)]
    queue = WorkQueue(max_items)
    return Router(subscriptions, [A, B, C], queue, **ports), queue


def test_the_bound_is_shared_by_all_functions():
    router, queue = make_router([(A, "t", B), (A, "u", C)], max_items=3)
    router.route(A, "t", b"1")
    router.route(A, "t", b"2")
    router.route(A, "u", b"3")
    outcome = router.route(A, "u", b"4")
    assert outcome.dropped_queue_full == 1
    assert (queue.pending(B), queue.pending(C)) == (2, 1)


def test_best_effort_drops_only_the_full_target_and_counts_it():
    router, queue = make_router([(A, "t", B), (A, "t", CLOUD)], max_items=1, cloud=RecordingCloud())
    router.route(A, "t", b"first", BEST_EFFORT)
    outcome = router.route(A, "t", b"second", BEST_EFFORT)
    assert outcome.dropped_queue_full == 1
    assert outcome.delivered == 1  # the cloud still got it
    counters = router.counters()
    assert counters["dropped_queue_full"] == 1
    assert counters["per_target"][B] == {"delivered": 1, "dropped_queue_full": 1}
    assert counters["per_target"][CLOUD] == {"delivered": 2}
    assert [item.payload for item in queue.drain(B)] == [b"first"]


def test_default_policy_is_best_effort():
    router, _ = make_router([(A, "t", B)], max_items=1)
    router.route(A, "t", b"1")
    assert router.route(A, "t", b"2").dropped_queue_full == 1


def test_all_or_error_fails_the_whole_publish_and_delivers_nothing():
    cloud = RecordingCloud()
    router, queue = make_router([(A, "t", B), (A, "t", C), (A, "t", CLOUD)], max_items=3, cloud=cloud)
    router.route(A, "t", b"fills two", ALL_OR_ERROR)
    with pytest.raises(QueueFullError, match="work queue is full .*: 2 more cannot be queued") as refused:
        router.route(A, "t", b"needs two, one left", ALL_OR_ERROR)
    assert refused.value.http_status == 429
    assert (queue.pending(B), queue.pending(C)) == (1, 1)
    assert [payload for _, payload in cloud.messages] == [b"fills two"]
    assert router.counters()["dropped_queue_full"] == 2


def test_cloud_target_without_a_cloud_link_is_undeliverable():
    router, _ = make_router([(A, "up", CLOUD)])
    outcome = router.route(A, "up", b"x")
    assert outcome.undeliverable == 1
    assert router.counters()["per_target"][CLOUD] == {"undeliverable": 1}
    cloud = RecordingCloud()
    router.set_cloud(cloud)
    router.route(A, "up", b"y")
    assert cloud.messages == [("up", b"y")]


def test_known_connector_gets_the_message_and_unknown_one_is_named_and_counted():
    unknown = "arn:aws:greengrass:us-east-1::/connectors/Nope/versions/1"
    connectors = Connectors()
    router, _ = make_router([(A, "m", CONNECTOR), (A, "m", unknown)], connectors=connectors)
    assert router.unroutable_targets() == [unknown]
    outcome = router.route(A, "m", b"metric")
    assert connectors.delivered == [(CONNECTOR, "m", b"metric")]
    assert outcome.undeliverable == 1
    assert router.counters()["per_target"][unknown] == {"undeliverable": 1}


def test_shadow_target_updates_the_shadow_and_routes_its_outcome_topics():
    cloud = RecordingCloud()
    shadow = open_shadow_service()
    router, queue = make_router(
        [
            (CLOUD, "$aws/things/t1/shadow/update", SHADOW_SERVICE),
            (SHADOW_SERVICE, "$aws/things/t1/shadow/update/accepted", CLOUD),
            (SHADOW_SERVICE, "$aws/things/t1/shadow/update/documents", A),
        ],
        cloud=cloud,
        shadow_service=shadow,
    )
    router.route(CLOUD, "$aws/things/t1/shadow/update", json.dumps({"state": {"desired": {"on": True}}}).encode())
    assert [topic for topic, _ in cloud.messages] == ["$aws/things/t1/shadow/update/accepted"]
    documents = queue.take(A, timeout=0)
    assert json.loads(documents.payload)["current"]["state"]["desired"] == {"on": True}
    # delta has no subscription: counted as not routed, and not as a drop (nothing was meant to receive it).
    assert router.counters()["unrouted_no_subscription"] == 1
    assert router.counters()["dropped_unmatched"] == 0


def test_an_item_put_back_goes_first_and_may_exceed_the_bound():
    queue = WorkQueue(1)
    queue.put(WorkItem(A, b"queued", ""))
    held = WorkItem(A, b"held by a dead worker", "")
    queue.put_back(held)
    assert len(queue) == 2
    assert queue.take(A, timeout=0) is held


def test_cancelled_items_are_skipped():
    queue = WorkQueue()
    stale = WorkItem(A, b"stale", "")
    queue.put(stale)
    queue.put(WorkItem(A, b"live", ""))
    stale.cancelled = True
    assert queue.take(A, timeout=0).payload == b"live"
    assert queue.take(A, timeout=0) is None


def test_a_bound_below_one_is_refused():
    with pytest.raises(ValueError, match="maxWorkItemCount"):
        WorkQueue(0)


def test_a_failing_target_is_counted_undeliverable_and_the_others_still_get_the_message():
    class BrokenCloud:
        def publish(self, topic, payload):
            raise ConnectionError("link down")

    router, queue = make_router([(A, "t", CLOUD), (A, "t", B)], cloud=BrokenCloud())
    outcome = router.route(A, "t", b"x")
    assert (outcome.delivered, outcome.undeliverable) == (1, 1)
    assert queue.pending(B) == 1
    assert router.counters()["per_target"][CLOUD] == {"undeliverable": 1}
