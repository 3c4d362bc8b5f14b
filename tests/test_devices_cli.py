"""Devices from the command line: issue a device certificate, deploy a group that names it (GGIPDetector
accepted, a warning for a thing the group lacks), `simcore run` serving it, discovery at the stand-in,
`simcore cloud publish` reaching the device, `simcore devices` listing it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.devices import Inbox, mqtt_client
from support.waiting import wait_until

from simcore.cli.main import main
from simcore.cloud.ca import IssuedCertificate
from simcore.cloud.standin import start_standin
from simcore.deploy.record import read_status
from simcore.devices.group_ca import certificate_id_of_pem
from simcore.service.control import CONTROL_FILE

REPO = Path(__file__).resolve().parent.parent
GROUP = REPO / "tests" / "fixtures" / "devices" / "group.yaml"
CORE, DEVICE = "dev-core", "dev-sensor"


def issue_cert(state_dir: Path, capsys) -> dict:
    assert main(["cloud", "issue-cert", DEVICE, "--state-dir", str(state_dir)]) == 0
    return json.loads(capsys.readouterr().out)


def test_issue_cert_prints_the_id_of_the_certificate_it_wrote(tmp_path, capsys):
    issued = issue_cert(tmp_path / "cloud", capsys)
    assert issued["certificateId"] == certificate_id_of_pem(Path(issued["certificate"]).read_bytes())
    assert issued["certificateArn"].endswith(f":cert/{issued['certificateId']}")
    assert Path(issued["privateKey"]).stat().st_mode & 0o077 == 0


def test_issue_cert_refuses_a_thing_name_aws_iot_would_refuse(tmp_path, capsys):
    assert main(["cloud", "issue-cert", "no spaces", "--state-dir", str(tmp_path)]) == 3
    assert "thing name" in capsys.readouterr().err


@pytest.fixture
def served(tmp_path, capsys):
    cloud = start_standin(tmp_path / "cloud", 0, CORE)
    root = tmp_path / "core"
    issued = issue_cert(tmp_path / "cloud", capsys)
    assert main(["deploy", str(GROUP), "--root", str(root), "--param", f"ThingName={CORE}",
                 "--param", f"DeviceCertificateId={issued['certificateId']}"]) == 0
    process = subprocess.Popen(
        [sys.executable, "-m", "simcore", "run", "--root", str(root), "--config", str(cloud.config_path),
         "--device-port", "0", "--discovery-port", "0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_until(lambda: (root / CONTROL_FILE).exists() or process.poll() is not None, 60,
                   message="the core to start", interval_s=0.1)
        assert process.poll() is None, process.stdout.read()
        yield root, cloud, issued
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(30)
        cloud.stop()


def test_deploy_accepts_ggipdetector_and_warns_about_a_subscription_to_a_thing_not_in_the_group(served):
    root, _cloud, _issued = served
    warnings = read_status(root)["Warnings"]
    assert any("echo-to-nobody" in line and "absent-device" in line for line in warnings), warnings


def test_a_device_found_at_the_stand_ins_discovery_gets_a_cloud_publish_and_simcore_devices_lists_it(
        served, capsys, tmp_path):
    from AWSIoTPythonSDK.core.greengrass.discovery.providers import DiscoveryInfoProvider

    from simcore.cli.cloud import _start_discovery

    root, cloud, issued = served
    capsys.readouterr()  # what deploy printed
    assert main(["devices", "--root", str(root), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    # GGIPDetector: the core advertises its interface addresses (AUTOIP_<ip>_<n>), the loopback among them.
    assert all(entry["id"].startswith("AUTOIP_") for entry in status["connectivity"])
    assert "127.0.0.1" in [entry["host_address"] for entry in status["connectivity"]]

    discovery = _start_discovery(cloud, 0, root)  # what `simcore cloud start --discovery-port` serves
    try:
        provider = DiscoveryInfoProvider(caPath=str(cloud.ca.ca_path), certPath=issued["certificate"],
                                         keyPath=issued["privateKey"], host="127.0.0.1", port=discovery.port,
                                         timeoutSec=10)
        info = provider.discover(DEVICE)
    finally:
        discovery.stop()
    group_id, ca_pem = info.getAllCas()[0]
    (tmp_path / "group-ca.crt").write_text(ca_pem)
    first = info.getAllCores()[0].connectivityInfoList[0]  # basicDiscovery.py tries them in order
    cert = IssuedCertificate(Path(issued["certificate"]), Path(issued["privateKey"]), issued["certificateId"])
    client = mqtt_client(DEVICE, cert, tmp_path / "group-ca.crt", first.host, first.port)
    inbox = Inbox()
    assert client.connect()
    try:
        assert client.subscribe(f"devices/{DEVICE}/command", 0, inbox)

        def published_and_heard():
            assert main(["cloud", "publish", f"devices/{DEVICE}/command", '{"blink": 3}',
                         "--config", str(cloud.config_path)]) == 0
            return inbox.on(f"devices/{DEVICE}/command")

        assert wait_until(published_and_heard, interval_s=0.5, message="the cloud's message at the device") \
            [0] == {"blink": 3}
        capsys.readouterr()
        assert main(["devices", "--root", str(root)]) == 0
        table = capsys.readouterr().out
        assert any(line.startswith(f"{DEVICE}  yes  ") for line in table.splitlines()), table
    finally:
        client.disconnect()


def test_deploy_makes_the_group_ca_under_the_root_and_discovery_serves_it(served):
    root, _cloud, _issued = served
    ca = root / "var" / "state" / "group-ca" / "ca.crt"
    assert (root / "var" / "state" / "group-ca" / "ca.key").stat().st_mode & 0o077 == 0
    served_by_core = json.loads((root / "var" / "state" / "discovery.json").read_text())["ca_pem"]
    assert served_by_core == ca.read_text()
