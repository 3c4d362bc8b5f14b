"""The cloud link against the real mosquitto: config.json, mutual TLS, refusals, no loss across outages."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from support.cloud import Collector, TcpGate, core_settings
from support.waiting import wait_until

from simcore.cloud.ca import LocalCA
from simcore.cloud.link import CloudLink
from simcore.cloud.settings import load_settings
from simcore.cloud.spooler import FileSpooler, MemorySpooler
from simcore.cloud.sync import ShadowSync
from simcore.core_config import CoreConfig, CoreConfigError, read_core_config, write_core_config
from simcore.shadow.service import ShadowService, open_shadow_service

OUTPUT_TOPIC = "rain/RainCore/inference/output"
SHADOW_UPDATE = "$aws/things/RainCore/shadow/update"
REPO = Path(__file__).resolve().parent.parent


# -- configuration ---------------------------------------------------------------------------------

def test_settings_come_from_config_json_with_certs_relative_to_the_certs_dir(tmp_path):
    config_path = write_core_config(tmp_path / "config" / "config.json", CoreConfig.for_thing(
        "arn:aws:iot:eu-west-1:123456789012:thing/MyCore", "abc-ats.iot.eu-west-1.amazonaws.com",
        iot_mqtt_port=8883, ca_file="root.ca.pem", cert_file="1a2b3c.cert.pem", key_file="1a2b3c.private.key",
    ))
    settings = load_settings(config_path)
    assert settings.client_id == "MyCore"
    assert (settings.host, settings.port) == ("abc-ats.iot.eu-west-1.amazonaws.com", 8883)
    assert settings.cert_path == tmp_path / "certs" / "1a2b3c.cert.pem"
    assert settings.ca_path == tmp_path / "certs" / "root.ca.pem"
    assert not settings.uses_alpn
    in_greengrass = load_settings(config_path, Path("/greengrass/certs"))
    assert in_greengrass.key_path == Path("/greengrass/certs/1a2b3c.private.key")


def test_port_443_turns_alpn_on_as_the_sdk_does(tmp_path):
    config = CoreConfig.for_thing("arn:aws:iot:us-east-1:1:thing/C", "h", iot_mqtt_port=443)
    settings = load_settings(write_core_config(tmp_path / "config" / "config.json", config))
    assert settings.uses_alpn


@pytest.mark.parametrize(("field", "value", "message"), [
    ("iotHost", None, "coreThing.iotHost must be a non-empty string"),
    ("iotMqttPort", "eighty", "coreThing.iotMqttPort must be a port number"),
    ("thingArn", "not-an-arn", "not a thing ARN"),
])
def test_bad_config_names_the_field(tmp_path, field, value, message):
    config = CoreConfig.for_thing("arn:aws:iot:us-east-1:1:thing/C", "h").to_document()
    config["coreThing"][field] = value
    path = tmp_path / "config" / "config.json"  # written by hand: the one writer refuses a bad config
    path.parent.mkdir()
    path.write_text(json.dumps(config))
    with pytest.raises(CoreConfigError, match=message) as raised:
        load_settings(path)
    assert str(path) in raised.value.location


# -- mutual TLS --------------------------------------------------------------------------------------

def test_publish_and_subscribe_over_mutual_tls(cloud):
    inbound: list[tuple[str, bytes]] = []
    link = CloudLink(core_settings(cloud), on_message=lambda topic, payload: inbound.append((topic, payload)))
    link.subscribe("rain/RainCore/command/input")
    collector = Collector(cloud, OUTPUT_TOPIC)
    link.start()
    try:
        assert link.wait_connected(10) and collector.link.wait_connected(10)
        # The subscriber may still be subscribing: publish until it hears, then check order and content.
        wait_until(lambda: link.publish(OUTPUT_TOPIC, b'{"seq": 0}') and bool(collector.payloads()),
                   10, message="the subscriber to hear the core", interval_s=0.2)
        for seq in range(1, 6):
            assert link.publish(OUTPUT_TOPIC, json.dumps({"seq": seq}).encode())
        wait_until(lambda: collector.json_field("seq")[-5:] == [1, 2, 3, 4, 5],
                   message=lambda: f"seq 1 to 5 in order at the subscriber (heard {collector.json_field('seq')})")
        assert link.wait_drained(10)
        wait_until(lambda: collector.link.send_now("rain/RainCore/command/input", b'{"id": "1"}')
                   and bool(inbound), 10, message="the core to hear the cloud's command", interval_s=0.2)
        assert inbound[0] == ("rain/RainCore/command/input", b'{"id": "1"}')
        assert link.stats().acked >= 6 and link.stats().state == "connected"
    finally:
        collector.stop()
        link.stop()


def test_alpn_handshake_works_against_the_stand_in(cloud):
    link = CloudLink(core_settings(cloud, alpn=True))
    link.start()
    try:
        assert link.wait_connected(10), link.stats().last_error
    finally:
        link.stop()


def test_a_certificate_from_another_ca_is_refused_with_a_clear_log_line(cloud, tmp_path, caplog):
    caplog.set_level(logging.ERROR, logger="simcore.cloud.link")
    stranger = LocalCA(tmp_path / "other-ca").issue_thing("RainCore")
    link = CloudLink(replace(core_settings(cloud), cert_path=stranger.cert_path, key_path=stranger.key_path))
    link.start()
    try:
        wait_until(lambda: "refused this thing's certificate" in caplog.text, 20,
                   message="the link to log the refused certificate")
        assert not link.connected
        assert str(stranger.cert_path) in caplog.text
        assert "certificate verify failed" in cloud.broker.log_text()
    finally:
        link.stop()


def test_a_server_signed_by_another_ca_is_refused_with_a_clear_log_line(cloud, tmp_path, caplog):
    caplog.set_level(logging.ERROR, logger="simcore.cloud.link")
    other_ca = LocalCA(tmp_path / "other-ca")
    link = CloudLink(replace(core_settings(cloud), ca_path=other_ca.ca_path))
    link.start()
    try:
        wait_until(lambda: "server certificate was not accepted" in caplog.text, 20,
                   message="the link to log the refused server certificate")
        assert not link.connected
        assert str(other_ca.ca_path) in caplog.text
    finally:
        link.stop()


def test_a_payload_over_aws_iots_limit_is_refused_and_counted(cloud):
    link = CloudLink(core_settings(cloud))
    assert not link.publish(OUTPUT_TOPIC, b"x" * (128 * 1024 + 1))
    assert link.stats().dropped == 1 and len(link.spooler) == 0


# -- outages -----------------------------------------------------------------------------------------

def _publish_at_10_per_second(link: CloudLink, shadows: ShadowService, stop: threading.Event,
                              published: list[int]) -> None:
    """The sensor's pace: one reading every 100 ms, into the local shadow and out to the cloud topic.

    Each `seq` is recorded once the spool took it.
    """
    seq = len(published)
    while not stop.wait(0.1):
        shadows.handle(SHADOW_UPDATE, json.dumps({"state": {"reported": {"seq": seq}}}).encode())
        if link.publish(OUTPUT_TOPIC, json.dumps({"seq": seq, "p_rain": 0.5}).encode()):
            published.append(seq)
        seq += 1


def _assert_all_in_order(received: list[int], published: list[int]) -> None:
    first_seen: list[int] = []
    seen: set[int] = set()
    for seq in received:
        if seq not in seen:  # at-least-once: a duplicate may arrive; its first arrival sets the order
            seen.add(seq)
            first_seen.append(seq)
    assert set(published) <= seen, f"lost: {sorted(set(published) - seen)[:20]}"
    assert first_seen == sorted(first_seen), "order not kept"


@pytest.mark.parametrize("outage_s", [
    pytest.param(3, id="3s"),
    pytest.param(60, id="60s", marks=pytest.mark.slow),
])
@pytest.mark.parametrize("storage", ["memory", "file"])
def test_broker_outage_under_10_readings_per_second_loses_nothing(cloud, tmp_path, outage_s, storage):
    gate = TcpGate(cloud.port)
    spooler = MemorySpooler() if storage == "memory" else FileSpooler(tmp_path / "spool.db")
    link = CloudLink(core_settings(cloud, port=gate.port, keep_alive_s=5), spooler)
    local_shadows = open_shadow_service()
    local_engine = local_shadows.engine
    sync = ShadowSync(link, local_engine, ["RainCore"],
                      local_request=lambda topic, payload: local_shadows.handle(topic, payload).response)
    local_shadows.listeners.append(sync.on_local_change)
    collector = Collector(cloud, OUTPUT_TOPIC)
    stop_publishing = threading.Event()
    published: list[int] = []
    publisher = threading.Thread(target=_publish_at_10_per_second,
                                 args=(link, local_shadows, stop_publishing, published))
    sync.start()
    link.start()
    try:
        assert link.wait_connected(10) and collector.link.wait_connected(10)
        # Warm up: the subscriber is subscribed once it hears the core.
        wait_until(lambda: link.publish("rain/RainCore/inference/output", b'{"seq": -1}')
                   and -1 in collector.json_field("seq"), 10, message="the subscriber to hear the core", interval_s=0.2)
        publisher.start()
        wait_until(lambda: len(published) >= 10, message="10 readings published before the outage")

        cloud.broker.stop()  # the outage: the mosquitto process is gone
        gate.close()
        wait_until(lambda: not link.connected, 10, message="the link to notice the outage")
        during = len(published)
        wait_until(lambda: len(published) >= during + outage_s * 10, outage_s * 3 + 10,
                   message=f"{outage_s * 10} readings spooled during the outage", interval_s=0.1)
        assert len(link.spooler) > 0  # readings waited in the spool

        cloud.broker.start()  # same port; a fresh broker with no sessions
        # Let the cloud-side subscriber re-subscribe before the core may reconnect and drain its spool.
        wait_until(lambda: collector.link.send_now(OUTPUT_TOPIC, b'{"seq": -2}')
                   and -2 in collector.json_field("seq"), 30, message="the subscriber to re-subscribe", interval_s=0.2)
        gate.open()
        assert link.wait_connected(30)
        wait_until(lambda: len(published) >= during + outage_s * 10 + 10, 30,
                   message="10 more readings published after the reconnect")
    finally:
        stop_publishing.set()
        if publisher.is_alive():
            publisher.join()
    try:
        assert link.wait_drained(60), f"{len(link.spooler)} messages still spooled"
        wait_until(lambda: set(published) <= set(collector.json_field("seq")), 30,
                   message=lambda: f"every published reading at the subscriber "
                                   f"(missing {sorted(set(published) - set(collector.json_field('seq')))[:20]})")
        _assert_all_in_order([seq for seq in collector.json_field("seq") if seq >= 0], published)
        assert link.stats().dropped == 0
        assert link.stats().disconnects >= 1
        # ...and the shadows converge: the cloud holds the last reading the local shadow holds.
        last = local_engine.get("RainCore")["state"]["reported"]
        wait_until(lambda: cloud.engine.version("RainCore") is not None
                   and cloud.engine.get("RainCore")["state"].get("reported") == last, 30,
                   message=f"the cloud shadow to report the last local reading {last}")
    finally:
        sync.stop()
        collector.stop()
        link.stop()
        gate.shutdown()
        spooler.close()


def test_messages_in_flight_at_a_drop_reach_the_broker_before_newer_ones_after_the_reconnect(cloud):
    """The race behind a rare "order not kept": after a reconnect the SDK re-sends what was in flight on its
    network thread, while the link's send loop, woken by the CONNACK on another thread, could hand newer
    messages over first. Here the network thread is held, right after the CONNACK, until the link hands
    something new over (at most 3 s): a link that waits for the re-sent messages' PUBACKs keeps order."""
    gate = TcpGate(cloud.port)
    link = CloudLink(core_settings(cloud, port=gate.port), MemorySpooler())
    collector = Collector(cloud, OUTPUT_TOPIC)
    link.start()
    try:
        assert link.wait_connected(10) and collector.link.wait_connected(10)
        wait_until(lambda: link.publish(OUTPUT_TOPIC, b'{"seq": -1}') and -1 in collector.json_field("seq"), 10,
                   message="the subscriber to hear the core", interval_s=0.2)
        gate.hold()  # what the core sends now never reaches the broker: it stays in flight
        for seq in range(10):
            assert link.publish(OUTPUT_TOPIC, json.dumps({"seq": seq}).encode())
        def all_in_flight() -> bool:
            stats = link.stats()
            return stats.spooled >= 10 and stats.sent - stats.acked == stats.spooled

        wait_until(all_in_flight, 10, message=lambda: f"seq 0-9 handed over, unacknowledged ({link.stats()})")

        paho = link._client._mqtt_core._internal_async_client._paho_client  # the SDK's bundled paho client
        sdk_on_connect = paho.on_connect
        sent_at_reconnect = [0]

        def on_connect_then_hold(client, userdata, flags, rc):
            sdk_on_connect(client, userdata, flags, rc)  # the link hears the CONNACK (on the SDK's event thread)
            deadline = time.monotonic() + 3.0
            while link.stats().sent == sent_at_reconnect[0] and time.monotonic() < deadline:
                threading.Event().wait(0.01)  # a bounded hold of the network thread, not a verdict

        paho.on_connect = on_connect_then_hold
        gate.close()
        wait_until(lambda: not link.connected, 20, message="the link to notice the drop")
        for seq in range(10, 20):
            assert link.publish(OUTPUT_TOPIC, json.dumps({"seq": seq}).encode())
        sent_at_reconnect[0] = link.stats().sent
        gate.open()
        assert link.wait_drained(60), f"{len(link.spooler)} messages still spooled"
        wait_until(lambda: set(range(20)) <= set(collector.json_field("seq")), 30,
                   message=lambda: f"seq 0-19 at the subscriber (has {collector.json_field('seq')})")
        _assert_all_in_order([seq for seq in collector.json_field("seq") if seq >= 0], list(range(20)))
    finally:
        collector.stop()
        link.stop()
        gate.shutdown()


_KILLED_PUBLISHER = """
import json, sys
from pathlib import Path
from simcore.cloud.link import CloudLink
from simcore.cloud.settings import load_settings
from simcore.cloud.spooler import FileSpooler
config, spool, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
link = CloudLink(load_settings(Path(config), backoff_base_s=0.2, backoff_max_s=1.0), FileSpooler(Path(spool)))
link.start()
seq = start
while True:
    if link.publish("rain/RainCore/inference/output", json.dumps({"seq": seq}).encode()):
        print("accepted", seq, flush=True)  # only once the spool has committed it
    seq += 1
"""


def test_kill_9_under_file_spooling_then_restart_loses_nothing(cloud, tmp_path):
    collector = Collector(cloud, OUTPUT_TOPIC)
    assert collector.link.wait_connected(10)
    spool_path = tmp_path / "core-spool.db"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # The core's own connection is cut at the gate, so the killed process still holds unsent messages.
    gate = TcpGate(cloud.port)
    config = read_core_config(cloud.config_path)
    config = replace(config, core_thing=replace(config.core_thing, iot_mqtt_port=gate.port))
    gated_config = write_core_config(tmp_path / "gated" / "config" / "config.json", config)
    (tmp_path / "gated" / "certs").symlink_to(cloud.certs_dir)
    command = [sys.executable, "-c", _KILLED_PUBLISHER, str(gated_config), str(spool_path), "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    accepted: list[int] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            # The SDK's network thread prints what it hears to stdout too (a TLS alert, an SSL error when
            # the gate cuts the connection): only the publisher's own lines carry a seq.
            if not line.startswith("accepted "):
                continue
            accepted.append(int(line.split()[1]))
            if len(accepted) == 300:
                gate.close()  # from here on the killed core cannot deliver what it accepts
            if len(accepted) >= 600:
                break
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        # Whatever the killed core got acknowledged has left the spool; everything else is still in it.
        survivors = FileSpooler(spool_path)
        assert len(survivors) > 0
        gate.open()
        link = CloudLink(core_settings(cloud, port=gate.port), survivors)
        link.start()
        assert link.wait_drained(60), f"{len(survivors)} messages still spooled"
        wait_until(lambda: set(accepted) <= set(collector.json_field("seq")), 30,
                   message=lambda: f"every accepted message at the subscriber "
                                   f"(missing {sorted(set(accepted) - set(collector.json_field('seq')))[:20]})")
        _assert_all_in_order(collector.json_field("seq"), accepted)
        link.stop()
        survivors.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        collector.stop()
        gate.shutdown()


def test_a_link_that_says_it_is_connected_has_its_client_and_nodelay_socket(cloud):
    """Listeners hear "connected" from the SDK's CONNACK callback: the client (and so its socket, with
    TCP_NODELAY set) must already be the link's then, or a reader in between finds none (bench/cloud_path.py)."""
    from simcore.cloud.sdk_internals import tcp_nodelay

    link = CloudLink(core_settings(cloud))
    seen: list[bool | None] = []
    link.add_connection_listener(lambda up: seen.append(tcp_nodelay(link._client) if up and link._client else None))
    link.start()
    try:
        assert link.wait_connected(30)
        wait_until(lambda: seen, 10, message="the connection listener to run")
    finally:
        link.stop()
    assert seen[0] is True
