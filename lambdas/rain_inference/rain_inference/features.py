"""Turns one sensor reading into the model's feature vector (the single feature definition; training imports it).

A reading is what the sensor Lambda reports in the shadow: `temperature` (°C), `humidity` (%RH),
`pressure` (hPa) and `pressure_tendency_3h` (hPa over 3 h, null until 3 h of history exist).
"""

import math
import numbers
from typing import List, Mapping, Optional, Tuple

FEATURE_NAMES: Tuple[str, ...] = (
    "temperature",
    "humidity",
    "pressure",
    "pressure_tendency_3h",
    "dewpoint_depression",
)
"""The model's inputs, in the order the model takes them."""

FEATURE_UNITS = {
    "temperature": "degC",
    "humidity": "%RH",
    "pressure": "hPa",
    "pressure_tendency_3h": "hPa/3h",
    "dewpoint_depression": "degC",
}

FEATURE_SOURCES = {
    "temperature": "reading.temperature",
    "humidity": "reading.humidity",
    "pressure": "reading.pressure",
    "pressure_tendency_3h": "reading.pressure_tendency_3h (sensor_to_shadow.tendency.PressureHistory)",
    "dewpoint_depression": "temperature - dew point (Magnus, a=17.625, b=243.04 degC; RH below 1 % taken as 1 %)",
}

READING_FIELDS = ("temperature", "humidity", "pressure", "pressure_tendency_3h")
"""The fields of a reading that `build_features` reads."""

# Plausible ranges: the BME680's operating range (temperature, pressure) and the physical one (humidity).
# A value outside is a sensor fault or a unit mix-up (°F, Pa), never weather to predict from.
VALID_RANGES = {
    "temperature": (-40.0, 85.0),
    "humidity": (0.0, 100.0),
    "pressure": (300.0, 1100.0),
    "pressure_tendency_3h": (-100.0, 100.0),
}

_MAGNUS_A = 17.625
_MAGNUS_B_C = 243.04
_MIN_RH_FOR_DEWPOINT = 1.0


class FeatureError(ValueError):
    """A reading that cannot be turned into features; `field` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__("{}: {}".format(field, message))
        self.field = field


class TendencyUnavailableError(FeatureError):
    """The reading has no 3-hour pressure tendency yet (the sensor needs ~3 h of history): skip it."""


def dewpoint_c(temperature_c: float, humidity_pct: float) -> float:
    """The dew point in °C from temperature (°C) and relative humidity (%), by the Magnus formula."""
    rh = max(humidity_pct, _MIN_RH_FOR_DEWPOINT)
    gamma = math.log(rh / 100.0) + _MAGNUS_A * temperature_c / (_MAGNUS_B_C + temperature_c)
    return _MAGNUS_B_C * gamma / (_MAGNUS_A - gamma)


def build_features(reading: Mapping) -> List[float]:
    """The feature vector for one reading, in `FEATURE_NAMES` order.

    Raises `TendencyUnavailableError` (a `FeatureError`) when `pressure_tendency_3h` is null or absent,
    and `FeatureError` naming the field for a missing field, a non-number, NaN/inf, or a value out of range.
    """
    if not isinstance(reading, Mapping):
        raise FeatureError("reading", "expected a mapping of fields, got {}".format(type(reading).__name__))
    temperature = _number(reading, "temperature")
    humidity = _number(reading, "humidity")
    pressure = _number(reading, "pressure")
    if reading.get("pressure_tendency_3h") is None:
        raise TendencyUnavailableError(
            "pressure_tendency_3h",
            "is null: the sensor has less than 3 h of pressure history; no prediction for this reading",
        )
    tendency = _number(reading, "pressure_tendency_3h")
    return [temperature, humidity, pressure, tendency, temperature - dewpoint_c(temperature, humidity)]


def _number(reading: Mapping, field: str) -> float:
    value: Optional[object] = reading.get(field)
    if value is None:
        raise FeatureError(field, "missing (a reading needs {})".format(", ".join(READING_FIELDS)))
    # bool is an Integral, and "12.5" would convert: neither is a measurement.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise FeatureError(field, "must be a number, got {} {!r}".format(type(value).__name__, value))
    number = float(value)
    if not math.isfinite(number):
        raise FeatureError(field, "must be finite, got {!r}".format(value))
    low, high = VALID_RANGES[field]
    if not low <= number <= high:
        raise FeatureError(
            field, "{!r} {} is outside {}..{}".format(value, FEATURE_UNITS[field], low, high)
        )
    return number
