"""The inference Lambda's logic with the real built model: predictions, write-back, scoring, commands, metrics.

The model is the built ML resource (resources/rain_model/dist/rain-model.tar.gz), extracted as a core
would extract it at DestinationPath (conftest's `model_dir`). The SDK calls are injected functions that
record what would be sent.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import threading

import pytest
from rain_inference.app import InferenceApp
from rain_inference.predictor import Predictor
from rain_inference.settings import load_settings

DOCUMENTS = "$aws/things/rain-thing/shadow/update/documents"
OUTPUT = "rain/rain-thing/inference/output"
COMMANDS = "rain/rain-thing/command/input"
FEEDBACK_ARN = "arn:aws:lambda:us-east-1:aws:function:MLFeedback"

DRY = {"temperature": 25.0, "humidity": 35.0, "pressure": 1025.0, "pressure_tendency_3h": 1.5}
WET = {"temperature": 8.0, "humidity": 97.0, "pressure": 995.0, "pressure_tendency_3h": -4.0}


class Recorder:
    def __init__(self):
        self.published = []
        self.shadow_updates = []
        self.invocations = []
        self.fail_publish = False
        self.fail_shadow = False
        self.invoke_answer = {"Payload": b'{"id": "r-1", "queued": true}', "FunctionError": ""}
        self.changed = threading.Condition()

    def publish(self, topic, payload):
        if self.fail_publish:
            raise Exception("Failed to invoke function due to [Errno 111] Connection refused")
        with self.changed:
            self.published.append((topic, json.loads(payload)))
            self.changed.notify_all()

    def update_shadow(self, thing_name, payload):
        if self.fail_shadow:
            raise Exception('Request for shadow state returned error code 413 with message "too big"')
        self.shadow_updates.append((thing_name, json.loads(payload)))

    def invoke(self, function_arn, client_context, payload):
        """greengrasssdk Lambda.invoke's part: record the call, answer (or raise) as told."""
        self.invocations.append((function_arn, json.loads(base64.b64decode(client_context)), json.loads(payload)))
        if isinstance(self.invoke_answer, Exception):
            raise self.invoke_answer
        return self.invoke_answer

    def on(self, topic):
        return [message for published_topic, message in self.published if published_topic == topic]


def make_app(model_dir, **environ):
    recorder = Recorder()
    settings = load_settings(dict({"THING_NAME": "rain-thing", "MODEL_DIR": str(model_dir),
                                   "FEEDBACK_CONNECTOR_ARN": FEEDBACK_ARN}, **environ))
    app = InferenceApp(settings, recorder.publish, recorder.update_shadow, invoke=recorder.invoke)
    assert app.predictor.load()
    return app, recorder


def documents(previous, current):
    def document(reported):
        return None if reported is None else {"state": {"reported": reported}, "version": 1}
    return {"previous": document(previous), "current": document(current), "timestamp": 1}


def reading(values, seq, ts=1357020000, **extra):
    return dict(values, seq=seq, ts=ts, **extra)


def test_a_new_reading_is_predicted_published_and_written_back(model_dir):
    app, recorder = make_app(model_dir)
    answer = app.handle(documents(None, reading(WET, 1)), DOCUMENTS)
    (output,) = recorder.on(OUTPUT)
    assert answer == {"ok": True, "prediction": output}
    model = app.predictor.model
    assert set(output) == {"thing", "ts", "seq", "p_rain", "raining", "threshold", "model_version", "latency_us"}
    assert (output["thing"], output["ts"], output["seq"]) == ("rain-thing", 1357020000, 1)
    assert 0.0 <= output["p_rain"] <= 1.0
    assert output["raining"] == (output["p_rain"] >= model.threshold)
    assert output["threshold"] == model.threshold and output["model_version"] == model.version
    assert isinstance(output["latency_us"], int) and output["latency_us"] >= 0
    assert recorder.shadow_updates == [("rain-thing", {"state": {"reported": {"rain": {
        "p": output["p_rain"], "raining": output["raining"], "seq": 1}}}})]


def test_wet_weather_is_likelier_rain_than_dry_weather(model_dir):
    app, recorder = make_app(model_dir)
    app.handle(documents(None, reading(DRY, 1)), DOCUMENTS)
    app.handle(documents(reading(DRY, 1), reading(WET, 2)), DOCUMENTS)
    dry, wet = recorder.on(OUTPUT)
    assert wet["p_rain"] > dry["p_rain"]


def test_the_own_write_back_and_a_redelivered_document_do_not_predict_again(model_dir):
    app, recorder = make_app(model_dir)
    first = reading(WET, 1)
    app.handle(documents(None, first), DOCUMENTS)
    rain = recorder.shadow_updates[0][1]["state"]["reported"]["rain"]
    assert app.handle(documents(first, dict(first, rain=rain)), DOCUMENTS)["skipped"]
    assert app.handle(documents(None, first), DOCUMENTS)["skipped"] == "reading already predicted"
    assert len(recorder.on(OUTPUT)) == 1 and len(recorder.shadow_updates) == 1
    counters = app.metrics.snapshot()["counters"]
    assert counters["skipped.unchanged"] == 1 and counters["skipped.duplicate"] == 1


def test_observed_rain_is_echoed_and_scored(model_dir):
    app, recorder = make_app(model_dir)
    app.handle(documents(None, reading(WET, 1, observed_rain=True)), DOCUMENTS)
    app.handle(documents(reading(WET, 1), reading(DRY, 2, observed_rain=False)), DOCUMENTS)
    outputs = recorder.on(OUTPUT)
    assert [o["observed_rain"] for o in outputs] == [True, False]
    scored = app.metrics.snapshot()["scored"]
    assert scored["count"] == 2
    assert scored["roc_auc"] == 1.0  # the wet hour scored above the dry one


def test_pause_stops_predictions_until_resume(model_dir):
    app, recorder = make_app(model_dir)
    app.handle({"id": 1, "command": "pause"}, COMMANDS)
    assert app.handle(documents(None, reading(WET, 1)), DOCUMENTS) == {"ok": True, "skipped": "paused"}
    app.handle({"id": 2, "command": "resume"}, COMMANDS)
    assert app.handle(documents(None, reading(WET, 1)), DOCUMENTS)["ok"] is True
    assert len(recorder.on(OUTPUT)) == 1


def test_set_threshold_decides_raining_from_then_on(model_dir):
    app, recorder = make_app(model_dir)
    app.handle({"id": 1, "command": "set-threshold", "args": {"threshold": 0.000001}}, COMMANDS)
    app.handle(documents(None, reading(DRY, 1)), DOCUMENTS)
    (output,) = recorder.on(OUTPUT)
    assert output["threshold"] == 0.000001 and output["raining"] is True
    info = app.handle({"id": 2, "command": "get-model-info"}, COMMANDS)["result"]
    assert info["threshold"] == 0.000001 and info["model_threshold"] == app.predictor.model.threshold
    assert info["loaded"] is True and info["version"] == app.predictor.model.version


def test_the_local_inference_service_answers_p_dry_p_rain_like_the_documents_path(model_dir):
    app, recorder = make_app(model_dir)
    answer = app.handle(dict(WET), None)
    p_dry, p_rain = answer
    assert p_dry + p_rain == pytest.approx(1.0)
    app.handle(documents(None, reading(WET, 1)), DOCUMENTS)
    assert recorder.on(OUTPUT)[0]["p_rain"] == pytest.approx(p_rain)
    assert app.metrics.snapshot()["counters"]["invocations"] == 1


def low_confidence_app(model_dir):
    """An app whose threshold sits on WET's probability, so a WET reading is a low-confidence sample."""
    app, recorder = make_app(model_dir)
    p_rain = app.handle(dict(WET), None)[1]
    app.handle({"id": 1, "command": "set-threshold", "args": {"threshold": min(0.99, max(0.01, p_rain))}},
               COMMANDS)
    return app, recorder, p_rain


def test_a_low_confidence_sample_is_invoked_on_the_feedback_connector(model_dir):
    app, recorder, p_rain = low_confidence_app(model_dir)
    app.handle(documents(None, reading(WET, 9, observed_rain=True)), DOCUMENTS)
    ((function_arn, context, model_input),) = recorder.invocations
    assert function_arn == FEEDBACK_ARN
    custom = context["custom"]
    assert set(custom) == {"ConfigId", "ModelPrediction", "Metadata"}
    assert custom["ConfigId"] == "rain-low-confidence"
    assert custom["ModelPrediction"] == pytest.approx([1 - p_rain, p_rain])
    assert custom["Metadata"]["seq"] == 9 and custom["Metadata"]["observed_rain"] is True
    assert model_input == WET, "the payload is the reading the model saw"
    assert recorder.on("rain/rain-thing/feedback") == [], "nothing goes over MQTT"
    assert app.metrics.snapshot()["counters"]["feedback.samples"] == 1
    p_dry_weather = app.handle(dict(DRY), None)[1]
    assert abs(p_dry_weather - p_rain) > 0.1, "the two readings must be far apart for this test"
    app.handle(documents(reading(WET, 9), reading(DRY, 10)), DOCUMENTS)
    assert len(recorder.invocations) == 1  # far from the threshold: nothing to learn from


def test_without_a_connector_arn_no_feedback_is_sent(model_dir):
    app, recorder = make_app(model_dir, FEEDBACK_CONNECTOR_ARN="", FEEDBACK_BAND="0.5")
    app.handle({"id": 1, "command": "set-threshold", "args": {"threshold": 0.5}}, COMMANDS)
    assert app.handle(documents(None, reading(WET, 1)), DOCUMENTS)["ok"] is True
    assert recorder.invocations == [] and app.feedback is None


@pytest.mark.parametrize("answer, wording", [
    (Exception("Failed to invoke function due to [Errno 111] Connection refused"), "Connection refused"),
    ({"Payload": b'{"errorMessage": "Argument Metadata must be of type dict", "errorType": "ValueError"}',
      "FunctionError": "Handled"}, "FunctionError Handled: ValueError: Argument Metadata must be of type dict"),
    ({"Payload": b"Task timed out after 10 seconds", "FunctionError": "Unhandled"},
     "FunctionError Unhandled: Task timed out after 10 seconds"),
    ({"Payload": b'{"id": "r-2", "queued": false}', "FunctionError": ""}, "request queue is full"),
], ids=["invoke-raises", "handled", "unhandled", "queue-full"])
def test_a_refused_feedback_invoke_is_logged_and_counted_and_the_prediction_stands(model_dir, answer, wording,
                                                                                    caplog):
    app, recorder, _ = low_confidence_app(model_dir)
    recorder.invoke_answer = answer
    result = app.handle(documents(None, reading(WET, 4)), DOCUMENTS)
    assert result["ok"] is True and recorder.on(OUTPUT) == [result["prediction"]]
    assert len(recorder.invocations) == 1
    snapshot = app.metrics.snapshot()
    assert snapshot["counters"]["error.feedback"] == 1 and "feedback.samples" not in snapshot["counters"]
    assert wording in snapshot["last_error"]
    assert f"feedback sample of seq 4 not taken by {FEEDBACK_ARN}" in caplog.text


def test_metrics_are_published_with_their_cloudwatch_form(model_dir):
    app, recorder = make_app(model_dir)
    app.handle(documents(None, reading(WET, 1, observed_rain=True)), DOCUMENTS)
    app.publish_metrics()
    (metrics,) = recorder.on("rain/rain-thing/model/metrics")
    assert metrics["count"] == 1 and metrics["model_version"] == app.predictor.model.version
    assert metrics["latency_us"]["p50"] is not None and metrics["rain_rate"] in (0.0, 1.0)
    datums = [m["request"] for m in recorder.on("cloudwatch/metric/put")]
    names = {d["metricData"]["metricName"] for d in datums}
    assert {"Predictions", "Errors", "LatencyP50", "LatencyP99", "RainRate"} <= names
    assert all(d["namespace"] == "RainEdge" for d in datums)
    app.publish_metrics()
    predictions = [d["metricData"]["value"] for d in (m["request"] for m in recorder.on("cloudwatch/metric/put"))
                   if d["metricData"]["metricName"] == "Predictions"]
    assert predictions == [1.0, 0.0]  # counts are per interval


def test_the_metrics_thread_publishes_every_interval(model_dir):
    app, recorder = make_app(model_dir, METRICS_INTERVAL_S="1")
    app.start()
    try:
        with recorder.changed:
            assert recorder.changed.wait_for(lambda: recorder.on("rain/rain-thing/model/metrics"), 30)
    finally:
        app.stop()
        app.thread.join(10)
    assert not app.thread.is_alive()


def test_publish_and_write_back_failures_are_counted_not_raised(model_dir, caplog):
    app, recorder = make_app(model_dir)
    recorder.fail_publish = True
    recorder.fail_shadow = True
    answer = app.handle(documents(None, reading(WET, 1)), DOCUMENTS)
    assert answer["ok"] is True
    counters = app.metrics.snapshot()["counters"]
    assert counters["error.publish"] >= 1 and counters["error.shadow"] == 1
    assert "publish to rain/rain-thing/inference/output failed" in caplog.text
    assert "writing reported.rain for seq 1 failed" in caplog.text


def test_a_model_that_arrives_later_is_loaded_on_the_next_retry(model_dir, tmp_path):
    late = tmp_path / "ml"
    now = [1000.0]
    predictor = Predictor(str(late), clock=lambda: now[0], reload_interval_s=60.0)
    recorder = Recorder()
    app = InferenceApp(load_settings({"THING_NAME": "rain-thing", "MODEL_DIR": str(late)}), recorder.publish,
                       recorder.update_shadow, predictor=predictor)
    app.start()
    app.stop()
    assert app.metrics.snapshot()["counters"]["error.model"] == 1
    shutil.copytree(str(model_dir), str(late))
    assert app.handle(documents(None, reading(WET, 1)), DOCUMENTS)["error"]["code"] == "ModelUnavailable"
    now[0] += 60.0
    assert app.handle(documents(None, reading(WET, 2)), DOCUMENTS)["ok"] is True
    assert os.path.isdir(str(late))


class MergingShadow:
    """A tiny stand-in for the core's shadow: merges reported state and hands each documents message on."""

    def __init__(self):
        self.reported = {}
        self.version = 0
        self.on_documents = None

    def update(self, thing_name, payload):
        previous = {"state": {"reported": dict(self.reported)}, "version": self.version}
        self.reported.update(json.loads(payload)["state"]["reported"])
        self.version += 1
        current = {"state": {"reported": dict(self.reported)}, "version": self.version}
        self.on_documents({"previous": previous, "current": current, "timestamp": self.version})
        return {"payload": b"{}"}

    def get(self, thing_name):
        return {"payload": json.dumps({"state": {"reported": self.reported}, "version": self.version}).encode()}


def test_a_replayed_month_flows_through_both_lambdas_and_is_scored(model_dir):
    from sensor_to_shadow.health import SensorHealth
    from sensor_to_shadow.loop import SensorLoop
    from sensor_to_shadow.settings import parse_source
    from sensor_to_shadow.shadow_writer import ShadowWriter
    from sensor_to_shadow.source_replay import ReplaySource

    shadow = MergingShadow()
    published = []
    app = InferenceApp(load_settings({"THING_NAME": "rain-thing", "MODEL_DIR": str(model_dir)}),
                       lambda topic, payload: published.append((topic, json.loads(payload))), shadow.update)
    assert app.predictor.load()
    answers = []
    shadow.on_documents = lambda event: answers.append(app.handle(event, DOCUMENTS))
    health = SensorHealth()
    loop = SensorLoop(ReplaySource(parse_source("replay:JFK:2013-03-01:2013-03-31"), speed=1e6),
                      ShadowWriter("rain-thing", shadow.update, shadow.get, health), health, 60.0)
    loop.resume_from_shadow()
    while loop.step() is not None:
        pass
    outputs = [message for topic, message in published if topic == OUTPUT]
    assert len(outputs) == health.counts["readings"] > 600
    assert [o["seq"] for o in outputs] == list(range(1, len(outputs) + 1))
    assert all(answer["ok"] for answer in answers)
    scored = app.metrics.snapshot()["scored"]
    assert scored["count"] == len(outputs)
    assert scored["roc_auc"] > 0.7, scored  # the trained model beats chance on real weather
    assert shadow.reported["rain"]["seq"] == outputs[-1]["seq"]
