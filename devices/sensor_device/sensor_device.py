"""The rain group's sensor as a Greengrass device (`SensorMode=device`), the way the classic v1 demo ran it.

The device reads the BME680 (or replays real weather) with the sensor Lambda's own code (`SensorApp`, so
the readings, the 3-hour tendency and the health report cannot drift from the Lambda's), discovers its
core, connects to the core's MQTT server with the group CA, and publishes each shadow update it wants on
`rain/<core thing>/sensor/reading`; the group's `ReadingToShadow` Lambda writes it into the core thing's
shadow. What the Lambda would hear, the device hears by subscription:
`$aws/things/<core thing>/shadow/update/delta` (a desired `read_interval_s`) and `.../update/rejected`,
and it reads the shadow at start (`.../shadow/get`, to resume a replay) through GGShadowService.

    python devices/sensor_device/sensor_device.py --device RainEdgeSensor --core-thing RainEdgeCore \
        --cert RainEdgeSensor.cert.pem --key RainEdgeSensor.private.key --root-ca root.ca.pem \
        --discovery-host 127.0.0.1 --discovery-port 8443 --source replay:JFK --replay-speed 30

It needs AWSIoTPythonSDK (requirements.txt) beside the sensor Lambda's requirements. It runs until
SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import tempfile
import threading
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "lambdas" / "sensor_to_shadow"))

from AWSIoTPythonSDK.core.greengrass.discovery.providers import DiscoveryInfoProvider  # noqa: E402
from AWSIoTPythonSDK.MQTTLib import AWSIoTMQTTClient  # noqa: E402
from sensor_to_shadow.app import SensorApp  # noqa: E402
from sensor_to_shadow.settings import load_settings  # noqa: E402

log = logging.getLogger("sensor_device")
DISCOVERY_ATTEMPTS = 10
GET_TIMEOUT_S = 10.0


class ShadowOverMqtt:
    """The SDK calls `SensorApp` makes, over the device's MQTT connection to its core."""

    def __init__(self, client: AWSIoTMQTTClient, core_thing: str):
        self.client = client
        self.reading_topic = f"rain/{core_thing}/sensor/reading"
        self.shadow_topic = f"$aws/things/{core_thing}/shadow"
        self._answers: dict[str, tuple[str, dict]] = {}
        self._answered = threading.Condition()

    def update(self, _thing: str, payload: bytes) -> None:
        """Publish the update for the ReadingToShadow Lambda (QoS 0, as all local traffic)."""
        if not self.client.publish(self.reading_topic, payload.decode("utf-8"), 0):
            raise RuntimeError("the reading could not be published (not connected)")

    def get(self, _thing: str) -> dict:
        """The core thing's shadow document, as the SDK's get answers; an error names the code (404)."""
        token = uuid.uuid4().hex
        self.client.publish(f"{self.shadow_topic}/get", json.dumps({"clientToken": token}), 0)
        with self._answered:
            if not self._answered.wait_for(lambda: token in self._answers, GET_TIMEOUT_S):
                raise RuntimeError("no answer to the shadow get")
            outcome, document = self._answers.pop(token)
        if outcome == "rejected":
            raise RuntimeError(f"get returned error code {document.get('code')} with message "
                               f"{document.get('message')!r}")
        return {"payload": json.dumps(document).encode()}

    def on_get_answer(self, _client, _userdata, message) -> None:
        try:
            document = json.loads(message.payload)
        except ValueError:
            return
        token = document.get("clientToken") if isinstance(document, dict) else None
        if token:
            with self._answered:
                self._answers[token] = (message.topic.rsplit("/", 1)[1], document)
                self._answered.notify_all()


def discover(args: argparse.Namespace, work_dir: Path) -> tuple[Path, list[tuple[str, int]]]:
    """Discovery as basicDiscovery.py does it: the group CA to a file, the core's addresses in order."""
    provider = DiscoveryInfoProvider(caPath=args.root_ca, certPath=args.cert, keyPath=args.key,
                                     host=args.discovery_host, port=args.discovery_port, timeoutSec=10)
    stop = threading.Event()
    for attempt in range(1, DISCOVERY_ATTEMPTS + 1):
        try:
            info = provider.discover(args.device)
            break
        except Exception as error:  # the SDK's own exceptions: timeout, refused, not found
            log.warning("discovery attempt %d failed: %s", attempt, error)
            if attempt == DISCOVERY_ATTEMPTS:
                raise
            stop.wait(min(2 ** attempt * 0.2, 5))
    group_id, ca_pem = info.getAllCas()[0]
    ca_path = work_dir / f"{group_id}_CA_{uuid.uuid4().hex}.crt"
    ca_path.write_text(ca_pem)
    core = info.getAllCores()[0]
    return ca_path, [(entry.host, entry.port) for entry in core.connectivityInfoList]


def connect(args: argparse.Namespace, ca_path: Path, addresses: list[tuple[str, int]]) -> AWSIoTMQTTClient:
    """Connect to the first of the core's addresses that answers (client id = the device's thing name)."""
    for host, port in addresses:
        client = AWSIoTMQTTClient(args.device)
        client.configureEndpoint(host, port)
        client.configureCredentials(str(ca_path), args.key, args.cert)
        client.configureAutoReconnectBackoffTime(1, 32, 20)
        client.configureOfflinePublishQueueing(0)
        client.configureConnectDisconnectTimeout(10)
        client.configureMQTTOperationTimeout(5)
        client.disableMetricsCollection()
        try:
            if client.connect():
                log.info("connected to the core at %s:%s", host, port)
                return client
        except Exception as error:  # try the next address, as basicDiscovery.py does
            log.warning("core at %s:%s: %s", host, port, error)
    raise SystemExit(f"sensor device: no address of the core answered: {addresses}")


def main(argv: list[str] | None = None) -> int:
    """Run the sensor device until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", required=True, help="the device's thing name (its MQTT client id)")
    parser.add_argument("--core-thing", required=True, help="the core thing whose shadow the readings go to")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--root-ca", required=True, help="the CA the discovery endpoint's certificate chains to")
    parser.add_argument("--discovery-host", default="127.0.0.1")
    parser.add_argument("--discovery-port", type=int, default=8443)
    parser.add_argument("--source", default="bme680", help="bme680 or replay:<station>[:<from>:<to>]")
    parser.add_argument("--replay-speed", default="1")
    parser.add_argument("--read-interval", default="60")
    parser.add_argument("--i2c-bus", default="1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with tempfile.TemporaryDirectory(prefix="sensor-device-") as work_dir:
        ca_path, addresses = discover(args, Path(work_dir))
        client = connect(args, ca_path, addresses)
        shadow = ShadowOverMqtt(client, args.core_thing)
        settings = load_settings({"THING_NAME": args.core_thing, "SENSOR_SOURCE": args.source,
                                  "REPLAY_SPEED": args.replay_speed, "READ_INTERVAL_S": args.read_interval,
                                  "I2C_BUS": args.i2c_bus})
        app = SensorApp(settings, shadow.update, shadow.get)

        def on_update_outcome(_client, _userdata, message) -> None:
            try:
                event = json.loads(message.payload)
            except ValueError:
                event = None
            app.handle(event, message.topic)

        client.subscribe(f"{shadow.shadow_topic}/get/+", 0, shadow.on_get_answer)
        client.subscribe(f"{shadow.shadow_topic}/update/delta", 0, on_update_outcome)
        client.subscribe(f"{shadow.shadow_topic}/update/rejected", 0, on_update_outcome)
        app.start()
        stop.wait()
        if app.loop is not None:
            app.loop.stop()
        client.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
