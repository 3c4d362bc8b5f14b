"""Greengrass discovery: `GET /greengrass/discover/thing/<thing>` over mutual TLS, as the devices' SDK calls it.

The answer is the JSON AWSIoTPythonSDK's `DiscoveryInfoProvider` parses: `{"GGGroups": [{"GGGroupId",
"Cores": [{"thingArn", "Connectivity": [{"Id", "HostAddress", "PortNumber", "Metadata"}]}], "CAs": [pem]}]}`,
capitalised keys. That client reads the headers up to the blank line, the status from `HTTP/1.1 <code> ` and
the body length from a lowercase `content-length: ` header, so every answer is HTTP/1.1 with that header
and no chunking. Statuses as the SDK maps them: 401 for a certificate that is no device's of the group
(DiscoveryUnauthorizedException), 404 for a thing not in the group (DiscoveryDataNotFoundException), 403 for
a device asking about another thing, 400 for any other request.

What to answer comes from a discovery record (`discovery_record`), which the running core writes to
`<root>/var/state/discovery.json`; `simcore run --discovery-port` serves its own, `simcore cloud start
--discovery-port --core-root` (the stand-in for the cloud endpoint) serves the file's.

Limits: at most MAX_CONNECTIONS connections at once (more are closed at once), each with READ_TIMEOUT_S
for its TLS handshake and its request; only GET, no body is read.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from simcore.devices.group_ca import certificate_id_of_der

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 32
READ_TIMEOUT_S = 10.0
PATH = re.compile(r"/greengrass/discover/thing/([a-zA-Z0-9:_-]{1,128})")

DiscoveryRecord = dict[str, Any]


def discovery_record(group_id: str, core_thing_arn: str, connectivity: list[dict], ca_pem: str,
                     devices: dict[str, str]) -> DiscoveryRecord:
    """What discovery serves: the group, its core's connectivity, the group CA, the devices' certificate ids."""
    return {"group_id": group_id, "core_thing_arn": core_thing_arn, "connectivity": connectivity,
            "ca_pem": ca_pem, "devices": devices}


def answer(record: DiscoveryRecord, thing: str, certificate_id: str) -> tuple[int, dict]:
    """(HTTP status, JSON body) for `thing` asked by the holder of certificate `certificate_id`."""
    devices: dict[str, str] = record["devices"]
    if certificate_id not in devices.values():
        return 401, {"errorMessage": "The certificate is not the certificate of a device of this group"}
    if thing not in devices:
        return 404, {"errorMessage": f"No Greengrass group knows the thing {thing}"}
    if devices[thing] != certificate_id:
        return 403, {"errorMessage": f"The certificate is not authorized to discover {thing}"}
    return 200, {"GGGroups": [{
        "GGGroupId": record["group_id"],
        "Cores": [{"thingArn": record["core_thing_arn"], "Connectivity": record["connectivity"]}],
        "CAs": [record["ca_pem"]],
    }]}


def record_from_file(path: Path) -> Callable[[], DiscoveryRecord | None]:
    """A record source reading `path` on every request (None while the core has written none)."""
    def read() -> DiscoveryRecord | None:
        try:
            return json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
    return read


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: DiscoveryServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("discovery %s: " + format, self.client_address[0], *args)

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))  # lowercase: the SDK's pattern is case-sensitive
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        match = PATH.fullmatch(self.path)
        if match is None:
            self._reply(400, {"errorMessage": f"Unknown path {self.path[:200]!r}: "
                                              "GET /greengrass/discover/thing/<thing>"})
            return
        record = self.server.source()
        if record is None:
            self._reply(404, {"errorMessage": "No core has published its connectivity yet (is `simcore run` up?)"})
            return
        der = self.connection.getpeercert(binary_form=True)
        status, body = answer(record, match.group(1), certificate_id_of_der(der or b""))
        if status != 200:
            log.warning("discovery for %s from %s: %s %s", match.group(1), self.client_address[0], status,
                        body["errorMessage"])
        self.server.answered[status] = self.server.answered.get(status, 0) + 1
        self._reply(status, body)

    def _refuse_method(self) -> None:
        self._reply(400, {"errorMessage": "Discovery takes GET only"})

    do_POST = do_PUT = do_DELETE = do_HEAD = _refuse_method  # noqa: N815


class DiscoveryServer(ThreadingHTTPServer):
    """The discovery endpoint on `host:port` (0: any free port), mutual TLS against `client_ca`.

    `source()` gives the record to answer from. The server's certificate is `cert_path`/`key_path`: devices
    check it against the CA they pass (basicDiscovery.py's `-r`).
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, source: Callable[[], DiscoveryRecord | None], client_ca: Path, cert_path: Path,
                 key_path: Path, port: int = 0, host: str = "0.0.0.0"):
        super().__init__((host, port), _Handler)
        self.source = source
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.minimum_version = ssl.TLSVersion.TLSv1_2
        self.tls.verify_mode = ssl.CERT_REQUIRED
        self.tls.load_verify_locations(str(client_ca))
        self.tls.load_cert_chain(str(cert_path), str(key_path))
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.answered: dict[int, int] = {}
        self.refused_handshakes = 0
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on."""
        return self.server_address[1]

    def process_request(self, request: socket.socket, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            request.close()  # bounded: a flood of connections gets closed sockets, not threads
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def finish_request(self, request: socket.socket, client_address) -> None:
        request.settimeout(READ_TIMEOUT_S)
        try:
            tls = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as error:
            self.refused_handshakes += 1
            log.warning("discovery connection from %s refused: %s", client_address[0], error)
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()

    def start(self) -> None:
        """Serve on a thread of its own."""
        self._thread = threading.Thread(target=self.serve_forever, name="discovery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join(5)
        self.server_close()
