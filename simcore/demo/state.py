"""What the demo has seen so far: readings written, predictions received, metrics, shadow versions.

Two feeds fill it. Readings come from the core's local shadow service (a `ShadowService` listener: every
accepted update that carries a new `seq` is a reading the sensor Lambda wrote). Predictions, metrics,
command answers and the cloud shadow's version come from the cloud side (an MQTT client on the stand-in
broker), so a prediction counts only once it has left the core. Both feeds call in from other threads;
every method takes the one lock.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from simcore.demo.scoring import Confusion, confusion

FINISHED_STATUS = "replay-finished"  # the sensor Lambda's reported.sensor.status once the replay is done
MAX_METRICS_KEPT = 200


@dataclass(frozen=True)
class Reading:
    """One sensor reading written to the local shadow."""

    seq: int
    ts: float
    temperature: float | None
    humidity: float | None
    pressure: float | None
    pressure_tendency_3h: float | None
    observed_rain: bool | None


@dataclass(frozen=True)
class Prediction:
    """One `rain/<thing>/inference/output` message received on the cloud side."""

    seq: int
    ts: float
    p_rain: float
    raining: bool
    threshold: float
    observed_rain: bool | None
    latency_us: int | None
    model_version: str | None


@dataclass(frozen=True)
class Topics:
    """The cloud topics the demo listens and talks on, for one thing."""

    thing: str

    @property
    def output(self) -> str:
        """Predictions."""
        return f"rain/{self.thing}/inference/output"

    @property
    def metrics(self) -> str:
        """The inference Lambda's periodic metrics."""
        return f"rain/{self.thing}/model/metrics"

    @property
    def command_input(self) -> str:
        """Commands to the inference Lambda."""
        return f"rain/{self.thing}/command/input"

    @property
    def command_output(self) -> str:
        """Answers to commands."""
        return f"rain/{self.thing}/command/output"

    @property
    def shadow_documents(self) -> str:
        """The cloud shadow's documents after each accepted update."""
        return f"$aws/things/{self.thing}/shadow/update/documents"

    def subscriptions(self) -> tuple[str, ...]:
        """Every topic the observer subscribes to."""
        return (self.output, self.metrics, self.command_output, self.shadow_documents)


@dataclass
class DemoState:
    """Everything the views and the summary read; fed by `on_local_shadow` and `on_cloud_message`."""

    thing: str
    total_records: int
    started_at: float = field(default_factory=time.monotonic)
    readings: list[Reading] = field(default_factory=list)
    predictions: dict[int, Prediction] = field(default_factory=dict)
    prediction_order: list[int] = field(default_factory=list)
    duplicate_predictions: int = 0
    metrics: list[dict] = field(default_factory=list)
    command_answers: dict[str, dict] = field(default_factory=dict)
    local_version: int | None = None
    cloud_version: int | None = None
    cloud_reported_seq: int | None = None
    sensor: dict = field(default_factory=dict)
    core_status: dict = field(default_factory=dict)
    local_aws: dict | None = None  # what simcore.demo.local_aws.read_back found last
    bad_messages: int = 0
    earlier_run_predictions: int = 0
    last_progress_at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.topics = Topics(self.thing)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._written_seqs: set[int] = set()

    # --- feeds ------------------------------------------------------------------------------------------
    def on_local_shadow(self, thing: str, result: Any) -> None:
        """ShadowService listener: note the local version, the sensor's health and each new reading."""
        if thing != self.thing:
            return
        accepted = result.accepted if isinstance(result.accepted, dict) else {}
        reported = (accepted.get("state") or {}).get("reported") or {}
        current = (result.documents or {}).get("current") or {}
        with self._changed:
            if isinstance(current.get("version"), int):
                self.local_version = current["version"]
            if isinstance(reported.get("sensor"), dict):
                self.sensor = dict(reported["sensor"])
            if isinstance(reported.get("seq"), int) and "temperature" in reported:
                self.readings.append(Reading(
                    seq=reported["seq"], ts=float(reported.get("ts") or 0.0),
                    temperature=reported.get("temperature"), humidity=reported.get("humidity"),
                    pressure=reported.get("pressure"), pressure_tendency_3h=reported.get("pressure_tendency_3h"),
                    observed_rain=reported.get("observed_rain"),
                ))
                self._written_seqs.add(reported["seq"])
                self.last_progress_at = time.monotonic()
            self._changed.notify_all()

    def on_cloud_message(self, topic: str, payload: bytes) -> None:
        """CloudLink handler for the demo's cloud subscriptions."""
        try:
            message = json.loads(payload)
        except ValueError:
            message = None
        with self._changed:
            if not isinstance(message, dict):
                self.bad_messages += 1
            elif topic == self.topics.output:
                self._add_prediction(message)
            elif topic == self.topics.metrics:
                self.metrics.append({"received_at": time.time(), **message})
                del self.metrics[:-MAX_METRICS_KEPT]
            elif topic == self.topics.command_output:
                self.command_answers[str(message.get("id"))] = message
            elif topic == self.topics.shadow_documents:
                current = message.get("current") or {}
                if isinstance(current.get("version"), int):
                    self.cloud_version = current["version"]
                reported = (current.get("state") or {}).get("reported") or {}
                if isinstance(reported.get("seq"), int):
                    self.cloud_reported_seq = reported["seq"]
            self._changed.notify_all()

    def _add_prediction(self, message: dict) -> None:
        try:
            prediction = Prediction(
                seq=int(message["seq"]), ts=float(message["ts"]), p_rain=float(message["p_rain"]),
                raining=bool(message["raining"]), threshold=float(message["threshold"]),
                observed_rain=message.get("observed_rain"), latency_us=message.get("latency_us"),
                model_version=message.get("model_version"),
            )
        except (KeyError, TypeError, ValueError):
            self.bad_messages += 1
            return
        if prediction.seq not in self._written_seqs:
            # A spooled prediction from an earlier, interrupted run: not part of this replay.
            self.earlier_run_predictions += 1
            return
        if prediction.seq in self.predictions:
            # At-least-once delivery may repeat a message; the first copy is the one kept.
            self.duplicate_predictions += 1
            return
        self.predictions[prediction.seq] = prediction
        self.prediction_order.append(prediction.seq)
        self.last_progress_at = time.monotonic()

    def set_core_status(self, status: dict) -> None:
        """The RunningCore's latest status (router counters, cloud link, shadow sync)."""
        with self._lock:
            self.core_status = status

    def set_local_aws(self, found: dict) -> None:
        """What the stand-in's local AWS holds of the group's metrics and feedback (simcore.demo.local_aws)."""
        with self._lock:
            self.local_aws = found

    # --- reading --------------------------------------------------------------------------------------
    def wait_for_change(self, timeout_s: float) -> None:
        """Block until a feed changed something, or `timeout_s` passed."""
        with self._changed:
            self._changed.wait(timeout_s)

    def wait_for_answer(self, request_id: str, timeout_s: float) -> dict | None:
        """The command answer with this id, waiting up to `timeout_s` for it; None if it did not come."""
        with self._changed:
            self._changed.wait_for(lambda: request_id in self.command_answers, timeout_s)
            return self.command_answers.get(request_id)

    @property
    def replay_finished(self) -> bool:
        """Whether the sensor Lambda reported the end of its replay."""
        with self._lock:
            return self.sensor.get("status") == FINISHED_STATUS

    def progress(self) -> dict:
        """Counts for the progress bar and the stop rule."""
        with self._lock:
            invalid = int(self.sensor.get("invalid_readings") or 0)
            written = len(self.readings)
            return {
                "total_records": self.total_records,
                "readings_written": written,
                "invalid_readings": invalid,
                "records_done": written + invalid,
                "predictions_received": len(self.predictions),
                "duplicate_predictions": self.duplicate_predictions,
                "earlier_run_predictions": self.earlier_run_predictions,
                "finished": self.sensor.get("status") == FINISHED_STATUS,
                "sensor_status": self.sensor.get("status"),
                "idle_s": time.monotonic() - self.last_progress_at,
            }

    def missing_predictions(self) -> list[int]:
        """The seqs of written readings with no prediction received (yet)."""
        with self._lock:
            return [reading.seq for reading in self.readings if reading.seq not in self.predictions]

    def received_predictions(self) -> list[Prediction]:
        """This run's predictions, in arrival order."""
        with self._lock:
            return [self.predictions[seq] for seq in self.prediction_order]

    def running_confusion(self) -> Confusion:
        """The confusion matrix of every prediction so far that has an observed outcome (the Lambda's call)."""
        scored = [p for p in self.received_predictions() if p.observed_rain is not None]
        return confusion([bool(p.observed_rain) for p in scored], [p.raining for p in scored])

    def latest_metrics(self) -> dict | None:
        """The last metrics message, or None."""
        with self._lock:
            return self.metrics[-1] if self.metrics else None

    def snapshot(self, readings_from: int = 0, predictions_from: int = 0, metrics_from: int = 0) -> dict:
        """A JSON-ready view; the lists hold only items from the given indexes on (for incremental polling)."""
        counts = self.running_confusion()
        with self._lock:
            latest_reading = asdict(self.readings[-1]) if self.readings else None
            latest_prediction = (asdict(self.predictions[self.prediction_order[-1]])
                                 if self.prediction_order else None)
            body = {
                "thing": self.thing,
                "elapsed_s": round(time.monotonic() - self.started_at, 1),
                "readings": [asdict(reading) for reading in self.readings[readings_from:]],
                "readings_next": len(self.readings),
                "predictions": [asdict(self.predictions[seq]) for seq in self.prediction_order[predictions_from:]],
                "predictions_next": len(self.prediction_order),
                "metrics": self.metrics[metrics_from:],
                "metrics_next": len(self.metrics),
                "latest_reading": latest_reading,
                "latest_prediction": latest_prediction,
                "shadow": {"local_version": self.local_version, "cloud_version": self.cloud_version,
                           "cloud_reported_seq": self.cloud_reported_seq},
                "sensor": dict(self.sensor),
                "confusion": asdict(counts),
                "core": _core_counters(self.core_status),
                "bad_messages": self.bad_messages,
                "local_aws": self.local_aws,
            }
        body["progress"] = self.progress()
        return body

    def latest(self) -> dict:
        """The snapshot without its lists: what the terminal view draws."""
        with self._lock:
            ends = (len(self.readings), len(self.prediction_order), len(self.metrics))
        return self.snapshot(*ends)


def _core_counters(status: dict) -> dict:
    """The few core counters the views show: routed/unrouted/dropped messages, spooler depth, sync state.

    `dropped` counts only losses (a publish no subscription matched, a full queue); the shadow service's outcome
    topics nobody subscribed to are `unrouted_no_subscription`, apart: nothing was meant to receive them.
    """
    router = status.get("router") or {}
    cloud = status.get("cloud") or {}
    sync = status.get("shadow_sync") or {}
    return {
        "routed": router.get("routed"),
        "dropped": (sum(int(router.get(key) or 0) for key in ("dropped_unmatched", "dropped_queue_full"))
                    if router else None),
        "dropped_unmatched": router.get("dropped_unmatched"),
        "unrouted_no_subscription": router.get("unrouted_no_subscription"),
        "dropped_queue_full": router.get("dropped_queue_full"),
        "undeliverable": router.get("undeliverable"),
        "cloud_state": cloud.get("state"),
        "spooled": cloud.get("spooled"),
        "cloud_sent": cloud.get("sent"),
        "cloud_acked": cloud.get("acked"),
        "cloud_dropped": cloud.get("dropped"),
        "syncs": sync.get("syncs"),
        "sync_failures": sync.get("failures"),
    }
