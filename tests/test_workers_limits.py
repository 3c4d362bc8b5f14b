"""Worker limits on real Lambda processes: MemorySize (the real core's kill message) and Timeout."""

from __future__ import annotations

import json
import os

import pytest
from lambdas_fixtures.harness import IPCClient, IPCException, function_arn, make_function, make_group
from support.waiting import wait_until

from simcore.core.assemble import Core

HOG = function_arn("hog")
SLEEPER = function_arn("sleeper")
GATE = function_arn("gate")
TESTER = function_arn("tester")


@pytest.fixture
def core(tmp_path):
    group = make_group(
        [
            make_function("hog", "faults", "faults.hog", memory_kb=96 * 1024, timeout_s=60),
            make_function("sleeper", "faults", "faults.sleeper", timeout_s=1),
            make_function("tester", "faults", "faults.sleeper"),
        ]
    )
    running = Core(group, runtime_root=tmp_path / "ggc")
    running.start()
    yield running
    running.stop()


def invoke(core, arn, event):
    client = IPCClient(port=core.ipc_port)
    client.auth_token = core.issue_token(TESTER)
    return client.get_work_result(arn, client.post_work(arn, json.dumps(event).encode(), b"", "RequestResponse"))


def warm_up(core, arn):
    """An idle warm worker of on-demand `arn`, so that a call's Timeout covers the call and not a cold start.

    A call's Timeout runs from its post until a worker takes it: a cold start (a new interpreter importing the
    handler) can use up a 1 s Timeout on a loaded machine. The first call may then fail "not started"; the
    worker it started stays warm, and a later call is answered by it.
    """
    wait_until(lambda: invoke(core, arn, {"seconds": 0}).func_err == "", 60, message=f"a warm worker of {arn}")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): it is dead for our purposes once its state is Z.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_worker_over_its_memory_size_is_killed_with_the_cores_message(core, tmp_path):
    result = invoke(core, HOG, {"mb": 300})
    assert result.func_err == "Unhandled"
    message = json.loads(result.payload)["errorMessage"]
    assert message.startswith("Worker consumed all allocated memory!")
    assert "Memory Limit (KB): 98304" in message
    assert "ungracefully killed" in message
    status = core.status()["functions"][HOG]
    assert status["memory_kills"] == 1
    system_log = (tmp_path / "ggc/var/log/system/runtime.log").read_text()
    function_log = (tmp_path / "ggc/var/log/user/us-east-1/123456789012/hog.log").read_text()
    assert "[ERROR]-" in system_log and "Worker consumed all allocated memory!" in system_log
    assert "Worker consumed all allocated memory!" in function_log
    # The item failed; it is not retried on a new worker.
    assert core.status()["functions"][HOG]["queued"] == 0


def test_on_demand_work_over_its_timeout_is_killed_and_fails_unhandled(core):
    warm_up(core, SLEEPER)
    result = invoke(core, SLEEPER, {"seconds": 120})
    assert result.func_err == "Unhandled"
    assert json.loads(result.payload) == {"errorMessage": "Task timed out after 1 seconds"}
    wait_until(lambda: core.status()["functions"][SLEEPER]["timeouts"] == 1, message="the timeout to be counted")
    wait_until(lambda: not core.status()["functions"][SLEEPER]["workers"], message="the timed-out worker to be gone")


def test_work_within_the_timeout_answers_and_the_worker_stays_warm(core):
    warm_up(core, SLEEPER)
    first = invoke(core, SLEEPER, {"seconds": 0})
    workers = core.status()["functions"][SLEEPER]["workers"]
    second = invoke(core, SLEEPER, {"seconds": 0})
    assert (first.func_err, json.loads(first.payload)) == ("", {"slept": 0})
    assert second.func_err == ""
    assert [w["pid"] for w in core.status()["functions"][SLEEPER]["workers"]] == [workers[0]["pid"]]
    assert core.status()["functions"][SLEEPER]["starts"] == 1


def test_stop_ends_every_worker_process(tmp_path):
    group = make_group([make_function("sleeper", "faults", "faults.sleeper", pinned=True)])
    running = Core(group, runtime_root=tmp_path / "ggc")
    running.start()
    pid = wait_until(lambda: [w["pid"] for w in running.status()["functions"][function_arn("sleeper")]["workers"]],
                     message="the pinned worker's pid")[0]
    running.stop()
    assert not pid_alive(pid)


def test_a_token_of_no_worker_process_cannot_take_work(core):
    client = IPCClient(port=core.ipc_port)
    client.auth_token = core.issue_token(SLEEPER)
    with pytest.raises(IPCException, match="403"):
        client.get_work(SLEEPER)


def test_on_demand_workers_are_capped_and_reused(tmp_path):
    """Six calls at once, a cap of two: two workers take a call each and hold it while four wait (the core
    starts no third), and once released the two serve all six."""
    from concurrent.futures import ThreadPoolExecutor

    from simcore.core.workers import WorkerSettings

    group = make_group(
        [
            make_function("gate", "faults", "faults.gate", timeout_s=120),
            make_function("tester", "faults", "faults.sleeper"),
        ]
    )
    arrived, release = tmp_path / "arrived", tmp_path / "release"
    arrived.mkdir()
    arrived.chmod(0o733)  # as root, the Lambda runs as ggc_user: it leaves files, it lists nothing
    running = Core(group, runtime_root=tmp_path / "ggc", worker_settings=WorkerSettings(max_on_demand=2))
    running.start()
    try:
        with ThreadPoolExecutor(6) as pool:
            calls = [pool.submit(invoke, running, GATE, {"arrived": str(arrived), "release": str(release),
                                                         "call": n}) for n in range(6)]
            wait_until(lambda: len(list(arrived.iterdir())) == 2, 60, message="two calls in two workers")
            held = running.status()["functions"][GATE]
            release.touch()
            results = [call.result(timeout=120) for call in calls]
        status = running.status()["functions"][GATE]
    finally:
        release.touch()
        running.stop()
    assert held["starts"] == 2
    assert [result.func_err for result in results] == [""] * 6
    assert len({json.loads(result.payload)["pid"] for result in results}) == 2
    assert len(list(arrived.iterdir())) == 6
    assert status["starts"] == 2
    assert sum(worker["served"] for worker in status["workers"]) == 6
