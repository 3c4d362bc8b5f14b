"""The stand-in's IoT Jobs data plane: the device-side MQTT topics of AWS IoT Jobs over a `JobsModel`.

It connects to the stand-in broker with its own certificate (as the cloud shadow service does) and serves, for
every thing, under `$aws/things/<thing>/jobs/`: `get`, `start-next`, `<jobId>/get` (`$next/get` too) and
`<jobId>/update`, answering on the request topic + `/accepted` or `/rejected` with `timestamp` and the request's
`clientToken`; a refusal carries AWS's `code` (InvalidJson, InvalidRequest, ResourceNotFound, VersionMismatch
and InvalidStateTransition with `executionState`, TerminalStateReached). When a thing's pending executions
change it publishes `notify` (the lists) and `notify-next` (the next execution, or none).

A job document's `${aws:iot:s3-presigned-url:<S3 URL>}` placeholders are replaced, each time a device fetches
the document, by a URL from `presign(bucket, key)` (the stand-in's local AWS S3), as IoT Jobs does at fetch time.
Limit: MQTT 3.1.1 does not tell the service who published a request, so one thing's topics are not closed to
another client the broker let in (the broker's mutual TLS is the boundary, as for the shadow service).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from simcore.cloud.jobs_model import JobsError, JobsModel
from simcore.cloud.link import CloudLink
from simcore.cloud.settings import LinkSettings
from simcore.cloud.spooler import MemorySpooler

REQUEST_FILTERS = ("$aws/things/+/jobs/get", "$aws/things/+/jobs/start-next",
                   "$aws/things/+/jobs/+/get", "$aws/things/+/jobs/+/update")
ANSWER_SPOOL_BYTES = 64 * 1024 * 1024
PRESIGNED = re.compile(r"\$\{aws:iot:s3-presigned-url:(https://[^}]+)\}")
RELEASE_TICK_S = 1.0

log = logging.getLogger(__name__)
Presigner = Callable[[str, str], str]


def s3_location(url: str) -> tuple[str, str]:
    """(bucket, key) of an S3 URL in path style (`https://s3.<region>.amazonaws.com/<bucket>/<key>`) or virtual-
    hosted style (`https://<bucket>.s3.<region>.amazonaws.com/<key>`)."""
    match = re.fullmatch(r"https://s3[.-]?[a-z0-9-]*\.amazonaws\.com/([^/]+)/(.+)", url) or \
        re.fullmatch(r"https://([^/]+)\.s3[.-]?[a-z0-9-]*\.amazonaws\.com/(.+)", url)
    if match is None:
        raise JobsError("InvalidRequest", f"{url} is not an S3 object URL")
    return match.group(1), match.group(2)


def resolve_document(document: str, presign: Presigner | None) -> str:
    """`document` with each presigned-URL placeholder replaced by a fresh presigned URL."""
    if presign is None:
        return document

    def replace(match: re.Match) -> str:
        bucket, key = s3_location(match.group(1))
        # The document is JSON: the URL goes inside a JSON string, so escape what JSON would.
        return json.dumps(presign(bucket, key))[1:-1]

    return PRESIGNED.sub(replace, document)


class JobsDataPlane:
    """Serves the jobs topics of every thing on the broker `settings` points at, over `model`."""

    def __init__(self, model: JobsModel, settings: LinkSettings, presign: Presigner | None = None):
        self.model = model
        self.presign = presign
        self.link = CloudLink(settings, MemorySpooler(ANSWER_SPOOL_BYTES))
        self.requests = 0
        self._stopping = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="jobs-rollout", daemon=True)
        model.on_change = self.notify

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect and subscribe; RuntimeError if the broker is not reachable within `timeout_s`."""
        self.link.serve(REQUEST_FILTERS, self._on_request, timeout_s, "jobs service")
        self._ticker.start()

    def stop(self) -> None:
        """Stop releasing rollouts and disconnect."""
        self._stopping.set()
        self.link.stop()

    def _tick(self) -> None:
        while not self._stopping.wait(RELEASE_TICK_S):
            try:
                self.model.release_due()
            except Exception:  # the ticker must outlive one bad round
                log.exception("jobs rollout tick failed")

    # -- answers -----------------------------------------------------------------------------------------

    def _execution(self, found: Any, include_document: bool = True) -> dict[str, Any] | None:
        if found is None:
            return None
        job, execution = found
        document = self.model.execution_document(job, execution, include_document=include_document)
        if include_document:
            document["jobDocument"] = json.loads(resolve_document(job.document, self.presign))
        return document

    def notify(self, thing: str) -> None:
        """Publish `notify` and `notify-next` for `thing` (its pending executions changed)."""
        now = int(time.time())
        pending = self.model.pending(thing)
        self.link.publish(f"$aws/things/{thing}/jobs/notify", json.dumps(
            {"timestamp": now, "jobs": {"IN_PROGRESS": pending["inProgressJobs"],
                                        "QUEUED": pending["queuedJobs"]}}).encode())
        body: dict[str, Any] = {"timestamp": now}
        try:
            execution = self._execution(self.model.next_execution(thing))
        except JobsError as error:
            log.warning("notify-next for %s: %s", thing, error.message)
            execution = None
        if execution is not None:
            body["execution"] = execution
        self.link.publish(f"$aws/things/{thing}/jobs/notify-next", json.dumps(body).encode())

    def _on_request(self, topic: str, payload: bytes) -> None:
        self.requests += 1
        parts = topic.split("/")
        thing, operation = parts[2], "/".join(parts[4:])
        token = None
        try:
            try:
                request = json.loads(payload) if payload.strip() else {}
            except ValueError:
                raise JobsError("InvalidJson", "the request is not valid JSON") from None
            if not isinstance(request, dict):
                raise JobsError("InvalidJson", "the request must be a JSON object")
            token = request.get("clientToken")
            answer = self._answer(thing, operation, request)
        except JobsError as error:
            rejected: dict[str, Any] = {"code": error.aws_code, "message": error.message,
                                        "timestamp": int(time.time())}
            if token is not None:
                rejected["clientToken"] = token
            if error.execution_state is not None:
                rejected["executionState"] = error.execution_state
            self.link.publish(f"{topic}/rejected", json.dumps(rejected).encode())
            return
        except Exception:  # a bug answers InternalError, and the service goes on
            log.exception("jobs request on %s failed", topic)
            self.link.publish(f"{topic}/rejected", json.dumps(
                {"code": "InternalError", "message": "internal error", "timestamp": int(time.time())}).encode())
            return
        answer["timestamp"] = int(time.time())
        if token is not None:
            answer["clientToken"] = token
        self.link.publish(f"{topic}/accepted", json.dumps(answer).encode())

    def _answer(self, thing: str, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        if operation == "get":
            return dict(self.model.pending(thing))
        if operation == "start-next":
            found = self.model.start_next(thing, request.get("statusDetails"))
            execution = self._execution(found)
            return {} if execution is None else {"execution": execution}
        job_id, _, verb = operation.partition("/")
        if verb == "get":
            found = self.model.get_execution(thing, job_id)
            execution = self._execution(found, bool(request.get("includeJobDocument", True)))
            return {} if execution is None else {"execution": execution}
        if verb == "update":
            expected = request.get("expectedVersion")
            if expected is not None and not isinstance(expected, int):
                raise JobsError("InvalidRequest", "expectedVersion must be a number")
            job, execution = self.model.update(thing, job_id, str(request.get("status", "")),
                                               request.get("statusDetails"), expected)
            answer: dict[str, Any] = {}
            if request.get("includeJobExecutionState"):
                answer["executionState"] = execution.state()
            if request.get("includeJobDocument"):
                answer["jobDocument"] = json.loads(resolve_document(job.document, self.presign))
            return answer
        raise JobsError("InvalidTopic", f"no jobs operation {operation!r}")
