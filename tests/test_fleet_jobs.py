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
        wait_until(lambda: all(len(pinger.answered(core.thing)) == sent for core in cores), 30,
                   message=lambda: f"pong {sent - 1} from every core", interval_s=0.05)
        assert sent < 2000, "the rollout never ended"
    status = world.wait_job(published["jobId"], {core.thing: "SUCCEEDED" for core in cores})
    assert status["status"] == "COMPLETED"
    for core, thing in zip(cores, status["things"]):
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
