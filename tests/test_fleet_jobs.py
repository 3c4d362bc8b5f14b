"""Deploying a group to a fleet through IoT Jobs, end to end against the stand-in: real mosquitto, the real
AWSIoTPythonSDK on every core and on the jobs service, boto3 against the stand-in's control plane and the
session's moto server (S3, things, thing groups), the cores' real jobs agents deploying and swapping Lambdas."""

from __future__ import annotations

import pytest
from support.fleet import FleetWorld, Pinger
from support.waiting import wait_until

from simcore.cloud.fleet_publish import cancel, publish


@pytest.fixture
def world(tmp_path, moto_server):
    running = FleetWorld(tmp_path, moto_server)
    yield running
    running.stop()


def test_a_job_to_a_thing_group_deploys_the_new_version_on_every_core(world):
    """Three cores in a thing group: each reaches SUCCEEDED, runs the new version, and answers every ping sent
    during the rollout (held across the swap, answered by one version or the other, none lost)."""
    cores = [world.start_core(f"ok{index}") for index in range(3)]
    group = world.thing_group([core.thing for core in cores])
    pinger = Pinger(world)
    published = publish(world.access, world.bundle("2"), [group])
    sent = 0
    while not all(core.version() == "2" for core in cores):
        for core in cores:
            pinger.ping(core.thing, sent)
        sent += 1
        wait_until(lambda count=sent: all(len(pinger.answered(core.thing)) == count for core in cores), 30,
                   message=f"pong {sent - 1} from every core", interval_s=0.05)
        assert sent < 2000, "the rollout never ended"
    status = world.wait_job(published["jobId"], {core.thing: "SUCCEEDED" for core in cores})
    assert status["status"] == "COMPLETED"
    assert sorted(thing["thing"] for thing in status["things"]) == sorted(core.thing for core in cores)
    for thing in status["things"]:
        assert thing["details"]["groupVersionId"] == published["groupVersionId"]
    for core in cores:
        pinger.ping(core.thing, sent)
    wait_until(lambda: all(pinger.answered(core.thing).get(sent) == "2" for core in cores), 30,
               message="the new version to answer")
    for core in cores:
        versions = [pinger.answered(core.thing)[ping] for ping in range(sent + 1)]
        assert versions == sorted(versions), f"{core.thing}: an old answer after a new one: {versions}"
        assert versions[0] == "1" and versions[-1] == "2"
    pinger.stop()


def test_work_in_hand_when_the_swap_comes_is_done_by_the_new_version(world):
    """Pings still queued or being handled (a slow one) when the old version's Lambdas stop are handed to the
    new version: every one is answered."""
    core = world.start_core("handover")
    pinger = Pinger(world)
    pinger.ping(core.thing, 0, slow_on="1", sleep_s=60.0)  # version 1 would take a minute: stopped holding it
    for ping_id in range(1, 6):
        pinger.ping(core.thing, ping_id)
    wait_until(lambda: core.running.core.status()["functions"] and any(
        worker["state"] == "busy" for function in core.running.core.status()["functions"].values()
        for worker in function["workers"]), 20, message="the slow ping to be in hand")
    published = publish(world.access, world.bundle("2"), [core.thing])
    world.wait_job(published["jobId"], {core.thing: "SUCCEEDED"})
    answered = wait_until(lambda: (lambda seen: seen if len(seen) == 6 else None)(pinger.answered(core.thing)), 30,
                          message=lambda: f"all 6 pings answered: {pinger.answered(core.thing)}")
    assert answered[0] == "2"  # the slow one was not finished by version 1: version 2 did it
    pinger.stop()


def _broken_template(tmp_path) -> str:
    """The fleet template, but its ThingName refuses every name but the default: fine where the bundle is made,
    a template error on each core (which deploys it as its own thing)."""
    from support.fleet import TEMPLATE

    copy = TEMPLATE.parent / f".refusing-{tmp_path.name}.yaml"
    copy.write_text(TEMPLATE.read_text().replace(
        "    Default: fleet-core\n", "    Default: fleet-core\n    AllowedPattern: fleet-core\n", 1))
    return str(copy)


def test_a_broken_bundle_fails_with_its_reason_and_the_old_version_keeps_running(world, tmp_path):
    """A Lambda that fails to start, a bundle whose bytes are not the job's, a template the core refuses: each job
    FAILED with its step and reason in statusDetails, and each core still on version 1, answering."""
    from simcore.deploy.bundle import build_bundle

    lambda_core, template_core = world.start_core("lambda"), world.start_core("tmpl")
    checksum_core = world.start_core("sum", gated=True)
    pinger = Pinger(world)
    broken_lambda = publish(world.access, world.bundle("2", CodeFolder="broken"), [lambda_core.thing])
    checksum_core.gate.close()  # so the bundle can be replaced before this core fetches it
    tampered = publish(world.access, world.bundle("3"), [checksum_core.thing])
    refusing = tmp_path / "refusing.zip"
    template = _broken_template(tmp_path)
    try:
        build_bundle(template, {"GroupVersion": "4"}, refusing)
    finally:
        __import__("os").unlink(template)
    refused = publish(world.access, refusing, [template_core.thing])
    # Replace the stored bundle behind the job: the core downloads other bytes than the document's sha256.
    s3 = world.access.client("s3")
    s3.put_object(Bucket=world.access.bucket, Key=f"bundles/{tampered['groupVersionId']}.zip",
                  Body=b"PK\x05\x06" + bytes(18))
    checksum_core.gate.open()
    for published, core in ((broken_lambda, lambda_core), (tampered, checksum_core), (refused, template_core)):
        world.wait_job(published["jobId"], {core.thing: "FAILED"})
    jobs = ((broken_lambda, lambda_core), (tampered, checksum_core), (refused, template_core))
    details = {core.thing: world.status(published["jobId"])["things"][0]["details"] for published, core in jobs}
    assert details[lambda_core.thing]["step"] == "start"
    assert "function" in details[lambda_core.thing]["reason"] and "rolled back to deployment 1" in \
        details[lambda_core.thing]["reason"]
    assert details[checksum_core.thing]["step"] == "verify"
    assert "checksum mismatch" in details[checksum_core.thing]["reason"]
    assert details[template_core.thing]["step"] == "deploy"
    assert "ThingName" in details[template_core.thing]["reason"]
    for core in (lambda_core, checksum_core, template_core):
        assert core.version() == "1" and core.running.deployment.number == 1
        assert (core.root / "current").resolve().name == "1"
        pinger.ping(core.thing, 1)
    wait_until(lambda: all(pinger.answered(core.thing).get(1) == "1"
                           for core in (lambda_core, checksum_core, template_core)), 30,
               message="version 1 to answer on every core")
    pinger.stop()


def test_a_core_offline_during_the_job_catches_up_after_reconnecting(world):
    """The job is created while the core cannot reach the cloud (so its notify-next is lost): on reconnect the
    agent asks $next itself and deploys; a second job of the same group version then succeeds without a redeploy."""
    core = world.start_core("offline", gated=True)
    core.gate.close()
    wait_until(lambda: not core.running.link.connected, 20, message="the core to be offline")
    published = publish(world.access, world.bundle("2"), [core.thing])
    assert world.status(published["jobId"])["things"][0]["status"] == "QUEUED"
    core.gate.open()
    world.wait_job(published["jobId"], {core.thing: "SUCCEEDED"})
    assert core.version() == "2" and core.running.deployment.number == 2
    again = publish(world.access, world.bundle("2"), [core.thing])
    status = world.wait_job(again["jobId"], {core.thing: "SUCCEEDED"})
    assert status["things"][0]["details"]["detail"] == "already running"
    assert core.running.deployment.number == 2  # no new deployment was built


def test_cancel_mid_rollout_stops_the_queued_cores_and_the_one_deploying(world):
    """A rollout of 1 core a minute over two cores: the first takes the job and is in its swap's settle time when
    the job is force-cancelled; it stops cleanly back on version 1, and the second core never gets the job."""
    first = world.start_core("c1", settle_s=60.0)
    second = world.start_core("c2")
    published = publish(world.access, world.bundle("2"), [first.thing, second.thing], rollout="1/min")
    wait_until(lambda: first.running.deployment.number == 1 and (first.root / "current").resolve().name == "2",
               60, message="the first core to be swapping to deployment 2")
    assert [thing["thing"] for thing in world.status(published["jobId"])["things"]] == [first.thing]
    cancel(world.access, published["jobId"], force=True)
    status = world.wait_job(published["jobId"], {first.thing: "CANCELED"})
    assert status["status"] == "CANCELED"
    wait_until(lambda: first.running.jobs_agent.running is None, 30, message="the first core to stop the job")
    assert first.version() == "1" and (first.root / "current").resolve().name == "1"
    assert [thing["thing"] for thing in world.status(published["jobId"])["things"]] == [first.thing]
    assert second.version() == "1"
    pinger = Pinger(world)
    pinger.ping(first.thing, 7)
    wait_until(lambda: pinger.answered(first.thing).get(7) == "1", 30, message="version 1 to answer")
    pinger.stop()
