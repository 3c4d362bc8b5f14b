"""The cloud link names why a connection failed, from what AWSIoTPythonSDK and `ssl` report (real mosquitto)."""

from __future__ import annotations

import logging
import socket
from dataclasses import replace

from support.cloud import core_settings
from support.waiting import wait_until

from simcore.cloud.broker import AmqttBroker, MosquittoBroker
from simcore.cloud.ca import LocalCA
from simcore.cloud.failures import tls_handshake_failure
from simcore.cloud.link import CloudLink


class AnonymousRefusingBroker(MosquittoBroker):
    """mosquitto that takes no identity from certificates: with `allow_anonymous false` it answers CONNACK 5."""

    def _write_conf(self) -> None:
        super()._write_conf()
        text = self.conf_path.read_text()
        self.conf_path.write_text(text.replace("use_identity_as_username true", "use_identity_as_username false"))


class AnonymousRefusingAmqtt(AmqttBroker):
    """The amqtt fallback whose one authentication plugin refuses everyone: it answers CONNACK 5 (not authorized).
    (amqtt's AnonymousAuthPlugin with `allow_anonymous: false` would let the link in: AWSIoTPythonSDK sends a
    username, its SDK metrics.)"""

    def _config(self) -> dict:
        config = super()._config()
        config["plugins"] = {"support.amqtt_refusal.RefuseEveryonePlugin": {}}
        return config


def failure_logged(link: CloudLink, caplog, wording: str) -> bool:
    """Start `link`; whether `wording` is logged within 20 s (it must not connect meanwhile)."""
    link.start()
    try:
        found = wait_until(lambda: wording in caplog.text, 20, message=lambda: f"{wording!r} in the log: {caplog.text}")
        assert not link.connected
        return found
    finally:
        link.stop()


def test_nothing_listening_is_named(cloud, caplog):
    caplog.set_level(logging.ERROR, logger="simcore.cloud.link")
    # A port this test holds bound but not listening: nothing else can take it while the test runs.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        link = CloudLink(core_settings(cloud, port=port))
        assert failure_logged(link, caplog, f"nothing accepts connections on 127.0.0.1:{port}")


def test_a_missing_certificate_file_is_named_and_the_link_keeps_retrying(cloud, tmp_path, caplog):
    caplog.set_level(logging.ERROR, logger="simcore.cloud.link")
    missing = tmp_path / "gone.cert.pem"
    link = CloudLink(replace(core_settings(cloud), cert_path=missing))
    link.start()
    try:
        wait_until(lambda: caplog.text.count(f"a certificate file is missing: {missing}") >= 2, 20,
                   message="two failed attempts naming the missing certificate file")
        assert link.state == "connecting"
    finally:
        link.stop()


def test_a_refused_connack_is_named_with_its_return_code(cloud, tmp_path, caplog):
    caplog.set_level(logging.ERROR, logger="simcore.cloud.link")
    refusing = AnonymousRefusingBroker if cloud.broker.kind == "mosquitto" else AnonymousRefusingAmqtt
    broker = refusing(cloud.broker.tls, tmp_path / "refusing")
    broker.start()
    try:
        link = CloudLink(core_settings(cloud, port=broker.port))
        assert failure_logged(link, caplog, "refused the MQTT connection as 'RainCore': CONNACK 5: not authorized")
    finally:
        broker.stop()


def test_the_handshake_check_reads_a_tls13_refusal_and_accepts_a_good_certificate(cloud, tmp_path):
    stranger = LocalCA(tmp_path / "other-ca").issue_thing("RainCore")
    refused = tls_handshake_failure(core_settings(cloud, cert_path=stranger.cert_path, key_path=stranger.key_path))
    assert refused is not None and "UNKNOWN_CA" in str(refused)
    assert tls_handshake_failure(core_settings(cloud)) is None


def test_a_chosen_port_taken_before_the_broker_binds_it_is_replaced_by_another(tmp_path, monkeypatch):
    """Port 0: the broker's choice is only a guess until its bind; when that bind finds the port taken, it
    chooses again itself (no "address already in use" for the caller)."""
    from simcore.cloud import broker as broker_module

    ca = LocalCA(tmp_path / "ca")
    server = ca.issue_server(file_stem="broker")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        choose = broker_module._candidate_port
        guesses = iter([taken])  # the first guess is a port something else already holds
        monkeypatch.setattr(broker_module, "_candidate_port", lambda: next(guesses, None) or choose())
        broker = broker_module.make_broker(broker_module.BrokerTLS(ca.ca_path, server.cert_path, server.key_path),
                                           tmp_path / "broker")
        broker.start()
        try:
            assert broker.running and broker.port not in (0, taken)
            with socket.create_connection(("127.0.0.1", broker.port), timeout=5):
                pass
        finally:
            broker.stop()
