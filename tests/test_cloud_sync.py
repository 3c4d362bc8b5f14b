"""Shadow sync between a local ShadowEngine and the stand-in cloud's, over the real broker."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import pytest
from support.cloud import TcpGate, core_settings
from support.waiting import wait_until

from simcore.cloud.link import CloudLink
from simcore.cloud.standin import cloud_shadow_update
from simcore.cloud.sync import MISSING, ShadowSync, merge_states, merge_three_way, state_patch, synced_things
from simcore.errors import ShadowError
from simcore.group import Core, Device, Group
from simcore.shadow.engine import ShadowEngine
from simcore.shadow.service import open_shadow_service

THING = "RainCore"
UPDATE = f"$aws/things/{THING}/shadow/update"


def _state(engine: ShadowEngine) -> dict:
    try:
        state = engine.get(THING)["state"]
    except ShadowError:
        return {}
    return {section: state[section] for section in ("desired", "reported") if section in state}


@pytest.fixture
def synced(cloud):
    cloud_engine = cloud.engine
    gate = TcpGate(cloud.port)
    local_service = open_shadow_service()
    local_engine = local_service.engine
    local_publications: list[str] = []

    def local_request(topic: str, payload: bytes) -> bytes:
        outcome = local_service.handle(topic, payload)
        local_publications.extend(reply_topic for reply_topic, _ in outcome.publications)
        return outcome.response

    link = CloudLink(core_settings(cloud, port=gate.port))
    sync = ShadowSync(link, local_engine, [THING], local_request=local_request, timeout_s=5.0)
    local_service.listeners.append(sync.on_local_change)
    sync.start()
    link.start()
    assert link.wait_connected(10)
    yield SimpleNamespace(cloud=cloud, cloud_engine=cloud_engine, local_engine=local_engine,
                          local_service=local_service, link=link, sync=sync, gate=gate,
                          local_publications=local_publications)
    sync.stop()
    link.stop()
    gate.shutdown()


def _local_update(synced, state: dict) -> None:
    outcome = synced.local_service.handle(UPDATE, json.dumps({"state": state}).encode())
    assert b'"code"' not in outcome.response, outcome.response


def test_local_reported_reaches_the_cloud_shadow(synced):
    _local_update(synced, {"reported": {"temperature": 21.5, "humidity": 80}})
    wait_until(lambda: _state(synced.cloud_engine).get("reported") == {"temperature": 21.5, "humidity": 80},
               message=lambda: f"the reading in the cloud shadow (holds {_state(synced.cloud_engine)})")
    assert synced.sync.wait_idle(10)
    assert synced.sync.store.get(THING).cloud_version == synced.cloud_engine.version(THING)


def test_cloud_desired_reaches_the_local_shadow_and_its_delta_is_published_locally(synced):
    _local_update(synced, {"reported": {"read_interval_s": 60}})
    wait_until(lambda: "reported" in _state(synced.cloud_engine), message="a reported state in the cloud shadow")
    cloud_shadow_update(synced.cloud.config_path, THING, {"state": {"desired": {"read_interval_s": 30}}})
    wait_until(lambda: _state(synced.local_engine).get("desired") == {"read_interval_s": 30},
               message=lambda: f"the cloud's desired state locally (holds {_state(synced.local_engine)})")
    # Through the local shadow service, so the sensor Lambda's delta subscription fires.
    assert f"$aws/things/{THING}/shadow/update/delta" in synced.local_publications


def test_conflicting_edits_converge_by_the_documented_rule(synced):
    _local_update(synced, {"reported": {"x": 0}, "desired": {"y": 0}})
    wait_until(lambda: _state(synced.cloud_engine) == {"reported": {"x": 0}, "desired": {"y": 0}},
               message=lambda: f"the first state in the cloud shadow (holds {_state(synced.cloud_engine)})")
    assert synced.sync.wait_idle(10)

    synced.gate.close()  # the core is offline; both sides are edited meanwhile
    wait_until(lambda: not synced.link.connected, 10, message="the link to notice the gate closed")
    _local_update(synced, {"reported": {"x": "local", "w": 1}, "desired": {"y": "local"}})
    cloud_shadow_update(synced.cloud.config_path, THING,
                        {"state": {"reported": {"x": "cloud"}, "desired": {"y": "cloud", "z": 2}}})
    synced.gate.open()

    expected = {"reported": {"x": "local", "w": 1}, "desired": {"y": "cloud", "z": 2}}
    wait_until(lambda: _state(synced.local_engine) == expected == _state(synced.cloud_engine), 30, message=lambda: (
        f"both shadows at {expected}; local {_state(synced.local_engine)}, cloud {_state(synced.cloud_engine)}"))


def test_shadows_converge_after_the_broker_was_stopped_and_restarted(synced):
    _local_update(synced, {"reported": {"seq": 0}})
    wait_until(lambda: _state(synced.cloud_engine).get("reported") == {"seq": 0},
               message="the first reading in the cloud shadow")
    synced.cloud.broker.stop()
    wait_until(lambda: not synced.link.connected, 10, message="the link to notice the broker stopped")
    for seq in range(1, 20):
        _local_update(synced, {"reported": {"seq": seq}})
    synced.cloud.broker.start()
    wait_until(lambda: _state(synced.cloud_engine).get("reported") == {"seq": 19}, 60,
               message=lambda: f"the last reading in the cloud shadow (holds {_state(synced.cloud_engine)})")


def test_the_sync_timeout_is_configurable_and_a_silent_cloud_is_retried(synced):
    synced.sync.timeout_s = 0.3
    synced.cloud.service.stop()  # the broker stays up but nobody answers shadow requests
    _local_update(synced, {"reported": {"t": 1}})
    wait_until(lambda: "within 0.3 s" in synced.sync.stats.last_error, 20,
               message=lambda: f"the sync to time out (last error {synced.sync.stats.last_error!r})")
    synced.sync.timeout_s = 5.0
    synced.cloud.service.start()
    wait_until(lambda: _state(synced.cloud_engine).get("reported") == {"t": 1}, 30,
               message="the retried update in the cloud shadow")


def test_the_clouds_desired_lands_while_the_local_shadow_changes_without_pause(synced):
    # A device in an update loop: the local shadow changes again as soon as it has changed, so its version
    # always differs from the one read before a cloud round trip (issue 12, item 5).
    _local_update(synced, {"reported": {"n": 0}})
    wait_until(lambda: "reported" in _state(synced.cloud_engine), message="a reported state in the cloud shadow")
    stop = threading.Event()
    writes = []

    def busy_device() -> None:
        while not stop.is_set():
            writes.append(1)
            synced.local_service.handle(UPDATE, json.dumps({"state": {"reported": {"n": len(writes)}}}).encode())

    device = threading.Thread(target=busy_device, daemon=True)
    device.start()
    try:
        cloud_shadow_update(synced.cloud.config_path, THING, {"state": {"desired": {"mode": "slow"}}})
        wait_until(lambda: _state(synced.local_engine).get("desired") == {"mode": "slow"}, 30, message=lambda: (
            f"the cloud's desired state locally during the loop; sync {synced.sync.stats}"))
        cloud_shadow_update(synced.cloud.config_path, THING, {"state": {"desired": None}})
        wait_until(lambda: "desired" not in _state(synced.local_engine), 30, message=lambda: (
            f"the cloud's desired: null locally during the loop; sync {synced.sync.stats}"))
        assert len(writes) > 100  # the device really kept writing all along
    finally:
        stop.set()
        device.join(10)
    # Once the device stops, both sides end equal: no local reading was overwritten by the sync.
    wait_until(lambda: _state(synced.cloud_engine) == _state(synced.local_engine), 30, message=lambda: (
        f"convergence; local {_state(synced.local_engine)}, cloud {_state(synced.cloud_engine)}"))
    assert _state(synced.local_engine)["reported"] == {"n": len(writes)}


def test_a_cloud_delete_removes_the_unchanged_local_shadow(synced):
    _local_update(synced, {"reported": {"a": 1}})
    wait_until(lambda: synced.cloud_engine.version(THING) is not None, message="the cloud shadow to exist")
    assert synced.sync.wait_idle(10)
    synced.cloud_engine.delete(THING)
    synced.sync.request_sync(THING)  # the engine was changed directly, without a delete/accepted message
    wait_until(lambda: synced.local_engine.version(THING) is None, 20, message="the local shadow to be deleted")


# -- the merge rule alone ------------------------------------------------------------------------------

def test_a_field_changed_on_one_side_only_takes_that_sides_value():
    base = {"reported": {"t": 1, "h": 2}, "desired": {"i": 5}}
    local = {"reported": {"t": 9, "h": 2}, "desired": {"i": 5}}
    cloud = {"reported": {"t": 1, "h": 2}, "desired": {"i": 7}}
    assert merge_states(local, cloud, base) == {"reported": {"t": 9, "h": 2}, "desired": {"i": 7}}


def test_both_sides_changed_reported_goes_to_local_desired_to_cloud():
    base = {"reported": {"t": 1}, "desired": {"i": 5}}
    local = {"reported": {"t": 2}, "desired": {"i": 6}}
    cloud = {"reported": {"t": 3}, "desired": {"i": 7}}
    assert merge_states(local, cloud, base) == {"reported": {"t": 2}, "desired": {"i": 7}}


def test_a_deletion_on_one_side_is_a_change_like_any_other():
    assert merge_three_way({}, {"gone": 1}, {"gone": 1}, "cloud") == {}
    assert merge_three_way(MISSING, MISSING, 1, "local") is MISSING


def test_state_patch_turns_current_into_target_with_nulls_for_removed_keys():
    current = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]}
    target = {"a": 1, "b": {"c": 2}, "e": [1, 2, 3], "f": True}
    assert state_patch(current, target) == {"b": {"d": None}, "e": [1, 2, 3], "f": True}
    assert state_patch({"n": 1}, {"n": True}) == {"n": True}  # JSON true is not 1


def test_sync_compares_values_as_the_delta_does_a_number_by_value_a_boolean_by_type():
    # The shadow's delta sees no difference between 1 and 1.0 (json_equal); neither does the sync.
    assert state_patch({"n": 1, "m": 2.5}, {"n": 1.0, "m": 2.5}) == {}
    assert merge_three_way(1.0, 2, 1, "local") == 2  # local's 1.0 is the base's 1: only the cloud changed
    assert merge_three_way(True, 2, 1, "cloud") == 2  # both changed (true is not 1): the owner wins
    assert merge_three_way(True, 2, 1, "local") is True


def test_synced_things_are_the_core_and_devices_with_sync_shadow():
    group = Group(
        name="g", region="us-east-1", account_id="1",
        cores=(Core("c", "RainCore", "arn:aws:iot:us-east-1:1:thing/RainCore", "cert", sync_shadow=True),),
        devices=(Device("d1", "Sensor1", "arn:d1", "c1", sync_shadow=False),
                 Device("d2", "Sensor2", "arn:d2", "c2", sync_shadow=True)),
    )
    assert synced_things(group) == ["RainCore", "Sensor2"]
