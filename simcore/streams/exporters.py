"""The export engine: every enabled exporter of every stream, run by a fixed pool of threads.

Each exporter keeps its next sequence number (persisted with the stream, after each delivered batch) and is
ready when messages wait past it and either `batchIntervalMillis` is unset, a full batch waits, or the oldest
waiting message is that old. Among ready exporters the lowest `priority` goes first. A failed batch is retried
from the same message after a backoff doubling from `backoff_initial_s` up to `backoff_max_s` (v1: 5 minutes),
forever: nothing is skipped while the destination is down, and a stream's order is kept. A message the
destination can never take is skipped and named in the export status. Messages that strategyOnFull or TTL
dropped before they were exported are counted (`lostMessages`), never waited for. Delivery is at least once:
a crash between a delivery and its persisted position sends that batch again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simcore.streams.definitions import ExportConfig
from simcore.streams.destinations import Destination, ExportFailed, Undeliverable
from simcore.streams.store import StreamStore, now_ms

log = logging.getLogger(__name__)

MAX_BATCH_BYTES = 5 * 1024 * 1024


class Throttle:
    """`STREAM_MANAGER_EXPORTER_MAX_BANDWIDTH`: a token bucket of kilobits per second over all exporters."""

    def __init__(self, kbit_per_s: int | None):
        self.bytes_per_s = None if kbit_per_s is None else kbit_per_s * 1000 / 8
        self._lock = threading.Lock()
        self._next_free = time.monotonic()

    def consume(self, size: int) -> None:
        """Wait until `size` bytes may be sent."""
        if self.bytes_per_s is None:
            return
        with self._lock:
            start = max(self._next_free, time.monotonic())
            self._next_free = start + size / self.bytes_per_s
        delay = start - time.monotonic()
        if delay > 0:
            time.sleep(delay)


@dataclass(eq=False)
class ExportJob:
    """One exporter of one stream, and how it is doing."""

    stream_name: str
    config: ExportConfig
    next_sequence: int
    destination: Destination | None = None
    running: bool = False
    failures: int = 0
    retry_at: float = 0.0
    error_message: str | None = None
    exported_messages: int = 0
    exported_bytes: int = 0
    lost_messages: int = 0
    last_export_time: int | None = None
    last_exported: int | None = None
    removed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def status(self) -> dict[str, Any]:
        """The `exportStatuses` entry of DescribeMessageStream."""
        entry: dict[str, Any] = {"exportConfigIdentifier": self.config.identifier,
                                 "exportedBytesFromStream": self.exported_bytes,
                                 "exportedMessagesCount": self.exported_messages}
        if self.last_exported is not None:
            entry["lastExportedSequenceNumber"] = self.last_exported
        if self.last_export_time is not None:
            entry["lastExportTime"] = self.last_export_time
        if self.error_message:
            entry["errorMessage"] = self.error_message
        return entry


class ExportEngine:
    """Runs the exports of `store`'s streams; `make_destination(stream, config)` builds each target."""

    def __init__(self, store: StreamStore, make_destination: Callable[[str, ExportConfig], Destination], *,
                 threads: int, throttle: Throttle | None = None, backoff_initial_s: float = 1.0,
                 backoff_max_s: float = 300.0):
        self.store = store
        self.make_destination = make_destination
        self.thread_count = threads
        self.throttle = throttle or Throttle(None)
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.jobs: dict[tuple[str, str], ExportJob] = {}
        self._exporting: frozenset[str] = frozenset()  # names of the streams that have exporters
        self._condition = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stopping = False
        store.listeners.append(self._wake)
        store.change_listeners.append(self._sync_stream)
        for name in store.names():
            self._sync_stream(name)

    def start(self) -> None:
        """Start the pool."""
        for index in range(self.thread_count):
            thread = threading.Thread(target=self._work, name=f"stream-export-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop the pool (a batch in flight finishes first)."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        for thread in self._threads:
            thread.join(timeout=60)
        self._threads = []

    def _wake(self, name: str) -> None:
        # Called on every append: only a stream that exports needs the pool woken.
        if name in self._exporting:
            with self._condition:
                self._condition.notify_all()

    def _sync_stream(self, name: str) -> None:
        """Make the jobs of stream `name` match its definition (after a create, update or delete)."""
        with self._condition:
            stream = self.store.streams.get(name)
            wanted = {export.identifier: export for export in (stream.settings.exports if stream else ())}
            for key in [key for key in self.jobs if key[0] == name]:
                job = self.jobs[key]
                if key[1] not in wanted or wanted[key[1]].kind != job.config.kind:
                    job.removed = True
                    del self.jobs[key]
            for identifier, config in wanted.items():
                job = self.jobs.get((name, identifier))
                if job is None:
                    assert stream is not None
                    start = stream.export_positions.get(identifier, config.start_sequence_number)
                    job = ExportJob(name, config, start)
                    self.jobs[(name, identifier)] = job
                elif job.config != config:
                    job.config, job.destination, job.retry_at = config, None, 0.0
                self._publish_status(job)
            self._exporting = frozenset(key[0] for key in self.jobs)
            self._condition.notify_all()

    # -- the pool ------------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._condition:
                job = None
                while not self._stopping:
                    job, wait_s = self._pick()
                    if job is not None:
                        break
                    self._condition.wait(wait_s)
                if self._stopping:
                    return
                assert job is not None
                job.running = True
            try:
                self._run(job)
            finally:
                with self._condition:
                    job.running = False
                    self._condition.notify_all()

    def _pick(self) -> tuple[ExportJob | None, float]:
        """The ready job of lowest priority number, or None and how long to wait before looking again."""
        now, wall = time.monotonic(), self.store.clock()
        best, wait_s = None, 60.0
        for job in self.jobs.values():
            if job.running or job.config.disabled:
                continue
            if job.retry_at > now:
                wait_s = min(wait_s, job.retry_at - now)
                continue
            stream = self.store.streams.get(job.stream_name)
            if stream is None:
                continue
            log_ = stream.log
            waiting = log_.next_sequence - max(job.next_sequence, log_.oldest)
            if waiting <= 0:
                continue
            interval = job.config.batch_interval_ms
            if interval is not None and waiting < job.config.batch_size:
                head = log_.read(job.next_sequence, 1, 1)
                due_in_ms = head[0].ingest_time_ms + interval - wall if head else 0
                if due_in_ms > 0:
                    wait_s = min(wait_s, due_in_ms / 1000)
                    continue
            if best is None or (job.config.priority, job.stream_name) < (best.config.priority, best.stream_name):
                best = job
        return best, max(wait_s, 0.001)

    def _run(self, job: ExportJob) -> None:
        stream = self.store.streams.get(job.stream_name)
        if stream is None or job.removed:
            return
        oldest = stream.log.oldest
        if job.next_sequence < oldest:
            job.lost_messages += oldest - job.next_sequence
            log.warning("stream %s, export %s: %d messages were dropped before they were exported",
                        job.stream_name, job.config.identifier, oldest - job.next_sequence)
            job.next_sequence = oldest
        messages = stream.log.read(job.next_sequence, job.config.batch_size, MAX_BATCH_BYTES)
        if not messages:
            return
        try:
            if job.destination is None:
                job.destination = self.make_destination(job.stream_name, job.config)
            self.throttle.consume(sum(len(message.payload) for message in messages))
            delivered = job.destination.send(job.stream_name, messages)
        except Undeliverable as error:
            self._advance(stream, job, messages[:1], exported=False)
            job.error_message = f"skipped: {error}"
        except ExportFailed as error:
            self._failed(job, str(error))
        except Exception as error:  # a destination's own bug must not end the pool's thread
            log.exception("stream %s, export %s failed", job.stream_name, job.config.identifier)
            self._failed(job, f"{type(error).__name__}: {error}")
        else:
            self._advance(stream, job, messages[:max(1, delivered)], exported=True)
            job.failures, job.retry_at, job.error_message = 0, 0.0, None
        self._publish_status(job)

    def _advance(self, stream: Any, job: ExportJob, done: list, *, exported: bool) -> None:
        job.next_sequence = done[-1].sequence_number + 1
        if not job.removed:
            stream.save_export_position(job.config.identifier, job.next_sequence)
        if exported:
            job.exported_messages += len(done)
            job.exported_bytes += sum(len(message.payload) for message in done)
            job.last_exported = done[-1].sequence_number
            job.last_export_time = now_ms()

    def _failed(self, job: ExportJob, message: str) -> None:
        job.failures += 1
        backoff = min(self.backoff_max_s, self.backoff_initial_s * 2 ** (job.failures - 1))
        job.retry_at = time.monotonic() + backoff
        job.error_message = f"{message} (attempt {job.failures}; next in {backoff:g} s)"

    def _publish_status(self, job: ExportJob) -> None:
        stream = self.store.streams.get(job.stream_name)
        if stream is not None and not job.removed:
            with stream.log.lock:
                stream.export_status[job.config.identifier] = job.status()

    def status(self) -> dict[str, Any]:
        """Per exporter: position, counts, error (for `simcore status`)."""
        with self._condition:
            return {f"{name}/{identifier}": {**job.status(), "nextSequenceNumber": job.next_sequence,
                                             "lostMessages": job.lost_messages, "failures": job.failures}
                    for (name, identifier), job in self.jobs.items()}
