"""The local stand-in cloud: config.json for the core, the CLI's functions, and AWSIoTPythonSDK's shadow client."""

from __future__ import annotations

import io
import json
import threading

import pytest
from AWSIoTPythonSDK.MQTTLib import AWSIoTMQTTShadowClient
from support.cloud import core_settings
from support.waiting import wait_until

from simcore.cloud.ca import LocalCA
from simcore.cloud.link import CloudLink
from simcore.cloud.standin import cloud_shadow_get, cloud_shadow_update, start_cloud, watch
from simcore.core_config import thing_name_from_arn
from simcore.errors import ShadowError
from simcore.shadow.service import open_shadow_service

THING = "RainCore"


def test_start_cloud_writes_a_v1_core_config_pointing_at_the_stand_in(cloud):
    config = json.loads(cloud.config_path.read_text())
    core_thing = config["coreThing"]
    assert set(core_thing) >= {"caPath", "certPath", "keyPath", "thingArn", "iotHost", "ggHost", "iotMqttPort",
                               "keepAlive"}
    assert thing_name_from_arn(core_thing["thingArn"]) == THING
    assert (core_thing["iotHost"], core_thing["iotMqttPort"]) == ("127.0.0.1", cloud.port)
    assert config["runtime"] == {"cgroup": {"useSystemd": "no"}} and config["managedRespawn"] is False
    assert config["crypto"]["caPath"] == f"file://{cloud.certs_dir / 'root.ca.pem'}"
    for name in ("caPath", "certPath", "keyPath"):
        assert (cloud.certs_dir / core_thing[name]).is_file()
    assert json.loads((cloud.state_dir / "cloud.json").read_text())["port"] == cloud.port


def test_a_restarted_stand_in_keeps_its_ca_and_the_core_certificate(tmp_path):
    first = start_cloud(tmp_path, shadow_service=open_shadow_service(), thing_name=THING)
    ca_pem = first.ca.ca_path.read_bytes()
    cert_path = json.loads(first.config_path.read_text())["coreThing"]["certPath"]
    first.stop()
    second = start_cloud(tmp_path, shadow_service=open_shadow_service(), thing_name=THING)
    try:
        assert second.ca.ca_path.read_bytes() == ca_pem
        assert json.loads(second.config_path.read_text())["coreThing"]["certPath"] == cert_path
        link = CloudLink(core_settings(second))
        link.start()
        assert link.wait_connected(10), link.stats().last_error
        link.stop()
    finally:
        second.stop()


def test_awsiotpythonsdk_shadow_client_works_unchanged_against_the_stand_in(cloud):
    device = cloud.ca.issue_thing("sdk-device", file_stem="sdk-device")
    client = AWSIoTMQTTShadowClient("sdk-device")
    client.configureEndpoint("127.0.0.1", cloud.port)
    client.configureCredentials(str(cloud.ca.ca_path), str(device.key_path), str(device.cert_path))
    client.configureConnectDisconnectTimeout(10)
    client.configureMQTTOperationTimeout(5)
    assert client.connect()
    answers: list[tuple[str, dict]] = []
    deltas: list[dict] = []
    answered = threading.Condition()

    def on_answer(payload, status, token):
        with answered:
            answers.append((status, json.loads(payload)))
            answered.notify_all()

    def on_delta(payload, status, token):
        with answered:
            deltas.append(json.loads(payload))
            answered.notify_all()

    def next_answer() -> tuple[str, dict]:
        with answered:
            assert answered.wait_for(lambda: answers, 10)
            return answers.pop(0)

    try:
        shadow = client.createShadowHandlerWithName(THING, True)
        shadow.shadowRegisterDeltaCallback(on_delta)
        shadow.shadowUpdate(json.dumps({"state": {"reported": {"read_interval_s": 60}}}), on_answer, 5)
        status, accepted = next_answer()
        assert status == "accepted" and accepted["state"] == {"reported": {"read_interval_s": 60}}

        # Another client (the "app") sets desired: the device hears the delta. (The SDK ignores deltas
        # no newer than its own last accepted version, so a device never hears its own desired edits.)
        cloud_shadow_update(cloud.config_path, THING, {"state": {"desired": {"read_interval_s": 30}}})
        with answered:
            assert answered.wait_for(lambda: deltas, 10)
        assert deltas[0]["state"] == {"read_interval_s": 30} and deltas[0]["version"] == 2

        shadow.shadowGet(on_answer, 5)
        status, document = next_answer()
        assert status == "accepted" and document["version"] == 2
        assert document["state"]["delta"] == {"read_interval_s": 30}

        shadow.shadowUpdate(json.dumps({"state": 5}), on_answer, 5)
        status, rejected = next_answer()
        assert status == "rejected" and rejected["code"] == 400
        assert rejected["message"] == "State node must be an object"

        shadow.shadowDelete(on_answer, 5)
        assert next_answer()[0] == "accepted"
        shadow.shadowGet(on_answer, 5)
        status, missing = next_answer()
        assert status == "rejected" and missing["code"] == 404
        assert missing["message"] == f"No shadow exists with name: {THING}"
    finally:
        client.disconnect()


def test_cloud_shadow_update_and_get_for_the_cli(cloud):
    accepted = cloud_shadow_update(cloud.config_path, THING, '{"state": {"desired": {"read_interval_s": 15}}}')
    assert accepted["state"] == {"desired": {"read_interval_s": 15}} and accepted["version"] == 1
    document = cloud_shadow_get(cloud.config_path, THING)
    assert document["state"]["desired"] == {"read_interval_s": 15}
    assert "clientToken" not in document
    assert cloud.engine.version(THING) == 1


def test_cloud_shadow_errors_carry_aws_codes(cloud):
    with pytest.raises(ShadowError, match="No shadow exists with name: NoSuchThing") as missing:
        cloud_shadow_get(cloud.config_path, "NoSuchThing")
    assert missing.value.http_status == 404 and missing.value.message == "No shadow exists with name: NoSuchThing"
    with pytest.raises(ShadowError, match="Desired node must be an object") as invalid:
        cloud_shadow_update(cloud.config_path, THING, {"state": {"desired": "fast"}})
    assert invalid.value.http_status == 400 and invalid.value.message == "Desired node must be an object"


def test_watch_prints_matching_messages_as_they_arrive(cloud):
    out = io.StringIO()
    printed: list[int] = []
    watcher = threading.Thread(target=lambda: printed.append(
        watch(cloud.config_path, "rain/+/inference/output", out, max_messages=3, timeout_s=30)))
    watcher.start()
    publisher = CloudLink(core_settings(cloud))
    publisher.start()
    try:
        assert publisher.wait_connected(10)
        seq = 0
        while watcher.is_alive() and seq < 200:
            publisher.publish(f"rain/{THING}/inference/output", json.dumps({"seq": seq}).encode())
            publisher.publish(f"rain/{THING}/model/metrics", b"{}")  # not matched: never printed
            seq += 1
            watcher.join(0.2)
    finally:
        publisher.stop()
        watcher.join()
    assert printed == [3]
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    topics = {line.split(" ", 1)[0] for line in lines}
    assert topics == {f"rain/{THING}/inference/output"}
    seqs = [json.loads(line.split(" ", 1)[1])["seq"] for line in lines]
    assert seqs == sorted(seqs)


def test_the_amqtt_fallback_serves_mutual_tls_and_refuses_strangers(tmp_path):
    cloud = start_cloud(tmp_path / "cloud", shadow_service=open_shadow_service(), thing_name=THING,
                        prefer_broker="amqtt")
    try:
        assert cloud.broker.kind == "amqtt"
        document = cloud_shadow_update(cloud.config_path, THING, {"state": {"reported": {"t": 1}}})
        assert document["version"] == 1
        stranger = LocalCA(tmp_path / "other").issue_thing(THING)
        link = CloudLink(core_settings(cloud, cert_path=stranger.cert_path, key_path=stranger.key_path))
        link.start()
        try:
            wait_until(lambda: bool(link.stats().last_error), 20, message="the stranger's link to record an error")
            assert not link.connected
        finally:
            link.stop()
    finally:
        cloud.stop()
