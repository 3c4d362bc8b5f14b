"""The CloudWatch Metrics connector (Greengrass v1, versions 1-5), run in the core's process.

Input: one JSON metric per message on `cloudwatch/metric/put` (any topic a subscription routes here):
`{"request": {"namespace", "metricData": {"metricName", "dimensions": [{"name", "value"}], "value", "unit",
"timestamp"}}}`. Each is checked as the connector and `PutMetricData` check it; a bad one is answered at once
with a `fail` status (`InvalidInputException`, "cw metric is invalid: ...") and not buffered.

Batching, as the connector guide says: metrics are grouped per namespace and put when a namespace holds
20 (PutMetricData's per-call limit) or its oldest metric has waited `PublishInterval` seconds (0: at once).
The buffer keeps at most `MaxMetricsToRetain` metrics across namespaces; when full, a new metric replaces the
oldest one of its own namespace, or is dropped when its namespace holds none (both counted). A put that fails
for a retryable reason (throttling, connection) stays buffered and is retried at the next interval.
Every put answers with a status on `cloudwatch/metric/put/status`:
`{"response": {"cloudwatch_rid", "namespace", "status": "success"}}` or
`{"response": {"namespace", "error", "error_message", "status": "fail"}}`.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simcore.connectors.parameters import ISOLATION_MODE_PATTERN, ParameterReader
from simcore.connectors.sinks import MetricSink, SinkError
from simcore.errors import InputError
from simcore.group import Connector

log = logging.getLogger(__name__)

STATUS_TOPIC = "cloudwatch/metric/put/status"
BATCH_SIZE = 20
MAX_DIMENSIONS = 10
MIN_MAGNITUDE = 8.515920e-109
MAX_MAGNITUDE = 1.174271e108
RETRY_BACKOFF_S = (1.0, 30.0)
INVALID_INPUT = "InvalidInputException"
INVALID_MESSAGE = "cw metric is invalid"
VALID_UNITS = frozenset(
    [
        "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes", "Bits",
        "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second", "Kilobytes/Second",
        "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second",
        "Gigabits/Second", "Terabits/Second", "Count/Second", "None",
    ]
)

Publish = Callable[..., None]


@dataclass(frozen=True)
class CloudWatchMetricsSettings:
    """The connector's parameters, checked against the patterns in its guide (version 4)."""

    publish_interval_s: int
    publish_region: str | None
    memory_size_kb: int
    max_metrics_to_retain: int
    isolation_mode: str = "GreengrassContainer"

    @classmethod
    def from_connector(cls, connector: Connector) -> CloudWatchMetricsSettings:
        """Read and check `connector.parameters`; ConnectorConfigError names a bad or unknown parameter."""
        reader = ParameterReader(connector.id, connector.parameters)
        interval = reader.string("PublishInterval", r"[0-9]|[1-9]\d|[1-9]\d\d|900", required=True)
        region = reader.string("PublishRegion", r"|([a-z]{2}-[a-z]+-\d{1})", required=False)
        memory = reader.string("MemorySize", r"[0-9]+", required=True)
        retain = reader.string("MaxMetricsToRetain", r"[2-9]\d{3}|[1-9]\d{4,}", required=True)
        isolation = reader.string(
            "IsolationMode", ISOLATION_MODE_PATTERN, required=False, default="GreengrassContainer"
        )
        reader.finish()
        if int(interval) > 900:  # the pattern admits 901-999
            raise reader.error("PublishInterval", f"PublishInterval {interval} is above the maximum of 900")
        return cls(
            publish_interval_s=int(interval),
            publish_region=region or None,
            memory_size_kb=int(memory),
            max_metrics_to_retain=int(retain),
            isolation_mode=isolation or "GreengrassContainer",
        )


class InvalidMetric(InputError, ValueError):
    """A message the connector refuses; `namespace` when the message had a readable one."""

    code = "InvalidMetric"

    def __init__(self, detail: str, namespace: str | None = None):
        super().__init__(f"{INVALID_MESSAGE}: {detail}")
        self.namespace = namespace


def parse_metric(payload: bytes, received_at: float) -> tuple[str, dict[str, Any]]:
    """(namespace, a PutMetricData MetricDatum) for one input message; InvalidMetric names what is wrong.

    `received_at` (epoch seconds) stands in for an omitted `timestamp`. A given `timestamp` is epoch seconds,
    as boto3 reads a number and as the guide's examples (`time.time()`) send it.
    """
    try:
        message = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidMetric(f"the message is not JSON ({error})") from None
    request = message.get("request") if isinstance(message, dict) else None
    if not isinstance(request, dict):
        raise InvalidMetric("the message needs a 'request' object")
    namespace = request.get("namespace")
    if not isinstance(namespace, str) or not namespace:
        raise InvalidMetric("request.namespace is required and must be a string")
    if namespace.startswith(":") or namespace.startswith("AWS/"):
        raise InvalidMetric(f"request.namespace {namespace!r} may not begin with ':' or 'AWS/'", namespace)
    data = request.get("metricData")
    if not isinstance(data, dict):
        raise InvalidMetric("request.metricData is required and must be an object", namespace)
    name = data.get("metricName")
    if not isinstance(name, str) or not name:
        raise InvalidMetric("metricData.metricName is required and must be a string", namespace)
    datum: dict[str, Any] = {"MetricName": name, "Value": _metric_value(data.get("value"), namespace)}
    if data.get("dimensions") is not None:
        datum["Dimensions"] = _dimensions(data["dimensions"], namespace)
    unit = data.get("unit")
    if unit is not None:
        if unit not in VALID_UNITS:
            raise InvalidMetric(f"metricData.unit {unit!r} is not a CloudWatch unit", namespace)
        datum["Unit"] = unit
    datum["Timestamp"] = _timestamp(data.get("timestamp"), received_at, namespace)
    return namespace, datum


def _metric_value(value: Any, namespace: str) -> float:
    if value is None:
        raise InvalidMetric("metricData.value is required", namespace)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidMetric(f"metricData.value {value!r} is not a number", namespace)
    number = float(value)
    if not math.isfinite(number):
        raise InvalidMetric("metricData.value may not be NaN or infinite", namespace)
    if number != 0 and not MIN_MAGNITUDE <= abs(number) <= MAX_MAGNITUDE:
        raise InvalidMetric(
            f"metricData.value {number!r} is outside CloudWatch's range {MIN_MAGNITUDE} to {MAX_MAGNITUDE}", namespace
        )
    return number


def _dimensions(dimensions: Any, namespace: str) -> list[dict[str, str]]:
    if not isinstance(dimensions, list):
        raise InvalidMetric("metricData.dimensions must be an array", namespace)
    if len(dimensions) > MAX_DIMENSIONS:
        raise InvalidMetric(f"metricData.dimensions has {len(dimensions)} entries; at most {MAX_DIMENSIONS}", namespace)
    found = []
    for index, dimension in enumerate(dimensions):
        name = dimension.get("name") if isinstance(dimension, dict) else None
        value = dimension.get("value") if isinstance(dimension, dict) else None
        # PutMetricData needs both halves of a dimension, as non-empty strings.
        if not isinstance(name, str) or not name or not isinstance(value, str) or not value:
            raise InvalidMetric(f"metricData.dimensions[{index}] needs a non-empty string name and value", namespace)
        found.append({"Name": name, "Value": value})
    return found


def _timestamp(value: Any, received_at: float, namespace: str) -> dt.datetime:
    seconds = received_at if value is None else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
        raise InvalidMetric(f"metricData.timestamp {value!r} is not a number of epoch seconds", namespace)
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidMetric(f"metricData.timestamp {value!r} is out of range for epoch seconds", namespace) from None


@dataclass
class _Buffered:
    datum: dict[str, Any]
    queued_at: float


class CloudWatchMetricsConnector:
    """One CloudWatch Metrics connector: validate, buffer per namespace, put in batches, publish statuses.

    A daemon thread does the puts, so a publishing Lambda never waits on CloudWatch. Thread-safe.
    """

    def __init__(
        self,
        arn: str,
        settings: CloudWatchMetricsSettings,
        sink: MetricSink,
        publish: Publish,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ):
        self.arn = arn
        self.settings = settings
        self.sink = sink
        self._publish = publish
        self._clock = clock
        self._wall_clock = wall_clock
        self._buffered: dict[str, collections.deque[_Buffered]] = collections.defaultdict(collections.deque)
        self._retry_at: dict[str, float] = {}
        self._failures: dict[str, int] = collections.Counter()
        self._changed = threading.Condition()
        self._putting = 0
        self._stopping = False
        self.counters: collections.Counter[str] = collections.Counter()
        self._thread = threading.Thread(target=self._run, name="connector-CloudWatchMetrics", daemon=True)
        self._thread.start()

    # -- input ---------------------------------------------------------------------------------------------

    def deliver(self, topic: str, payload: bytes) -> None:
        """Take one input message (from the router); a bad one is answered with a fail status."""
        with self._changed:
            self.counters["received"] += 1
        try:
            namespace, datum = parse_metric(payload, self._wall_clock())
        except InvalidMetric as error:
            with self._changed:
                self.counters["rejected"] += 1
            log.warning("CloudWatch Metrics connector refused a message on %s: %s", topic, error.message)
            self._publish_status(_fail(error.namespace, INVALID_INPUT, error.message))
            return
        with self._changed:
            self._add(namespace, _Buffered(datum, self._clock()))
            self.counters["accepted"] += 1
            self._changed.notify_all()
            stopped = self._stopping
        if stopped:
            # The batching thread is gone: put it now rather than hold it forever.
            self.flush(retry=False)

    def _add(self, namespace: str, item: _Buffered) -> None:
        """Buffer one metric within MaxMetricsToRetain (lock held)."""
        queue = self._buffered[namespace]
        if self._count() >= self.settings.max_metrics_to_retain:
            if not queue:
                # Only metrics of the same namespace may be replaced: with none, the new one is lost.
                self.counters["dropped_buffer_full"] += 1
                log.warning("CloudWatch Metrics buffer full: metric for namespace %s dropped", namespace)
                return
            queue.popleft()
            self.counters["dropped_buffer_full"] += 1
        queue.append(item)

    def _count(self) -> int:
        return sum(len(queue) for queue in self._buffered.values())

    # -- batching ------------------------------------------------------------------------------------------

    def _due(self, now: float, everything: bool) -> tuple[list[tuple[str, list[_Buffered]]], float | None]:
        """Batches to put now (taken out of the buffer), and when the next one falls due (lock held)."""
        batches = []
        next_due: float | None = None
        for namespace, queue in self._buffered.items():
            if not queue:
                continue
            retry_at = self._retry_at.get(namespace, 0.0)
            due_at = max(queue[0].queued_at + self.settings.publish_interval_s, retry_at)
            if len(queue) >= BATCH_SIZE and now >= retry_at:
                due_at = now
            if everything or due_at <= now:
                batches.append((namespace, [queue.popleft() for _ in range(min(BATCH_SIZE, len(queue)))]))
                if queue:
                    next_due = now
            elif next_due is None or due_at < next_due:
                next_due = due_at
        return batches, next_due

    def _run(self) -> None:
        while True:
            with self._changed:
                while True:
                    if self._stopping:
                        return
                    batches, next_due = self._due(self._clock(), everything=False)
                    if batches:
                        self._putting += 1
                        break
                    timeout = None if next_due is None else max(0.0, next_due - self._clock())
                    self._changed.wait(timeout)
            try:
                for namespace, batch in batches:
                    try:
                        self._put(namespace, batch, retry=True)
                    except Exception:  # a bug in one put must not end the thread that serves them all
                        log.exception("PutMetricData for %s failed unexpectedly", namespace)
                        with self._changed:
                            self.counters["metrics_failed"] += len(batch)
            finally:
                with self._changed:
                    self._putting -= 1
                    self._changed.notify_all()

    def _put(self, namespace: str, batch: list[_Buffered], *, retry: bool) -> None:
        """One PutMetricData call and its status; a retryable failure puts the batch back (if `retry`)."""
        try:
            request_id = self.sink.put_metric_data(namespace, [item.datum for item in batch])
        except SinkError as error:
            with self._changed:
                self.counters["put_failures"] += 1
                if error.retryable and retry:
                    self._failures[namespace] += 1
                    low, high = RETRY_BACKOFF_S
                    backoff = min(high, max(low, self.settings.publish_interval_s) * self._failures[namespace])
                    self._retry_at[namespace] = self._clock() + backoff
                    for item in reversed(batch):
                        self._buffered[namespace].appendleft(item)
                    self._trim(namespace)
                else:
                    self.counters["metrics_failed"] += len(batch)
            log.warning("PutMetricData for %s failed (%s): %s", namespace, error.code, error.message)
            self._publish_status(_fail(namespace, error.code, error.message))
            return
        with self._changed:
            self._failures.pop(namespace, None)
            self._retry_at.pop(namespace, None)
            self.counters["puts"] += 1
            self.counters["metrics_put"] += len(batch)
        self._publish_status({"response": {"cloudwatch_rid": request_id, "namespace": namespace, "status": "success"}})

    def _trim(self, namespace: str) -> None:
        """After a batch went back, keep within MaxMetricsToRetain by dropping that namespace's oldest."""
        queue = self._buffered[namespace]
        while self._count() > self.settings.max_metrics_to_retain and queue:
            queue.popleft()
            self.counters["dropped_buffer_full"] += 1

    def _publish_status(self, status: dict[str, Any]) -> None:
        try:
            self._publish(STATUS_TOPIC, json.dumps(status).encode(), source=self.arn)
            with self._changed:
                self.counters["statuses_published"] += 1
        except Exception as error:  # a status nobody can take must not stop the connector
            with self._changed:
                self.counters["status_publish_errors"] += 1
            log.warning("CloudWatch Metrics status could not be published: %s", error)

    # -- control -------------------------------------------------------------------------------------------

    def flush(self, *, retry: bool = True) -> None:
        """Put everything buffered now, whatever its age.

        With `retry`, a batch that fails for a retryable reason goes back to the buffer for the thread to retry;
        without (at stop), it is reported and counted as failed.
        """
        with self._changed:
            while self._putting:
                self._changed.wait()
            batches: list[tuple[str, list[_Buffered]]] = []
            while True:
                more, _ = self._due(self._clock(), everything=True)
                if not more:
                    break
                batches.extend(more)
            self._putting += 1
        try:
            for namespace, batch in batches:
                self._put(namespace, batch, retry=retry)
        finally:
            with self._changed:
                self._putting -= 1
                self._changed.notify_all()

    def stop(self) -> None:
        """Stop the batching thread, then put whatever is still buffered."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._thread.join()
        self.flush(retry=False)

    def stats(self) -> dict[str, Any]:
        """Counters and the buffered count, as plain data."""
        with self._changed:
            return {"buffered": self._count(), **dict(self.counters)}


def _fail(namespace: str | None, error: str, message: str) -> dict[str, Any]:
    response: dict[str, Any] = {"error": error, "error_message": message, "status": "fail"}
    if namespace is not None:
        response["namespace"] = namespace
    return {"response": response}
