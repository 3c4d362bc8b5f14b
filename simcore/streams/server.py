"""The stream manager's TCP server: handshake, client authentication, frames to operations and back.

It runs inside the core's process, on an asyncio loop in its own thread (docs/stream-manager.md says why).
Bounds: at most `max_connections` connections (one more is closed at once); the handshake must complete
within `handshake_timeout_s` and its Connect frame is at most 64 KiB, so nothing unauthenticated holds more;
afterwards a frame is at most `max_frame_bytes` (a longer one is read off in chunks and refused with
RequestPayloadTooLarge) and a connection has at most `max_in_flight` requests being served (reading stops
until one ends). Requests on one connection are served concurrently and answered in any order, by request id.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cbor2

from simcore.streams.frames import (
    CONNECT_VERSION,
    PROTOCOL_VERSION,
    RESPONSE_OP,
    SUPPORTED_PROTOCOL_VERSIONS,
    FrameTooLarge,
    Op,
    Status,
    encode_frame,
    peek_request_id,
    read_frame,
)
from simcore.streams.operations import AppendWaiters, Operations
from simcore.streams.store import StreamStore

log = logging.getLogger(__name__)

SERVER_VERSION = "1.1.0-simcore"
CONNECT_FRAME_MAX = 64 * 1024


@dataclass(frozen=True)
class ServerLimits:
    """The server's bounds (defaults in simcore.defaults)."""

    max_connections: int
    max_frame_bytes: int
    max_in_flight: int
    handshake_timeout_s: float
    max_response_bytes: int
    max_read_timeout_ms: int


class StreamManagerServer:
    """Serves the protocol on 127.0.0.1:`port` (0: a free port) over `store`.

    `authenticate(token)` names the caller a token belongs to, or None; with `require_auth` False every
    local process may connect (v1's `STREAM_MANAGER_AUTHENTICATE_CLIENT=false`).
    """

    def __init__(self, store: StreamStore, port: int, limits: ServerLimits, *, require_auth: bool,
                 authenticate: Callable[[str | None], str | None], host: str = "127.0.0.1"):
        self.store = store
        self.host = host
        self.requested_port = port
        self.limits = limits
        self.require_auth = require_auth
        self.authenticate = authenticate
        self.port: int | None = None
        self.loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task] = set()
        self._blocking_pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="stream-fsync")
        self.counters = {"connections": 0, "refused_connections": 0, "unauthorized": 0, "requests": 0,
                         "oversized_frames": 0}
        self.waiters = AppendWaiters(self.loop)
        self.operations = Operations(
            store, self.waiters,
            max_response_bytes=limits.max_response_bytes,
            max_read_timeout_ms=limits.max_read_timeout_ms,
            blocking=lambda call: self.loop.run_in_executor(self._blocking_pool, call),
        )
        store.listeners.append(self.waiters.notify)

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> int:
        """Listen and serve from a thread; the port. OSError when the port is taken."""
        started: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self._server = self.loop.run_until_complete(
                    asyncio.start_server(self._serve, self.host, self.requested_port, limit=1 << 16))
            except OSError as error:
                started.set_exception(error)
                return
            started.set_result(self._server.sockets[0].getsockname()[1])
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, name="stream-manager", daemon=True)
        self._thread.start()
        try:
            self.port = started.result(timeout=30)
        except BaseException:
            self._thread.join(timeout=5)
            self._thread = None
            self.loop.close()
            raise
        return self.port

    def stop(self) -> None:
        """Close the listener and every connection, then the loop."""
        if self._thread is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        self._thread = None
        self._blocking_pool.shutdown(wait=False)

    # -- one connection ------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._connections) >= self.limits.max_connections:
            self.counters["refused_connections"] += 1
            writer.close()
            return
        assert task is not None
        self._connections.add(task)
        self.counters["connections"] += 1
        try:
            caller = await asyncio.wait_for(self._handshake(reader, writer), self.limits.handshake_timeout_s)
            if caller is not None:
                await self._requests(reader, writer)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError, FrameTooLarge):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str | None:
        version = (await reader.readexactly(1))[0]
        operation, payload = await read_frame(reader, CONNECT_FRAME_MAX)
        request = _decode(payload)
        request_id = request.get("requestId") if isinstance(request, dict) else None
        status, message, caller = Status.Success, None, None
        if version != CONNECT_VERSION:
            status, message = Status.UnsupportedConnectVersion, f"connect version {version} is not 1"
        elif operation != Op.Connect or not isinstance(request, dict):
            status, message = Status.UnexpectedOperation, "the first frame must be a Connect request"
        else:
            token = request.get("authToken")
            caller = self.authenticate(token if isinstance(token, str) else None)
            if caller is None and self.require_auth:
                self.counters["unauthorized"] += 1
                status, message = Status.Unauthorized, "authToken is missing or not a token this core issued"
            caller = caller or f"local-{uuid.uuid4()}"
        response: dict[str, Any] = {"requestId": request_id, "status": int(status),
                                    "protocolVersion": PROTOCOL_VERSION,
                                    "supportedProtocolVersions": list(SUPPORTED_PROTOCOL_VERSIONS),
                                    "serverVersion": SERVER_VERSION}
        if message is not None:
            response["errorMessage"] = message
        else:
            response["clientIdentifier"] = caller
        writer.write(bytes([CONNECT_VERSION]) + encode_frame(Op.ConnectResponse, _drop_none(response)))
        await writer.drain()
        return caller if status == Status.Success else None

    async def _requests(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        in_flight = asyncio.Semaphore(self.limits.max_in_flight)
        pending: set[asyncio.Task] = set()
        try:
            while True:
                try:
                    operation, payload = await read_frame(reader, self.limits.max_frame_bytes)
                except FrameTooLarge as too_large:
                    self.counters["oversized_frames"] += 1
                    response_op, response = _too_large(too_large, self.limits.max_frame_bytes)
                    if response["requestId"] is None:
                        return  # no request id to answer by: closing is the only answer the client can match
                    self._write(writer, response_op, response)
                    continue
                request = _decode(payload)
                if not isinstance(request, dict) or not isinstance(request.get("requestId"), str):
                    return  # not the protocol: there is no request id to answer by
                self.counters["requests"] += 1
                immediate = self.operations.answer_now(operation, request)
                if immediate is not None:
                    self._write(writer, *immediate)
                    if writer.transport.get_write_buffer_size() > (1 << 20):
                        await writer.drain()
                    continue
                await in_flight.acquire()
                task = asyncio.ensure_future(self._one(operation, request, writer, in_flight))
                pending.add(task)
                task.add_done_callback(pending.discard)
        finally:
            for task in pending:
                task.cancel()

    async def _one(self, operation: int, request: dict, writer: asyncio.StreamWriter,
                   in_flight: asyncio.Semaphore) -> None:
        try:
            response_op, response = await self.operations.answer(operation, request)
            self._write(writer, response_op, response)
            if writer.transport.get_write_buffer_size() > (1 << 20):
                await writer.drain()
        except Exception:  # one request's failure must not end the connection's other requests
            log.exception("stream manager request %s failed", request.get("requestId"))
        finally:
            in_flight.release()

    def _write(self, writer: asyncio.StreamWriter, operation: Op, response: dict[str, Any]) -> None:
        if not writer.is_closing():
            writer.write(encode_frame(operation, _drop_none(response)))


def _decode(payload: bytes) -> Any:
    try:
        return cbor2.loads(payload)
    except Exception:  # cbor2 raises several kinds for malformed input
        return None


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if value is not None}


def _too_large(error: FrameTooLarge, limit: int) -> tuple[Op, dict[str, Any]]:
    try:
        response_op = RESPONSE_OP[Op(error.operation)]
    except (ValueError, KeyError):
        response_op = Op.UnknownOperationError
    return response_op, {"requestId": peek_request_id(error.prefix), "status": int(Status.RequestPayloadTooLarge),
                         "errorMessage": f"a request may be at most {limit} bytes, this one is {error.length}"}
