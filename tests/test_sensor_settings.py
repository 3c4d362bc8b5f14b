"""The sensor Lambda's environment: sources, numbers, the thing name; bad values are named, never fatal."""

from __future__ import annotations

import datetime
import re

import pytest
from sensor_to_shadow.settings import (
    DEFAULT_I2C_BUS,
    DEFAULT_READ_INTERVAL_S,
    SettingsError,
    SourceSpec,
    load_settings,
    parse_i2c_bus,
    parse_source,
)


def test_bme680_source():
    assert parse_source("bme680") == SourceSpec("bme680")


def test_replay_source_with_and_without_dates():
    assert parse_source("replay:EWR") == SourceSpec("replay", "EWR")
    assert parse_source("replay:JFK:2013-03-01:2013-03-07") == SourceSpec(
        "replay", "JFK", datetime.date(2013, 3, 1), datetime.date(2013, 3, 7)
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("bme280", "must be 'bme680' or 'replay:"),
        ("", "must be 'bme680' or 'replay:"),
        ("replay", "takes a station"),
        ("replay:", "takes a station"),
        ("replay:EWR:2013-01-01", "takes a station and optionally both dates"),
        ("replay:EWR:2013-01-01:2013-01-02:extra", "takes a station"),
        ("replay:EWR:2013/01/01:2013-01-02", "from date must be YYYY-MM-DD"),
        ("replay:EWR:2013-01-01:13-1-2", "to date must be YYYY-MM-DD"),
        ("replay:EWR:2013-02-30:2013-03-01", "is not a date"),
        ("replay:EWR:2013-03-02:2013-03-01", "ends (2013-03-01) before it starts (2013-03-02)"),
    ],
)
def test_malformed_source_is_refused_with_the_reason(text, message):
    with pytest.raises(SettingsError, match=re.escape(message)) as raised:
        parse_source(text)
    assert message in str(raised.value)


def test_i2c_bus_from_number_or_device_path():
    assert parse_i2c_bus("1") == 1
    assert parse_i2c_bus("/dev/i2c-7") == 7
    with pytest.raises(SettingsError, match="I2C_BUS"):
        parse_i2c_bus("/dev/spidev0.0")


def test_thing_name_falls_back_to_the_core_thing():
    assert load_settings({"AWS_IOT_THING_NAME": "core"}).thing_name == "core"
    assert load_settings({"AWS_IOT_THING_NAME": "core", "THING_NAME": "sensor"}).thing_name == "sensor"
    missing = load_settings({})
    assert missing.thing_name is None
    assert any("THING_NAME" in problem for problem in missing.problems)


def test_all_settings_from_the_environment():
    settings = load_settings(
        {
            "THING_NAME": "t",
            "SENSOR_SOURCE": "replay:LGA",
            "REPLAY_SPEED": "3600",
            "READ_INTERVAL_S": "5",
            "I2C_BUS": "/dev/i2c-0",
        }
    )
    assert settings.source == SourceSpec("replay", "LGA")
    assert (settings.replay_speed, settings.read_interval_s, settings.i2c_bus) == (3600.0, 5.0, 0)
    assert settings.problems == []


@pytest.mark.parametrize(
    "name, value",
    [
        ("READ_INTERVAL_S", "soon"),
        ("READ_INTERVAL_S", "0"),
        ("READ_INTERVAL_S", "nan"),
        ("READ_INTERVAL_S", "1e9"),
        ("REPLAY_SPEED", "-1"),
        ("REPLAY_SPEED", "inf"),
        ("I2C_BUS", "one"),
    ],
)
def test_a_bad_number_falls_back_to_the_default_and_is_named(name, value):
    settings = load_settings({"THING_NAME": "t", name: value})
    assert settings.read_interval_s == DEFAULT_READ_INTERVAL_S
    assert settings.i2c_bus == DEFAULT_I2C_BUS
    assert len(settings.problems) == 1
    assert name in settings.problems[0] and repr(value) in settings.problems[0]


def test_a_bad_source_leaves_no_source_and_names_it():
    settings = load_settings({"THING_NAME": "t", "SENSOR_SOURCE": "replay:EWR:tomorrow:later"})
    assert settings.source is None
    assert "SENSOR_SOURCE" in settings.problems[0]
