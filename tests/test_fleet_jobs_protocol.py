"""The stand-in's IoT Jobs, piece by piece: the MQTT data plane as a device uses it (the real AWSIoTPythonSDK
over mosquitto), the control plane through boto3's own `iot` client, and the rules of the model (versions,
rollout rate, abort criteria), with AWS's codes."""

from __future__ import annotations

import json
import threading
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError
from support.cloud import FAST_BACKOFF
from support.waiting import wait_until

from simcore.cloud.jobs_api import JobsControlPlane
from simcore.cloud.jobs_model import JobsError, JobsModel
from simcore.cloud.jobs_service import JobsDataPlane, resolve_document
from simcore.cloud.link import CloudLink

DOCUMENT = json.dumps({"operation": "test", "bundle": {"url": "${aws:iot:s3-presigned-url:"
                                                              "https://s3.us-east-1.amazonaws.com/b/k.zip}"}})


class Device:
    """A thing talking to the jobs topics with its own certificate, recording every answer and notification."""

    def __init__(self, cloud, thing: str):
        self.thing = thing
        self.messages: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        self.link = CloudLink(cloud.client_settings(thing, **FAST_BACKOFF))
        self.link.subscribe(f"$aws/things/{thing}/jobs/#", self._record)
        self.link.start()
        wait_until(lambda: self.link.connected, 20, message=f"{thing} to connect")

    def _record(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self.messages.append((topic, json.loads(payload)))

    def request(self, operation: str, body: dict | bytes | None = None) -> tuple[str, dict]:
        """Send a request, wait for its answer: (accepted|rejected, body)."""
        token = uuid.uuid4().hex
        payload = body if isinstance(body, bytes) else json.dumps({**(body or {}), "clientToken": token}).encode()
        topic = f"$aws/things/{self.thing}/jobs/{operation}"
        with self._lock:
            before = len(self.messages)  # a raw request has no token: its answer is a later one
        assert self.link.send_now(topic, payload, 10)

        def answer():
            with self._lock:
                for seen, document in self.messages[before:]:
                    if seen in (f"{topic}/accepted", f"{topic}/rejected") and (
                            isinstance(body, bytes) or document.get("clientToken") == token):
                        return seen.rsplit("/", 1)[1], document
            return None

        return wait_until(answer, 20, message=f"an answer on {topic}")

    def notifications(self, kind: str) -> list[dict]:
        """The `notify` or `notify-next` bodies received so far."""
        with self._lock:
            return [body for topic, body in self.messages if topic.endswith(f"/jobs/{kind}")]


@pytest.fixture
def jobs(cloud):
    model = JobsModel()
    plane = JobsDataPlane(model, cloud.client_settings("jobs-service", **FAST_BACKOFF),
                          presign=lambda bucket, key: f"http://127.0.0.1:1/{bucket}/{key}?signed")
    plane.start()
    yield model
    plane.stop()


def test_device_takes_its_job_with_versions_and_the_notifications_say_what_is_next(cloud, jobs):
    device = Device(cloud, "thing-a")
    outcome, empty = device.request("$next/get")
    assert outcome == "accepted" and "execution" not in empty
    jobs.create_job("job-1", ["arn:aws:iot:us-east-1:123456789012:thing/thing-a"], DOCUMENT, ["thing-a"])
    wait_until(lambda: any(n.get("execution", {}).get("jobId") == "job-1" for n in device.notifications("notify-next")),
               20, message="notify-next naming job-1")
    outcome, got = device.request("$next/get")
    execution = got["execution"]
    assert outcome == "accepted" and execution["status"] == "QUEUED" and execution["versionNumber"] == 1
    # The presigned-URL placeholder is replaced when the device fetches the document.
    assert execution["jobDocument"]["bundle"]["url"] == "http://127.0.0.1:1/b/k.zip?signed"
    outcome, stale = device.request("job-1/update", {"status": "IN_PROGRESS", "expectedVersion": 7})
    assert outcome == "rejected" and stale["code"] == "VersionMismatch"
    assert stale["executionState"]["versionNumber"] == 1
    outcome, taken = device.request("job-1/update", {"status": "IN_PROGRESS", "expectedVersion": 1,
                                                     "includeJobExecutionState": True})
    assert outcome == "accepted" and taken["executionState"] == {"status": "IN_PROGRESS", "statusDetails": {},
                                                                 "versionNumber": 2}
    assert device.request("get")[1]["inProgressJobs"][0]["jobId"] == "job-1"
    outcome, bad = device.request("job-1/update", {"status": "SUCCEEDED", "statusDetails": {"bad key!": "x"}})
    assert outcome == "rejected" and bad["code"] == "InvalidRequest"
    outcome, long_value = device.request("job-1/update", {"status": "SUCCEEDED", "statusDetails": {"k": "x" * 1025}})
    assert outcome == "rejected" and long_value["code"] == "InvalidRequest"
    assert device.request("job-1/update", {"status": "SUCCEEDED", "statusDetails": {"k": "v"}})[0] == "accepted"
    outcome, late = device.request("job-1/update", {"status": "FAILED"})
    assert outcome == "rejected" and late["code"] == "TerminalStateReached"
    assert device.request("job-1/get")[1]["execution"]["versionNumber"] == 3
    assert device.request("job-2/get")[1]["code"] == "ResourceNotFound"
    assert device.request("$next/get", b"{not json")[1]["code"] == "InvalidJson"
    wait_until(lambda: "execution" not in (device.notifications("notify-next") or [{"execution": 1}])[-1],
               20, message="a notify-next naming nothing once job-1 is done")
    device.link.stop()


def test_start_next_takes_the_oldest_queued_job_and_a_forced_cancel_clears_it(cloud, jobs):
    device = Device(cloud, "thing-b")
    for job_id in ("first", "second"):
        jobs.create_job(job_id, [f"arn:aws:iot:::thing/{device.thing}"], DOCUMENT, [device.thing])
    outcome, started = device.request("start-next", {"statusDetails": {"step": "begin"}})
    assert outcome == "accepted" and started["execution"]["jobId"] == "first"
    assert started["execution"]["status"] == "IN_PROGRESS"
    assert device.request("start-next")[1]["execution"]["jobId"] == "first"  # IN_PROGRESS comes first
    jobs.cancel_job("first", force=True)
    assert device.request("$next/get")[1]["execution"]["jobId"] == "second"
    assert device.request("first/update", {"status": "SUCCEEDED"})[1]["code"] == "TerminalStateReached"
    device.link.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_rollout_releases_at_most_its_rate_a_minute():
    clock = Clock()
    model = JobsModel(clock=clock)
    things = [f"t{index}" for index in range(5)]
    model.create_job("slow", [], DOCUMENT, things, max_per_minute=2)
    assert [e["thingArn"].rsplit("/", 1)[1] for e in model.list_executions("slow")] == ["t0", "t1"]
    clock.now += 59.0
    model.release_due()
    assert len(model.list_executions("slow")) == 2
    assert model.describe_job("slow")["jobProcessDetails"]["numberOfQueuedThings"] == 5
    clock.now += 1.0
    model.release_due()
    assert len(model.list_executions("slow")) == 4
    clock.now += 60.0
    model.release_due()
    assert len(model.list_executions("slow")) == 5


def test_a_failure_rate_over_the_abort_threshold_cancels_the_job():
    model = JobsModel()
    model.create_job("risky", [], DOCUMENT, ["a", "b", "c", "d"], abort_criteria=[
        {"failureType": "FAILED", "action": "CANCEL", "thresholdPercentage": 50, "minNumberOfExecutedThings": 2}])
    model.update("a", "risky", "FAILED")
    assert model.describe_job("risky")["status"] == "IN_PROGRESS"  # 1 executed: under the minimum
    model.update("b", "risky", "SUCCEEDED")
    job = model.describe_job("risky")
    assert job["status"] == "CANCELED" and job["reasonCode"] == "FAILED_RATE"
    assert model.describe_execution("risky", "c")["status"] == "CANCELED"


def test_the_model_refuses_what_iot_jobs_refuses():
    model = JobsModel()
    with pytest.raises(JobsError) as too_big:
        model.create_job("big", [], json.dumps({"x": "y" * 33_000}), ["a"])
    assert too_big.value.aws_code == "InvalidRequest" and "32768" in too_big.value.message
    with pytest.raises(JobsError) as bad_id:
        model.create_job("no spaces", [], DOCUMENT, ["a"])
    assert bad_id.value.aws_code == "InvalidRequest"
    model.create_job("once", [], DOCUMENT, ["a"])
    with pytest.raises(JobsError) as again:
        model.create_job("once", [], DOCUMENT, ["a"])
    assert again.value.aws_code == "ResourceAlreadyExists"
    with pytest.raises(JobsError) as queued:
        model.update("a", "once", "QUEUED")
    assert queued.value.aws_code == "InvalidRequest"


def test_boto3_iot_client_drives_the_control_plane_and_thing_groups_expand(moto_server):
    """boto3's own `iot` client against the control plane: create (a thing group expanded through the relayed
    moto IoT), describe, list executions, describe one, cancel; AWS's exception names; a foreign key refused."""
    model = JobsModel()
    iot_moto = boto3.client("iot", region_name="us-east-1", endpoint_url=moto_server,
                            aws_access_key_id="AKIATEST", aws_secret_access_key="x")
    group = f"g-{uuid.uuid4().hex[:6]}"
    iot_moto.create_thing_group(thingGroupName=group)
    for thing in ("m1", "m2"):
        iot_moto.create_thing(thingName=thing)
        iot_moto.add_thing_to_thing_group(thingGroupName=group, thingName=thing)

    def expand(name):
        return [thing for page in iot_moto.get_paginator("list_things_in_thing_group").paginate(thingGroupName=name)
                for thing in page["things"]]

    plane = JobsControlPlane(model, "AKIASTANDIN", relay_endpoint=moto_server, expand_group=expand)
    plane.start()
    try:
        iot = boto3.client("iot", region_name="us-east-1", endpoint_url=plane.endpoint,
                           aws_access_key_id="AKIASTANDIN", aws_secret_access_key="x")
        group_arn = iot.describe_thing_group(thingGroupName=group)["thingGroupArn"]  # relayed to moto
        iot.create_job(jobId="boto", targets=[group_arn, "arn:aws:iot:us-east-1:123456789012:thing/m1"],
                       document=DOCUMENT, jobExecutionsRolloutConfig={"maximumPerMinute": 10})
        assert iot.describe_job(jobId="boto")["job"]["jobProcessDetails"]["numberOfQueuedThings"] == 2
        things = [e["thingArn"] for e in iot.list_job_executions_for_job(jobId="boto")["executionSummaries"]]
        assert sorted(arn.rsplit("/", 1)[1] for arn in things) == ["m1", "m2"]
        assert iot.describe_job_execution(jobId="boto", thingName="m2")["execution"]["status"] == "QUEUED"
        assert json.loads(iot.get_job_document(jobId="boto")["document"]) == json.loads(DOCUMENT)
        with pytest.raises(ClientError) as exists:
            iot.create_job(jobId="boto", targets=[group_arn], document=DOCUMENT)
        assert exists.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"
        with pytest.raises(ClientError) as missing:
            iot.describe_job(jobId="nope")
        assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
        iot.cancel_job(jobId="boto", comment="stop")
        assert iot.describe_job(jobId="boto")["job"]["status"] == "CANCELED"
        stranger = boto3.client("iot", region_name="us-east-1", endpoint_url=plane.endpoint,
                                aws_access_key_id="AKIAOTHER", aws_secret_access_key="x")
        with pytest.raises(ClientError) as refused:
            stranger.describe_job(jobId="boto")
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    finally:
        plane.stop()


def test_presigned_url_placeholders_are_replaced_inside_the_json_document():
    document = resolve_document(DOCUMENT, lambda bucket, key: f"https://example/{bucket}/{key}?a=1&b=\"2\"")
    assert json.loads(document)["bundle"]["url"] == 'https://example/b/k.zip?a=1&b="2"'


def test_the_agent_keeps_its_status_details_within_the_jobs_limits():
    from simcore.cloud.jobs_agent import status_details
    from simcore.cloud.jobs_model import check_status_details

    details = status_details({"reason": "x" * 5000, "bad key!": "v", "empty": "", "count": 3, "k" * 200: "y"})
    assert check_status_details(details) == details  # what the Jobs API takes
    assert len(details["reason"]) == 1024 and details["bad_key_"] == "v" and details["empty"] == "-"
    assert details["count"] == "3" and "k" * 128 in details
