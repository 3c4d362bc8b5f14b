"""An out-of-range desired value from the cloud, with the real group running (issue 12, item 5).

The group template deployed with a short replay, run by a `RunningCore` linked to the stand-in cloud; the
sensor Lambda is the real one (Python 3.8 when the machine has it, the real greengrasssdk). Once the
replay is over nothing writes the shadow on its own, so every local version after that point comes from the
bad desired value: the test counts them. Before the fix the sensor answered every delta and the shadow
service published a delta for each unchanged answer (hundreds of versions a second), and shadow sync, its
local write always a version late, never brought the cloud's later `desired: null` down.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from conftest import MODEL_ARCHIVE, REPO_ROOT
from support.waiting import wait_until

from simcore.cloud.standin import RunningCloud, cloud_shadow_get, cloud_shadow_update, start_standin
from simcore.deploy.deployment import deploy
from simcore.errors import ShadowError
from simcore.service.running import RunningCore, RunOptions
from simcore.shadow.engine import UpdateResult

TEMPLATE = REPO_ROOT / "cloudformation" / "greengrass-group.yaml"
PY38 = REPO_ROOT / ".venv-py38" / "bin" / "python"
THING = "LoopCore"
DEADLINE_S = 90.0
# After the bad value: the sync writes it down (1), the sensor answers it (1), the inference Lambda may
# answer that document, the sync brings `desired: null` down (1). A loop makes hundreds.
MAX_VERSIONS_FOR_ONE_BAD_VALUE = 8


@dataclass
class LoopRun:
    running: RunningCore
    cloud: RunningCloud
    updates: list[dict] = field(default_factory=list)  # every accepted local update/accepted document
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, thing: str, result: UpdateResult) -> None:
        if thing == THING and result.operation == "update":
            with self.lock:
                self.updates.append(result.accepted)

    def versions(self) -> int:
        with self.lock:
            return len(self.updates)

    def sensor_answers(self) -> list[dict]:
        """The sensor's updates that answer a refused desired interval."""
        with self.lock:
            return [update for update in self.updates
                    if str(update.get("clientToken", "")).startswith("sensor-")
                    and "desired state rejected" in str((update["state"].get("reported") or {}).get("sensor"))]

    def local_state(self) -> dict:
        try:
            return self.running.shadow_engine.get(THING)["state"]
        except ShadowError as error:
            assert error.http_status == 404, error
            return {}


@pytest.fixture
def loop_run(tmp_path) -> Iterator[LoopRun]:
    deployment = deploy(TEMPLATE, {
        "ThingName": THING, "ModelS3Uri": str(MODEL_ARCHIVE), "SensorSource": "replay:JFK:2013-11-01:2013-11-01",
        "ReplaySpeed": "48", "ReadIntervalSeconds": "60"}, tmp_path / "core")
    cloud = start_standin(tmp_path / "cloud", 0, THING)
    running = None
    try:
        interpreters = {"python3.8": str(PY38)} if PY38.exists() else {}
        running = RunningCore(deployment, RunOptions(
            interpreters=interpreters, cloud_config=cloud.config_path, certs_dir=cloud.certs_dir,
            shadow_sync_timeout_s=2.0))
        run = LoopRun(running, cloud)
        running.shadow_service.listeners.append(run.record)
        running.start()
        yield run
    finally:
        if running is not None:
            running.stop()
        cloud.stop()


def _cloud_update(run: LoopRun, state: dict) -> None:
    cloud_shadow_update(run.cloud.config_path, THING, {"state": state}, certs_dir=run.cloud.certs_dir)


def test_an_out_of_range_desired_value_is_answered_once_and_a_later_desired_null_lands(loop_run: LoopRun):
    run = loop_run
    wait_until(lambda: (run.local_state().get("reported") or {}).get("sensor", {}).get("status")
               == "replay-finished", DEADLINE_S, message=lambda: f"the replay to finish: {run.local_state()}",
               interval_s=0.2)
    wait_until(lambda: run.running.sync.wait_idle(1.0), DEADLINE_S, message="shadow sync to settle")
    before = run.versions()

    _cloud_update(run, {"desired": {"read_interval_s": 0.001}})
    wait_until(lambda: run.sensor_answers(), DEADLINE_S,
               message=lambda: f"the sensor's answer to the bad value: {run.local_state()}", interval_s=0.1)

    _cloud_update(run, {"desired": None})
    wait_until(lambda: "desired" not in run.local_state(), DEADLINE_S, message=lambda: (
        f"the cloud's desired: null in the local shadow; sync {run.running.sync.stats}, "
        f"{run.versions() - before} local versions since the bad value"), interval_s=0.2)
    wait_until(lambda: run.running.sync.wait_idle(1.0), DEADLINE_S, message="shadow sync to settle")

    assert run.versions() - before <= MAX_VERSIONS_FOR_ONE_BAD_VALUE, run.updates[before:before + 10]
    [answer] = run.sensor_answers()
    reported = answer["state"]["reported"]
    assert reported["read_interval_s"] == 60.0  # what it kept
    assert "read_interval_s must be between 1.0 and 86400.0" in reported["read_interval_error"]  # and why
    cloud_state = cloud_shadow_get(run.cloud.config_path, THING, certs_dir=run.cloud.certs_dir)["state"]
    assert "desired" not in cloud_state
    assert cloud_state["reported"]["read_interval_error"] == reported["read_interval_error"]
