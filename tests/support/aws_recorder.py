"""A recorder standing in for IoT Analytics and IoT SiteWise, which moto does not implement (moto 5.2.5 has no
iotanalytics or iotsitewise backend): a real HTTP server on a free loopback port that answers boto3's
`BatchPutMessage` (POST /messages/batch) and `BatchPutAssetPropertyValue` (POST /properties) with AWS's
success shapes, records each request's JSON body, and can answer 503 while "down".

It checks what a real endpoint would: the JSON body and its required members (channelName and messages with
messageId and payload; entries with entryId and propertyValues), refusing others with 400 as AWS does.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class AwsRecorder:
    """Start with `start()`; `requests` holds (path, body) in arrival order."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict]] = []
        self.down = False
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if recorder.down:
                    return self._answer(503, {"message": "Service unavailable"})
                try:
                    document = json.loads(body)
                except ValueError:
                    return self._answer(400, {"message": "body is not JSON"})
                if self.path == "/messages/batch":
                    ok = isinstance(document.get("channelName"), str) and all(
                        "messageId" in message and "payload" in message for message in document.get("messages", []))
                    answer = {"batchPutMessageErrorEntries": []}
                elif self.path == "/properties":
                    entries = document.get("entries", [])
                    ok = all("entryId" in entry and entry.get("propertyValues") for entry in entries)
                    answer = {"errorEntries": []}
                else:
                    return self._answer(404, {"message": f"no route {self.path}"})
                if not ok:
                    return self._answer(400, {"message": "InvalidRequestException"})
                with recorder.lock:
                    recorder.requests.append((self.path, document))
                return self._answer(200, answer)

            def _answer(self, status: int, document: dict) -> None:
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> AwsRecorder:
        """Serve from a thread."""
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def bodies(self, path: str) -> list[dict]:
        """The recorded bodies sent to `path`."""
        with self.lock:
            return [body for recorded_path, body in self.requests if recorded_path == path]
