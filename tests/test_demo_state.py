"""The demo's state: readings from the local shadow service, predictions and metrics from the cloud side."""

from __future__ import annotations

import json

from simcore.demo.state import FINISHED_STATUS, DemoState
from simcore.shadow.engine import ShadowEngine
from simcore.shadow.service import ShadowService

THING = "RainEdgeCore"


def _service(state: DemoState) -> ShadowService:
    service = ShadowService(ShadowEngine())
    service.listeners.append(state.on_local_shadow)
    return service


def _report(service: ShadowService, reported: dict, thing: str = THING) -> None:
    outcome = service.handle(f"$aws/things/{thing}/shadow/update",
                             json.dumps({"state": {"reported": reported}}).encode())
    assert b'"code"' not in outcome.response, outcome.response


def _reading(seq: int, observed_rain: bool = False) -> dict:
    return {"temperature": 10.0 + seq, "humidity": 80.0, "pressure": 1012.5, "pressure_tendency_3h": -0.4,
            "ts": 1383264000 + 3600 * seq, "seq": seq, "observed_rain": observed_rain,
            "sensor": {"status": "ok", "invalid_readings": 0}}


def _prediction(seq: int, p_rain: float, observed_rain: bool | None, threshold: float = 0.4) -> bytes:
    message = {"thing": THING, "ts": 1383264000 + 3600 * seq, "seq": seq, "p_rain": p_rain,
               "raining": p_rain >= threshold, "threshold": threshold, "model_version": "1.0.0+abc",
               "latency_us": 250}
    if observed_rain is not None:
        message["observed_rain"] = observed_rain
    return json.dumps(message).encode()


def test_each_accepted_shadow_update_with_a_new_seq_is_one_reading() -> None:
    state = DemoState(THING, total_records=10)
    service = _service(state)
    _report(service, _reading(1))
    _report(service, {"rain": {"p": 0.2, "raining": False, "seq": 1}})  # the inference write-back: no reading
    _report(service, _reading(2))
    _report(service, _reading(9), thing="OtherThing")
    assert [reading.seq for reading in state.readings] == [1, 2]
    assert state.readings[1].temperature == 12.0
    assert state.local_version == 3
    assert state.progress()["readings_written"] == 2


def test_predictions_are_matched_to_readings_and_duplicates_ignored() -> None:
    state = DemoState(THING, total_records=10)
    service = _service(state)
    for seq in (1, 2, 3):
        _report(service, _reading(seq, observed_rain=seq == 2))
    state.on_cloud_message(state.topics.output, _prediction(1, 0.1, False))
    state.on_cloud_message(state.topics.output, _prediction(2, 0.7, True))
    state.on_cloud_message(state.topics.output, _prediction(2, 0.7, True))  # an at-least-once repeat
    state.on_cloud_message(state.topics.output, _prediction(77, 0.7, True))  # spooled by an earlier run
    state.on_cloud_message(state.topics.output, b"not json")
    progress = state.progress()
    assert progress["predictions_received"] == 2
    assert progress["duplicate_predictions"] == 1
    assert progress["earlier_run_predictions"] == 1
    assert state.bad_messages == 1
    assert state.missing_predictions() == [3]
    counts = state.running_confusion()
    assert (counts.tp, counts.fp, counts.tn, counts.fn) == (1, 0, 1, 0)


def test_sensor_status_says_when_the_replay_finished_and_counts_invalid_records() -> None:
    state = DemoState(THING, total_records=5)
    service = _service(state)
    _report(service, _reading(1))
    assert not state.replay_finished
    _report(service, {"sensor": {"status": FINISHED_STATUS, "invalid_readings": 2}})
    progress = state.progress()
    assert state.replay_finished
    assert progress["records_done"] == 3
    assert progress["invalid_readings"] == 2


def test_cloud_shadow_documents_give_the_cloud_version_and_metrics_are_kept() -> None:
    state = DemoState(THING, total_records=5)
    documents = {"previous": None, "current": {"state": {"reported": {"seq": 4}}, "version": 17}, "timestamp": 1}
    state.on_cloud_message(state.topics.shadow_documents, json.dumps(documents).encode())
    state.on_cloud_message(state.topics.metrics, json.dumps({"count": 3, "errors": 0}).encode())
    snapshot = state.snapshot()
    assert snapshot["shadow"]["cloud_version"] == 17
    assert snapshot["shadow"]["cloud_reported_seq"] == 4
    assert [message["count"] for message in snapshot["metrics"]] == [3]
    assert state.latest_metrics()["count"] == 3


def test_snapshot_lists_only_items_from_the_given_indexes() -> None:
    state = DemoState(THING, total_records=10)
    service = _service(state)
    for seq in (1, 2, 3):
        _report(service, _reading(seq))
        state.on_cloud_message(state.topics.output, _prediction(seq, 0.1 * seq, False))
    snapshot = state.snapshot(readings_from=2, predictions_from=1)
    assert [reading["seq"] for reading in snapshot["readings"]] == [3]
    assert [prediction["seq"] for prediction in snapshot["predictions"]] == [2, 3]
    assert (snapshot["readings_next"], snapshot["predictions_next"]) == (3, 3)
    assert snapshot["latest_reading"]["seq"] == 3
    assert state.latest()["readings"] == []


def test_command_answers_are_waited_for_by_id() -> None:
    state = DemoState(THING, total_records=1)
    assert state.wait_for_answer("demo-1", 0.05) is None
    state.on_cloud_message(state.topics.command_output, json.dumps({"id": "demo-1", "ok": True,
                                                                     "result": {"count": 5}}).encode())
    assert state.wait_for_answer("demo-1", 0.05)["result"] == {"count": 5}


def test_core_counters_are_summarised_for_the_views() -> None:
    state = DemoState(THING, total_records=1)
    state.set_core_status({"router": {"routed": 40, "dropped_unmatched": 2, "dropped_queue_full": 1,
                                      "unrouted_no_subscription": 50},
                           "cloud": {"state": "connected", "spooled": 3}, "shadow_sync": {"syncs": 9, "failures": 0}})
    core = state.latest()["core"]
    assert (core["routed"], core["dropped"], core["spooled"], core["cloud_state"]) == (40, 3, 3, "connected")
    # Shadow outcome topics nobody subscribed to are not losses: apart, and not in `dropped`.
    assert core["unrouted_no_subscription"] == 50
