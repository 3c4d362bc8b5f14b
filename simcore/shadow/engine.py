"""The device shadow document engine: AWS IoT Device Shadow semantics over SQLite, with no transport.

A shadow is `{state: {desired, reported}, metadata: {desired, reported}, version}`. An update merges its
`desired`/`reported` patches into the stored sections (a `null` value deletes a key, a `null` section deletes
the section, `"state": null` empties the document), bumps the version by one and stamps every leaf it wrote
with the update's timestamp. The delta is `desired` minus `reported`: the desired keys whose value differs,
nested objects compared key by key. The documents this module returns are exactly what AWS IoT publishes on
`.../update/{accepted,delta,documents}`, `.../get/accepted` and `.../delete/accepted`; errors are
`ShadowError`s carrying AWS's code and message. See docs/shadow.md for the full rules and limits.

Both the Greengrass `GGShadowService` (simcore.shadow.service) and the local stand-in cloud drive this one
engine, so nothing Greengrass-specific lives here.
"""

from __future__ import annotations

import copy
import json
import math
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simcore.errors import ShadowError
from simcore.private import private_file
from simcore.shadow.wal import bound_wal

SECTIONS = ("desired", "reported")
MAX_CLIENT_TOKEN_BYTES = 64
MAX_NESTING_DEPTH = 6
DEFAULT_MAX_DOCUMENT_BYTES = 8192
# AWS IoT thing names: 1-128 characters of letters, digits, colon, underscore and hyphen.
THING_NAME_PATTERN = re.compile(r"[a-zA-Z0-9:_-]{1,128}")

# AWS IoT Device Shadow error messages, word for word.
INVALID_JSON = "Invalid JSON"
MISSING_STATE = "Missing required node: state"
STATE_NOT_OBJECT = "State node must be an object"
DESIRED_NOT_OBJECT = "Desired node must be an object"
REPORTED_NOT_OBJECT = "Reported node must be an object"
INVALID_STATE_NODE = "State contains an invalid node"
INVALID_VERSION = "Invalid version"
INVALID_CLIENT_TOKEN = "Invalid clientToken"
TOO_DEEP = f"JSON contains too many levels of nesting; maximum is {MAX_NESTING_DEPTH}"
VERSION_CONFLICT = "Version conflict"
TOO_LARGE = "The payload exceeds the maximum size allowed"
SECTION_NOT_OBJECT = {"desired": DESIRED_NOT_OBJECT, "reported": REPORTED_NOT_OBJECT}


def no_shadow_message(thing: str) -> str:
    """AWS's 404 message for a thing without a (classic) shadow."""
    return f"No shadow exists with name: {thing}"


@dataclass
class UpdateResult:
    """What one accepted change produced, as the documents AWS IoT publishes for it.

    `accepted` is the `.../update/accepted` (or `.../delete/accepted`) document, `delta` the
    `.../update/delta` document when the new state has a delta (else None), `documents` the
    `.../update/documents` document `{previous, current, timestamp[, clientToken]}`; for a delete,
    `current` is None. `operation` is "update" or "delete".
    """

    accepted: dict
    delta: dict | None
    documents: dict
    operation: str = "update"


@dataclass
class _StoredShadow:
    """One row of the store: a live shadow, or a deleted one whose version later shadows continue from."""

    version: int
    deleted: bool
    state: dict
    metadata: dict


@dataclass
class _UpdateRequest:
    """A validated update request; `state` None means the request said `"state": null`."""

    state: dict | None
    client_token: str | None
    version: int | None


class ShadowEngine:
    """Classic (unnamed) device shadows with AWS IoT semantics, stored in SQLite; thread-safe.

    `db_path` None keeps shadows in memory only. Every operation is one SQLite transaction taken with
    `BEGIN IMMEDIATE`, so two engines (or processes) on one database file never interleave a
    read-modify-write; within one engine a lock serialises threads.
    """

    def __init__(
        self,
        db_path: str | Path | None = None,
        *,
        max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
        clock: Callable[[], float] = time.time,
    ):
        self.max_document_bytes = max_document_bytes
        self.clock = clock
        self._lock = threading.Lock()
        if db_path is not None:
            private_file(db_path)  # 0600 before SQLite makes its -wal/-shm with the same mode
        self._db = sqlite3.connect(
            ":memory:" if db_path is None else str(db_path),
            check_same_thread=False,
            isolation_level=None,
            timeout=10.0,
        )
        if db_path is not None:
            # WAL with synchronous=FULL: a committed update survives a crash of the process or the machine.
            bound_wal(self._db)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS shadows ("
            " thing TEXT PRIMARY KEY,"
            " version INTEGER NOT NULL,"
            " deleted INTEGER NOT NULL,"
            " state TEXT NOT NULL,"
            " metadata TEXT NOT NULL,"
            " updated_at INTEGER NOT NULL)"
        )

    def close(self) -> None:
        """Close the database; the engine cannot be used afterwards."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> ShadowEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def timestamp(self) -> int:
        """Now, in epoch seconds, as every document's `timestamp` gives it."""
        return int(self.clock())

    # --- the operations -------------------------------------------------------------------------------

    def get(self, thing: str, client_token: str | None = None) -> dict:
        """The `.../get/accepted` document: state (with `delta` when desired and reported differ),
        metadata, version, timestamp and, when given, the clientToken.

        Raises ShadowError 404 when there is no shadow.
        """
        _check_thing_name(thing)
        _check_client_token(client_token)
        with self._lock, self._transaction():
            stored = self._load(thing)
        if stored is None or stored.deleted:
            raise ShadowError(404, no_shadow_message(thing), client_token)
        state = dict(stored.state)
        delta = _delta(stored.state.get("desired", {}), stored.state.get("reported", {}))
        if delta:
            state["delta"] = delta
        document = {
            "state": state,
            "metadata": stored.metadata,
            "version": stored.version,
            "timestamp": self.timestamp(),
        }
        return _with_token(document, client_token)

    def update(self, thing: str, payload: bytes | str | dict) -> UpdateResult:
        """Apply one update request (the JSON body AWS IoT takes on `.../update`).

        Creates the shadow when there is none. Raises ShadowError with AWS's code and message when the
        request is refused; a refused request changes nothing.
        """
        _check_thing_name(thing)
        request = self._parse_update(payload)
        token = request.client_token
        with self._lock, self._transaction():
            stored = self._load(thing)
            live = stored is not None and not stored.deleted
            # A deleted shadow's version carries on (AWS: "deleting a shadow does not reset its version").
            current_version = stored.version if stored is not None else 0
            if request.version is not None and request.version != current_version:
                raise ShadowError(409, VERSION_CONFLICT, token)
            previous = _snapshot(stored) if live else None
            state = copy.deepcopy(stored.state) if live else {}
            metadata = copy.deepcopy(stored.metadata) if live else {}
            now = self.timestamp()
            _apply_update(state, metadata, request.state, now)
            if _state_bytes(state) > self.max_document_bytes:
                raise ShadowError(413, TOO_LARGE, token)
            version = current_version + 1
            self._store(thing, _StoredShadow(version, False, state, metadata), now)
        accepted = {
            "state": request.state,
            "metadata": _request_metadata(request.state, now),
            "version": version,
            "timestamp": now,
        }
        delta_state = _delta(state.get("desired", {}), state.get("reported", {}))
        delta_document = None
        # AWS sends /delta "when the shadow's state changes": an update that leaves desired and reported as
        # they were (a device repeating its report) publishes none, so a device that answers every delta
        # with the same report cannot start an update/delta loop (docs/shadow.md, "Documents").
        state_changed = not json_equal(previous["state"] if previous is not None else {}, state)
        if delta_state and state_changed:
            delta_document = _with_token(
                {
                    "state": delta_state,
                    "metadata": _delta_metadata(delta_state, metadata.get("desired", {})),
                    "version": version,
                    "timestamp": now,
                },
                token,
            )
        documents = {
            "previous": previous,
            "current": {"state": state, "metadata": metadata, "version": version},
            "timestamp": now,
        }
        return UpdateResult(
            accepted=_with_token(accepted, token),
            delta=copy.deepcopy(delta_document),
            documents=copy.deepcopy(_with_token(documents, token)),
        )

    def delete(self, thing: str, payload: bytes | str | dict = b"") -> dict:
        """Delete the shadow and return the `.../delete/accepted` document `{version, timestamp}`.

        AWS ignores the request body; a clientToken in it is echoed. The version is kept, so a later update
        continues from it. Raises ShadowError 404 when there is no shadow.
        """
        return self.delete_with_result(thing, payload).accepted

    def delete_with_result(self, thing: str, payload: bytes | str | dict = b"") -> UpdateResult:
        """`delete`, also giving the deleted document (as `documents["previous"]`) for listeners."""
        _check_thing_name(thing)
        token = client_token_from(payload)
        with self._lock, self._transaction():
            stored = self._load(thing)
            if stored is None or stored.deleted:
                raise ShadowError(404, no_shadow_message(thing), token)
            now = self.timestamp()
            self._store(thing, _StoredShadow(stored.version, True, {}, {}), now)
        accepted = _with_token({"version": stored.version, "timestamp": now}, token)
        documents = _with_token({"previous": _snapshot(stored), "current": None, "timestamp": now}, token)
        return UpdateResult(accepted=accepted, delta=None, documents=documents, operation="delete")

    def version(self, thing: str) -> int | None:
        """The current version of the thing's shadow, or None when it has none (never created, or deleted)."""
        _check_thing_name(thing)
        with self._lock, self._transaction():
            stored = self._load(thing)
        return None if stored is None or stored.deleted else stored.version

    def things(self) -> list[str]:
        """Names of the things that have a shadow, sorted."""
        with self._lock, self._transaction():
            rows = self._db.execute("SELECT thing FROM shadows WHERE deleted = 0 ORDER BY thing").fetchall()
        return [row[0] for row in rows]

    # --- request parsing ------------------------------------------------------------------------------

    def _parse_update(self, payload: bytes | str | dict) -> _UpdateRequest:
        document = _decode_request(payload, self.max_document_bytes)
        if not isinstance(document, dict):
            raise ShadowError(400, INVALID_JSON)
        token = document.get("clientToken")
        if "clientToken" in document:
            _check_client_token(token)
        if "state" not in document:
            raise ShadowError(400, MISSING_STATE, token)
        state = document["state"]
        if state is not None and not isinstance(state, dict):
            raise ShadowError(400, STATE_NOT_OBJECT, token)
        for name, section in (state or {}).items():
            if name not in SECTIONS:
                raise ShadowError(400, INVALID_STATE_NODE, token)
            if section is not None and not isinstance(section, dict):
                raise ShadowError(400, SECTION_NOT_OBJECT[name], token)
        version = document.get("version")
        valid_version = isinstance(version, int) and not isinstance(version, bool) and version >= 0
        if "version" in document and not valid_version:
            raise ShadowError(400, INVALID_VERSION, token)
        for section in (state or {}).values():
            if section is not None and _deeper_than(section, MAX_NESTING_DEPTH):
                raise ShadowError(400, TOO_DEEP, token)
            # AWS: "Arrays can't have null values": a stored value never holds a null.
            if section is not None and _has_null_in_array(section, in_array=False):
                raise ShadowError(400, INVALID_JSON, token)
        return _UpdateRequest(state=state, client_token=token, version=version)

    # --- storage --------------------------------------------------------------------------------------

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def _load(self, thing: str) -> _StoredShadow | None:
        row = self._db.execute(
            "SELECT version, deleted, state, metadata FROM shadows WHERE thing = ?", (thing,)
        ).fetchone()
        if row is None:
            return None
        return _StoredShadow(row[0], bool(row[1]), json.loads(row[2]), json.loads(row[3]))

    def _store(self, thing: str, shadow: _StoredShadow, now: int) -> None:
        self._db.execute(
            "INSERT INTO shadows (thing, version, deleted, state, metadata, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(thing) DO UPDATE SET version = excluded.version, deleted = excluded.deleted,"
            " state = excluded.state, metadata = excluded.metadata, updated_at = excluded.updated_at",
            (thing, shadow.version, int(shadow.deleted), _dumps(shadow.state), _dumps(shadow.metadata), now),
        )


class _Transaction:
    """`BEGIN IMMEDIATE` ... `COMMIT` (or `ROLLBACK` on any exception, refusals included)."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self._rollback()
            return
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error:
            # A COMMIT that failed (a full disk) may leave the transaction open: end it, or the next
            # BEGIN fails too and the engine stays unusable after space returns.
            self._rollback()
            raise

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")


# --- request helpers -----------------------------------------------------------------------------------


def client_token_from(payload: bytes | str | dict | None) -> str | None:
    """The clientToken of a get or delete request body, whose content AWS otherwise ignores.

    A body that is empty or not a JSON object has no token; a token that is not a string of at most 64
    bytes is refused (400 Invalid clientToken).
    """
    if isinstance(payload, dict):
        document: Any = payload
    else:
        try:
            text = payload.decode("utf-8") if isinstance(payload, bytes) else (payload or "")
            document = json.loads(text) if text.strip() else None
        except (ValueError, RecursionError):
            return None
    if not isinstance(document, dict) or "clientToken" not in document:
        return None
    token = document["clientToken"]
    _check_client_token(token)
    return token


def _decode_request(payload: bytes | str | dict, max_bytes: int) -> Any:
    """Parse a request body as strict JSON (UTF-8, no NaN/Infinity, every string valid Unicode)."""
    if isinstance(payload, dict):
        try:
            payload = json.dumps(payload, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ShadowError(400, INVALID_JSON) from error
    raw = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else bytes(payload)
    if len(raw) > max_bytes:
        raise ShadowError(413, TOO_LARGE)
    try:
        document = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float)
        # Lone surrogates ("\ud800") parse but are not Unicode text: refuse them rather than store them.
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except RecursionError as error:
        raise ShadowError(400, TOO_DEEP) from error
    except ValueError as error:  # JSONDecodeError and UnicodeError are ValueErrors
        raise ShadowError(400, INVALID_JSON) from error
    return document


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} does not fit a double")
    return value


def _check_thing_name(thing: str) -> None:
    if not isinstance(thing, str) or not THING_NAME_PATTERN.fullmatch(thing):
        raise ShadowError(400, f"Invalid thing name: {thing!r}")


def _check_client_token(token: Any) -> None:
    if token is None:
        return
    if not isinstance(token, str) or len(token.encode("utf-8", "surrogatepass")) > MAX_CLIENT_TOKEN_BYTES:
        raise ShadowError(400, INVALID_CLIENT_TOKEN)


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether objects/arrays nest more than `limit` levels (the section object itself is level 1)."""
    if not isinstance(value, (dict, list)):
        return False
    if limit == 0:
        return True
    children = value.values() if isinstance(value, dict) else value
    return any(_deeper_than(child, limit - 1) for child in children)


def _has_null_in_array(value: Any, in_array: bool) -> bool:
    if value is None:
        return in_array
    if isinstance(value, dict):
        return any(_has_null_in_array(child, in_array) for child in value.values())
    if isinstance(value, list):
        return any(_has_null_in_array(child, True) for child in value)
    return False


# --- document semantics --------------------------------------------------------------------------------


def _apply_update(state: dict, metadata: dict, request_state: dict | None, now: int) -> None:
    """Merge a request's state into the stored sections and their metadata, in place."""
    if request_state is None:
        state.clear()
        metadata.clear()
        return
    for name in SECTIONS:
        if name not in request_state:
            continue
        patch = request_state[name]
        if patch is None:
            state.pop(name, None)
            metadata.pop(name, None)
            continue
        section = state.setdefault(name, {})
        section_metadata = metadata.setdefault(name, {})
        _merge(section, section_metadata, patch, now)
        # An emptied section disappears from the document, as AWS shows it.
        if not section:
            del state[name]
            del metadata[name]


def _merge(target: dict, target_metadata: dict, patch: dict, now: int) -> None:
    """Merge `patch` into `target`; `target_metadata` mirrors `target`'s shape and follows every change."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
            target_metadata.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], target_metadata[key], value, now)
        else:
            # A new key, a changed type or a scalar/array: the patch value replaces what was there, minus
            # the nulls inside it (a null deletes; it never stores).
            target[key] = _without_nulls(value)
            target_metadata[key] = _leaf_metadata(target[key], now)


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_nulls(child) for key, child in value.items() if child is not None}
    return value


def _leaf_metadata(value: Any, now: int) -> Any:
    """Metadata shaped like `value`: every scalar (null included) becomes `{"timestamp": now}`."""
    if isinstance(value, dict):
        return {key: _leaf_metadata(child, now) for key, child in value.items()}
    if isinstance(value, list):
        return [_leaf_metadata(child, now) for child in value]
    return {"timestamp": now}


def _request_metadata(request_state: dict | None, now: int) -> dict:
    """The metadata of `.../update/accepted`: the request's own fields, each stamped with this update."""
    if request_state is None:
        return {}
    return {name: _leaf_metadata(section, now) for name, section in request_state.items()}


def _delta(desired: dict, reported: dict) -> dict:
    """Desired minus reported: each desired key that reported lacks or holds another value; objects on both
    sides are compared key by key, so the delta keeps the path from the root to each difference."""
    delta = {}
    for key, wanted in desired.items():
        if key not in reported:
            delta[key] = wanted
            continue
        have = reported[key]
        if isinstance(wanted, dict) and isinstance(have, dict):
            nested = _delta(wanted, have)
            if nested:
                delta[key] = nested
        elif not json_equal(wanted, have):
            delta[key] = wanted
    return delta


def _delta_metadata(delta: dict, desired_metadata: dict) -> dict:
    """The desired metadata of exactly the delta's fields (AWS: delta metadata equals desired metadata)."""
    result = {}
    for key, value in delta.items():
        entry = desired_metadata.get(key)
        nested = isinstance(value, dict) and isinstance(entry, dict)
        result[key] = _delta_metadata(value, entry) if nested else entry
    return result


def json_equal(left: Any, right: Any) -> bool:
    """Equality of JSON values: numbers by value (1 == 1.0), but `true` is not `1` as Python's == says.

    The one rule for the delta and for shadow sync (`simcore.cloud.sync`); docs/shadow.md, "Equality".
    """
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[key], right[key]) for key in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(json_equal(a, b) for a, b in zip(left, right, strict=True))
    return type(left) is type(right) and left == right


def _snapshot(stored: _StoredShadow) -> dict:
    """A shadow as `.../update/documents` shows it in `previous` and `current`."""
    return {"state": stored.state, "metadata": stored.metadata, "version": stored.version}


def _state_bytes(state: dict) -> int:
    """The size that counts against the document limit: desired plus reported, compact UTF-8 JSON.
    Metadata does not count (AWS: "Metadata do not contribute to the document size")."""
    return sum(len(_dumps(section).encode("utf-8")) for section in state.values())


def _with_token(document: dict, client_token: str | None) -> dict:
    if client_token is not None:
        document["clientToken"] = client_token
    return document


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def dumps_document(document: dict) -> bytes:
    """A document as the compact UTF-8 JSON bytes published on shadow topics."""
    return _dumps(document).encode("utf-8")
