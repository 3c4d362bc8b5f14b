"""The core's IoT Jobs agent: takes the thing's jobs over the cloud link's own connection and runs them one at a time.

The protocol, as AWS IoT Jobs' MQTT API and the Greengrass v2 nucleus use it (docs/fleet.md):
- subscribed to `$aws/things/<thing>/jobs/notify-next` and to the accepted/rejected answers it needs;
- on every (re)connection it asks `$next/get` (a notification sent while it was offline is not replayed to it,
  so it asks; it also asks again every `poll_s` while idle, in case an answer was lost);
- a QUEUED next execution is taken with `<jobId>/update` IN_PROGRESS (`expectedVersion` = its version: of two
  racing requests only one wins, the other sees VersionMismatch and asks again); an IN_PROGRESS one (the
  core stopped or lost its connection in the middle) is run again: the handler is idempotent (the same group
  version already running is a success without redeploying);
- the handler runs in its own thread with a `cancelled` event: a notify-next that no longer names the running
  job (the job was cancelled or the execution removed) sets it, and the handler stops at its next step;
- the outcome goes back as `<jobId>/update` SUCCEEDED | FAILED | REJECTED with `statusDetails` cut to the Jobs
  limits (keys `[a-zA-Z0-9:_-]`, values 1-1024 chars). An outcome that could not be sent (offline) is kept in
  memory and sent when the same execution comes back as next after reconnect; a cancelled job's is not sent.

Requests go at QoS 0 without the spool (`CloudLink.send_now`): a request lost offline is asked again on
reconnect, and the spool's room stays the group's.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from simcore.cloud.link import CloudLink
from simcore.defaults import JOB_STATUS_DETAIL_MAX_CHARS

DEFAULT_POLL_S = 30.0
REQUEST_TIMEOUT_S = 10.0
_KEY_CHARS = re.compile(r"[^a-zA-Z0-9:_-]")

log = logging.getLogger(__name__)


@dataclass
class JobRun:
    """One job execution handed to the handler."""

    job_id: str
    document: dict[str, Any]
    execution_number: int
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class JobOutcome:
    """What the handler reports: SUCCEEDED, FAILED or REJECTED, with details (strings)."""

    status: str
    details: Mapping[str, str] = field(default_factory=dict)


JobHandler = Callable[[JobRun], JobOutcome]


def status_details(details: Mapping[str, Any]) -> dict[str, str]:
    """`details` within the Jobs limits: keys cleaned to `[a-zA-Z0-9:_-]{1,128}`, values JSON-encoded when
    not strings, cut to 1024 characters, never empty."""
    cleaned: dict[str, str] = {}
    for key, value in details.items():
        name = _KEY_CHARS.sub("_", str(key))[:128] or "detail"
        text = value if isinstance(value, str) else json.dumps(value)
        cleaned[name] = (text or "-")[:JOB_STATUS_DETAIL_MAX_CHARS]
    return cleaned


class JobsAgent:
    """Runs `thing`'s jobs with `handler`, over `link` (which the caller starts and stops)."""

    def __init__(self, link: CloudLink, thing: str, handler: JobHandler, *, poll_s: float = DEFAULT_POLL_S):
        self.link = link
        self.thing = thing
        self.handler = handler
        self.poll_s = poll_s
        self.prefix = f"$aws/things/{thing}/jobs"
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1000)
        self.running: JobRun | None = None
        self.unsent: dict[str, JobOutcome] = {}  # by job id: outcomes not yet accepted by the cloud
        self.completed: list[tuple[str, str]] = []  # (job id, status) accepted by the cloud, newest last
        self._answers: dict[str, tuple[threading.Event, list]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"jobs-agent-{thing}", daemon=True)
        self._job_thread: threading.Thread | None = None

    def start(self) -> None:
        """Subscribe (before or after the link starts) and begin; the first $next/get goes on connection."""
        self.link.subscribe(f"{self.prefix}/notify-next", self._on_notify_next)
        for answer in ("$next/get/accepted", "$next/get/rejected", "+/update/accepted", "+/update/rejected"):
            self.link.subscribe(f"{self.prefix}/{answer}", self._on_answer)
        self.link.add_connection_listener(self._on_connection)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop taking jobs; a running job is told it is cancelled and given `timeout_s` to end."""
        self._stopping.set()
        self._put(("stop", None))
        if self.running is not None:
            self.running.cancelled.set()
        self._thread.join(timeout_s)
        if self._job_thread is not None:
            self._job_thread.join(timeout_s)

    def status(self) -> dict[str, Any]:
        """The running job, outcomes not yet reported, and the last ones reported."""
        running = self.running
        return {"running": running.job_id if running else None, "unsent": sorted(self.unsent),
                "completed": [list(item) for item in self.completed[-10:]]}

    # -- from the link's threads ----------------------------------------------------------------------

    def _put(self, event: tuple[str, Any]) -> None:
        try:
            self.events.put_nowait(event)
        except queue.Full:
            log.warning("jobs agent: %s dropped, the queue is full (the next poll asks again)", event[0])

    def _on_connection(self, connected: bool) -> None:
        if connected:
            self._put(("ask", None))

    def _on_notify_next(self, _topic: str, payload: bytes) -> None:
        try:
            body = json.loads(payload)
        except ValueError:
            return
        self._put(("next", body.get("execution") if isinstance(body, dict) else None))

    def _on_answer(self, topic: str, payload: bytes) -> None:
        try:
            body = json.loads(payload)
        except ValueError:
            return
        token = body.get("clientToken") if isinstance(body, dict) else None
        with self._lock:
            waiting = self._answers.get(token) if isinstance(token, str) else None
        if waiting is not None:
            waiting[1].append((topic.rsplit("/", 1)[1], body))
            waiting[0].set()
        elif topic.endswith("$next/get/accepted"):  # an answer to a request given up on still says what is next
            self._put(("next", body.get("execution")))

    # -- the agent's thread -----------------------------------------------------------------------------

    def _request(self, topic: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """Send a request and wait for its answer: ("accepted"|"rejected", body), or None (not sent, no answer)."""
        token = uuid.uuid4().hex
        answered: tuple[threading.Event, list] = (threading.Event(), [])
        with self._lock:
            self._answers[token] = answered
        try:
            sent = self.link.send_now(f"{self.prefix}/{topic}", json.dumps({**body, "clientToken": token}).encode(),
                                      REQUEST_TIMEOUT_S)
            if not sent or not answered[0].wait(REQUEST_TIMEOUT_S):
                return None
            return answered[1][0]
        finally:
            with self._lock:
                self._answers.pop(token, None)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                kind, value = self.events.get(timeout=self.poll_s)
            except queue.Empty:
                kind, value = ("ask", None) if self.running is None and self.link.connected else ("idle", None)
            try:
                if kind == "ask":
                    answer = self._request("$next/get", {"includeJobDocument": True})
                    if answer is not None and answer[0] == "accepted":
                        self._consider(answer[1].get("execution"))
                elif kind == "next":
                    self._consider(value)
                elif kind == "done":
                    self._report(*value)
            except Exception:  # the agent must outlive one bad message
                log.exception("jobs agent: %s failed", kind)

    def _consider(self, execution: Any) -> None:
        """React to what the cloud says is next: cancel the running job if it is no longer that, or start it."""
        running = self.running
        job_id = execution.get("jobId") if isinstance(execution, dict) else None
        if running is not None:
            if job_id != running.job_id:
                log.info("jobs agent: job %s is no longer this core's next one: stopping it", running.job_id)
                running.cancelled.set()
            return
        if job_id is None:
            return
        if job_id in self.unsent:  # done before a disconnection: report, do not redo
            self._report(job_id, self.unsent[job_id])
            return
        status = execution.get("status")
        if status == "QUEUED":
            answer = self._request(f"{job_id}/update", {"status": "IN_PROGRESS",
                                                        "expectedVersion": execution.get("versionNumber"),
                                                        "statusDetails": {"step": "downloading"}})
            if answer is None or answer[0] != "accepted":
                self._put(("ask", None))  # another request won, or the link dropped: ask again
                return
        elif status != "IN_PROGRESS":
            return
        document = execution.get("jobDocument")
        run = JobRun(job_id, document if isinstance(document, dict) else {}, int(execution.get("executionNumber", 0)))
        self.running = run
        self._job_thread = threading.Thread(target=self._run, args=(run,), name=f"job-{job_id}", daemon=True)
        self._job_thread.start()

    def _run(self, run: JobRun) -> None:
        try:
            outcome = self.handler(run)
        except Exception as error:  # a bug in the handler fails the job, with its reason
            log.exception("jobs agent: job %s failed", run.job_id)
            outcome = JobOutcome("FAILED", {"reason": f"{type(error).__name__}: {error}"})
        if run.cancelled.is_set() and not self._stopping.is_set():
            log.info("jobs agent: job %s ended after its cancellation (%s)", run.job_id, outcome.status)
            self.running = None
            self._put(("ask", None))
            return
        self.unsent[run.job_id] = outcome
        self.running = None
        self._put(("done", (run.job_id, outcome)))

    def _report(self, job_id: str, outcome: JobOutcome) -> None:
        answer = self._request(f"{job_id}/update", {"status": outcome.status,
                                                    "statusDetails": status_details(outcome.details)})
        if answer is None:
            return  # offline: kept in `unsent`, sent when this execution is next again after reconnect
        self.unsent.pop(job_id, None)
        if answer[0] == "accepted":
            self.completed.append((job_id, outcome.status))
        else:
            log.info("jobs agent: status of %s refused: %s", job_id, answer[1].get("code"))
        self._put(("ask", None))
