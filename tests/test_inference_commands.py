"""Commands on rain/<thing>/command/input: each malformed request is refused with a reason and a log line."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from rain_inference.app import InferenceApp
from rain_inference.commands import COMMANDS, parse_command
from rain_inference.settings import load_settings

CORPUS = json.loads((Path(__file__).parent / "corpus" / "commands" / "malformed.json").read_text())
OUTPUT = "rain/rain-thing/command/output"
INPUT = "rain/rain-thing/command/input"


class Recorder:
    """Where the SDK's publish and update_thing_shadow would go."""

    def __init__(self):
        self.published = []
        self.shadow_updates = []

    def publish(self, topic, payload):
        self.published.append((topic, json.loads(payload)))

    def update_shadow(self, thing_name, payload):
        self.shadow_updates.append((thing_name, json.loads(payload)))

    def on(self, topic):
        return [message for published_topic, message in self.published if published_topic == topic]


def payload_of(raw):
    if isinstance(raw, dict) and "__raw__" in raw:
        return raw["__raw__"].encode()
    if isinstance(raw, dict) and "__hex__" in raw:
        return bytes.fromhex(raw["__hex__"])
    return raw


@pytest.fixture
def app(tmp_path):
    recorder = Recorder()
    settings = load_settings({"THING_NAME": "rain-thing", "MODEL_DIR": str(tmp_path / "no-model")})
    application = InferenceApp(settings, recorder.publish, recorder.update_shadow)
    application.recorder = recorder
    return application


@pytest.mark.parametrize("case", CORPUS, ids=[case["name"] for case in CORPUS])
def test_malformed_command_is_answered_not_ok_with_the_reason(app, case, caplog):
    with caplog.at_level(logging.WARNING):
        answer = app.handle(payload_of(case["payload"]), INPUT)
    assert answer["ok"] is False
    assert answer["id"] == case.get("id")
    assert answer["error"]["code"] == case["code"]
    assert case["message"] in answer["error"]["message"]
    assert app.recorder.on(OUTPUT) == [answer]
    assert "command refused ({})".format(case["code"]) in caplog.text
    assert app.metrics.snapshot()["counters"]["error.command"] == 1
    assert app.predictor.paused is False and app.predictor.threshold_override is None


def test_every_known_command_parses():
    for name in COMMANDS:
        args = {"threshold": 0.3} if name == "set-threshold" else None
        command = parse_command({"id": name, "command": name, "args": args})
        assert command.name == name and command.request_id == name


def test_set_threshold_changes_the_threshold_and_says_what_it_was(app):
    first = app.handle({"id": 1, "command": "set-threshold", "args": {"threshold": 0.25}}, INPUT)
    second = app.handle({"id": 2, "command": "set-threshold", "args": {"threshold": 0.75}}, INPUT)
    assert first == {"id": 1, "ok": True, "result": {"threshold": 0.25, "previous": None}}
    assert second["result"] == {"threshold": 0.75, "previous": 0.25}
    assert app.predictor.threshold == 0.75
    assert app.recorder.on(OUTPUT) == [first, second]


def test_pause_and_resume(app):
    assert app.handle({"id": "p", "command": "pause"}, INPUT)["result"] == {"paused": True}
    assert app.predictor.paused
    assert app.handle({"id": "r", "command": "resume", "args": {}}, INPUT)["result"] == {"paused": False}
    assert not app.predictor.paused


def test_get_model_info_without_a_model_says_why(app):
    app.start()
    app.stop()
    answer = app.handle({"id": "i", "command": "get-model-info"}, INPUT)
    assert answer["ok"] is True
    info = answer["result"]
    assert info["loaded"] is False
    assert "cannot load the model from" in info["load_error"] and "no-model" in info["load_error"]
    assert info["feature_names"][:3] == ["temperature", "humidity", "pressure"]


def test_get_metrics_answers_the_metrics_message(app):
    answer = app.handle({"id": "m", "command": "get-metrics"}, INPUT)
    result = answer["result"]
    assert answer["ok"] is True
    assert result["thing"] == "rain-thing"
    expected = {"count", "errors", "latency_us", "rain_rate", "scored", "model_version", "threshold"}
    assert expected <= set(result)
