"""Parses command requests from `rain/<thing>/command/input` and shapes the answers.

A request is `{"id": <string or number>, "command": <name>, "args": <object, optional>}`; the answer is
`{"id", "ok": true, "result"}` or `{"id", "ok": false, "error": {"code", "message"}}`. Parsing checks
everything a command needs, so running one cannot fail on its input.
"""

from __future__ import annotations

import json
import math
import numbers
from typing import Dict, Mapping, NamedTuple, Optional, Union

COMMANDS = ("get-model-info", "get-metrics", "set-threshold", "pause", "resume")
MAX_ID_LENGTH = 128

IdValue = Union[str, int, float, None]


class CommandError(ValueError):
    """A request that cannot be run; `code` classifies it, `request_id` echoes the id when readable."""

    def __init__(self, code: str, message: str, request_id: IdValue = None) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id


class Command(NamedTuple):
    """A parsed, checked command."""

    request_id: IdValue
    name: str
    args: Dict[str, object]


def decode_payload(payload: object) -> object:
    """The JSON value of a payload that may still be bytes or text (binary encoding, a raw invoke)."""
    if isinstance(payload, (bytes, bytearray)):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError as error:
            raise CommandError("InvalidJson", "payload is not UTF-8 text: {}".format(error)) from None
    if isinstance(payload, str):
        try:
            return json.loads(payload)
        except ValueError as error:
            raise CommandError("InvalidJson", "payload is not valid JSON: {}".format(error)) from None
    return payload


def _request_id(request: Mapping[str, object]) -> IdValue:
    value = request.get("id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise CommandError("InvalidRequest", "'id' must be a string or a number, got {}".format(
            type(value).__name__))
    if isinstance(value, float) and not math.isfinite(value):
        raise CommandError("InvalidRequest", "'id' must be a finite number, got {!r}".format(value))
    if isinstance(value, str) and len(value) > MAX_ID_LENGTH:
        raise CommandError("InvalidRequest", "'id' is longer than {} characters".format(MAX_ID_LENGTH))
    return value


def parse_threshold(args: Mapping[str, object]) -> float:
    """The `threshold` argument of set-threshold: a number strictly between 0 and 1."""
    if set(args) != {"threshold"}:
        raise ValueError("set-threshold takes exactly one argument, 'threshold', got {}".format(
            sorted(args) or "none"))
    value = args["threshold"]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError("threshold must be a number, got {!r}".format(value))
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise ValueError("threshold must be strictly between 0 and 1, got {!r}".format(value))
    return float(value)


def parse_command(payload: object) -> Command:
    """Check a request; CommandError with code InvalidJson, InvalidRequest, UnknownCommand or InvalidArgs."""
    request = decode_payload(payload)
    if not isinstance(request, Mapping):
        raise CommandError("InvalidRequest", "a command request must be a JSON object, got {}".format(
            type(request).__name__))
    request_id = _request_id(request)
    unknown = sorted(str(key) for key in request if key not in ("id", "command", "args"))
    if unknown:
        raise CommandError("InvalidRequest", "unknown request keys: {}".format(", ".join(unknown)),
                           request_id)
    name = request.get("command")
    if not isinstance(name, str):
        raise CommandError("InvalidRequest", "'command' must be a string naming one of: {}".format(
            ", ".join(COMMANDS)), request_id)
    if name not in COMMANDS:
        raise CommandError("UnknownCommand", "unknown command {!r}; known: {}".format(
            name[:64], ", ".join(COMMANDS)), request_id)
    args = request.get("args")
    if args is None:
        args = {}
    if not isinstance(args, Mapping):
        raise CommandError("InvalidArgs", "'args' must be an object, got {}".format(type(args).__name__),
                           request_id)
    if name == "set-threshold":
        try:
            args = {"threshold": parse_threshold(args)}
        except ValueError as error:
            raise CommandError("InvalidArgs", str(error), request_id) from None
    elif args:
        raise CommandError("InvalidArgs", "{} takes no arguments, got {}".format(name, sorted(args)),
                           request_id)
    return Command(request_id, name, dict(args))


def ok_answer(request_id: IdValue, result: object) -> Dict[str, object]:
    """A successful answer."""
    return {"id": request_id, "ok": True, "result": result}


def error_answer(request_id: IdValue, code: str, message: str) -> Dict[str, object]:
    """A failed answer, with a code and a message that names the problem."""
    return {"id": request_id, "ok": False, "error": {"code": code, "message": message}}


def answer_for_error(error: CommandError) -> Dict[str, object]:
    """The answer to a request that failed to parse."""
    return error_answer(error.request_id, error.code, str(error))


def optional_id(value: Optional[object]) -> IdValue:
    """An id safe to echo (used when the request could not be parsed at all)."""
    return value if isinstance(value, (str, int)) and not isinstance(value, bool) else None
