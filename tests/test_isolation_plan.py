"""plan_launch and check_available: what each isolation mode asks the workers to do, and the errors."""

from __future__ import annotations

import grp
import json
import os
import pwd
import sys
from pathlib import Path

import pytest
from test_isolation_fixtures import device_resource, function, group_with, inference_group, model_resource

from simcore.core import isolation
from simcore.core.isolation import LAUNCHER, check_available, mode_for, plan_launch, rewrite_environment
from simcore.errors import RuntimeConfigError
from simcore.group import ResourceAccess


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    deployed = tmp_path / "deployment" / "resources" / "RainModel"
    deployed.mkdir(parents=True)
    return deployed


def _spec(plan: isolation.LaunchPlan) -> dict:
    """The launcher spec inside a container plan's argv prefix."""
    launcher_at = plan.argv_prefix.index(str(LAUNCHER))
    assert plan.argv_prefix[launcher_at + 2] == "--"
    return json.loads(plan.argv_prefix[launcher_at + 1])


def test_off_rewrites_model_dir_to_the_deployed_resource(model_dir: Path, tmp_path: Path) -> None:
    inference, group = inference_group("/ml/rain")
    plan = plan_launch(inference, group, {"RainModel": model_dir}, "off", scratch_dir=tmp_path)
    assert plan.env_rewrites == {"MODEL_DIR": str(model_dir)}
    assert plan.argv_prefix == []
    # Off switches users as the other modes do: as root, to ggc_user (make test creates it).
    assert (plan.uid, plan.gid) == ((None, None) if os.geteuid() != 0 else
                                    (pwd.getpwnam("ggc_user").pw_uid, grp.getgrnam("ggc_group").gr_gid))
    assert "isolation off" in plan.description
    assert f"/ml/rain -> {model_dir}" in plan.description


def test_rewrite_keeps_the_rest_of_the_path_and_respects_component_boundaries(model_dir: Path) -> None:
    inference, group = inference_group("/ml/rain")
    resources = {"RainModel": (model_resource("/ml/rain"), model_dir, "ro")}
    environment = {
        "MODEL_FILE": "/ml/rain/model.tflite",
        "OTHER_MODEL": "/ml/rainfall",
        "THING_NAME": "rain-core",
        "TRAILING": "/ml/rain/",
    }
    assert rewrite_environment(environment, resources) == {
        "MODEL_FILE": f"{model_dir}/model.tflite",
        "TRAILING": f"{model_dir}/",
    }


def test_rewrite_prefers_the_longest_destination(tmp_path: Path) -> None:
    outer = (model_resource("/ml", "Outer"), tmp_path / "outer", "ro")
    inner = (model_resource("/ml/rain", "Inner"), tmp_path / "inner", "ro")
    rewrites = rewrite_environment({"MODEL_DIR": "/ml/rain/v2"}, {"Outer": outer, "Inner": inner})
    assert rewrites == {"MODEL_DIR": f"{tmp_path / 'inner'}/v2"}


def test_resource_dirs_may_be_keyed_by_resource_name(model_dir: Path, tmp_path: Path) -> None:
    inference, group = inference_group("/ml/rain")
    plan = plan_launch(inference, group, {"RainModelName": model_dir}, "off", scratch_dir=tmp_path)
    assert plan.env_rewrites == {"MODEL_DIR": str(model_dir)}


def test_nocontainer_runs_as_run_as_and_rewrites_like_off(model_dir: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("switching to another uid needs root")
    inference, group = inference_group("/ml/rain", run_as_uid=65534, run_as_gid=65534)
    plan = plan_launch(inference, group, {"RainModel": model_dir}, "nocontainer", scratch_dir=tmp_path)
    assert (plan.uid, plan.gid) == (65534, 65534)
    assert plan.argv_prefix == []
    assert plan.env_rewrites == {"MODEL_DIR": str(model_dir)}
    assert "NoContainer" in plan.description and "uid 65534 gid 65534" in plan.description


def test_nocontainer_defaults_to_the_configured_ggc_user_if_present(model_dir: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("switching to another uid needs root")
    inference, group = inference_group("/ml/rain")
    plan = plan_launch(
        inference,
        group,
        {"RainModel": model_dir},
        "nocontainer",
        scratch_dir=tmp_path,
        default_user="nobody",
        default_group="nogroup",
    )
    assert (plan.uid, plan.gid) == (65534, 65534)


def test_nocontainer_without_root_runs_as_the_current_user(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "getuid", lambda: 1000)
    monkeypatch.setattr(os, "getgid", lambda: 1000)
    inference, group = inference_group("/ml/rain")
    plan = plan_launch(
        inference,
        group,
        {"RainModel": model_dir},
        "nocontainer",
        scratch_dir=tmp_path,
        default_user="no-such-user-here",
        default_group="no-such-group-here",
    )
    assert (plan.uid, plan.gid) == (None, None)  # already who simcore is: nothing to switch
    assert "uid 1000 gid 1000" in plan.description


def test_nocontainer_without_root_refuses_another_run_as(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "getuid", lambda: 1000)
    monkeypatch.setattr(os, "getgid", lambda: 1000)
    inference, group = inference_group("/ml/rain", run_as_uid=65534, run_as_gid=65534)
    with pytest.raises(RuntimeConfigError, match="without root") as caught:
        plan_launch(inference, group, {"RainModel": model_dir}, "nocontainer", scratch_dir=tmp_path)
    assert caught.value.location == inference.arn


def test_container_plan_mounts_the_resource_at_its_destination(model_dir: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("a rootful container plan needs root (rootless adds --user --map-root-user)")
    inference, group = inference_group("/ml/rain")
    plan = plan_launch(inference, group, {"RainModel": model_dir}, "container", scratch_dir=tmp_path)
    assert plan.env_rewrites == {}  # the Lambda sees /ml/rain itself
    assert Path(plan.argv_prefix[0]).name == "unshare"
    assert plan.argv_prefix[: plan.argv_prefix.index(sys.executable)][1:] == [
        "--mount",
        "--propagation",
        "private",
        "--",
    ]
    spec = _spec(plan)
    assert spec["binds"] == [{"source": str(model_dir), "target": "/ml/rain", "readonly": True}]
    assert spec["rootfs"] == str(tmp_path / "rootfs")
    assert spec["sysfs"] is False
    assert plan.mounts == (("/ml/rain", str(model_dir), "ro"),)
    assert "/ml/rain <- " in plan.description and "(ro)" in plan.description


def test_container_plan_applies_run_as_in_the_launcher_not_popen(model_dir: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("a rootful container plan needs root")
    inference, group = inference_group("/ml/rain", "rw", run_as_uid=65534, run_as_gid=65534)
    plan = plan_launch(inference, group, {"RainModel": model_dir}, "container", scratch_dir=tmp_path)
    # unshare needs root; the launcher drops to RunAs after mounting.
    assert (plan.uid, plan.gid) == (None, None)
    spec = _spec(plan)
    assert (spec["uid"], spec["gid"]) == (65534, 65534)
    assert spec["binds"][0]["readonly"] is False


def test_container_plan_grants_existing_devices(tmp_path: Path) -> None:
    sensor = function("sensor", resource_access=(ResourceAccess("SensorI2C", "rw"),), access_sysfs=True)
    group = group_with((sensor,), (device_resource("/dev/null"),))
    spec = _spec(plan_launch(sensor, group, {}, "container", scratch_dir=tmp_path))
    assert spec["devices"] == [{"path": "/dev/null", "readonly": False}]
    assert spec["sysfs"] is True


def test_container_plan_refuses_a_missing_device(tmp_path: Path) -> None:
    sensor = function("sensor", resource_access=(ResourceAccess("SensorI2C", "rw"),))
    group = group_with((sensor,), (device_resource("/dev/i2c-simcore-missing"),))
    with pytest.raises(RuntimeConfigError, match="local device /dev/i2c-simcore-missing .*does not exist"):
        plan_launch(sensor, group, {}, "container", scratch_dir=tmp_path)


def test_missing_device_is_the_lambdas_problem_outside_a_container(tmp_path: Path) -> None:
    sensor = function(
        "sensor",
        resource_access=(ResourceAccess("SensorI2C", "rw"),),
        environment={"I2C_BUS": "/dev/i2c-simcore-missing"},
    )
    group = group_with((sensor,), (device_resource("/dev/i2c-simcore-missing"),))
    for mode in ("off", "nocontainer"):
        plan = plan_launch(sensor, group, {}, mode, scratch_dir=tmp_path)
        assert plan.env_rewrites == {}


def test_an_undeployed_model_is_named(tmp_path: Path) -> None:
    inference, group = inference_group("/ml/rain")
    with pytest.raises(RuntimeConfigError, match="RainModel .*has not been deployed"):
        plan_launch(inference, group, {}, "off", scratch_dir=tmp_path)


def test_an_unknown_resource_reference_is_named(tmp_path: Path) -> None:
    lonely = function("lonely", resource_access=(ResourceAccess("Ghost", "ro"),))
    with pytest.raises(RuntimeConfigError, match="'Ghost'"):
        plan_launch(lonely, group_with((lonely,), ()), {}, "off", scratch_dir=tmp_path)


def test_a_container_resource_directory_must_exist(tmp_path: Path) -> None:
    inference, group = inference_group("/ml/rain")
    with pytest.raises(RuntimeConfigError, match="does not exist"):
        plan_launch(inference, group, {"RainModel": tmp_path / "gone"}, "container", scratch_dir=tmp_path)


def test_resources_a_function_cannot_access_are_not_rewritten(model_dir: Path, tmp_path: Path) -> None:
    outsider = function("outsider", environment={"MODEL_DIR": "/ml/rain"})
    group = group_with((outsider,), (model_resource("/ml/rain"),))
    plan = plan_launch(outsider, group, {"RainModel": model_dir}, "off", scratch_dir=tmp_path)
    assert plan.env_rewrites == {}


def test_mode_for_follows_the_function_unless_overridden() -> None:
    assert mode_for(function("a")) == "container"
    assert mode_for(function("b", isolation_mode="NoContainer")) == "nocontainer"
    assert mode_for(function("c"), "off") == "off"
    with pytest.raises(RuntimeConfigError, match="unknown isolation mode 'sandbox'"):
        mode_for(function("d"), "sandbox")  # type: ignore[arg-type]


def test_check_available_rejects_unknown_modes_and_accepts_off() -> None:
    check_available("off")
    with pytest.raises(RuntimeConfigError, match="unknown isolation mode"):
        check_available("chroot")  # type: ignore[arg-type]


@pytest.fixture
def fresh_probe():
    isolation._container_unavailable_reason.cache_clear()
    yield
    isolation._container_unavailable_reason.cache_clear()


def test_check_available_explains_macos(monkeypatch: pytest.MonkeyPatch, fresh_probe) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(RuntimeConfigError, match="macOS has no Linux mount namespaces.*--isolation off"):
        check_available("container")


def test_check_available_explains_a_missing_unshare(monkeypatch: pytest.MonkeyPatch, fresh_probe) -> None:
    monkeypatch.setattr(isolation.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeConfigError, match="unshare command .* is not on PATH"):
        check_available("container")


def test_check_available_explains_locked_user_namespaces(
    monkeypatch: pytest.MonkeyPatch, fresh_probe
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(isolation, "_user_namespaces_disabled", lambda: True)
    with pytest.raises(RuntimeConfigError, match="not root.*user namespaces disabled"):
        check_available("container")


def test_check_available_reports_a_failed_probe_launch_in_its_own_words(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fresh_probe
) -> None:
    if sys.platform != "linux" or isolation.shutil.which("unshare") is None:
        pytest.skip("the probe runs only where unshare exists")
    monkeypatch.setattr(isolation, "LAUNCHER", tmp_path / "no-such-launcher.py")
    with pytest.raises(RuntimeConfigError, match="test launch in a mount namespace.*: .*no-such-launcher"):
        check_available("container")
