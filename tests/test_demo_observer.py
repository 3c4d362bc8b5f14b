"""The demo's cloud-side observer, against the real stand-in cloud (mosquitto with mutual TLS)."""

from __future__ import annotations

import json
import threading

import pytest
from support.cloud import FAST_BACKOFF
from support.waiting import wait_until

from simcore.cloud.link import CloudLink
from simcore.cloud.standin import cloud_shadow_update
from simcore.demo.observer import CloudObserver
from simcore.demo.state import DemoState
from simcore.shadow.engine import ShadowEngine
from simcore.shadow.service import ShadowService

THING = "RainEdgeCore"


@pytest.fixture()
def cloud_thing() -> str:
    """The demo's core thing, for the shared `cloud` fixture's stand-in."""
    return THING


@pytest.fixture()
def observed(cloud):
    state = DemoState(THING, total_records=3)
    observer = CloudObserver(cloud.client_settings("demo-observer", **FAST_BACKOFF), state)
    observer.start()
    yield state, observer
    observer.stop()


def _publisher(cloud, name: str = "test-publisher") -> CloudLink:
    link = CloudLink(cloud.client_settings(name, **FAST_BACKOFF))
    link.start()
    assert link.wait_connected(10)
    return link


def test_predictions_and_metrics_published_in_the_cloud_reach_the_state(cloud, observed) -> None:
    state, _observer = observed
    shadows = ShadowService(ShadowEngine())
    shadows.listeners.append(state.on_local_shadow)
    shadows.handle(f"$aws/things/{THING}/shadow/update", json.dumps({"state": {"reported": {
        "seq": 1, "ts": 1383264000, "temperature": 3.0, "humidity": 70.0, "pressure": 1020.0,
        "pressure_tendency_3h": 0.2, "observed_rain": True}}}).encode())
    publisher = _publisher(cloud)
    try:
        publisher.publish(state.topics.output, json.dumps({
            "thing": THING, "ts": 1383264000, "seq": 1, "p_rain": 0.8, "raining": True, "threshold": 0.5,
            "observed_rain": True}).encode())
        publisher.publish(state.topics.metrics, json.dumps({"count": 1, "errors": 0}).encode())
        wait_until(lambda: state.progress()["predictions_received"] == 1 and state.latest_metrics(),
                   message="the prediction and the metrics in the demo state")
    finally:
        publisher.stop()
    assert state.predictions[1].p_rain == 0.8
    assert state.latest_metrics()["count"] == 1


def test_cloud_shadow_version_follows_cloud_updates(cloud, observed) -> None:
    state, _observer = observed
    cloud_shadow_update(cloud.config_path, THING, {"state": {"reported": {"seq": 5}}})
    cloud_shadow_update(cloud.config_path, THING, {"state": {"reported": {"seq": 6}}})
    wait_until(lambda: state.cloud_version == 2, message=lambda: f"cloud shadow version 2 (at {state.cloud_version})")
    assert state.cloud_reported_seq == 6


def test_command_is_sent_to_the_command_topic_and_its_answer_returned(cloud, observed) -> None:
    state, observer = observed
    responder = _publisher(cloud, "test-responder")
    subscribed = threading.Event()

    def answer(_topic: str, payload: bytes) -> None:
        request = json.loads(payload)
        if request.get("command") == "probe":
            subscribed.set()
            return
        responder.publish(state.topics.command_output, json.dumps(
            {"id": request["id"], "ok": True, "result": {"asked": request["command"]}}).encode())

    responder.subscribe(state.topics.command_input, answer)
    try:
        # The responder's subscription is in force once it hears its own probe.
        wait_until(lambda: responder.send_now(state.topics.command_input, b'{"command": "probe"}')
                   and subscribed.wait(0.5), message="the responder to hear its own probe")
        result = observer.command("get-metrics", timeout_s=10)
    finally:
        responder.stop()
    assert result == {"id": result["id"], "ok": True, "result": {"asked": "get-metrics"}}
    assert result["id"].startswith("demo-")


def test_observer_names_an_unreachable_broker(cloud, tmp_path) -> None:
    state = DemoState(THING, total_records=1)
    settings = cloud.client_settings("demo-observer-2", **FAST_BACKOFF)
    cloud.stop()
    observer = CloudObserver(settings, state)
    with pytest.raises(RuntimeError, match="cannot reach the stand-in broker"):
        observer.start(timeout_s=1.0)
