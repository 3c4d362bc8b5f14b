"""Where and as whom the cloud link connects: `LinkSettings`, read from a v1 core's config.json."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from simcore.errors import InputError

ALPN_PORT = 443
ALPN_PROTOCOL = "x-amzn-mqtt-ca"


class CloudConfigError(InputError):
    """The core's config.json cannot configure the cloud link; `location` names the file and field."""

    code = "CloudConfigError"


@dataclass(frozen=True)
class LinkSettings:
    """Where and as whom the link connects. Paths are absolute once built by `from_config`."""

    client_id: str
    host: str
    port: int
    ca_path: Path
    cert_path: Path
    key_path: Path
    keep_alive_s: int = 600
    alpn: bool | None = None  # None: ALPN exactly when the port is 443, as the SDK and a v1 core do
    backoff_base_s: float = 1.0
    backoff_max_s: float = 32.0
    stable_connection_s: float = 20.0
    connect_timeout_s: float = 10.0
    ack_timeout_s: float = 30.0
    thing_arn: str = ""

    @property
    def uses_alpn(self) -> bool:
        """Whether the TLS handshake offers ALPN `x-amzn-mqtt-ca`."""
        return self.port == ALPN_PORT if self.alpn is None else self.alpn


def thing_name_from_arn(thing_arn: str) -> str:
    """`arn:aws:iot:<region>:<account>:thing/<name>` → `<name>`."""
    marker = ":thing/"
    if marker not in thing_arn:
        raise ValueError(f"not a thing ARN: {thing_arn!r}")
    return thing_arn.split(marker, 1)[1]


def _resolve_cert_path(value: str, certs_dir: Path) -> Path:
    # v1 config.json names files relative to /greengrass/certs; `file://` URIs appear in `crypto`.
    if value.startswith("file://"):
        value = value[len("file://"):]
    path = Path(value)
    return path if path.is_absolute() else certs_dir / path


def settings_from_config(config: dict, certs_dir: Path, *, location: str = "config.json",
                         **overrides) -> LinkSettings:
    """LinkSettings from a v1 core config (`coreThing`), cert paths resolved against `certs_dir`.

    `overrides` replaces any LinkSettings field (backoff timings in tests, for example).
    """
    core_thing = config.get("coreThing")
    if not isinstance(core_thing, dict):
        raise CloudConfigError("missing object coreThing", location=location)
    values = {}
    for key in ("caPath", "certPath", "keyPath", "iotHost"):
        value = core_thing.get(key)
        if not isinstance(value, str) or not value:
            raise CloudConfigError(f"coreThing.{key} must be a non-empty string",
                                   location=f"{location}:coreThing.{key}")
        values[key] = value
    port = core_thing.get("iotMqttPort", 8883)
    try:
        port = int(port)
    except (TypeError, ValueError) as error:
        raise CloudConfigError(f"coreThing.iotMqttPort must be a port number, not {port!r}",
                               location=f"{location}:coreThing.iotMqttPort") from error
    if not 0 < port < 65536:
        raise CloudConfigError(f"coreThing.iotMqttPort {port} is out of range",
                               location=f"{location}:coreThing.iotMqttPort")
    thing_arn = str(core_thing.get("thingArn", ""))
    try:
        client_id = thing_name_from_arn(thing_arn)
    except ValueError as error:
        raise CloudConfigError(str(error), location=f"{location}:coreThing.thingArn") from error
    settings: dict = {
        "client_id": client_id,
        "host": values["iotHost"],
        "port": port,
        "ca_path": _resolve_cert_path(values["caPath"], certs_dir),
        "cert_path": _resolve_cert_path(values["certPath"], certs_dir),
        "key_path": _resolve_cert_path(values["keyPath"], certs_dir),
        "keep_alive_s": int(core_thing.get("keepAlive", 600)),
        "thing_arn": thing_arn,
    }
    settings.update(overrides)
    return LinkSettings(**settings)


def load_settings(config_path: Path, certs_dir: Path | None = None, **overrides) -> LinkSettings:
    """LinkSettings from a config.json file; certs default to `<config dir>/../certs` (/greengrass/certs)."""
    config_path = Path(config_path)
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as error:
        raise CloudConfigError(f"cannot read the core config: {error}", location=str(config_path)) from error
    if certs_dir is None:
        certs_dir = config_path.resolve().parent.parent / "certs"
    return settings_from_config(config, Path(certs_dir), location=str(config_path), **overrides)
