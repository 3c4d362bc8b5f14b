"""simcore.core_config: one model of a v1 core's config.json, one reader, one writer, and who uses them."""

from __future__ import annotations

import contextlib
import json
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from group import setup
from simcore.cli.main import build_parser
from simcore.cli.run import run_options
from simcore.core_config import (
    CoreConfig,
    CoreConfigError,
    Runtime,
    System,
    from_document,
    read_core_config,
    write_core_config,
)
from simcore.defaults import DEFAULT_MAX_WORK_ITEMS, DEFAULT_SHADOW_SYNC_TIMEOUT_S, DEFAULT_SPOOL_STORAGE
from simcore.deploy.deployment import deploy
from simcore.service.running import RunningCore, RunOptions

THING_ARN = "arn:aws:iot:eu-west-1:123456789012:thing/RainEdgeCore"
CLI_GROUP = Path(__file__).parent / "fixtures" / "cli" / "group.yaml"


def a_config(**changes) -> CoreConfig:
    return CoreConfig.for_thing(THING_ARN, "abc-ats.iot.eu-west-1.amazonaws.com", certs_dir=Path("/core/certs"),
                                **changes)


# -- the writer and the reader ---------------------------------------------------------------------


def test_write_then_read_gives_back_the_same_config(tmp_path: Path) -> None:
    config = a_config(iot_mqtt_port=443, keep_alive_s=300, use_systemd=False, allow_functions_to_run_as_root=True,
                      max_work_item_count=16, shadow_sync_timeout=2.5, thing_name="RainEdgeCore",
                      certificate_arn="arn:aws:iot:eu-west-1:123456789012:cert/" + "a" * 64)
    path = write_core_config(tmp_path / "config" / "config.json", config)

    read = read_core_config(path)
    assert read == config
    assert read.path == path
    document = json.loads(path.read_text())
    assert document["runtime"] == {"cgroup": {"useSystemd": "no"}, "allowFunctionsToRunAsRoot": "yes",
                                   "maxWorkItemCount": 16}
    assert document["system"] == {"shadowSyncTimeout": 2.5}
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [entry.name for entry in path.parent.iterdir()] == ["config.json"]  # no temporary file left


def test_absent_limits_are_left_out_and_read_as_the_defaults(tmp_path: Path) -> None:
    path = write_core_config(tmp_path / "config.json", a_config())
    document = json.loads(path.read_text())
    assert "system" not in document and "maxWorkItemCount" not in document["runtime"]
    read = read_core_config(path)
    assert read.runtime.max_work_items == DEFAULT_MAX_WORK_ITEMS
    assert read.system.shadow_sync_timeout_s == DEFAULT_SHADOW_SYNC_TIMEOUT_S


def test_keys_simcore_does_not_use_are_accepted() -> None:
    document = a_config().to_document()
    document["coreThing"]["iotHttpPort"] = 443
    document["runtime"]["maxConcurrentLimit"] = 25
    document["writeDirectory"] = "/var/greengrass"
    assert from_document(document) == a_config()


@pytest.mark.parametrize(("path", "value", "message"), [
    (("coreThing", "thingArn"), "RainEdgeCore", "not a thing ARN"),
    (("coreThing", "thingName"), "SomeoneElse", "is not the thing thingArn names"),
    (("coreThing", "caPath"), "", "must be a non-empty string"),
    (("coreThing", "certPath"), 7, "must be a non-empty string"),
    (("coreThing", "iotHost"), "mqtts://host:8883", "without scheme or port"),
    (("coreThing", "iotMqttPort"), "eighty", "must be a port number"),
    (("coreThing", "iotMqttPort"), 70000, "must be 1-65535"),
    (("coreThing", "keepAlive"), 5, "must be 30-1200 seconds"),
    (("runtime", "cgroup", "useSystemd"), True, 'must be "yes" or "no"'),
    (("runtime", "allowFunctionsToRunAsRoot"), "maybe", 'must be "yes" or "no"'),
    (("runtime", "maxWorkItemCount"), 0, "must be at least 1"),
    (("runtime", "maxWorkItemCount"), 2.5, "must be a whole number"),
    (("system", "shadowSyncTimeout"), -1, "must be a positive number of seconds"),
    (("system", "shadowSyncTimeout"), "5", "must be a positive number of seconds"),
    (("managedRespawn",), "no", "must be true or false"),
    (("crypto", "caPath"), None, "must be a non-empty string"),
    (("crypto", "principals", "IoTCertificate", "certificatePath"), 1, "must be a non-empty string"),
])
def test_each_bad_field_is_named_with_its_file(tmp_path: Path, path: tuple[str, ...], value, message: str) -> None:
    document = a_config(thing_name="RainEdgeCore").to_document()
    document.setdefault("system", {})
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(document))

    with pytest.raises(CoreConfigError, match=message) as raised:
        read_core_config(config_path)
    dotted = ".".join(path)
    assert raised.value.location == f"{config_path}:{dotted}"
    assert raised.value.field == dotted


def test_a_missing_core_thing_and_an_unreadable_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"runtime": {}}))
    with pytest.raises(CoreConfigError, match="missing object coreThing") as raised:
        read_core_config(path)
    assert raised.value.location == f"{path}:coreThing"
    path.write_text("{not json")
    with pytest.raises(CoreConfigError, match="cannot read the core config") as raised:
        read_core_config(path)
    assert raised.value.location == str(path)


def test_the_writer_refuses_what_the_reader_would_and_leaves_the_old_file(tmp_path: Path) -> None:
    path = write_core_config(tmp_path / "config.json", a_config())
    before = path.read_text()
    with pytest.raises(CoreConfigError, match="must be 1-65535") as raised:
        write_core_config(path, a_config(iot_mqtt_port=0))
    assert raised.value.location == f"{path}:coreThing.iotMqttPort"
    assert path.read_text() == before


# -- deploy and group.setup write the same kind of document ------------------------------------------


def test_deploy_and_setup_documents_read_back_and_differ_only_where_they_should(tmp_path: Path) -> None:
    deployment = deploy(CLI_GROUP, None, tmp_path / "ggc")
    deployed = read_core_config(deployment.directory / "config" / "config.json")
    core = deployment.group.core
    setup_path = write_core_config(tmp_path / "setup" / "config.json", setup.setup_config(
        thing_arn=core.thing_arn, iot_host="abc-ats.iot.us-east-1.amazonaws.com",
        certs_dir=(tmp_path / "ggc" / "certs").absolute(),
    ))
    set_up = read_core_config(setup_path)

    # What deploy cannot know (the endpoint) or records on top (the group's core), and how simcore runs.
    assert deployed.core_thing.iot_host is None and set_up.core_thing.iot_host is not None
    assert (deployed.core_thing.thing_name, deployed.core_thing.certificate_arn) == (
        core.thing_name, core.certificate_arn)
    assert (deployed.runtime.use_systemd, set_up.runtime.use_systemd) == (False, True)
    assert deployed.runtime.allow_functions_to_run_as_root is False
    # Everything else is the same document.
    assert deployed.core_thing == replace(set_up.core_thing, iot_host=None, thing_name=core.thing_name,
                                          certificate_arn=core.certificate_arn)
    assert deployed.crypto == set_up.crypto
    assert deployed.managed_respawn is set_up.managed_respawn is False


# -- simcore run honours runtime.maxWorkItemCount and system.shadowSyncTimeout ------------------------


@pytest.fixture
def synced_deployment(tmp_path: Path):
    """The CLI group with its core's shadow synced (so a cloud link builds a ShadowSync)."""
    template = tmp_path / "group.yaml"
    template.write_text(CLI_GROUP.read_text().replace("SyncShadow: false", "SyncShadow: true"))
    (tmp_path / "echo").symlink_to(CLI_GROUP.parent / "echo")
    return deploy(template, None, tmp_path / "ggc")


@contextlib.contextmanager
def built(deployment, options: RunOptions) -> Iterator[RunningCore]:
    """A RunningCore built and never started (nothing connects), closed afterwards."""
    running = RunningCore(deployment, options)
    try:
        yield running
    finally:
        running.control.httpd.server_close()
        if running.link is not None:
            running.link.spooler.close()
        running.shadow_engine.close()
        running.core.log_sinks.close()


def core_config_for(deployment, path: Path, **changes) -> Path:
    """A config.json for the deployment's core thing, pointing at an endpoint nobody connects to."""
    return write_core_config(path, CoreConfig.for_thing(
        deployment.group.core.thing_arn, "iot.invalid", certs_dir=path.parent.parent / "certs", **changes))


def test_run_with_a_config_bounds_the_work_queue_and_times_shadow_sync_from_it(synced_deployment, tmp_path):
    config_path = core_config_for(synced_deployment, tmp_path / "core" / "config" / "config.json",
                                  max_work_item_count=7, shadow_sync_timeout=1.5)
    args = build_parser().parse_args(["run", "--config", str(config_path)])
    with built(synced_deployment, run_options(args)) as running:
        assert running.core.work_queue.max_items == 7
        assert running.sync is not None and running.sync.timeout_s == 1.5
        assert running.options.spool_storage == DEFAULT_SPOOL_STORAGE == "FileSystem"
        assert running.link is not None
        assert running.link.settings.client_id == synced_deployment.group.core.thing_name


def test_run_without_those_keys_uses_the_defaults_and_options_win_over_the_file(synced_deployment, tmp_path):
    config_path = core_config_for(synced_deployment, tmp_path / "core" / "config" / "config.json")
    with built(synced_deployment, RunOptions(cloud_config=config_path)) as defaults:
        assert defaults.core.work_queue.max_items == DEFAULT_MAX_WORK_ITEMS
        assert defaults.sync is not None and defaults.sync.timeout_s == DEFAULT_SHADOW_SYNC_TIMEOUT_S

    bounded = core_config_for(synced_deployment, tmp_path / "bounded" / "config" / "config.json",
                              max_work_item_count=7, shadow_sync_timeout=1.5)
    with built(synced_deployment, RunOptions(cloud_config=bounded, max_work_items=3,
                                             shadow_sync_timeout_s=0.5)) as chosen:
        assert chosen.core.work_queue.max_items == 3
        assert chosen.sync is not None and chosen.sync.timeout_s == 0.5


def test_run_options_fill_their_limits_from_the_config_sections() -> None:
    options = RunOptions().resolved(None)
    assert (options.max_work_items, options.shadow_sync_timeout_s) == (
        DEFAULT_MAX_WORK_ITEMS, DEFAULT_SHADOW_SYNC_TIMEOUT_S)
    config = CoreConfig(a_config().core_thing, Runtime(max_work_item_count=9), System(shadow_sync_timeout=3))
    assert (RunOptions().resolved(config).max_work_items, RunOptions().resolved(config).shadow_sync_timeout_s) == (9, 3)
    assert RunOptions().spool_storage == build_parser().parse_args(["run"]).spool == DEFAULT_SPOOL_STORAGE
