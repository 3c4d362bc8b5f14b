"""The connectors a group uses, built from its `ConnectorDefinition` and keyed by connector ARN.

`build_registry` makes a local implementation of every connector simcore knows (CloudWatchMetrics versions
1-5, MLFeedback version 1, the ML Image Classification connectors versions 1-2 on each platform); any
other connector is left out and listed in `unsupported`, so the router counts messages to it as
undeliverable. Sinks: local files under `<runtime_root>/var/connectors/<Name>/` unless the core has a cloud
(`cloud_available`) and the environment sets SIMCORE_CONNECTORS_AWS=1, in which case the connectors call
CloudWatch and S3 through boto3 (credentials from boto3's usual chain). Given `aws` (the core's credentials
and, linked to the stand-in, its endpoint: `simcore.connectors.uploader.AwsAccess`), they keep writing the
local files, which become the offline buffer an uploader drains to the real APIs in order.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from simcore.connectors import image_classification as ml_inference
from simcore.connectors import object_detection
from simcore.connectors.cloudwatch_metrics import CloudWatchMetricsConnector, CloudWatchMetricsSettings
from simcore.connectors.ml_feedback import SDK_FUNCTION_ARN, MLFeedbackConnector, MLFeedbackSettings
from simcore.connectors.parameters import ConnectorConfigError, connector_version
from simcore.connectors.sinks import (
    Boto3Metrics,
    Boto3ObjectStore,
    LocalMetricsFile,
    LocalObjectStore,
    local_key_parts,
)
from simcore.connectors.uploader import AwsAccess, JournalUploader, metric_sender, object_sender
from simcore.group import Connector, Group

log = logging.getLogger(__name__)

AWS_ENV = "SIMCORE_CONNECTORS_AWS"
SUPPORTED_VERSIONS = {"CloudWatchMetrics": range(1, 6), "MLFeedback": range(1, 2)}
SUPPORTED_VERSIONS.update({name: ml_inference.VERSIONS for name in ml_inference.NAMES})
# Accepted and checked, then refused with what is missing (simcore/connectors/object_detection.py).
SUPPORTED_VERSIONS.update({name: object_detection.VERSIONS for name in object_detection.NAMES})

Publish = Callable[..., None]
# Given a connector log's name, the function that writes one (level, message) line to it.
OpenLog = Callable[[str], Callable[[str, str], None]]


class ConnectorImplementation(Protocol):
    """What every local connector offers the registry."""

    arn: str

    def deliver(self, topic: str, payload: bytes) -> None: ...

    def stop(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...


class ConnectorRegistry:
    """Running connectors by ARN: the router's `ConnectorRegistry` (has/deliver), plus the ML SDK's invoke."""

    def __init__(self, implementations: Iterable[ConnectorImplementation], unsupported: Iterable[Connector] = (),
                 uploaders: Mapping[str, JournalUploader] | None = None):
        self._by_arn = {implementation.arn: implementation for implementation in implementations}
        self.unsupported = tuple(unsupported)
        self.uploaders = dict(uploaders or {})  # by connector ARN: its local files drained to AWS

    def has(self, connector_arn: str) -> bool:
        """Whether a local implementation serves `connector_arn`."""
        return connector_arn in self._by_arn

    def get(self, connector_arn: str) -> ConnectorImplementation:
        """The implementation serving `connector_arn`; KeyError if none."""
        return self._by_arn[connector_arn]

    def deliver(self, connector_arn: str, topic: str, payload: bytes) -> None:
        """Hand a routed message to its connector (KeyError for an ARN the registry does not serve)."""
        self._by_arn[connector_arn].deliver(topic, payload)

    def _feedback(self) -> MLFeedbackConnector | None:
        return next((c for c in self._by_arn.values() if isinstance(c, MLFeedbackConnector)), None)

    def _inference_service(self, function_arn: str) -> Any:
        """The local inference service `function_arn` addresses (`...:aws:function:GG-ML-INF-...`), or None."""
        name = ml_inference.invoked_function_name(function_arn)
        if name is None:
            return None
        return next((c for c in self._by_arn.values() if getattr(c, "function_name", None) == name), None)

    def has_function(self, function_arn: str) -> bool:
        """Whether `function_arn` is a connector's invoke address (the ML SDK's `...:aws:function:MLFeedback`
        or `...:aws:function:GG-ML-INF-<AlgoType>-<ServiceName>`)."""
        if SDK_FUNCTION_ARN.fullmatch(function_arn) is not None and self._feedback() is not None:
            return True
        return self._inference_service(function_arn) is not None

    def invoke(self, function_arn: str, payload: bytes, client_context: str | bytes | None) -> tuple[bytes, str]:
        """Serve an IPC invocation of a connector address: (payload, FunctionError "" or "Handled")."""
        service = self._inference_service(function_arn)
        if service is not None:
            return service.invoke(payload, client_context)
        feedback = self._feedback()
        if feedback is None or SDK_FUNCTION_ARN.fullmatch(function_arn) is None:
            raise KeyError(function_arn)
        return feedback.invoke(payload, client_context)

    def flush_uploads(self, timeout_s: float) -> bool:
        """Put what the connectors buffer, then wait (at most `timeout_s`) until the uploaders sent everything;
        whether they did."""
        for implementation in self._by_arn.values():
            flush = getattr(implementation, "flush", None)
            if callable(flush):
                flush()
        feedback = self._feedback()
        if feedback is not None:
            feedback.wait_idle(timeout_s)
        deadline = time.monotonic() + timeout_s
        for uploader in self.uploaders.values():
            uploader.notify()
        while any(uploader.pending() for uploader in self.uploaders.values()):
            if time.monotonic() >= deadline:
                return False
            # Polling the uploaders' files: their threads do the sending.
            time.sleep(0.05)
        return True

    def stop(self) -> None:
        """Stop every connector, each flushing what it still holds (buffered metrics, queued samples)."""
        for implementation in self._by_arn.values():
            try:
                implementation.stop()
            except Exception:  # one connector's failure must not keep the others from flushing
                log.exception("Stopping connector %s failed", implementation.arn)
        for uploader in self.uploaders.values():  # after the flush: what is not sent waits in the files
            uploader.stop()

    def status(self) -> dict[str, Any]:
        """Per connector ARN its counters; the unsupported connectors by ARN."""
        status: dict[str, Any] = {
            "connectors": {arn: implementation.stats() for arn, implementation in self._by_arn.items()},
            "unsupported": [connector.arn for connector in self.unsupported],
        }
        if self.uploaders:
            status["uploads"] = {arn: uploader.stats() for arn, uploader in self.uploaders.items()}
        return status


def build_registry(
    group: Group,
    runtime_root: Path,
    *,
    publish: Publish,
    cloud_available: bool,
    environ: Mapping[str, str] | None = None,
    resource_dirs: Mapping[str, Path] | None = None,
    open_log: OpenLog | None = None,
    aws: AwsAccess | None = None,
) -> ConnectorRegistry:
    """Start a local implementation of each connector of `group` that simcore knows.

    `publish(topic, payload, source=connector_arn)` routes a connector's output (e.g. `Core.publish`).
    `resource_dirs` (by resource id, where deploy placed them) is where the ML connectors find their models;
    `open_log(name)` gives the ML connectors their log (else Python logging).
    `aws`: the local files are uploaded to the real APIs with these credentials (module docstring).
    ConnectorConfigError (nothing started) when a connector's parameters are wrong.
    """
    environ = os.environ if environ is None else environ
    use_aws = cloud_available and environ.get(AWS_ENV) == "1"
    root = Path(runtime_root) / "var" / "connectors"
    # Check every connector's parameters before starting any thread.
    plans: list[Callable[[], ConnectorImplementation]] = []
    unsupported = []
    uploaders: dict[str, JournalUploader] = {}
    upload = None if use_aws else aws
    for connector in group.connectors:
        versions = SUPPORTED_VERSIONS.get(connector.name)
        if versions is None or connector_version(connector.arn) not in versions:
            log.warning("Connector %s has no local implementation: messages to it are undeliverable", connector.arn)
            unsupported.append(connector)
        elif connector.name == "CloudWatchMetrics":
            plans.append(_cloudwatch_plan(connector, group.region, root, publish, use_aws, upload, uploaders))
        elif connector.name == "MLFeedback":
            plans.append(_feedback_plan(connector, group.region, root, publish, use_aws, upload, uploaders))
        elif connector.name in object_detection.NAMES:
            settings = object_detection.settings_of(connector)
            ml_inference.model_folder(connector, settings, group, resource_dirs or {})
            raise object_detection.refuse(connector, settings)
    # The inference services start after the ML Feedback connector they may hand samples to.
    inference_plans = [
        _inference_plan(connector, group, resource_dirs or {}, environ, open_log)
        for connector in group.connectors
        if connector.name in ml_inference.NAMES and connector not in unsupported
    ]
    started = [start() for start in plans]
    feedback = next((c for c in started if isinstance(c, MLFeedbackConnector)), None)
    try:
        started += [start(feedback) for start in inference_plans]
    except Exception:
        for implementation in started:
            implementation.stop()
        for uploader in uploaders.values():
            uploader.stop()
        raise
    return ConnectorRegistry(started, unsupported, uploaders)


def check_connectors(group: Group) -> list[str]:
    """What `simcore deploy` checks before it places anything: every connector simcore runs has valid
    parameters, the ML connectors' model resources are the group's, and a connector simcore accepts but
    cannot run (ML Object Detection) stops the deployment. ConnectorConfigError for the first problem;
    returns a warning for each connector simcore does not implement."""
    warnings = []
    for connector in group.connectors:
        versions = SUPPORTED_VERSIONS.get(connector.name)
        if versions is None or connector_version(connector.arn) not in versions:
            warnings.append(f"connector {connector.arn} has no local implementation: messages to it are "
                            "undeliverable")
        elif connector.name == "CloudWatchMetrics":
            CloudWatchMetricsSettings.from_connector(connector)
        elif connector.name == "MLFeedback":
            MLFeedbackSettings.from_connector(connector)
        elif connector.name in object_detection.NAMES:
            settings = object_detection.settings_of(connector)
            ml_inference.check_model_resource(connector, settings, group)
            raise object_detection.refuse(connector, settings)
        else:
            settings = ml_inference.InferenceServiceSettings.from_connector(connector)
            ml_inference.check_model_resource(connector, settings, group)
    return warnings


def _inference_plan(
    connector: Connector, group: Group, resource_dirs: Mapping[str, Path], environ: Mapping[str, str],
    open_log: OpenLog | None,
) -> Callable[[MLFeedbackConnector | None], ConnectorImplementation]:
    settings = ml_inference.InferenceServiceSettings.from_connector(connector)
    model_dir = ml_inference.model_folder(connector, settings, group, resource_dirs)
    feedback_arns = [c.arn for c in group.connectors if c.name == "MLFeedback"]
    if settings.feedback_config_id is not None:
        location = f"Connectors[{connector.id}].Parameters.MLFeedbackConnectorConfigId"
        if not feedback_arns:
            raise ConnectorConfigError(
                f"MLFeedbackConnectorConfigId {settings.feedback_config_id} needs the ML Feedback connector "
                "in the group", location=location)
        configurations = MLFeedbackSettings.from_connector(
            next(c for c in group.connectors if c.name == "MLFeedback")).configurations
        if settings.feedback_config_id not in configurations:
            raise ConnectorConfigError(
                f"MLFeedbackConnectorConfigId {settings.feedback_config_id} is not in the ML Feedback connector's "
                f"FeedbackConfigurationMap ({', '.join(sorted(configurations))})", location=location)
    runtime = ml_inference.connector_runtime(environ)
    log_line = open_log(settings.service_name) if open_log is not None else None

    def start(feedback: MLFeedbackConnector | None) -> ConnectorImplementation:
        return ml_inference.ImageClassificationConnector(
            connector.arn, settings, model_dir, runtime, feedback=feedback, log_line=log_line)

    return start


def _cloudwatch_plan(
    connector: Connector, region: str, root: Path, publish: Publish, use_aws: bool, upload: AwsAccess | None,
    uploaders: dict[str, JournalUploader],
) -> Callable[[], ConnectorImplementation]:
    settings = CloudWatchMetricsSettings.from_connector(connector)
    publish_region = settings.publish_region or region

    def start() -> ConnectorImplementation:
        sink: Any
        if use_aws:
            sink = Boto3Metrics(publish_region)
        else:
            sink = LocalMetricsFile(root / "CloudWatchMetrics" / "metrics.jsonl", publish_region)
            if upload is not None:
                uploader = JournalUploader(sink.path, metric_sender(upload, publish_region), name="CloudWatchMetrics")
                uploaders[connector.arn] = uploader
                sink.on_put = uploader.notify
        return CloudWatchMetricsConnector(connector.arn, settings, sink, publish)

    return start


def _feedback_plan(
    connector: Connector, region: str, root: Path, publish: Publish, use_aws: bool, upload: AwsAccess | None,
    uploaders: dict[str, JournalUploader],
) -> Callable[[], ConnectorImplementation]:
    settings = MLFeedbackSettings.from_connector(connector)
    local_root = root / "MLFeedback"
    if not use_aws:
        for configuration in settings.configurations.values():
            try:
                local_key_parts(configuration.key_for("sample"))
            except ValueError as error:
                location = f"Connectors[{connector.id}].Parameters.FeedbackConfigurationMap.{configuration.config_id}"
                raise ConnectorConfigError(f"s3-prefix cannot be stored locally: {error}", location=location) from None

    def start() -> ConnectorImplementation:
        store: Any = Boto3ObjectStore(region) if use_aws else LocalObjectStore(local_root)
        if upload is not None and isinstance(store, LocalObjectStore):
            uploader = JournalUploader(store.index, object_sender(upload, region, local_root), name="MLFeedback")
            uploaders[connector.arn] = uploader
            store.on_put = uploader.notify
        return MLFeedbackConnector(connector.arn, settings, store, publish)

    return start
