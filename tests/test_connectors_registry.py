"""The connector registry: built from the real group template, unknown connectors left to the router as
undeliverable, and the connectors driven through a real core by a real Lambda using greengrasssdk."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest
from lambdas_fixtures.harness import (
    INTERPRETER_KINDS,
    function_arn,
    interpreters,
    make_function,
    make_group,
)
from support.recorders import RecordingCloud
from support.waiting import wait_until

from simcore.connectors.ml_feedback import MLFeedbackConnector
from simcore.connectors.parameters import ConnectorConfigError
from simcore.connectors.registry import build_registry
from simcore.core.assemble import Core
from simcore.core.router import Router
from simcore.core.work_queue import WorkQueue
from simcore.group import CLOUD, Connector
from simcore.template.loader import load_group

REPO = Path(__file__).resolve().parents[1]
CLOUDWATCH = "arn:aws:greengrass:us-east-1::/connectors/CloudWatchMetrics/versions/4"
FEEDBACK = "arn:aws:greengrass:us-east-1::/connectors/MLFeedback/versions/1"
IMAGES = "arn:aws:greengrass:us-east-1::/connectors/KinesisFirehose/versions/5"  # one simcore does not run
PUBLISHER = function_arn("connector-publisher")
BUCKET = "feedback-bucket"


def ignore(topic: str, payload: bytes, source: str) -> None:
    """A publish callable for tests that do not look at connector outputs."""


def test_registry_serves_the_connectors_the_group_template_defines(tmp_path):
    group = load_group(REPO / "cloudformation" / "greengrass-group.yaml", {"ModelS3Uri": "s3://models/rain.tar.gz"})
    registry = build_registry(group, tmp_path, publish=ignore, cloud_available=False)
    try:
        connector_targets = {s.target for s in group.subscriptions if "/connectors/" in s.target}
        assert connector_targets, "the template routes the inference Lambda's metrics to a connector"
        assert all(registry.has(target) for target in connector_targets)
        for connector in group.connectors:
            assert registry.has(connector.arn), connector.name
        cloudwatch = registry.get(CLOUDWATCH)
        assert cloudwatch.settings.publish_interval_s == 60
        assert cloudwatch.settings.max_metrics_to_retain == 5000
        feedback = registry.get(FEEDBACK)
        assert isinstance(feedback, MLFeedbackConnector)
        assert feedback.settings.request_limit == 10
        [configuration] = feedback.settings.configurations.values()
        assert configuration.config_id == "rain-low-confidence"
        assert configuration.bucket == "rain-edge-feedback-123456789012-us-east-1"
        assert configuration.strategy is None
        # The inference Lambda's FEEDBACK_CONNECTOR_ARN is the address the registry answers invocations on.
        inference = next(f for f in group.functions if "FEEDBACK_CONNECTOR_ARN" in f.environment)
        assert registry.has_function(inference.environment["FEEDBACK_CONNECTOR_ARN"])
        assert not registry.has_function(inference.arn)
        assert registry.status()["unsupported"] == []
    finally:
        registry.stop()


def test_unknown_connectors_stay_out_and_their_messages_are_undeliverable(tmp_path):
    unknown_version = "arn:aws:greengrass:us-east-1::/connectors/CloudWatchMetrics/versions/9"
    group = make_group(
        [],
        [(CLOUD, "images/in", IMAGES), (CLOUD, "metrics/in", unknown_version)],
        connectors=(Connector("Images", IMAGES, {"MLModelDestinationPath": "/ml"}),
                    Connector("FutureMetrics", unknown_version, {})),
    )
    registry = build_registry(group, tmp_path, publish=ignore, cloud_available=False)
    assert not registry.has(IMAGES) and not registry.has(unknown_version)
    assert registry.status()["unsupported"] == [IMAGES, unknown_version]
    with pytest.raises(KeyError, match=re.escape(IMAGES)):
        registry.deliver(IMAGES, "images/in", b"{}")
    router = Router(group.subscriptions, [], WorkQueue(), connectors=registry,
                    connector_arns=[c.arn for c in group.connectors])
    assert router.unroutable_targets() == sorted([IMAGES, unknown_version])
    outcome = router.route(CLOUD, "images/in", b"{}")
    assert outcome.undeliverable == 1
    registry.stop()


def test_a_bad_connector_stops_the_build_before_any_connector_starts(tmp_path):
    group = make_group([], [], connectors=(
        Connector("MLFeedback", FEEDBACK, {"FeedbackConfigurationMap": json.dumps(
            {"cfg": {"s3-bucket-name": BUCKET, "content-type": "application/json"}})}),
        Connector("CloudWatchMetrics", CLOUDWATCH, {"PublishInterval": "60"}),
    ))
    before = {thread.name for thread in threading.enumerate()}
    with pytest.raises(ConnectorConfigError, match="MemorySize is required") as caught:
        build_registry(group, tmp_path, publish=ignore, cloud_available=False)
    assert caught.value.location == "Connectors[CloudWatchMetrics].Parameters.MemorySize"
    assert not {thread.name for thread in threading.enumerate()} - before


def test_aws_sinks_need_both_a_cloud_and_the_environment_switch(tmp_path):
    group = make_group([], [], connectors=(Connector("CloudWatchMetrics", CLOUDWATCH, {
        "PublishInterval": "0", "MemorySize": "1", "MaxMetricsToRetain": "2000"}),))
    registry = build_registry(group, tmp_path, publish=ignore, cloud_available=False,
                              environ={"SIMCORE_CONNECTORS_AWS": "1"})
    try:
        assert type(registry.get(CLOUDWATCH).sink).__name__ == "LocalMetricsFile"
    finally:
        registry.stop()


def connectors_group():
    return make_group(
        [make_function("connector-publisher", "connectors", "publisher.function_handler", timeout_s=10)],
        [
            (CLOUD, "publisher/in", PUBLISHER),
            (PUBLISHER, "cloudwatch/metric/put", CLOUDWATCH),
            (CLOUDWATCH, "cloudwatch/metric/put/status", CLOUD),
            (PUBLISHER, "rain/test-core/feedback", FEEDBACK),
            (FEEDBACK, "feedback/message/status", CLOUD),
            (FEEDBACK, "feedback/message/prediction", CLOUD),
            (PUBLISHER, "images/in", IMAGES),
        ],
        connectors=(
            Connector("CloudWatchMetrics", CLOUDWATCH, {
                "PublishInterval": "0", "MemorySize": "65536", "MaxMetricsToRetain": "2000",
            }),
            Connector("MLFeedback", FEEDBACK, {"FeedbackConfigurationMap": json.dumps({"rain-low-confidence": {
                "s3-bucket-name": BUCKET, "s3-prefix": "test-core", "content-type": "application/json",
                "file-ext": "json",
            }})}),
            Connector("Images", IMAGES, {}),
        ),
    )


@pytest.fixture(params=INTERPRETER_KINDS)
def running_core(request, tmp_path):
    """A real core whose connectors publish back through it (as the daemon wires them)."""
    cloud = RecordingCloud()
    group = connectors_group()
    root = tmp_path / "ggc"
    cores: list[Core] = []

    def publish(topic: str, payload: bytes, source: str) -> None:
        cores[0].publish(topic, payload, source=source)

    registry = build_registry(group, root, publish=publish, cloud_available=False)
    core = Core(group, runtime_root=root, cloud=cloud, connectors=registry, interpreters=interpreters(request.param))
    cores.append(core)
    core.start()
    yield core, cloud, registry, root
    core.stop()
    registry.stop()


def test_lambda_messages_reach_the_connectors_through_a_real_core(running_core):
    core, cloud, registry, root = running_core
    metric = {"request": {"namespace": "RainEdge", "metricData": {
        "metricName": "Predictions", "value": 4.0, "unit": "Count",
        "dimensions": [{"name": "Thing", "value": "test-core"}]}}}
    core.publish("publisher/in", json.dumps({"topic": "cloudwatch/metric/put", "message": metric}).encode())
    [status] = cloud.wait_for("cloudwatch/metric/put/status")
    assert json.loads(status)["response"]["status"] == "success"
    [record] = [json.loads(line) for line in
                (root / "var" / "connectors" / "CloudWatchMetrics" / "metrics.jsonl").read_text().splitlines()]
    assert record["request_id"] == json.loads(status)["response"]["cloudwatch_rid"]
    assert record["metric_data"][0]["Value"] == 4.0

    sample = {"ConfigId": "rain-low-confidence", "ModelInput": "eyJ0ZW1wZXJhdHVyZSI6IDQuMn0=",
              "ModelPrediction": [0.52, 0.48], "Metadata": {"seq": 3}}
    core.publish("publisher/in", json.dumps({"topic": "rain/test-core/feedback", "message": sample}).encode())
    [feedback_status] = cloud.wait_for("feedback/message/status")
    [prediction] = cloud.wait_for("feedback/message/prediction")
    key = json.loads(feedback_status)["response"]["s3_response"]["key"]
    stored = root / "var" / "connectors" / "MLFeedback" / BUCKET / key
    assert stored.read_bytes() == b'{"temperature": 4.2}'
    assert json.loads(prediction)["source-ref"] == f"s3://{BUCKET}/{key}"

    core.publish("publisher/in", json.dumps({"topic": "images/in", "message": {}}).encode())
    counters = wait_until(lambda: (c := core.status()["router"])["per_target"].get(IMAGES) and c,
                          message="a router count for the Images connector")
    assert counters["per_target"][IMAGES] == {"undeliverable": 1}
    assert counters["per_target"][CLOUDWATCH] == {"delivered": 1}
    assert counters["per_target"][FEEDBACK] == {"delivered": 1}
    assert registry.status()["connectors"][CLOUDWATCH]["metrics_put"] == 1
