"""The stream manager's operations: one decoded request in, one response out, over the store.

Each handler takes the request map and returns the response map (status Success); a refusal is a
`StreamError`, turned into the same response op with its status and message by `answer`. ReadMessages
waits (without holding anything) for new appends up to its `readTimeoutMillis`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from simcore.streams.definitions import MAX_LONG, MAX_MILLIS
from simcore.streams.errors import StreamError
from simcore.streams.frames import RESPONSE_OP, Op, Status
from simcore.streams.store import StreamStore

Handler = Callable[[Mapping[str, Any]], Awaitable[dict[str, Any]]]


class AppendWaiters:
    """Readers waiting for a stream to grow, woken from whichever thread appends."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self._waiting: dict[str, set[asyncio.Future]] = {}

    def future(self, name: str) -> asyncio.Future:
        """A future that completes at the next append to (or deletion of) `name`."""
        future = self.loop.create_future()
        self._waiting.setdefault(name, set()).add(future)
        future.add_done_callback(lambda done: self._waiting.get(name, set()).discard(done))
        return future

    def notify(self, name: str) -> None:
        """Wake `name`'s readers (any thread).

        Nothing to do when none waits: a reader registers its future before it reads the stream, so an append
        that finished before this check is one that reader's read sees.
        """
        if name in self._waiting:
            self.loop.call_soon_threadsafe(self._wake, name)

    def _wake(self, name: str) -> None:
        for future in list(self._waiting.pop(name, ())):
            if not future.done():
                future.set_result(None)


def _int_option(options: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = options.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise StreamError(Status.InvalidRequest, f"readMessagesOptions.{key} must be an integer from {low} to {high}")
    return value


class Operations:
    """The handlers, by request operation."""

    def __init__(self, store: StreamStore, waiters: AppendWaiters, *, max_response_bytes: int,
                 max_read_timeout_ms: int, blocking: Callable[..., Awaitable[Any]]):
        """`blocking(function, *args)` runs a call that may wait on the disk (an fsync) off the loop."""
        self.store = store
        self.waiters = waiters
        self.max_response_bytes = max_response_bytes
        self.max_read_timeout_ms = max_read_timeout_ms
        self.blocking = blocking
        self.handlers: dict[Op, Handler] = {
            Op.CreateMessageStream: self.create,
            Op.UpdateMessageStream: self.update,
            Op.DeleteMessageStream: self.delete,
            Op.DescribeMessageStream: self.describe,
            Op.ListStreams: self.list_streams,
            Op.AppendMessage: self.append,
            Op.ReadMessages: self.read,
        }

    def answer_now(self, operation: int, request: Mapping[str, Any]) -> tuple[Op, dict[str, Any]] | None:
        """The answer to a request that never waits (all but ReadMessages and appends to a flushOnWrite stream),
        served on the spot without a task of its own; None for one that may wait (use `answer`)."""
        if operation == Op.ReadMessages:
            return None
        if operation == Op.AppendMessage:
            stream = self.store.streams.get(request.get("name"))  # type: ignore[arg-type]
            if stream is None or stream.settings.flush_on_write:
                return None
            request_id = request.get("requestId")
            try:
                sequence = self.store.append(stream.name, request.get("payload"))
            except StreamError as error:
                return Op.AppendMessageResponse, {"requestId": request_id, "status": int(error.status),
                                                  "errorMessage": error.message}
            except OSError as error:
                return Op.AppendMessageResponse, {"requestId": request_id, "status": int(Status.UnknownFailure),
                                                  "errorMessage": str(error)}
            return Op.AppendMessageResponse, {"requestId": request_id, "status": 0, "sequenceNumber": sequence}
        return None

    async def answer(self, operation: int, request: Mapping[str, Any]) -> tuple[Op, dict[str, Any]]:
        """The response op and map for one request (every failure a status, never an exception)."""
        request_id = request.get("requestId")
        try:
            op = Op(operation)
            handler = self.handlers[op]
        except (ValueError, KeyError):
            return Op.UnknownOperationError, {
                "requestId": request_id, "status": int(Status.UnknownOperation),
                "errorMessage": f"operation {operation} is not one this server knows",
            }
        response_op = RESPONSE_OP[op]
        try:
            if not isinstance(request_id, str) or not request_id:
                raise StreamError(Status.InvalidRequest, "requestId is required")
            body = await handler(request)
        except StreamError as error:
            return response_op, {"requestId": request_id, "status": int(error.status), "errorMessage": error.message}
        except OSError as error:
            status = Status.MessageStoreReadError if op == Op.ReadMessages else Status.UnknownFailure
            return response_op, {"requestId": request_id, "status": int(status), "errorMessage": str(error)}
        return response_op, {"requestId": request_id, "status": int(Status.Success), **body}

    async def create(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """CreateMessageStream."""
        self.store.create(request.get("definition"))
        return {}

    async def update(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """UpdateMessageStream: the whole definition replaced."""
        self.store.update(request.get("definition"))
        return {}

    async def delete(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """DeleteMessageStream."""
        name = request.get("name")
        self.store.delete(name)
        self.waiters.notify(str(name))
        return {}

    async def describe(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """DescribeMessageStream: definition, storage status, export statuses."""
        return {"messageStreamInfo": self.store.get(request.get("name")).describe()}

    async def list_streams(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """ListStreams."""
        return {"streams": self.store.names()}

    async def append(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """AppendMessage: the new message's sequence number."""
        name, payload = request.get("name"), request.get("payload")
        stream = self.store.get(name)
        if stream.settings.flush_on_write:
            sequence = await self.blocking(functools.partial(self.store.append, name, payload))
        else:
            sequence = self.store.append(name, payload)
        return {"sequenceNumber": sequence}

    async def read(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """ReadMessages: from the desired start (the oldest when it is gone), at least min, at most max,
        waiting up to the read timeout for min to be there; NotEnoughMessages otherwise."""
        name = request.get("streamName")
        options = request.get("readMessagesOptions") or {}
        if not isinstance(options, Mapping):
            raise StreamError(Status.InvalidRequest, "readMessagesOptions must be a map")
        start = _int_option(options, "desiredStartSequenceNumber", 0, 0, MAX_LONG)
        minimum = _int_option(options, "minMessageCount", 1, 1, 2_147_483_647)
        maximum = _int_option(options, "maxMessageCount", max(1, minimum), 1, 2_147_483_647)
        timeout_ms = _int_option(options, "readTimeoutMillis", 0, 0, MAX_MILLIS)
        if minimum > maximum:
            raise StreamError(Status.InvalidRequest, "minMessageCount must be at most maxMessageCount")
        if timeout_ms > self.max_read_timeout_ms:
            raise StreamError(Status.InvalidRequest,
                              f"readTimeoutMillis may be at most {self.max_read_timeout_ms} on this server")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        while True:
            stream = self.store.get(name)
            future = self.waiters.future(stream.name) if timeout_ms else None
            messages = stream.log.read(start, maximum, self.max_response_bytes)
            if len(messages) >= minimum or (messages and len(messages) < minimum and _size(messages) >=
                                              self.max_response_bytes):
                if future is not None:
                    future.cancel()
                if len(messages) < minimum:
                    raise StreamError(Status.ResponsePayloadTooLarge,
                                      f"{minimum} messages exceed the {self.max_response_bytes}-byte response limit")
                return {"messages": [
                    {"streamName": stream.name, "sequenceNumber": message.sequence_number,
                     "ingestTime": message.ingest_time_ms, "payload": message.payload}
                    for message in messages
                ]}
            remaining = deadline - loop.time()
            if future is None or remaining <= 0:
                if future is not None:
                    future.cancel()
                raise StreamError(Status.NotEnoughMessages,
                                  f"stream {stream.name!r} holds {len(messages)} of the {minimum} messages asked for "
                                  f"from sequence number {start}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(future, remaining)


def _size(messages: list) -> int:
    return sum(len(message.payload) for message in messages)
