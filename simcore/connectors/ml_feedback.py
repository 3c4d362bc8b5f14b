"""The ML Feedback connector (Greengrass v1, version 1), run in the core's process.

A Lambda hands it one sample: `ConfigId`, `ModelInput` (bytes), `ModelPrediction` (a list of probabilities,
or a dict) and `Metadata` (an object). Two ways in:
- `invoke`: what greengrass_machine_learning_sdk's feedback client does, an IPC invocation of
  `arn:aws:lambda:<region>:aws:function:MLFeedback` with the model input as payload and
  ClientContext base64(`{"custom": {"ConfigId", "ModelPrediction", "Metadata"}}`);
- `deliver`: the same four fields as one JSON message on a topic a subscription routes here, `ModelInput`
  base64-encoded (JSON has no bytes), as `tests/test_connectors_feedback.py` builds it.

Requests wait in a queue of `RequestLimit` (0 or omitted: unbounded); past it a request is dropped with the
connector's own `Queue.Full` status. For each request the configuration's sampling strategy decides; a kept
sample is uploaded as `<s3-prefix>/<uuid>.<file-ext>` (S3, or the local stand-in) with the metadata plus
`publish-ts`. Outputs, with the connector ARN as source: `feedback/message/status` for every request,
`feedback/message/prediction` after an upload, and `cloudwatch/metric/put` metrics in the
`GreengrassFeedbackConnector` namespace.
"""

from __future__ import annotations

import base64
import binascii
import collections
import datetime as dt
import json
import logging
import math
import queue
import random
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simcore.connectors.parameters import ParameterReader
from simcore.connectors.sampling import RANDOM_SAMPLING, STRATEGY_NAMES, SamplingStrategy
from simcore.connectors.sinks import ObjectStore, SinkError
from simcore.errors import InputError
from simcore.group import Connector

log = logging.getLogger(__name__)

STATUS_TOPIC = "feedback/message/status"
PREDICTION_TOPIC = "feedback/message/prediction"
METRICS_TOPIC = "cloudwatch/metric/put"
METRICS_NAMESPACE = "GreengrassFeedbackConnector"
CONFIG_ID_PATTERN = r"[a-zA-Z0-9][a-zA-Z0-9-]{1,62}"
BUCKET_PATTERN = r"[a-z0-9\.\-]{3,63}"
SDK_FUNCTION_ARN = re.compile(r"arn:aws[a-z-]*:lambda:[a-z0-9-]+:aws:function:MLFeedback(:[^:]+)?")
CONFIGURATION_KEYS = ("s3-bucket-name", "content-type", "s3-prefix", "file-ext", "sampling-strategy")

# The feedback client's own argument errors (greengrass_machine_learning_sdk.feedback).
MISSING_ARGUMENT = "{} argument of Feedback.Client.publish is a required argument but was not provided"
INVALID_TYPE = "Argument {} must be of type {}"

Publish = Callable[..., None]


@dataclass(frozen=True)
class FeedbackConfiguration:
    """One entry of `FeedbackConfigurationMap`."""

    config_id: str
    bucket: str
    content_type: str
    prefix: str | None = None
    file_ext: str | None = None
    strategy: SamplingStrategy | None = None

    def key_for(self, sample_id: str) -> str:
        """The object key of a sample: `<s3-prefix>/<sample_id>.<file-ext>`, each part only when configured."""
        name = f"{sample_id}.{self.file_ext}" if self.file_ext else sample_id
        return f"{self.prefix.rstrip('/')}/{name}" if self.prefix else name


@dataclass(frozen=True)
class MLFeedbackSettings:
    """The connector's parameters: its feedback configurations and its request limit (0: none)."""

    configurations: dict[str, FeedbackConfiguration]
    request_limit: int = 0

    @classmethod
    def from_connector(cls, connector: Connector) -> MLFeedbackSettings:
        """Read and check `connector.parameters`; ConnectorConfigError names the bad parameter or key."""
        reader = ParameterReader(connector.id, connector.parameters)
        raw_map = reader.raw("FeedbackConfigurationMap", required=True)
        limit = reader.string("RequestLimit", r"|[0-9]{1,3}", required=False)
        reader.finish()
        return cls(_configurations(reader, raw_map), int(limit) if limit else 0)


def _configurations(reader: ParameterReader, raw_map: Any) -> dict[str, FeedbackConfiguration]:
    name = "FeedbackConfigurationMap"
    if isinstance(raw_map, str):
        try:
            raw_map = json.loads(raw_map)
        except ValueError as error:
            raise reader.error(name, f"{name} is not well-formed JSON: {error}") from None
    if not isinstance(raw_map, dict) or not raw_map:
        raise reader.error(name, f"{name} must be a JSON object with one or more feedback configurations")
    found = {}
    for config_id, body in raw_map.items():
        where = f"{name}.{config_id}"
        if not re.fullmatch(CONFIG_ID_PATTERN, config_id):
            raise reader.error(name, f"feedback configuration ID {config_id!r} does not match ^{CONFIG_ID_PATTERN}$")
        if not isinstance(body, dict):
            raise reader.error(where, "a feedback configuration must be a JSON object")
        unknown = sorted(set(body) - set(CONFIGURATION_KEYS))
        if unknown:
            raise reader.error(where, f"unknown key(s) {', '.join(unknown)}; use {', '.join(CONFIGURATION_KEYS)}")
        bucket = body.get("s3-bucket-name")
        if not isinstance(bucket, str) or not re.fullmatch(BUCKET_PATTERN, bucket):
            raise reader.error(where, f"s3-bucket-name {bucket!r} is required and must match ^{BUCKET_PATTERN}$")
        content_type = body.get("content-type")
        if not isinstance(content_type, str) or not content_type:
            raise reader.error(where, "content-type is required (e.g. application/json)")
        for optional in ("s3-prefix", "file-ext"):
            if body.get(optional) is not None and not isinstance(body[optional], str):
                raise reader.error(where, f"{optional} must be a string")
        found[config_id] = FeedbackConfiguration(
            config_id=config_id,
            bucket=bucket,
            content_type=content_type,
            prefix=body.get("s3-prefix") or None,
            file_ext=body.get("file-ext") or None,
            strategy=_strategy(reader, where, body.get("sampling-strategy")),
        )
    return found


def _strategy(reader: ParameterReader, where: str, raw: Any) -> SamplingStrategy | None:
    if raw is None:
        return None
    if isinstance(raw, str):  # the guide types it as "a well-formed JSON string"; templates nest an object
        try:
            raw = json.loads(raw)
        except ValueError as error:
            raise reader.error(where, f"sampling-strategy is not well-formed JSON: {error}") from None
    if not isinstance(raw, dict):
        raise reader.error(where, "sampling-strategy must be an object with strategy-name")
    name = raw.get("strategy-name")
    if name not in STRATEGY_NAMES:
        raise reader.error(where, f"strategy-name {name!r} must be one of {', '.join(STRATEGY_NAMES)}")
    if name == RANDOM_SAMPLING:
        rate = raw.get("rate")
        if not _number_between(rate, 0.0, 1.0):
            raise reader.error(where, f"rate {rate!r} is required for RANDOM_SAMPLING and must be 0.0 - 1.0")
        return SamplingStrategy(name, rate=float(rate))
    threshold = raw.get("threshold")
    upper = math.inf if name == "ENTROPY" else 1.0
    if not _number_between(threshold, 0.0, upper):
        limit = "0.0 or more" if upper == math.inf else "0.0 - 1.0"
        raise reader.error(where, f"threshold {threshold!r} is required for {name} and must be {limit}")
    return SamplingStrategy(name, threshold=float(threshold))


def _number_between(value: Any, low: float, high: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high


class FeedbackInputError(InputError, ValueError):
    """A request the feedback client itself would refuse (missing argument, wrong type, bad ConfigId)."""

    code = "FeedbackInputError"


@dataclass
class FeedbackRequest:
    """One sample handed to the connector."""

    config_id: str
    model_input: bytes
    model_prediction: list | dict
    metadata: dict[str, Any] = field(default_factory=dict)
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @classmethod
    def from_fields(cls, fields: dict[str, Any], model_input: bytes | None) -> FeedbackRequest:
        """Check the fields as the feedback client's `publish` does; FeedbackInputError with its wording."""
        for required in ("ConfigId", "ModelPrediction"):
            if required not in fields:
                raise FeedbackInputError(MISSING_ARGUMENT.format(required))
        if model_input is None:
            raise FeedbackInputError(MISSING_ARGUMENT.format("ModelInput"))
        config_id = fields["ConfigId"]
        if not isinstance(config_id, str) or not re.fullmatch(CONFIG_ID_PATTERN, config_id):
            raise FeedbackInputError(f"Parameter ConfigId must match: ^{CONFIG_ID_PATTERN}$")
        prediction = fields["ModelPrediction"]
        if not isinstance(prediction, dict | list):
            raise FeedbackInputError(INVALID_TYPE.format("ModelPrediction", "dict or list"))
        metadata = fields.get("Metadata") or {}
        if not isinstance(metadata, dict):
            raise FeedbackInputError(INVALID_TYPE.format("Metadata", "dict"))
        return cls(config_id, model_input, prediction, dict(metadata))

    @classmethod
    def from_message(cls, payload: bytes) -> FeedbackRequest:
        """The JSON message form: the four fields, `ModelInput` base64-encoded."""
        try:
            message = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as error:
            raise FeedbackInputError(f"The feedback message is not JSON: {error}") from None
        if not isinstance(message, dict):
            raise FeedbackInputError("The feedback message must be a JSON object")
        encoded = message.get("ModelInput")
        model_input = None
        if encoded is not None:
            if not isinstance(encoded, str):
                raise FeedbackInputError(INVALID_TYPE.format("ModelInput", "base64 string"))
            try:
                model_input = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise FeedbackInputError("ModelInput is not valid base64") from None
        return cls.from_fields(message, model_input)

    @classmethod
    def from_invocation(cls, payload: bytes, client_context: str | bytes | None) -> FeedbackRequest:
        """The feedback client's IPC form: model input as payload, the rest in the client context."""
        try:
            context = json.loads(base64.b64decode(client_context or b"", validate=True) or b"{}")
        except (binascii.Error, ValueError):
            raise FeedbackInputError("The client context is not base64 of a JSON object") from None
        custom = context.get("custom") if isinstance(context, dict) else None
        if not isinstance(custom, dict):
            raise FeedbackInputError("The client context has no 'custom' object with ConfigId and ModelPrediction")
        return cls.from_fields(custom, payload)


_STOP = object()


class MLFeedbackConnector:
    """One ML Feedback connector: a bounded request queue served by one thread. Thread-safe."""

    def __init__(
        self,
        arn: str,
        settings: MLFeedbackSettings,
        store: ObjectStore,
        publish: Publish,
        *,
        draw: random.Random | None = None,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ):
        self.arn = arn
        self.settings = settings
        self.store = store
        self._publish = publish
        self._draw = draw or random.Random()
        self._now = now
        self._requests: queue.Queue[Any] = queue.Queue(maxsize=settings.request_limit)
        self._lock = threading.Condition()
        self._outstanding = 0
        self._stopped = False
        self.counters: collections.Counter[str] = collections.Counter()
        self._thread = threading.Thread(target=self._run, name="connector-MLFeedback", daemon=True)
        self._thread.start()

    # -- ways in -------------------------------------------------------------------------------------------

    def deliver(self, topic: str, payload: bytes) -> None:
        """A JSON feedback message routed to the connector; a bad one is answered with a fail status."""
        try:
            request = FeedbackRequest.from_message(payload)
        except FeedbackInputError as error:
            self._refuse(error.message)
            return
        self.submit(request)

    def invoke(self, payload: bytes, client_context: str | bytes | None) -> tuple[bytes, str]:
        """The feedback client's invocation: (response payload, FunctionError: "" or "Handled")."""
        try:
            request = FeedbackRequest.from_invocation(payload, client_context)
        except FeedbackInputError as error:
            self._refuse(error.message)
            return json.dumps({"errorMessage": error.message, "errorType": "ValueError"}).encode(), "Handled"
        queued = self.submit(request)
        return json.dumps({"id": request.request_id, "queued": queued}).encode(), ""

    def submit(self, request: FeedbackRequest) -> bool:
        """Queue one request; False (and a `Queue.Full` status) when RequestLimit requests already wait."""
        with self._lock:
            self.counters["received"] += 1
            stopped = self._stopped
            if not stopped:
                try:
                    self._requests.put_nowait(request)
                except queue.Full:
                    self.counters["throttled"] += 1
                else:
                    self._outstanding += 1
                    return True
        if stopped:
            # After stop the thread is gone: serve the request here rather than lose it.
            self._handle(request)
            return True
        limit = self.settings.request_limit
        self._status(request.request_id, {
            "status": "fail",
            "error_message": f"Request limit has been reached (max request: {limit} ). Dropping request.",
            "error": "Queue.Full",
        })
        self._metric("ErrorRequestThrottled", 1, "Count")
        return False

    def _refuse(self, message: str) -> None:
        with self._lock:
            self.counters["received"] += 1
            self.counters["invalid"] += 1
        log.warning("ML Feedback connector refused a request: %s", message)
        self._status(str(uuid.uuid4()), {"status": "fail", "error_message": message, "error": "ValueError"})

    # -- serving -------------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            request = self._requests.get()
            if request is _STOP:
                return
            try:
                self._handle(request)
            except Exception:  # one bad request must not stop the connector
                log.exception("ML Feedback request %s failed", request.request_id)
            finally:
                with self._lock:
                    self._outstanding -= 1
                    self._lock.notify_all()

    def _handle(self, request: FeedbackRequest) -> None:
        configuration = self.settings.configurations.get(request.config_id)
        if configuration is None:
            known = ", ".join(sorted(self.settings.configurations))
            self._fail(request, "ValueError", f"ConfigId {request.config_id} is not in FeedbackConfigurationMap "
                       f"(it defines {known})")
            return
        strategy = configuration.strategy
        if strategy is not None:
            probabilities = _probabilities(request.model_prediction)
            if strategy.needs_probabilities and probabilities is None:
                self._fail(request, "ValueError", f"The {strategy.name} sampling strategy needs ModelPrediction "
                           "as a list of numbers (probabilities)")
                return
            if not strategy.keeps(probabilities or [], self._draw):
                with self._lock:
                    self.counters["dropped_by_strategy"] += 1
                self._status(request.request_id, {"status": "sample_dropped_by_strategy"})
                self._metric("SampleNotUsed", 1, "Count")
                return
        self._upload(request, configuration)

    def _upload(self, request: FeedbackRequest, configuration: FeedbackConfiguration) -> None:
        key = configuration.key_for(str(uuid.uuid4()))
        metadata = dict(request.metadata)
        metadata["publish-ts"] = self._now().strftime("%Y-%m-%d %H:%M:%S.%f")
        self._metric("SampleSize", len(request.model_input), "Bytes")
        try:
            response = self.store.put_object(
                configuration.bucket, key, request.model_input, configuration.content_type, _s3_metadata(metadata)
            )
        except SinkError as error:
            self._metric("SampleUploadFailure", 1, "Count")
            self._fail(request, error.code, "Failed to upload model input data due to exception. Model prediction "
                       f"will not be published. Exception type: {error.code}, error: {error.message}")
            return
        with self._lock:
            self.counters["uploaded"] += 1
        self._status(request.request_id, {
            "status": "success",
            "s3_response": {**response, "bucket": configuration.bucket, "key": key},
        })
        self._metric("SampleUploadSuccess", 1, "Count")
        prediction = {
            "source-ref": f"s3://{configuration.bucket}/{key}",
            "model-prediction": request.model_prediction,
            "config-id": configuration.config_id,
            "metadata": metadata,
        }
        if self._send(PREDICTION_TOPIC, prediction):
            self._metric("SampleAndPredictionPublished", 1, "Count")

    def _fail(self, request: FeedbackRequest, error: str, message: str) -> None:
        with self._lock:
            self.counters["failed"] += 1
        log.warning("ML Feedback request %s failed: %s", request.request_id, message)
        self._status(request.request_id, {
            "status": "fail",
            "error_message": f"[RequestId: {request.request_id}] {message}",
            "error": error,
        })

    # -- outputs -------------------------------------------------------------------------------------------

    def _status(self, request_id: str, response: dict[str, Any]) -> None:
        self._send(STATUS_TOPIC, {"response": response, "id": request_id})

    def _metric(self, name: str, value: float, unit: str) -> None:
        datum = {"value": value, "unit": unit, "metricName": name}
        self._send(METRICS_TOPIC, {"request": {"namespace": METRICS_NAMESPACE, "metricData": datum}})

    def _send(self, topic: str, message: dict[str, Any]) -> bool:
        try:
            self._publish(topic, json.dumps(message, default=str).encode(), source=self.arn)
        except Exception as error:  # an output nobody can take must not stop the connector
            with self._lock:
                self.counters["publish_errors"] += 1
            log.warning("ML Feedback output on %s could not be published: %s", topic, error)
            return False
        return True

    # -- control -------------------------------------------------------------------------------------------

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every queued request is served; False if `timeout` passed first."""
        with self._lock:
            return self._lock.wait_for(lambda: self._outstanding == 0, timeout)

    def stop(self) -> None:
        """Serve every queued request, then stop the thread (later requests are served inline)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._requests.put(_STOP)  # blocks only while the thread is still draining a full queue
        self._thread.join()

    def stats(self) -> dict[str, Any]:
        """Counters and the queue length, as plain data."""
        with self._lock:
            return {"queued": self._outstanding, **dict(self.counters)}


def _probabilities(prediction: list | dict) -> list[float] | None:
    """The prediction as a list of finite numbers, or None when it is not one."""
    if not isinstance(prediction, list) or not prediction:
        return None
    if not all(isinstance(p, int | float) and not isinstance(p, bool) and math.isfinite(p) for p in prediction):
        return None
    return [float(p) for p in prediction]


def _s3_metadata(metadata: dict[str, Any]) -> dict[str, str]:
    """S3 user metadata is text: strings stay, anything else is stored as its JSON."""
    return {str(key): value if isinstance(value, str) else json.dumps(value) for key, value in metadata.items()}
