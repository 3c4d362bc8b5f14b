"""What the demo's connectors put in the stand-in's local AWS, read back as a user would look for it there:
the CloudWatch metrics of the group's namespace (ListMetrics, then GetMetricData: sum and sample count of each)
and the ML Feedback objects in the feedback bucket (ListObjectsV2)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from simcore.group import Group

log = logging.getLogger(__name__)

# Credentials the stand-in's moto accepts (it accepts any): the demo reads as "the account owner".
_READER = {"region_name": "us-east-1", "aws_access_key_id": "demo", "aws_secret_access_key": "demo"}
# Replayed readings carry their record's time, years back: one statistic per year over this many years.
_YEARS_BACK = 30
_YEAR_S = 365 * 86400
MAX_KEYS_SHOWN = 10


def feedback_buckets(group: Group) -> list[str]:
    """The buckets the group's ML Feedback connector uploads to (`FeedbackConfigurationMap`'s s3-bucket-name)."""
    buckets: list[str] = []
    for connector in group.connectors:
        if connector.name != "MLFeedback":
            continue
        raw = connector.parameters.get("FeedbackConfigurationMap") or "{}"
        try:
            configurations = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            continue
        for configuration in (configurations or {}).values():
            bucket = isinstance(configuration, dict) and configuration.get("s3-bucket-name")
            if bucket and bucket not in buckets:
                buckets.append(bucket)
    return buckets


def metrics_namespace(group: Group) -> str | None:
    """The CloudWatch namespace the group's functions put metrics to (a function's CLOUDWATCH_NAMESPACE)."""
    for function in group.functions:
        namespace = function.environment.get("CLOUDWATCH_NAMESPACE")
        if namespace:
            return str(namespace)
    return None


def _client(service: str, endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    # The stand-in is on this machine: an answer that does not come soon will not come.
    config = Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 2})
    return boto3.client(service, endpoint_url=endpoint, config=config, **_READER)


def prepare(endpoint: str, group: Group) -> None:
    """Create the feedback buckets in the local AWS (the group stack would have created them in AWS)."""
    s3 = _client("s3", endpoint)
    for bucket in feedback_buckets(group):
        s3.create_bucket(Bucket=bucket)


def read_back(endpoint: str, group: Group) -> dict[str, Any]:
    """`{"endpoint", "namespace", "metrics": [{name, dimensions, sum, count}], "feedback": {bucket: {count,
    keys}}}`; an `error` entry instead of a part that could not be read."""
    import botocore.exceptions

    result: dict[str, Any] = {"endpoint": endpoint, "namespace": metrics_namespace(group), "metrics": [],
                              "feedback": {}}
    try:
        if result["namespace"]:
            result["metrics"] = _metrics(_client("cloudwatch", endpoint),
                                         result["namespace"])
        s3 = _client("s3", endpoint)
        for bucket in feedback_buckets(group):
            listed = s3.list_objects_v2(Bucket=bucket)
            keys = [item["Key"] for item in listed.get("Contents", [])]
            result["feedback"][bucket] = {"count": listed.get("KeyCount", len(keys)), "keys": keys[:MAX_KEYS_SHOWN]}
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        log.warning("reading the local AWS back failed: %s", error)
        result["error"] = str(error)
    return result


def _metrics(cloudwatch: Any, namespace: str) -> list[dict[str, Any]]:
    now = dt.datetime.now(dt.UTC)
    found = []
    seen: set[tuple] = set()
    for metric in cloudwatch.list_metrics(Namespace=namespace).get("Metrics", []):
        # moto lists a metric once per order its dimensions came in (AWS once per name and dimension set).
        identity = (metric["MetricName"], tuple(sorted((d["Name"], d["Value"]) for d in metric.get("Dimensions", []))))
        if identity in seen:
            continue
        seen.add(identity)
        if len(seen) > 50:
            break
        queries = [{"Id": stat.lower(), "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": namespace, "MetricName": metric["MetricName"],
                       "Dimensions": metric.get("Dimensions", [])},
            "Period": _YEAR_S, "Stat": stat}} for stat in ("Sum", "SampleCount")]
        answer = cloudwatch.get_metric_data(MetricDataQueries=queries,
                                            StartTime=now - dt.timedelta(seconds=_YEAR_S * _YEARS_BACK),
                                            EndTime=now + dt.timedelta(days=1))
        values = {item["Id"]: sum(item.get("Values", [])) for item in answer.get("MetricDataResults", [])}
        found.append({"name": metric["MetricName"],
                      "dimensions": {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])},
                      "sum": values.get("sum", 0.0), "count": int(values.get("samplecount", 0))})
    return sorted(found, key=lambda item: (item["name"], sorted(item["dimensions"].items())))
