"""Exports with the destination down, then back: nothing lost, each stream's order kept, the error shown in
DescribeMessageStream meanwhile. Kinesis and S3 are moto's (server mode, real HTTP) behind a proxy the test
takes down; IoT Analytics and IoT SiteWise, which moto lacks, are `support.aws_recorder`. Clients are the PyPI
SDK's; appends go through the protocol as a Lambda's would."""

from __future__ import annotations

import base64
import json
import urllib.parse

import boto3
import pytest
from support.aws_recorder import AwsRecorder
from support.stream_manager import local_stream_manager, sdk
from support.toggle_proxy import ToggleProxy
from support.waiting import wait_until

sm = sdk("stream_manager")


@pytest.fixture
def proxy(moto_env):
    target = urllib.parse.urlparse(moto_env)
    toggle = ToggleProxy((target.hostname, target.port))
    yield toggle
    toggle.close()


@pytest.fixture
def recorder(monkeypatch, moto_env):
    running = AwsRecorder().start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_IOTANALYTICS", running.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_IOTSITEWISE", running.url)
    yield running
    running.stop()


@pytest.fixture
def manager(tmp_path, moto_env):
    with local_stream_manager(tmp_path / "streams") as running:
        yield running


@pytest.fixture
def client(manager):
    with sm.StreamManagerClient(port=manager.port) as connected:
        yield connected


def _status(client, name: str) -> dict:
    statuses = client.describe_message_stream(name).export_statuses or []
    return {status.export_config_identifier: status for status in statuses}


def _kinesis_records(stream_name: str) -> list[dict]:
    kinesis = boto3.client("kinesis")
    shard = kinesis.describe_stream(StreamName=stream_name)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=stream_name, ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = []
    while True:
        answer = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
        records.extend(answer["Records"])
        if not answer["Records"]:
            return records
        iterator = answer["NextShardIterator"]


def test_kinesis_export_waits_out_the_destination_being_down_and_loses_nothing(monkeypatch, proxy, client):
    monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", proxy.url)
    boto3.client("kinesis").create_stream(StreamName="sm-readings", ShardCount=1)
    proxy.set_up(False)
    client.create_message_stream(sm.MessageStreamDefinition(
        name="to-kinesis", strategy_on_full=sm.StrategyOnFull.RejectNewData,
        export_definition=sm.ExportDefinition(kinesis=[sm.KinesisConfig(identifier="kin",
                                                                        kinesis_stream_name="sm-readings")])))
    payloads = [f"reading {index}".encode() for index in range(1200)]  # over two full batches of 500
    for payload in payloads:
        client.append_message("to-kinesis", payload)
    wait_until(lambda: (_status(client, "to-kinesis")["kin"].error_message or "") and proxy.refused >= 2, 30,
               message="the export's error while Kinesis is down")
    assert _status(client, "to-kinesis")["kin"].exported_messages_count == 0
    proxy.set_up(True)
    wait_until(lambda: _status(client, "to-kinesis")["kin"].last_exported_sequence_number == 1199, 60,
               message=lambda: f"every message exported ({_status(client, 'to-kinesis')['kin']})")
    status = _status(client, "to-kinesis")["kin"]
    assert status.error_message is None and status.exported_messages_count == 1200
    monkeypatch.delenv("AWS_ENDPOINT_URL_KINESIS")
    records = _kinesis_records("sm-readings")
    assert [record["Data"] for record in records] == payloads
    assert len({record["PartitionKey"] for record in records}) == 1200  # a random key per record


def _task(path, bucket: str, key: str) -> bytes:
    return sm.Util.validate_and_serialize_to_json_bytes(
        sm.S3ExportTaskDefinition(input_url=f"file://{path}", bucket=bucket, key=key, user_metadata={"site": "jfk"}))


def _statuses(client, name: str) -> list:
    try:
        messages = client.read_messages(name, sm.ReadMessagesOptions(max_message_count=1000))
    except sm.NotEnoughMessagesException:
        return []
    return [sm.Util.deserialize_json_bytes_to_obj(message.payload, sm.StatusMessage) for message in messages]


def test_s3_tasks_upload_multipart_above_the_threshold_and_report_on_the_status_stream(
        monkeypatch, proxy, client, tmp_path):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
    boto3.client("s3").create_bucket(Bucket="sm-exports")
    big, small = tmp_path / "big.bin", tmp_path / "small.csv"
    big.write_bytes(bytes(range(256)) * (11 * 1024 * 1024 // 256))  # 11 MiB: three 5 MiB parts
    small.write_text("ts,temperature\n1,20.5\n")
    client.create_message_stream(sm.MessageStreamDefinition(name="s3-status", strategy_on_full=sm.StrategyOnFull.
                                                            OverwriteOldestData))
    client.create_message_stream(sm.MessageStreamDefinition(
        name="s3-tasks", strategy_on_full=sm.StrategyOnFull.RejectNewData,
        export_definition=sm.ExportDefinition(s3_task_executor=[sm.S3ExportTaskExecutorConfig(
            identifier="s3", status_config=sm.StatusConfig(status_level=sm.StatusLevel.INFO,
                                                           status_stream_name="s3-status"))])))
    proxy.set_up(False)
    client.append_message("s3-tasks", _task(big, "sm-exports", "raw/!{timestamp:yyyy}/big.bin"))
    client.append_message("s3-tasks", _task(tmp_path / "missing.csv", "sm-exports", "never.csv"))
    client.append_message("s3-tasks", _task(small, "sm-exports", "raw/small.csv"))
    wait_until(lambda: any(status.status == sm.Status.Warning for status in _statuses(client, "s3-status")), 30,
               message="a Warning status while S3 is down")
    proxy.set_up(True)
    wait_until(lambda: sum(status.status == sm.Status.Success for status in _statuses(client, "s3-status")) == 2, 60,
               message=lambda: f"two uploads ({[(s.status, s.message) for s in _statuses(client, 's3-status')]})")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    s3 = boto3.client("s3")
    keys = sorted(item["Key"] for item in s3.list_objects_v2(Bucket="sm-exports")["Contents"])
    assert len(keys) == 2 and keys[1] == "raw/small.csv"
    assert keys[0].startswith("raw/20") and keys[0].endswith("/big.bin")
    head = s3.head_object(Bucket="sm-exports", Key=keys[0])
    assert head["ContentLength"] == big.stat().st_size and head["ETag"].strip('"').endswith("-3")  # multipart
    assert head["Metadata"] == {"site": "jfk"}
    assert s3.get_object(Bucket="sm-exports", Key=keys[0])["Body"].read() == big.read_bytes()
    failures = [status for status in _statuses(client, "s3-status") if status.status == sm.Status.Failure]
    assert len(failures) == 1 and failures[0].status_context.sequence_number == 1
    assert failures[0].status_context.s3_export_task_definition.key == "never.csv"


def test_iot_analytics_and_sitewise_exports_reach_the_recorder_after_it_comes_back(recorder, client):
    recorder.down = True
    client.create_message_stream(sm.MessageStreamDefinition(
        name="to-analytics", strategy_on_full=sm.StrategyOnFull.RejectNewData,
        export_definition=sm.ExportDefinition(iot_analytics=[sm.IoTAnalyticsConfig(
            identifier="ana", iot_channel="weather", iot_msg_id_prefix="edge-", batch_size=50)])))
    client.create_message_stream(sm.MessageStreamDefinition(
        name="to-sitewise", strategy_on_full=sm.StrategyOnFull.RejectNewData,
        export_definition=sm.ExportDefinition(iot_sitewise=[sm.IoTSiteWiseConfig(identifier="sw")])))
    for index in range(120):
        client.append_message("to-analytics", json.dumps({"i": index}).encode())
    for index in range(25):
        entry = sm.PutAssetPropertyValueEntry(
            entry_id=f"e{index}", property_alias="/rain/jfk/temperature",
            property_values=[sm.AssetPropertyValue(value=sm.Variant(double_value=20.0 + index),
                                                   timestamp=sm.TimeInNanos(time_in_seconds=1_700_000_000 + index),
                                                   quality=sm.Quality.GOOD)])
        client.append_message("to-sitewise", sm.Util.validate_and_serialize_to_json_bytes(entry))
    wait_until(lambda: _status(client, "to-analytics")["ana"].error_message, 30, message="the down recorder's error")
    recorder.down = False
    wait_until(lambda: _status(client, "to-analytics")["ana"].last_exported_sequence_number == 119
               and _status(client, "to-sitewise")["sw"].last_exported_sequence_number == 24, 60,
               message="both exports done")
    batches = recorder.bodies("/messages/batch")
    assert all(body["channelName"] == "weather" and len(body["messages"]) <= 50 for body in batches)
    messages = [message for body in batches for message in body["messages"]]
    assert [message["messageId"] for message in messages] == [f"edge-{index}" for index in range(120)]
    assert [json.loads(base64.b64decode(message["payload"]))["i"] for message in messages] == list(range(120))
    entries = [entry for body in recorder.bodies("/properties") for entry in body["entries"]]
    assert all(len(body["entries"]) <= 10 for body in recorder.bodies("/properties"))
    assert [entry["entryId"] for entry in entries] == [f"e{index}" for index in range(25)]
    assert entries[3]["propertyValues"][0] == {"value": {"doubleValue": 23.0},
                                                "timestamp": {"timeInSeconds": 1_700_000_003},
                                                "quality": "GOOD"}
