"""The local stand-in cloud and the commands that talk to a cloud: start it, watch topics, get/update shadows.

`start_cloud` builds everything under one state directory, laid out like a core's `/greengrass`:

    <state_dir>/certs/   root.ca.pem (+ its key), broker, core thing, shadow service and CLI certificates
    <state_dir>/config/config.json   the core's config, pointing at the stand-in broker
    <state_dir>/broker/  mosquitto.conf and mosquitto.log
    <state_dir>/cloud.json   where the running stand-in listens (for other processes)

With `local_aws` (the default) it also runs the local AWS (`simcore.cloud.local_aws`: moto in server mode on
loopback) and the AWS IoT credentials provider for it (`simcore.cloud.credentials_endpoint`, mutual TLS), and
the config.json it writes names both (`coreThing.credentialsEndpoint`, `roleAlias`, `localAwsEndpoint`), so a
core linked to the stand-in hands its Lambdas credentials and `AWS_ENDPOINT_URL` for it (docs/credentials.md).

`watch`, `cloud_shadow_get` and `cloud_shadow_update` take a config.json, so they work the same against
the stand-in and against AWS IoT Core. They connect with their own client id, never the core's, so they
never push the core's own connection off the broker: shadow requests as `<thing>-shadow-<random>`;
`watch` as the fixed `<thing>-watch` (or `client_id`) with a persistent session, so the QoS 1 messages
published while it was away (or while the broker restarted) arrive when it is back.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from simcore.cloud.broker import BrokerTLS, make_broker
from simcore.cloud.ca import CA_FILE, LocalCA
from simcore.cloud.credentials_endpoint import CredentialsEndpoint
from simcore.cloud.iot_policy import IotPolicy, mosquitto_acl
from simcore.cloud.link import CloudLink
from simcore.cloud.settings import LinkSettings, load_settings
from simcore.cloud.shadow_service import CloudShadowService
from simcore.core_config import CoreConfig, CoreConfigError, read_core_config, write_core_config
from simcore.defaults import DEFAULT_ACCOUNT_ID, DEFAULT_REGION, DEFAULT_THING_NAME, ROLE_ALIAS_SUFFIX
from simcore.errors import ShadowError
from simcore.shadow.service import ShadowHandler, open_shadow_service

REQUEST_TIMEOUT_S = 5.0
SHADOW_SERVICE_IDENTITY = "simcore-cloud-shadow-service"


class PolicyAcl:
    """The broker's ACL: each thing's IoT policy document, and the cloud-side identities with full access.

    Written twice: mosquitto's ACL file at `path` (read at start and on SIGHUP) and `<path>.json`, which the
    amqtt fallback's exact check reads (simcore.cloud.amqtt_policy).
    """

    def __init__(self, path: Path, policies: Mapping[str, Mapping[str, Any]], full_access: list[str]):
        self.path = Path(path)
        self.policies = dict(policies)
        self.full_access = list(full_access)
        self.write()

    def write(self) -> None:
        """Write both files, each replaced whole (a reader never sees half of one)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        compiled = {thing: IotPolicy(document) for thing, document in self.policies.items()}
        for target, text in ((self.path, mosquitto_acl(compiled, self.full_access)),
                             (Path(f"{self.path}.json"), json.dumps(
                                 {"policies": self.policies, "full_access": self.full_access}, indent=1))):
            temporary = target.with_name(target.name + ".tmp")
            temporary.write_text(text)
            os.replace(temporary, target)

    def grant_full(self, identity: str) -> None:
        """Give a cloud-side identity (a test's, the demo observer's) every topic."""
        if identity not in self.full_access:
            self.full_access.append(identity)
            self.write()


@dataclass
class RunningCloud:
    """A started stand-in: broker, CA and shadow service; `stop()` ends them."""

    state_dir: Path
    certs_dir: Path
    config_path: Path
    thing_name: str
    port: int
    ca: LocalCA
    broker: Any
    service: CloudShadowService
    local_aws: Any = None  # simcore.cloud.local_aws.LocalAws, when started with local_aws
    credentials: CredentialsEndpoint | None = None
    acl: PolicyAcl | None = None  # the things' IoT policies, when the broker enforces them

    def core_settings(self, **overrides) -> LinkSettings:
        """LinkSettings for the core thing, from the written config.json."""
        return load_settings(self.config_path, self.certs_dir, **overrides)

    def client_settings(self, name: str, **overrides) -> LinkSettings:
        """LinkSettings for another client (a test, a device) with a fresh certificate whose CN is `name`."""
        issued = self.ca.issue_thing(name, file_stem=name)
        if self.acl is not None and name not in self.acl.policies:
            self.acl.grant_full(name)
            self.broker.reload()
        return replace(self.core_settings(), client_id=name, cert_path=issued.cert_path,
                       key_path=issued.key_path, **overrides)

    def stop(self) -> None:
        """Stop the shadow service, then the broker, the credentials endpoint and the local AWS."""
        self.service.stop()
        self.broker.stop()
        if self.credentials is not None:
            self.credentials.stop()
        if self.local_aws is not None:
            self.local_aws.stop()
        (self.state_dir / "cloud.json").unlink(missing_ok=True)

    def __enter__(self) -> RunningCloud:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_cloud(state_dir: Path, port: int = 0, *, shadow_service: ShadowHandler,
                thing_name: str = DEFAULT_THING_NAME, region: str = DEFAULT_REGION,
                account_id: str = DEFAULT_ACCOUNT_ID, prefer_broker: str = "mosquitto",
                local_aws: bool = True, credential_duration_s: float | None = None,
                thing_policy: Mapping[str, Any] | None = None) -> RunningCloud:
    """Start the stand-in cloud in `state_dir` on 127.0.0.1:`port` (0: a free port).

    `shadow_service` answers the shadow topics (`simcore.shadow.service.open_shadow_service(path)`, as
    `start_standin` does, or a test's own). A CA made by an earlier run is reused; the core thing's
    certificate too, when the config.json of that run names existing files. `local_aws`: also the moto server
    and the credentials provider for it (credentials valid `credential_duration_s`, an hour by default).
    `thing_policy`: the core thing's IoT policy document (resolved, as the template's CorePolicy), which the
    broker then enforces for the thing's certificate (`simcore.cloud.iot_policy`); the stand-in's
    own services and the clients `client_settings` makes keep full access, as the cloud side. mosquitto
    enforces it with an ACL file, the amqtt fallback exactly (`simcore.cloud.amqtt_policy`).
    """
    state_dir = Path(state_dir)
    certs_dir = state_dir / "certs"
    config_path = state_dir / "config" / "config.json"
    ca = LocalCA(certs_dir)
    server = ca.issue_server(file_stem="broker")
    acl = None
    if thing_policy is not None:
        acl = PolicyAcl(state_dir / "broker" / "acl", {thing_name: thing_policy}, [SHADOW_SERVICE_IDENTITY])
    broker = make_broker(BrokerTLS(ca.ca_path, server.cert_path, server.key_path), state_dir / "broker",
                         port=port, prefer=prefer_broker, acl_path=acl.path if acl is not None else None)
    broker.start()
    aws: Any = None
    credentials: CredentialsEndpoint | None = None
    try:
        if local_aws:
            aws, credentials = _start_local_aws(ca, f"{thing_name}{ROLE_ALIAS_SUFFIX}", credential_duration_s)
        cert_file, key_file = _core_thing_files(ca, config_path, thing_name)
        thing_arn = f"arn:aws:iot:{region}:{account_id}:thing/{thing_name}"
        # simcore, not systemd, runs the core this config is for.
        write_core_config(config_path, CoreConfig.for_thing(
            thing_arn, "127.0.0.1", iot_mqtt_port=broker.port, certs_dir=certs_dir, ca_file=CA_FILE,
            cert_file=cert_file, key_file=key_file, use_systemd=False,
            credentials_endpoint=credentials.endpoint if credentials is not None else None,
            role_alias=credentials.role_alias if credentials is not None else None,
            local_aws_endpoint=aws.endpoint if aws is not None else None,
        ))
        cloud_settings = load_settings(config_path, certs_dir)
        service_cert = ca.issue_thing(SHADOW_SERVICE_IDENTITY, file_stem="shadow-service")
        service = CloudShadowService(shadow_service, replace(
            cloud_settings, client_id=SHADOW_SERVICE_IDENTITY, cert_path=service_cert.cert_path,
            key_path=service_cert.key_path, backoff_base_s=0.5, backoff_max_s=4.0,
        ))
        service.start()
    except BaseException:
        broker.stop()
        if credentials is not None:
            credentials.stop()
        if aws is not None:
            aws.stop()
        raise
    where = {"host": "127.0.0.1", "port": broker.port, "broker": broker.kind, "thing": thing_name,
             "config": str(config_path)}
    if aws is not None and credentials is not None:
        where.update(aws_endpoint=aws.endpoint, credentials_endpoint=credentials.endpoint,
                     role_alias=credentials.role_alias)
    (state_dir / "cloud.json").write_text(json.dumps(where, indent=2) + "\n")
    return RunningCloud(state_dir, certs_dir, config_path, thing_name, broker.port, ca, broker, service,
                        local_aws=aws, credentials=credentials, acl=acl)


def _start_local_aws(ca: LocalCA, role_alias: str,
                     duration_s: float | None) -> tuple[Any, CredentialsEndpoint]:
    """The moto server and the mutual-TLS credentials provider in front of it, both on loopback."""
    from simcore.cloud.local_aws import LocalAws  # deferred: moto loads only for a stand-in that runs it

    aws = LocalAws()
    aws.start()
    try:
        server = ca.issue_server(file_stem="credentials-endpoint")
        credentials = CredentialsEndpoint(ca_path=ca.ca_path, server_cert=server.cert_path,
                                          server_key=server.key_path, role_alias=role_alias,
                                          **({"duration_s": duration_s} if duration_s else {}))
        credentials.start()
    except BaseException:
        aws.stop()
        raise
    return aws, credentials


def _core_thing_files(ca: LocalCA, config_path: Path, thing_name: str) -> tuple[str, str]:
    """The core thing's cert and key file names: the previous run's if still there, else newly issued."""
    if config_path.exists():
        try:
            core_thing = read_core_config(config_path).core_thing
            cert_file, key_file = core_thing.cert_path, core_thing.key_path
            if core_thing.name == thing_name and (ca.certs_dir / cert_file).exists() \
                    and (ca.certs_dir / key_file).exists():
                return cert_file, key_file
        except CoreConfigError:
            pass  # an unreadable old config is simply replaced
    issued = ca.issue_thing(thing_name)
    return issued.cert_path.name, issued.key_path.name


def _cli_settings(config_path: Path, certs_dir: Path | None, purpose: str) -> LinkSettings:
    settings = load_settings(config_path, certs_dir, backoff_base_s=0.5, backoff_max_s=4.0)
    return replace(settings, client_id=f"{settings.client_id}-{purpose}-{uuid.uuid4().hex[:8]}")


def watch_settings(config_path: Path, certs_dir: Path | None = None, client_id: str | None = None) -> LinkSettings:
    """The watcher's link: a fixed client id (`<thing>-watch` unless given) and a persistent session."""
    settings = load_settings(config_path, certs_dir, backoff_base_s=0.5, backoff_max_s=4.0)
    return replace(settings, client_id=client_id or f"{settings.client_id}-watch", clean_session=False)


def watch(config_path: Path, topic_filter: str, out: TextIO, *, certs_dir: Path | None = None,
          stop: threading.Event | None = None, max_messages: int | None = None,
          timeout_s: float | None = None, client_id: str | None = None) -> int:
    """Print each cloud message matching `topic_filter` to `out` as `<topic> <payload>` lines.

    Runs until `stop` is set, `max_messages` were printed or `timeout_s` passed; returns how many were
    printed. Binary payloads are shown escaped. The session is persistent (see `watch_settings`): a
    watcher started again with the same client id first gets what was queued for it meanwhile.
    """
    stop = stop or threading.Event()
    lock = threading.Lock()
    count = 0

    def show(topic: str, payload: bytes) -> None:
        nonlocal count
        text = payload.decode("utf-8", errors="backslashreplace")
        with lock:
            out.write(f"{topic} {text}\n")
            out.flush()
            count += 1
            if max_messages is not None and count >= max_messages:
                stop.set()

    link = CloudLink(watch_settings(config_path, certs_dir, client_id))
    link.subscribe(topic_filter, show)
    link.start()
    try:
        stop.wait(timeout_s)
    finally:
        link.stop()
    return count


def _shadow_request(config_path: Path, thing: str, operation: str, body: dict, certs_dir: Path | None,
                    timeout_s: float) -> dict:
    answers: dict[str, tuple[str, dict]] = {}
    answered = threading.Event()
    token = uuid.uuid4().hex

    def on_answer(topic: str, payload: bytes) -> None:
        try:
            document = json.loads(payload)
        except ValueError:
            return
        if isinstance(document, dict) and document.get("clientToken") == token:
            answers["answer"] = (topic.rsplit("/", 1)[1], document)
            answered.set()

    link = CloudLink(_cli_settings(config_path, certs_dir, "shadow"))
    link.subscribe(f"$aws/things/{thing}/shadow/{operation}/accepted", on_answer)
    link.subscribe(f"$aws/things/{thing}/shadow/{operation}/rejected", on_answer)
    link.start()
    try:
        if not link.wait_connected(timeout_s):
            raise TimeoutError(f"cannot connect to the cloud: {link.stats().last_error or 'timed out'}")
        request = json.dumps({**body, "clientToken": token}).encode()
        if not link.send_now(f"$aws/things/{thing}/shadow/{operation}", request, timeout_s):
            raise TimeoutError("the connection to the cloud dropped before the request was sent")
        if not answered.wait(timeout_s):
            raise TimeoutError(f"no answer to shadow {operation} for {thing} within {timeout_s} s")
    finally:
        link.stop()
    outcome, document = answers["answer"]
    if outcome == "rejected":
        raise ShadowError(int(document.get("code", 400)), str(document.get("message", "")), token)
    document.pop("clientToken", None)
    return document


def cloud_shadow_get(config_path: Path, thing: str, *, certs_dir: Path | None = None,
                     timeout_s: float = REQUEST_TIMEOUT_S) -> dict:
    """The cloud's shadow document for `thing` (get/accepted); ShadowError with AWS's code if rejected."""
    return _shadow_request(config_path, thing, "get", {}, certs_dir, timeout_s)


def cloud_shadow_update(config_path: Path, thing: str, document: dict | str, *,
                        certs_dir: Path | None = None, timeout_s: float = REQUEST_TIMEOUT_S) -> dict:
    """Update the cloud shadow of `thing` (e.g. `{"state": {"desired": {"read_interval_s": 30}}}`).

    Returns the update/accepted document; ShadowError with AWS's code and message when rejected.
    """
    body = json.loads(document) if isinstance(document, str) else dict(document)
    if not isinstance(body, dict):
        raise ShadowError(400, "Invalid JSON")
    body.pop("clientToken", None)
    return _shadow_request(config_path, thing, "update", body, certs_dir, timeout_s)


def start_standin(state_dir: Path, port: int, thing_name: str,
                  thing_policy: Mapping[str, Any] | None = None) -> RunningCloud:
    """Start the stand-in cloud with its own SQLite-backed shadow engine; returns the RunningCloud.

    `thing_policy`: the thing's IoT policy document, enforced by the broker (see `start_cloud`).
    """
    shadows = open_shadow_service(Path(state_dir) / "cloud-shadows.sqlite")
    return start_cloud(state_dir, port, shadow_service=shadows, thing_name=thing_name, thing_policy=thing_policy)
