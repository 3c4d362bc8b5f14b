"""A v1 core's `config.json` (`/greengrass/config/config.json`): one model, one reader, one writer.

`CoreConfig` is the document as values: `coreThing` (the thing, its certificate files, the endpoints),
`runtime` (cgroup, run-as-root, the work queue bound), `system` (the shadow sync timeout),
`managedRespawn` and `crypto`. Whatever writes a config.json (deploy, `group.setup`, the stand-in cloud)
builds one with `CoreConfig.for_thing` and writes it with `write_core_config`; whatever reads one (the
cloud link's settings, `simcore run --config`) calls `read_core_config`. The writer checks the document
with the reader first, so nothing simcore writes is something it would refuse to read.

Certificate paths in `coreThing` are relative to the certs directory (`/greengrass/certs` on a real
core); `crypto` names the same files as `file://` URIs. `coreThing.thingName` and
`coreThing.certificateArn` are simcore's additions (deploy records the group's core with them), and so are
`coreThing.credentialsEndpoint` + `coreThing.roleAlias` (where the token exchange service gets the Lambdas'
AWS credentials: the AWS IoT credentials provider, as a v2 core's `iotCredEndpoint`/`iotRoleAlias`) and
`coreThing.localAwsEndpoint` (the stand-in cloud's moto server, loopback only; docs/credentials.md). Keys
simcore does not use (a real core's `iotHttpPort`, `networkProxy`, `runtime.maxConcurrentLimit`...) are
accepted when reading and not kept.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simcore.defaults import (
    DEFAULT_KEEP_ALIVE_S,
    DEFAULT_MAX_WORK_ITEMS,
    DEFAULT_MQTT_PORT,
    DEFAULT_SHADOW_SYNC_TIMEOUT_S,
)
from simcore.errors import InputError

CA_FILE = "root.ca.pem"
CERT_FILE = "core.cert.pem"
KEY_FILE = "core.private.key"
DEFAULT_CERTS_DIR = Path("/greengrass/certs")
KEEP_ALIVE_RANGE_S = (30, 1200)
# The file names key files but holds no secret (the key itself is 0600), and the core's user must read it.
CONFIG_MODE = 0o644
THING_ARN = re.compile(
    r"arn:aws[a-z-]*:iot:(?P<region>[a-z0-9-]+):(?P<account>\d+):thing/(?P<name>[A-Za-z0-9:_-]{1,128})")
THING_ARN_FORM = "arn:aws:iot:<region>:<account>:thing/<name>"
# CreateRoleAlias's pattern for a role alias name.
ROLE_ALIAS = re.compile(r"[\w=,@-]{1,128}")
# `host` or `host:port` (the stand-in's credentials endpoint has a port; AWS's listens on 443).
ENDPOINT_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?")
# The stand-in's local AWS is only ever on loopback: config.json cannot send the Lambdas' AWS calls elsewhere.
LOCAL_AWS_ENDPOINT = re.compile(r"http://(127\.0\.0\.1|localhost):[0-9]{1,5}")


class CoreConfigError(InputError, ValueError):
    """A config.json a core cannot use. `location` is `<file>:<field>`; `field` the dotted field alone."""

    code = "CoreConfigError"

    def __init__(self, message: str, *, location: str | None = None, field: str | None = None):
        super().__init__(message, location=location)
        self.field = field


def thing_name_from_arn(thing_arn: str) -> str:
    """`arn:aws:iot:<region>:<account>:thing/<name>` → `<name>`; ValueError for anything else."""
    match = THING_ARN.fullmatch(thing_arn)
    if not match:
        raise ValueError(f"not a thing ARN: {thing_arn!r}")
    return match["name"]


def greengrass_host(region: str) -> str:
    """The region's Greengrass ATS endpoint, a v1 core's `ggHost`."""
    return f"greengrass-ats.iot.{region}.amazonaws.com"


def default_certs_dir(config_path: Path) -> Path:
    """Where a config.json's cert files lie when nobody says: `<config dir>/../certs` (/greengrass/certs)."""
    return Path(config_path).resolve().parent.parent / "certs"


# -- the model ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CoreThing:
    """`coreThing`: who the core is and where its cloud is. File paths are relative to the certs dir."""

    thing_arn: str
    ca_path: str = CA_FILE
    cert_path: str = CERT_FILE
    key_path: str = KEY_FILE
    iot_host: str | None = None  # None: no IoT endpoint yet (deploy's record, before group.setup)
    gg_host: str | None = None
    iot_mqtt_port: int = DEFAULT_MQTT_PORT
    keep_alive_s: int = DEFAULT_KEEP_ALIVE_S
    thing_name: str | None = None  # simcore's addition; the name in thing_arn when present
    certificate_arn: str | None = None  # simcore's addition
    gg_mqtt_port: int | None = None  # the core's own MQTT server for devices (None: 8883)
    # Where the token exchange service gets the Lambdas' AWS credentials (docs/credentials.md): the AWS IoT
    # credentials provider's `host[:port]` and the role alias it assumes with the core's certificate.
    credentials_endpoint: str | None = None
    role_alias: str | None = None
    # The stand-in cloud's local AWS (`http://127.0.0.1:<port>`): handed to the Lambdas as AWS_ENDPOINT_URL.
    local_aws_endpoint: str | None = None

    @property
    def name(self) -> str:
        """The thing's name (from its ARN): the core's MQTT client id."""
        return thing_name_from_arn(self.thing_arn)


@dataclass(frozen=True)
class Runtime:
    """`runtime`: how the core runs functions. None: the key is absent and the v1 default applies."""

    use_systemd: bool = True
    allow_functions_to_run_as_root: bool | None = None
    max_work_item_count: int | None = None

    @property
    def max_work_items(self) -> int:
        """The work queue's bound: `maxWorkItemCount`, or the v1 default 1024."""
        return DEFAULT_MAX_WORK_ITEMS if self.max_work_item_count is None else self.max_work_item_count


@dataclass(frozen=True)
class System:
    """`system`: the shadow sync timeout. None: the key is absent and the v1 default applies."""

    shadow_sync_timeout: float | None = None

    @property
    def shadow_sync_timeout_s(self) -> float:
        """Seconds shadow sync waits for the cloud's answer: `shadowSyncTimeout`, or the default 5 s."""
        return DEFAULT_SHADOW_SYNC_TIMEOUT_S if self.shadow_sync_timeout is None else self.shadow_sync_timeout


@dataclass(frozen=True)
class Crypto:
    """`crypto`: the CA and each principal's key and certificate, as `file://` URIs (not changed once built)."""

    ca_path: str
    principals: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @classmethod
    def for_files(cls, certs_dir: Path, ca_file: str, cert_file: str, key_file: str) -> Crypto:
        """The crypto block for these files in `certs_dir`: the IoT certificate and the secrets key."""
        def uri(name: str) -> str:
            return f"file://{Path(certs_dir).absolute() / name}"

        return cls(uri(ca_file), {
            "SecretsManager": {"privateKeyPath": uri(key_file)},
            "IoTCertificate": {"privateKeyPath": uri(key_file), "certificatePath": uri(cert_file)},
        })


@dataclass(frozen=True)
class CoreConfig:
    """A v1 core's config.json. `path` is the file it was read from (not part of equality)."""

    core_thing: CoreThing
    runtime: Runtime = field(default_factory=Runtime)
    system: System = field(default_factory=System)
    managed_respawn: bool = False
    crypto: Crypto | None = None
    path: Path | None = field(default=None, compare=False, repr=False)

    @property
    def location(self) -> str:
        """What errors about this config name as its file."""
        return str(self.path) if self.path is not None else "config.json"

    @classmethod
    def for_thing(
        cls, thing_arn: str, iot_host: str | None, *, certs_dir: Path = DEFAULT_CERTS_DIR,
        ca_file: str = CA_FILE, cert_file: str = CERT_FILE, key_file: str = KEY_FILE,
        iot_mqtt_port: int = DEFAULT_MQTT_PORT, keep_alive_s: int = DEFAULT_KEEP_ALIVE_S,
        gg_host: str | None = None, use_systemd: bool = True, allow_functions_to_run_as_root: bool | None = None,
        max_work_item_count: int | None = None, shadow_sync_timeout: float | None = None,
        thing_name: str | None = None, certificate_arn: str | None = None,
        credentials_endpoint: str | None = None, role_alias: str | None = None,
        local_aws_endpoint: str | None = None,
    ) -> CoreConfig:
        """The config for the core thing `thing_arn`, its cert files in `certs_dir`.

        `gg_host` defaults to the Greengrass ATS endpoint of the ARN's region. Nothing is checked here;
        `check_core_config` (which `write_core_config` calls) does.
        """
        match = THING_ARN.fullmatch(thing_arn)
        if gg_host is None and match:
            gg_host = greengrass_host(match["region"])
        return cls(
            CoreThing(thing_arn=thing_arn, ca_path=ca_file, cert_path=cert_file, key_path=key_file,
                      iot_host=iot_host, gg_host=gg_host, iot_mqtt_port=iot_mqtt_port, keep_alive_s=keep_alive_s,
                      thing_name=thing_name, certificate_arn=certificate_arn,
                      credentials_endpoint=credentials_endpoint, role_alias=role_alias,
                      local_aws_endpoint=local_aws_endpoint),
            Runtime(use_systemd=use_systemd, allow_functions_to_run_as_root=allow_functions_to_run_as_root,
                    max_work_item_count=max_work_item_count),
            System(shadow_sync_timeout=shadow_sync_timeout),
            managed_respawn=False,
            crypto=Crypto.for_files(certs_dir, ca_file, cert_file, key_file),
        )

    def to_document(self) -> dict[str, Any]:
        """The JSON document, keys as a v1 core names them; absent values are left out."""
        thing = self.core_thing
        core_thing: dict[str, Any] = {"caPath": thing.ca_path, "certPath": thing.cert_path,
                                      "keyPath": thing.key_path, "thingArn": thing.thing_arn}
        optional = {"thingName": thing.thing_name, "certificateArn": thing.certificate_arn,
                    "iotHost": thing.iot_host, "ggHost": thing.gg_host,
                    "credentialsEndpoint": thing.credentials_endpoint, "roleAlias": thing.role_alias,
                    "localAwsEndpoint": thing.local_aws_endpoint}
        core_thing.update((key, value) for key, value in optional.items() if value is not None)
        core_thing.update(iotMqttPort=thing.iot_mqtt_port, keepAlive=thing.keep_alive_s)
        if thing.gg_mqtt_port is not None:
            core_thing["ggMqttPort"] = thing.gg_mqtt_port
        runtime: dict[str, Any] = {"cgroup": {"useSystemd": _yes_no(self.runtime.use_systemd)}}
        if self.runtime.allow_functions_to_run_as_root is not None:
            runtime["allowFunctionsToRunAsRoot"] = _yes_no(self.runtime.allow_functions_to_run_as_root)
        if self.runtime.max_work_item_count is not None:
            runtime["maxWorkItemCount"] = self.runtime.max_work_item_count
        document: dict[str, Any] = {"coreThing": core_thing, "runtime": runtime,
                                    "managedRespawn": self.managed_respawn}
        if self.system.shadow_sync_timeout is not None:
            document["system"] = {"shadowSyncTimeout": self.system.shadow_sync_timeout}
        if self.crypto is not None:
            document["crypto"] = {
                "principals": {name: dict(paths) for name, paths in self.crypto.principals.items()},
                "caPath": self.crypto.ca_path,
            }
        return document


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


# -- reading --------------------------------------------------------------------------------------


class _Object:
    """One JSON object of the document, with the dotted path (`coreThing`) its errors name."""

    def __init__(self, value: Mapping[str, Any], path: str, location: str):
        self.value = value
        self.path = path
        self.location = location

    def dotted(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, problem: str, *, missing: bool = False) -> CoreConfigError:
        """The error for field `key`: "<dotted field> <problem>", or "missing object <dotted field>"."""
        dotted = self.dotted(key)
        message = f"missing object {dotted}" if missing else f"{dotted} {problem}"
        return CoreConfigError(message, location=f"{self.location}:{dotted}", field=dotted)

    def child(self, key: str, *, required: bool = False) -> _Object | None:
        if key not in self.value and not required:
            return None
        value = self.value.get(key)
        if not isinstance(value, Mapping):
            raise self.error(key, "must be an object", missing=key not in self.value)
        return _Object(value, self.dotted(key), self.location)

    def string(self, key: str, *, required: bool = False) -> str | None:
        if key not in self.value and not required:
            return None
        value = self.value.get(key)
        if not isinstance(value, str) or not value:
            raise self.error(key, "must be a non-empty string")
        return value

    def integer(self, key: str, default: int | None, what: str) -> int | None:
        if key not in self.value:
            return default
        value = self.value[key]
        # A digit string is taken too: older tools wrote the port quoted.
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be {what}, not {value!r}")
        return value

    def yes_no(self, key: str) -> bool | None:
        if key not in self.value:
            return None
        value = self.value[key]
        if not isinstance(value, str) or value.lower() not in ("yes", "no"):
            raise self.error(key, f'must be "yes" or "no", not {value!r}')
        return value.lower() == "yes"


def from_document(document: Any, location: str = "config.json", *, path: Path | None = None) -> CoreConfig:
    """The CoreConfig a parsed config.json describes; CoreConfigError at `<location>:<field>` if it is bad."""
    if not isinstance(document, Mapping):
        raise CoreConfigError("a config.json is a JSON object", location=location)
    top = _Object(document, "", location)
    core_thing = _read_core_thing(top.child("coreThing", required=True))
    runtime = _read_runtime(top.child("runtime"))
    system = _read_system(top.child("system"))
    managed_respawn = document.get("managedRespawn", False)
    if not isinstance(managed_respawn, bool):
        raise top.error("managedRespawn", f"must be true or false, not {managed_respawn!r}")
    crypto = _read_crypto(top.child("crypto"))
    return CoreConfig(core_thing, runtime, system, managed_respawn, crypto, path=path)


def _read_core_thing(section: _Object) -> CoreThing:
    thing_arn = section.string("thingArn", required=True)
    if not THING_ARN.fullmatch(thing_arn):
        raise section.error("thingArn", f"must look like {THING_ARN_FORM} (not a thing ARN: {thing_arn!r})")
    name = thing_name_from_arn(thing_arn)
    thing_name = section.string("thingName")
    if thing_name is not None and thing_name != name:
        raise section.error("thingName", f"{thing_name!r} is not the thing thingArn names ({name!r})")
    iot_host = section.string("iotHost")
    if iot_host is not None and any(character in iot_host for character in "/: "):
        raise section.error("iotHost", f"must be a host name or address without scheme or port, "
                                       f"got {iot_host!r}")
    port = section.integer("iotMqttPort", DEFAULT_MQTT_PORT, "a port number")
    if not 0 < port < 65536:
        raise section.error("iotMqttPort", f"must be 1-65535, got {port}")
    gg_mqtt_port = section.integer("ggMqttPort", None, "a port number")
    if gg_mqtt_port is not None and not 1024 <= gg_mqtt_port <= 65535:
        raise section.error("ggMqttPort", f"must be 1024-65535 (the core's range), got {gg_mqtt_port}")
    keep_alive = section.integer("keepAlive", DEFAULT_KEEP_ALIVE_S, "a whole number of seconds")
    low, high = KEEP_ALIVE_RANGE_S
    if not low <= keep_alive <= high:
        raise section.error("keepAlive", f"must be {low}-{high} seconds (the core's range), got {keep_alive}")
    credentials_endpoint, role_alias, local_aws = _read_credentials(section)
    return CoreThing(
        thing_arn=thing_arn, ca_path=section.string("caPath", required=True),
        cert_path=section.string("certPath", required=True), key_path=section.string("keyPath", required=True),
        iot_host=iot_host, gg_host=section.string("ggHost"), iot_mqtt_port=port, keep_alive_s=keep_alive,
        thing_name=thing_name, certificate_arn=section.string("certificateArn"), gg_mqtt_port=gg_mqtt_port,
        credentials_endpoint=credentials_endpoint, role_alias=role_alias, local_aws_endpoint=local_aws,
    )


def _read_credentials(section: _Object) -> tuple[str | None, str | None, str | None]:
    """`credentialsEndpoint` and `roleAlias` (both or neither), and `localAwsEndpoint` (loopback only)."""
    endpoint, alias = section.string("credentialsEndpoint"), section.string("roleAlias")
    if endpoint is not None and not ENDPOINT_HOST.fullmatch(endpoint):
        raise section.error("credentialsEndpoint", "must be the credentials provider's host (or host:port) "
                            f"without scheme or path, as `aws iot describe-endpoint --endpoint-type "
                            f"iot:CredentialProvider` prints it, got {endpoint!r}")
    if alias is not None and not ROLE_ALIAS.fullmatch(alias):
        raise section.error("roleAlias", f"must be a role alias name (1-128 of A-Z a-z 0-9 _=,@-), got {alias!r}")
    if (endpoint is None) != (alias is None):
        missing = "roleAlias" if alias is None else "credentialsEndpoint"
        raise section.error(missing, "must be set too: the credentials provider needs both the endpoint and "
                                     "the role alias", missing=False)
    local_aws = section.string("localAwsEndpoint")
    if local_aws is not None and not LOCAL_AWS_ENDPOINT.fullmatch(local_aws):
        raise section.error("localAwsEndpoint", "must be the stand-in's loopback endpoint "
                            f"http://127.0.0.1:<port> (never an AWS endpoint), got {local_aws!r}")
    return endpoint, alias, local_aws


def _read_runtime(section: _Object | None) -> Runtime:
    if section is None:
        return Runtime()
    cgroup = section.child("cgroup")
    use_systemd = cgroup.yes_no("useSystemd") if cgroup is not None else None
    count = section.integer("maxWorkItemCount", None, "a whole number")
    if count is not None and count < 1:
        raise section.error("maxWorkItemCount", f"must be at least 1, got {count}")
    return Runtime(use_systemd=True if use_systemd is None else use_systemd,
                   allow_functions_to_run_as_root=section.yes_no("allowFunctionsToRunAsRoot"),
                   max_work_item_count=count)


def _read_system(section: _Object | None) -> System:
    if section is None or "shadowSyncTimeout" not in section.value:
        return System()
    timeout = section.value["shadowSyncTimeout"]
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise section.error("shadowSyncTimeout", f"must be a positive number of seconds, not {timeout!r}")
    return System(shadow_sync_timeout=timeout)


def _read_crypto(section: _Object | None) -> Crypto | None:
    if section is None:
        return None
    ca_path = section.string("caPath", required=True)
    principals: dict[str, dict[str, str]] = {}
    listed = section.child("principals")
    for name in listed.value if listed is not None else ():
        principal = listed.child(name, required=True)
        principals[name] = {key: principal.string(key, required=True) for key in principal.value}
    return Crypto(ca_path, principals)


def read_core_config(path: Path) -> CoreConfig:
    """The config.json at `path`; CoreConfigError naming the file (and the field) if it is unreadable or bad."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CoreConfigError(f"cannot read the core config: {error}", location=str(path)) from error
    return from_document(document, str(path), path=path)


# -- writing --------------------------------------------------------------------------------------


def check_core_config(config: CoreConfig, location: str | None = None) -> CoreConfig:
    """`config` as the reader sees its document (normalised); CoreConfigError if the reader would refuse it."""
    return from_document(config.to_document(), location or config.location, path=config.path)


def core_config_text(config: CoreConfig, location: str | None = None) -> str:
    """The config.json text for `config` (checked first; errors name `location`), as `write_core_config` writes it."""
    return json.dumps(check_core_config(config, location).to_document(), indent=2) + "\n"


def write_core_config(path: Path, config: CoreConfig, *, mode: int = CONFIG_MODE) -> Path:
    """Write config.json atomically (a reader never sees half a file), creating its folder; the path written."""
    path = Path(path)
    text = core_config_text(config, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            os.fchmod(out.fileno(), mode)  # exactly `mode`, whatever the umask
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
