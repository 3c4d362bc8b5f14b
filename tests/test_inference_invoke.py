"""The local inference service: a malformed request gets an error payload naming the problem, and a log."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from rain_inference.app import InferenceApp
from rain_inference.invoke import looks_like_invoke
from rain_inference.settings import load_settings

CORPUS = json.loads((Path(__file__).parent / "corpus" / "invoke" / "malformed.json").read_text())


def payload_of(raw):
    if isinstance(raw, dict) and "__raw__" in raw:
        return raw["__raw__"].encode()
    if isinstance(raw, dict) and "__hex__" in raw:
        return bytes.fromhex(raw["__hex__"])
    return raw


@pytest.fixture
def app(tmp_path):
    def nothing_may_be_sent(*args):
        raise AssertionError("an invoke answers; it publishes nothing")

    settings = load_settings({"THING_NAME": "rain-thing", "MODEL_DIR": str(tmp_path / "no-model")})
    return InferenceApp(settings, nothing_may_be_sent, nothing_may_be_sent)


@pytest.mark.parametrize("case", CORPUS, ids=[case["name"] for case in CORPUS])
def test_malformed_request_gets_an_error_payload_and_a_log_line(app, case, caplog):
    with caplog.at_level(logging.WARNING):
        answer = app.handle(payload_of(case["payload"]), None)
    assert set(answer) == {"error"}
    assert answer["error"]["code"] == case["code"]
    assert case["message"] in answer["error"]["message"]
    assert "inference request refused ({})".format(case["code"]) in caplog.text
    assert app.metrics.snapshot()["counters"]["error.invoke"] == 1


def test_a_request_without_a_model_names_the_missing_model(app):
    reading = {"temperature": 20, "humidity": 50, "pressure": 1000, "pressure_tendency_3h": 0}
    answer = app.handle(reading, None)
    assert answer["error"]["code"] == "ModelUnavailable"


def test_a_topic_this_function_does_not_serve_is_refused(app, caplog):
    answer = app.handle({"anything": 1}, "rain/rain-thing/somewhere")
    assert answer["error"]["code"] == "UnexpectedTopic"
    assert "no subscription of the inference Lambda delivers topic 'rain/rain-thing/somewhere'" in caplog.text


def test_a_reading_payload_on_an_unknown_topic_is_served_as_an_invoke(app):
    reading = {"temperature": 20, "humidity": 50, "pressure": 1000, "pressure_tendency_3h": 0}
    assert looks_like_invoke(reading)
    assert app.handle(reading, "some/other/topic")["error"]["code"] == "ModelUnavailable"
