"""The IPC HTTP server: the v1 protocol's paths on 127.0.0.1, each request handed to the dispatcher.

What a local process can make the server hold is bounded before it proves who it is (docs/isolation.md "IPC"):

- the token, the path and the target are checked from the headers alone; no body is read before that;
- a POST or PUT needs a plain `Content-Length` no larger than its call's limit (400, 413 otherwise); the
  bodies being read at once share one byte budget (429 when it is spent). After the 413 an authenticated
  caller's body (up to 6 MB) is read and dropped in chunks, so that a client that sends it whole (the SDK)
  hears the 413 rather than a broken pipe;
- request line and headers together are at most 16 KB (431);
- the token exchange service's path (`simcore.core.tes.TES_PATH`) takes a GET with a worker's token and no
  body: a missing or unknown token is 403 (logged), another method 405, before anything else is done;
- a connection that has not shown a valid token holds one of a few admission slots; a connection beyond
  them is closed at once, without a thread. An authenticated connection moves to a caller slot;
- each request (headers and body) must arrive within the read timeout, counted from when the server
  starts waiting for it; a connection past it is shut down (idle kept-alive connections too).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from simcore.core.ipc.dispatch import (
    API_PREFIX,
    GET_WORK_POLL_S,
    HEADER_CLIENT_CONTEXT,
    HEADER_FUNCTION_ERROR,
    HEADER_INVOCATION_ID,
    HEADER_INVOCATION_TYPE,
    LAMBDA_ERROR_NAMES,
    MAX_INVOKE_BYTES,
    OPERATIONS,
    IPCDispatcher,
    IPCError,
)
from simcore.core.ipc.tokens import Caller
from simcore.core.tes import TES_PATH, TokenExchange
from simcore.core.work_queue import WorkItem
from simcore.defaults import (
    DEFAULT_IPC_ADMISSION_SLOTS,
    DEFAULT_IPC_BODY_BUDGET_BYTES,
    DEFAULT_IPC_CALLER_SLOTS,
    DEFAULT_IPC_READ_TIMEOUT_S,
)
from simcore.errors import SimcoreError, StartError

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024
HEADER_ERROR_TYPE = "X-Amzn-ErrorType"
# How often the deadline watcher looks for connections past their read timeout.
DEADLINE_CHECK_S = 0.2
# Oversized bodies of authenticated callers are drained this much at a time (never held whole).
_DISCARD_CHUNK_BYTES = 64 * 1024

# What a connection beyond the admission slots gets before it is closed (it is never read).
_REFUSAL = (
    b"HTTP/1.1 429 Too many IPC connections\r\nContent-Length: 0\r\nConnection: close\r\n"
    b"X-Amzn-ErrorType: TooManyRequestsException\r\n\r\n"
)


def _size(limit: int) -> str:
    """A limit as a person reads it: `6 MB (6291456 bytes)`, `128 KB (131072 bytes)`."""
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if limit and limit % scale == 0:
            return f"{limit // scale} {unit} ({limit} bytes)"
    return f"{limit} bytes"


class _HeadersTooLarge(Exception):
    """The request line and headers passed MAX_HEADER_BYTES."""


class _ClientGone(Exception):
    """The client closed the connection (or was shut down) before its body was complete."""


class _BoundedReader:
    """The connection's read side; while `header_budget` is set, lines beyond it raise _HeadersTooLarge."""

    def __init__(self, raw: Any):
        self._raw = raw
        self.header_budget: int | None = None
        self.ended_in_headers = False

    def readline(self, limit: int = -1) -> bytes:
        """One line, counted against the header budget while one is set."""
        if self.header_budget is None:
            return self._raw.readline(limit)
        allowed = self.header_budget + 1 if limit < 0 else min(limit, self.header_budget + 1)
        line = self._raw.readline(allowed)
        if not line:  # the stream ended before the blank line that ends the headers
            self.ended_in_headers = True
        self.header_budget -= len(line)
        if self.header_budget < 0:
            raise _HeadersTooLarge()
        return line

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (the caller always passes a checked Content-Length)."""
        return self._raw.read(size)

    def close(self) -> None:
        """Close the underlying file object."""
        self._raw.close()


@dataclass
class _Connection:
    """One accepted connection: which slot it holds and until when it may take to send its request."""

    holds_caller_slot: bool = False
    deadline: float | None = None
    timed_out: bool = False


class _IPCHandler(BaseHTTPRequestHandler):
    """HTTP adapter: check the headers, read a bounded body, call the dispatcher, write one response."""

    protocol_version = "HTTP/1.1"
    server: IPCServer
    rfile: Any

    def setup(self) -> None:
        # Every blocking socket operation (a read, a response write) gives up after the read timeout.
        self.timeout = self.server.read_timeout_s
        super().setup()
        self.rfile = _BoundedReader(self.rfile)
        # One write per response and no Nagle delay between the request's small segments.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._state = self.server.connection_state(self.connection)
        self._expect_continue = False
        self._undrained = 0  # bytes of a refused body still to drop after its answer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        log.debug("IPC %s: " + format, self.client_address[0], *args)

    def handle_one_request(self) -> None:
        """One request, its line and headers within MAX_HEADER_BYTES and the whole of it within the deadline."""
        self.rfile.header_budget = MAX_HEADER_BYTES
        self._expect_continue = False
        self.server.set_deadline(self._state, time.monotonic() + self.server.read_timeout_s)
        try:
            super().handle_one_request()
        except _HeadersTooLarge:
            self.close_connection = True
            self.server.count("headers_too_large")
            if not hasattr(self, "request_version"):  # the request line itself was too long: never parsed
                self.request_version = "HTTP/1.1"
            self._fail(IPCError(f"The request line and headers exceed {MAX_HEADER_BYTES} bytes", http_status=431))
        except _ClientGone:
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        finally:
            self.server.set_deadline(self._state, None)

    def handle_expect_100(self) -> bool:
        """Say `100 Continue` only once the headers are checked (see _read_body), never before the token."""
        self._expect_continue = True
        return True

    def _target(self) -> tuple[str, str]:
        if not self.path.startswith(API_PREFIX):
            raise IPCError(f"Unknown path {self.path[:200]}", http_status=404)
        rest = unquote(self.path[len(API_PREFIX) :])
        for suffix in ("/work", "/initialized"):
            if rest.endswith(suffix):
                return rest[: -len(suffix)], suffix
        return rest, ""

    def _content_length(self) -> int | None:
        """The request's declared body length; None when it declares none. IPCError 400 when malformed."""
        if self.headers.get("Transfer-Encoding") is not None:
            raise IPCError("Transfer-Encoding is not supported: send the body with a Content-Length", http_status=400)
        values = self.headers.get_all("Content-Length") or []
        if not values:
            return None
        if len(values) > 1:
            raise IPCError("The request carries more than one Content-Length header", http_status=400)
        raw = values[0].strip()
        if not (raw.isascii() and raw.isdigit()):
            raise IPCError(
                f"Content-Length must be a whole number of bytes, not {values[0][:40]!r}", http_status=400
            )
        return int(raw)

    def _read_body(self, method: str, limit: int) -> bytes:
        """The body of a request whose headers passed every check: at most `limit` bytes, read once."""
        length = self._content_length()
        if method not in ("POST", "PUT"):
            if length:
                raise IPCError(f"A {method} request carries no body", http_status=400)
            return b""
        if length is None:
            raise IPCError(f"A {method} request needs a Content-Length header", http_status=400)
        if length > limit:
            self.server.count("bodies_too_large")
            if length <= MAX_INVOKE_BYTES and not self._expect_continue:  # one the client sends anyway
                self._undrained = length
            raise IPCError(
                f"The request body is {length} bytes; the limit is {_size(limit)}", http_status=413
            )
        if not self.server.reserve_body(length):
            raise IPCError(
                "Too many request bodies are being received at once; retry shortly", http_status=429
            )
        try:
            if self._expect_continue:
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                self.wfile.flush()
            body = self.rfile.read(length) if length else b""
        finally:
            self.server.release_body(length)
        if len(body) < length:
            raise _ClientGone()
        return body

    def _discard_body(self) -> None:
        """Read and drop the oversized body of an authenticated caller after its 413, in small chunks.

        The SDK's HTTP client sends the whole body before it reads an answer: closing on it mid-body would
        reach it as a broken pipe, not as the limit. Only bodies within the largest any call takes (an
        invoke's 6 MB) are drained, within the read deadline; a bigger one is not read at all.
        """
        remaining, self._undrained = self._undrained, 0
        with contextlib.suppress(OSError):
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, _DISCARD_CHUNK_BYTES))
                if not chunk:
                    return
                remaining -= len(chunk)

    def _caller(self, operation: str, missing_status: int = 401) -> Caller:
        caller = self.server.dispatcher.authenticate(
            self.headers.get("Authorization"), operation, f"{self.client_address[0]}:{self.client_address[1]}",
            missing_status=missing_status,
        )
        if not self._state.holds_caller_slot and not self.server.promote(self._state):
            raise IPCError(
                f"Too many IPC connections: {self.server.caller_slots} authenticated connections are open",
                http_status=429,
            )
        return caller

    def _answer(
        self,
        status: int,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        reason: str | None = None,
    ) -> None:
        # send_response_only: no access-log call and no Date/Server headers, which IPC clients never read.
        self.send_response_only(status, reason)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(body)))
        self._headers_buffer.append(b"\r\n" + body)
        self.flush_headers()

    def _fail(self, error: SimcoreError) -> None:
        """The one place an error becomes an IPC answer: its HTTP status, its message as the reason phrase.

        The body is `{"errorMessage", "errorType"}`, and `X-Amzn-ErrorType` names AWS Lambda's error for the
        status (TooManyRequestsException, RequestTooLargeException...) where Lambda has one.
        """
        reason = " ".join(error.message.split())[:300].encode("latin-1", "replace").decode("latin-1")
        document: dict[str, str] = {"errorMessage": error.message}
        headers = {"Content-Type": "application/json"}
        error_type = LAMBDA_ERROR_NAMES.get(error.http_status)
        if error_type is not None:
            document["errorType"] = error_type
            headers[HEADER_ERROR_TYPE] = error_type
        self._answer(error.http_status, json.dumps(document).encode(), headers, reason)

    def _serve(self, method: str) -> None:
        self.rfile.header_budget = None
        if self.rfile.ended_in_headers:  # a cut-off request (a closed half-open connection) is not served
            self.close_connection = True
            return
        try:
            if self.path.split("?", 1)[0] == TES_PATH:
                self._serve_credentials(method)
                return
            try:
                function_arn, suffix = self._target()
                operation = OPERATIONS.get((method, suffix))
                if operation is None:
                    raise IPCError(f"{method} is not allowed on {self.path[:200]}", http_status=405)
                # Who, and whether this call may go on, from the headers alone: then, and only then, the body.
                caller = self._caller(operation)
                limit = self.server.dispatcher.body_limit(caller, operation, function_arn, self.headers)
                body = self._read_body(method, limit)
            except SimcoreError:
                # The body (if any) is unread: the connection cannot carry another request.
                self.close_connection = True
                raise
            if not self.server.set_deadline(self._state, None):  # in, unless shut down as it came in
                raise _ClientGone()
            self._dispatch(operation, caller, function_arn, body)
        except SimcoreError as error:
            if error.http_status >= 500:  # the core's fault, not the caller's: worth a line in the log
                log.warning("IPC %s %s answered %s: %s", method, self.path[:200], error.http_status, error)
            self._fail(error)
            self._discard_body()
        except (BrokenPipeError, ConnectionResetError, _ClientGone):
            self.close_connection = True
        except TimeoutError:  # a read or write stalled past the read timeout: nothing more to say to it
            self.close_connection = True
            self.server.count("connections_timed_out")
        except Exception as error:
            log.exception("IPC %s %s failed", method, self.path[:200])
            self.close_connection = True
            self._fail(IPCError(f"Internal error: {error}", http_status=500))

    def _serve_credentials(self, method: str) -> None:
        """A worker's botocore asking for AWS credentials (simcore.core.tes): token first, then the answer."""
        try:
            if method != "GET":
                raise IPCError(f"{method} is not allowed on {TES_PATH}: credentials are a GET", http_status=405)
            self._caller("a credentials request", missing_status=403)
            self._read_body(method, 0)
        except SimcoreError:
            self.close_connection = True
            raise
        if not self.server.set_deadline(self._state, None):
            raise _ClientGone()
        exchange = self.server.credentials
        if exchange is None:
            raise IPCError("This core serves no AWS credentials", http_status=404)
        self._answer(200, exchange.answer(), {"Content-Type": "application/json"})

    def _dispatch(self, operation: str, caller: Caller, function_arn: str, body: bytes) -> None:
        dispatcher = self.server.dispatcher
        if operation == "post_work":
            invocation_id = dispatcher.post_work(
                caller,
                function_arn,
                body,
                self.headers.get(HEADER_CLIENT_CONTEXT),
                self.headers.get(HEADER_INVOCATION_TYPE) or "RequestResponse",
            )
            self._answer(202, headers={HEADER_INVOCATION_ID: invocation_id})
        elif operation == "get_work_result":
            payload, func_err = dispatcher.get_work_result(caller, function_arn, self.headers.get(HEADER_INVOCATION_ID))
            self._answer(200, payload, {HEADER_FUNCTION_ERROR: func_err})
        elif operation == "get_work":
            item = dispatcher.get_work(caller, function_arn, self.server.get_work_poll_s)
            if item is None:
                self._answer(200)
            else:
                self._send_work(item)
        elif operation == "post_work_result":
            dispatcher.post_work_result(
                caller,
                function_arn,
                self.headers.get(HEADER_INVOCATION_ID),
                body,
                self.headers.get(HEADER_FUNCTION_ERROR) or "",
            )
            self._answer(200)
        else:
            dispatcher.put_initialized(caller, function_arn, body)
            self._answer(200)

    def _send_work(self, item: WorkItem) -> None:
        headers = {HEADER_INVOCATION_ID: item.invocation_id, HEADER_CLIENT_CONTEXT: item.client_context}
        self._answer(200, item.payload, headers)

    def do_GET(self) -> None:
        """get_work_result or get_work."""
        self._serve("GET")

    def do_POST(self) -> None:
        """post_work, post_work_result or post_handler_err."""
        self._serve("POST")

    def do_PUT(self) -> None:
        """put_initialization_result."""
        self._serve("PUT")

    def do_DELETE(self) -> None:
        """Not an IPC call: 405, after the same checks."""
        self._serve("DELETE")

    do_HEAD = do_PATCH = do_OPTIONS = do_DELETE  # noqa: N815 - http.server's naming


class IPCServer(ThreadingHTTPServer):
    """The IPC HTTP server on 127.0.0.1 (port 0 picks a free one); serves from its own thread.

    StartError when the port cannot be bound (taken, or not ours to bind). Connections are bounded: at most
    `admission_slots` not yet authenticated and `caller_slots` authenticated ones get a thread; others are
    closed at once.
    """

    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        dispatcher: IPCDispatcher,
        port: int = 0,
        host: str = "127.0.0.1",
        get_work_poll_s: float = GET_WORK_POLL_S,
        *,
        admission_slots: int = DEFAULT_IPC_ADMISSION_SLOTS,
        caller_slots: int = DEFAULT_IPC_CALLER_SLOTS,
        read_timeout_s: float = DEFAULT_IPC_READ_TIMEOUT_S,
        body_budget_bytes: int = DEFAULT_IPC_BODY_BUDGET_BYTES,
        credentials: TokenExchange | None = None,
    ):
        try:
            super().__init__((host, port), _IPCHandler)
        except OSError as error:
            raise StartError(
                f"cannot serve IPC on {host}:{port}: {error.strerror or error}; stop what holds the port, or leave "
                "--ipc-port out (0, the default, picks a free one)"
            ) from None
        self.dispatcher = dispatcher
        self.get_work_poll_s = get_work_poll_s
        self.admission_slots = admission_slots
        self.caller_slots = caller_slots
        self.read_timeout_s = read_timeout_s
        self.body_budget_bytes = body_budget_bytes
        self.credentials = credentials
        self._thread: threading.Thread | None = None
        self._watcher: threading.Thread | None = None
        self._stopping = threading.Event()
        # Every accepted connection and its state; stop() closes them so no handler outlives the server.
        self._connections: dict[socket.socket, _Connection] = {}
        self._lock = threading.Lock()
        self._admitted = 0
        self._callers = 0
        self._body_bytes = 0
        self._counters = {
            "connections_accepted": 0,
            "connections_refused": 0,
            "connections_timed_out": 0,
            "headers_too_large": 0,
            "bodies_too_large": 0,
            "bodies_refused_busy": 0,
        }

    # -- connection slots ----------------------------------------------------------------------------------

    def process_request(self, request: Any, client_address: Any) -> None:
        """Give the connection a thread if an admission slot is free; otherwise refuse it at once."""
        with self._lock:
            self._counters["connections_accepted"] += 1
            admitted = self._admitted < self.admission_slots and not self._stopping.is_set()
            if admitted:
                self._admitted += 1
                self._connections[request] = _Connection()
            else:
                self._counters["connections_refused"] += 1
        if not admitted:
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._forget(request)
            raise

    def _refuse(self, request: socket.socket) -> None:
        with contextlib.suppress(OSError):
            request.setblocking(False)
            request.send(_REFUSAL)
        self.shutdown_request(request)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Serve the connection, then give its slot back."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._forget(request)

    def _forget(self, request: socket.socket) -> None:
        with self._lock:
            state = self._connections.pop(request, None)
            if state is None:
                return
            if state.holds_caller_slot:
                self._callers -= 1
            else:
                self._admitted -= 1

    def connection_state(self, request: socket.socket) -> _Connection:
        """The state of an accepted connection (one the server gave a thread)."""
        with self._lock:
            return self._connections.setdefault(request, _Connection())

    def promote(self, state: _Connection) -> bool:
        """Move an authenticated connection from its admission slot to a caller slot; False if none is free."""
        with self._lock:
            if state.holds_caller_slot:
                return True
            if self._callers >= self.caller_slots:
                return False
            self._callers += 1
            self._admitted -= 1
            state.holds_caller_slot = True
            return True

    def set_deadline(self, state: _Connection, deadline: float | None) -> bool:
        """When the connection's current request must be in (None: it is not sending one now).

        False when the connection was already shut down for missing its deadline: its request is not served.
        """
        with self._lock:
            state.deadline = deadline
            return not state.timed_out

    def reserve_body(self, length: int) -> bool:
        """Reserve `length` bytes of the body budget; False (and nothing reserved) when they do not fit."""
        with self._lock:
            if length and self._body_bytes + length > self.body_budget_bytes:
                self._counters["bodies_refused_busy"] += 1
                return False
            self._body_bytes += length
            return True

    def release_body(self, length: int) -> None:
        """Give back what reserve_body took."""
        with self._lock:
            self._body_bytes -= length

    def count(self, name: str) -> None:
        """Add one to a counter."""
        with self._lock:
            self._counters[name] += 1

    def counters(self) -> dict[str, int]:
        """Connection counters, and the connections open now (admission and caller slots in use)."""
        with self._lock:
            return {
                **self._counters,
                "connections_open": len(self._connections),
                "admission_slots_used": self._admitted,
                "caller_slots_used": self._callers,
                "body_bytes_reading": self._body_bytes,
            }

    def _watch_deadlines(self) -> None:
        """Shut down every connection whose request is not in by its deadline (a slow or stalled sender)."""
        while not self._stopping.wait(DEADLINE_CHECK_S):
            now = time.monotonic()
            with self._lock:
                # Under the lock, so a request is either in before its deadline (and served) or shut down.
                for conn, state in self._connections.items():
                    if state.deadline is not None and state.deadline < now:
                        state.deadline, state.timed_out = None, True
                        self._counters["connections_timed_out"] += 1
                        with contextlib.suppress(OSError):
                            conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that vanished mid-request (a killed worker) is routine; anything else is logged."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionResetError, BrokenPipeError, TimeoutError)):
            log.debug("IPC client %s went away: %s", client_address, error)
            return
        log.exception("IPC request from %s failed", client_address)

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self.server_address[1]

    def start(self) -> None:
        """Serve in a background thread; another one enforces the read deadlines."""
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name="simcore-ipc", daemon=True
        )
        self._watcher = threading.Thread(target=self._watch_deadlines, name="simcore-ipc-deadlines", daemon=True)
        self._thread.start()
        self._watcher.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._stopping.set()
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self.server_close()
