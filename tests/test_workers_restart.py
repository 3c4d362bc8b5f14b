"""Pinned workers: started at core start, restarted after kill -9 with their queue kept, poison set aside."""

from __future__ import annotations

import json
import os
import signal

import pytest
from lambdas_fixtures.harness import function_arn, make_function, make_group
from support.recorders import RecordingCloud
from support.waiting import wait_until

from simcore.core.assemble import Core
from simcore.core.workers import FunctionWorkers, WorkerManager, WorkerSettings
from simcore.group import CLOUD

RELAY = function_arn("relay")


@pytest.fixture
def relay_core(tmp_path):
    group = make_group(
        [make_function("relay", "faults", "faults.relay", pinned=True)],
        [(CLOUD, "relay/in", RELAY), (RELAY, "relay/out", CLOUD), (RELAY, "relay/started", CLOUD)],
    )
    cloud = RecordingCloud()
    running = Core(group, runtime_root=tmp_path / "ggc", cloud=cloud)
    running.start()
    yield running, cloud, tmp_path / "ggc"
    running.stop()


def started_pids(cloud, count):
    return [json.loads(payload)["pid"] for payload in cloud.wait_for("relay/started", count)]


def test_pinned_worker_runs_its_module_code_at_core_start(relay_core):
    core, cloud, _ = relay_core
    [pid] = started_pids(cloud, 1)
    assert core.status()["functions"][RELAY]["workers"][0]["pid"] == pid


def test_killed_pinned_worker_is_restarted_and_queued_messages_are_delivered(relay_core):
    core, cloud, root = relay_core
    [first_pid] = started_pids(cloud, 1)
    os.kill(first_pid, signal.SIGKILL)
    for n in range(5):
        core.publish("relay/in", json.dumps({"n": n}).encode())
    second_pid = started_pids(cloud, 2)[1]
    assert second_pid != first_pid
    relayed = [json.loads(payload) for payload in cloud.wait_for("relay/out", 5)]
    assert [message["event"]["n"] for message in relayed] == [0, 1, 2, 3, 4]
    assert {message["pid"] for message in relayed} == {second_pid}
    status = core.status()["functions"][RELAY]
    assert status["restarts"] == 1
    assert status["crashes"] == 1
    assert "exited with code -9" in (root / "var/log/system/runtime.log").read_text()


def test_a_message_that_keeps_killing_its_worker_is_set_aside_as_poison(relay_core):
    core, cloud, root = relay_core
    started_pids(cloud, 1)
    core.publish("relay/in", json.dumps({"crash": True}).encode())
    core.publish("relay/in", json.dumps({"n": "after"}).encode())
    relayed = json.loads(cloud.wait_for("relay/out", 1)[0])
    assert relayed["event"] == {"n": "after"}
    status = core.status()
    assert status["functions"][RELAY]["poison"] == 1
    assert status["functions"][RELAY]["crashes"] == 3
    [poison] = status["poison_messages"]
    assert (poison["subject"], poison["attempts"]) == ("relay/in", 3)
    assert "Poison message set aside" in (root / "var/log/system/runtime.log").read_text()


def test_lambda_logging_and_stdout_reach_the_function_log_in_the_core_format(relay_core):
    core, cloud, root = relay_core
    started_pids(cloud, 1)
    core.publish("relay/in", json.dumps({"n": 7}).encode())
    cloud.wait_for("relay/out", 1)
    log_file = root / "var/log/user/us-east-1/123456789012/relay.log"
    lines = wait_until(lambda: "plain stdout line" in log_file.read_text() and log_file.read_text().splitlines(),
                       message=f"the worker's stdout line in {log_file}")
    assert any("][INFO]-faults.py:" in line and "relaying {'n': 7}" in line for line in lines)
    assert any(line.endswith("][INFO]-plain stdout line") for line in lines)


def test_backoff_doubles_from_a_tenth_of_a_second_to_a_cap():
    manager = WorkerManager.__new__(WorkerManager)
    manager.settings = WorkerSettings()
    pool = FunctionWorkers(make_function("x", "faults", "faults.relay"), "python")
    delays = []
    for failures in range(1, 10):
        pool.consecutive_failures = failures
        delays.append(manager._backoff(pool))
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
