"""The device side's rules without a network: filter overlap, connectivity flags, discovery answers, config."""

from __future__ import annotations

import pytest

from simcore.core_config import CoreConfigError, from_document
from simcore.deploy.record import group_from_json, group_to_json
from simcore.devices.connectivity import connectivity, parse_host_port
from simcore.devices.discovery import answer, discovery_record
from simcore.errors import InputError
from simcore.group import Core, Group
from simcore.topics import filters_overlap


@pytest.mark.parametrize(("first", "second", "overlap"), [
    ("sensors/+/reading", "sensors/a/reading", True),
    ("sensors/#", "sensors/a/reading", True),
    ("sensors/+", "sensors/a/reading", False),
    ("a/b", "a/c", False),
    ("#", "anything/at/all", True),
    ("$aws/things/x/shadow/#", "$aws/things/x/shadow/update/accepted", True),
])
def test_filters_overlap_when_some_topic_matches_both(first, second, overlap):
    assert filters_overlap(first, second) is overlap
    assert filters_overlap(second, first) is overlap


def test_connectivity_flags_parse_host_and_port_and_refuse_nonsense():
    assert parse_host_port("192.168.1.4:8883", 0) == ("192.168.1.4", 8883)
    assert parse_host_port("core.local", 0) == ("core.local", 0)
    assert parse_host_port("[::1]:8884", 0) == ("::1", 8884)
    with pytest.raises(InputError, match="HOST:PORT"):
        parse_host_port("host:port", 0)
    with pytest.raises(InputError, match="1-65535"):
        parse_host_port("host:70000", 0)


def test_given_connectivity_takes_the_server_port_where_none_was_given():
    entries = connectivity(False, [("10.0.0.2", 0), ("core.local", 9000)], 8883)
    assert [(entry.host_address, entry.port) for entry in entries] == [("10.0.0.2", 8883), ("core.local", 9000)]
    auto = connectivity(True, [("ignored", 1)], 8883)
    assert auto and all(entry.id.startswith("AUTOIP_") and entry.port == 8883 for entry in auto)
    assert auto[-1].host_address == "127.0.0.1"


def test_discovery_refuses_a_device_asking_about_another_thing_403():
    record = discovery_record("g", "arn:aws:iot:us-east-1:1:thing/core", [], "PEM", {"a": "1" * 64, "b": "2" * 64})
    assert answer(record, "b", "1" * 64)[0] == 403
    assert answer(record, "a", "1" * 64)[0] == 200


def test_the_group_record_keeps_its_system_functions():
    core = Core("c", "core", "arn:aws:iot:us-east-1:123456789012:thing/core", "arn:aws:iot:x")
    group = Group("g", "us-east-1", "123456789012", cores=(core,), system_functions=("GGIPDetector",))
    assert group_from_json(group_to_json(group)).system_functions == ("GGIPDetector",)
    legacy = group_to_json(group)
    del legacy["system_functions"]
    assert group_from_json(legacy).system_functions == ()


def test_gg_mqtt_port_is_read_and_checked():
    document = {"coreThing": {"thingArn": "arn:aws:iot:us-east-1:123456789012:thing/core", "caPath": "ca",
                              "certPath": "c", "keyPath": "k", "ggMqttPort": 8884}}
    assert from_document(document).core_thing.gg_mqtt_port == 8884
    document["coreThing"]["ggMqttPort"] = 80
    with pytest.raises(CoreConfigError, match="1024-65535"):
        from_document(document)


def test_a_taken_device_port_is_one_clear_error_naming_the_flag(tmp_path):
    import socket

    from simcore.cloud.ca import LocalCA
    from simcore.devices.server import DeviceOptions, DeviceServer
    from simcore.errors import StartError

    ca = LocalCA(tmp_path / "ca")
    core = Core("c", "core", "arn:aws:iot:us-east-1:123456789012:thing/core", "arn:aws:iot:x")
    group = Group("g", "us-east-1", "123456789012", cores=(core,))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        server = DeviceServer(group, tmp_path / "state", lambda *_: None,
                              DeviceOptions(device_ca=ca.ca_path, port=taken, host="127.0.0.1"))
        with pytest.raises(StartError, match="--device-port"):
            server.start()


@pytest.mark.parametrize("name", ["GGConnManager", "GGDeviceCertificateManager", "GGIPDetector"])
def test_the_system_functions_a_group_lists_are_accepted_and_recorded(tmp_path, name):
    from pathlib import Path

    from simcore.template.loader import load_group

    fixtures = Path(__file__).resolve().parent / "fixtures"
    text = (fixtures / "devices" / "group.yaml").read_text()
    template = tmp_path / "devices" / "group.yaml"
    template.parent.mkdir()
    template.write_text(text.replace("function:GGIPDetector:1", f"function:{name}"))
    (tmp_path / "cli").symlink_to(fixtures / "cli")
    group = load_group(template, {"DeviceCertificateId": "a" * 64})
    assert group.system_functions == (name,)
    assert [function.name for function in group.functions] == ["rain-edge-echo"]  # no Lambda for it
