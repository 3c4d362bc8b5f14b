"""Reads `update/documents` messages and decides whether they carry a new sensor reading.

A documents message is `{"previous": {"state": {"desired", "reported"}, "metadata", "version"} | null,
"current": {...same...}, "timestamp", "clientToken"?}`. Only a change in the sensor's fields is a new
reading: this Lambda's own `reported.rain` write-back changes nothing here, so it never loops.
"""

from __future__ import annotations

import math
import numbers
from typing import Dict, Mapping, NamedTuple, Optional

from rain_inference.features import READING_FIELDS

# What the sensor writes per reading; any change among them is a new reading.
SENSOR_FIELDS = READING_FIELDS + ("ts", "seq")


class DocumentError(ValueError):
    """A malformed documents message; the text says which node is wrong."""


class NewReading(NamedTuple):
    """A reading to predict on, with the identity it came with."""

    reading: Dict[str, object]   # the READING_FIELDS, as reported
    ts: Optional[float]
    seq: Optional[int]
    observed_rain: Optional[bool]


def _reported(document: object, name: str, required: bool) -> Mapping[str, object]:
    if document is None and not required:
        return {}
    if not isinstance(document, Mapping):
        raise DocumentError("'{}' must be a shadow document object, got {}".format(
            name, type(document).__name__))
    state = document.get("state")
    if state is None and not required:
        return {}
    if not isinstance(state, Mapping):
        raise DocumentError("'{}.state' must be an object, got {!r}".format(name, state))
    reported = state.get("reported", {})
    if reported is None:
        return {}
    if not isinstance(reported, Mapping):
        raise DocumentError("'{}.state.reported' must be an object, got {!r}".format(name, reported))
    return reported


def sensor_fields_changed(previous: Mapping[str, object], current: Mapping[str, object]) -> bool:
    """True when any sensor field differs between two `reported` objects."""
    return any(previous.get(field) != current.get(field) for field in SENSOR_FIELDS)


def new_reading(event: object) -> Optional[NewReading]:
    """The new reading in a documents message, None when it carries none; DocumentError when malformed."""
    if not isinstance(event, Mapping):
        raise DocumentError("a documents message must be a JSON object, got {}".format(type(event).__name__))
    if "current" not in event:
        raise DocumentError("a documents message needs a 'current' document")
    current = _reported(event["current"], "current", required=True)
    previous = _reported(event.get("previous"), "previous", required=False)
    if not any(field in current for field in READING_FIELDS):
        return None  # no reading yet (e.g. only the sensor's health)
    if not sensor_fields_changed(previous, current):
        return None
    ts = current.get("ts")
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, numbers.Real) or not math.isfinite(ts)):
        raise DocumentError("'current.state.reported.ts' must be epoch seconds, got {!r}".format(ts))
    seq = current.get("seq")
    if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int)):
        raise DocumentError("'current.state.reported.seq' must be an integer, got {!r}".format(seq))
    observed = current.get("observed_rain")
    if observed is not None and not isinstance(observed, bool):
        raise DocumentError(
            "'current.state.reported.observed_rain' must be true, false or null, got {!r}".format(observed))
    reading = {field: current.get(field) for field in READING_FIELDS}
    return NewReading(reading, ts, seq, observed)
