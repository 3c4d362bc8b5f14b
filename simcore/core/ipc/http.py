"""The IPC HTTP server: the v1 protocol's paths on 127.0.0.1, each request handed to the dispatcher."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import sys
import threading
from collections.abc import Mapping
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
    MAX_INVOKE_BYTES,
    IPCDispatcher,
    IPCError,
)
from simcore.core.ipc.tokens import Caller
from simcore.core.work_queue import WorkItem
from simcore.errors import SimcoreError, StartError

log = logging.getLogger(__name__)


class _IPCHandler(BaseHTTPRequestHandler):
    """HTTP adapter: parse the path and headers, call the dispatcher, write one response."""

    protocol_version = "HTTP/1.1"
    server: IPCServer

    def setup(self) -> None:
        super().setup()
        # One write per response and no Nagle delay between the request's small segments.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, open_=False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        log.debug("IPC %s: " + format, self.client_address[0], *args)

    def _target(self) -> tuple[str, str]:
        if not self.path.startswith(API_PREFIX):
            raise IPCError(f"Unknown path {self.path[:200]}", http_status=404)
        rest = unquote(self.path[len(API_PREFIX) :])
        for suffix in ("/work", "/initialized"):
            if rest.endswith(suffix):
                return rest[: -len(suffix)], suffix
        return rest, ""

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_INVOKE_BYTES:
            raise IPCError(
                f"The request body is {length} bytes; the limit is {MAX_INVOKE_BYTES}", http_status=413
            )
        return self.rfile.read(length) if length else b""

    def _caller(self, what: str) -> Caller:
        return self.server.dispatcher.authenticate(
            self.headers.get("Authorization"), what, f"{self.client_address[0]}:{self.client_address[1]}"
        )

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
        self.send_header("Content-Length", str(len(body)))
        self._headers_buffer.append(b"\r\n" + body)
        self.flush_headers()

    def _fail(self, error: SimcoreError) -> None:
        """The one place an error becomes an IPC answer: its HTTP status, its message as the reason phrase."""
        reason = " ".join(error.message.split())[:300].encode("latin-1", "replace").decode("latin-1")
        body = json.dumps({"errorMessage": error.message}).encode()
        self._answer(error.http_status, body, {"Content-Type": "application/json"}, reason)

    def _serve(self, method: str) -> None:
        try:
            function_arn, suffix = self._target()
            body = self._body() if method in ("POST", "PUT") else b""
            dispatcher = self.server.dispatcher
            if method == "POST" and suffix == "":
                caller = self._caller("post_work")
                invocation_id = dispatcher.post_work(
                    caller,
                    function_arn,
                    body,
                    self.headers.get(HEADER_CLIENT_CONTEXT),
                    self.headers.get(HEADER_INVOCATION_TYPE) or "RequestResponse",
                )
                self._answer(202, headers={HEADER_INVOCATION_ID: invocation_id})
            elif method == "GET" and suffix == "":
                caller = self._caller("get_work_result")
                payload, func_err = dispatcher.get_work_result(
                    caller, function_arn, self.headers.get(HEADER_INVOCATION_ID)
                )
                self._answer(200, payload, {HEADER_FUNCTION_ERROR: func_err})
            elif method == "GET" and suffix == "/work":
                caller = self._caller("get_work")
                item = dispatcher.get_work(caller, function_arn, self.server.get_work_poll_s)
                if item is None:
                    self._answer(200)
                else:
                    self._send_work(item)
            elif method == "POST" and suffix == "/work":
                caller = self._caller("post_work_result")
                dispatcher.post_work_result(
                    caller,
                    function_arn,
                    self.headers.get(HEADER_INVOCATION_ID),
                    body,
                    self.headers.get(HEADER_FUNCTION_ERROR) or "",
                )
                self._answer(200)
            elif method == "PUT" and suffix == "/initialized":
                caller = self._caller("put_initialization_result")
                dispatcher.put_initialized(caller, function_arn, body)
                self._answer(200)
            else:
                raise IPCError(f"{method} is not allowed on {self.path[:200]}", http_status=405)
        except SimcoreError as error:
            if error.http_status >= 500:  # the core's fault, not the caller's: worth a line in the log
                log.warning("IPC %s %s answered %s: %s", method, self.path[:200], error.http_status, error)
            self._fail(error)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as error:
            log.exception("IPC %s %s failed", method, self.path[:200])
            self._fail(IPCError(f"Internal error: {error}", http_status=500))

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


class IPCServer(ThreadingHTTPServer):
    """The IPC HTTP server on 127.0.0.1 (port 0 picks a free one); serves from its own thread.

    StartError when the port cannot be bound (taken, or not ours to bind).
    """

    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        dispatcher: IPCDispatcher,
        port: int = 0,
        host: str = "127.0.0.1",
        get_work_poll_s: float = GET_WORK_POLL_S,
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
        self._thread: threading.Thread | None = None
        # Clients keep connections alive; stop() closes them so no handler outlives the server.
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def track(self, connection: socket.socket, open_: bool) -> None:
        """Remember (or forget) a client connection."""
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

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
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name="simcore-ipc", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.server_close()
        with self._connections_lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
