"""Start-time benchmark: `simcore run` → IPC listening, and → the first prediction at a cloud subscriber.

    .venv/bin/python bench/start_time.py      # prints a markdown section; bench/run.py collects it

The set-up of bench/group_core.py: the rain group template deployed in replay mode (fresh root each run),
`python -m simcore run` linked to the stand-in cloud, a cloud-side subscriber connected and subscribed
before the core starts. Clock: from just before the `simcore run` process is spawned to (1) the first
successful TCP connect to its IPC port (polled every `POLL_S`), (2) the first prediction's arrival at the
subscriber. `RUNS` runs; medians. The same run also times the parts a start cannot skip: a bare
interpreter start (`python -c pass`) for the core and the workers, the imports of `simcore run`, and the
inference worker's own imports and model load (`rain_inference.model`, NumPy under Python 3.8).

Goal (issue 13): first prediction ≤ 1.5 s after start.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.group_core import (
    MODEL_ARCHIVE,
    REPO_ROOT,
    CoreProcess,
    Predictions,
    deploy_rain_group,
    free_port,
    start_cloud,
    worker_interpreter,
    worker_python_label,
)
from bench.scratch import lambda_scratch

RUNS = 5
POLL_S = 0.002
FIRST_PREDICTION_DEADLINE_S = 60.0
GOAL_S = 1.5
SPEED = 0.000001  # one reading at start: the one being timed


@dataclass
class Measured:
    ipc_listening: list[float]
    first_prediction: list[float]
    bare_311: float
    bare_38: float
    core_imports: float
    model_load: float


def timed(command: list[str], env: dict[str, str] | None = None) -> float:
    """Wall seconds of one run of `command` (which must succeed)."""
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO_ROOT, env=env, check=True, capture_output=True, timeout=120)
    return time.perf_counter() - started


def median_of(runs: int, command: list[str], env: dict[str, str] | None = None) -> float:
    return statistics.median(timed(command, env) for _ in range(runs))


def wait_listening(port: int, core: CoreProcess, deadline_s: float) -> float:
    """Monotonic time of the first accepted connection to `port`."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return time.monotonic()
        core.check_alive()
        time.sleep(POLL_S)
    raise TimeoutError(f"the core's IPC port {port} did not listen within {deadline_s:.0f} s")


def one_start(scratch: Path, cloud, index: int) -> tuple[float, float]:
    root = scratch / f"core-{index}"
    deploy_rain_group(root, SPEED)
    predictions = Predictions(cloud, f"bench-start-{index}")
    core = None
    try:
        port = free_port()
        core = CoreProcess(root, cloud, scratch / f"core-{index}.log", ipc_port=port)
        listening = wait_listening(port, core, FIRST_PREDICTION_DEADLINE_S)
        first = predictions.wait_first(FIRST_PREDICTION_DEADLINE_S)
        core.check_alive()
        if first is None:
            raise TimeoutError(f"no prediction within {FIRST_PREDICTION_DEADLINE_S:.0f} s; the core's log ends:\n"
                               + core.log_path.read_text()[-3000:])
        return listening - core.started, first - core.started
    finally:
        if core is not None:
            core.stop()
        predictions.stop()


def measure(runs: int = RUNS) -> Measured:
    ipc, first = [], []
    with lambda_scratch("simcore-bench-start-") as scratch:
        cloud = start_cloud(scratch / "cloud")
        try:
            for index in range(runs):
                listening, predicted = one_start(scratch, cloud, index)
                ipc.append(listening)
                first.append(predicted)
        finally:
            cloud.stop()
        model_dir = scratch / "model"
        model_dir.mkdir()
        subprocess.run(["tar", "-xzf", str(MODEL_ARCHIVE), "-C", str(model_dir)], check=True)
        inference_code = REPO_ROOT / "lambdas" / "rain_inference"
        model_load = median_of(runs, [worker_interpreter(), "-c",
                                      f"from rain_inference.model import load_model; load_model({str(model_dir)!r})"],
                               {**os.environ, "PYTHONPATH": str(inference_code)})
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return Measured(
        ipc, first,
        bare_311=median_of(runs, [sys.executable, "-c", "pass"]),
        bare_38=median_of(runs, [worker_interpreter(), "-c", "pass"]),
        core_imports=median_of(runs, [sys.executable, "-c", "import simcore.cli.main, simcore.service.running"], env),
        model_load=model_load,
    )


def section(measured: Measured) -> str:
    """The markdown section for one run."""
    ipc_s, first_s = statistics.median(measured.ipc_listening), statistics.median(measured.first_prediction)

    def runs(values: list[float]) -> str:
        return ", ".join(f"{value:.2f}" for value in values)

    met = "met" if first_s <= GOAL_S else "**missed**"
    lines = [
        "## Start time: `simcore run` → IPC listening → first prediction in the cloud (bench/start_time.py)",
        "",
        "Command: `.venv/bin/python bench/run.py start_time` (also run by `make bench`). The rain group template "
        "deployed in replay mode under a fresh root each run, `python -m simcore run` linked to the stand-in "
        f"cloud, the Lambdas on {worker_python_label()}; a cloud subscriber subscribed before the start. Clock "
        "from just before the process is spawned. Median of "
        f"{len(measured.first_prediction)} runs.",
        "",
        "| from `simcore run` to | median | runs (s) | goal | |",
        "| --- | ---: | --- | --- | --- |",
        f"| IPC port listening | {ipc_s:.2f} s | {runs(measured.ipc_listening)} | | |",
        f"| first prediction at the cloud subscriber | {first_s:.2f} s | {runs(measured.first_prediction)} "
        f"| ≤ {GOAL_S} s | {met} |",
        "",
        "Parts a start cannot skip, timed alone in the same run (medians): a bare Python 3.11 start "
        f"{measured.bare_311:.2f} s; importing `simcore run`'s modules (interpreter start included) "
        f"{measured.core_imports:.2f} s; a bare worker interpreter start {measured.bare_38:.2f} s; the inference "
        f"worker's model load (interpreter start, NumPy, `load_model`) {measured.model_load:.2f} s. Between IPC "
        "listening and the first prediction lie: both pinned workers starting (in parallel), the sensor's replay "
        "reader loading weather.csv and its 3 h pre-roll, the cloud link's TLS connection and the first shadow "
        "sync, then the path of bench/cloud_path.py.",
    ]
    return "\n".join(lines) + "\n"


def run() -> str:
    """Measure and return the markdown section."""
    return section(measure())


def main() -> int:
    print(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
