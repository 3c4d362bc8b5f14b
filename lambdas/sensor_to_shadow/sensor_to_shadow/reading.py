"""One reading from a source: the weather at one instant, before validation."""

from __future__ import annotations

from typing import NamedTuple, Optional


class Reading(NamedTuple):
    """A raw reading; a field is None when the source has no value for it (replay's `NA`).

    `ts` is the reading's own time in epoch seconds (UTC): the chip's read time, or the record's hour.
    `observed_rain` is set in replay mode only: whether the record's hour had precipitation.
    `origin` says where it came from, for log lines (e.g. `weather.csv:1234` or `bme680@0x76`).
    """

    ts: float
    temperature: Optional[float]
    humidity: Optional[float]
    pressure: Optional[float]
    observed_rain: Optional[bool] = None
    origin: str = ""
