"""`kill -9` of a long-running simcore command leaves none of its children running (a parent-death signal).

`simcore cloud start` runs mosquitto; `simcore run` runs Lambda workers, here one whose module-level code never
returns and never calls the core (so it cannot notice the core is gone by itself). Each command is killed with
SIGKILL, which it cannot handle, and the test waits until every child pid it had is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from support.procs import alive, children, command_line, command_name
from support.waiting import wait_until

REPO = Path(__file__).resolve().parents[1]
BUSY_GROUP = REPO / "tests" / "fixtures" / "parent_death" / "group.yaml"


class Command:
    """A simcore command as a child process, its output collected."""

    def __init__(self, *argv: str):
        self.process = subprocess.Popen([sys.executable, "-m", "simcore", *argv], cwd=REPO, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONPATH": str(REPO)})
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.process.stdout), daemon=True)
        self._reader.start()

    def output(self) -> str:
        return "".join(self.lines)

    def kill_9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def close(self, leftovers: set[int]) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for pid in leftovers:  # only when the test failed: leave nothing behind
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_kill_9_of_cloud_start_takes_its_mosquitto_with_it(tmp_path):
    command = Command("cloud", "start", "--state-dir", str(tmp_path / "cloud"), "--port", "0")
    brokers: set[int] = set()
    try:
        wait_until(lambda: "stand-in cloud" in command.output() or command.process.poll() is not None, 60,
                   message=lambda: f"the stand-in to start; its output:\n{command.output()}", interval_s=0.1)
        if "(amqtt)" in command.output():
            pytest.skip("the amqtt fallback runs inside simcore: there is no broker process to outlive it")
        brokers = {pid for pid in children(command.process.pid) if command_name(pid) == "mosquitto"}
        assert brokers, f"no mosquitto child of `simcore cloud start`; its output:\n{command.output()}"
        command.kill_9()
        wait_until(lambda: not [pid for pid in brokers if alive(pid)], 30,
                   message=lambda: f"mosquitto {sorted(brokers)} to end with its parent", interval_s=0.1)
    finally:
        command.close(brokers)


def test_kill_9_of_run_takes_its_workers_with_it(tmp_path):
    root = tmp_path / "core"
    deployed = subprocess.run([sys.executable, "-m", "simcore", "deploy", str(BUSY_GROUP), "--root", str(root)],
                              cwd=REPO, capture_output=True, text=True, timeout=120)
    assert deployed.returncode == 0, deployed.stderr
    # The Lambda needs nothing of 3.8: simcore's own interpreter runs it, whatever python3.8 the machine has.
    command = Command("run", "--root", str(root), "--runtime", f"python3.8={sys.executable}")
    workers: set[int] = set()
    try:
        def busy_workers() -> set[int]:
            return {pid for pid in children(command.process.pid) if "busy.handler" in command_line(pid)}

        wait_until(lambda: busy_workers() or command.process.poll() is not None, 60,
                   message=lambda: f"the core to start its worker; its output:\n{command.output()}", interval_s=0.1)
        workers = busy_workers()
        assert command.process.poll() is None, command.output()
        command.kill_9()
        wait_until(lambda: not [pid for pid in workers if alive(pid)], 30,
                   message=lambda: f"workers {sorted(workers)} to end with the core", interval_s=0.1)
    finally:
        command.close(workers)


def test_sighup_stops_cloud_start_as_sigterm_does(tmp_path):
    """A closed terminal: `simcore cloud start` stops its broker and removes cloud.json, exit code 0."""
    state_dir = tmp_path / "cloud"
    command = Command("cloud", "start", "--state-dir", str(state_dir), "--port", "0")
    brokers: set[int] = set()
    try:
        wait_until(lambda: "stand-in cloud" in command.output() or command.process.poll() is not None, 60,
                   message=lambda: f"the stand-in to start; its output:\n{command.output()}", interval_s=0.1)
        assert (state_dir / "cloud.json").exists()
        brokers = {pid for pid in children(command.process.pid) if command_name(pid) == "mosquitto"}
        command.process.send_signal(signal.SIGHUP)
        assert command.process.wait(30) == 0, command.output()
        assert not (state_dir / "cloud.json").exists(), "a clean stop removes cloud.json"
        assert not [pid for pid in brokers if alive(pid)]
    finally:
        command.close(brokers)


def test_a_sigterm_while_run_is_starting_stops_it_cleanly(tmp_path):
    """The stop handlers are in place before the core starts: a SIGTERM as soon as its first worker exists
    (before `run` has printed that it runs) still gives a clean stop and exit code 0, never death by signal."""
    root = tmp_path / "core"
    deployed = subprocess.run([sys.executable, "-m", "simcore", "deploy", str(BUSY_GROUP), "--root", str(root)],
                              cwd=REPO, capture_output=True, text=True, timeout=120)
    assert deployed.returncode == 0, deployed.stderr
    command = Command("run", "--root", str(root), "--runtime", f"python3.8={sys.executable}")
    workers: set[int] = set()
    try:
        wait_until(lambda: children(command.process.pid) or command.process.poll() is not None, 60,
                   message=lambda: f"the core to start a worker; its output:\n{command.output()}", interval_s=0.01)
        workers = children(command.process.pid)
        command.process.send_signal(signal.SIGTERM)
        assert command.process.wait(60) == 0, command.output()
        assert "core stopped" in command.output()
        assert not [pid for pid in workers if alive(pid)]
    finally:
        command.close(workers)
