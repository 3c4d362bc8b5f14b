"""The fleet tests' world: a stand-in cloud with IoT Jobs over the session's moto server, and cores (in this
process, each a `RunningCore` with its jobs agent, its own thing, certificate and root) that run the fleet
fixture group; a cloud-side pinger that sends fleet/<thing>/ping and records the pongs."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from simcore.cloud.ca import CA_FILE
from simcore.cloud.fleet_publish import FleetAccess, job_status
from simcore.cloud.jobs_standin import start_jobs
from simcore.cloud.link import CloudLink
from simcore.core_config import CoreConfig, write_core_config
from simcore.deploy.bundle import build_bundle
from simcore.deploy.deployment import deploy
from simcore.service.running import RunningCore, RunOptions
from support.cloud import FAST_BACKOFF, TcpGate, start_test_cloud
from support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "tests" / "fixtures" / "fleet" / "group.yaml"
PY38 = REPO / ".venv-py38" / "bin" / "python"


def interpreters() -> dict[str, str]:
    """python3.8 on the project's 3.8 venv when there is one."""
    return {"python3.8": str(PY38)} if PY38.exists() else {}


@dataclass
class FleetCore:
    """One core of the fleet."""

    thing: str
    root: Path
    config_path: Path
    running: RunningCore
    gate: TcpGate | None = None

    def version(self) -> str | None:
        """The GroupVersion parameter of the deployment it runs."""
        return self.running.deployment.parameters.get("GroupVersion")

    def stop(self) -> None:
        """Stop the core (and its gate)."""
        if not self.running.stopped.is_set():
            self.running.stop()
        if self.gate is not None:
            self.gate.shutdown()


class FleetWorld:
    """The stand-in with jobs, its fleet access (what `--standin` gives the CLI), and the cores started."""

    def __init__(self, tmp: Path, aws_endpoint: str):
        self.tmp = tmp
        self.cloud, _ = start_test_cloud(tmp / "cloud", thing="fleet-standin-core")
        self.jobs = start_jobs(self.cloud, aws_endpoint)
        self.access = FleetAccess.from_standin(self.jobs.settings)
        self.iot = self.access.client("iot")
        self.cores: list[FleetCore] = []
        self.prefix = uuid.uuid4().hex[:6]

    def thing_group(self, things: list[str]) -> str:
        """A new thing group in the local AWS holding `things` (registered there too); its name."""
        name = f"fleet-{self.prefix}-{uuid.uuid4().hex[:4]}"
        self.iot.create_thing_group(thingGroupName=name)
        for thing in things:
            self.iot.add_thing_to_thing_group(thingGroupName=name, thingName=thing)
        return name

    def start_core(self, name: str, version: str = "1", *, gated: bool = False, settle_s: float = 1.5) -> FleetCore:
        """A core for thing `name` running version `version` (a local deploy, not a job), jobs agent on."""
        thing = f"{self.prefix}-{name}"
        self.iot.create_thing(thingName=thing)
        issued = self.cloud.ca.issue_thing(thing, file_stem=thing)
        gate = TcpGate(self.cloud.port) if gated else None
        config_path = self.tmp / thing / "config" / "config.json"
        write_core_config(config_path, CoreConfig.for_thing(
            f"arn:aws:iot:us-east-1:123456789012:thing/{thing}", "127.0.0.1",
            iot_mqtt_port=gate.port if gate else self.cloud.port, certs_dir=self.cloud.certs_dir, ca_file=CA_FILE,
            cert_file=issued.cert_path.name, key_file=issued.key_path.name, use_systemd=False))
        root = self.tmp / thing / "root"
        deployment = deploy(TEMPLATE, {"ThingName": thing, "GroupVersion": version}, root)
        running = RunningCore(deployment, RunOptions(
            interpreters=interpreters(), cloud_config=config_path, certs_dir=self.cloud.certs_dir, jobs=True,
            swap_settle_s=settle_s, jobs_poll_s=2.0, link_overrides=FAST_BACKOFF))
        running.start()
        core = FleetCore(thing, root, config_path, running, gate)
        self.cores.append(core)
        wait_until(lambda: running.link.connected, 30, message=f"{thing} to connect")
        return core

    def bundle(self, version: str, **parameters: str) -> Path:
        """The fleet group's bundle at GroupVersion `version`."""
        path = self.tmp / f"bundle-{version}-{uuid.uuid4().hex[:4]}.zip"
        build_bundle(TEMPLATE, {"GroupVersion": version, **parameters}, path)
        return path

    def status(self, job_id: str) -> dict:
        """`simcore group status`'s data."""
        return job_status(self.access, job_id)

    def wait_job(self, job_id: str, statuses: dict[str, str], timeout_s: float = 90.0) -> dict:
        """Wait until each thing's execution has the status `statuses` names; the job's status."""
        def reached():
            status = self.status(job_id)
            seen = {thing["thing"]: thing["status"] for thing in status["things"]}
            return status if all(seen.get(thing) == wanted for thing, wanted in statuses.items()) else None

        return wait_until(reached, timeout_s, message=lambda: f"job {job_id} to reach {statuses}: "
                          f"{json.dumps(self.status(job_id)['things'])}", interval_s=0.3)

    def stop(self) -> None:
        """Stop every core, then the jobs service and the stand-in."""
        for core in self.cores:
            core.stop()
        self.jobs.stop()
        self.cloud.stop()


@dataclass
class Pinger:
    """A cloud-side client that pings cores and records each pong (id → version answered)."""

    world: FleetWorld
    pongs: dict[str, dict[int, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.link = CloudLink(self.world.cloud.client_settings(f"pinger-{uuid.uuid4().hex[:6]}", **FAST_BACKOFF))
        self.link.subscribe("fleet/+/pong", self._record)
        self.link.start()
        wait_until(lambda: self.link.connected, 20, message="the pinger to connect")

    def _record(self, topic: str, payload: bytes) -> None:
        body = json.loads(payload)
        with self._lock:
            self.pongs.setdefault(topic.split("/")[1], {})[body["id"]] = body["version"]

    def ping(self, thing: str, ping_id: int, slow_on: str | None = None, sleep_s: float = 0.0) -> None:
        """Send ping `ping_id` to `thing` (QoS 1, spooled until the broker has it); version `slow_on` takes
        `sleep_s` to answer it."""
        body = {"id": ping_id, "slow_version": slow_on, "sleep": sleep_s}
        self.link.publish(f"fleet/{thing}/ping", json.dumps(body).encode())

    def answered(self, thing: str) -> dict[int, str]:
        """The pongs from `thing` so far."""
        with self._lock:
            return dict(self.pongs.get(thing, {}))

    def stop(self) -> None:
        """Disconnect."""
        self.link.stop()
