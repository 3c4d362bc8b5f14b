"""Greengrass devices on simcore, with AWSIoTPythonSDK unmodified as the device: discovery, admission, routing.

One core (echo Lambda, three devices) serves the whole module: a device discovers it, connects with the
group CA, publishes to the Lambda and gets the Lambda's answer; another device talks to it; refused clients
are refused with a reason; messages no subscription takes are dropped and counted.
"""

from __future__ import annotations

import contextlib
import json

import pytest
from AWSIoTPythonSDK.core.greengrass.discovery.providers import (
    DiscoveryDataNotFoundException,
    DiscoveryUnauthorizedException,
)
from support.devices import (
    ECHO,
    Inbox,
    device,
    discover,
    mqtt_client,
    other_ca,
    start_device_core,
    thing_arn,
    write_group_ca,
)
from support.waiting import wait_until

SENSOR, DISPLAY, STRANGER = "sensor-1", "display-1", "stranger"


@pytest.fixture(scope="module")
def cloud_module(tmp_path_factory):
    from support.cloud import start_test_cloud

    running, _engine = start_test_cloud(tmp_path_factory.mktemp("cloud"), "RainCore")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def core(cloud_module, tmp_path_factory):
    certs = {name: cloud_module.ca.issue_thing(name, file_stem=name) for name in (SENSOR, DISPLAY, STRANGER)}
    devices = [device(SENSOR, certs[SENSOR]), device(DISPLAY, certs[DISPLAY])]
    routes = [
        (thing_arn(SENSOR), "sensors/+/reading", ECHO),
        (ECHO, f"devices/{SENSOR}/in", thing_arn(SENSOR)),
        (thing_arn(SENSOR), "display/show", thing_arn(DISPLAY)),
        (thing_arn(SENSOR), "sensors/to-cloud", "cloud"),
        ("cloud", f"devices/{DISPLAY}/command", thing_arn(DISPLAY)),
    ]
    running = start_device_core(tmp_path_factory.mktemp("core"), cloud_module, devices, routes, certs)
    yield running
    running.running.stop()


@pytest.fixture(scope="module")
def group_ca(core, tmp_path_factory):
    """The group CA and address as basicDiscovery.py gets them: discovery with the IoT CA."""
    info = discover(core, SENSOR)
    return write_group_ca(info, tmp_path_factory.mktemp("groupCA"))


def connected(core, name, group_ca, **overrides):
    ca, host, port = group_ca
    client = mqtt_client(name, core.certs[name], ca, host, port, **overrides)
    assert client.connect(keepAliveIntervalSecond=600)
    return client


def test_discovery_answers_with_the_group_ca_and_the_core_address(core):
    info = discover(core, SENSOR)
    group_id, ca_pem = info.getAllCas()[0]
    assert ca_pem == core.group_ca_path.read_text()
    core_info = info.getAllCores()[0]
    assert core_info.coreThingArn == core.running.deployment.group.core.thing_arn
    assert [(entry.host, entry.port) for entry in core_info.connectivityInfoList] == [("127.0.0.1", core.server.port)]
    assert group_id == core.server.group_id


def test_discovery_refuses_a_thing_not_in_the_group_404_and_an_unknown_certificate_401(core):
    with pytest.raises(DiscoveryDataNotFoundException):
        discover(core, "not-in-group", cert=core.certs[SENSOR])
    with pytest.raises(DiscoveryUnauthorizedException):
        discover(core, SENSOR, cert=core.certs[STRANGER])


def test_device_publish_reaches_the_lambda_and_its_publish_reaches_the_device(core, group_ca):
    client = connected(core, SENSOR, group_ca)
    inbox = Inbox()
    try:
        assert client.subscribe(f"devices/{SENSOR}/in", 0, inbox)
        reading = {"temperature": 21.5, "publish_to": f"devices/{SENSOR}/in"}
        client.publish(f"sensors/{SENSOR}/reading", json.dumps(reading), 0)
        replies = wait_until(lambda: inbox.on(f"devices/{SENSOR}/in"),
                             message=lambda: f"the Lambda's reply at the device ({core.running.status()['router']})")
        # The Lambda's handler saw the device's message, its topic, and the device as the source.
        assert replies[0]["event"] == reading
        assert replies[0]["custom"]["subject"] == f"sensors/{SENSOR}/reading"
        assert replies[0]["function_name"] == "device-echo"
    finally:
        client.disconnect()
    counters = core.server.status()["devices"][SENSOR]
    assert counters["published"] >= 1 and counters["to_device_sent"] >= 1


def test_device_to_device_and_cloud_to_device(core, group_ca):
    sensor, display = connected(core, SENSOR, group_ca), connected(core, DISPLAY, group_ca)
    inbox = Inbox()
    try:
        assert display.subscribe("display/show", 0, inbox)
        assert display.subscribe(f"devices/{DISPLAY}/command", 0, inbox)
        sensor.publish("display/show", json.dumps({"text": "rain"}), 0)
        wait_until(lambda: inbox.on("display/show"), message="the sensor's message at the display")
        assert inbox.on("display/show") == [{"text": "rain"}]
        core.running.core.publish(f"devices/{DISPLAY}/command", b'{"blink": 2}', source="cloud")
        wait_until(lambda: inbox.on(f"devices/{DISPLAY}/command"), message="the cloud's command at the display")
    finally:
        sensor.disconnect()
        display.disconnect()


def test_a_publish_no_subscription_takes_is_dropped_and_counted(core, group_ca):
    client = connected(core, DISPLAY, group_ca)
    try:
        before = core.running.status()["router"]["dropped_unmatched"]
        client.publish("nobody/listens", "{}", 0)
        wait_until(lambda: core.running.status()["router"]["dropped_unmatched"] > before,
                   message="the unrouted publish counted")
        # A SUBSCRIBE no subscription feeds is accepted, with no effect (and logged).
        subscribed_before = core.server.subscribes_with_no_effect
        assert client.subscribe("sensors/#", 0, Inbox())
        assert core.server.subscribes_with_no_effect == subscribed_before + 1
    finally:
        client.disconnect()


def attempt(client) -> None:
    """Try to connect (the SDK reports a refused CONNACK as connected, a closed TLS session as an error)."""
    client.configureConnectDisconnectTimeout(3)
    with contextlib.suppress(Exception):
        client.connect()
    with contextlib.suppress(Exception):
        client.disconnect()


def refused_for(core, text: str) -> list[str]:
    return [line for line in core.server.status()["recent_refusals"] if text in line]


def test_a_wrong_client_id_is_refused_with_the_reason(core, group_ca):
    ca, host, port = group_ca
    attempt(mqtt_client(SENSOR, core.certs[SENSOR], ca, host, port, client_id=DISPLAY))
    wait_until(lambda: refused_for(core, f"client id {DISPLAY!r} is not the thing name {SENSOR!r}"),
               message=lambda: f"the refusal logged ({core.server.status()['recent_refusals']})")
    assert DISPLAY not in core.server.status()["connected"]


def test_a_certificate_not_in_the_group_is_refused_with_the_reason(core, group_ca):
    ca, host, port = group_ca
    attempt(mqtt_client(STRANGER, core.certs[STRANGER], ca, host, port))
    wait_until(lambda: refused_for(core, "is not the certificate of any device"),
               message=lambda: f"the refusal logged ({core.server.status()['recent_refusals']})")
    assert STRANGER not in core.server.status()["connected"]


def test_a_certificate_from_an_unknown_ca_is_refused_at_tls(core, group_ca, tmp_path):
    stranger_ca = other_ca(tmp_path / "other-ca")
    forged = stranger_ca.issue_thing(SENSOR, file_stem=SENSOR)  # the right name, the wrong issuer
    ca, host, port = group_ca
    attempt(mqtt_client(SENSOR, forged, ca, host, port))
    assert SENSOR not in core.server.status()["connected"]
    wait_until(lambda: refused_for(core, "TLS handshake failed"),
               message=lambda: f"the TLS refusal logged ({core.server.status()['recent_refusals']})")


def test_the_server_certificate_names_the_advertised_address_and_lasts_seven_days(core):
    import datetime

    from cryptography import x509

    cert = x509.load_pem_x509_certificate(core.server.cert_path.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in [str(address) for address in sans.get_values_for_type(x509.IPAddress)]
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=7) <= life <= datetime.timedelta(days=7, minutes=10)
    issuer = x509.load_pem_x509_certificate(core.group_ca_path.read_bytes())
    cert.verify_directly_issued_by(issuer)


def test_a_device_message_reaches_the_cloud_by_subscription(core, group_ca, cloud_module):
    from support.cloud import Collector

    collector = Collector(cloud_module, "sensors/to-cloud", name="devices-cloud-watcher")
    client = connected(core, SENSOR, group_ca)
    try:
        assert collector.link.wait_connected(10)
        # Sent again until seen: the subscriber's SUBSCRIBE may still be on its way when the first one arrives.

        def sent_and_seen() -> list[bytes]:
            client.publish("sensors/to-cloud", json.dumps({"from": SENSOR}), 0)
            return collector.payloads()

        payloads = wait_until(sent_and_seen, interval_s=0.5, message="the device's message at the cloud subscriber")
        assert json.loads(payloads[0]) == {"from": SENSOR}
    finally:
        client.disconnect()
        collector.stop()


def test_a_payload_over_128_kb_is_dropped_and_counted_and_the_device_stays_connected(core, group_ca):
    client = connected(core, SENSOR, group_ca)
    inbox = Inbox()
    try:
        before = core.server.status()["devices"][SENSOR].get("dropped_too_large", 0)
        client.publish("display/show", "x" * (128 * 1024 + 1), 0)
        wait_until(lambda: core.server.status()["devices"][SENSOR].get("dropped_too_large", 0) == before + 1,
                   message="the oversized publish counted")
        assert client.subscribe(f"devices/{SENSOR}/in", 0, inbox)  # still connected: the SUBSCRIBE is answered
        assert SENSOR in core.server.status()["connected"]
    finally:
        client.disconnect()


def test_a_device_that_opens_tls_and_sends_no_connect_is_closed(core, monkeypatch):
    import socket
    import ssl

    from simcore.devices import broker as device_broker

    monkeypatch.setattr(device_broker, "CONNECT_TIMEOUT_S", 0.5)  # read when each connection starts
    context = ssl.create_default_context(cafile=str(core.group_ca_path))
    context.load_cert_chain(str(core.certs[SENSOR].cert_path), str(core.certs[SENSOR].key_path))
    with socket.create_connection(("127.0.0.1", core.server.port)) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.settimeout(20)
        # Silent after the handshake: the server closes the connection (EOF) instead of waiting forever.
        assert tls.recv(1) == b""
