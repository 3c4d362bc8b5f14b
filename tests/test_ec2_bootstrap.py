"""The EC2 core's boot, run for real in a throwaway Debian root (tests/support/debian_root.py).

The template's UserData (Fn::Sub applied as CloudFormation would) runs in the root as cloud-init runs it:
as root, with nothing but the variables that point each internet-reaching source at a local equivalent:
- the cfn-bootstrap tarball: a wheel made here whose `cfn-signal` records its arguments (the signal recorder);
- the S3 copy: a moto server on a free port, holding the bundle `group.package` makes and the model archive;
- uv's interpreters: the host's pyenv 3.11 and 3.8, bound read-only at their own paths (Debian 12's own
  python3.11 is 3.11.2, older than simcore needs: the bootstrap refuses it);
- the signal: cfn-signal's `--url`, recorded, never reached.
Python packages come from pip's index through a pip cache kept between runs beside the cached root.
Then the core is started from the unit the boot wrote, as systemd would start it (its WorkingDirectory,
EnvironmentFile, ExecStartPre, ExecStart, systemd's PATH), against a stand-in cloud on 127.0.0.1, which the
root shares with the host. The first boot takes minutes (the root, the packages); later ones reuse the caches.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from cfnlint.decode import cfn_yaml
from support.cloud import Collector, start_test_cloud
from support.debian_root import CA_BUNDLE, Bind, DebianRoot, cache_dir, cached_root_tarball
from support.fn_sub import fn_sub
from support.waiting import wait_until

from group.package import bundle_project
from group.setup import identity_for_local_cloud, write_setup
from simcore.cloud.local_aws import LocalAws
from simcore.core_config import read_core_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

PROJECT = Path(__file__).resolve().parents[1]
TEMPLATE = cfn_yaml.load(str(PROJECT / "cloudformation" / "greengrass-core-ec2.yaml"))
MODEL_ARCHIVE = PROJECT / "resources" / "rain_model" / "dist" / "rain-model.tar.gz"
BUCKET = "rain-edge-boot-test"
REGION = "eu-west-1"
THING = "RainEdgeCore"
STACK = "rain-core"
REPLAY_SPEED = "24"  # data hours per wall second
USER_DATA_PATH = "/var/lib/cloud/instance/user-data.txt"
BOOT_LOG = "/var/log/rain-edge-bootstrap.log"
SIGNALS = "/var/log/cfn-signal-recorder.jsonl"
UNIT = "/etc/systemd/system/rain-edge-core.service"
TEST_SOURCES = "/var/cache/rain-edge-test"
PIP_CACHE = "/var/cache/rain-edge-pip"
SIGNAL_URL = "http://127.0.0.1:9/signal-recorder"  # recorded by the stand-in cfn-signal, never contacted
BOOT_TIMEOUT_S = 1500
CORE_DEADLINE_S = 180

RECORDER = f'''"""A stand-in for cfn-signal: appends its arguments to {SIGNALS} as one JSON line."""
import json
import sys


def main():
    with open("{SIGNALS}", "a") as log:
        log.write(json.dumps(sys.argv[1:]) + "\\n")
    return 0
'''


def recorder_wheel(folder: Path) -> Path:
    """A wheel whose console script `cfn-signal` is the recorder, in place of the cfn-bootstrap tarball."""
    info = "cfn_signal_recorder-1.0.dist-info"
    files = {
        "cfn_signal_recorder.py": RECORDER,
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: cfn-signal-recorder\nVersion: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": "[console_scripts]\ncfn-signal = cfn_signal_recorder:main\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    wheel = folder / "cfn_signal_recorder-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return wheel


def pyenv_home(version: str) -> Path:
    """The host's pyenv CPython `version` (linked to its own prefix, so it is bound at the same path in the root)."""
    for candidate in sorted((Path.home() / ".pyenv" / "versions").glob(f"{version}.*/bin/python{version}")):
        if subprocess.run([str(candidate), "-c", "pass"], capture_output=True, check=False).returncode == 0:
            return candidate.parents[1]
    pytest.fail(f"the boot test points the bootstrap at pyenv's CPython {version}; this machine has none")


def user_data(s3_values: dict[str, str]) -> str:
    """The UserData the instance receives: Fn::Sub applied to the template's script."""
    body = json.loads(json.dumps(TEMPLATE["Resources"]["CoreInstance"]["Properties"]["UserData"]))
    values = {"AWS::StackName": STACK, "AWS::Region": REGION, "AWS::AccountId": "123456789012",
              "GroupStackName": "", "ThingName": THING, "CoreRuntime": "simcore", "GreengrassCoreTarballUrl": "",
              "SensorSource": "replay:JFK", "ReplaySpeed": REPLAY_SPEED, **s3_values}
    return fn_sub(body["Fn::Base64"]["Fn::Sub"], values)


@dataclass
class Boot:
    """A root the UserData ran in, and how to run it again."""

    root: DebianRoot
    environment: dict[str, str]
    result: subprocess.CompletedProcess
    seconds: float
    s3_endpoint: str
    work: Path

    def boot(self, **overrides: str) -> subprocess.CompletedProcess:
        """Run the UserData in the root again, with some variables changed."""
        return self.root.run(["bash", USER_DATA_PATH], {**self.environment, **overrides}, timeout=BOOT_TIMEOUT_S)

    def signals(self) -> list[list[str]]:
        """Every cfn-signal call's arguments, in order."""
        path = self.root.inside(SIGNALS)
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def log(self) -> str:
        return self.root.inside(BOOT_LOG).read_text()


def option(arguments: list[str], name: str) -> str:
    """The value after `name` in a command line."""
    return arguments[arguments.index(name) + 1]


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    """A moto S3 server on a free port of 127.0.0.1, which the root reaches as the host does. A `LocalAws`:
    moto's resources are per process, and a stand-in's local AWS stopping meanwhile keeps them only while it
    knows another one serves."""
    with LocalAws() as server:
        yield server.endpoint


@pytest.fixture(scope="module")
def booted(s3_server: str) -> Iterator[Boot]:
    """The UserData run once in a fresh root, against moto's S3 with the bundle and the model uploaded.

    Its folder is its own, not under the session's temporary folder: a concurrent pytest session prunes the
    older sessions' folders, which a boot of minutes would outlive.
    """
    if os.geteuid() != 0:
        pytest.skip("the boot runs as root in a chroot with its own mounts: run the suite as root, as CI does")
    work = Path(tempfile.mkdtemp(prefix="rain-edge-boot-", dir="/var/tmp"))
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=s3_server, aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.upload_file(str(bundle_project(PROJECT, work / "rain-edge-bundle.tar.gz")), BUCKET, "rain-edge-bundle.tar.gz")
    s3.upload_file(str(MODEL_ARCHIVE), BUCKET, "rain-model.tar.gz")
    sources = work / "sources"
    sources.mkdir()
    recorder = recorder_wheel(sources)
    pip_cache = cache_dir() / "pip"
    pip_cache.mkdir(parents=True, exist_ok=True)
    python311, python38 = pyenv_home("3.11"), pyenv_home("3.8")
    root = DebianRoot.unpack(cached_root_tarball(), work / "root")
    root.binds += [Bind(python311, str(python311), read_only=True), Bind(python38, str(python38), read_only=True),
                   Bind(sources, TEST_SOURCES, read_only=True), Bind(pip_cache, PIP_CACHE)]
    script = root.inside(USER_DATA_PATH)
    script.parent.mkdir(parents=True)
    script.write_text(user_data({"BundleS3Uri": f"s3://{BUCKET}/rain-edge-bundle.tar.gz",
                                 "ModelS3Uri": f"s3://{BUCKET}/rain-model.tar.gz"}))
    environment = {
        "HOME": "/root", "LANG": "C.UTF-8",
        # A chroot has no systemd running: systemctl enables offline and ignores daemon-reload and start.
        "SYSTEMD_OFFLINE": "1",
        "PIP_CACHE_DIR": PIP_CACHE, "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        # Byte-compiling every installed module is most of the boot's CPU and none of its behaviour.
        "PIP_NO_COMPILE": "1",
        # pip (and uv, curl) trust the CA bundle the root was given, not only their own.
        "PIP_CERT": CA_BUNDLE, "SSL_CERT_FILE": CA_BUNDLE,
        # The instance profile's stand-in: moto takes any key; the metadata service is never asked.
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true",
        "RAIN_EDGE_CFN_BOOTSTRAP": f"{TEST_SOURCES}/{recorder.name}",
        "RAIN_EDGE_S3_ENDPOINT": s3_server,
        "RAIN_EDGE_SIGNAL_URL": SIGNAL_URL,
        "RAIN_EDGE_PYTHON311": str(python311 / "bin" / "python3.11"),
        "RAIN_EDGE_PYTHON38": str(python38 / "bin" / "python3.8"),
    }
    started = time.monotonic()
    result = root.run(["bash", USER_DATA_PATH], environment, timeout=BOOT_TIMEOUT_S)
    boot = Boot(root, environment, result, time.monotonic() - started, s3_server, work)
    print(f"boot took {boot.seconds:.0f} s")
    yield boot
    shutil.rmtree(work, ignore_errors=True)


def test_boot_completes_and_signals_exit_code_0(booted: Boot) -> None:
    assert booted.result.returncode == 0, booted.result.stdout[-6000:]
    (call,) = booted.signals()
    assert option(call, "--exit-code") == "0"
    assert (option(call, "--stack"), option(call, "--resource"), option(call, "--region")) == (
        STACK, "CoreInstance", REGION)
    assert option(call, "--url") == SIGNAL_URL
    for step in ("boot-packages", "boot-tools", "bundle", "users", "layout", "interpreters", "venvs",
                 "lambda-access", "identity", "unit", "start", "signal"):
        assert f"== rain-edge bootstrap: {step}:" in booted.log(), step
    assert "rain-edge bootstrap: done" in booted.log()


def test_boot_creates_ggc_user_in_ggc_group(booted: Boot) -> None:
    groups = {line.split(":")[0]: line.split(":") for line in booted.root.inside("/etc/group").read_text().splitlines()}
    users = {line.split(":")[0]: line.split(":") for line in booted.root.inside("/etc/passwd").read_text().splitlines()}
    assert "ggc_group" in groups and "ggc_user" in users
    assert users["ggc_user"][3] == groups["ggc_group"][2]
    assert users["ggc_user"][6] == "/usr/sbin/nologin"
    assert int(users["ggc_user"][2]) < 1000  # a system account


def test_boot_lays_out_greengrass_with_owners_and_modes(booted: Boot) -> None:
    expected = {"/greengrass": 0o755, "/greengrass/config": 0o755, "/greengrass/ggc": 0o755,
                "/greengrass/certs": 0o700}
    for path, mode in expected.items():
        info = booted.root.inside(path).stat()
        assert (info.st_uid, info.st_gid, info.st_mode & 0o7777) == (0, 0, mode), path
    interpreters = {name: os.readlink(booted.root.inside(f"/usr/local/bin/{name}"))
                    for name in ("python3.11", "python3.8")}
    assert interpreters == {"python3.11": booted.environment["RAIN_EDGE_PYTHON311"],
                            "python3.8": booted.environment["RAIN_EDGE_PYTHON38"]}


def test_boot_writes_a_valid_unit_and_enables_it(booted: Boot) -> None:
    verified = booted.root.run(["systemd-analyze", "verify", UNIT], booted.environment)
    assert (verified.returncode, verified.stdout) == (0, ""), verified.stdout
    wanted = booted.root.inside("/etc/systemd/system/multi-user.target.wants/rain-edge-core.service")
    assert os.readlink(wanted) == UNIT


def unit_service(root: DebianRoot) -> dict[str, str]:
    """The [Service] settings of the unit the boot wrote (one line each)."""
    settings, section = {}, ""
    for line in root.inside(UNIT).read_text().splitlines():
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line:
            key, _, value = line.partition("=")
            settings[key] = value
    return settings


def unit_environment(root: DebianRoot, service: dict[str, str]) -> dict[str, str]:
    """What systemd gives the unit's commands: its EnvironmentFile (a leading `-`: may be missing)."""
    path = root.inside(service["EnvironmentFile"].lstrip("-"))
    lines = path.read_text().splitlines() if path.exists() else []
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_core_starts_from_the_unit_and_runs_both_lambdas(booted: Boot) -> None:
    assert booted.result.returncode == 0, "the boot failed: see test_boot_completes_and_signals_exit_code_0"
    tmp_path = booted.work / "core"
    cloud, _ = start_test_cloud(tmp_path / "cloud", thing=THING)
    core = None
    try:
        # The stack's ScpCommand and InstallSetupCommand: greengrass-setup.zip, unpacked under /greengrass.
        thing = read_core_config(cloud.config_path).core_thing
        identity = identity_for_local_cloud(
            thing_arn=thing.thing_arn, iot_host="127.0.0.1", port=cloud.port,
            cert_path=cloud.certs_dir / thing.cert_path, key_path=cloud.certs_dir / thing.key_path,
            ca_path=cloud.ca.ca_path)
        setup = write_setup(identity, tmp_path / "setup", root=Path("/greengrass"))
        shutil.copyfile(setup.zip_path, booted.root.inside("/tmp/greengrass-setup.zip"))
        unzipped = booted.root.run(["unzip", "-o", "/tmp/greengrass-setup.zip", "-d", "/greengrass"],
                                   booted.environment)
        assert unzipped.returncode == 0, unzipped.stdout

        service = unit_service(booted.root)
        # The instance profile's stand-in, beside what the boot wrote there.
        environment = {**unit_environment(booted.root, service), "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true"}
        assert environment["AWS_ENDPOINT_URL_S3"] == booted.s3_endpoint
        assert booted.root.inside("/greengrass/config/config.json").is_file()  # the unit's ConditionPathExists
        deployed = booted.root.run(shlex.split(service["ExecStartPre"]), environment, cwd=service["WorkingDirectory"])
        assert deployed.returncode == 0, deployed.stdout

        outputs = Collector(cloud, f"rain/{THING}/inference/output", name="boot-test-subscriber")
        core = booted.root.start(shlex.split(service["ExecStart"]), environment, cwd=service["WorkingDirectory"],
                                 output=tmp_path / "core.log")
        predictions = wait_until(
            outputs.payloads, CORE_DEADLINE_S,
            message=lambda: "no prediction reached the cloud from the core the unit started; its output:\n"
            + (tmp_path / "core.log").read_text()[-4000:])
        prediction = json.loads(predictions[0])
        # The inference Lambda predicts from shadow documents only the sensor Lambda writes: both ran.
        assert prediction["thing"] == THING and 0.0 <= prediction["p_rain"] <= 1.0
        assert "observed_rain" in prediction  # the replayed record's own observation, through both Lambdas
        outputs.stop()
    finally:
        if core is not None:
            core.send_signal(signal.SIGTERM)
            try:
                core.wait(timeout=60)
            except subprocess.TimeoutExpired:
                core.kill()
                core.wait()
        cloud.stop()


def test_a_failing_step_signals_1_and_names_the_step(booted: Boot) -> None:
    before = len(booted.signals())
    broken = booted.boot(RAIN_EDGE_PYTHON38="/opt/no-such-python/bin/python3.8")
    assert broken.returncode != 0
    calls = booted.signals()[before:]
    assert [option(call, "--exit-code") for call in calls] == ["1"]
    assert option(calls[0], "--reason").startswith("step interpreters failed")
    assert "rain-edge bootstrap: step 'interpreters' failed" in booted.log()
    assert "rain-edge bootstrap: step 'interpreters' failed" in broken.stdout

