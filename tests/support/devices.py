"""Helpers for the device tests: a group with devices, a running core serving them, AWSIoTPythonSDK devices.

The devices are AWSIoTPythonSDK's own clients, unmodified, configured as basicDiscovery.py configures them:
discovery with the IoT CA, then MQTT to an address discovery gave, checked against the group CA.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

from AWSIoTPythonSDK.core.greengrass.discovery.providers import DiscoveryInfoProvider
from AWSIoTPythonSDK.MQTTLib import AWSIoTMQTTClient, AWSIoTMQTTShadowClient
from lambdas_fixtures.harness import ACCOUNT, REGION, make_function, make_group

from simcore.cloud.ca import IssuedCertificate, LocalCA
from simcore.deploy.record import Deployment
from simcore.group import Device
from simcore.service.running import RunningCore, RunOptions

ECHO = "arn:aws:lambda:us-east-1:123456789012:function:device-echo:live"


def thing_arn(name: str) -> str:
    """A thing ARN in the test account."""
    return f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/{name}"


def device(name: str, issued: IssuedCertificate, sync_shadow: bool = False) -> Device:
    """The DeviceDefinition entry of `name` with the certificate `issued`."""
    return Device(id=name, thing_name=name, thing_arn=thing_arn(name),
                  certificate_arn=f"arn:aws:iot:{REGION}:{ACCOUNT}:cert/{issued.certificate_id}",
                  sync_shadow=sync_shadow)


def shadow_routes(name: str) -> list[tuple[str, str, str]]:
    """The subscriptions a device's shadow needs: its requests to GGShadowService, the answers back."""
    arn = thing_arn(name)
    return [(arn, f"$aws/things/{name}/shadow/#", "GGShadowService"),
            ("GGShadowService", f"$aws/things/{name}/shadow/#", arn)]


@dataclass
class DeviceCore:
    """A running core with devices, and what a test needs to reach it."""

    running: RunningCore
    iot_ca: Path
    certs: dict[str, IssuedCertificate] = field(default_factory=dict)

    @property
    def server(self):
        return self.running.devices

    @property
    def group_ca_path(self) -> Path:
        return self.server.ca.cert_path


def start_device_core(root: Path, cloud, devices: list[Device], routes: list[tuple[str, str, str]],
                      certs: dict[str, IssuedCertificate], *, system_functions: tuple[str, ...] = (),
                      connectivity: list[tuple[str, int]] | None = None) -> DeviceCore:
    """RunningCore for a group of the echo Lambda and `devices`, linked to the stand-in `cloud`."""
    import sys

    group = make_group([make_function("device-echo", "compat", "echo.function_handler", timeout_s=10)], routes,
                       devices=tuple(devices), system_functions=system_functions)
    deployment = Deployment(id="devices-test", number=1, root=root, directory=root / "deployment", group=group,
                            function_dirs={ECHO: group.functions[0].code_dir})
    options = RunOptions(
        interpreters={"python3.8": sys.executable}, cloud_config=cloud.config_path, device_port=0,
        device_host="127.0.0.1", discovery_port=0,
        connectivity=connectivity if connectivity is not None else [("127.0.0.1", 0)],
    )
    running = RunningCore(deployment, options)
    running.start()
    return DeviceCore(running, cloud.ca.ca_path, certs)


def discover(core: DeviceCore, name: str, cert: IssuedCertificate | None = None, ca: Path | None = None):
    """AWSIoTPythonSDK's discovery for `name` at the core's discovery port: the DiscoveryInfo."""
    cert = cert or core.certs[name]
    provider = DiscoveryInfoProvider(caPath=str(ca or core.iot_ca), certPath=str(cert.cert_path),
                                     keyPath=str(cert.key_path), host="127.0.0.1",
                                     port=core.server.discovery.port, timeoutSec=10)
    return provider.discover(name)


def write_group_ca(info, folder: Path) -> tuple[Path, str, int]:
    """basicDiscovery.py's steps: the first group's CA to a file, and the first core's first address."""
    group_id, ca_pem = info.getAllCas()[0]
    path = folder / f"{group_id}_CA.crt"
    path.write_text(ca_pem)
    address = info.getAllCores()[0].connectivityInfoList[0]
    return path, address.host, address.port


def mqtt_client(name: str, cert: IssuedCertificate, ca: Path, host: str, port: int,
                client_id: str | None = None) -> AWSIoTMQTTClient:
    """A device's AWSIoTMQTTClient, configured (not connected): client id = its thing name unless given."""
    client = AWSIoTMQTTClient(client_id or name)
    client.configureEndpoint(host, port)
    client.configureCredentials(str(ca), str(cert.key_path), str(cert.cert_path))
    client.configureAutoReconnectBackoffTime(1, 4, 20)
    client.configureOfflinePublishQueueing(0)
    client.configureConnectDisconnectTimeout(10)
    client.configureMQTTOperationTimeout(5)
    client.disableMetricsCollection()
    return client


def shadow_client(name: str, cert: IssuedCertificate, ca: Path, host: str, port: int) -> AWSIoTMQTTShadowClient:
    """A device's AWSIoTMQTTShadowClient, configured (not connected)."""
    client = AWSIoTMQTTShadowClient(name)
    client.configureEndpoint(host, port)
    client.configureCredentials(str(ca), str(cert.key_path), str(cert.cert_path))
    client.configureAutoReconnectBackoffTime(1, 4, 20)
    client.configureConnectDisconnectTimeout(10)
    client.configureMQTTOperationTimeout(5)
    return client


class Inbox:
    """What a device's subscription callback received: (topic, payload) pairs."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()

    def __call__(self, _client, _userdata, message) -> None:
        with self._lock:
            self.messages.append((message.topic, message.payload))

    def on(self, topic: str) -> list[dict]:
        with self._lock:
            return [json.loads(payload) for seen, payload in self.messages if seen == topic]


def other_ca(folder: Path) -> LocalCA:
    """A CA the core does not know."""
    return LocalCA(folder, common_name="some other CA")
