"""A new demo starts its replay from the first record, on shadows an interrupted demo left behind."""

from __future__ import annotations

import json

import pytest
from sensor_to_shadow.health import SensorHealth
from sensor_to_shadow.loop import SensorLoop
from sensor_to_shadow.settings import parse_source
from sensor_to_shadow.shadow_writer import ShadowWriter
from sensor_to_shadow.source_replay import ReplaySource

from simcore.cloud.standin import cloud_shadow_get, cloud_shadow_update
from simcore.demo.fresh import forget_replay_position
from simcore.shadow.service import open_shadow_service

SOURCE = "replay:JFK:2013-11-01:2013-11-02"


@pytest.fixture
def cloud_thing() -> str:
    return "FreshCore"


def test_a_new_demo_forgets_the_replay_position_on_both_sides_and_keeps_seq(cloud):
    thing = "FreshCore"
    interrupted = {"seq": 17, "ts": 1383321600, "replay": SOURCE, "sensor": {"status": "ok"}}
    local = open_shadow_service()
    local.handle(f"$aws/things/{thing}/shadow/update", json.dumps({"state": {"reported": interrupted}}).encode())
    cloud_shadow_update(cloud.config_path, thing, {"state": {"reported": interrupted}}, certs_dir=cloud.certs_dir)

    forget_replay_position(local, cloud.config_path, cloud.certs_dir, thing)

    local_reported = local.engine.get(thing)["state"]["reported"]
    cloud_reported = cloud_shadow_get(cloud.config_path, thing, certs_dir=cloud.certs_dir)["state"]["reported"]
    for reported in (local_reported, cloud_reported):
        assert "replay" not in reported
        assert reported["seq"] == 17 and reported["ts"] == 1383321600
    # What the sensor then does with that shadow, through the local shadow service: the first record, seq 18.
    prefix = f"$aws/things/{thing}/shadow"
    writer = ShadowWriter(thing, lambda _thing, payload: local.handle(f"{prefix}/update", payload).response,
                          lambda _thing: {"payload": local.handle(f"{prefix}/get", b"").response}, SensorHealth())
    source = ReplaySource(parse_source(SOURCE), speed=3600.0)
    loop = SensorLoop(source, writer, SensorHealth(), 60.0)
    loop.resume_from_shadow()
    loop.step()
    reported = local.engine.get(thing)["state"]["reported"]
    assert (reported["ts"], reported["seq"]) == (next(iter(source)).ts, 18)

def test_shadows_without_a_replay_position_are_left_alone(cloud):
    local = open_shadow_service()
    forget_replay_position(local, cloud.config_path, cloud.certs_dir, "FreshCore")  # no shadow on either side
    assert local.engine.version("FreshCore") is None
