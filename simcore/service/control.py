"""The control endpoint of a running core: how `simcore status|publish|shadow|stop` reach it.

A small HTTP server on 127.0.0.1 with a random bearer token. The port, token and pid are written to
`<root>/run/control.json`, readable only by the user that runs the core (mode 0600), so only that user's
commands can steer it.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from simcore.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_NOT_RUNNING, SimcoreError

CONTROL_FILE = Path("run") / "control.json"


class ControlError(SimcoreError):
    """No core runs under the root, or the running core could not be reached."""

    code = "ControlError"
    http_status = 503
    exit_code = EXIT_NOT_RUNNING


class ControlRefused(ControlError):
    """The running core refused the request: its error's code, message and location, and its HTTP status.

    The exit code follows the status: 3 (bad input) for a 4xx, 1 (failed) for anything else.
    """

    code = "ControlRefused"

    def __init__(self, message: str, *, http_status: int, code: str | None = None, location: str | None = None):
        super().__init__(message, code=code, location=location, http_status=http_status)
        self.exit_code = EXIT_BAD_INPUT if 400 <= http_status < 500 else EXIT_FAILED


Handler = Callable[[dict[str, Any]], Any]


class ControlServer:
    """Serves `POST /<command>` with a JSON body; each command is a callable returning JSON-ready data."""

    def __init__(self, root: Path, commands: dict[str, Handler]):
        self.root = Path(root)
        self.commands = commands
        self.token = secrets.token_hex(16)
        server = self

        class RequestHandler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                try:
                    result = self._run()
                except SimcoreError as error:
                    # The one place an error becomes a control answer; `call` turns it back into ControlRefused.
                    self._answer(error.http_status,
                                 {"error": error.message, "code": error.code, "location": error.location})
                    return
                self._answer(200, {"result": result})

            def _run(self) -> Any:
                if not secrets.compare_digest(self.headers.get("Authorization", ""), f"Bearer {server.token}"):
                    raise ControlRefused("missing or wrong control token", http_status=401, code="Unauthorized")
                command = server.commands.get(self.path.strip("/"))
                if command is None:
                    raise ControlRefused(f"unknown command {self.path.strip('/')!r}", http_status=404,
                                         code="UnknownCommand")
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    return command(json.loads(self.rfile.read(length) or b"{}"))
                except (ValueError, KeyError, TypeError) as error:
                    raise ControlRefused(f"bad request: {error}", http_status=400, code="BadRequest") from None

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: the core has its own logs
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="control", daemon=True)

    @property
    def port(self) -> int:
        """The port the endpoint listens on."""
        return self.httpd.server_address[1]

    def start(self) -> None:
        """Serve, and publish the port and token in `<root>/run/control.json` (mode 0600)."""
        self._thread.start()
        path = self.root / CONTROL_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump({"port": self.port, "token": self.token, "pid": os.getpid()}, handle)
        os.replace(temporary, path)

    def stop(self) -> None:
        """Stop serving and remove the control file."""
        (self.root / CONTROL_FILE).unlink(missing_ok=True)
        # shutdown() waits for serve_forever to end: on a server that never started serving it would wait forever
        # (a core whose start failed is stopped before its control endpoint started).
        if self._thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()


def read_control(root: Path) -> dict[str, Any]:
    """The running core's control record; ControlError when no core runs under `root`."""
    path = Path(root) / CONTROL_FILE
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise ControlError(f"no core is running under {root} (no {path}); start one with `simcore run`") from None
    except (OSError, json.JSONDecodeError) as error:
        raise ControlError(f"cannot read {path}: {error}") from None
    try:
        os.kill(int(record["pid"]), 0)
    except ProcessLookupError:
        raise ControlError(f"the core that wrote {path} (pid {record['pid']}) is no longer running") from None
    return record


def call(root: Path, command: str, arguments: dict[str, Any] | None = None, timeout_s: float = 30.0) -> Any:
    """Run `command` on the core running under `root` and return its result.

    ControlError when no core runs there or it cannot be reached; ControlRefused when it refuses.
    """
    record = read_control(root)
    request = urllib.request.Request(
        f"http://127.0.0.1:{record['port']}/{command}",
        data=json.dumps(arguments or {}).encode(),
        headers={"Authorization": f"Bearer {record['token']}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read())["result"]
    except urllib.error.HTTPError as error:
        try:
            body = json.loads(error.read() or b"{}")
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        raise ControlRefused(str(body.get("error") or f"HTTP {error.code} {error.reason}"), http_status=error.code,
                             code=body.get("code"), location=body.get("location")) from None
    except OSError as error:
        raise ControlError(f"cannot reach the core on port {record['port']}: {error}") from None
