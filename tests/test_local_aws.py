"""The stand-in's local AWS: moto in server mode answers real boto3 over HTTP, on loopback only."""

from __future__ import annotations

import json
import urllib.parse

import boto3
import pytest

from simcore.cloud.local_aws import LocalAws


def test_boto3_reaches_the_server_over_http_for_each_service_the_group_uses(moto_env):
    assert urllib.parse.urlsplit(moto_env).hostname == "127.0.0.1"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="local-aws-check")
    s3.put_object(Bucket="local-aws-check", Key="k", Body=b"v")
    assert s3.get_object(Bucket="local-aws-check", Key="k")["Body"].read() == b"v"

    cloudwatch = boto3.client("cloudwatch")
    cloudwatch.put_metric_data(Namespace="local-aws-check", MetricData=[{"MetricName": "m", "Value": 1.0}])
    names = [metric["MetricName"] for metric in cloudwatch.list_metrics(Namespace="local-aws-check")["Metrics"]]
    assert names == ["m"]

    kinesis = boto3.client("kinesis")
    kinesis.create_stream(StreamName="local-aws-check", ShardCount=1)
    put = kinesis.put_records(StreamName="local-aws-check", Records=[{"Data": b"x", "PartitionKey": "p"}])
    assert put["FailedRecordCount"] == 0

    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName="local-aws-check",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName="local-aws-check", Item={"id": {"S": "1"}, "v": {"S": json.dumps({"a": 1})}})
    assert dynamodb.get_item(TableName="local-aws-check", Key={"id": {"S": "1"}})["Item"]["v"]["S"] == '{"a": 1}'


def test_reset_forgets_every_resource(monkeypatch):
    from support.aws import point_at_moto_server

    with LocalAws() as local_aws:
        point_at_moto_server(monkeypatch, local_aws.endpoint)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="before-reset")
        local_aws.reset()
        assert s3.list_buckets()["Buckets"] == []


def test_endpoint_is_refused_before_start_and_after_stop():
    local_aws = LocalAws()
    with pytest.raises(RuntimeError, match="not started"):
        _ = local_aws.endpoint
    local_aws.start()
    local_aws.stop()
    with pytest.raises(RuntimeError, match="not started"):
        _ = local_aws.endpoint


def test_a_local_aws_started_after_another_in_the_same_process_begins_empty(monkeypatch):
    """moto's resources are per process: a stop must take them along, or a second demo run finds the first's."""
    from support.aws import point_at_moto_server

    with LocalAws() as first:
        point_at_moto_server(monkeypatch, first.endpoint)
        boto3.client("s3").create_bucket(Bucket="from-the-first")
    with LocalAws() as second:
        point_at_moto_server(monkeypatch, second.endpoint)
        assert boto3.client("s3").list_buckets()["Buckets"] == []
