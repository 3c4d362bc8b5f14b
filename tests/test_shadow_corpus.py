"""Bad shadow requests from tests/corpus/shadow/*.yaml: each gets AWS's code and message, and loses nothing.

A case file holds `description`, `payload` (text) or `payload_hex` (raw bytes), optionally `operation`
(update, get or delete; default update), `thing`, `topic` (`{thing}` is filled in), `setup` (update
payloads accepted first instead of the default seed) and `pad` (markers in payloads replaced by `text`
repeated `count` times, for big bodies), and `expected: {code, message[, clientToken]}`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from simcore.shadow.engine import ShadowEngine
from simcore.shadow.service import ShadowService, ShadowTopicError, parse_shadow_topic

CORPUS = Path(__file__).parent / "corpus" / "shadow"
CASE_FILES = sorted(CORPUS.glob("*.yaml"))
SEED_THING = "rain-core"
DEFAULT_SEED = [
    '{"state": {"desired": {"interval": 60}}}',
    '{"state": {"reported": {"temperature": 20.5, "interval": 30}}}',
]
NOW = 1_650_000_000


def test_corpus_holds_at_least_25_cases():
    assert len(CASE_FILES) >= 25


def expand(text: str, case: dict) -> str:
    for pad in case.get("pad", []):
        text = text.replace(pad["marker"], pad["text"] * pad["count"])
    return text


def is_request_topic(topic: str) -> bool:
    try:
        parse_shadow_topic(topic)
    except ShadowTopicError:
        return False
    return True


def request_body(case: dict) -> bytes:
    if "payload_hex" in case:
        return bytes.fromhex(case["payload_hex"])
    return expand(case["payload"], case).encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("case_file", CASE_FILES, ids=[path.stem for path in CASE_FILES])
def test_bad_request_is_refused_with_aws_code_and_message_and_nothing_is_lost(case_file):
    case = yaml.safe_load(case_file.read_text(encoding="utf-8"))
    thing = case.get("thing", SEED_THING)
    topic = case.get("topic", f"$aws/things/{{thing}}/shadow/{case.get('operation', 'update')}")
    topic = topic.format(thing=thing)
    with ShadowEngine(clock=lambda: float(NOW)) as engine:
        service = ShadowService(engine)
        for seed in case.get("setup", DEFAULT_SEED):
            engine.update(SEED_THING, expand(seed, case))
        accepted_before = engine.get(SEED_THING)

        outcome = service.handle(topic, request_body(case))

        expected = {
            key: value.format(thing=thing) if isinstance(value, str) else value
            for key, value in case["expected"].items()
        }
        answer = json.loads(outcome.response)
        assert answer == {**expected, "timestamp": NOW}
        if is_request_topic(topic):
            # The refusal is also published on the request's .../rejected topic.
            assert outcome.publications == [(f"{topic}/rejected", outcome.response)]
        else:
            assert outcome.publications == []

        # Nothing accepted is lost, and the engine still serves.
        assert engine.get(SEED_THING) == accepted_before
        follow_up = engine.update(SEED_THING, '{"state": {"reported": {"after_bad_input": true}}}')
        assert follow_up.accepted["version"] == accepted_before["version"] + 1
        assert engine.get(SEED_THING)["state"]["reported"]["after_bad_input"] is True
