"""The demo's read-back of the stand-in's local AWS (moto in server mode): the group's feedback buckets are made,
and what its connectors put (CloudWatch metrics of its namespace, feedback objects) is found where a user looks."""

from __future__ import annotations

import datetime as dt
import json

import boto3
from lambdas_fixtures.harness import make_function, make_group

from simcore.demo.local_aws import feedback_buckets, prepare, read_back
from simcore.group import Connector

FEEDBACK_ARN = "arn:aws:greengrass:us-east-1::/connectors/MLFeedback/versions/1"


def demo_group(tag: str):
    inference = make_function("inference", "aws_user", "aws_user.function_handler",
                              environment={"CLOUDWATCH_NAMESPACE": f"RainDemo{tag}"})
    feedback = Connector("MLFeedback", FEEDBACK_ARN, {"FeedbackConfigurationMap": json.dumps(
        {"rain-low-confidence": {"s3-bucket-name": f"rain-feedback-{tag}", "s3-prefix": "RainEdgeCore"}})})
    return make_group([inference], connectors=(feedback,))


def test_the_read_back_finds_the_groups_metrics_and_feedback_objects(moto_server, tmp_path):
    tag = tmp_path.name[-6:].lower().replace("_", "")
    group = demo_group(tag)
    assert feedback_buckets(group) == [f"rain-feedback-{tag}"]
    prepare(moto_server, group)
    aws = {"endpoint_url": moto_server, "region_name": "us-east-1", "aws_access_key_id": "t",
           "aws_secret_access_key": "t"}
    # Replayed readings carry their record's (old) time.
    when = dt.datetime(2013, 11, 1, 12, tzinfo=dt.UTC)
    cloudwatch = boto3.client("cloudwatch", **aws)
    # The same dimensions in another order are the same metric (AWS's rule); moto lists each order apart.
    thing, version = {"Name": "Thing", "Value": "RainEdgeCore"}, {"Name": "ModelVersion", "Value": "1"}
    for value, dimensions in ((1.0, [thing, version]), (2.0, [version, thing]), (4.0, [thing, version])):
        cloudwatch.put_metric_data(Namespace=f"RainDemo{tag}", MetricData=[
            {"MetricName": "Predictions", "Value": value, "Unit": "Count", "Timestamp": when,
             "Dimensions": dimensions}])
    s3 = boto3.client("s3", **aws)
    for number in range(2):
        s3.put_object(Bucket=f"rain-feedback-{tag}", Key=f"RainEdgeCore/{number}.json", Body=b"{}")

    found = read_back(moto_server, group)

    assert "error" not in found, found
    assert found["metrics"] == [{"name": "Predictions", "dimensions": {"ModelVersion": "1", "Thing": "RainEdgeCore"},
                                 "sum": 7.0, "count": 3}]
    assert found["feedback"] == {f"rain-feedback-{tag}": {
        "count": 2, "keys": ["RainEdgeCore/0.json", "RainEdgeCore/1.json"]}}


def test_an_unreachable_local_aws_is_an_error_entry_not_a_crash(tmp_path):
    found = read_back("http://127.0.0.1:9", demo_group("x"))
    assert found["error"] and found["metrics"] == []
