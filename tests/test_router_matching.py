"""Subscription matching: MQTT filters, sources, validation of published topics and filters."""

from __future__ import annotations

import base64
import json

import pytest

from simcore.core.router import Router
from simcore.core.work_queue import WorkQueue, routed_client_context
from simcore.errors import RoutingError
from simcore.group import CLOUD, SHADOW_SERVICE, Subscription
from simcore.topics import topic_matches, validate_filter, validate_topic

A = "arn:aws:lambda:us-east-1:123456789012:function:a:live"
B = "arn:aws:lambda:us-east-1:123456789012:function:b:live"


@pytest.mark.parametrize(
    ("subject", "topic", "matches"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/b/c", False),
        ("a/b", "a", False),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/+", "a/", True),
        ("+/b", "x/b", True),
        ("+", "a", True),
        ("+", "a/b", False),
        ("a/#", "a", True),
        ("a/#", "a/b/c/d", True),
        ("a/#", "ab", False),
        ("#", "anything/at/all", True),
        ("a/+/c/#", "a/b/c", True),
        ("a/+/c/#", "a/b/d/e", False),
        ("$aws/things/t/shadow/update/+", "$aws/things/t/shadow/update/delta", True),
        ("A/b", "a/b", False),
    ],
)
def test_topic_filter_matching_table(subject, topic, matches):
    assert topic_matches(subject, topic) is matches


@pytest.mark.parametrize("subject", ["a/#/b", "a#", "a/b+", "", "#/x"])
def test_malformed_subscription_subjects_are_refused(subject):
    with pytest.raises(RoutingError, match="[Ss]ubscription subject"):
        validate_filter(subject)


@pytest.mark.parametrize("topic", ["a/+", "a/#", "+", "", "x" * 257, "a\x00b"])
def test_topics_that_cannot_be_published_on_are_refused(topic):
    with pytest.raises(RoutingError, match="topic") as refused:
        validate_topic(topic)
    assert refused.value.http_status == 400


def make_router(routes, **ports):
    subscriptions = [
        Subscription(f"s{i}", source, subject, target) for i, (source, subject, target) in enumerate(routes)
    ]
    queue = WorkQueue(ports.pop("max_items", 1024))
    return Router(subscriptions, [A, B], queue, **ports), queue


def test_only_subscriptions_of_the_publishing_source_match():
    router, _ = make_router([(A, "t/#", B), (CLOUD, "t/x", B), (B, "t/x", A)])
    assert router.targets(A, "t/x") == [B]
    assert router.targets(CLOUD, "t/x") == [B]
    assert router.targets(B, "t/x") == [A]
    assert router.targets("arn:aws:iot:us-east-1:123456789012:thing/dev", "t/x") == []


def test_a_target_matched_twice_gets_the_message_once():
    router, queue = make_router([(A, "t/x", B), (A, "t/+", B), (A, "#", B)])
    router.route(A, "t/x", b"{}")
    assert queue.pending(B) == 1


def test_delivery_to_a_function_is_an_event_work_item_with_subject_and_source():
    router, queue = make_router([(CLOUD, "cmd/+", A)])
    router.route(CLOUD, "cmd/go", b'{"n": 1}')
    item = queue.take(A, timeout=0)
    assert item.invocation_type == "Event"
    assert item.payload == b'{"n": 1}'
    assert item.result is None
    context = json.loads(base64.b64decode(item.client_context))
    assert context == {"custom": {"subject": "cmd/go", "source": "cloud"}}
    assert item.client_context == routed_client_context("cmd/go", CLOUD)


def test_unmatched_publish_is_dropped_and_counted():
    router, queue = make_router([(A, "t/x", B)])
    outcome = router.route(A, "t/y", b"")
    assert outcome.matched == 0
    assert len(queue) == 0
    assert router.counters()["dropped_unmatched"] == 1
    assert router.counters()["routed"] == 0


def test_wildcard_in_a_published_topic_is_refused_and_nothing_is_routed():
    router, queue = make_router([(A, "#", B)])
    with pytest.raises(RoutingError, match="wildcard"):
        router.route(A, "t/+", b"")
    assert len(queue) == 0


def test_unknown_queue_full_policy_is_refused():
    router, _ = make_router([(A, "#", B)])
    with pytest.raises(RoutingError, match="queueFullPolicy"):
        router.route(A, "t", b"", "Sometimes")


def test_an_unsubscribed_shadow_outcome_is_counted_unrouted_and_only_other_sources_count_as_dropped():
    router, queue = make_router([(A, "t/x", B)])
    router.route(SHADOW_SERVICE, "$aws/things/t1/shadow/update/accepted", b"{}")
    router.route(A, "$aws/things/t1/shadow/update/accepted", b"{}")
    counters = router.counters()
    assert (counters["unrouted_no_subscription"], counters["dropped_unmatched"]) == (1, 1)
    assert len(queue) == 0
