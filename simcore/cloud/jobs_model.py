"""The stand-in cloud's AWS IoT Jobs: jobs, their executions and the rules between them (no transport).

As IoT Jobs does (../shared/reference, part B): a job targets things and thing groups (groups expanded to their
things when the job is created, a SNAPSHOT job); each thing gets an execution that goes QUEUED → IN_PROGRESS →
SUCCEEDED | FAILED | REJECTED, or CANCELED when the job is cancelled (an IN_PROGRESS one only with `force`).
Every update adds 1 to the execution's `versionNumber`; an update with another `expectedVersion` is refused
`VersionMismatch`, one to an execution in a terminal state `TerminalStateReached`, one to QUEUED
`InvalidStateTransition`. A device's next execution is its oldest IN_PROGRESS one, else its oldest QUEUED one.

A rollout (`maximumPerMinute`) releases executions at that rate: the others wait, not yet QUEUED, until
`release_due` lets them through. An abort criterion (failure type, threshold percentage, minimum executed
things) cancels the job once met. Jobs live in memory: a stand-in restart forgets them.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simcore.defaults import JOB_DOCUMENT_MAX_BYTES, JOB_STATUS_DETAIL_MAX_CHARS
from simcore.errors import InputError

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "REJECTED", "CANCELED", "TIMED_OUT", "REMOVED"})
DEVICE_STATUSES = frozenset({"IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED"})
JOB_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
DETAIL_KEY = re.compile(r"[a-zA-Z0-9:_-]{1,128}")


class JobsError(InputError):
    """A Jobs request refused with AWS's data-plane code (`aws_code`), and the execution's state if it carries one."""

    code = "JobsError"

    def __init__(self, aws_code: str, message: str, execution_state: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.aws_code = aws_code
        self.execution_state = dict(execution_state) if execution_state is not None else None


def check_status_details(details: Any) -> dict[str, str]:
    """`statusDetails` within the Jobs limits (keys 1-128 `[a-zA-Z0-9:_-]`, string values 1-1024 chars)."""
    if details is None:
        return {}
    if not isinstance(details, dict):
        raise JobsError("InvalidRequest", "statusDetails must be an object of strings")
    for key, value in details.items():
        if not DETAIL_KEY.fullmatch(str(key)):
            raise JobsError("InvalidRequest", f"statusDetails key {key!r} must match [a-zA-Z0-9:_-]{{1,128}}")
        if not isinstance(value, str) or not 1 <= len(value) <= JOB_STATUS_DETAIL_MAX_CHARS:
            raise JobsError("InvalidRequest",
                            f"statusDetails value of {key!r} must be a string of 1-{JOB_STATUS_DETAIL_MAX_CHARS} chars")
    return dict(details)


@dataclass
class Execution:
    """One thing's execution of one job."""

    job_id: str
    thing: str
    execution_number: int
    queued_at: float
    status: str = "QUEUED"
    status_details: dict[str, str] = field(default_factory=dict)
    version: int = 1
    started_at: float | None = None
    last_updated_at: float = 0.0

    def state(self) -> dict[str, Any]:
        """The `executionState` answer shape."""
        return {"status": self.status, "statusDetails": dict(self.status_details), "versionNumber": self.version}

    def summary(self) -> dict[str, Any]:
        """The `JobExecutionSummary` shape of `get`'s lists."""
        found = {"jobId": self.job_id, "queuedAt": int(self.queued_at), "lastUpdatedAt": int(self.last_updated_at),
                 "executionNumber": self.execution_number, "versionNumber": self.version}
        if self.started_at is not None:
            found["startedAt"] = int(self.started_at)
        return found


@dataclass
class Job:
    """A job: its document, targets, the things they expanded to, rollout and abort settings, executions."""

    job_id: str
    document: str
    targets: list[str]
    things: list[str]
    created_at: float
    description: str = ""
    max_per_minute: int | None = None
    abort_criteria: list[dict[str, Any]] = field(default_factory=list)
    status: str = "IN_PROGRESS"
    comment: str = ""
    reason_code: str = ""
    force_canceled: bool = False
    executions: dict[str, Execution] = field(default_factory=dict)
    released_at: list[float] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """`jobProcessDetails`: how many things are in each state."""
        names = {"QUEUED": "numberOfQueuedThings", "IN_PROGRESS": "numberOfInProgressThings",
                 "SUCCEEDED": "numberOfSucceededThings", "FAILED": "numberOfFailedThings",
                 "REJECTED": "numberOfRejectedThings", "CANCELED": "numberOfCanceledThings",
                 "TIMED_OUT": "numberOfTimedOutThings", "REMOVED": "numberOfRemovedThings"}
        counts = dict.fromkeys(names.values(), 0)
        for execution in self.executions.values():
            counts[names[execution.status]] += 1
        if self.status == "IN_PROGRESS":  # not yet released by the rollout; a cancelled job never releases them
            counts["numberOfQueuedThings"] += len(self.things) - len(self.executions)
        return counts


class JobsModel:
    """Every job of the stand-in account, safe to call from several threads.

    `on_change(thing)` is called (outside the lock) for each thing whose pending executions changed, so the
    MQTT adapter can publish `notify` and `notify-next`. `clock` is seconds since the epoch.
    """

    def __init__(self, on_change: Callable[[str], None] | None = None, clock: Callable[[], float] = time.time):
        self.jobs: dict[str, Job] = {}
        self.on_change = on_change
        self.clock = clock
        self._lock = threading.RLock()
        self._execution_numbers: dict[str, int] = {}

    # -- control plane ---------------------------------------------------------------------------------

    def create_job(self, job_id: str, targets: Sequence[str], document: str, things: Sequence[str], *,
                   description: str = "", max_per_minute: int | None = None,
                   abort_criteria: Sequence[Mapping[str, Any]] = ()) -> Job:
        """A new job for `things` (the targets already expanded); its executions QUEUED as the rollout allows."""
        if not JOB_ID.fullmatch(job_id or ""):
            raise JobsError("InvalidRequest", f"jobId {job_id!r} must match [a-zA-Z0-9_-]{{1,64}}")
        if len(document.encode()) > JOB_DOCUMENT_MAX_BYTES:
            raise JobsError("InvalidRequest", f"the job document holds {len(document.encode())} bytes; "
                            f"at most {JOB_DOCUMENT_MAX_BYTES} are allowed")
        if not things:
            raise JobsError("InvalidRequest", "the job's targets name no thing")
        if max_per_minute is not None and not 1 <= max_per_minute <= 1000:
            raise JobsError("InvalidRequest", "maximumPerMinute must be 1-1000")
        with self._lock:
            if job_id in self.jobs:
                raise JobsError("ResourceAlreadyExists", f"Job {job_id} already exists")
            job = Job(job_id, document, list(targets), list(dict.fromkeys(things)), self.clock(),
                      description=description, max_per_minute=max_per_minute,
                      abort_criteria=[dict(item) for item in abort_criteria])
            self.jobs[job_id] = job
            changed = self._release(job)
        self._notify(changed)
        return job

    def job(self, job_id: str) -> Job:
        """The job (`ResourceNotFound` if there is none by that id)."""
        with self._lock:
            found = self.jobs.get(job_id)
            if found is None:
                raise JobsError("ResourceNotFound", f"Job {job_id} not found")
            return found

    def describe_job(self, job_id: str) -> dict[str, Any]:
        """The `DescribeJob` answer's `job`."""
        with self._lock:
            job = self.job(job_id)
            described: dict[str, Any] = {
                "jobId": job.job_id, "jobArn": f"arn:aws:iot:::job/{job.job_id}", "status": job.status,
                "targets": list(job.targets), "targetSelection": "SNAPSHOT", "description": job.description,
                "createdAt": job.created_at, "lastUpdatedAt": job.created_at, "jobProcessDetails": job.counts(),
                "forceCanceled": job.force_canceled,
            }
            if job.max_per_minute is not None:
                described["jobExecutionsRolloutConfig"] = {"maximumPerMinute": job.max_per_minute}
            if job.abort_criteria:
                described["abortConfig"] = {"criteriaList": [dict(item) for item in job.abort_criteria]}
            if job.comment:
                described["comment"] = job.comment
            if job.reason_code:
                described["reasonCode"] = job.reason_code
            return described

    def list_executions(self, job_id: str, status: str | None = None) -> list[dict[str, Any]]:
        """The `ListJobExecutionsForJob` summaries (released executions, in the order of the job's things)."""
        with self._lock:
            job = self.job(job_id)
            found = []
            for thing in job.things:
                execution = job.executions.get(thing)
                if execution is None or (status and execution.status != status):
                    continue
                summary = {"status": execution.status, "queuedAt": execution.queued_at,
                           "lastUpdatedAt": execution.last_updated_at, "executionNumber": execution.execution_number}
                if execution.started_at is not None:
                    summary["startedAt"] = execution.started_at
                found.append({"thingArn": f"arn:aws:iot:::thing/{thing}", "jobExecutionSummary": summary})
            return found

    def describe_execution(self, job_id: str, thing: str) -> dict[str, Any]:
        """The `DescribeJobExecution` answer's `execution`."""
        with self._lock:
            execution = self.job(job_id).executions.get(thing)
            if execution is None:
                raise JobsError("ResourceNotFound", f"Job execution {job_id} for {thing} not found")
            return {"jobId": job_id, "thingArn": f"arn:aws:iot:::thing/{thing}", "status": execution.status,
                    "statusDetails": {"detailsMap": dict(execution.status_details)},
                    "queuedAt": execution.queued_at, "lastUpdatedAt": execution.last_updated_at,
                    "executionNumber": execution.execution_number, "versionNumber": execution.version}

    def cancel_job(self, job_id: str, *, force: bool = False, comment: str = "", reason_code: str = "") -> Job:
        """Cancel: QUEUED executions (and IN_PROGRESS ones with `force`) become CANCELED; the rest finish."""
        with self._lock:
            job = self.job(job_id)
            if job.status == "COMPLETED":
                raise JobsError("InvalidRequest", f"Job {job_id} is already completed")
            if job.status == "CANCELED" and not force:
                return job
            changed = self._cancel(job, force, comment, reason_code)
        self._notify(changed)
        return job

    def _cancel(self, job: Job, force: bool, comment: str, reason_code: str) -> list[str]:
        job.status, job.comment, job.reason_code = "CANCELED", comment, reason_code
        job.force_canceled = job.force_canceled or force
        changed = []
        now = self.clock()
        for execution in job.executions.values():
            if execution.status == "QUEUED" or (force and execution.status == "IN_PROGRESS"):
                execution.status, execution.last_updated_at = "CANCELED", now
                execution.version += 1
                changed.append(execution.thing)
        return changed

    def release_due(self) -> None:
        """Let a rolling-out job's next executions through, as many as the last minute's rate allows."""
        changed: list[str] = []
        with self._lock:
            for job in self.jobs.values():
                changed += self._release(job)
        self._notify(changed)

    def _release(self, job: Job) -> list[str]:
        if job.status != "IN_PROGRESS":
            return []
        now = self.clock()
        waiting = [thing for thing in job.things if thing not in job.executions]
        if job.max_per_minute is not None:
            job.released_at = [at for at in job.released_at if now - at < 60.0]
            waiting = waiting[: max(job.max_per_minute - len(job.released_at), 0)]
        for thing in waiting:
            number = self._execution_numbers.get(thing, 0) + 1
            self._execution_numbers[thing] = number
            job.executions[thing] = Execution(job.job_id, thing, number, now, last_updated_at=now)
            job.released_at.append(now)
        return waiting

    # -- data plane ------------------------------------------------------------------------------------

    def _pending(self, thing: str) -> list[tuple[Job, Execution]]:
        found = []
        for job in self.jobs.values():
            execution = job.executions.get(thing)
            if execution is not None and execution.status in ("QUEUED", "IN_PROGRESS"):
                found.append((job, execution))
        return found

    def pending(self, thing: str) -> dict[str, list[dict[str, Any]]]:
        """`get`'s answer: the thing's IN_PROGRESS and QUEUED executions, oldest first."""
        with self._lock:
            pending = sorted(self._pending(thing), key=lambda item: item[1].queued_at)
            return {"inProgressJobs": [e.summary() for _, e in pending if e.status == "IN_PROGRESS"],
                    "queuedJobs": [e.summary() for _, e in pending if e.status == "QUEUED"]}

    def _next(self, thing: str) -> tuple[Job, Execution] | None:
        pending = self._pending(thing)
        for wanted in ("IN_PROGRESS", "QUEUED"):
            candidates = sorted((item for item in pending if item[1].status == wanted),
                                key=lambda item: (item[1].queued_at, item[1].execution_number))
            if candidates:
                return candidates[0]
        return None

    def execution_document(self, job: Job, execution: Execution, *, include_document: bool = True
                           ) -> dict[str, Any]:
        """The `JobExecution` shape of `get`/`start-next`/`notify-next` answers."""
        found: dict[str, Any] = {
            "jobId": job.job_id, "thingName": execution.thing, "status": execution.status,
            "statusDetails": dict(execution.status_details), "queuedAt": int(execution.queued_at),
            "lastUpdatedAt": int(execution.last_updated_at), "versionNumber": execution.version,
            "executionNumber": execution.execution_number,
        }
        if execution.started_at is not None:
            found["startedAt"] = int(execution.started_at)
        if include_document:
            found["jobDocument"] = job.document
        return found

    def next_execution(self, thing: str) -> tuple[Job, Execution] | None:
        """The thing's next execution (oldest IN_PROGRESS, else oldest QUEUED), or None."""
        with self._lock:
            return self._next(thing)

    def get_execution(self, thing: str, job_id: str) -> tuple[Job, Execution] | None:
        """`<jobId>/get` (`$next` for the next one, None when there is none); ResourceNotFound for an unknown id."""
        with self._lock:
            if job_id == "$next":
                return self._next(thing)
            job = self.jobs.get(job_id)
            execution = job.executions.get(thing) if job is not None else None
            if job is None or execution is None:
                raise JobsError("ResourceNotFound", f"Job execution {job_id} for {thing} not found")
            return job, execution

    def start_next(self, thing: str, status_details: Any = None) -> tuple[Job, Execution] | None:
        """`start-next`: the next execution, set IN_PROGRESS if it was QUEUED; None when there is none."""
        details = check_status_details(status_details)
        with self._lock:
            found = self._next(thing)
            if found is not None and found[1].status == "QUEUED":
                self._apply(found[0], found[1], "IN_PROGRESS", details)
        if found is not None:
            self._notify([thing])
        return found

    def update(self, thing: str, job_id: str, status: str, status_details: Any = None,
               expected_version: int | None = None) -> tuple[Job, Execution]:
        """`<jobId>/update` from the device; the job and its execution after the update."""
        if status not in DEVICE_STATUSES:
            raise JobsError("InvalidRequest", f"status must be one of {', '.join(sorted(DEVICE_STATUSES))}")
        details = check_status_details(status_details)
        with self._lock:
            job = self.jobs.get(job_id)
            execution = job.executions.get(thing) if job is not None else None
            if job is None or execution is None:
                raise JobsError("ResourceNotFound", f"Job execution {job_id} for {thing} not found")
            if execution.status in TERMINAL:
                raise JobsError("TerminalStateReached",
                                f"Job execution {job_id} for {thing} is already {execution.status}")
            if expected_version is not None and expected_version != execution.version:
                raise JobsError("VersionMismatch", f"expected version {expected_version}, "
                                f"the execution is at {execution.version}", execution.state())
            self._apply(job, execution, status, details)
            changed = [thing, *self._check_abort(job)]
            self._check_completed(job)
        self._notify(changed)
        return job, execution

    def _apply(self, job: Job, execution: Execution, status: str, details: dict[str, str]) -> None:
        now = self.clock()
        if status == "IN_PROGRESS" and execution.started_at is None:
            execution.started_at = now
        execution.status = status
        if details:  # given, they replace the old ones (absent, those stay)
            execution.status_details = dict(details)
        execution.version += 1
        execution.last_updated_at = now

    def _check_abort(self, job: Job) -> list[str]:
        """Cancel the job when an abort criterion is met; the things whose executions that cancelled."""
        if job.status != "IN_PROGRESS" or not job.abort_criteria:
            return []
        done = [e for e in job.executions.values() if e.status in TERMINAL]
        for criterion in job.abort_criteria:
            failure_type = criterion.get("failureType", "FAILED")
            failed = [e for e in done if (e.status in ("FAILED", "REJECTED", "TIMED_OUT")
                                          if failure_type == "ALL" else e.status == failure_type)]
            minimum = int(criterion.get("minNumberOfExecutedThings", 1))
            if len(done) >= minimum and 100.0 * len(failed) / len(done) >= float(criterion["thresholdPercentage"]):
                return self._cancel(job, False, "abort criteria met", f"{failure_type}_RATE")
        return []

    def _check_completed(self, job: Job) -> None:
        if job.status == "IN_PROGRESS" and len(job.executions) == len(job.things) \
                and all(e.status in TERMINAL for e in job.executions.values()):
            job.status = "COMPLETED"

    def _notify(self, things: Sequence[str]) -> None:
        if self.on_change is not None:
            for thing in dict.fromkeys(things):
                self.on_change(thing)
