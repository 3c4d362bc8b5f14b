"""Every malformed message routed to the sensor Lambda gets an error answer and a log line, never a crash."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from emulated_bme680 import EmulatedBME680Bus
from sensor_to_shadow.app import SensorApp
from sensor_to_shadow.settings import load_settings
from support.recorders import RecordingShadow

CORPUS = json.loads((Path(__file__).parent / "corpus" / "sensor" / "messages.json").read_text())
TOPICS = {
    "delta": "$aws/things/rain-thing/shadow/update/delta",
    "rejected": "$aws/things/rain-thing/shadow/update/rejected",
}


def _event(raw):
    if isinstance(raw, dict) and "__bytes__" in raw:
        return raw["__bytes__"].encode()
    return raw


@pytest.mark.parametrize("case", CORPUS, ids=[case["name"] for case in CORPUS])
def test_malformed_message_gets_an_error_answer_and_a_log_line(case, caplog):
    shadow = RecordingShadow()
    bus = EmulatedBME680Bus()
    app = SensorApp(
        load_settings({"THING_NAME": "rain-thing", "READ_INTERVAL_S": "30"}),
        shadow.update,
        shadow.get,
        open_bus=lambda number: bus,
    )
    topic = TOPICS.get(case["topic"], case["topic"])
    with caplog.at_level(logging.WARNING):
        answer = app.handle(_event(case["event"]), topic)
    assert answer["ok"] is False
    assert answer["error"]["code"] == "BadMessage"
    assert case["error"] in answer["error"]["message"]
    assert case["error"] in caplog.text
    assert app.health.counts["bad_messages"] == 1
    assert app.loop.read_interval_s == 30.0  # nothing was applied
    for update in shadow.updates:  # a refused delta is answered in the shadow with the current interval
        assert update["state"]["reported"]["read_interval_s"] == 30.0
        assert "desired state rejected" in update["state"]["reported"]["sensor"]["last_error"]
