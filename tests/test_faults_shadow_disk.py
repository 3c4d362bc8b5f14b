"""The shadow database's disk is really full (issue 12, item 8), and its WAL stays small.

A tmpfs of a few hundred KB holds the shadow database (root only; skipped with the reason otherwise).
Each refused update is answered 500 `Internal service failure` (AWS's code for a service that cannot
serve), counted in the service's `storage_failures` (shown by `simcore status`), and leaves the document
as it was; once space is freed the same service stores again. With the real group running, the sensor
Lambda keeps the readings it could not write and writes them, oldest first, once the disk has room.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import MODEL_ARCHIVE, REPO_ROOT
from support.disk import fill, mounted_tmpfs
from support.waiting import wait_until

from simcore.defaults import WAL_SIZE_LIMIT_BYTES
from simcore.deploy.deployment import deploy
from simcore.service.running import RunningCore, RunOptions
from simcore.shadow.engine import UpdateResult
from simcore.shadow.service import open_shadow_service

THING = "DiskCore"
UPDATE = f"$aws/things/{THING}/shadow/update"
TEMPLATE = REPO_ROOT / "cloudformation" / "greengrass-group.yaml"
PY38 = REPO_ROOT / ".venv-py38" / "bin" / "python"
DEADLINE_S = 120.0


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 256 KB tmpfs: room for the database, its shared-memory file and a WAL."""
    yield from mounted_tmpfs(tmp_path / "disk", "256k")


def _update(service, seq: int) -> dict:
    body = {"state": {"reported": {"seq": seq, "padding": "p" * 3000}}, "clientToken": f"t{seq}"}
    outcome = service.handle(UPDATE, json.dumps(body).encode())
    return json.loads(outcome.response), [topic for topic, _ in outcome.publications]


def test_a_full_disk_refuses_updates_with_500_counts_them_and_the_same_service_stores_once_freed(small_disk):
    service = open_shadow_service(small_disk / "shadows.sqlite")
    try:
        answer, _ = _update(service, 1)
        assert answer["version"] == 1
        filler = fill(small_disk)
        answers = [_update(service, seq) for seq in range(2, 60)]
        refused = [(answer, topics) for answer, topics in answers if "code" in answer]
        assert refused, "a full disk stored every update"
        for answer, topics in refused:
            assert (answer["code"], answer["message"]) == (500, "Internal service failure")
            assert answer["clientToken"].startswith("t")
            assert topics == [f"{UPDATE}/rejected"]  # published as AWS does, so the sender hears it
        counters = service.counters()
        assert counters["storage_failures"] == len(refused)
        assert "database or disk is full" in counters["last_storage_error"]
        stored = service.engine.get(THING)
        last_accepted = max(answer["state"]["reported"]["seq"] for answer, _ in answers if "code" not in answer) \
            if len(refused) < len(answers) else 1
        assert stored["state"]["reported"]["seq"] == last_accepted  # a refused update changed nothing

        filler.unlink()  # space is freed; nothing restarts
        answer, _ = _update(service, 100)
        assert "code" not in answer, answer
        assert answer["version"] == stored["version"] + 1
        assert service.engine.get(THING)["state"]["reported"]["seq"] == 100
    finally:
        service.engine.close()


def test_the_wal_stays_under_its_bound_after_many_updates(tmp_path):
    service = open_shadow_service(tmp_path / "shadows.sqlite")
    wal = tmp_path / "shadows.sqlite-wal"
    try:
        largest = 0
        for seq in range(1500):  # ~1,500 WAL frames: SQLite's default checkpoint left a 4 MB WAL behind
            answer, _ = _update(service, seq)
            assert "code" not in answer, answer
            largest = max(largest, wal.stat().st_size)
    finally:
        service.engine.close()
    # The bound: the truncation size plus what one checkpoint interval and one update add to it.
    assert largest <= WAL_SIZE_LIMIT_BYTES + 64 * 1024, f"the WAL grew to {largest} bytes"


# --- the real group on a full disk ------------------------------------------------------------------

@dataclass
class DiskRun:
    running: RunningCore
    readings: list[dict] = field(default_factory=list)  # every reading the shadow accepted, in order
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, thing: str, result: UpdateResult) -> None:
        reported = (result.accepted.get("state") or {}).get("reported") or {}
        if thing == THING and "seq" in reported and "ts" in reported:
            with self.lock:
                self.readings.append(reported)

    def taken(self) -> list[dict]:
        with self.lock:
            return list(self.readings)

    def reported(self) -> dict:
        return self.running.shadow_engine.get(THING)["state"].get("reported", {})


@pytest.fixture
def disk_run(tmp_path) -> Iterator[DiskRun]:
    disk_mount = mounted_tmpfs(tmp_path / "disk", "1m")
    disk = next(disk_mount)
    deployment = deploy(TEMPLATE, {"ThingName": THING, "ModelS3Uri": str(MODEL_ARCHIVE),
                                   "SensorSource": "replay:JFK:2013-11-01:2013-11-02", "ReplaySpeed": "2"},
                        tmp_path / "core")
    # Only the shadow database lives on the small disk (SQLite puts its WAL beside the link's target).
    (deployment.root / "var").mkdir(parents=True, exist_ok=True)
    (deployment.root / "var" / "shadows.sqlite").symlink_to(disk / "shadows.sqlite")
    interpreters = {"python3.8": str(PY38)} if PY38.exists() else {}
    running = RunningCore(deployment, RunOptions(interpreters=interpreters))
    run = DiskRun(running)
    running.shadow_service.listeners.append(run.record)
    running.start()
    try:
        yield run
    finally:
        running.stop()
        running.shadow_engine.close()
        next(disk_mount, None)  # unmount


def test_readings_the_full_disk_refused_are_kept_by_the_sensor_and_written_in_order_once_freed(disk_run):
    run = disk_run
    disk = run.running.deployment.root.parent / "disk"
    wait_until(lambda: len(run.taken()) >= 3, DEADLINE_S, message="3 readings in the shadow", interval_s=0.05)
    filler = fill(disk)
    wait_until(lambda: run.running.status()["shadow"]["storage_failures"] >= 6, DEADLINE_S,
               message=lambda: f"updates refused by the full disk: {run.running.status()['shadow']}", interval_s=0.1)
    during = len(run.taken())
    filler.unlink()

    wait_until(lambda: run.reported().get("sensor", {}).get("status") == "replay-finished", DEADLINE_S,
               message=lambda: f"the replay to finish: {run.reported().get('sensor')}", interval_s=0.2)
    readings = run.taken()
    seqs = [reading["seq"] for reading in readings]
    times = [reading["ts"] for reading in readings]
    assert len(readings) > during
    assert seqs == list(range(1, len(seqs) + 1)), "a reading was lost (a gap in seq) or repeated"
    assert times == sorted(set(times))
    # Some were kept while the disk was full: written later with others still waiting behind them.
    assert max(reading["sensor"]["unwritten_readings"] for reading in readings) >= 1
    assert run.reported()["sensor"]["shadow_errors"] >= 1
    assert run.reported()["sensor"]["readings_dropped"] == 0
    assert run.running.status()["shadow"]["storage_failures"] >= 6
