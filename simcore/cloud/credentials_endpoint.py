"""The stand-in's AWS IoT credentials provider: `GET /role-aliases/<alias>/credentials` over mutual TLS.

As AWS's endpoint does, it takes the caller's client certificate (issued by the stand-in's CA) as its identity,
checks `x-amzn-iot-thingname` against it (the stand-in attaches a certificate to the thing its CN names) and the
role alias against the one it serves, then answers `{"credentials": {accessKeyId, secretAccessKey, sessionToken,
expiration}}`. The credentials are minted here, in AWS's shapes (`ASIA...`), for the stand-in's moto server,
which takes any credentials: a development stand-in, never a security boundary (docs/credentials.md).

Bounded: the TLS handshake and the request run in the connection's own thread within `read_timeout_s`, and at
most `max_connections` connections are served at once (others are closed unread).
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import ssl
import string
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
THING_NAME_HEADER = "x-amzn-iot-thingname"
# AWS::IoT::RoleAlias CredentialDurationSeconds defaults to 3600.
DEFAULT_DURATION_S = 3600
_KEY_ALPHABET = string.ascii_uppercase + string.digits


@dataclass
class IssuedCredentials:
    """What the endpoint has issued (the last 1000 key ids), and how many requests it refused."""

    access_key_ids: deque[str] = field(default_factory=lambda: deque(maxlen=1000))
    refused: int = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: CredentialsEndpoint

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        log.debug("credentials endpoint: " + format, *args)

    def _send(self, status: int, document: dict) -> None:
        body = json.dumps(document).encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _refuse(self, status: int, message: str) -> None:
        self.server.issued.refused += 1
        log.warning("credentials endpoint refused %s: %s", self.client_address[0], message)
        self.close_connection = True
        self._send(status, {"message": message})

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        """Credentials for the certificate's thing, if it names the alias this endpoint serves."""
        parts = unquote(self.path.split("?", 1)[0]).strip("/").split("/")
        if len(parts) != 3 or parts[0] != "role-aliases" or parts[2] != "credentials":
            self._refuse(404, "Not found")
            return
        thing = self.server.peer_thing(self.connection)
        named = self.headers.get(THING_NAME_HEADER)
        if named is not None and named != thing:
            self._refuse(403, f"The certificate is not attached to thing {named[:128]}")
            return
        if parts[1] != self.server.role_alias:
            self._refuse(404, f"Role alias {parts[1][:128]} does not exist")
            return
        self._send(200, {"credentials": self.server.mint()})

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        """Not served: 405 (the body is not read)."""
        self._refuse(405, "Method not allowed")

    do_PUT = do_DELETE = do_PATCH = do_POST  # noqa: N815 - http.server's naming


class CredentialsEndpoint(ThreadingHTTPServer):
    """The endpoint on 127.0.0.1:`port` (0: a free one), TLS with `server_cert`, clients of `ca_path` only."""

    daemon_threads = True

    def __init__(self, *, ca_path: Path, server_cert: Path, server_key: Path, role_alias: str, port: int = 0,
                 duration_s: float = DEFAULT_DURATION_S, read_timeout_s: float = 10.0, max_connections: int = 16):
        super().__init__((LOOPBACK, port), _Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(server_cert), str(server_key))
        context.load_verify_locations(cafile=str(ca_path))
        context.verify_mode = ssl.CERT_REQUIRED
        self.context = context
        self.role_alias = role_alias
        self.duration_s = duration_s
        self.read_timeout_s = read_timeout_s
        self.issued = IssuedCredentials()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """`host:port`, as config.json's `coreThing.credentialsEndpoint` names it."""
        return f"{LOOPBACK}:{self.server_address[1]}"

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread for the connection if a slot is free; otherwise it is closed unread."""
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Shake hands (in this thread, within the read timeout), then serve; give the slot back."""
        try:
            request.settimeout(self.read_timeout_s)
            try:
                request = self.context.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError) as error:
                with self._lock:
                    self.issued.refused += 1
                log.info("credentials endpoint: TLS handshake with %s failed: %s", client_address[0], error)
                self.shutdown_request(request)
                return
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-request is routine."""
        log.debug("credentials endpoint: client %s failed", client_address, exc_info=True)

    @staticmethod
    def peer_thing(connection: socket.socket) -> str:
        """The CN of the verified client certificate (the thing the stand-in issued it for)."""
        certificate = connection.getpeercert() if isinstance(connection, ssl.SSLSocket) else None
        for rdn in (certificate or {}).get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    return value
        return ""

    def mint(self) -> dict[str, str]:
        """New credentials in AWS's shapes, valid for `duration_s`."""
        access_key = "ASIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))
        expiration = datetime.now(UTC) + timedelta(seconds=self.duration_s)
        with self._lock:
            self.issued.access_key_ids.append(access_key)
        return {
            "accessKeyId": access_key,
            "secretAccessKey": secrets.token_urlsafe(30)[:40],
            "sessionToken": secrets.token_urlsafe(96),
            "expiration": expiration.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        }

    def start(self) -> str:
        """Serve in a background thread; returns `endpoint`."""
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="simcore-cloud-credentials", daemon=True)
        self._thread.start()
        return self.endpoint

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.server_close()
