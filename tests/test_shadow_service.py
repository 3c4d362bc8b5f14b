"""ShadowService (GGShadowService): topics in, invoke result and AWS's publications out, listeners."""

from __future__ import annotations

import json

import pytest

from simcore.shadow.engine import ShadowEngine
from simcore.shadow.service import (
    ShadowService,
    ShadowTopicError,
    handle_and_publish,
    open_shadow_service,
    parse_shadow_topic,
)

PREFIX = "$aws/things/rain-core/shadow"


@pytest.fixture
def service() -> ShadowService:
    with ShadowEngine(clock=lambda: 1_600_000_000.0) as engine:
        yield ShadowService(engine)


def published(outcome) -> dict[str, dict]:
    return {topic: json.loads(payload) for topic, payload in outcome.publications}


def test_update_publishes_accepted_documents_and_delta_in_that_order(service):
    request = b'{"state": {"desired": {"interval": 60}}, "clientToken": "c1"}'
    outcome = service.handle(f"{PREFIX}/update", request)
    topics = [topic for topic, _ in outcome.publications]
    assert topics == [f"{PREFIX}/update/accepted", f"{PREFIX}/update/documents", f"{PREFIX}/update/delta"]
    documents = published(outcome)
    assert json.loads(outcome.response) == documents[f"{PREFIX}/update/accepted"]
    assert documents[f"{PREFIX}/update/delta"]["state"] == {"interval": 60}
    assert documents[f"{PREFIX}/update/documents"]["current"]["state"] == {"desired": {"interval": 60}}
    assert all(document["clientToken"] == "c1" for document in documents.values())


def test_update_without_delta_publishes_no_delta(service):
    outcome = service.handle(f"{PREFIX}/update", b'{"state": {"reported": {"t": 20.1}}}')
    assert [topic for topic, _ in outcome.publications] == [
        f"{PREFIX}/update/accepted",
        f"{PREFIX}/update/documents",
    ]


def test_a_repeated_report_beside_a_pending_desired_value_publishes_no_delta(service):
    service.handle(f"{PREFIX}/update", b'{"state": {"desired": {"interval": 0.001}}}')
    first = service.handle(f"{PREFIX}/update", b'{"state": {"reported": {"interval": 60}}}')
    again = service.handle(f"{PREFIX}/update", b'{"state": {"reported": {"interval": 60}}}')
    assert f"{PREFIX}/update/delta" in published(first)
    assert [topic for topic, _ in again.publications] == [f"{PREFIX}/update/accepted", f"{PREFIX}/update/documents"]


def test_refused_update_is_answered_and_published_on_rejected(service):
    outcome = service.handle(f"{PREFIX}/update", b'{"state": "on", "clientToken": "c2"}')
    body = {
        "code": 400,
        "message": "State node must be an object",
        "timestamp": 1_600_000_000,
        "clientToken": "c2",
    }
    assert json.loads(outcome.response) == body
    assert published(outcome) == {f"{PREFIX}/update/rejected": body}


def test_get_answers_the_document_and_publishes_get_accepted(service):
    service.handle(f"{PREFIX}/update", b'{"state": {"reported": {"t": 1}}}')
    outcome = service.handle(f"{PREFIX}/get", b"")
    document = json.loads(outcome.response)
    assert document["state"] == {"reported": {"t": 1}}
    assert published(outcome) == {f"{PREFIX}/get/accepted": document}


def test_get_of_a_missing_shadow_publishes_get_rejected_404(service):
    outcome = service.handle(f"{PREFIX}/get", b'{"clientToken": "g"}')
    body = json.loads(outcome.response)
    assert body == {
        "code": 404,
        "message": "No shadow exists with name: rain-core",
        "timestamp": 1_600_000_000,
        "clientToken": "g",
    }
    assert published(outcome) == {f"{PREFIX}/get/rejected": body}


def test_delete_publishes_delete_accepted_then_rejected_when_gone(service):
    service.handle(f"{PREFIX}/update", b'{"state": {"reported": {"t": 1}}}')
    first = service.handle(f"{PREFIX}/delete", b"")
    assert published(first) == {f"{PREFIX}/delete/accepted": {"version": 1, "timestamp": 1_600_000_000}}
    second = service.handle(f"{PREFIX}/delete", b"")
    assert json.loads(second.response)["code"] == 404
    assert [topic for topic, _ in second.publications] == [f"{PREFIX}/delete/rejected"]


def test_listeners_see_each_accepted_update_and_delete_but_no_refusal(service):
    seen = []
    service.listeners.append(
        lambda thing, result: seen.append((thing, result.operation, result.accepted["version"]))
    )
    service.handle(f"{PREFIX}/update", b'{"state": {"reported": {"t": 1}}}')
    service.handle(f"{PREFIX}/update", b'{"state": {"reported": {"t": 2}}, "version": 7}')
    service.handle(f"{PREFIX}/get", b"")
    service.handle(f"{PREFIX}/delete", b"")
    assert seen == [("rain-core", "update", 1), ("rain-core", "delete", 1)]


def test_a_failing_listener_neither_loses_the_update_nor_stops_the_others(service, caplog):
    calls = []

    def broken(thing, result):
        raise RuntimeError("sync is down")

    service.listeners.extend([broken, lambda thing, result: calls.append(thing)])
    outcome = service.handle(f"{PREFIX}/update", b'{"state": {"reported": {"t": 1}}}')
    assert json.loads(outcome.response)["version"] == 1
    assert calls == ["rain-core"]
    assert "sync is down" in caplog.text
    assert service.engine.version("rain-core") == 1


@pytest.mark.parametrize(
    "topic, fragment",
    [
        ("$aws/things/rain-core/shadow/name/config/update", "Named shadows are not supported"),
        ("$aws/things/rain-core/shadow/upsert", "Not a shadow request topic"),
        ("$aws/things/rain-core/shadow/update/accepted", "Not a shadow request topic"),
        ("rain/rain-core/inference/output", "Not a shadow request topic"),
        ("$aws/things/bad thing/shadow/get", "Invalid thing name"),
    ],
)
def test_malformed_topic_is_a_400_with_no_publication(service, topic, fragment):
    outcome = service.handle(topic, b'{"state": {"reported": {"t": 1}}}')
    body = json.loads(outcome.response)
    assert body["code"] == 400
    assert fragment in body["message"]
    assert outcome.publications == []
    assert service.engine.things() == []


def test_parse_shadow_topic_reads_thing_and_operation():
    parsed = parse_shadow_topic("$aws/things/core:1_a-b/shadow/delete")
    assert (parsed.thing, parsed.operation) == ("core:1_a-b", "delete")
    assert parsed.reply_topic("accepted") == "$aws/things/core:1_a-b/shadow/delete/accepted"
    with pytest.raises(ShadowTopicError, match="Not a shadow request topic"):
        parse_shadow_topic("$aws/things//shadow/get")


def test_handle_and_publish_publishes_the_outcome_topics_in_order_and_returns_the_response(service):
    sent: list[str] = []
    response = handle_and_publish(service, f"{PREFIX}/update", b'{"state": {"desired": {"on": true}}}',
                                  lambda topic, _payload: sent.append(topic))
    assert sent == [f"{PREFIX}/update/accepted", f"{PREFIX}/update/documents", f"{PREFIX}/update/delta"]
    assert json.loads(response)["state"] == {"desired": {"on": True}}


def test_open_shadow_service_keeps_shadows_in_the_sqlite_file_it_names(tmp_path):
    database = tmp_path / "var" / "shadows.sqlite"
    first = open_shadow_service(database)
    first.handle(f"{PREFIX}/update", b'{"state": {"reported": {"t": 20}}}')
    first.engine.close()
    reopened = open_shadow_service(database)
    assert reopened.engine.get("rain-core")["state"]["reported"] == {"t": 20}
    reopened.engine.close()
