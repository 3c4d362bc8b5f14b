"""Recorders that stand where the real parts send: they keep what reached them, for assertions.

Standard library only and Python 3.8-compatible: the Lambdas' unit tests (also run under Python 3.8) use
`RecordingShadow`.
"""

from __future__ import annotations

import json
import threading
import time


class _MessageLog:
    """Messages as tuples whose first two fields are topic and payload, in arrival order, and waits on them."""

    def __init__(self) -> None:
        self.messages: list[tuple] = []
        self._changed = threading.Condition()

    def _record(self, message: tuple) -> None:
        with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    def _on(self, topic: str) -> list:
        return [message[1] for message in self.messages if message[0] == topic]

    def on(self, topic: str) -> list:
        """Payloads received on `topic`, in order."""
        with self._changed:
            return self._on(topic)

    def wait_for(self, topic: str, count: int = 1, timeout: float = 20.0) -> list:
        """At least `count` payloads on `topic`; AssertionError at the deadline."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = self._on(topic)
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{len(found)} of {count} messages on {topic} within {timeout} s")
                self._changed.wait(remaining)


class RecordingCloud(_MessageLog):
    """A cloud port (`publish(topic, payload)`) that keeps what reaches `cloud`: `messages` of (topic, bytes)."""

    def publish(self, topic: str, payload: bytes) -> None:
        """Keep one message sent to the cloud."""
        self._record((topic, payload))


class RecordingPublisher(_MessageLog):
    """What a connector published through `publish(topic, payload, source=...)`: `messages` of (topic, dict, source).

    Payloads are JSON (every connector answers in JSON); `on` and `wait_for` give them decoded.
    """

    def __call__(self, topic: str, payload: bytes, source: str) -> None:
        self._record((topic, json.loads(payload), source))


class RecordingShadow:
    """Stands where the SDK's shadow calls go: records update payloads, answers gets, fails on request."""

    def __init__(self, document=None, thing_name="rain-thing"):
        self.thing_name = thing_name
        self.updates = []
        self.gets = 0
        self.document = document or {}
        self.failures = []  # exceptions raised by the next updates, in order
        self.changed = threading.Condition()

    def update(self, thing_name, payload):
        """`update_thing_shadow`: the next queued failure, or the update recorded."""
        assert thing_name == self.thing_name
        if self.failures:
            raise self.failures.pop(0)
        with self.changed:
            self.updates.append(json.loads(payload))
            self.changed.notify_all()
        return {"payload": b"{}"}

    def get(self, thing_name):
        """`get_thing_shadow`: the document given at construction."""
        self.gets += 1
        return {"payload": json.dumps(self.document).encode()}

    def reported(self):
        """The `reported` state of every update, in order."""
        return [update["state"]["reported"] for update in self.updates]

    def wait_for(self, count, timeout=30.0):
        """At least `count` updates; AssertionError (listing the updates) at the deadline."""
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.updates) >= count, timeout), self.updates
