"""Shadow documents: a prediction only for a changed sensor reading; every malformed document is refused."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from rain_inference.app import InferenceApp
from rain_inference.documents import new_reading, sensor_fields_changed
from rain_inference.settings import load_settings

CORPUS = json.loads((Path(__file__).parent / "corpus" / "sensor" / "documents.json").read_text())
DOCUMENTS = "$aws/things/rain-thing/shadow/update/documents"

READING = {
    "temperature": 20.0,
    "humidity": 60.0,
    "pressure": 1010.0,
    "pressure_tendency_3h": -1.2,
    "ts": 1357020000,
    "seq": 5,
}


def documents(previous_reported, current_reported):
    def document(reported):
        return None if reported is None else {"state": {"reported": reported}, "version": 1}

    return {"previous": document(previous_reported), "current": document(current_reported), "timestamp": 1}


class Recorder:
    def __init__(self):
        self.published = []

    def publish(self, topic, payload):
        self.published.append((topic, json.loads(payload)))

    def update_shadow(self, thing_name, payload):
        raise AssertionError("no prediction, so no write-back")


@pytest.fixture
def app(tmp_path):
    recorder = Recorder()
    settings = load_settings({"THING_NAME": "rain-thing", "MODEL_DIR": str(tmp_path / "no-model")})
    return InferenceApp(settings, recorder.publish, recorder.update_shadow)


def _event(raw):
    return raw["__raw__"].encode() if isinstance(raw, dict) and "__raw__" in raw else raw


@pytest.mark.parametrize("case", CORPUS, ids=[case["name"] for case in CORPUS])
def test_malformed_document_is_refused_with_the_reason_and_a_log_line(app, case, caplog):
    with caplog.at_level(logging.WARNING):
        answer = app.handle(_event(case["event"]), DOCUMENTS)
    assert answer["ok"] is False
    assert answer["error"]["code"] == case["code"]
    assert case["message"] in answer["error"]["message"]
    assert "documents message not predicted ({})".format(case["code"]) in caplog.text
    assert app.metrics.snapshot()["errors"] == 1


def test_own_rain_write_back_is_not_a_new_reading():
    with_rain = dict(READING, rain={"p": 0.8, "raining": True, "seq": 5})
    assert new_reading(documents(READING, with_rain)) is None


def test_health_only_write_is_not_a_new_reading():
    with_health = dict(READING, sensor={"status": "error", "errors": 3})
    assert new_reading(documents(READING, with_health)) is None
    assert new_reading(documents(None, {"sensor": {"status": "starting"}})) is None


def test_first_document_and_each_changed_field_are_new_readings():
    found = new_reading(documents(None, READING))
    assert found.seq == 5 and found.ts == 1357020000 and found.observed_rain is None
    fields = ("temperature", "humidity", "pressure", "pressure_tendency_3h")
    assert found.reading == {field: READING[field] for field in fields}
    for field in ("temperature", "humidity", "pressure", "pressure_tendency_3h", "ts", "seq"):
        changed = dict(READING, **{field: 7 if field == "seq" else 1.5})
        assert sensor_fields_changed(READING, changed), field
        assert new_reading(documents(READING, changed)) is not None, field


def test_a_document_without_previous_state_is_a_new_reading():
    event = {"previous": {"version": 0}, "current": {"state": {"reported": READING}}}
    assert new_reading(event) is not None


def test_observed_rain_travels_with_the_reading():
    assert new_reading(documents(None, dict(READING, observed_rain=True))).observed_rain is True


def test_documents_of_another_thing_are_refused(app, caplog):
    answer = app.handle(documents(None, READING), "$aws/things/other/shadow/update/documents")
    assert answer["error"]["code"] == "WrongThing"
    assert "documents of thing 'other'" in caplog.text


def test_a_reading_without_tendency_yet_is_skipped_not_an_error(app):
    answer = app.handle(documents(None, dict(READING, pressure_tendency_3h=None)), DOCUMENTS)
    assert answer["ok"] is True and "pressure_tendency_3h" in answer["skipped"]
    snapshot = app.metrics.snapshot()
    assert snapshot["errors"] == 0 and snapshot["counters"]["skipped.no_tendency"] == 1


def test_no_model_is_an_error_naming_the_model_dir(app, caplog):
    answer = app.handle(documents(None, READING), DOCUMENTS)
    assert answer["error"]["code"] == "ModelUnavailable"
    assert "no-model" in answer["error"]["message"]
    assert "documents message not predicted (ModelUnavailable)" in caplog.text
