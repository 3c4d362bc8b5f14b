"""One running core: the IPC server, the router and its work queue, the workers, the shadow service, wired.

`Core(group, runtime_root=...)` builds the parts; `start()` opens the IPC server and starts the pinned
workers (their module-level code runs then); `publish()` injects a message as `cloud` (or any source: the
CLI's `simcore publish`, the cloud link's inbound path); `set_cloud()` attaches the cloud link later;
`status()` reports workers and counters; `stop()` stops workers, then the server.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pwd
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from simcore.core.identity import DEFAULT_USER
from simcore.core.ipc.dispatch import ConnectorFunctions, IPCDispatcher
from simcore.core.ipc.http import IPCServer
from simcore.core.ipc.tokens import TokenRegistry
from simcore.core.isolation import LaunchPlanner, isolation_planner
from simcore.core.logs import LogSinks
from simcore.core.router import CloudPort, ConnectorRegistry, DevicePort, RouteOutcome, Router
from simcore.core.secrets import SecretStore
from simcore.core.tes import CredentialSource, NoCredentialSource, TokenExchange, credentials_uri
from simcore.core.work_queue import DEFAULT_MAX_WORK_ITEMS, WorkQueue
from simcore.core.workers import WorkerManager, WorkerSettings
from simcore.group import CLOUD, Group
from simcore.private import private_dir
from simcore.shadow.service import ShadowHandler, ShadowOutcome, ShadowService, handle_and_publish, open_shadow_service

if TYPE_CHECKING:
    from simcore.streams.manager import StreamManager
    from simcore.streams.s3_tasks import Reader

log = logging.getLogger(__name__)


class Connectors(ConnectorRegistry, ConnectorFunctions, Protocol):
    """The local connectors: reached by subscriptions (the router) and by invokes (IPC)."""


class _SerialShadow:
    """The shadow service behind one lock: IPC threads and the router call it concurrently."""

    def __init__(self, service: ShadowHandler):
        self.service = service
        self._lock = threading.Lock()

    def handle(self, topic: str, payload: bytes) -> ShadowOutcome:
        """Serve one request while no other thread is in the service."""
        with self._lock:
            return self.service.handle(topic, payload)


def default_shadow_service(runtime_root: Path) -> ShadowService:
    """The core's shadow service: a SQLite engine in `<runtime_root>/var/shadows.sqlite`."""
    return open_shadow_service(Path(runtime_root) / "var" / "shadows.sqlite")


def _stream_manager(group: Group, runtime_root: Path, tokens: TokenRegistry,
                    aws_endpoint_url: str | None) -> StreamManager | None:
    """GGStreamManager when the group lists it, configured by its environment; clients authenticate with the
    workers' IPC tokens; exports go to `aws_endpoint_url` when the core links to the stand-in (else botocore's
    own endpoint settings). As root, an S3 upload's file must be one the Lambdas' user could read."""
    function = group.system_function("GGStreamManager")
    if function is None:
        return None
    # Deferred: a core whose group runs no stream manager never loads it (nor cbor2).
    from simcore.streams.manager import StreamManager
    from simcore.streams.settings import PORT_OVERRIDE_VARIABLE, read_settings

    settings = read_settings(function.environment, runtime_root, os.environ.get(PORT_OVERRIDE_VARIABLE))
    if aws_endpoint_url:
        settings = dataclasses.replace(settings, endpoint_url=aws_endpoint_url)

    def authenticate(token: str | None) -> str | None:
        caller = tokens.lookup(token)
        return None if caller is None else caller.function_arn

    return StreamManager(settings, authenticate, reader=_lambda_reader())


def _lambda_reader() -> Reader | None:
    from simcore.streams.s3_tasks import Reader

    if os.geteuid() != 0:
        return None
    try:
        user = pwd.getpwnam(DEFAULT_USER)
    except KeyError:
        return Reader(uid=65534, gids=(65534,))  # nobody: only world-readable files
    return Reader(uid=user.pw_uid, gids=tuple(os.getgrouplist(user.pw_name, user.pw_gid)))


class Core:
    """A Greengrass v1 core running one group."""

    def __init__(
        self,
        group: Group,
        *,
        runtime_root: Path,
        code_dirs: Mapping[str, Path] | None = None,
        resource_dirs: Mapping[str, Path] | None = None,
        shadow_service: ShadowHandler | None = None,
        cloud: CloudPort | None = None,
        connectors: Connectors | None = None,
        secret_store: SecretStore | None = None,
        isolation: str | None = "off",
        allow_functions_to_run_as_root: bool = False,
        launch_planner: LaunchPlanner | None = None,
        interpreters: Mapping[str, str] | None = None,
        ipc_port: int = 0,
        max_work_items: int = DEFAULT_MAX_WORK_ITEMS,
        worker_settings: WorkerSettings | None = None,
        credential_source: CredentialSource | None = None,
        credentials_warning: str | None = None,
        aws_endpoint_url: str | None = None,
    ):
        """Build the parts (nothing runs yet).

        `isolation` is "container", "nocontainer", "off", or None for each function's own IsolationMode;
        `launch_planner` overrides it. `allow_functions_to_run_as_root` is config.json's
        `runtime.allowFunctionsToRunAsRoot` (simcore.core.identity says when a Lambda runs as root).
        `shadow_service` defaults to the SQLite-backed one under `runtime_root`; `var/` there is made 0700.
        `interpreters` maps a Runtime (python3.8) to an interpreter path. `credential_source` is where the
        token exchange service gets the Lambdas' AWS credentials (None: none, every request answers what to
        configure; `simcore.core.credential_sources.choose_source` picks it), `credentials_warning` a line
        logged at start about it; `aws_endpoint_url` goes to every worker as AWS_ENDPOINT_URL (the stand-in).
        """
        self.group = group
        self.runtime_root = Path(runtime_root)
        self.runtime_root.mkdir(parents=True, exist_ok=True)
        # State, logs and the control file: the core's alone (a Lambda runs as another user).
        private_dir(self.runtime_root / "var")
        self.shadow_service = _SerialShadow(shadow_service or default_shadow_service(self.runtime_root))
        # Each function gets its own share of the queue's items and bytes (simcore.core.work_queue).
        self.work_queue = WorkQueue(max_work_items, targets=[function.arn for function in group.functions])
        self.router = Router(
            group.subscriptions,
            [function.arn for function in group.functions],
            self.work_queue,
            shadow_service=self.shadow_service,
            cloud=cloud,
            connectors=connectors,
            connector_arns=[connector.arn for connector in group.connectors],
            device_arns=[device.thing_arn for device in group.devices],
        )
        self.tokens = TokenRegistry()
        self.stream_manager = _stream_manager(group, self.runtime_root, self.tokens, aws_endpoint_url)
        self.log_sinks = LogSinks(self.runtime_root, group)
        planner = launch_planner or isolation_planner(
            group, resource_dirs or {}, isolation, self.runtime_root / "var" / "isolation",
            allow_root=allow_functions_to_run_as_root,
        )
        self.server: IPCServer | None = None
        self._ipc_port = ipc_port
        self.workers = WorkerManager(
            group,
            self.work_queue,
            self.tokens,
            ipc_port=lambda: self.ipc_port,
            log_sinks=self.log_sinks,
            launch_planner=planner,
            interpreters=interpreters,
            code_dirs=code_dirs,
            settings=worker_settings,
            service_variables=self._service_variables,
            aws_endpoint_url=aws_endpoint_url,
        )
        self.token_exchange = TokenExchange(credential_source or NoCredentialSource())
        self._credentials_warning = credentials_warning
        self.dispatcher = IPCDispatcher(
            self.router,
            self.work_queue,
            {function.arn: float(function.timeout_s) for function in group.functions},
            self.workers,
            tokens=self.tokens,
            shadow_service=self.shadow_service,
            secret_store=secret_store,
            connector_functions=connectors,
        )
        self._started = False
        for notice in self.log_sinks.notices:
            self._system_line("INFO", notice)
        for target in self.router.unroutable_targets():
            self._system_line(
                "WARN",
                f"Subscription target {target} has no local implementation: "
                "messages to it are counted as undeliverable",
            )

    @property
    def ipc_port(self) -> int:
        """The IPC server's port (the configured one before start)."""
        return self.server.port if self.server is not None else self._ipc_port

    def start(self) -> None:
        """Open the IPC server and start the workers (pinned ones at once).

        RuntimeConfigError (nothing started) when a function cannot run as configured: its isolation mode is
        not available here, a resource is missing, or it sets a reserved environment variable; StartError
        when the user it runs as is missing, cannot read its files, or would be root without leave.
        """
        if self._started:
            return
        # A function that cannot run as configured is an error now, not a restart loop later.
        self.workers.check_launch()
        if self.stream_manager is not None:
            # Before the workers (a pinned Lambda's StreamManagerClient() connects at import), and before the
            # IPC server, so that a port it cannot take leaves nothing running.
            port = self.stream_manager.start()
            self._system_line("INFO", f"Stream manager listening on 127.0.0.1:{port}")
        self.server = IPCServer(self.dispatcher, self._ipc_port, credentials=self.token_exchange)
        self.server.start()
        self._system_line("INFO", f"IPC server listening on 127.0.0.1:{self.server.port}")
        self._system_line("INFO", f"AWS credentials for Lambdas from {self.token_exchange.source.describe()}, "
                                  f"at {credentials_uri(self.server.port)}")
        if self._credentials_warning:
            log.warning("%s", self._credentials_warning)
            self._system_line("WARN", self._credentials_warning)
        self.workers.start()
        self._started = True

    def stop(self) -> None:
        """Stop workers (SIGTERM, then SIGKILL), then the IPC server; close the logs."""
        if not self._started:
            return
        self.workers.stop()
        self.work_queue.close()
        if self.stream_manager is not None:
            self.stream_manager.stop()
        if self.server is not None:
            self.server.stop()
        self._system_line("INFO", "Core stopped")
        self.log_sinks.close()
        self._started = False

    def __enter__(self) -> Core:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def publish(self, topic: str, payload: bytes, source: str = CLOUD, queue_full_policy: str = "") -> RouteOutcome:
        """Route a message as if `source` published it (RoutingError for a bad topic or a full queue)."""
        return self.router.route(source, topic, payload, queue_full_policy)

    def set_cloud(self, cloud: CloudPort | None) -> None:
        """Attach the cloud link: messages to `cloud` go to its `publish(topic, payload)`."""
        self.router.set_cloud(cloud)

    def set_devices(self, devices: DevicePort | None) -> None:
        """Attach the device server: messages to a device's thing ARN go to its `deliver`."""
        self.router.set_devices(devices)

    def shadow_request(self, topic: str, payload: bytes) -> bytes:
        """Serve a shadow request as a Lambda's call to GGShadowService is served: its outcome topics are routed
        from `GGShadowService`; returns the response (the accepted document, or the error JSON)."""
        return handle_and_publish(self.shadow_service, topic, payload, self.router.publish_shadow_outcome)

    def issue_token(self, function_arn: str) -> str:
        """A token that lets an in-process client call IPC as `function_arn` (tests, benchmarks, tools)."""
        return self.tokens.issue(function_arn)

    def _service_variables(self) -> dict[str, str]:
        if self.stream_manager is None:
            return {}
        return {"STREAM_MANAGER_SERVER_PORT": str(self.stream_manager.port)}

    def status(self) -> dict[str, Any]:
        """Workers, router counters, the IPC endpoint and the stream manager, as plain data."""
        extra = {} if self.stream_manager is None else {"stream_manager": self.stream_manager.status()}
        return {
            **extra,
            "ipc_port": self.ipc_port if self.server is not None else None,
            "running": self._started,
            "router": self.router.counters(),
            "work_queue": {
                **self.work_queue.limits(),
                "queued_bytes": self.work_queue.queued_bytes,
                "peak_bytes": self.work_queue.peak_bytes,
                "refused": dict(self.work_queue.refused),
            },
            "credentials": self.token_exchange.counters(),
            "ipc": {
                "refused_calls": self.dispatcher.refused_calls,
                "throttled_invokes": dict(self.dispatcher.throttled_invokes),
                **(self.server.counters() if self.server is not None else {}),
            },
            **self.workers.status(),
        }

    def _system_line(self, level: str, message: str) -> None:
        line = self.log_sinks.line(level, "core.py", sys._getframe(1).f_lineno, message)
        self.log_sinks.system_log("runtime").write_line(line)
