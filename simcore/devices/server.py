"""The core's device side: the MQTT server for the group's devices, its certificate, discovery, counters.

`DeviceServer` is what the router sees as its device port (`has`, `deliver`), and what hands every device
PUBLISH to the router with the device's thing ARN as source, like any other source. On `start()`:
1. the group CA (made on the first run) signs a server certificate valid `server_cert_validity` (7 days,
   v1's default) with a SAN for every advertised address, localhost and 127.0.0.1;
2. the embedded broker (simcore.devices.broker) listens on `port` (`coreThing.ggMqttPort`, 8883);
3. the connectivity list (simcore.devices.connectivity) and the group CA are written as the discovery
   record `<state_dir>/discovery.json`, and served on `discovery_port` when one is given;
4. a thread renews the certificate before it expires (at 6/7 of its life, one day ahead by default) and
   restarts the broker, as v1 does: connected devices are dropped and reconnect.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simcore.cloud.broker import BrokerError, BrokerTLS
from simcore.defaults import DEFAULT_MQTT_PORT, DEFAULT_SERVER_CERT_DAYS
from simcore.devices.admission import Admission, certificate_id_of_arn
from simcore.devices.broker import DeviceBroker
from simcore.devices.connectivity import IP_DETECTOR, ConnectivityEntry, connectivity
from simcore.devices.discovery import DiscoveryServer, discovery_record
from simcore.devices.group_ca import SigningCA, group_ca, not_after
from simcore.errors import StartError
from simcore.group import Group
from simcore.private import private_dir
from simcore.topics import filters_overlap

log = logging.getLogger(__name__)

Route = Callable[[str, str, bytes], Any]  # (source, topic, payload): the router's route


@dataclass
class DeviceOptions:
    """How the core serves its devices.

    `device_ca` is the CA device certificates chain to (the IoT CA: the stand-in's `root.ca.pem`).
    `connectivity` are (host, port) pairs advertised when the group has no GGIPDetector.
    """

    device_ca: Path
    port: int = DEFAULT_MQTT_PORT
    host: str = "0.0.0.0"
    connectivity: list[tuple[str, int]] = field(default_factory=list)
    discovery_port: int | None = None
    server_cert_validity: datetime.timedelta = datetime.timedelta(days=DEFAULT_SERVER_CERT_DAYS)


def discovery_signer(device_ca: Path, fallback: SigningCA) -> SigningCA:
    """Who signs the discovery endpoint's certificate: the IoT CA when its key lies beside it (the stand-in's
    `root.ca.key`), so devices check it against the CA they already have; otherwise the group CA."""
    key = Path(device_ca).with_name("root.ca.key")
    if key.exists():
        return SigningCA.load(device_ca, key)
    return fallback


class DeviceServer:
    """The group's devices served: broker, certificates, discovery, rotation, per-device counters."""

    def __init__(self, group: Group, state_dir: Path, route: Route, options: DeviceOptions):
        self.group = group
        self.state_dir = private_dir(state_dir)
        self.route = route
        self.options = options
        self.group_id = re.sub(r"[^A-Za-z0-9_-]", "-", group.name) or "group"
        self._arn_by_thing = {device.thing_name: device.thing_arn for device in group.devices}
        self._thing_by_arn = {arn: thing for thing, arn in self._arn_by_thing.items()}
        self.auto_ip = IP_DETECTOR in group.system_functions
        self.server_dir = private_dir(self.state_dir / "server")
        self.cert_path = self.server_dir / "server.crt"
        self.key_path = self.server_dir / "server.key"
        self.ca: SigningCA | None = None
        self.broker: DeviceBroker | None = None
        self.discovery: DiscoveryServer | None = None
        self.connectivity: list[ConnectivityEntry] = []
        self.rotations = 0
        self.subscribes_with_no_effect = 0
        self._stopping = threading.Event()
        self._rotate_now = threading.Event()
        self._rotation_lock = threading.Lock()
        self._rotation_thread: threading.Thread | None = None

    # -- the router's device port --------------------------------------------------------------------

    def has(self, thing_arn: str) -> bool:
        """Whether `thing_arn` is a device of the group."""
        return thing_arn in self._thing_by_arn

    def deliver(self, thing_arn: str, topic: str, payload: bytes) -> bool:
        """Send a routed message to the device (QoS 0); False when it is not connected or not subscribed."""
        broker = self.broker
        thing = self._thing_by_arn.get(thing_arn)
        if broker is None or thing is None:
            return False
        return broker.deliver(thing, topic, payload) == "sent"

    # -- lifecycle -------------------------------------------------------------------------------------

    def _hosts(self) -> list[str]:
        if self.auto_ip:
            advertised = [entry.host_address for entry in connectivity(True, [], 0)]
        else:
            advertised = [host for host, _ in self.options.connectivity]
        return [*advertised, "localhost", "127.0.0.1"]

    def _issue_server_certificate(self) -> None:
        assert self.ca is not None
        self.ca.issue_server(self._hosts(), self.cert_path, self.key_path, self.options.server_cert_validity)

    def start(self) -> None:
        """Issue the server certificate, start the broker, publish connectivity, start discovery and rotation."""
        self.ca = group_ca(self.state_dir, self.group.name)
        self._issue_server_certificate()
        self.broker = DeviceBroker(
            BrokerTLS(Path(self.options.device_ca), self.cert_path, self.key_path), self.state_dir / "broker",
            Admission.for_devices(self.group.devices), on_publish=self._from_device,
            on_subscribe=self._device_subscribed, port=self.options.port, host=self.options.host,
        )
        try:
            self.broker.start()
        except BrokerError as error:
            if not error.port_taken:
                raise
            raise BrokerError(f"the device MQTT server cannot listen on {self.options.host}:{self.options.port}: "
                              "the port is in use (by the stand-in cloud's broker?); pass --device-port "
                              "(0: any free port) or set coreThing.ggMqttPort") from None
        self.connectivity = connectivity(self.auto_ip, self.options.connectivity, self.broker.port)
        record = self.discovery_record()
        record_path = self.state_dir / "discovery.json"
        temporary = record_path.with_name(".discovery.json.tmp")
        temporary.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        temporary.replace(record_path)
        if self.options.discovery_port is not None:
            signer = discovery_signer(self.options.device_ca, self.ca)
            cert, key = self.server_dir / "discovery.crt", self.server_dir / "discovery.key"
            signer.issue_server(self._hosts(), cert, key, datetime.timedelta(days=365))
            try:
                self.discovery = DiscoveryServer(lambda: record, self.options.device_ca, cert, key,
                                                 port=self.options.discovery_port, host=self.options.host)
            except OSError as error:
                self.broker.stop()
                raise StartError(f"discovery cannot listen on {self.options.host}:{self.options.discovery_port}: "
                                 f"{error.strerror or error}; pass another --discovery-port (0: any free "
                                 "port)") from None
            self.discovery.start()
        self._rotation_thread = threading.Thread(target=self._rotation_loop, name="server-cert", daemon=True)
        self._rotation_thread.start()
        log.info("device MQTT server on %s:%s (mutual TLS, %d devices in the group); advertised: %s",
                 self.options.host, self.broker.port, len(self.group.devices),
                 ", ".join(f"{entry.host_address}:{entry.port}" for entry in self.connectivity))

    def stop(self) -> None:
        """Stop discovery, the rotation thread and the broker (devices are disconnected)."""
        self._stopping.set()
        self._rotate_now.set()
        if self.discovery is not None:
            self.discovery.stop()
        if self._rotation_thread is not None:
            self._rotation_thread.join(5)
        if self.broker is not None:
            self.broker.stop()

    @property
    def port(self) -> int | None:
        """The MQTT port devices connect to (None before start)."""
        return self.broker.port if self.broker is not None else None

    def discovery_record(self) -> dict:
        """What discovery answers for this core."""
        assert self.ca is not None
        return discovery_record(
            self.group_id, self.group.core.thing_arn, [entry.to_document() for entry in self.connectivity],
            self.ca.pem, {device.thing_name: certificate_id_of_arn(device.certificate_arn)
                          for device in self.group.devices},
        )

    # -- certificate rotation ---------------------------------------------------------------------------

    def rotate_server_certificate(self) -> None:
        """Issue a new server certificate and restart the broker on the same port (devices reconnect)."""
        with self._rotation_lock:
            if self.broker is None or self._stopping.is_set():
                return
            self._issue_server_certificate()
            self.broker.stop()
            self.broker.start()
            self.rotations += 1
            log.info("device MQTT server certificate rotated (valid until %s); devices were disconnected and "
                     "reconnect", not_after(self.cert_path).isoformat())

    def _rotation_loop(self) -> None:
        while not self._stopping.is_set():
            validity = self.options.server_cert_validity
            renew_at = not_after(self.cert_path) - validity / 7
            wait_s = (renew_at - datetime.datetime.now(datetime.UTC)).total_seconds()
            self._rotate_now.wait(max(wait_s, 0.0))
            if self._stopping.is_set():
                return
            try:
                self.rotate_server_certificate()
            except Exception:  # the old certificate still serves; try again at the next check
                log.exception("rotating the device server certificate failed")
                self._stopping.wait(60)

    # -- from devices -----------------------------------------------------------------------------------

    def _from_device(self, thing: str, topic: str, payload: bytes) -> None:
        self.route(self._arn_by_thing[thing], topic, payload)

    def _device_subscribed(self, thing: str, topic_filter: str) -> None:
        arn = self._arn_by_thing.get(thing)
        fed = any(subscription.target == arn and filters_overlap(subscription.subject, topic_filter)
                  for subscription in self.group.subscriptions)
        if not fed:
            self.subscribes_with_no_effect += 1
            log.info("device %s subscribed to %r, which no subscription of the group targets it with: accepted, "
                     "no message will arrive on it", thing, topic_filter)

    def status(self) -> dict[str, Any]:
        """Connected devices, per-device counters, refusals, the advertised addresses and the certificate."""
        broker = self.broker
        if broker is None:
            return {"running": False}
        counters, refused, refusals = broker.snapshot()
        return {
            "running": True,
            "port": broker.port,
            "connected": broker.connected(),
            "devices": {device.thing_name: counters.get(device.thing_name, {}) for device in self.group.devices},
            "refused_connections": refused,
            "recent_refusals": refusals[-10:],
            "subscribes_with_no_effect": self.subscribes_with_no_effect,
            "connectivity": [dataclasses.asdict(entry) for entry in self.connectivity],
            "server_certificate_not_after": not_after(self.cert_path).isoformat(),
            "rotations": self.rotations,
            "discovery_port": self.discovery.port if self.discovery is not None else None,
        }
