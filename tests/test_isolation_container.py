"""Real launches in GreengrassContainer mode: a Lambda-like process sees /ml/<x>, and ro means EROFS.

Every test here starts a real process in a fresh mount namespace through the plan's argv prefix, exactly as
the workers do; they skip only when `check_available("container")` says this machine cannot, with its reason.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_isolation_fixtures import device_resource, function, group_with, inference_group

from simcore.core.isolation import LAUNCHER, check_available, plan_launch
from simcore.errors import RuntimeConfigError
from simcore.group import ResourceAccess

REPO = Path(__file__).resolve().parents[1]


def _container_unavailable() -> str | None:
    try:
        check_available("container")
    except RuntimeConfigError as error:
        return str(error)
    return None


_REASON = _container_unavailable()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")

# What the Lambda-like process does: read the model, then try to change the resource; report as JSON.
PROBE = textwrap.dedent(
    """
    import errno, json, os, sys
    model_dir = os.environ["MODEL_DIR"]
    report = {"uid": os.getuid(), "gid": os.getgid(), "cwd": os.getcwd()}
    with open(os.path.join(model_dir, "model.json")) as model:
        report["model"] = json.load(model)
    for name, action in (("overwrite", lambda: open(os.path.join(model_dir, "model.json"), "w")),
                         ("create", lambda: open(os.path.join(model_dir, "new.txt"), "w"))):
        try:
            with action() as handle:
                handle.write("written by the lambda")
            report[name] = "ok"
        except OSError as error:
            report[name] = errno.errorcode[error.errno]
    report["dev"] = sorted(os.listdir("/dev"))
    report["sys"] = sorted(os.listdir("/sys"))
    print(json.dumps(report))
    """
)


@pytest.fixture
def destination() -> Iterator[str]:
    """A DestinationPath whose top directory does not exist on the host (so creating it would show)."""
    path = f"/simcore-test-{uuid.uuid4().hex[:12]}/rain"
    top = os.path.dirname(path)
    assert not os.path.lexists(top)
    yield path
    assert not os.path.lexists(top), f"the launch created {top} on the host"


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A world-readable directory (pytest's tmp_path is 0700, which a RunAs user could not enter)."""
    with tempfile.TemporaryDirectory(prefix="simcore-isolation-test-") as made:
        os.chmod(made, 0o755)
        yield Path(made)


def _deployed_model(base: Path) -> Path:
    model_dir = base / "deployment" / "resources" / "RainModel"
    model_dir.mkdir(parents=True)
    (model_dir / "model.json").write_text(json.dumps({"version": "test-1"}))
    for folder in (base, base / "deployment", base / "deployment" / "resources", model_dir):
        folder.chmod(0o755)
    (model_dir / "model.json").chmod(0o644)
    return model_dir


def _run(plan, function, command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Start `command` the way the workers do: prefix, function environment with rewrites, Popen identity."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **function.environment, **plan.env_rewrites}
    return subprocess.run(
        [*plan.argv_prefix, *command],
        env=env,
        cwd=cwd,
        user=plan.uid,
        group=plan.gid,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _report(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_ro_model_is_readable_at_its_destination_and_not_writable(shared_dir: Path, destination: str) -> None:
    model_dir = _deployed_model(shared_dir)
    inference, group = inference_group(destination, "ro")
    plan = plan_launch(inference, group, {"RainModel": model_dir}, "container", scratch_dir=shared_dir)
    report = _report(_run(plan, inference, [sys.executable, "-c", PROBE], cwd=shared_dir))
    assert report["model"] == {"version": "test-1"}
    assert report["overwrite"] == "EROFS"
    assert report["create"] == "EROFS"
    assert json.loads((model_dir / "model.json").read_text()) == {"version": "test-1"}
    assert not (model_dir / "new.txt").exists()
    assert report["cwd"] == str(shared_dir)


def test_rw_model_is_writable_through_to_the_deployed_directory(shared_dir: Path, destination: str) -> None:
    model_dir = _deployed_model(shared_dir)
    inference, group = inference_group(destination, "rw")
    plan = plan_launch(inference, group, {"RainModel": model_dir}, "container", scratch_dir=shared_dir)
    # The mount is rw; the folder's own modes still apply to the Lambda's user (ggc_user as root): give it
    # the folder, as an operator grants a rw resource (simcore does not apply an ML resource's OwnerSetting).
    if plan.identity is not None and not plan.identity.is_own:
        os.chown(model_dir, plan.identity.uid, plan.identity.gid)
    report = _report(_run(plan, inference, [sys.executable, "-c", PROBE], cwd=shared_dir))
    assert report["create"] == "ok"
    assert (model_dir / "new.txt").read_text() == "written by the lambda"


def test_the_host_sees_no_mounts_after_a_launch(shared_dir: Path, destination: str) -> None:
    model_dir = _deployed_model(shared_dir)
    inference, group = inference_group(destination, "ro")
    plan = plan_launch(inference, group, {"RainModel": model_dir}, "container", scratch_dir=shared_dir)
    _report(_run(plan, inference, [sys.executable, "-c", PROBE], cwd=shared_dir))
    host_mounts = Path("/proc/self/mountinfo").read_text()
    assert str(shared_dir) not in host_mounts
    assert list((shared_dir / "rootfs").iterdir()) == []


def test_run_as_applies_inside_the_container(shared_dir: Path, destination: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("running as another uid needs root")
    model_dir = _deployed_model(shared_dir)
    inference, group = inference_group(destination, "ro", run_as_uid=65534, run_as_gid=65534)
    plan = plan_launch(inference, group, {"RainModel": model_dir}, "container", scratch_dir=shared_dir)
    # The system interpreter: the venv's lives under /root, which uid 65534 may not enter.
    report = _report(_run(plan, inference, ["/usr/bin/python3", "-I", "-c", PROBE], cwd=shared_dir))
    assert (report["uid"], report["gid"]) == (65534, 65534)
    assert report["model"] == {"version": "test-1"}
    assert report["create"] == "EROFS"


def test_dev_holds_standard_nodes_and_granted_devices_only(shared_dir: Path, destination: str) -> None:
    hidden_candidates = [
        name for name in ("kmsg", "loop0", "tty0", "console") if os.path.exists(f"/dev/{name}")
    ]
    if len(hidden_candidates) < 2:
        pytest.skip("this host has too few device nodes to tell granted from hidden")
    granted, hidden = hidden_candidates[0], hidden_candidates[1]
    model_dir = _deployed_model(shared_dir)
    inference, group = inference_group(destination, "ro")
    inference = dataclasses.replace(
        inference, resource_access=(*inference.resource_access, ResourceAccess("Granted", "rw"))
    )
    group = group_with((inference,), (*group.resources, device_resource(f"/dev/{granted}", "Granted")))
    plan = plan_launch(inference, group, {"RainModel": model_dir}, "container", scratch_dir=shared_dir)
    report = _report(_run(plan, inference, [sys.executable, "-c", PROBE], cwd=shared_dir))
    assert granted in report["dev"]
    assert hidden not in report["dev"]
    assert {"null", "zero", "urandom", "shm", "pts", "fd"} <= set(report["dev"])


def test_sys_is_hidden_unless_access_sysfs(shared_dir: Path, destination: str) -> None:
    model_dir = _deployed_model(shared_dir)
    for access_sysfs, expect_entries in ((False, False), (True, True)):
        inference, group = inference_group(destination, "ro", access_sysfs=access_sysfs)
        plan = plan_launch(inference, group, {"RainModel": model_dir}, "container", scratch_dir=shared_dir)
        report = _report(_run(plan, inference, [sys.executable, "-c", PROBE], cwd=shared_dir))
        assert bool(report["sys"]) is expect_entries


def test_a_lambda_named_device_missing_in_the_container_is_a_launch_error(shared_dir: Path) -> None:
    spec = {
        "rootfs": str(shared_dir / "rootfs"),
        "binds": [],
        "sysfs": False,
        "uid": None,
        "gid": None,
        "devices": [{"path": "/dev/i2c-simcore-missing", "readonly": False}],
    }
    sensor = function("sensor")
    plan_prefix = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        sys.executable,
        "-I",
        "-S",
        str(LAUNCHER),
        json.dumps(spec),
        "--",
    ]
    done = subprocess.run(
        [*plan_prefix, sys.executable, "-c", "pass"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": os.environ["PATH"], **sensor.environment},
    )
    assert done.returncode == 125
    assert "isolation_launcher: local device /dev/i2c-simcore-missing does not exist" in done.stderr


def test_the_launcher_refuses_to_mount_in_simcores_own_namespace(shared_dir: Path) -> None:
    spec = {"rootfs": str(shared_dir / "rootfs"), "binds": [], "devices": [], "sysfs": False}
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(LAUNCHER), json.dumps(spec), "--", "true"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 125
    assert "not in a private mount namespace" in done.stderr
    assert not (shared_dir / "rootfs").exists()


def test_a_non_root_simcore_gets_a_rootless_container(shared_dir: Path, destination: str) -> None:
    """As uid 65534, simcore plans `unshare --user --map-root-user` and ro still means EROFS."""
    if os.geteuid() != 0 or not os.access("/usr/bin/python3", os.X_OK):
        pytest.skip("needs root (to become uid 65534) and a system /usr/bin/python3")
    model_dir = _deployed_model(shared_dir)
    driver = textwrap.dedent(
        f"""
        import json, subprocess, sys
        sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from simcore.core.isolation import check_available, plan_launch
        sys.path.insert(0, {str(REPO / "tests")!r})
        from test_isolation_fixtures import inference_group
        check_available("container")
        inference, group = inference_group({destination!r}, "ro")
        plan = plan_launch(inference, group, {{"RainModel": Path({str(model_dir)!r})}}, "container",
                           scratch_dir=Path({str(shared_dir)!r}) / "rootless")
        assert "--map-root-user" in plan.argv_prefix, plan.argv_prefix
        done = subprocess.run([*plan.argv_prefix, sys.executable, "-I", "-c", {PROBE!r}],
                              env={{"MODEL_DIR": {destination!r}, "PATH": "/usr/bin:/bin"}},
                              capture_output=True, text=True)
        sys.stderr.write(done.stderr)
        print(done.stdout, end="")
        sys.exit(done.returncode)
        """
    )
    (shared_dir / "rootless").mkdir(mode=0o777)
    (shared_dir / "rootless").chmod(0o777)
    done = subprocess.run(
        ["/usr/bin/python3", "-I", "-c", driver],
        user=65534,
        group=65534,
        extra_groups=[],
        cwd=shared_dir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0 and "GreengrassContainer isolation is not available" in done.stderr:
        pytest.skip(done.stderr.strip().splitlines()[-1])
    report = _report(done)
    assert report["model"] == {"version": "test-1"}
    assert report["create"] == "EROFS"


def test_the_launcher_runs_under_python38_like_the_lambdas(shared_dir: Path, destination: str) -> None:
    python38 = REPO / ".venv-py38" / "bin" / "python"
    if not python38.exists():
        pytest.skip(f"no Python 3.8 interpreter at {python38}")
    model_dir = _deployed_model(shared_dir)
    inference, group = inference_group(destination, "ro")
    plan = plan_launch(inference, group, {"RainModel": model_dir}, "container", scratch_dir=shared_dir)
    launcher_python_at = plan.argv_prefix.index(str(LAUNCHER)) - 3
    assert plan.argv_prefix[launcher_python_at] == sys.executable
    prefix = [*plan.argv_prefix]
    prefix[launcher_python_at] = str(python38)
    plan = dataclasses.replace(plan, argv_prefix=prefix)
    report = _report(_run(plan, inference, [str(python38), "-c", PROBE], cwd=shared_dir))
    assert report["model"] == {"version": "test-1"}
    assert report["overwrite"] == "EROFS"
