"""Assembles the inference Lambda and answers what the group routes to it, told apart by topic.

- `$aws/things/<thing>/shadow/update/documents`: predict when the sensor's fields changed, publish
  `rain/<thing>/inference/output`, write `reported.rain`, score, and invoke the ML Feedback connector
  (FEEDBACK_CONNECTOR_ARN) with low-confidence samples.
- `rain/<thing>/command/input`: run a command, answer on `rain/<thing>/command/output`.
- no topic (a RequestResponse invoke), or a payload holding every reading field: the local inference service.
Nothing raises out of `handle`: every failure is logged, counted and answered with an error value.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Callable, Dict, Mapping, Optional, Protocol

from rain_inference import cloudwatch
from rain_inference.commands import (
    Command,
    CommandError,
    answer_for_error,
    ok_answer,
    parse_command,
)
from rain_inference.documents import DocumentError, NewReading, new_reading
from rain_inference.features import FeatureError, TendencyUnavailableError
from rain_inference.feedback import FeedbackSender, InvokeCall, is_low_confidence
from rain_inference.invoke import InvokeError, error_payload, looks_like_invoke, parse_invoke
from rain_inference.metrics import RunningMetrics
from rain_inference.predictor import ModelUnavailable, PredictionError, Predictor
from rain_inference.publisher import PublishCall, Publisher
from rain_inference.settings import InferenceSettings, load_settings
from rain_inference.topics import CLOUDWATCH_PUT, documents_thing, topics_for

log = logging.getLogger(__name__)

UpdateShadowCall = Callable[[str, bytes], object]  # (thingName, payload)


class Archive(Protocol):
    """Where each prediction is kept with its reading (rain_inference.archive.ReadingArchive)."""

    def record(self, row: Dict[str, object]) -> None:
        """Keep one record; may raise."""


def _failure(code: str, message: str) -> Dict[str, object]:
    return {"ok": False, "error": {"code": code, "message": message}}


class InferenceApp:
    """One inference Lambda: its model, metrics, and message handling."""

    def __init__(self, settings: InferenceSettings, publish: PublishCall, update_shadow: UpdateShadowCall,
                 predictor: Optional[Predictor] = None, clock: Callable[[], float] = time.time,
                 invoke: Optional[InvokeCall] = None, archive: Optional[Archive] = None) -> None:
        """`archive` keeps each prediction with its reading (rain_inference.archive), when the group has a
        stream manager."""
        self.settings = settings
        self.archive = archive
        for problem in settings.problems:
            log.error("configuration: %s", problem)
        self.metrics = RunningMetrics()
        self.publisher = Publisher(publish, self.metrics)
        self._update_shadow = update_shadow
        self._clock = clock
        self.predictor = predictor if predictor is not None else Predictor(settings.model_dir)
        self.topics = topics_for(settings.thing_name) if settings.thing_name else None
        self.feedback: Optional[FeedbackSender] = None
        if settings.feedback_connector_arn and invoke is not None:
            self.feedback = FeedbackSender(invoke, settings.feedback_connector_arn, settings.feedback_config_id,
                                           self.metrics)
        self._last_predicted: Optional[tuple] = None
        self._last_cloudwatch: Optional[Dict[str, object]] = None
        self.stop_requested = threading.Event()
        self.thread: Optional[threading.Thread] = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], publish: PublishCall,
                         update_shadow: UpdateShadowCall, invoke: Optional[InvokeCall] = None,
                         archive_factory: Optional[Callable[[InferenceSettings], Archive]] = None
                         ) -> "InferenceApp":
        """Build from the Lambda's environment variables; `archive_factory(settings)` when READINGS_STREAM is set."""
        settings = load_settings(environ)
        archive = archive_factory(settings) if settings.readings_stream and archive_factory else None
        return cls(settings, publish, update_shadow, invoke=invoke, archive=archive)

    def start(self) -> None:
        """Load the model (once; failure is logged and counted) and start the metrics thread."""
        if not self.predictor.load():
            self.metrics.record_error("model", self.predictor.load_error or "not loaded")
        if self.topics is None:
            return
        self.thread = threading.Thread(target=self._metrics_loop, name="metrics", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop the metrics thread."""
        self.stop_requested.set()

    # --- dispatch --------------------------------------------------------------------------------
    def handle(self, event: object, subject: Optional[str]) -> object:
        """Answer one message or invoke; never raises."""
        try:
            if subject and documents_thing(subject) is not None:
                return self.on_documents(event, subject)
            if subject and self.topics is not None and subject == self.topics.command_input:
                return self.on_command(event)
            if not subject or looks_like_invoke(event):
                return self.on_invoke(event)
            message = "no subscription of the inference Lambda delivers topic {!r}".format(subject)
            self.metrics.record_error("unexpected_topic", message)
            log.warning("%s", message)
            return _failure("UnexpectedTopic", message)
        except Exception as error:  # a bug must answer, not kill the pinned worker
            log.exception("handling %r failed", subject)
            self.metrics.record_error("internal", str(error))
            return _failure("InternalError", "{}: {}".format(type(error).__name__, error))

    # --- shadow documents --------------------------------------------------------------------------
    def on_documents(self, event: object, subject: str) -> Dict[str, object]:
        """Predict on a new reading in a documents message."""
        thing = documents_thing(subject)
        if self.topics is None or thing != self.topics.thing:
            message = "documents of thing {!r}, but this function serves {!r}".format(
                thing, self.settings.thing_name)
            return self._document_failed("WrongThing", message)
        try:
            found = new_reading(event)
        except DocumentError as error:
            return self._document_failed("BadDocument", str(error))
        if found is None:
            self.metrics.note("skipped.unchanged")
            return {"ok": True, "skipped": "no new sensor reading in this document"}
        key = (found.ts, found.seq, tuple(sorted(found.reading.items(), key=lambda item: item[0])))
        if key == self._last_predicted:
            self.metrics.note("skipped.duplicate")
            return {"ok": True, "skipped": "reading already predicted"}
        if self.predictor.paused:
            self.metrics.note("skipped.paused")
            return {"ok": True, "skipped": "paused"}
        try:
            prediction = self.predictor.predict(found.reading)
        except TendencyUnavailableError as error:
            self.metrics.note("skipped.no_tendency")
            log.info("seq %s not predicted: %s", found.seq, error)
            return {"ok": True, "skipped": str(error)}
        except FeatureError as error:
            return self._document_failed("BadReading", str(error), kind="feature")
        except ModelUnavailable as error:
            return self._document_failed("ModelUnavailable", str(error), kind="model")
        except PredictionError as error:
            return self._document_failed("PredictionFailed", str(error), kind="model")
        self._last_predicted = key
        return {"ok": True, "prediction": self._deliver(found, prediction)}

    def _deliver(self, found: NewReading, prediction) -> Dict[str, object]:
        topics = self.topics
        model = self.predictor.model
        output: Dict[str, object] = {
            "thing": topics.thing,
            "ts": found.ts,
            "seq": found.seq,
            "p_rain": prediction.p_rain,
            "raining": prediction.raining,
            "threshold": prediction.threshold,
            "model_version": model.version,
            "latency_us": prediction.latency_us,
        }
        if found.observed_rain is not None:
            output["observed_rain"] = found.observed_rain
        self.metrics.record_prediction(prediction.p_rain, prediction.raining, prediction.latency_us,
                                       found.observed_rain)
        self.publisher.publish_json(topics.output, output)
        self._write_back(found.seq, prediction.p_rain, prediction.raining)
        self._keep(found, output)
        if self.feedback is not None and is_low_confidence(
                prediction.p_rain, prediction.threshold, self.settings.feedback_band):
            metadata = {"thing": topics.thing, "seq": found.seq, "ts": found.ts,
                        "model_version": model.version, "threshold": prediction.threshold,
                        "observed_rain": found.observed_rain}
            self.feedback.send(found.reading, prediction.p_rain, metadata)
        return output

    def _keep(self, found: NewReading, output: Dict[str, object]) -> None:
        if self.archive is None:
            return
        row = dict(found.reading)
        row.update({key: output[key] for key in ("thing", "ts", "seq", "p_rain", "raining", "threshold",
                                                 "model_version") if key in output})
        row["observed_rain"] = found.observed_rain
        try:
            self.archive.record(row)
            self.metrics.note("archived")
        except Exception as error:  # the stream manager down or full: the prediction still counts
            log.error("keeping seq %s for retraining failed: %s", found.seq, error)
            self.metrics.record_error("archive", str(error))

    def _write_back(self, seq: Optional[int], p_rain: float, raining: bool) -> None:
        body = {"state": {"reported": {"rain": {"p": p_rain, "raining": raining, "seq": seq}}}}
        try:
            self._update_shadow(self.topics.thing, json.dumps(body).encode("utf-8"))
        except Exception as error:  # ShadowError / InvocationException: logged and counted
            log.error("writing reported.rain for seq %s failed: %s", seq, error)
            self.metrics.record_error("shadow", str(error))

    def _document_failed(self, code: str, message: str, kind: str = "bad_document") -> Dict[str, object]:
        log.warning("documents message not predicted (%s): %s", code, message)
        self.metrics.record_error(kind, message)
        return _failure(code, message)

    # --- commands ----------------------------------------------------------------------------------
    def on_command(self, event: object) -> Dict[str, object]:
        """Run a command and publish its answer on the command output topic (also returned)."""
        try:
            command = parse_command(event)
            answer = ok_answer(command.request_id, self._run(command))
            log.info("command %s (id %r) done", command.name, command.request_id)
        except CommandError as error:
            answer = answer_for_error(error)
            self.metrics.record_error("command", str(error))
            log.warning("command refused (%s): %s", error.code, error)
        self.publisher.publish_json(self.topics.command_output, answer)
        return answer

    def _run(self, command: Command) -> object:
        if command.name == "get-model-info":
            return self.predictor.info()
        if command.name == "get-metrics":
            return self.metrics_message()
        if command.name == "set-threshold":
            previous = self.predictor.set_threshold(command.args["threshold"])
            return {"threshold": command.args["threshold"], "previous": previous}
        self.predictor.paused = command.name == "pause"
        return {"paused": self.predictor.paused}

    # --- local inference service ------------------------------------------------------------------
    def on_invoke(self, event: object) -> object:
        """`[p_dry, p_rain]` for a reading, or an error payload naming the problem."""
        self.metrics.note("invocations")
        try:
            reading = parse_invoke(event)
            prediction = self.predictor.predict(reading)
        except InvokeError as error:
            return self._invoke_failed(error.code, str(error))
        except FeatureError as error:
            return self._invoke_failed("InvalidInput", str(error))
        except ModelUnavailable as error:
            return self._invoke_failed("ModelUnavailable", str(error))
        except PredictionError as error:
            return self._invoke_failed("PredictionFailed", str(error))
        return [1.0 - prediction.p_rain, prediction.p_rain]

    def _invoke_failed(self, code: str, message: str) -> Dict[str, object]:
        log.warning("inference request refused (%s): %s", code, message)
        self.metrics.record_error("invoke", message)
        return error_payload(code, message)

    # --- metrics -----------------------------------------------------------------------------------
    def metrics_message(self) -> Dict[str, object]:
        """The rain/<thing>/model/metrics message (also the get-metrics result)."""
        model = self.predictor.model
        message = self.metrics.snapshot()
        message.update({
            "thing": self.settings.thing_name,
            "ts": round(self._clock(), 3),
            "model_version": getattr(model, "version", None),
            "backend": getattr(model, "backend", None),
            "threshold": self.predictor.threshold,
            "paused": self.predictor.paused,
        })
        return message

    def publish_metrics(self) -> None:
        """Publish the metrics message and its CloudWatch Metrics connector form."""
        message = self.metrics_message()
        self.publisher.publish_json(self.topics.metrics, message)
        dimensions = {"Thing": self.settings.thing_name or "", "ModelVersion": str(message["model_version"])}
        for datum in cloudwatch.metrics_messages(self.settings.cloudwatch_namespace, message,
                                                 self._last_cloudwatch, dimensions, message["ts"]):
            self.publisher.publish_json(CLOUDWATCH_PUT, datum)
        self._last_cloudwatch = message

    def _metrics_loop(self) -> None:
        while not self.stop_requested.wait(self.settings.metrics_interval_s):
            try:
                self.publish_metrics()
            except Exception:  # keep publishing at the next interval
                log.exception("publishing metrics failed")
