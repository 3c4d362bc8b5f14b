"""Device shadows through the core, and the server certificate rotated under connected devices.

An `AWSIoTMQTTShadowClient` device (AWSIoTPythonSDK, unmodified) updates its shadow through the core's
GGShadowService by subscription and gets accepted and delta; with `SyncShadow` its shadow reaches the
stand-in cloud and the cloud's desired state comes back as a delta. Then the core renews its MQTT server
certificate, which drops every device: they reconnect and go on.
"""

from __future__ import annotations

import json
import threading

import pytest
from cryptography import x509
from support.devices import (
    ECHO,
    Inbox,
    device,
    discover,
    mqtt_client,
    shadow_client,
    shadow_routes,
    start_device_core,
    thing_arn,
    write_group_ca,
)
from support.waiting import wait_until

from simcore.cloud.standin import cloud_shadow_update
from simcore.errors import ShadowError

WEATHER = "weather-1"


@pytest.fixture
def cloud_thing() -> str:
    return "RainCore"


@pytest.fixture
def core(cloud, tmp_path):
    certs = {WEATHER: cloud.ca.issue_thing(WEATHER, file_stem=WEATHER)}
    routes = [*shadow_routes(WEATHER),
              (thing_arn(WEATHER), "weather/+/reading", ECHO),
              (ECHO, f"devices/{WEATHER}/in", thing_arn(WEATHER))]
    running = start_device_core(tmp_path / "core", cloud, [device(WEATHER, certs[WEATHER], sync_shadow=True)],
                                routes, certs)
    yield running
    running.running.stop()


class Answers:
    """What a shadow client's callbacks received."""

    def __init__(self) -> None:
        self.updates: list[tuple[str, dict]] = []
        self.deltas: list[dict] = []
        self._lock = threading.Lock()

    def on_update(self, payload, status, _token) -> None:
        with self._lock:
            self.updates.append((status, json.loads(payload) if payload else {}))

    def on_delta(self, payload, _status, _token) -> None:
        with self._lock:
            self.deltas.append(json.loads(payload))


def _cloud_reported(cloud) -> dict:
    try:
        return cloud.engine.get(WEATHER)["state"].get("reported", {})
    except ShadowError:
        return {}


def test_a_device_shadow_updates_through_the_core_and_syncs_with_the_cloud(core, cloud, tmp_path):
    ca, host, port = write_group_ca(discover(core, WEATHER), tmp_path)
    client = shadow_client(WEATHER, core.certs[WEATHER], ca, host, port)
    assert client.connect()
    answers = Answers()
    try:
        shadow = client.createShadowHandlerWithName(WEATHER, True)
        shadow.shadowRegisterDeltaCallback(answers.on_delta)
        shadow.shadowUpdate(json.dumps({"state": {"reported": {"temperature": 12.5}}}), answers.on_update, 5)
        wait_until(lambda: answers.updates, message="the update's answer at the device")
        status, document = answers.updates[0]
        assert status == "accepted", document
        assert document["state"]["reported"] == {"temperature": 12.5}
        assert core.running.shadow_engine.get(WEATHER)["state"]["reported"] == {"temperature": 12.5}

        # SyncShadow: the reported state reaches the cloud, the cloud's desired state comes back as a delta.
        wait_until(lambda: _cloud_reported(cloud) == {"temperature": 12.5},
                   message=lambda: f"the device's shadow in the cloud ({_cloud_reported(cloud)})")
        cloud_shadow_update(cloud.config_path, WEATHER, {"state": {"desired": {"interval_s": 30}}})
        wait_until(lambda: answers.deltas, message="the cloud's desired state as a delta at the device")
        assert answers.deltas[-1]["state"] == {"interval_s": 30}
    finally:
        client.disconnect()


def test_devices_reconnect_and_go_on_after_the_server_certificate_is_rotated(core, tmp_path):
    ca, host, port = write_group_ca(discover(core, WEATHER), tmp_path)
    client = mqtt_client(WEATHER, core.certs[WEATHER], ca, host, port)
    assert client.connect()
    inbox = Inbox()
    topic = f"devices/{WEATHER}/in"
    try:
        assert client.subscribe(topic, 0, inbox)
        old_serial = x509.load_pem_x509_certificate(core.server.cert_path.read_bytes()).serial_number
        core.server.rotate_server_certificate()
        assert x509.load_pem_x509_certificate(core.server.cert_path.read_bytes()).serial_number != old_serial
        assert core.server.port == port  # the same port: what discovery told the devices still holds
        wait_until(lambda: core.server.status()["devices"][WEATHER].get("connections", 0) >= 2
                   and WEATHER in core.server.status()["connected"],
                   timeout_s=30, message=lambda: f"the device reconnected ({core.server.status()})")

        # The SDK resubscribes on reconnect; the device goes on: its reading reaches the Lambda and back.
        def round_trip() -> list[dict]:
            client.publish(f"weather/{WEATHER}/reading", json.dumps({"publish_to": topic, "n": 1}), 0)
            return inbox.on(topic)

        wait_until(round_trip, timeout_s=30, interval_s=0.5, message="a round trip after the rotation")
    finally:
        client.disconnect()
