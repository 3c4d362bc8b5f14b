"""The `simcore` command line against a real core process, a real Lambda and the stand-in cloud."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from support.waiting import wait_until

from simcore.cli.main import main
from simcore.cloud.link import CloudLink
from simcore.cloud.standin import start_standin
from simcore.core.logs import LogLayout
from simcore.deploy.record import load_deployment
from simcore.service.control import CONTROL_FILE

REPO = Path(__file__).resolve().parent.parent
CLI_GROUP = REPO / "tests" / "fixtures" / "cli" / "group.yaml"
THING = "cli-core"


def simcore(*args: str, root: Path, timeout_s: float = 60) -> subprocess.CompletedProcess:
    """Run the CLI in a fresh process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "simcore", *args, "--root", str(root)],
        capture_output=True, text=True, timeout=timeout_s, cwd=REPO,
    )


def test_deploy_of_a_template_with_a_dangling_ref_exits_3_and_names_it(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text(CLI_GROUP.read_text().replace("!Ref EchoFunction.Alias", "!Ref NoSuchFunction.Alias", 1))
    (tmp_path / "echo").symlink_to(CLI_GROUP.parent / "echo")
    assert main(["deploy", str(broken), "--root", str(tmp_path / "root")]) == 3
    assert "NoSuchFunction" in capsys.readouterr().err


def test_status_without_a_running_core_exits_4(tmp_path, capsys):
    assert main(["status", "--root", str(tmp_path)]) == 4
    assert "no core is running" in capsys.readouterr().err


def test_a_system_log_name_that_leaves_the_log_tree_is_refused(tmp_path, capsys):
    assert main(["logs", "--system", "../../etc/passwd", "--root", str(tmp_path)]) == 3
    assert "not usable as a log file name component" in capsys.readouterr().err


def test_a_bad_param_flag_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        main(["deploy", str(CLI_GROUP), "--param", "NoEqualsSign", "--root", str(tmp_path)])


@pytest.fixture
def running_core(tmp_path):
    """`simcore deploy` + `simcore run` (a subprocess) linked to a stand-in cloud; yields (root, cloud)."""
    root = tmp_path / "core"
    deployed = simcore("deploy", str(CLI_GROUP), "--param", f"ThingName={THING}", root=root)
    assert deployed.returncode == 0, deployed.stderr
    cloud = start_standin(tmp_path / "cloud", 0, THING)
    process = subprocess.Popen(
        [sys.executable, "-m", "simcore", "run", "--root", str(root), "--config", str(cloud.config_path)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_until(lambda: (root / CONTROL_FILE).exists() or process.poll() is not None, 60,
                   message="the core to start", interval_s=0.1)
        assert process.poll() is None, process.stdout.read()
        yield root, cloud, process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(30)
        cloud.stop()


def test_publish_shadow_status_and_stop_reach_the_running_core(running_core):
    root, cloud, process = running_core
    heard: list[dict] = []
    arrived = threading.Event()

    def on_out(_topic: str, payload: bytes) -> None:
        heard.append(json.loads(payload))
        arrived.set()

    watcher = CloudLink(cloud.client_settings("cli-test-watcher"))
    watcher.subscribe("cli/out", on_out)
    watcher.start()
    try:
        assert watcher.wait_connected(20)
        wait_until(lambda: simcore("status", root=root).returncode == 0, 30, message="status to answer", interval_s=0.1)
        status = json.loads(simcore("status", root=root).stdout)
        assert status["running"] is True
        wait_until(lambda: json.loads(simcore("status", root=root).stdout)["cloud"]["state"] == "connected",
                   30, message="the core's cloud link", interval_s=0.1)

        published = simcore("publish", "cli/in", json.dumps({"n": 1}), root=root)
        assert published.returncode == 0, published.stderr
        assert arrived.wait(30), "the echo Lambda's answer never reached the cloud"
        assert heard[0] == {"heard": {"n": 1}}

        def shadow_heard():
            answer = simcore("shadow", "get", THING, root=root)
            return answer.returncode == 0 and json.loads(answer.stdout)["state"]["reported"].get("last_heard")

        assert wait_until(shadow_heard, 30, message="the shadow write", interval_s=0.1) == {"n": 1}

        rejected = simcore("shadow", "update", THING, "not json", root=root)
        assert rejected.returncode == 3
        assert json.loads(rejected.stdout) == {**json.loads(rejected.stdout), "code": 400, "message": "Invalid JSON"}

        logs = simcore("logs", "echo", root=root)
        assert logs.returncode == 0
    finally:
        watcher.stop()

    assert simcore("stop", root=root).returncode == 0
    assert process.wait(30) == 0
    assert simcore("status", root=root).returncode == 4


def test_the_control_endpoint_refuses_a_wrong_token(running_core):
    root, _cloud, _process = running_core
    record = json.loads((root / CONTROL_FILE).read_text())
    assert os.stat(root / CONTROL_FILE).st_mode & 0o777 == 0o600
    request = urllib.request.Request(f"http://127.0.0.1:{record['port']}/stop", data=b"{}",
                                     headers={"Authorization": "Bearer wrong"}, method="POST")
    with pytest.raises(urllib.error.HTTPError, match="HTTP Error 401") as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401
    assert simcore("status", root=root).returncode == 0


@pytest.fixture(scope="module")
def local_core(tmp_path_factory):
    """`simcore deploy` + `simcore run` with no cloud link; yields the root once the echo Lambda has been heard."""
    root = tmp_path_factory.mktemp("local") / "core"
    deployed = simcore("deploy", str(CLI_GROUP), "--param", f"ThingName={THING}", root=root)
    assert deployed.returncode == 0, deployed.stderr
    process = subprocess.Popen([sys.executable, "-m", "simcore", "run", "--root", str(root)],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: simcore("status", root=root).returncode == 0 or process.poll() is not None, 60,
                   message="the core to answer status", interval_s=0.1)
        assert process.poll() is None, process.stdout.read()
        assert simcore("publish", "cli/in", json.dumps({"n": 1}), root=root).returncode == 0
        yield root
    finally:
        process.terminate()
        process.wait(30)


def test_logs_takes_the_template_logical_id_like_the_name_the_id_and_the_arn(local_core):
    root = local_core
    [function] = load_deployment(root).group.functions
    assert function.logical_id == "EchoFunction"
    log = LogLayout(root.absolute()).lambda_log(function)
    wait_until(lambda: log.exists() and 'heard {"n": 1}' in log.read_text(), 30, message="the echo Lambda's line")
    expected = log.read_text()
    for name in ("EchoFunction", function.name, "echo", function.arn):
        shown = simcore("logs", name, root=root)
        assert (shown.returncode, shown.stdout, shown.stderr) == (0, expected, ""), name
    # A part of one function's name is taken, saying which; the logical id the issue was filed with works so.
    partial = simcore("logs", "echofunc", root=root)
    assert (partial.returncode, partial.stdout) == (0, expected)
    assert f"'echofunc' taken as EchoFunction ({function.name})" in partial.stderr


def test_logs_of_an_unknown_function_exits_3_and_lists_what_the_group_has(local_core):
    shown = simcore("logs", "InferenceFunction", root=local_core)
    assert shown.returncode == 3
    assert "no function 'InferenceFunction'" in shown.stderr and "EchoFunction" in shown.stderr
    assert "Traceback" not in shown.stderr


def test_status_counts_unsubscribed_shadow_outcomes_apart_from_dropped_messages(local_core):
    root = local_core

    def router():
        return json.loads(simcore("status", root=root).stdout)["router"]

    # The echo Lambda's shadow write publishes update/accepted and update/documents; nothing subscribes to them.
    counters = wait_until(lambda: (r := router())["unrouted_no_subscription"] >= 2 and r, 30,
                          message=lambda: f"the shadow outcomes counted: {router()}")
    assert counters["dropped_unmatched"] == 0 and counters["dropped_queue_full"] == 0
