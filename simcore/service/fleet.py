"""A fleet on one machine: N cores against one stand-in cloud, each its own thing, certificate, root and ports.

`fleet_up` needs a stand-in started with `--jobs` (its state dir holds the CA, cloud.json and jobs.json). For
each core `<prefix>-NN` it issues a certificate from the stand-in's CA, writes the core's config.json (the
stand-in's broker), registers the thing in the stand-in's local AWS and adds it to the thing group, deploys the
group's template as that thing (`ThingName`), and starts `simcore run --jobs --spool FileSystem` as a process of
its own (its own session: it outlives the command; IPC and control on free ports). `<fleet dir>/fleet.json`
(0600) records each core's thing, root and pid; `fleet_down` stops them (SIGTERM, then SIGKILL after a grace
period), only the processes it started: a pid is signalled only while its command line still names its root.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from simcore.cloud.ca import CA_FILE, LocalCA
from simcore.cloud.jobs_standin import read_jobs_settings
from simcore.core_config import CoreConfig, write_core_config
from simcore.defaults import DEFAULT_ACCOUNT_ID, DEFAULT_REGION
from simcore.errors import InputError, StartError
from simcore.private import private_file
from simcore.service.control import CONTROL_FILE

FLEET_FILE = "fleet.json"
START_TIMEOUT_S = 120.0
STOP_GRACE_S = 20.0


class FleetStateError(InputError):
    """The fleet cannot be brought up or down as asked (one is up already, none is, no stand-in with jobs)."""

    code = "FleetStateError"


@dataclass
class FleetMember:
    """One core of the fleet."""

    thing: str
    root: str
    config: str
    log: str
    pid: int


def _thing_group(iot: Any, name: str, things: list[str]) -> None:
    from botocore.exceptions import ClientError

    try:
        iot.create_thing_group(thingGroupName=name)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceAlreadyExistsException":
            raise
    for thing in things:
        iot.create_thing(thingName=thing)
        iot.add_thing_to_thing_group(thingGroupName=name, thingName=thing)


def fleet_up(count: int, standin_dir: Path, fleet_dir: Path, template: Path, parameters: Mapping[str, str], *,
             prefix: str = "fleet-core", thing_group: str = "simcore-fleet",
             interpreters: Mapping[str, str] | None = None, wait: bool = True) -> list[FleetMember]:
    """Start `count` cores; their records (also written to `<fleet_dir>/fleet.json`)."""
    from simcore.cloud.fleet_publish import FleetAccess
    from simcore.deploy.deployment import deploy

    if count < 1:
        raise FleetStateError("a fleet has at least 1 core")
    fleet_dir, standin_dir = Path(fleet_dir).absolute(), Path(standin_dir).absolute()
    if (fleet_dir / FLEET_FILE).exists():
        raise FleetStateError(f"a fleet is up in {fleet_dir}: `simcore fleet down --fleet-dir {fleet_dir}` first")
    try:
        settings = read_jobs_settings(standin_dir)
        cloud = json.loads((standin_dir / "cloud.json").read_text())
    except FileNotFoundError:
        raise FleetStateError(f"no stand-in with jobs runs in {standin_dir}: start it with `simcore cloud start "
                              f"--jobs --state-dir {standin_dir}`") from None
    # Not private: the Lambdas' user (ggc_user) must pass through to each core's code; keys stay in the
    # stand-in's certs folder, state under each root's 0700 var/.
    fleet_dir.mkdir(parents=True, exist_ok=True)
    certs_dir = standin_dir / "certs"
    ca = LocalCA(certs_dir)
    things = [f"{prefix}-{index:02d}" for index in range(1, count + 1)]
    _thing_group(FleetAccess.from_standin(settings).client("iot"), thing_group, things)
    members: list[FleetMember] = []
    try:
        for thing in things:
            members.append(_start_member(thing, fleet_dir, certs_dir, ca, cloud["port"], template, parameters,
                                         interpreters or {}, deploy))
            _write_fleet(fleet_dir, standin_dir, thing_group, members)
        if wait:
            for member in members:
                _wait_started(member)
    except BaseException:
        stop_members(members)
        (fleet_dir / FLEET_FILE).unlink(missing_ok=True)
        raise
    return members


def _start_member(thing: str, fleet_dir: Path, certs_dir: Path, ca: LocalCA, port: int, template: Path,
                  parameters: Mapping[str, str], interpreters: Mapping[str, str], deploy: Any) -> FleetMember:
    issued = ca.issue_thing(thing, file_stem=thing)
    home = fleet_dir / thing
    config_path = home / "config" / "config.json"
    write_core_config(config_path, CoreConfig.for_thing(
        f"arn:aws:iot:{DEFAULT_REGION}:{DEFAULT_ACCOUNT_ID}:thing/{thing}", "127.0.0.1", iot_mqtt_port=port,
        certs_dir=certs_dir, ca_file=CA_FILE, cert_file=issued.cert_path.name, key_file=issued.key_path.name,
        use_systemd=False))
    root = home / "root"
    deploy(template, {**parameters, "ThingName": thing}, root)
    log_path = home / "core.log"
    command = [sys.executable, "-m", "simcore", "run", "--root", str(root), "--config", str(config_path),
               "--certs-dir", str(certs_dir), "--jobs", "--spool", "FileSystem"]
    for runtime, path in interpreters.items():
        command += ["--runtime", f"{runtime}={path}"]
    package_parent = str(Path(__file__).resolve().parents[2])
    with open(private_file(log_path), "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, cwd=home,
                                   env={**os.environ, "PYTHONPATH": package_parent})
    return FleetMember(thing, str(root), str(config_path), str(log_path), process.pid)


def _wait_started(member: FleetMember) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    control = Path(member.root) / CONTROL_FILE
    while not control.exists():
        if not member_running(member):
            raise StartError(f"core {member.thing} exited at start; see {member.log}")
        if time.monotonic() > deadline:
            raise StartError(f"core {member.thing} did not start within {START_TIMEOUT_S:g} s; see {member.log}")
        time.sleep(0.1)


def _write_fleet(fleet_dir: Path, standin_dir: Path, thing_group: str, members: list[FleetMember]) -> None:
    path = private_file(fleet_dir / FLEET_FILE)
    path.write_text(json.dumps({"standin": str(standin_dir), "thingGroup": thing_group,
                                "members": [asdict(member) for member in members]}, indent=2) + "\n")


def read_fleet(fleet_dir: Path) -> dict[str, Any]:
    """The fleet.json of the fleet up in `fleet_dir` (FleetStateError when none is)."""
    try:
        return json.loads((Path(fleet_dir) / FLEET_FILE).read_text())
    except FileNotFoundError:
        raise FleetStateError(f"no fleet is up in {fleet_dir}") from None


def member_running(member: FleetMember) -> bool:
    """Whether `member.pid` is still that core (alive, not a zombie, its command line naming its root)."""
    try:
        stat = Path(f"/proc/{member.pid}/stat").read_text()
        command = Path(f"/proc/{member.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and member.root.encode() in command


def stop_members(members: list[FleetMember], grace_s: float = STOP_GRACE_S) -> int:
    """SIGTERM each member still running, SIGKILL those alive after `grace_s`; how many were running."""
    running = [member for member in members if member_running(member)]
    for member in running:
        os.kill(member.pid, signal.SIGTERM)  # the core stops its Lambdas itself
    deadline = time.monotonic() + grace_s
    while any(member_running(member) for member in running) and time.monotonic() < deadline:
        time.sleep(0.1)
    for member in running:
        if member_running(member):
            os.killpg(member.pid, signal.SIGKILL)  # its own session: the core and whatever it left running
    return len(running)


def fleet_down(fleet_dir: Path, grace_s: float = STOP_GRACE_S) -> int:
    """Stop the fleet up in `fleet_dir`; how many cores were running. Roots and logs stay."""
    fleet = read_fleet(fleet_dir)
    stopped = stop_members([FleetMember(**member) for member in fleet["members"]], grace_s)
    (Path(fleet_dir) / FLEET_FILE).unlink(missing_ok=True)
    return stopped
