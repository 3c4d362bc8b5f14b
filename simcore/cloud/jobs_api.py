"""The stand-in's IoT control plane for jobs: the REST calls boto3's `iot` client makes, on a loopback port.

So `simcore group deploy|status|cancel` run the same boto3 code against AWS and against the stand-in (only
`endpoint_url` differs). Served here over the `JobsModel`: CreateJob (`PUT /jobs/<id>`), DescribeJob
(`GET /jobs/<id>`), GetJobDocument (`GET /jobs/<id>/job-document`), ListJobExecutionsForJob
(`GET /jobs/<id>/things`), CancelJob (`PUT /jobs/<id>/cancel`), DescribeJobExecution
(`GET /things/<thing>/jobs/<id>`). Every other IoT call (things, thing groups) is relayed to the local AWS (moto),
and a job's thing groups are expanded to their things there, when the job is created.

Errors answer as AWS's REST-JSON does: the `x-amzn-ErrorType` header and `{"message"}` with AWS's exception
name (InvalidRequestException 400, ResourceNotFoundException 404, ResourceAlreadyExistsException 409).
Authentication: a request whose SigV4 `Authorization` names another access key id than the stand-in's (written
0600 in its state directory) is refused 403 from its headers, before its body is read; the signature itself is
not checked (limit: the key id is the secret), and a body is at most 64 KiB (a 32 KB document and its settings).
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import urllib.parse
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from simcore.cloud.jobs_model import JobsError, JobsModel

MAX_BODY_BYTES = 64 * 1024
CONTROL_ERRORS = {
    "InvalidRequest": ("InvalidRequestException", 400),
    "ResourceNotFound": ("ResourceNotFoundException", 404),
    "ResourceAlreadyExists": ("ResourceAlreadyExistsException", 409),
}
GroupExpander = Callable[[str], Sequence[str]]


def target_things(targets: Sequence[str], expand_group: GroupExpander | None) -> list[str]:
    """The things `targets` (thing and thing group ARNs) name, groups expanded, in order, without repeats."""
    things: list[str] = []
    for target in targets:
        match = re.fullmatch(r"arn:aws[a-z-]*:iot:[^:]*:[^:]*:(thing|thinggroup)/([^/]+)", str(target))
        if match is None:
            raise JobsError("InvalidRequest", f"target {target!r} is not a thing or thing group ARN")
        if match.group(1) == "thing":
            things.append(match.group(2))
        elif expand_group is None:
            raise JobsError("InvalidRequest", "thing groups need the stand-in's local AWS to expand them")
        else:
            things.extend(expand_group(match.group(2)))
    return list(dict.fromkeys(things))


class JobsControlPlane:
    """The HTTP server; `port` once started."""

    def __init__(self, model: JobsModel, access_key_id: str, *, relay_endpoint: str | None = None,
                 expand_group: GroupExpander | None = None, port: int = 0):
        self.model = model
        self.access_key_id = access_key_id
        self.relay_endpoint = relay_endpoint
        self.expand_group = expand_group
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_class(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="jobs-api", daemon=True)

    @property
    def endpoint(self) -> str:
        """The endpoint URL for boto3's `iot` client."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Serve in a thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    # -- the calls ---------------------------------------------------------------------------------------

    def call(self, method: str, path: str, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any] | None:
        """The answer to one jobs call, or None when the path is not one of them (relay it)."""
        parts = [urllib.parse.unquote(part) for part in path.strip("/").split("/")]
        if parts[0] == "jobs" and len(parts) >= 2:
            job_id, rest = parts[1], parts[2:]
            if method == "PUT" and not rest:
                return self._create(job_id, body)
            if method == "GET" and not rest:
                job = self.model.describe_job(job_id)
                return {"job": job, "documentSource": ""}
            if method == "GET" and rest == ["job-document"]:
                return {"document": self.model.job(job_id).document}
            if method == "GET" and rest == ["things"]:
                return {"executionSummaries": self.model.list_executions(job_id, query.get("status"))}
            if method == "PUT" and rest == ["cancel"]:
                job = self.model.cancel_job(job_id, force=query.get("force") == "true",
                                            comment=str(body.get("comment", "")),
                                            reason_code=str(body.get("reasonCode", "")))
                return {"jobId": job.job_id, "jobArn": f"arn:aws:iot:::job/{job.job_id}",
                        "description": job.description}
        if parts[0] == "things" and len(parts) == 4 and parts[2] == "jobs" and method == "GET":
            return {"execution": self.model.describe_execution(parts[3], parts[1])}
        return None

    def _create(self, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        document = body.get("document")
        if not isinstance(document, str):
            raise JobsError("InvalidRequest", "the stand-in takes the job document inline (document)")
        try:
            json.loads(document)
        except ValueError:
            raise JobsError("InvalidRequest", "the job document is not valid JSON") from None
        targets = body.get("targets") or []
        rollout = body.get("jobExecutionsRolloutConfig") or {}
        job = self.model.create_job(
            job_id, targets, document, target_things(targets, self.expand_group),
            description=str(body.get("description", "")), max_per_minute=rollout.get("maximumPerMinute"),
            abort_criteria=(body.get("abortConfig") or {}).get("criteriaList") or [],
        )
        return {"jobId": job.job_id, "jobArn": f"arn:aws:iot:::job/{job.job_id}", "description": job.description}


def _handler_class(api: JobsControlPlane) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            return  # one line per request would flood the stand-in's output

        def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {"Content-Type": "application/json"}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, name: str, message: str) -> None:
            self._answer(status, json.dumps({"message": message}).encode(),
                         {"Content-Type": "application/json", "x-amzn-ErrorType": name})

        def _serve(self) -> None:
            authorization = self.headers.get("Authorization", "")
            if f"Credential={api.access_key_id}/" not in authorization:
                self._error(403, "UnauthorizedException", "the request is not signed with the stand-in's key")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._error(413, "InvalidRequestException", f"a request body holds at most {MAX_BODY_BYTES} bytes")
                self.close_connection = True
                return
            raw = self.rfile.read(length) if length else b""
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            try:
                body = json.loads(raw) if raw.strip() else {}
                answer = api.call(self.command, url.path, query, body if isinstance(body, dict) else {})
            except ValueError:
                self._error(400, "InvalidRequestException", "the request body is not JSON")
                return
            except JobsError as error:
                name, status = CONTROL_ERRORS.get(error.aws_code, ("InvalidRequestException", 400))
                self._error(status, name, error.message)
                return
            if answer is not None:
                self._answer(200, json.dumps(answer).encode())
            elif api.relay_endpoint is None:
                self._error(400, "InvalidRequestException", f"the stand-in does not serve {self.command} {url.path}")
            else:
                self._relay(raw)

        def _relay(self, raw: bytes) -> None:
            target = urllib.parse.urlsplit(api.relay_endpoint)
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            try:
                headers = {name: value for name, value in self.headers.items() if name.lower() != "host"}
                headers["Host"] = target.netloc
                connection.request(self.command, self.path, body=raw, headers=headers)
                response = connection.getresponse()
                data = response.read(16 * 1024 * 1024)
                passed = {name: value for name, value in response.getheaders()
                          if name.lower() not in ("content-length", "transfer-encoding", "connection")}
                self._answer(response.status, data, passed)
            finally:
                connection.close()

        do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _serve

    return Handler
