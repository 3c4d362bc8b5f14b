"""Checks a reading against the BME680's operating range before it may be written to the shadow."""

from __future__ import annotations

import math
import numbers
from typing import Dict, Tuple

from sensor_to_shadow.reading import Reading

# The BME680 datasheet's operating range; outside it the chip's output is not a measurement.
OPERATING_RANGE: Dict[str, Tuple[float, float]] = {
    "temperature": (-40.0, 85.0),
    "humidity": (0.0, 100.0),
    "pressure": (300.0, 1100.0),
}
UNITS = {"temperature": "°C", "humidity": "%RH", "pressure": "hPa"}


class InvalidReading(ValueError):
    """A reading that must not be written; `field` names the offending field, the message says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__("{} {}".format(field, reason))
        self.field = field


def validate(reading: Reading) -> None:
    """Raise InvalidReading for a missing, non-numeric, NaN, infinite or out-of-range field, or a bad ts."""
    _check_finite_number("ts", reading.ts)
    for field in OPERATING_RANGE:
        check_field(field, getattr(reading, field))


def check_field(field: str, value: object) -> None:
    """Raise InvalidReading unless `value` is a finite number inside the BME680 range for `field`."""
    if value is None:
        raise InvalidReading(field, "is missing")
    _check_finite_number(field, value)
    low, high = OPERATING_RANGE[field]
    if not low <= value <= high:
        raise InvalidReading(field, "{!r} {} is outside the BME680 range {}..{}".format(
            value, UNITS[field], low, high))


def _check_finite_number(field: str, value: object) -> None:
    # bool is an Integral: True is not a temperature.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidReading(field, "is not a number: {!r}".format(value))
    if math.isnan(value):
        raise InvalidReading(field, "is NaN")
    if math.isinf(value):
        raise InvalidReading(field, "is infinite ({!r})".format(value))
