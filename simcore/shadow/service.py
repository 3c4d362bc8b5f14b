"""GGShadowService: shadow requests by topic in, the invoke result and the topics AWS IoT would publish out.

A thin adapter over `simcore.shadow.engine.ShadowEngine` (moto's `responses.py` to its `models.py`): it reads the
thing and the operation from `$aws/things/<thing>/shadow/{get,update,delete}`, calls the engine, and turns
the answer into bytes. It publishes nothing itself: `handle_and_publish` serves a request and hands each of
`ShadowOutcome.publications` to the caller's publish (the core's router, as `GGShadowService`, or the stand-in
cloud's MQTT link). Errors come back as a normal result whose JSON body is
`{code, message, timestamp[, clientToken]}`, which is what greengrasssdk's shadow client expects.
`open_shadow_service(path)` is the one place that wires an engine on a SQLite file to a service.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from simcore.errors import ShadowError
from simcore.shadow.engine import THING_NAME_PATTERN, ShadowEngine, UpdateResult, client_token_from, dumps_document

log = logging.getLogger(__name__)

SHADOW_TOPIC_PREFIX = "$aws/things/"
_OPERATION_TOPIC = re.compile(r"\$aws/things/([^/]+)/shadow/(get|update|delete)")
_NAMED_SHADOW_TOPIC = re.compile(r"\$aws/things/[^/]+/shadow/name/.*")
INTERNAL_FAILURE = "Internal service failure"

ShadowListener = Callable[[str, UpdateResult], None]
Publish = Callable[[str, bytes], None]


class ShadowTopicError(ShadowError):
    """The topic is not a classic shadow request topic (`$aws/things/<thing>/shadow/{get,update,delete}`)."""

    def __init__(self, message: str):
        super().__init__(400, message)


@dataclass(frozen=True)
class ShadowRequestTopic:
    """A parsed shadow request topic."""

    thing: str
    operation: str

    def reply_topic(self, outcome: str) -> str:
        """`$aws/things/<thing>/shadow/<operation>/<outcome>` (accepted, rejected, delta or documents)."""
        return f"{SHADOW_TOPIC_PREFIX}{self.thing}/shadow/{self.operation}/{outcome}"


def parse_shadow_topic(topic: str) -> ShadowRequestTopic:
    """Read the thing and the operation from a shadow request topic; ShadowTopicError (400) if it is none.

    Greengrass v1 has classic shadows only, so named-shadow topics are refused by name.
    """
    if _NAMED_SHADOW_TOPIC.fullmatch(topic):
        raise ShadowTopicError(f"Named shadows are not supported by Greengrass v1 (classic only): {topic}")
    match = _OPERATION_TOPIC.fullmatch(topic)
    if match is None:
        raise ShadowTopicError(
            f"Not a shadow request topic: {topic!r}; expected $aws/things/<thing>/shadow/(get|update|delete)"
        )
    thing, operation = match.groups()
    if not THING_NAME_PATTERN.fullmatch(thing):
        raise ShadowTopicError(f"Invalid thing name in shadow topic: {thing!r}")
    return ShadowRequestTopic(thing, operation)


@dataclass
class ShadowOutcome:
    """What one request produced: the invoke result, and the (topic, payload) pairs to publish in order."""

    response: bytes
    publications: list[tuple[str, bytes]] = field(default_factory=list)


class ShadowHandler(Protocol):
    """What serves shadow requests by topic: `ShadowService`, or the same behind a lock."""

    def handle(self, topic: str, payload: bytes) -> ShadowOutcome:
        """Serve one request; the outcome holds the response and the topics to publish."""
        ...


def handle_and_publish(handler: ShadowHandler, topic: str, payload: bytes, publish: Publish) -> bytes:
    """Serve one request, hand each outcome topic to `publish(topic, payload)` in order; the response.

    Every transport does exactly this (the router's `GGShadowService` target, the IPC invoke, a change the
    cloud asks for, the stand-in cloud's MQTT service), so the order of the outcome topics is the same everywhere.
    """
    outcome = handler.handle(topic, payload)
    for publication_topic, publication in outcome.publications:
        publish(publication_topic, publication)
    return outcome.response


class ShadowService:
    """The local shadow service: one engine behind the shadow request topics.

    `listeners` are called as `listener(thing, result)` after each accepted update or delete (shadow sync
    pushes changes up from there). A listener that raises is logged and does not undo the change.
    """

    def __init__(self, engine: ShadowEngine):
        self.engine = engine
        self.listeners: list[ShadowListener] = []
        self._counter_lock = threading.Lock()
        self.storage_failures = 0  # requests refused because the database could not be written or read
        self.last_storage_error = ""

    def counters(self) -> dict[str, int | str]:
        """What `simcore status` shows under `shadow`: storage failures (a full disk) and the last one."""
        with self._counter_lock:
            return {"storage_failures": self.storage_failures, "last_storage_error": self.last_storage_error}

    def handle(self, topic: str, payload: bytes) -> ShadowOutcome:
        """Serve one request published (or invoked) on a shadow request topic."""
        try:
            request = parse_shadow_topic(topic)
        except ShadowTopicError as error:
            # No thing to answer on: the error goes back to the caller only.
            return ShadowOutcome(dumps_document(error.to_document(self.engine.timestamp())))
        try:
            if request.operation == "update":
                result = self.engine.update(request.thing, payload)
                return self._accepted(request, result, _update_publications(request, result))
            if request.operation == "delete":
                result = self.engine.delete_with_result(request.thing, payload)
                return self._accepted(request, result, [(request.reply_topic("accepted"), result.accepted)])
            document = self.engine.get(request.thing, client_token_from(payload))
            body = dumps_document(document)
            return ShadowOutcome(body, [(request.reply_topic("accepted"), body)])
        except ShadowError as error:
            return self._rejected(request, error)
        except sqlite3.Error as error:  # SQLITE_FULL (a full disk), I/O errors: the request was not stored
            return self._rejected(request, self._storage_failed(request, payload, error))

    def _storage_failed(self, request: ShadowRequestTopic, payload: bytes, error: sqlite3.Error) -> ShadowError:
        with self._counter_lock:
            self.storage_failures += 1
            self.last_storage_error = f"{request.operation} of {request.thing}: {error}"
            count = self.storage_failures
        log.error("shadow %s of %s not stored (%d storage failures so far): %s", request.operation,
                  request.thing, count, error)
        try:
            token = client_token_from(payload)
        except ShadowError:
            token = None
        # AWS's answer when the service cannot serve the request: 500 "Internal service failure".
        return ShadowError(500, INTERNAL_FAILURE, token)

    def _rejected(self, request: ShadowRequestTopic, error: ShadowError) -> ShadowOutcome:
        body = dumps_document(error.to_document(self.engine.timestamp()))
        return ShadowOutcome(body, [(request.reply_topic("rejected"), body)])

    def _accepted(
        self, request: ShadowRequestTopic, result: UpdateResult, publications: list[tuple[str, dict]]
    ) -> ShadowOutcome:
        for listener in list(self.listeners):
            try:
                listener(request.thing, result)
            except Exception:  # a broken listener must not lose an accepted change or the reply to it
                log.exception("shadow listener %r failed on %s %s", listener, request.thing, result.operation)
        return ShadowOutcome(
            dumps_document(result.accepted),
            [(topic, dumps_document(document)) for topic, document in publications],
        )


def _update_publications(request: ShadowRequestTopic, result: UpdateResult) -> list[tuple[str, dict]]:
    publications = [
        (request.reply_topic("accepted"), result.accepted),
        (request.reply_topic("documents"), result.documents),
    ]
    if result.delta is not None:
        publications.append((request.reply_topic("delta"), result.delta))
    return publications


def open_shadow_service(database: str | Path | None = None) -> ShadowService:
    """A `ShadowService` over a `ShadowEngine` stored in the SQLite file `database` (its folder is made).

    None keeps the shadows in memory only. The engine is `service.engine`.
    """
    if database is not None:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    return ShadowService(ShadowEngine(database))
