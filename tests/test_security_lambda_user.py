"""Who a Lambda runs as, with real workers and greengrasssdk, and what a compromised one can still read.

As a v1 core: the function's RunAs, else ggc_user/ggc_group, and root only for a NoContainer function whose
RunAs is 0 with `allowFunctionsToRunAsRoot: yes`. The probe Lambda (tests/lambdas_fixtures/prober) reports
its uid and tries to open the core's secrets; each must be a PermissionError. Switching users needs root:
these tests skip, with that reason, when not run as root (CI runs them as root, after `make test` created
ggc_user/ggc_group with `simcore setup-users`).
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lambdas_fixtures.harness import PY38, IPCClient, function_arn, make_function, make_group
from support.waiting import wait_until

from simcore.cli.main import main
from simcore.cloud.ca import CA_KEY_FILE
from simcore.core import identity
from simcore.core.assemble import Core
from simcore.core_config import read_core_config
from simcore.deploy.deployment import deploy
from simcore.deploy.record import load_deployment
from simcore.errors import StartError
from simcore.group import Resource, ResourceAccess
from simcore.service.control import CONTROL_FILE
from simcore.service.running import RunningCore, RunOptions

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="running a Lambda as another user needs root")

TEMPLATE = Path(__file__).parent / "fixtures" / "identity" / "identity_group.yaml"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:identity-db-AbCdEf"
PROBE = function_arn("probe")
NEIGHBOUR = function_arn("neighbour")
TESTER = function_arn("identity-test-harness")
DEVICE_GID = 54330  # a group no account has: only AutoAddGroupOwner can give it to the Lambda
INTERPRETERS = {"python3.8": str(PY38) if PY38.exists() else sys.executable}


def _lambda_user() -> tuple[int, int]:
    return pwd.getpwnam(identity.DEFAULT_USER).pw_uid, grp.getgrnam(identity.DEFAULT_GROUP).gr_gid


def _ids(pid: int, field: str) -> list[int]:
    """The `Uid:`/`Gid:`/`Groups:` numbers of a process, from /proc/<pid>/status."""
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith(f"{field}:"))
    return [int(value) for value in line.split()[1:]]


def _worker_pid(core: Core, arn: str) -> int:
    return wait_until(lambda: next((w["pid"] for w in core.status()["functions"][arn]["workers"]
                                    if w["state"] == "idle"), None), message=f"an idle worker of {arn}")


def _probe(core: Core, arn: str, paths: list[str]) -> dict:
    client = IPCClient(port=core.ipc_port)
    client.auth_token = core.issue_token(TESTER)
    invocation_id = client.post_work(arn, json.dumps({"paths": paths}).encode(), b"", "RequestResponse")
    result = client.get_work_result(arn, invocation_id)
    assert result.func_err == "", result.payload
    return json.loads(result.payload)


def _probe_core(tmp_path: Path) -> Core:
    probe = make_function("probe", "prober", "prober.function_handler", pinned=True, timeout_s=20)
    return Core(make_group([probe]), runtime_root=tmp_path / "ggc", interpreters=INTERPRETERS)


def test_under_the_defaults_a_worker_runs_as_ggc_user_not_root(tmp_path):
    uid, gid = _lambda_user()
    core = _probe_core(tmp_path)
    with core:
        pid = _worker_pid(core, PROBE)
        assert _ids(pid, "Uid") == [uid] * 4 and _ids(pid, "Gid") == [gid] * 4
        assert _ids(pid, "Groups") == []  # root's supplementary groups did not follow it
        report = _probe(core, PROBE, [])
    assert (report["uid"], report["gid"], report["groups"]) == (uid, gid, [])


def _root_function(tmp_path: Path, isolation_mode: str, run_as_uid: int | None, allow: bool) -> Core:
    probe = make_function("probe", "prober", "prober.function_handler", pinned=True, timeout_s=20,
                          isolation_mode=isolation_mode, run_as_uid=run_as_uid,
                          run_as_gid=None if run_as_uid is None else run_as_uid)
    return Core(make_group([probe]), runtime_root=tmp_path / "ggc", interpreters=INTERPRETERS,
                isolation="off", allow_functions_to_run_as_root=allow)


def test_run_as_0_with_nocontainer_and_allow_functions_to_run_as_root_runs_as_root(tmp_path):
    core = _root_function(tmp_path, "NoContainer", 0, allow=True)
    with core:
        report = _probe(core, PROBE, [])
    assert (report["uid"], report["gid"]) == (0, 0)


@pytest.mark.parametrize(("isolation_mode", "run_as_uid", "allow", "missing"), [
    ("GreengrassContainer", 0, True, "the function is not NoContainer"),
    ("NoContainer", 0, False, "allowFunctionsToRunAsRoot is not \"yes\""),
], ids=["container", "not-allowed"])
def test_root_is_refused_when_one_of_the_three_conditions_is_missing(tmp_path, isolation_mode, run_as_uid,
                                                                     allow, missing):
    core = _root_function(tmp_path, isolation_mode, run_as_uid, allow)
    with pytest.raises(StartError, match=f"would run as root .*{missing}"):
        core.start()
    assert not core.status()["running"]


def test_without_run_as_0_allow_functions_to_run_as_root_alone_still_gives_ggc_user(tmp_path):
    uid, _ = _lambda_user()
    core = _root_function(tmp_path, "NoContainer", None, allow=True)
    with core:
        report = _probe(core, PROBE, [])
    assert report["uid"] == uid


def _deploy(root: Path) -> Path:
    secrets_file = root.parent / "secrets.json"
    secrets_file.write_text(json.dumps({SECRET_ARN: {"SecretString": "hunter2", "Name": "identity-db"}}))
    deploy(TEMPLATE, {"SecretArn": SECRET_ARN}, root, secrets_file=secrets_file)
    return root


def test_a_missing_ggc_user_is_a_one_line_refusal_naming_the_fix(tmp_path, monkeypatch, capsys):
    root = _deploy(tmp_path / "ggc")
    real_getpwnam = pwd.getpwnam

    def without_ggc_user(name):
        if name == identity.DEFAULT_USER:
            raise KeyError(name)
        return real_getpwnam(name)

    monkeypatch.setattr(identity.pwd, "getpwnam", without_ggc_user)
    code = main(["run", "--root", str(root), *sum((["--runtime", f"{k}={v}"] for k, v in INTERPRETERS.items()),
                                                   [])])
    error = capsys.readouterr().err
    assert code == 1
    assert error.count("\n") == 1 and "Traceback" not in error
    assert "ggc_user" in error and "does not exist" in error
    assert "useradd --system --gid ggc_group" in error and "RunAs" in error


@dataclass
class ProbedCore:
    running: RunningCore
    root: Path
    certs_dir: Path
    thing_key: Path


@pytest.fixture
def probed_core(tmp_path, cloud) -> Iterator[ProbedCore]:
    root = _deploy(tmp_path / "ggc")
    running = RunningCore(load_deployment(root), RunOptions(
        interpreters=INTERPRETERS, cloud_config=cloud.config_path, certs_dir=cloud.certs_dir,
        spool_storage="FileSystem"))
    running.start()
    try:
        yield ProbedCore(running, root, cloud.certs_dir, cloud.certs_dir / read_core_config(
            cloud.config_path).core_thing.key_path)
    finally:
        running.stop()


def test_a_lambda_as_ggc_user_cannot_read_keys_tokens_control_secrets_or_state(probed_core):
    core = probed_core.running.core
    root = probed_core.root
    neighbour_pid = _worker_pid(core, NEIGHBOUR)
    wait_until(lambda: (root / CONTROL_FILE).exists(), message="the control file")
    deployment_dir = (root / "current").resolve()
    forbidden = [
        probed_core.thing_key,
        probed_core.certs_dir / CA_KEY_FILE,
        root / CONTROL_FILE,
        *sorted((deployment_dir / "secrets").glob("*.json")),
        root / "var" / "shadows.sqlite",
        root / "var" / "shadows.sqlite-wal",
        root / "var" / "spool.sqlite",
        f"/proc/{neighbour_pid}/environ",  # the other worker's IPC token
    ]
    assert all(Path(path).exists() for path in forbidden), [p for p in forbidden if not Path(p).exists()]
    own_code = deployment_dir / "lambda" / "probe" / "prober.py"
    report = _probe(core, PROBE, [str(path) for path in forbidden] + [str(own_code)])
    assert report["uid"] == _lambda_user()[0]
    assert report["opened"].pop(str(own_code)) == "read"  # the probe can read what is its own to read
    assert report["opened"] == {str(path): "PermissionError" for path in forbidden}


def test_state_files_are_0600_in_0700_folders_owned_by_the_core(probed_core):
    root = probed_core.root
    var = root / "var"
    # Something was written: the shadow database, the spool, the logs.
    wait_until(lambda: any(var.glob("log/user/**/*.log")), message="a function log")
    files = [path for path in var.rglob("*") if path.is_file()]
    folders = [var, *(path for path in var.rglob("*") if path.is_dir())]
    assert {path.name for path in files} >= {"shadows.sqlite", "spool.sqlite", "shadows.sqlite-wal"}
    for path in files:
        info = path.stat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o600, os.geteuid()), path
    for path in folders:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    assert stat.S_IMODE(var.stat().st_mode) == 0o700


@pytest.mark.parametrize("auto_add", [True, False], ids=["auto-add", "no-auto-add"])
def test_auto_add_group_owner_gives_the_lambda_the_devices_group_and_nothing_else(tmp_path, auto_add):
    device = tmp_path / "i2c-fake"
    device.write_bytes(b"\x00")
    os.chown(device, 0, DEVICE_GID)
    device.chmod(0o660)  # as udev leaves /dev/i2c-N: root and the i2c group
    resource = Resource(id="SensorI2C", name="SensorI2C", kind="local_device", source=str(device),
                        auto_add_group_owner=auto_add)
    probe = make_function("probe", "prober", "prober.function_handler", pinned=True, timeout_s=20,
                          isolation_mode="NoContainer", resource_access=(ResourceAccess("SensorI2C", "rw"),))
    core = Core(make_group([probe], resources=(resource,)), runtime_root=tmp_path / "ggc",
                interpreters=INTERPRETERS)
    with core:
        report = _probe(core, PROBE, [str(device)])
    assert report["uid"] == _lambda_user()[0]
    assert report["groups"] == ([DEVICE_GID] if auto_add else [])
    assert report["opened"] == {str(device): "read" if auto_add else "PermissionError"}
