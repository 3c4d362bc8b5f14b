"""Where and as whom the cloud link connects: `LinkSettings`, built from a v1 core's config.json (`CoreConfig`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from simcore.core_config import CoreConfig, CoreConfigError, default_certs_dir, read_core_config
from simcore.defaults import ALPN_PORT, DEFAULT_KEEP_ALIVE_S

ALPN_PROTOCOL = "x-amzn-mqtt-ca"


@dataclass(frozen=True)
class LinkSettings:
    """Where and as whom the link connects. Paths are absolute once built by `link_settings`."""

    client_id: str
    host: str
    port: int
    ca_path: Path
    cert_path: Path
    key_path: Path
    keep_alive_s: int = DEFAULT_KEEP_ALIVE_S
    alpn: bool | None = None  # None: ALPN exactly when the port is 443, as the SDK and a v1 core do
    backoff_base_s: float = 1.0
    backoff_max_s: float = 32.0
    stable_connection_s: float = 20.0
    connect_timeout_s: float = 10.0
    ack_timeout_s: float = 30.0
    thing_arn: str = ""
    # False: a persistent session (MQTT clean session off), as AWS IoT Core keeps it: subscriptions and
    # the QoS 1 messages published while the client is away wait for its return (1 hour by default).
    clean_session: bool = True

    @property
    def uses_alpn(self) -> bool:
        """Whether the TLS handshake offers ALPN `x-amzn-mqtt-ca`."""
        return self.port == ALPN_PORT if self.alpn is None else self.alpn


def _resolve_cert_path(value: str, certs_dir: Path) -> Path:
    # v1 config.json names files relative to /greengrass/certs; `file://` URIs appear in `crypto`.
    if value.startswith("file://"):
        value = value[len("file://"):]
    path = Path(value)
    return path if path.is_absolute() else certs_dir / path


def link_settings(config: CoreConfig, certs_dir: Path | None = None, **overrides) -> LinkSettings:
    """LinkSettings for the core thing of `config`, cert paths resolved against `certs_dir`.

    `certs_dir` defaults to `<config dir>/../certs` of the file `config` was read from. `overrides`
    replaces any LinkSettings field (backoff timings in tests, for example). CoreConfigError when the
    config names no IoT endpoint (deploy's record, before `group.setup` wrote the real one).
    """
    core_thing = config.core_thing
    if core_thing.iot_host is None:
        raise CoreConfigError("coreThing.iotHost must be a non-empty string: this config.json names no IoT "
                              "endpoint to link to", location=f"{config.location}:coreThing.iotHost",
                              field="coreThing.iotHost")
    if certs_dir is None:
        if config.path is None:
            raise ValueError("certs_dir is needed for a config not read from a file")
        certs_dir = default_certs_dir(config.path)
    certs_dir = Path(certs_dir)
    settings: dict = {
        "client_id": core_thing.name,
        "host": core_thing.iot_host,
        "port": core_thing.iot_mqtt_port,
        "ca_path": _resolve_cert_path(core_thing.ca_path, certs_dir),
        "cert_path": _resolve_cert_path(core_thing.cert_path, certs_dir),
        "key_path": _resolve_cert_path(core_thing.key_path, certs_dir),
        "keep_alive_s": core_thing.keep_alive_s,
        "thing_arn": core_thing.thing_arn,
    }
    settings.update(overrides)
    return LinkSettings(**settings)


def load_settings(config_path: Path, certs_dir: Path | None = None, **overrides) -> LinkSettings:
    """LinkSettings from a config.json file; certs default to `<config dir>/../certs` (/greengrass/certs)."""
    return link_settings(read_core_config(config_path), certs_dir, **overrides)
