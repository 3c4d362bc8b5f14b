"""IPC benchmark: publish → subscriber-handler latency and routed messages/s, against a bare urllib POST.

One run measures, on the same machine and in the same process:
- the floor: a bare `urllib.request` POST to a loopback no-op `ThreadingHTTPServer` (what a Lambda's
  publish costs at the least: one HTTP request on loopback), its latency and sequential POSTs/s;
- simcore: greengrasssdk's real `publish()` from this process (a registered function token, MY_FUNCTION_ARN
  set) through simcore's IPC server and router to a pinned subscriber Lambda running in a real worker
  process; latency is from just before `publish()` to the handler's first line (both read CLOCK_MONOTONIC),
  one message at a time; throughput is `N` back-to-back publishes until the handler has seen all `N`.

Goals (issue 4): p50 ≤ 3× the bare POST, p99 ≤ 10×, routed messages/s ≥ 0.5× bare POSTs/s.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.scratch import lambda_scratch  # noqa: E402
from simcore.core.assemble import Core  # noqa: E402
from simcore.group import CLOUD, Function, Group, Subscription  # noqa: E402
from simcore.group import Core as CoreThing  # noqa: E402

LATENCY_SAMPLES = 600
THROUGHPUT_MESSAGES = 1000
ROUNDS = 3
WARMUP = 50
PUBLISHER = "arn:aws:lambda:us-east-1:123456789012:function:bench-publisher:live"
SUBSCRIBER = "arn:aws:lambda:us-east-1:123456789012:function:bench-subscriber:live"

SUBSCRIBER_CODE = '''"""Bench subscriber: stamps each message's arrival; reports back through the core."""
import json
import time

import greengrasssdk

iot = greengrasssdk.client("iot-data")
seen = {}


def function_handler(event, context):
    received = time.monotonic()
    if event.get("mode") == "latency":
        iot.publish(topic="bench/echo", payload=json.dumps({"seq": event["seq"], "received": received}))
        return None
    run = event["run"]
    seen[run] = seen.get(run, 0) + 1
    if seen[run] == event["total"]:
        iot.publish(topic="bench/done", payload=json.dumps({"run": run, "received": received}))
    return None
'''


class _NoOp(BaseHTTPRequestHandler):
    """The floor's server: reads the body, answers 202 with an invocation id, nothing else."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(202)
        self.send_header("X-Amz-InvocationId", "0")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def percentile(samples: list[float], fraction: float) -> float:
    """The `fraction` quantile (nearest rank) of `samples`."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def measure_floor(samples: int, messages: int) -> tuple[list[float], float]:
    """Latencies (s) of sequential bare urllib POSTs and their rate (POSTs/s)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoOp)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/2016-11-01/functions/{SUBSCRIBER}"
    body = json.dumps({"mode": "latency", "seq": 0, "pad": "x" * 64}).encode()

    def post() -> None:
        request = urllib.request.Request(url, data=body, method="POST")
        request.add_header("X-Amz-Client-Context", "e30=")
        with urllib.request.urlopen(request) as response:
            response.read()

    try:
        for _ in range(WARMUP):
            post()
        latencies = []
        for _ in range(samples):
            started = time.monotonic()
            post()
            latencies.append(time.monotonic() - started)
        started = time.monotonic()
        for _ in range(messages):
            post()
        rate = messages / (time.monotonic() - started)
    finally:
        server.shutdown()
        server.server_close()
    return latencies, rate


class _Echoes:
    """The bench's cloud port: collects the subscriber's echoes."""

    def __init__(self) -> None:
        self.echoes: dict[int, float] = {}
        self.done: dict[str, float] = {}
        self.changed = threading.Condition()

    def publish(self, topic: str, payload: bytes) -> None:
        message = json.loads(payload)
        with self.changed:
            if topic == "bench/echo":
                self.echoes[message["seq"]] = message["received"]
            else:
                self.done[message["run"]] = message["received"]
            self.changed.notify_all()

    def wait(self, predicate, timeout: float = 30.0) -> None:
        with self.changed:
            if not self.changed.wait_for(predicate, timeout):
                raise TimeoutError("the subscriber did not answer in time")


def bench_group(code_dir: Path) -> Group:
    """A publisher (this process) and a pinned subscriber, with the routes the bench uses."""
    thing = CoreThing("core", "bench-core", "arn:aws:iot:us-east-1:123456789012:thing/bench-core", "cert")
    functions = (
        Function("pub", PUBLISHER, "bench-publisher", code_dir, "subscriber.function_handler", "python3.8"),
        Function(
            "sub",
            SUBSCRIBER,
            "bench-subscriber",
            code_dir,
            "subscriber.function_handler",
            "python3.8",
            pinned=True,
            timeout_s=30,
        ),
    )
    subscriptions = (
        Subscription("in", PUBLISHER, "bench/in", SUBSCRIBER),
        Subscription("echo", SUBSCRIBER, "bench/echo", CLOUD),
        Subscription("done", SUBSCRIBER, "bench/done", CLOUD),
    )
    return Group("bench", "us-east-1", "123456789012", cores=(thing,), functions=functions, subscriptions=subscriptions)


class _SimcoreBench:
    """A running core with the pinned subscriber, and greengrasssdk's client speaking as the publisher."""

    def __init__(self, scratch: Path):
        code_dir = scratch / "code"
        code_dir.mkdir()
        (code_dir / "subscriber.py").write_text(SUBSCRIBER_CODE)
        self.echoes = _Echoes()
        self.core = Core(bench_group(code_dir), runtime_root=scratch / "ggc", cloud=self.echoes)
        self.core.start()
        self.iot = _sdk_client(self.core)
        self.pad = "x" * 64
        self.runs = 0
        # Warm-up doubles as the wait for the pinned worker to be up.
        self.latencies(WARMUP, first_seq=-WARMUP)

    def latencies(self, samples: int, first_seq: int = 0) -> list[float]:
        """Publish → handler latencies (s), one message at a time."""
        measured = []
        for seq in range(first_seq, first_seq + samples):
            payload = json.dumps({"mode": "latency", "seq": seq, "pad": self.pad})
            sent = time.monotonic()
            self.iot.publish(topic="bench/in", payload=payload)
            self.echoes.wait(lambda seq=seq: seq in self.echoes.echoes)
            measured.append(self.echoes.echoes[seq] - sent)
        return measured

    def throughput(self, messages: int) -> tuple[float, float]:
        """(routed/s: publishes accepted and queued for the subscriber; handled/s: until its handler saw all)."""
        self.runs += 1
        run = f"r{self.runs}"
        payload = json.dumps({"run": run, "total": messages, "pad": self.pad})
        started = time.monotonic()
        for _ in range(messages):
            self.iot.publish(topic="bench/in", payload=payload)
        routed_at = time.monotonic()
        self.echoes.wait(lambda: run in self.echoes.done, timeout=120)
        return messages / (routed_at - started), messages / (self.echoes.done[run] - started)

    def stop(self) -> dict:
        counters = self.core.router.counters()
        self.core.stop()
        return counters


def _sdk_client(core: Core):
    """greengrasssdk's real iot-data client in this process, speaking as the publisher function."""
    os.environ["MY_FUNCTION_ARN"] = PUBLISHER
    os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = core.issue_token(PUBLISHER)
    os.environ["GG_DAEMON_PORT"] = str(core.ipc_port)
    runtime_dir = str(REPO_ROOT / "simcore" / "lambda_side")
    if runtime_dir not in sys.path:
        sys.path.append(runtime_dir)
    import greengrasssdk

    return greengrasssdk.client("iot-data")


def run() -> str:
    """Measure and return the markdown section.

    The machine may be shared: floor and simcore are measured in alternating rounds and each figure is the
    median over rounds, so both see the same background load.
    """
    floor_latencies: list[float] = []
    latencies: list[float] = []
    floor_rates, routed_rates, handled_rates = [], [], []
    per_round = LATENCY_SAMPLES // ROUNDS
    with lambda_scratch("simcore-bench-") as scratch:
        simcore = _SimcoreBench(scratch)
        try:
            for _ in range(ROUNDS):
                round_latencies, floor_rate = measure_floor(per_round, THROUGHPUT_MESSAGES)
                floor_latencies += round_latencies
                floor_rates.append(floor_rate)
                latencies += simcore.latencies(per_round, first_seq=len(latencies))
                routed, handled = simcore.throughput(THROUGHPUT_MESSAGES)
                routed_rates.append(routed)
                handled_rates.append(handled)
        finally:
            counters = simcore.stop()
    floor_p50, floor_p99 = statistics.median(floor_latencies), percentile(floor_latencies, 0.99)
    p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)
    floor_rate = statistics.median(floor_rates)
    routed_rate, handled_rate = statistics.median(routed_rates), statistics.median(handled_rates)

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    rows = [
        (
            "publish → handler p50",
            f"{p50 * 1e3:.3f} ms",
            f"{floor_p50 * 1e3:.3f} ms",
            p50 / floor_p50,
            "≤ 3×",
            verdict(p50 <= 3 * floor_p50),
        ),
        (
            "publish → handler p99",
            f"{p99 * 1e3:.3f} ms",
            f"{floor_p99 * 1e3:.3f} ms",
            p99 / floor_p99,
            "≤ 10×",
            verdict(p99 <= 10 * floor_p99),
        ),
        (
            "routed messages/s, one publisher",
            f"{routed_rate:,.0f}/s",
            f"{floor_rate:,.0f} POSTs/s",
            routed_rate / floor_rate,
            "≥ 0.5×",
            verdict(routed_rate >= 0.5 * floor_rate),
        ),
        (
            "…of which the subscriber's handler ran, per s",
            f"{handled_rate:,.0f}/s",
            f"{floor_rate:,.0f} POSTs/s",
            handled_rate / floor_rate,
            "(no goal)",
            "",
        ),
    ]
    lines = [
        "## IPC: publish → subscriber handler (bench/ipc.py)",
        "",
        "greengrasssdk `publish()` in the bench process → simcore IPC → router → a pinned subscriber Lambda in "
        "a real worker process. Floor: a bare urllib POST to a loopback no-op HTTP server. "
        f"{ROUNDS} alternating rounds of floor and simcore; {LATENCY_SAMPLES} latency samples in all, one message "
        f"at a time, after {WARMUP} warm-up; {THROUGHPUT_MESSAGES} back-to-back publishes per round for "
        "throughput. Routed/s is timed until the last publish returned (each message is then queued for the "
        "subscriber); handled/s until the subscriber's handler has seen the last one (its worker takes each item "
        "and posts its result: two more IPC calls per message). Medians over rounds.",
        "",
        "| measure | simcore | bare POST | ratio | goal | |",
        "| --- | --- | --- | --- | --- | --- |",
        *(
            f"| {name} | {ours} | {floor} | {ratio:.2f}× | {goal} | {ok} |"
            for name, ours, floor, ratio, goal, ok in rows
        ),
        "",
        f"Router counters after the run: routed {counters['routed']}, dropped (queue full) "
        f"{counters['dropped_queue_full']}, dropped (unmatched) {counters['dropped_unmatched']}.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run())
