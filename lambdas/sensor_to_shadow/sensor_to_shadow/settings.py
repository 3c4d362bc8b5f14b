"""The sensor Lambda's settings, read from its environment (the group's FunctionConfiguration variables).

Precedence: the function's own variable, then the core's (`AWS_IOT_THING_NAME` for the thing), then the
default below. A malformed value never stops the Lambda: it is named in `problems`, logged by the caller,
and the default is used instead (for `SENSOR_SOURCE` there is no safe default, so `source` is None).
"""

from __future__ import annotations

import datetime
import math
import re
from typing import List, Mapping, NamedTuple, Optional

DEFAULT_READ_INTERVAL_S = 60.0
DEFAULT_REPLAY_SPEED = 1.0
DEFAULT_I2C_BUS = 1
MIN_READ_INTERVAL_S = 1.0
MAX_READ_INTERVAL_S = 86400.0

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_I2C_DEVICE = re.compile(r"^/dev/i2c-(\d+)$")


class SourceSpec(NamedTuple):
    """Where readings come from: `kind` is "bme680" or "replay" (then station and optional UTC date range)."""

    kind: str
    station: Optional[str] = None
    date_from: Optional[datetime.date] = None
    date_to: Optional[datetime.date] = None


class SensorSettings(NamedTuple):
    """Everything the sensor Lambda reads from its environment."""

    thing_name: Optional[str]
    source: Optional[SourceSpec]
    replay_speed: float
    read_interval_s: float
    i2c_bus: int
    problems: List[str]


class SettingsError(ValueError):
    """A malformed setting; the message names the variable and the value."""


def parse_source(text: str) -> SourceSpec:
    """Parse `bme680` or `replay:<station>[:<from>:<to>]` (dates YYYY-MM-DD, inclusive, UTC)."""
    value = text.strip()
    if value == "bme680":
        return SourceSpec("bme680")
    parts = value.split(":")
    if parts[0] != "replay":
        raise SettingsError(
            "SENSOR_SOURCE must be 'bme680' or 'replay:<station>[:<from>:<to>]', got {!r}".format(text))
    if len(parts) not in (2, 4) or not parts[1]:
        raise SettingsError(
            "SENSOR_SOURCE replay takes a station and optionally both dates: "
            "'replay:<station>[:<YYYY-MM-DD>:<YYYY-MM-DD>]', got {!r}".format(text))
    if len(parts) == 2:
        return SourceSpec("replay", parts[1])
    date_from = _parse_date(parts[2], "from")
    date_to = _parse_date(parts[3], "to")
    if date_to < date_from:
        raise SettingsError(
            "SENSOR_SOURCE replay range ends ({}) before it starts ({})".format(date_to, date_from))
    return SourceSpec("replay", parts[1], date_from, date_to)


def _parse_date(text: str, which: str) -> datetime.date:
    if not _DATE.match(text):
        raise SettingsError("SENSOR_SOURCE replay {} date must be YYYY-MM-DD, got {!r}".format(which, text))
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError as error:
        raise SettingsError(
            "SENSOR_SOURCE replay {} date {!r} is not a date: {}".format(which, text, error)) from None


def parse_positive_float(name: str, text: str, low: float, high: float) -> float:
    """A finite number in [low, high], or SettingsError naming the variable."""
    try:
        value = float(text)
    except ValueError:
        raise SettingsError("{} must be a number, got {!r}".format(name, text)) from None
    if not math.isfinite(value) or not low <= value <= high:
        raise SettingsError("{} must be between {} and {}, got {!r}".format(name, low, high, text))
    return value


def parse_i2c_bus(text: str) -> int:
    """The I2C bus number from `1` or `/dev/i2c-1`."""
    value = text.strip()
    match = _I2C_DEVICE.match(value)
    if match:
        return int(match.group(1))
    if value.isdigit():
        return int(value)
    raise SettingsError("I2C_BUS must be a bus number or /dev/i2c-<n>, got {!r}".format(text))


def load_settings(environ: Mapping[str, str]) -> SensorSettings:
    """Read the settings from an environment mapping; never raises, collects problems instead."""
    problems: List[str] = []
    thing_name = environ.get("THING_NAME") or environ.get("AWS_IOT_THING_NAME") or None
    if thing_name is None:
        problems.append("neither THING_NAME nor AWS_IOT_THING_NAME is set: no shadow to write")

    source: Optional[SourceSpec] = None
    try:
        source = parse_source(environ.get("SENSOR_SOURCE", "bme680"))
    except SettingsError as error:
        problems.append(str(error))

    def number(name: str, default: float, low: float, high: float) -> float:
        text = environ.get(name)
        if text is None or text == "":
            return default
        try:
            return parse_positive_float(name, text, low, high)
        except SettingsError as error:
            problems.append("{}; using {}".format(error, default))
            return default

    replay_speed = number("REPLAY_SPEED", DEFAULT_REPLAY_SPEED, 1e-6, 1e9)
    read_interval_s = number(
        "READ_INTERVAL_S", DEFAULT_READ_INTERVAL_S, MIN_READ_INTERVAL_S, MAX_READ_INTERVAL_S)

    i2c_bus = DEFAULT_I2C_BUS
    if environ.get("I2C_BUS"):
        try:
            i2c_bus = parse_i2c_bus(environ["I2C_BUS"])
        except SettingsError as error:
            problems.append("{}; using {}".format(error, DEFAULT_I2C_BUS))
    return SensorSettings(thing_name, source, replay_speed, read_interval_s, i2c_bus, problems)
