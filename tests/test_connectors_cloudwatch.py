"""The CloudWatch Metrics connector: validation with the connector's wording, batching per namespace,
the MaxMetricsToRetain bound, status messages, the local sink and (with moto) the real PutMetricData."""

from __future__ import annotations

import json
import math
import re
import threading
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from support.recorders import RecordingPublisher

from simcore.connectors.cloudwatch_metrics import (
    STATUS_TOPIC,
    CloudWatchMetricsConnector,
    CloudWatchMetricsSettings,
    parse_metric,
)
from simcore.connectors.parameters import ConnectorConfigError
from simcore.connectors.registry import AWS_ENV, build_registry
from simcore.connectors.sinks import LocalMetricsFile
from simcore.group import Connector, Group

ARN = "arn:aws:greengrass:us-east-1::/connectors/CloudWatchMetrics/versions/4"


def metric(namespace: str = "RainEdge", name: str = "Predictions", value: float = 3.0, **extra) -> bytes:
    data = {"metricName": name, "value": value, **extra}
    return json.dumps({"request": {"namespace": namespace, "metricData": data}}).encode()


def settings(interval: int = 0, retain: int = 2000) -> CloudWatchMetricsSettings:
    return CloudWatchMetricsSettings.from_connector(
        Connector("CloudWatchMetrics", ARN, {
            "PublishInterval": str(interval), "MemorySize": "65536", "MaxMetricsToRetain": str(retain),
        })
    )


@pytest.fixture
def outputs() -> RecordingPublisher:
    return RecordingPublisher()


def make_connector(tmp_path: Path, outputs: RecordingPublisher,
                   **kwargs) -> tuple[CloudWatchMetricsConnector, LocalMetricsFile]:
    sink = LocalMetricsFile(tmp_path / "metrics.jsonl", "us-east-1")
    return CloudWatchMetricsConnector(ARN, settings(**kwargs), sink, outputs), sink


def test_metric_is_put_and_answered_with_success_status(tmp_path, outputs):
    connector, sink = make_connector(tmp_path, outputs, interval=0)
    message = metric(
        dimensions=[{"name": "Thing", "value": "RainEdgeCore"}], unit="Count", timestamp=1_700_000_000.5
    )
    connector.deliver("cloudwatch/metric/put", message)
    [status] = outputs.wait_for(STATUS_TOPIC)
    connector.stop()

    [record] = sink.records()
    expected = {"cloudwatch_rid": record["request_id"], "namespace": "RainEdge", "status": "success"}
    assert status == {"response": expected}
    assert outputs.messages[0][2] == ARN, "statuses come from the connector, for subscriptions to route"
    assert record["namespace"] == "RainEdge"
    assert record["metric_data"] == [{
        "MetricName": "Predictions",
        "Dimensions": [{"Name": "Thing", "Value": "RainEdgeCore"}],
        "Value": 3.0,
        "Unit": "Count",
        "Timestamp": "2023-11-14T22:13:20.500000+00:00",
    }]


def test_metrics_are_batched_per_namespace_and_stop_flushes_the_rest(tmp_path, outputs):
    connector, sink = make_connector(tmp_path, outputs, interval=900)
    for index in range(23):
        connector.deliver("cloudwatch/metric/put", metric("A", value=float(index + 1)))
    for index in range(3):
        connector.deliver("cloudwatch/metric/put", metric("B", value=float(index + 1)))
    # 20 metrics in one namespace are put at once; the rest wait for the interval (or stop).
    outputs.wait_for(STATUS_TOPIC, 1)
    assert [(r["namespace"], len(r["metric_data"])) for r in sink.records()] == [("A", 20)]
    assert connector.stats()["buffered"] == 6
    connector.stop()

    puts = sorted((r["namespace"], [d["Value"] for d in r["metric_data"]]) for r in sink.records())
    assert puts == [
        ("A", [float(v) for v in range(1, 21)]),
        ("A", [21.0, 22.0, 23.0]),
        ("B", [1.0, 2.0, 3.0]),
    ]
    assert len(outputs.wait_for(STATUS_TOPIC, 3)) == 3
    assert connector.stats()["metrics_put"] == 26


def test_interval_zero_puts_each_metric_as_it_arrives(tmp_path, outputs):
    connector, sink = make_connector(tmp_path, outputs, interval=0)
    connector.deliver("cloudwatch/metric/put", metric(value=1.0))
    outputs.wait_for(STATUS_TOPIC, 1)
    connector.deliver("cloudwatch/metric/put", metric(value=2.0))
    outputs.wait_for(STATUS_TOPIC, 2)
    assert [[d["Value"] for d in r["metric_data"]] for r in sink.records()] == [[1.0], [2.0]]
    connector.stop()


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (b"{not json", "not JSON"),
        (b'{"metric": {}}', "'request' object"),
        (metric(namespace="AWS/EC2"), "may not begin with ':' or 'AWS/'"),
        (metric(namespace=":x"), "may not begin with ':' or 'AWS/'"),
        (json.dumps({"request": {"namespace": "N", "metricData": {"value": 1}}}).encode(), "metricName is required"),
        (json.dumps({"request": {"namespace": "N", "metricData": {"metricName": "m"}}}).encode(), "value is required"),
        (metric(value=math.nan), "NaN or infinite"),
        (metric(value=1e200), "outside CloudWatch's range"),
        (metric(value=True), "is not a number"),
        (metric(unit="Furlongs"), "not a CloudWatch unit"),
        (metric(dimensions=[{"name": f"d{i}", "value": "v"} for i in range(11)]), "at most 10"),
        (metric(dimensions=[{"name": "Thing"}]), "dimensions[0] needs a non-empty string name and value"),
        (metric(timestamp="yesterday"), "not a number of epoch seconds"),
        (metric(timestamp=1e15), "out of range"),
    ],
)
def test_invalid_metric_is_refused_with_the_connector_wording(tmp_path, outputs, payload, detail):
    connector, sink = make_connector(tmp_path, outputs, interval=0)
    connector.deliver("cloudwatch/metric/put", payload)
    [status] = outputs.wait_for(STATUS_TOPIC)
    connector.stop()
    response = status["response"]
    assert response["status"] == "fail"
    assert response["error"] == "InvalidInputException"
    assert response["error_message"].startswith("cw metric is invalid: ")
    assert detail in response["error_message"]
    assert sink.records() == []
    assert connector.stats()["rejected"] == 1


def test_zero_and_negative_values_are_valid():
    for value in (0, -5.5):
        namespace, datum = parse_metric(metric(value=value), received_at=1.0)
        assert datum["Value"] == float(value)
        assert datum["Timestamp"].timestamp() == 1.0, "no timestamp: the time the connector received it"


def test_full_buffer_replaces_oldest_of_same_namespace_and_keeps_the_rest_for_later(tmp_path, outputs):
    """Offline (the sink cannot write), 2005 metrics in A keep the newest 2000; one in B has nothing to replace."""
    connector, sink = make_connector(tmp_path, outputs, interval=900, retain=2000)
    sink.path.mkdir()  # a directory where the file should be: every put fails with a retryable OSError
    for index in range(20):
        connector.deliver("cloudwatch/metric/put", metric("A", value=float(index + 1)))
    [failure] = outputs.wait_for(STATUS_TOPIC, 1)
    assert failure["response"]["status"] == "fail"
    assert failure["response"]["namespace"] == "A"
    assert failure["response"]["error"] == "IsADirectoryError"
    for index in range(20, 2005):
        connector.deliver("cloudwatch/metric/put", metric("A", value=float(index + 1)))
    connector.deliver("cloudwatch/metric/put", metric("B", value=1.0))
    stats = connector.stats()
    assert stats["buffered"] == 2000
    assert stats["dropped_buffer_full"] == 6

    sink.path.rmdir()  # back online: stop puts everything still held
    connector.stop()
    values = [d["Value"] for r in sink.records() for d in r["metric_data"]]
    assert values == [float(v) for v in range(6, 2006)], "the five oldest were replaced, order kept"
    assert {r["namespace"] for r in sink.records()} == {"A"}


def test_concurrent_publishers_lose_nothing(tmp_path, outputs):
    connector, sink = make_connector(tmp_path, outputs, interval=0)

    def publish_many(worker: int) -> None:
        for index in range(50):
            connector.deliver("cloudwatch/metric/put", metric(f"W{worker}", value=float(index + 1)))

    threads = [threading.Thread(target=publish_many, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    connector.stop()
    seen = sorted((r["namespace"], d["Value"]) for r in sink.records() for d in r["metric_data"])
    assert seen == sorted((f"W{w}", float(i + 1)) for w in range(4) for i in range(50))
    assert all(len(r["metric_data"]) <= 20 for r in sink.records())


@pytest.mark.parametrize(
    ("parameters", "named"),
    [
        ({"PublishInterval": "901", "MemorySize": "1", "MaxMetricsToRetain": "2000"}, "PublishInterval"),
        ({"PublishInterval": "sixty", "MemorySize": "1", "MaxMetricsToRetain": "2000"}, "PublishInterval"),
        ({"PublishInterval": "60", "MemorySize": "1", "MaxMetricsToRetain": "1999"}, "MaxMetricsToRetain"),
        ({"PublishInterval": "60", "MaxMetricsToRetain": "2000"}, "MemorySize"),
        ({"PublishInterval": "60", "MemorySize": "1", "MaxMetricsToRetain": "2000", "PublishRegion": "Mars"},
         "PublishRegion"),
        ({"PublishInterval": "60", "MemorySize": "1", "MaxMetricsToRetain": "2000", "MemoryBufferSize": "1"},
         "MemoryBufferSize"),
        ({"PublishInterval": "60", "MemorySize": "1", "MaxMetricsToRetain": "2000", "IsolationMode": "Docker"},
         "IsolationMode"),
    ],
)
def test_bad_parameters_are_named(parameters, named):
    with pytest.raises(ConnectorConfigError, match=re.escape(named)) as caught:
        CloudWatchMetricsSettings.from_connector(Connector("CloudWatchMetrics", ARN, parameters))
    assert caught.value.location == f"Connectors[CloudWatchMetrics].Parameters.{named}"
    assert named in caught.value.message


def test_with_aws_enabled_metrics_go_to_cloudwatch_put_metric_data(tmp_path, outputs):
    group = Group(
        name="g", region="us-east-1", account_id="123456789012",
        connectors=(Connector("CloudWatchMetrics", ARN, {
            "PublishInterval": "0", "MemorySize": "65536", "MaxMetricsToRetain": "2000",
            "PublishRegion": "eu-west-1",
        }),),
    )
    with mock_aws():
        registry = build_registry(group, tmp_path, publish=outputs, cloud_available=True, environ={AWS_ENV: "1"})
        registry.deliver(ARN, "cloudwatch/metric/put", metric(
            "RainEdge", "LatencyP50", 812.0, unit="Microseconds", dimensions=[{"name": "Thing", "value": "core"}],
        ))
        [status] = outputs.wait_for(STATUS_TOPIC)
        registry.stop()
        cloudwatch = boto3.client("cloudwatch", region_name="eu-west-1")
        listed = cloudwatch.list_metrics(Namespace="RainEdge")["Metrics"]
    assert status["response"]["status"] == "success"
    assert status["response"]["cloudwatch_rid"]
    assert listed == [{"Namespace": "RainEdge", "MetricName": "LatencyP50",
                       "Dimensions": [{"Name": "Thing", "Value": "core"}]}]
    assert not (tmp_path / "var" / "connectors" / "CloudWatchMetrics" / "metrics.jsonl").exists()


def test_metric_after_stop_is_put_at_once_not_held(tmp_path, outputs):
    connector, sink = make_connector(tmp_path, outputs, interval=900)
    connector.stop()
    connector.deliver("cloudwatch/metric/put", metric(value=9.0))
    assert [[d["Value"] for d in r["metric_data"]] for r in sink.records()] == [[9.0]]
    assert connector.stats()["buffered"] == 0
