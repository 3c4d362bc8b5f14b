"""Parses the shadow messages routed to the sensor Lambda: `update/delta` (control) and `update/rejected`.

A delta is `{"version", "timestamp", "state": {<desired keys that differ from reported>}, "metadata"}`;
the only key the sensor acts on is `read_interval_s`. A rejected message is `{"code", "message",
"clientToken"?, "timestamp"?}`. Malformed messages raise MessageError, whose text is logged and answered.
"""

from __future__ import annotations

import math
import numbers
from typing import List, Mapping, NamedTuple, Optional

from sensor_to_shadow.settings import MAX_READ_INTERVAL_S, MIN_READ_INTERVAL_S

CONTROL_KEYS = ("read_interval_s",)


class MessageError(ValueError):
    """A malformed shadow message; the text says what is wrong with it."""


class DeltaRequest(NamedTuple):
    """What a delta asks of the sensor: a new read interval (or None), and the desired keys it ignores."""

    read_interval_s: Optional[float]
    ignored_keys: List[str]
    version: Optional[int]


class Rejection(NamedTuple):
    """An `update/rejected` message."""

    code: int
    message: str
    client_token: Optional[str]


def parse_read_interval(value: object) -> float:
    """A desired read interval in seconds, or MessageError naming the allowed range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise MessageError("read_interval_s must be a number of seconds, got {!r}".format(value))
    if not MIN_READ_INTERVAL_S <= value <= MAX_READ_INTERVAL_S:
        raise MessageError("read_interval_s must be between {} and {} seconds, got {!r}".format(
            MIN_READ_INTERVAL_S, MAX_READ_INTERVAL_S, value))
    return float(value)


def parse_delta(event: object) -> DeltaRequest:
    """Read a delta message; MessageError when it is not one or its read_interval_s is unusable."""
    if not isinstance(event, Mapping):
        raise MessageError("a delta message must be a JSON object, got {}".format(type(event).__name__))
    state = event.get("state")
    if not isinstance(state, Mapping):
        raise MessageError("a delta message needs a 'state' object, got {!r}".format(state))
    version = event.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        version = None
    ignored = sorted(str(key) for key in state if key not in CONTROL_KEYS)
    interval = None
    if "read_interval_s" in state:
        interval = parse_read_interval(state["read_interval_s"])
    return DeltaRequest(interval, ignored, version)


def parse_rejected(event: object) -> Rejection:
    """Read an update/rejected message; MessageError when it has no integer code."""
    if not isinstance(event, Mapping):
        raise MessageError("a rejected message must be a JSON object, got {}".format(type(event).__name__))
    code = event.get("code")
    if isinstance(code, bool) or not isinstance(code, int):
        raise MessageError("a rejected message needs an integer 'code', got {!r}".format(code))
    token = event.get("clientToken")
    return Rejection(code, str(event.get("message", "")), token if isinstance(token, str) else None)
