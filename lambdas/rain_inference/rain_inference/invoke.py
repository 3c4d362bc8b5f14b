"""The local inference service's request: `{temperature, humidity, pressure, pressure_tendency_3h}`.

A RequestResponse invoke of this Lambda with such a payload answers `[p_dry, p_rain]`, the output form of
the Greengrass ML connectors, or `{"error": {"code", "message"}}` naming the problem.
"""

from __future__ import annotations

from typing import Dict, Mapping

from rain_inference.commands import CommandError, decode_payload
from rain_inference.features import READING_FIELDS


class InvokeError(ValueError):
    """A request the service cannot answer; `code` classifies it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def looks_like_invoke(payload: object) -> bool:
    """True for a JSON object holding every reading field (however a core delivers it)."""
    return isinstance(payload, Mapping) and all(field in payload for field in READING_FIELDS)


def parse_invoke(payload: object) -> Dict[str, object]:
    """The reading in a request; InvokeError (InvalidJson or InvalidInput) naming the problem."""
    try:
        request = decode_payload(payload)
    except CommandError as error:
        raise InvokeError(error.code, str(error)) from None
    if not isinstance(request, Mapping):
        raise InvokeError("InvalidInput", "the request must be a JSON object with {}, got {}".format(
            ", ".join(READING_FIELDS), type(request).__name__))
    missing = [field for field in READING_FIELDS if field not in request]
    if missing:
        raise InvokeError("InvalidInput", "missing fields: {} (a request needs {})".format(
            ", ".join(missing), ", ".join(READING_FIELDS)))
    unknown = sorted(str(key) for key in request if key not in READING_FIELDS)
    if unknown:
        raise InvokeError("InvalidInput", "unknown fields: {} (a request has only {})".format(
            ", ".join(unknown), ", ".join(READING_FIELDS)))
    return {field: request[field] for field in READING_FIELDS}


def error_payload(code: str, message: str) -> Dict[str, object]:
    """The answer to a request that failed."""
    return {"error": {"code": code, "message": message}}
