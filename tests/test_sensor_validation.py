"""Every reading outside the BME680's operating range, or not a finite number, is refused with a reason."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from sensor_to_shadow.reading import Reading
from sensor_to_shadow.validation import InvalidReading, validate

CORPUS = json.loads((Path(__file__).parent / "corpus" / "sensor" / "invalid_readings.json").read_text())


def _reading(fields: dict) -> Reading:
    return Reading(
        ts=fields.get("ts", 1357020000.0),
        temperature=fields.get("temperature"),
        humidity=fields.get("humidity"),
        pressure=fields.get("pressure"),
    )


@pytest.mark.parametrize("case", CORPUS, ids=[case["name"] for case in CORPUS])
def test_invalid_reading_is_refused_naming_the_field_and_the_reason(case):
    with pytest.raises(InvalidReading, match=re.escape(case["reason"])) as raised:
        validate(_reading(case["reading"]))
    assert raised.value.field == case["field"]
    assert case["reason"] in str(raised.value)


@pytest.mark.parametrize(
    "temperature, humidity, pressure",
    [
        (-40.0, 0.0, 300.0),
        (85.0, 100.0, 1100.0),
        (21.3, 45.0, 1013.2),
        (0, 100, 950),
    ],
)
def test_readings_inside_the_operating_range_pass_including_its_edges(temperature, humidity, pressure):
    validate(Reading(ts=1.0, temperature=temperature, humidity=humidity, pressure=pressure))


def test_corpus_holds_nan_and_infinity_as_real_floats():
    values = [value for case in CORPUS for value in case["reading"].values() if isinstance(value, float)]
    assert any(math.isnan(value) for value in values)
    assert any(math.isinf(value) for value in values)
