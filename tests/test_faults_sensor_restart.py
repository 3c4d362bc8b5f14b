"""`kill -9` of the sensor Lambda's worker mid-replay: the restart goes on after the last reading the shadow
holds, with `seq` still increasing (issue 12, item 7).

The group template deployed with a replay, run by a `RunningCore` (no cloud link: the local shadow is the
point); the sensor is the real Lambda with the real greengrasssdk, whose restarted worker reads the shadow
through `get_thing_shadow`. Every accepted local update is recorded by a shadow listener, so the test sees
each reading written, in the order the shadow accepted them.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from conftest import MODEL_ARCHIVE, REPO_ROOT
from support.waiting import wait_until

from simcore.deploy.deployment import deploy
from simcore.service.running import RunningCore, RunOptions
from simcore.shadow.engine import UpdateResult

TEMPLATE = REPO_ROOT / "cloudformation" / "greengrass-group.yaml"
PY38 = REPO_ROOT / ".venv-py38" / "bin" / "python"
THING = "RestartCore"
DEADLINE_S = 120.0
# Two days of hourly records at 4 data hours per wall second: about 12 s of replay, killed after the 5th.
SOURCE, SPEED = "replay:JFK:2013-11-01:2013-11-02", "4"


@dataclass
class ReplayRun:
    running: RunningCore
    readings: list[dict] = field(default_factory=list)  # reported readings in the order the shadow took them
    statuses: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, thing: str, result: UpdateResult) -> None:
        reported = (result.accepted.get("state") or {}).get("reported") or {}
        if thing != THING:
            return
        with self.lock:
            if "ts" in reported:
                self.readings.append(reported)
            if isinstance(reported.get("sensor"), dict):
                self.statuses.append(reported["sensor"].get("status"))

    def seqs(self) -> list[int]:
        with self.lock:
            return [reading["seq"] for reading in self.readings]

    def finished(self) -> bool:
        with self.lock:
            return "replay-finished" in self.statuses

    def sensor(self) -> tuple[str, dict]:
        functions = self.running.core.status()["functions"]
        [(arn, status)] = [(arn, status) for arn, status in functions.items() if "ensor" in status["name"]]
        return arn, status


@pytest.fixture
def replay_run(tmp_path) -> Iterator[ReplayRun]:
    deployment = deploy(TEMPLATE, {"ThingName": THING, "ModelS3Uri": str(MODEL_ARCHIVE), "SensorSource": SOURCE,
                                   "ReplaySpeed": SPEED}, tmp_path / "core")
    interpreters = {"python3.8": str(PY38)} if PY38.exists() else {}
    running = RunningCore(deployment, RunOptions(interpreters=interpreters))
    run = ReplayRun(running)
    running.shadow_service.listeners.append(run.record)
    running.start()
    try:
        yield run
    finally:
        running.stop()


def test_a_killed_sensor_worker_resumes_the_replay_after_the_shadows_last_reading(replay_run: ReplayRun):
    run = replay_run
    wait_until(lambda: len(run.seqs()) >= 5, DEADLINE_S, message=lambda: f"5 readings; {run.sensor()}",
               interval_s=0.05)
    _, status = run.sensor()
    [worker] = status["workers"]
    os.kill(worker["pid"], signal.SIGKILL)
    assert not run.finished(), "the replay ended before the kill: the test did not kill it mid-replay"
    killed_after = len(run.seqs())

    wait_until(run.finished, DEADLINE_S, message=lambda: f"the replay to finish after the restart; {run.sensor()}",
               interval_s=0.2)
    _, status = run.sensor()
    assert status["restarts"] == 1 and status["crashes"] == 1, status
    with run.lock:
        readings = list(run.readings)
    times = [reading["ts"] for reading in readings]
    seqs = [reading["seq"] for reading in readings]
    assert len(readings) > killed_after  # the restarted worker went on writing
    assert len(times) == len(set(times)), "a record was written twice"
    assert times == sorted(times), "the replay went back in time"
    assert seqs == sorted(set(seqs)), "seq must strictly increase across the restart"
    assert seqs == list(range(1, len(seqs) + 1))  # and nothing was skipped
