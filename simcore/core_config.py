"""A v1 core's `config.json`, as the group setup wrote it to `/greengrass/config/config.json`.

Certificate paths in `coreThing` are relative to the certs directory (`/greengrass/certs` on a real
core); `crypto` names the same files as `file://` URIs.
"""

from __future__ import annotations

import json
from pathlib import Path


def core_config(thing_arn: str, iot_host: str, iot_port: int, ca_file: str, cert_file: str, key_file: str,
                certs_dir: Path = Path("/greengrass/certs"), region: str = "us-east-1",
                keep_alive_s: int = 600, use_systemd: bool = True, gg_host: str | None = None) -> dict:
    """The config.json document a v1 core reads, for the core thing `thing_arn`.

    `gg_host` defaults to the region's Greengrass ATS endpoint. `group.setup.build_config` checks its
    arguments and calls this, so the stand-in cloud and a real stack write the same document.
    """
    def uri(name: str) -> str:
        return f"file://{Path(certs_dir) / name}"

    return {
        "coreThing": {
            "caPath": ca_file,
            "certPath": cert_file,
            "keyPath": key_file,
            "thingArn": thing_arn,
            "iotHost": iot_host,
            "ggHost": gg_host or f"greengrass-ats.iot.{region}.amazonaws.com",
            "iotMqttPort": iot_port,
            "keepAlive": keep_alive_s,
        },
        "runtime": {"cgroup": {"useSystemd": "yes" if use_systemd else "no"}},
        "managedRespawn": False,
        "crypto": {
            "principals": {
                "SecretsManager": {"privateKeyPath": uri(key_file)},
                "IoTCertificate": {"privateKeyPath": uri(key_file), "certificatePath": uri(cert_file)},
            },
            "caPath": uri(ca_file),
        },
    }


def write_core_config(path: Path, config: dict) -> Path:
    """Write config.json (creating its directory); the path written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path
