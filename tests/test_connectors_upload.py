"""The connectors' local files drained to the real APIs (moto in server mode) with the core's credentials: an
outage of the API loses nothing (retried with backoff, counted), order is kept, and a restart goes on from
where the last upload stopped."""

from __future__ import annotations

import datetime as dt
import json

import boto3
import pytest
from support.cloud import TcpGate
from support.recorders import RecordingPublisher
from support.waiting import wait_until

from simcore.connectors.registry import build_registry
from simcore.connectors.sinks import LocalObjectStore
from simcore.connectors.uploader import AwsAccess, JournalUploader, object_sender
from simcore.group import Connector, Group

CW_ARN = "arn:aws:greengrass:us-east-1::/connectors/CloudWatchMetrics/versions/4"


class CoreCredentials:
    """What the core's token exchange service would hand out, counting the asks."""

    def __init__(self) -> None:
        self.asked = 0

    def __call__(self) -> dict[str, str]:
        self.asked += 1
        expiration = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        return {"AccessKeyId": "ASIACORECREDENTIALS1", "SecretAccessKey": "s", "Token": "t",
                "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ")}


@pytest.fixture
def gate(moto_server):
    """A relay to the moto server that can be shut (the API unreachable) and opened again."""
    port = int(moto_server.rsplit(":", 1)[1])
    relay = TcpGate(port)
    yield relay
    relay.shutdown()


def local_client(endpoint: str, service: str):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def metric(value: float, namespace: str) -> bytes:
    return json.dumps({"request": {"namespace": namespace, "metricData": {
        "metricName": "Predictions", "value": value, "unit": "Count"}}}).encode()


def test_metrics_accepted_while_cloudwatch_is_down_all_arrive_once_it_is_back(tmp_path, moto_server, gate):
    namespace = f"Upload{tmp_path.name[-8:]}"
    group = Group(name="g", region="us-east-1", account_id="123456789012", connectors=(Connector(
        "CloudWatchMetrics", CW_ARN, {"PublishInterval": "0", "MemorySize": "65536", "MaxMetricsToRetain": "2000"}),))
    credentials = CoreCredentials()
    gate.close()
    registry = build_registry(group, tmp_path, publish=RecordingPublisher(), cloud_available=True,
                              aws=AwsAccess(credentials, f"http://127.0.0.1:{gate.port}"), environ={})
    uploader = registry.uploaders[CW_ARN]
    uploader.min_backoff_s, uploader.max_backoff_s = 0.05, 0.4
    try:
        for value in range(1, 11):
            registry.deliver(CW_ARN, "cloudwatch/metric/put", metric(value, namespace))
        connector = registry.get(CW_ARN)
        wait_until(lambda: connector.stats().get("metrics_put") == 10, message="10 metrics in the local file")
        wait_until(lambda: uploader.stats()["send_failures"] >= 2, message="failed sends while the API is down")
        assert uploader.stats()["sent"] == 0 and uploader.stats()["pending_bytes"] > 0

        gate.open()
        wait_until(lambda: uploader.stats()["pending_bytes"] == 0, message=lambda: f"the upload: {uploader.stats()}")
    finally:
        registry.stop()
    assert credentials.asked >= 1
    now = dt.datetime.now(dt.UTC)
    answer = local_client(moto_server, "cloudwatch").get_metric_data(
        MetricDataQueries=[{"Id": "sum", "MetricStat": {"Metric": {"Namespace": namespace, "MetricName": "Predictions"},
                                                       "Period": 60, "Stat": "Sum"}, "ReturnData": True},
                           {"Id": "count", "MetricStat": {"Metric": {"Namespace": namespace,
                                                                     "MetricName": "Predictions"},
                                                         "Period": 60, "Stat": "SampleCount"}, "ReturnData": True}],
        StartTime=now - dt.timedelta(hours=1), EndTime=now + dt.timedelta(minutes=5))
    results = {result["Id"]: sum(result["Values"]) for result in answer["MetricDataResults"]}
    assert results == {"sum": 55.0, "count": 10.0}


def test_feedback_objects_go_up_in_order_and_a_restart_sends_only_the_rest(tmp_path, moto_server, gate):
    bucket = f"feedback-{tmp_path.name[-8:].lower().replace('_', '-')}"
    local_client(moto_server, "s3").create_bucket(Bucket=bucket)
    access = AwsAccess(CoreCredentials(), f"http://127.0.0.1:{gate.port}")
    store = LocalObjectStore(tmp_path / "MLFeedback")
    for number in range(3):
        store.put_object(bucket, f"RainEdgeCore/sample-{number}", f"body {number}".encode(), "application/json",
                         {"model-prediction": str(number)})
    first = JournalUploader(store.index, object_sender(access, "us-east-1", store.root), name="t",
                            min_backoff_s=0.05, max_backoff_s=0.4)
    wait_until(lambda: first.stats()["pending_bytes"] == 0, message="the first three uploads")
    first.stop()

    gate.close()
    store.put_object(bucket, "RainEdgeCore/sample-3", b"body 3", "application/json", {})
    second = JournalUploader(store.index, object_sender(access, "us-east-1", store.root), name="t",
                             min_backoff_s=0.05, max_backoff_s=0.4)
    try:
        wait_until(lambda: second.stats()["send_failures"] >= 1, message="a failed send while S3 is down")
        gate.open()
        wait_until(lambda: second.stats()["pending_bytes"] == 0, message="the fourth upload")
    finally:
        second.stop()
    assert second.stats()["sent"] == 1  # the restart resent nothing already sent
    s3 = local_client(moto_server, "s3")
    listed = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert listed == [f"RainEdgeCore/sample-{number}" for number in range(4)]
    stored = s3.get_object(Bucket=bucket, Key="RainEdgeCore/sample-1")
    assert stored["Body"].read() == b"body 1" and stored["Metadata"] == {"model-prediction": "1"}


def test_a_line_the_api_refuses_for_good_is_skipped_and_counted(tmp_path, moto_server):
    access = AwsAccess(CoreCredentials(), moto_server)
    store = LocalObjectStore(tmp_path / "MLFeedback")
    store.put_object("no-such-bucket-here", "k", b"x", "text/plain", {})
    uploader = JournalUploader(store.index, object_sender(access, "us-east-1", store.root), name="t")
    try:
        wait_until(lambda: uploader.stats()["pending_bytes"] == 0, message="the refused line skipped")
    finally:
        uploader.stop()
    assert uploader.stats()["refused"] == 1 and uploader.stats()["sent"] == 0
