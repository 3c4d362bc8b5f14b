"""`kill -9` of the core process itself: shadows and the file spool survive it, and nothing spooled is lost.

The core runs as `python -m simcore run` (a real process, FileSystem spooling) with the group template
deployed in replay mode, linked to the stand-in cloud whose broker is STOPPED: every prediction the
inference Lambda publishes waits in the spool. The test kills the core with SIGKILL mid-run, checks the
SQLite files row by row, brings the broker back, restarts the core and waits until every message that
was in the spool reached a cloud subscriber. (tests/test_cloud_link.py kills a bare publisher process the
same way; this one kills the whole core with its workers and shadows.)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import MODEL_ARCHIVE, REPO_ROOT
from support.cloud import FAST_BACKOFF
from support.waiting import wait_until

from simcore.cloud.link import CloudLink
from simcore.cloud.standin import RunningCloud, start_standin
from simcore.deploy.deployment import deploy

TEMPLATE = REPO_ROOT / "cloudformation" / "greengrass-group.yaml"
PY38 = REPO_ROOT / ".venv-py38" / "bin" / "python"
THING = "FaultCore"
DEADLINE_S = 120.0


def _rows(database: Path, query: str) -> list[tuple]:
    """Rows read through a separate read-only connection (as another process would see the file)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        return connection.execute(query).fetchall()
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return []  # the core has created the file but not yet its table
        raise
    finally:
        connection.close()


def spooled(root: Path) -> list[tuple[int, str, bytes]]:
    database = root / "var" / "spool.sqlite"
    if not database.exists():
        return []
    return [(seq, topic, bytes(payload))
            for seq, topic, payload in _rows(database, "SELECT seq, topic, payload FROM spool ORDER BY seq")]


def shadow_row(root: Path) -> tuple[int, dict] | None:
    database = root / "var" / "shadows.sqlite"
    if not database.exists():
        return None
    rows = _rows(database, f"SELECT version, state FROM shadows WHERE thing = '{THING}'")
    return (rows[0][0], json.loads(rows[0][1])) if rows else None


def worker_pids(root: Path) -> list[int]:
    """Processes working in a directory under `root`: the core's Lambda workers (their cwd is their code)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cwd = os.readlink(entry / "cwd")
            except OSError:
                continue
            if cwd.startswith(f"{root}/"):
                found.append(int(entry.name))
    return found


class CoreProcess:
    """`python -m simcore run` as a child process, with its log in a file."""

    def __init__(self, root: Path, cloud: RunningCloud, log_path: Path):
        command = [sys.executable, "-m", "simcore", "run", "--root", str(root), "--config", str(cloud.config_path),
                   "--certs-dir", str(cloud.certs_dir), "--spool", "FileSystem"]
        if PY38.exists():
            command += ["--runtime", f"python3.8={PY38}"]
        self.log = log_path.open("w")
        self.process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, start_new_session=True)

    def kill_core_only(self) -> None:
        """SIGKILL to the core process alone, as a crash or the OOM killer would do."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self, root: Path) -> None:
        """SIGTERM (a clean stop) if still running; then no worker of this core may be left running."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in worker_pids(root):  # only if a test failed before its workers were seen to exit
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.log.close()


class Subscriber:
    """A cloud-side client recording (topic, payload) on `rain/<thing>/#`."""

    def __init__(self, cloud: RunningCloud):
        self.received: set[tuple[str, bytes]] = set()
        self._lock = threading.Lock()
        self.link = CloudLink(cloud.client_settings(f"{THING}-fault-subscriber", **FAST_BACKOFF))
        self.link.subscribe(f"rain/{THING}/#", self._record)
        self.link.start()
        probe = (f"rain/{THING}/probe", b"probe")
        wait_until(lambda: self.link.send_now(*probe, 1.0) and probe in self.snapshot(), 30,
                   message="the subscriber to hear its own probe", interval_s=0.2)

    def _record(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self.received.add((topic, payload))

    def snapshot(self) -> set[tuple[str, bytes]]:
        with self._lock:
            return set(self.received)


@pytest.fixture
def stopped_cloud(tmp_path) -> Iterator[RunningCloud]:
    cloud = start_standin(tmp_path / "cloud", 0, THING)
    cloud.broker.stop()  # the outage: the core starts with nowhere to send
    yield cloud
    cloud.stop()


def test_kill_9_of_the_core_keeps_shadows_and_spool_and_a_restart_delivers_every_spooled_message(
        stopped_cloud, tmp_path):
    cloud = stopped_cloud
    root = tmp_path / "core"
    deploy(TEMPLATE, {"ThingName": THING, "ModelS3Uri": str(MODEL_ARCHIVE),
                      "SensorSource": "replay:LGA:2013-06-01:2013-06-07", "ReplaySpeed": "12",
                      "MetricsIntervalSeconds": "1"}, root)
    first = CoreProcess(root, cloud, tmp_path / "first-run.log")
    try:
        # Predictions and metrics pile up in the spool; readings pile up in the local shadow.
        wait_until(lambda: len(spooled(root)) >= 20 and (shadow_row(root) or (0,))[0] >= 20, DEADLINE_S,
                   message=lambda: "20 spooled messages and shadow version 20; the core's log ends:\n"
                                   + (tmp_path / "first-run.log").read_text()[-3000:], interval_s=0.2)
        before_spool = spooled(root)
        before_version, before_state = shadow_row(root)
        assert worker_pids(root), "the Lambdas' workers are not running"
        first.kill_core_only()
        # The orphaned workers notice at their next IPC call (a long poll that fails at once) and exit.
        wait_until(lambda: not worker_pids(root), 30,
                   message=lambda: f"the orphaned workers to exit (still running: {worker_pids(root)})", interval_s=0.2)
    finally:
        first.stop(root)

    # Intact: the files are consistent, and everything seen before the kill is still there.
    for database in ("spool.sqlite", "shadows.sqlite"):
        assert _rows(root / "var" / database, "PRAGMA integrity_check") == [("ok",)]
    after_spool = spooled(root)
    assert set(before_spool) <= set(after_spool)  # nothing left the spool: the broker never acknowledged
    assert {topic for _, topic, _ in after_spool} >= {f"rain/{THING}/inference/output"}
    after_version, after_state = shadow_row(root)
    assert after_version >= before_version
    assert after_state["reported"]["seq"] >= before_state["reported"]["seq"]

    # The broker comes back; a subscriber listens; the core restarts from the same root.
    cloud.broker.start()
    subscriber = Subscriber(cloud)
    second = CoreProcess(root, cloud, tmp_path / "second-run.log")
    try:
        expected = {(topic, payload) for _, topic, payload in after_spool}
        wait_until(lambda: expected <= subscriber.snapshot(), DEADLINE_S, message=lambda: (
            f"every spooled message at the subscriber ({len(expected - subscriber.snapshot())} of {len(expected)} "
            "never arrived); the core's log ends:\n" + (tmp_path / "second-run.log").read_text()[-3000:]),
            interval_s=0.5)
        # The restarted core continues the same shadow: its versions go on from where the kill left them.
        wait_until(lambda: shadow_row(root)[0] > after_version, DEADLINE_S,
                   message=f"the restarted core's shadow to go past version {after_version}", interval_s=0.2)
    finally:
        second.stop(root)
        subscriber.link.stop()
    assert second.process.returncode == 0  # SIGTERM: a clean stop
