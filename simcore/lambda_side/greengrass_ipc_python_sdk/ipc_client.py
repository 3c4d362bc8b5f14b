"""The IPC client a Lambda uses to reach the core: HTTP on localhost.

Wire format (the v1 core's): `http://<endpoint>:<GG_DAEMON_PORT>/2016-11-01/functions/<function-arn>[/work]`,
the ARN raw in the path, the function's token raw in `Authorization`. HTTP and connection errors become
`IPCException` (worded like urllib's, `HTTP Error 404: <reason>`), which greengrasssdk re-raises as
`InvocationException`. Unlike the core's urllib client, each thread keeps one HTTP/1.1 connection open and
reuses it: no TCP handshake and no server thread per call. Python 3.7+ standard library only.

HTTP/1.1 is spoken here on a plain socket, not with `http.client`: that module imports `ssl` (OpenSSL's
libraries) and the `email` parser, 5.5 MiB of every worker's memory before its handler runs, for a
loopback protocol that needs neither (bench/footprint.py). Requests carry `Content-Length`; responses are
read by `Content-Length` (the core always sends it), chunked or to the end of the stream.
"""

import collections
import json
import logging
import os
import socket
import threading

from greengrass_common.env_vars import AUTH_TOKEN_VARIABLE, DAEMON_PORT_VARIABLE, DEFAULT_DAEMON_PORT

HEADER_INVOCATION_ID = "X-Amz-InvocationId"
HEADER_CLIENT_CONTEXT = "X-Amz-Client-Context"
HEADER_AUTH_TOKEN = "Authorization"
HEADER_INVOCATION_TYPE = "X-Amz-Invocation-Type"
HEADER_FUNCTION_ERR_TYPE = "X-Amz-Function-Error"
IPC_API_VERSION = "2016-11-01"

# Failures here are the core's business, not the user's: keep them out of the user's root logger.
runtime_logger = logging.getLogger(__name__)
runtime_logger.propagate = False
runtime_logger.addHandler(logging.NullHandler())

WorkItem = collections.namedtuple("WorkItem", ["invocation_id", "payload", "client_context"])
GetWorkResultOutput = collections.namedtuple("GetWorkResultOutput", ["payload", "func_err"])


# Bounds on what a response's head may hold (as http.client's).
MAX_LINE_BYTES = 65536
MAX_HEADERS = 100


class IPCException(Exception):
    """An IPC call failed (connection refused, HTTP error status, bad URL)."""


class _ProtocolError(Exception):
    """The core's answer is not HTTP this client can read."""


class _Disconnected(ConnectionError):
    """The connection closed before a response began: on a kept-alive connection, the request never ran."""


class _Headers(dict):
    """Response headers by lower-cased name; `get` takes any case, as http.client's message does."""

    def get(self, name, default=None):
        return dict.get(self, name.lower(), default)

    def __getitem__(self, name):
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name):
        return dict.__contains__(self, name.lower())


class _Response(object):
    """A response: status, reason, headers, body, and whether the core will close the connection."""

    def __init__(self, status, reason, headers, body, will_close):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.will_close = will_close


class _Connection(object):
    """One HTTP/1.1 connection to the core on a plain TCP socket."""

    def __init__(self, host, port):
        self.host = host
        self.port = port
        self.sock = socket.create_connection((host, port))
        # Headers and body go in one segment; no Nagle wait on the small requests IPC is made of.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")

    def exchange(self, method, path, body, headers):
        """Send one request and read its response."""
        lines = ["{} {} HTTP/1.1".format(method, path), "Host: {}:{}".format(self.host, self.port)]
        for name, value in headers.items():
            value = str(value)
            if "\r" in value or "\n" in value:
                raise ValueError("Invalid header value {!r}".format(value))
            lines.append("{}: {}".format(name, value))
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.sock.sendall(head + body if body else head)
        return self._read_response(method)

    def _line(self):
        line = self.reader.readline(MAX_LINE_BYTES + 1)
        if len(line) > MAX_LINE_BYTES:
            raise _ProtocolError("a response line longer than {} bytes".format(MAX_LINE_BYTES))
        return line

    def _read_response(self, method):
        status_line = self._line()
        if not status_line:
            raise _Disconnected("Remote end closed connection without response")
        parts = status_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise _ProtocolError("not an HTTP status line: {!r}".format(status_line[:80]))
        version, status = parts[0], int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = _Headers()
        while True:
            line = self._line()
            if line in (b"\r\n", b"\n", b""):
                break
            if len(headers) >= MAX_HEADERS:
                raise _ProtocolError("more than {} response headers".format(MAX_HEADERS))
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        connection = headers.get("Connection", "").lower()
        will_close = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return _Response(status, reason, headers, b"", will_close)
        if headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        elif headers.get("Content-Length") is not None:
            try:
                length = int(headers.get("Content-Length"))
            except ValueError:
                raise _ProtocolError("a Content-Length that is not a number") from None
            body = self._read_exactly(length)
        else:
            body, will_close = self.reader.read(), True
        return _Response(status, reason, headers, body, will_close)

    def _read_exactly(self, length):
        if length < 0:
            raise _ProtocolError("a negative Content-Length")
        body = self.reader.read(length)
        if len(body) != length:
            raise _ProtocolError("the response ended after {} of {} bytes".format(len(body), length))
        return body

    def _read_chunked(self):
        chunks = []
        while True:
            size_line = self._line().split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise _ProtocolError("a chunk size that is not hexadecimal") from None
            if size == 0:
                while self._line() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(self._read_exactly(size))
            self._line()  # the CRLF after each chunk

    def close(self):
        try:
            self.reader.close()
        finally:
            self.sock.close()


def _as_body(payload):
    """The request body as bytes: greengrasssdk passes bytes, str or a seekable file-like object."""
    if payload is None:
        return b""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, (bytearray, memoryview)):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode("utf-8")
    if hasattr(payload, "read"):
        return _as_body(payload.read())
    raise TypeError("payload must be bytes, str or a file-like object, not {}".format(type(payload).__name__))


def _as_header(value):
    """A header value as str (greengrasssdk hands the client context as bytes or str)."""
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("ascii")
    return str(value)


class IPCClient:
    """Posts and fetches work and results for functions on the local core."""

    def __init__(self, endpoint="localhost", port=None):
        """`port` defaults to `GG_DAEMON_PORT` (then 8000); the token comes from the environment."""
        self.endpoint = endpoint
        if port is None:
            port = os.environ.get(DAEMON_PORT_VARIABLE, DEFAULT_DAEMON_PORT)
        self.port = int(port)
        self.auth_token = os.environ.get(AUTH_TOKEN_VARIABLE, "")
        self._local = threading.local()

    def post_work(self, function_arn, payload, client_context, invocation_type="RequestResponse"):
        """Queue work for `function_arn`; returns the invocation id to fetch its result with."""
        headers = {
            HEADER_CLIENT_CONTEXT: _as_header(client_context),
            HEADER_INVOCATION_TYPE: invocation_type,
        }
        response_headers, _ = self._call("POST", self._path(function_arn), _as_body(payload), headers)
        return response_headers.get(HEADER_INVOCATION_ID)

    def get_work_result(self, function_arn, invocation_id):
        """Block until the invocation finishes; `.func_err` is '' on success, else Handled or Unhandled."""
        headers = {HEADER_INVOCATION_ID: invocation_id}
        response_headers, payload = self._call("GET", self._path(function_arn), None, headers)
        return GetWorkResultOutput(payload=payload, func_err=response_headers.get(HEADER_FUNCTION_ERR_TYPE, ""))

    def get_work(self, function_arn):
        """Long-poll for the next work item of `function_arn` (a worker's own ARN).

        An `invocation_id` of None means the poll ended without work: ask again.
        """
        response_headers, payload = self._call("GET", self._path(function_arn) + "/work", None, {})
        return WorkItem(
            invocation_id=response_headers.get(HEADER_INVOCATION_ID),
            payload=payload,
            client_context=response_headers.get(HEADER_CLIENT_CONTEXT),
        )

    def post_work_result(self, function_arn, work_item):
        """Post the handler's result for `work_item` (its `payload` is the result bytes)."""
        headers = {HEADER_INVOCATION_ID: work_item.invocation_id}
        self._call("POST", self._path(function_arn) + "/work", _as_body(work_item.payload), headers)

    def post_handler_err(self, function_arn, invocation_id, handler_err):
        """Report that the handler raised: the caller sees FunctionError `Handled`."""
        body = json.dumps({"errorMessage": handler_err}).encode("utf-8")
        headers = {HEADER_INVOCATION_ID: invocation_id, HEADER_FUNCTION_ERR_TYPE: "Handled"}
        self._call("POST", self._path(function_arn) + "/work", body, headers)

    def put_initialization_result(self, function_arn, success, response=""):
        """Tell the core whether a connector finished initialising."""
        body = json.dumps({"Success": bool(success), "Response": response}).encode("utf-8")
        self._call("PUT", self._path(function_arn) + "/initialized", body, {})

    def _path(self, function_arn):
        return "/{}/functions/{}".format(IPC_API_VERSION, function_arn)

    def _call(self, method, path, body, headers):
        """One request on this thread's connection: (response headers, body); IPCException on any failure."""
        headers[HEADER_AUTH_TOKEN] = self.auth_token
        if body is not None:
            headers["Content-Length"] = str(len(body))
        connection = getattr(self._local, "connection", None)
        if connection is not None and self._local.pid != os.getpid():
            # A forked child must not talk on its parent's socket: it opens its own.
            self._local.connection = connection = None
        reused = connection is not None
        try:
            try:
                response = self._exchange(connection, method, path, body, headers)
            except (_Disconnected, ConnectionResetError, BrokenPipeError):
                # A kept-alive connection the server has closed since: the request never reached it.
                if not reused:
                    raise
                self._drop_connection()
                response = self._exchange(None, method, path, body, headers)
        except (OSError, _ProtocolError) as error:
            self._drop_connection()
            runtime_logger.debug("IPC %s %s failed: %s", method, path, error)
            raise IPCException("<urlopen error {}>".format(error)) from error
        if response.will_close:
            self._drop_connection()
        if response.status >= 300:
            raise IPCException("HTTP Error {}: {}".format(response.status, response.reason))
        return response.headers, response.body

    def _exchange(self, connection, method, path, body, headers):
        if connection is None:
            connection = _Connection(self.endpoint, self.port)
            self._local.connection = connection
            self._local.pid = os.getpid()
        return connection.exchange(method, path, body, headers)

    def _drop_connection(self):
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.close()
