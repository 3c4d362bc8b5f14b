"""The demo's web page, served on 127.0.0.1 only: the page itself and a JSON endpoint it polls.

    GET /                 static/index.html (self-contained: no CDN, the page works offline)
    GET /api/state?readings=N&predictions=N&metrics=N
                          the state, with only the readings/predictions/metrics from those indexes on;
                          `*_next` in the answer are the indexes to ask for next time
    GET /api/summary      the final summary once the run is over (404 before)
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from simcore.demo.state import DemoState

STATIC_DIR = Path(__file__).resolve().parent / "static"
INDEX_FILE = STATIC_DIR / "index.html"
LISTEN_HOST = "127.0.0.1"

log = logging.getLogger(__name__)


class DemoWebServer:
    """Serves the page and the state; `summary` is set by the demo when the run is over."""

    def __init__(self, state: DemoState, port: int, run_info: dict | None = None):
        self.state = state
        self.run_info = dict(run_info or {})
        self.summary: dict | None = None
        self._server = ThreadingHTTPServer((LISTEN_HOST, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-web", daemon=True)

    @property
    def port(self) -> int:
        """The port it listens on (useful when started with 0)."""
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The page's address."""
        return f"http://{LISTEN_HOST}:{self.port}/"

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        web = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "simcore-demo"

            def do_GET(self) -> None:  # noqa: N802 (the http.server hook's name)
                url = urlsplit(self.path)
                if url.path in ("/", "/index.html"):
                    self._send(HTTPStatus.OK, "text/html; charset=utf-8", INDEX_FILE.read_bytes())
                elif url.path == "/api/state":
                    try:
                        body = web.state_body(parse_qs(url.query))
                    except ValueError as error:
                        self._send_json(HTTPStatus.BAD_REQUEST, {"code": "InvalidParameter", "message": str(error)})
                        return
                    self._send_json(HTTPStatus.OK, body)
                elif url.path == "/api/summary":
                    if web.summary is None:
                        self._send_json(HTTPStatus.NOT_FOUND, {"code": "NotFinished",
                                                               "message": "the demo is still running"})
                    else:
                        self._send_json(HTTPStatus.OK, web.summary)
                else:
                    self._send_json(HTTPStatus.NOT_FOUND, {"code": "NotFound", "message": f"no page {url.path}"})

            def _send_json(self, status: HTTPStatus, body: dict) -> None:
                self._send(status, "application/json", json.dumps(body, allow_nan=False).encode())

            def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the hook's signature)
                log.debug("web: " + format, *args)

        return Handler

    def state_body(self, query: dict[str, list[str]]) -> dict:
        """The /api/state answer for a parsed query string; ValueError for a bad index."""
        indexes = []
        for name in ("readings", "predictions", "metrics"):
            text = (query.get(name) or ["0"])[0]
            if not text.isdigit():
                raise ValueError(f"{name} must be a non-negative integer, got {text!r}")
            indexes.append(int(text))
        body = self.state.snapshot(*indexes)
        body["run"] = self.run_info
        body["finished"] = self.summary is not None
        return body
