"""Devices benchmark: device publish → Lambda handler against a bare broker hop; 100 devices on one core.

One run measures, on the same machine:
- the floor: AWSIoTPythonSDK publish → AWSIoTPythonSDK subscriber through amqtt with mutual TLS (the
  stand-in's `AmqttBroker`, the broker the core's device server embeds), one message at a time, from just
  before `publish()` to the subscriber's callback (both `time.time_ns()` in this process);
- simcore: an AWSIoTPythonSDK device publishes to the core's device server (in its own process,
  bench/device_core.py), routed by subscription to a pinned Lambda in a real worker; latency from just before
  `publish()` to the handler's first line (`time.time_ns()` there, sent back to the device by subscription);
- load: 100 devices (AWSIoTPythonSDK each, its own certificate) connected to that core, each publishing
  once a second for 60 s; every message routed by subscription to a sink device. Lost = sent − received at
  the sink; the core process's CPU (utime + stime) and RSS before and after.

Goals (issue 14): device → Lambda p50 ≤ 3× the bare broker hop; 100 devices held with 0 lost and core RSS
growth ≤ 20 MiB.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from AWSIoTPythonSDK.MQTTLib import AWSIoTMQTTClient  # noqa: E402

from bench.scratch import lambda_scratch  # noqa: E402
from simcore.cloud.broker import AmqttBroker, BrokerTLS  # noqa: E402
from simcore.cloud.ca import IssuedCertificate, LocalCA  # noqa: E402
from simcore.deploy.record import group_to_json  # noqa: E402
from simcore.group import Core, Device, Function, Group, Subscription  # noqa: E402

REGION, ACCOUNT = "us-east-1", "123456789012"
TIMER = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:bench-device-timer:live"
LATENCY_SAMPLES = 300
WARMUP = 30
LOAD_DEVICES = int(os.environ.get("BENCH_DEVICES", "100"))
LOAD_SECONDS = float(os.environ.get("BENCH_DEVICE_SECONDS", "60"))
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

TIMER_CODE = '''"""Bench Lambda: stamps when its handler starts and sends the stamp back to the device."""
import json
import time

import greengrasssdk

iot = greengrasssdk.client("iot-data")


def function_handler(event, context):
    handled_ns = time.time_ns()
    iot.publish(topic="bench/timer/out", payload=json.dumps({"seq": event["seq"], "sent_ns": event["sent_ns"],
                                                           "handled_ns": handled_ns}))
'''


def thing_arn(name: str) -> str:
    return f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/{name}"


def client(name: str, cert: IssuedCertificate, ca: Path, port: int) -> AWSIoTMQTTClient:
    """A connected AWSIoTPythonSDK client (client id = `name`)."""
    mqtt = AWSIoTMQTTClient(name)
    mqtt.configureEndpoint("127.0.0.1", port)
    mqtt.configureCredentials(str(ca), str(cert.key_path), str(cert.cert_path))
    mqtt.configureOfflinePublishQueueing(0)
    mqtt.configureConnectDisconnectTimeout(30)
    mqtt.configureMQTTOperationTimeout(10)
    mqtt.disableMetricsCollection()
    if not mqtt.connect(keepAliveIntervalSecond=600):
        raise RuntimeError(f"{name} could not connect")
    return mqtt


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def sequential_latency(send, replies: dict, received: threading.Condition, count: int) -> list[float]:
    """Send `count` messages one at a time; the ms from each send to its reply's stamp."""
    latencies = []
    for seq in range(count):
        sent_ns = time.time_ns()
        send(seq, sent_ns)
        with received:
            if not received.wait_for(lambda seq=seq: seq in replies, 10):
                raise RuntimeError(f"message {seq} got no reply")
            stamp = replies.pop(seq)
        latencies.append((stamp - sent_ns) / 1e6)
    return latencies


def floor_latency(ca: LocalCA, certs: dict[str, IssuedCertificate], work: Path) -> list[float]:
    """The bare hop: publisher → subscriber through amqtt (mutual TLS), stamped at the subscriber's callback."""
    server = ca.issue_server(file_stem="bench-broker")
    broker = AmqttBroker(BrokerTLS(ca.ca_path, server.cert_path, server.key_path), work / "floor-broker")
    broker.start()
    replies: dict[int, int] = {}
    received = threading.Condition()

    def on_message(_client, _userdata, message) -> None:
        stamp = time.time_ns()
        with received:
            replies[json.loads(message.payload)["seq"]] = stamp
            received.notify_all()

    try:
        subscriber = client("floor-sub", certs["floor-sub"], ca.ca_path, broker.port)
        publisher = client("floor-pub", certs["floor-pub"], ca.ca_path, broker.port)
        subscriber.subscribe("bench/floor", 0, on_message)

        def send(seq: int, sent_ns: int) -> None:
            publisher.publish("bench/floor", json.dumps({"seq": seq, "sent_ns": sent_ns}), 0)

        sequential_latency(send, replies, received, WARMUP)
        latencies = sequential_latency(send, replies, received, LATENCY_SAMPLES)
        publisher.disconnect()
        subscriber.disconnect()
        return latencies
    finally:
        broker.stop()


class CoreProcess:
    """bench/device_core.py running; `status()` asks it, `proc()` reads its CPU and RSS."""

    def __init__(self, spec_path: Path):
        self.process = subprocess.Popen([sys.executable, str(REPO_ROOT / "bench" / "device_core.py"), str(spec_path)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT)
        hello = json.loads(self.process.stdout.readline())
        self.pid, self.port, self.group_ca = hello["pid"], hello["device_port"], Path(hello["group_ca"])

    def status(self) -> dict:
        self.process.stdin.write("status\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def proc(self) -> tuple[float, float]:
        """(CPU seconds, RSS MiB) of the core process."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu_s = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        rss_mib = int(Path(f"/proc/{self.pid}/statm").read_text().split()[1]) * PAGE_KB / 1024
        return cpu_s, rss_mib

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.wait(60)


def device_group(names: list[str], certs: dict[str, IssuedCertificate], code_dir: Path) -> Group:
    devices = tuple(Device(id=name, thing_name=name, thing_arn=thing_arn(name),
                           certificate_arn=f"arn:aws:iot:{REGION}:{ACCOUNT}:cert/{certs[name].certificate_id}")
                    for name in names)
    routes = [Subscription("timer-in", thing_arn("timer-dev"), "bench/timer/in", TIMER),
              Subscription("timer-out", TIMER, "bench/timer/out", thing_arn("timer-dev"))]
    routes += [Subscription(f"load-{name}", thing_arn(name), f"bench/load/{name}", thing_arn("sink"))
               for name in names if name.startswith("load-")]
    timer = Function(id="timer", arn=TIMER, name="bench-device-timer", code_dir=code_dir,
                     handler="device_timer.function_handler", runtime="python3.8", pinned=True, timeout_s=10)
    core = Core(id="core", thing_name="bench-core", thing_arn=thing_arn("bench-core"),
                certificate_arn=f"arn:aws:iot:{REGION}:{ACCOUNT}:cert/{'0' * 64}")
    return Group(name="bench-devices", region=REGION, account_id=ACCOUNT, cores=(core,), devices=devices,
                 functions=(timer,), subscriptions=tuple(routes))


def core_latency(core: CoreProcess, certs: dict[str, IssuedCertificate]) -> list[float]:
    replies: dict[int, int] = {}
    received = threading.Condition()

    def on_reply(_client, _userdata, message) -> None:
        document = json.loads(message.payload)
        with received:
            replies[document["seq"]] = document["handled_ns"]
            received.notify_all()

    device = client("timer-dev", certs["timer-dev"], core.group_ca, core.port)
    device.subscribe("bench/timer/out", 0, on_reply)

    def send(seq: int, sent_ns: int) -> None:
        device.publish("bench/timer/in", json.dumps({"seq": seq, "sent_ns": sent_ns}), 0)

    sequential_latency(send, replies, received, WARMUP)  # also waits out the pinned worker's start
    latencies = sequential_latency(send, replies, received, LATENCY_SAMPLES)
    device.disconnect()
    return latencies


def load(core: CoreProcess, certs: dict[str, IssuedCertificate], names: list[str]) -> dict:
    """Every load device publishes once a second for LOAD_SECONDS; the sink counts what arrives."""
    received = [0]
    lock = threading.Lock()

    def on_message(_client, _userdata, _message) -> None:
        with lock:
            received[0] += 1

    sink = client("sink", certs["sink"], core.group_ca, core.port)
    sink.subscribe("bench/load/+", 0, on_message)
    devices = [client(name, certs[name], core.group_ca, core.port) for name in names]
    connected = len(core.status()["devices"]["connected"])
    cpu_before, rss_before = core.proc()
    sent = 0
    started = time.monotonic()
    for second in range(int(LOAD_SECONDS)):
        tick = started + second
        for index, (name, device) in enumerate(zip(names, devices, strict=True)):
            # Spread over the second, as 100 independent devices would be.
            wait = tick + index / len(devices) - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            device.publish(f"bench/load/{name}", json.dumps({"n": second}), 0)
            sent += 1
    elapsed = time.monotonic() - started
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the last messages are on their way
        with lock:
            if received[0] >= sent:
                break
        time.sleep(0.1)
    cpu_after, rss_after = core.proc()
    status = core.status()
    for device in devices:
        device.disconnect()
    sink.disconnect()
    return {"connected": connected, "sent": sent, "received": received[0], "elapsed_s": elapsed,
            "cpu_s": cpu_after - cpu_before, "rss_before": rss_before, "rss_after": rss_after,
            "router": status["router"]}


def run() -> str:
    """Both measurements, as a markdown section."""
    with lambda_scratch("bench-devices-") as work:
        ca = LocalCA(work / "certs")
        load_names = [f"load-{index:03d}" for index in range(LOAD_DEVICES)]
        names = ["timer-dev", "sink", *load_names]
        certs = {name: ca.issue_thing(name, file_stem=name) for name in [*names, "floor-pub", "floor-sub"]}
        floor = floor_latency(ca, certs, work)
        code_dir = work / "timer"
        code_dir.mkdir()
        os.chmod(code_dir, 0o755)
        (code_dir / "device_timer.py").write_text(TIMER_CODE)
        os.chmod(code_dir / "device_timer.py", 0o644)
        group = device_group(names, certs, code_dir)
        spec = work / "spec.json"
        spec.write_text(json.dumps({"root": str(work / "core"), "group": group_to_json(group),
                                    "function_dirs": {TIMER: str(code_dir)}, "device_ca": str(ca.ca_path)}))
        core = CoreProcess(spec)
        try:
            simcore = core_latency(core, certs)
            held = load(core, certs, load_names)
        finally:
            core.stop()
    return section(floor, simcore, held)


def section(floor: list[float], simcore: list[float], held: dict) -> str:
    p50, p99 = statistics.median(simcore), percentile(simcore, 0.99)
    floor50, floor99 = statistics.median(floor), percentile(floor, 0.99)
    lost = held["sent"] - held["received"]
    growth = held["rss_after"] - held["rss_before"]
    ratio = p50 / floor50

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    return "\n".join([
        "## Devices: device → Lambda, and 100 devices on one core (bench/devices.py)",
        "",
        "AWSIoTPythonSDK devices (unmodified) against the core's device server (embedded amqtt, mutual TLS, "
        "admission by DeviceDefinition) in its own process (bench/device_core.py). Floor: AWSIoTPythonSDK "
        "publish → AWSIoTPythonSDK subscriber through a bare amqtt broker with the same mutual TLS. "
        f"{LATENCY_SAMPLES} samples each, one message at a time, after {WARMUP} warm-up; latency is from just "
        "before `publish()` to the subscriber's callback (floor) or the Lambda handler's first line (simcore).",
        "",
        "| measure | simcore | bare broker hop | ratio | goal | |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| device publish → Lambda handler p50 | {p50:.2f} ms | {floor50:.2f} ms | {ratio:.2f}× | ≤ 3× | "
        f"{verdict(ratio <= 3)} |",
        f"| device publish → Lambda handler p99 | {p99:.2f} ms | {floor99:.2f} ms | {p99 / floor99:.2f}× | "
        "(no goal) | |",
        "",
        f"Load: {LOAD_DEVICES} devices connected at once ({held['connected']} connected to the core, the sink "
        f"included), each publishing once a second for {LOAD_SECONDS:g} s "
        f"({held['elapsed_s']:.1f} s measured), every message routed by subscription to a sink device.",
        "",
        "| measure | value | goal | |",
        "| --- | --- | --- | --- |",
        f"| messages sent / received at the sink | {held['sent']} / {held['received']} | | |",
        f"| messages lost | {lost} | 0 | {verdict(lost == 0)} |",
        f"| core RSS before → after | {held['rss_before']:.1f} → {held['rss_after']:.1f} MiB "
        f"({growth:+.1f} MiB) | ≤ 20 MiB growth | {verdict(growth <= 20)} |",
        f"| core CPU during the load | {held['cpu_s']:.1f} s over {held['elapsed_s']:.0f} s "
        f"({100 * held['cpu_s'] / held['elapsed_s']:.0f}% of one CPU) | (no goal) | |",
        "",
        f"Router counters after the load: routed {held['router']['routed']}, dropped (unmatched) "
        f"{held['router']['dropped_unmatched']}, undeliverable {held['router']['undeliverable']}.",
    ])


if __name__ == "__main__":
    print(run())
