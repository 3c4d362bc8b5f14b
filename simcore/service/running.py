"""A core as a long-running service: the deployed group, its cloud link and shadow sync, a control endpoint.

`simcore run` and `simcore demo` both build a `RunningCore` from a deployment; the CLI only parses options.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simcore.cloud.jobs_agent import JobsAgent
from simcore.cloud.link import CloudLink
from simcore.cloud.settings import link_settings
from simcore.cloud.spooler import make_spooler
from simcore.cloud.sync import ShadowSync, synced_things
from simcore.connectors.registry import build_registry
from simcore.connectors.uploader import AwsAccess
from simcore.core.assemble import Core, default_shadow_service
from simcore.core.credential_sources import IotCredentialsProvider, choose_source
from simcore.core.logs import LogLayout, LogWriter
from simcore.core.secrets import secret_store_from_records
from simcore.core_config import CoreConfig, Runtime, System, default_certs_dir, read_core_config
from simcore.defaults import (
    DEFAULT_MQTT_PORT,
    DEFAULT_SPOOL_MAX_BYTES,
    DEFAULT_SPOOL_STORAGE,
    DEFAULT_SWAP_DRAIN_S,
    DEFAULT_SWAP_HELD_MESSAGES,
    DEFAULT_SWAP_SETTLE_S,
)
from simcore.deploy.record import Deployment
from simcore.deploy.secrets import read_stored_secrets
from simcore.errors import RuntimeConfigError, SimcoreError
from simcore.group import CLOUD
from simcore.private import private_dir
from simcore.service.control import ControlServer
from simcore.service.fleet_job import DeploymentJobs
from simcore.service.health import wait_pinned_healthy

if TYPE_CHECKING:
    from simcore.devices.server import DeviceServer

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    """How to run a deployment. `cloud_config` is a v1 `config.json` (None: no cloud link).

    `max_work_items` and `shadow_sync_timeout_s` left None come from that config.json's
    `runtime.maxWorkItemCount` and `system.shadowSyncTimeout`, else from simcore.defaults.
    `allow_functions_to_run_as_root` left None comes from `runtime.allowFunctionsToRunAsRoot` of that
    config.json, else of the deployment's own `config/config.json` (absent: no, as on a v1 core).
    """

    isolation: str | None = "off"
    interpreters: Mapping[str, str] = field(default_factory=dict)
    ipc_port: int = 0
    cloud_config: Path | None = None
    certs_dir: Path | None = None
    spool_storage: str = DEFAULT_SPOOL_STORAGE
    spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES
    shadow_sync_timeout_s: float | None = None
    max_work_items: int | None = None
    allow_functions_to_run_as_root: bool | None = None
    # The group's devices (simcore.devices): the MQTT server's port (None: config.json's
    # `coreThing.ggMqttPort`, else 8883; 0: any free port), the address it binds, the connectivity advertised
    # without GGIPDetector, discovery's port (None: no local discovery) and the CA device certificates chain
    # to (None: the cloud config's caPath).
    device_port: int | None = None
    device_host: str = "0.0.0.0"
    connectivity: list[tuple[str, int]] = field(default_factory=list)
    discovery_port: int | None = None
    device_ca: Path | None = None
    # The IoT Jobs agent (docs/fleet.md): deployments from jobs, on the cloud link's connection.
    jobs: bool = False
    swap_settle_s: float = DEFAULT_SWAP_SETTLE_S
    jobs_poll_s: float = 30.0
    link_overrides: Mapping[str, Any] = field(default_factory=dict)  # LinkSettings fields (tests: fast backoff)

    def resolved(self, config: CoreConfig | None) -> RunOptions:
        """These options with every None limit filled from `config` (the one `cloud_config` names) or the defaults."""
        runtime, system = (config.runtime, config.system) if config is not None else (Runtime(), System())
        return dataclasses.replace(
            self,
            max_work_items=runtime.max_work_items if self.max_work_items is None else self.max_work_items,
            shadow_sync_timeout_s=(system.shadow_sync_timeout_s if self.shadow_sync_timeout_s is None
                                   else self.shadow_sync_timeout_s),
            allow_functions_to_run_as_root=bool(runtime.allow_functions_to_run_as_root
                                                if self.allow_functions_to_run_as_root is None
                                                else self.allow_functions_to_run_as_root),
        )


def credential_source_for(config: CoreConfig | None, certs_dir: Path | None):
    """The token exchange service's source for `config` (`choose_source`'s order) and its start warning."""
    if config is None:
        return choose_source(credentials_endpoint=None, role_alias=None, thing_name=None, cert_path=None,
                             key_path=None, ca_path=None)
    thing = config.core_thing
    if certs_dir is None and config.path is not None:
        certs_dir = default_certs_dir(config.path)

    def cert_file(value: str) -> Path | None:
        # v1 config.json names files relative to /greengrass/certs; `file://` URIs appear in `crypto`.
        path = Path(value.removeprefix("file://"))
        if path.is_absolute():
            return path
        return Path(certs_dir) / path if certs_dir is not None else None

    return choose_source(credentials_endpoint=thing.credentials_endpoint, role_alias=thing.role_alias,
                         thing_name=thing.name, cert_path=cert_file(thing.cert_path),
                         key_path=cert_file(thing.key_path), ca_path=cert_file(thing.ca_path))


def _deployment_config(deployment: Deployment) -> CoreConfig | None:
    """The config.json the deployment wrote (`config/config.json`), or None when it has none."""
    path = deployment.directory / "config" / "config.json"
    return read_core_config(path) if path.exists() else None


class RunningCore:
    """The deployed group running: Core + shadows (SQLite) + optional cloud link and shadow sync + control."""

    def __init__(self, deployment: Deployment, options: RunOptions):
        self.deployment = deployment
        # Read once: the link's identity and endpoint, and the core's limits, come from the same file.
        self.core_config = read_core_config(options.cloud_config) if options.cloud_config is not None else None
        effective_config = self.core_config or _deployment_config(deployment)
        options = options.resolved(effective_config)
        # Kept for every version a swap builds: the Lambdas' credentials come from the same place.
        self._credential_source, self._credentials_warning = credential_source_for(effective_config,
                                                                                   options.certs_dir)
        # The stand-in's local AWS, only when linked to the stand-in (its config.json names it; AWS's never does).
        self._local_aws = self.core_config.core_thing.local_aws_endpoint if self.core_config is not None else None
        self.options = options
        root = deployment.root
        private_dir(root / "var")  # the shadows, spool, logs: the core's alone
        # The core's own default, built here because shadow sync and the control endpoint need it too.
        self.shadow_service = default_shadow_service(root)
        self.shadow_engine = self.shadow_service.engine
        self._connector_logs: list[LogWriter] = []
        self.core, self.connectors = self._build_core(deployment)
        self._swap_lock = threading.Lock()
        self._held: list[tuple[str, bytes]] | None = None  # inbound cloud messages held during a swap
        self.link: CloudLink | None = None
        self.sync: ShadowSync | None = None
        self.jobs_agent: JobsAgent | None = None
        if options.cloud_config is not None:
            self._build_cloud_link(options)
        self.devices: DeviceServer | None = None
        if deployment.group.devices:
            self.devices = self._build_device_server(options)
            self.core.set_devices(self.devices)
        self.control = ControlServer(
            root,
            {
                "status": lambda _arguments: self.status(),
                "publish": self._publish_command,
                "shadow": self._shadow_command,
                "stop": self._stop_command,
                "devices": lambda _arguments: self.devices_status(),
            },
        )
        self.stopped = threading.Event()

    def _build_core(self, deployment: Deployment) -> tuple[Core, Any]:
        """The Core and connectors of `deployment`, over this service's shadows (nothing runs yet)."""
        options = self.options
        # Linked to a cloud whose credentials provider config.json names: the connectors' files go up to AWS (or
        # the stand-in's local AWS) with the credentials the Lambdas get (docs/credentials.md, docs/connectors.md).
        upload = None
        if self.core_config is not None and isinstance(self._credential_source, IotCredentialsProvider):
            upload = AwsAccess(self._lambda_credentials, self._local_aws)
        connectors = build_registry(
            deployment.group, deployment.root, publish=self._connector_publish,
            cloud_available=options.cloud_config is not None, resource_dirs=deployment.resource_dirs,
            open_log=self._open_connector_log, aws=upload,
        )
        core = Core(
            deployment.group,
            runtime_root=deployment.root,
            code_dirs=deployment.function_dirs,
            resource_dirs=deployment.resource_dirs,
            shadow_service=self.shadow_service,
            connectors=connectors,
            secret_store=secret_store_from_records(
                deployment.group, read_stored_secrets(deployment.group, deployment.directory)
            ),
            isolation=options.isolation,
            allow_functions_to_run_as_root=bool(options.allow_functions_to_run_as_root),
            interpreters=options.interpreters,
            ipc_port=options.ipc_port,
            max_work_items=options.max_work_items,
            credential_source=self._credential_source,
            credentials_warning=self._credentials_warning,
            aws_endpoint_url=self._local_aws,
        )
        return core, connectors

    def _build_cloud_link(self, options: RunOptions) -> None:
        spool_path = self.deployment.root / "var" / "spool.sqlite"
        spooler = make_spooler(options.spool_storage, spool_path, options.spool_max_bytes)
        self.link = CloudLink(link_settings(self.core_config, options.certs_dir, **options.link_overrides), spooler)
        self._subscribe_cloud(self.deployment)
        things = synced_things(self.deployment.group)
        if things:
            self.sync = ShadowSync(
                self.link,
                self.shadow_engine,
                things,
                # Through `self.core` at each call: a swap replaces the core.
                local_request=lambda topic, payload: self.core.shadow_request(topic, payload),
                timeout_s=options.shadow_sync_timeout_s,
            )
            self.shadow_service.listeners.append(self.sync.on_local_change)
        self.core.set_cloud(self.link)
        if options.jobs:
            self.jobs_agent = JobsAgent(self.link, self.core_config.core_thing.name,
                                        DeploymentJobs(self, settle_s=options.swap_settle_s),
                                        poll_s=options.jobs_poll_s)

    def _build_device_server(self, options: RunOptions) -> DeviceServer:
        # Imported only for a group with devices: a core without them loads no broker and no cryptography.
        from simcore.devices.server import DeviceOptions, DeviceServer

        device_ca = options.device_ca
        if device_ca is None and self.core_config is not None:
            device_ca = link_settings(self.core_config, options.certs_dir).ca_path
        if device_ca is None:
            raise RuntimeConfigError("the group has devices: pass --device-ca (the CA their certificates chain "
                                     "to) or --config (its caPath is used)")
        port = options.device_port
        if port is None:
            configured = self.core_config.core_thing.gg_mqtt_port if self.core_config is not None else None
            port = configured or DEFAULT_MQTT_PORT
        return DeviceServer(
            self.deployment.group, self.deployment.root / "var" / "state",
            lambda source, topic, payload: self.core.publish(topic, payload, source=source,
                                                             queue_full_policy="BestEffort"),
            DeviceOptions(device_ca=Path(device_ca), port=port, host=options.device_host,
                          connectivity=list(options.connectivity), discovery_port=options.discovery_port),
        )

    def devices_status(self) -> dict[str, Any]:
        """The device server's status (`simcore devices`); `{"running": false}` for a group without devices."""
        return self.devices.status() if self.devices is not None else {"running": False, "devices": {}}

    def _open_connector_log(self, name: str) -> Callable[[str, str], None]:
        """A connector's log, `var/log/user/<region>/aws/<name>.log`, as (level, message) -> None."""
        writer = LogWriter(LogLayout(self.deployment.root).connector_log(self.deployment.group.region, name))
        self._connector_logs.append(writer)

        def line(level: str, message: str) -> None:
            writer.log(level, "connector.py", 0, message)

        return line

    def _lambda_credentials(self) -> dict[str, str]:
        """The token exchange service's current credentials, as botocore's container document."""
        return self.core.token_exchange.credentials().container_document()

    def _connector_publish(self, topic: str, payload: bytes, source: str) -> None:
        self.core.publish(topic, payload, source=source)

    def _from_cloud(self, topic: str, payload: bytes) -> None:
        with self._swap_lock:
            if self._held is not None:  # a swap is on: the version that runs after it gets the message
                if len(self._held) < DEFAULT_SWAP_HELD_MESSAGES:
                    self._held.append((topic, payload))
                else:
                    log.warning("inbound cloud message on %s dropped: %d held during the swap",
                                topic, DEFAULT_SWAP_HELD_MESSAGES)
                return
        self._route_from_cloud(topic, payload)

    def _route_from_cloud(self, topic: str, payload: bytes) -> None:
        try:
            self.core.publish(topic, payload, source=CLOUD)
        except Exception as error:  # one bad inbound message must not stop the link's thread
            log.warning("inbound cloud message on %s not routed: %s", topic, error)

    def start(self) -> None:
        """Start the core (pinned Lambdas start now), the cloud link and sync, then the control endpoint."""
        self.core.start()
        if self.devices is not None:
            try:
                self.devices.start()
            except BaseException:
                self.core.stop()
                raise
        if self.link is not None:
            self.link.start()
        if self.sync is not None:
            self.sync.start()
        if self.jobs_agent is not None:
            self.jobs_agent.start()
        self.control.start()

    def stop(self) -> None:
        """Stop everything; shadows and the file spool stay on disk."""
        self.control.stop()
        if self.jobs_agent is not None:
            self.jobs_agent.stop()
        if self.sync is not None:
            self.sync.stop()
        if self.devices is not None:
            self.devices.stop()
        self.core.stop()
        # After the workers (nothing new arrives) and before the link (their last statuses reach the spool).
        self.connectors.stop()
        for writer in self._connector_logs:
            writer.close()
        if self.link is not None:
            self.link.stop()
            self.link.spooler.close()
        self.stopped.set()

    def swap(self, deployment: Deployment, *, settle_s: float = DEFAULT_SWAP_SETTLE_S,
             drain_s: float = DEFAULT_SWAP_DRAIN_S, cancelled: threading.Event | None = None) -> str | None:
        """Replace the running Lambdas by `deployment`'s (already current on disk); None when it runs healthy.

        Shadows, the cloud link, its spool and shadow sync stay up throughout. Inbound cloud messages are held
        meanwhile and go to whichever version runs afterwards. The old version's queued work gets up to
        `drain_s` to be handled before its Lambdas stop; what is left (with the items its workers held) is
        handed to the next version's functions of the same ARN. The new version must keep its pinned Lambdas up for
        `settle_s` (see `pinned_failure`); if it does not, it is stopped, the old deployment is made current
        again on disk (`rollback`) and started again, and the reason is returned.
        """
        previous = self.deployment
        with self._swap_lock:
            self._held = []
        try:
            carried = self._stop_core(drain_s)
            try:
                self.core, self.connectors = self._build_core(deployment)
                self._start_core(deployment, carried)
                reason = wait_pinned_healthy(self.core, settle_s, cancelled)
            except SimcoreError as error:
                reason = error.describe()
            if reason is None:
                self.deployment = deployment
                return None
            log.warning("deployment %s failed after the swap: %s; rolling back to %s",
                        deployment.number, reason, previous.number)
            carried = self._stop_core(0.0) or carried
            from simcore.deploy.deployment import rollback  # only now: a running core never loads the template code

            rollback(previous.root)
            self.core, self.connectors = self._build_core(previous)
            self._start_core(previous, carried)
            return reason
        finally:
            with self._swap_lock:
                held, self._held = self._held or [], None
            for topic, payload in held:
                self._route_from_cloud(topic, payload)

    def _start_core(self, deployment: Deployment, carried: dict[str, list[Any]]) -> None:
        """Start the (new) core with the work the one before it had accepted and not done, for the functions
        both versions have, in its order."""
        arns = {function.arn for function in deployment.group.functions}
        for arn, items in carried.items():
            if arn not in arns:
                log.warning("%d work items for %s dropped: the new version has no such function", len(items), arn)
                continue
            for item in reversed(items):
                self.core.work_queue.put_back(item)
        self._subscribe_cloud(deployment)
        if self.devices is not None:  # the same device server (sessions kept), now routing into this core
            self.core.set_devices(self.devices)
        self.core.start()
        self.core.set_cloud(self.link)

    def _stop_core(self, drain_s: float) -> dict[str, list[Any]]:
        """Let the queued work drain (up to `drain_s`), stop the Lambdas and the connectors; the work items
        still queued (a stopped worker puts back the item it held), by function ARN."""
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline and self.core.work_queue.queued_bytes > 0:
            time.sleep(0.05)
        self.core.set_cloud(None)
        self.core.stop()
        self.connectors.stop()
        for writer in self._connector_logs:
            writer.close()
        self._connector_logs.clear()
        queue = self.core.work_queue
        return {function.arn: items for function in self.core.group.functions if (items := queue.drain(function.arn))}

    def _subscribe_cloud(self, deployment: Deployment) -> None:
        if self.link is not None:
            for subscription in deployment.group.subscriptions:
                if subscription.source == CLOUD:
                    self.link.subscribe(subscription.subject, self._from_cloud)

    def status(self) -> dict[str, Any]:
        """The core's status, with the cloud link and sync when present."""
        status = self.core.status()
        status["deployment"] = {"id": self.deployment.id, "number": self.deployment.number}
        status["connectors"] = self.connectors.status()
        status["shadow"] = self.shadow_service.counters()
        if self.link is not None:
            status["cloud"] = self.link.stats().__dict__
        if self.sync is not None:
            status["shadow_sync"] = self.sync.stats.__dict__
        if self.devices is not None:
            status["devices"] = self.devices.status()
        if self.jobs_agent is not None:
            status["jobs"] = self.jobs_agent.status()
        return status

    def _publish_command(self, arguments: dict[str, Any]) -> dict[str, Any]:
        outcome = self.core.publish(arguments["topic"], arguments["payload"].encode(), source=CLOUD)
        return dataclasses.asdict(outcome)

    def _shadow_command(self, arguments: dict[str, Any]) -> Any:
        operation, thing = arguments["operation"], arguments["thing"]
        if operation not in ("get", "update", "delete"):
            raise ValueError(f"unknown shadow operation {operation!r}: use get, update or delete")
        payload = arguments.get("payload", "").encode()
        response = self.core.shadow_request(f"$aws/things/{thing}/shadow/{operation}", payload)
        return json.loads(response)

    def _stop_command(self, _arguments: dict[str, Any]) -> str:
        # Answer first: stopping tears down the control server serving this very request.
        threading.Thread(target=self.stop, name="stop", daemon=True).start()
        return "stopping"
