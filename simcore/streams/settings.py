"""`GGStreamManager`'s configuration: the environment variables of its FunctionDefinition entry, as v1 read them.

| variable | meaning | default |
| --- | --- | --- |
| `STREAM_MANAGER_STORE_ROOT_DIR` | absolute folder of the File streams | `<core root>/var/stream-manager` |
| `STREAM_MANAGER_SERVER_PORT` | TCP port on 127.0.0.1 (0: any free one) | 8088 |
| `STREAM_MANAGER_AUTHENTICATE_CLIENT` | `true`: the group's Lambdas only (their tokens); `false`: any process | true |
| `STREAM_MANAGER_EXPORTER_MAX_BANDWIDTH` | kbit/s over all exports | unlimited |
| `STREAM_MANAGER_EXPORTER_THREAD_POOL_SIZE` | exporter threads | 5 |
| `STREAM_MANAGER_EXPORTER_S3_DESTINATION_MULTIPART_UPLOAD_MIN_PART_SIZE_BYTES` | S3 part size (≥ 5242880) | 5242880 |

`SIMCORE_STREAM_MANAGER_PORT`, in the core's own environment, overrides the port for every group (several
cores on one host: the tests set 0). `JVM_ARGS` and `STREAM_MANAGER_READ_ONLY_DIRS` are accepted and have no
effect (there is no JVM; the Lambdas' files are read in place). A bad value is a RuntimeConfigError naming the
variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from simcore.defaults import (
    STREAM_MANAGER_MIN_PART_SIZE_BYTES,
    STREAM_MANAGER_PORT,
    STREAM_MANAGER_THREAD_POOL_SIZE,
)
from simcore.errors import RuntimeConfigError

STREAM_MANAGER_ARN = "arn:aws:lambda:::function:GGStreamManager:1"
PORT_OVERRIDE_VARIABLE = "SIMCORE_STREAM_MANAGER_PORT"
PART_SIZE_VARIABLE = "STREAM_MANAGER_EXPORTER_S3_DESTINATION_MULTIPART_UPLOAD_MIN_PART_SIZE_BYTES"
IGNORED_VARIABLES = ("JVM_ARGS", "STREAM_MANAGER_READ_ONLY_DIRS")


@dataclass(frozen=True)
class StreamManagerSettings:
    """The stream manager's settings, defaults applied."""

    store_root: Path
    port: int = STREAM_MANAGER_PORT
    authenticate_client: bool = True
    max_bandwidth_kbps: int | None = None
    thread_pool_size: int = STREAM_MANAGER_THREAD_POOL_SIZE
    min_part_size_bytes: int = STREAM_MANAGER_MIN_PART_SIZE_BYTES
    endpoint_url: str | None = None


def _where(name: str) -> str:
    return f"GGStreamManager.Environment.Variables.{name}"


def _integer(variables: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = variables.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise RuntimeConfigError(f"{name} must be an integer from {low} to {high}, got {text!r}",
                                 location=_where(name))
    return value


def read_settings(variables: Mapping[str, str], core_root: Path, port_override: str | None = None
                  ) -> StreamManagerSettings:
    """The settings `variables` (the function's Environment.Variables) give a core rooted at `core_root`;
    `port_override` (SIMCORE_STREAM_MANAGER_PORT) replaces STREAM_MANAGER_SERVER_PORT."""
    if port_override:
        variables = {**variables, "STREAM_MANAGER_SERVER_PORT": port_override}
    root_text = variables.get("STREAM_MANAGER_STORE_ROOT_DIR")
    if root_text:
        if not Path(root_text).is_absolute():
            raise RuntimeConfigError(f"STREAM_MANAGER_STORE_ROOT_DIR must be an absolute path, got {root_text!r}",
                                     location=_where("STREAM_MANAGER_STORE_ROOT_DIR"))
        store_root = Path(root_text)
    else:
        store_root = Path(core_root) / "var" / "stream-manager"
    authenticate = variables.get("STREAM_MANAGER_AUTHENTICATE_CLIENT", "true").strip().lower()
    if authenticate not in ("true", "false"):
        raise RuntimeConfigError(f"STREAM_MANAGER_AUTHENTICATE_CLIENT must be true or false, got {authenticate!r}",
                                 location=_where("STREAM_MANAGER_AUTHENTICATE_CLIENT"))
    bandwidth = variables.get("STREAM_MANAGER_EXPORTER_MAX_BANDWIDTH")
    return StreamManagerSettings(
        store_root=store_root,
        port=_integer(variables, "STREAM_MANAGER_SERVER_PORT", STREAM_MANAGER_PORT, 0, 65535),
        authenticate_client=authenticate == "true",
        max_bandwidth_kbps=None if not bandwidth else
        _integer(variables, "STREAM_MANAGER_EXPORTER_MAX_BANDWIDTH", 0, 1, 2**31),
        thread_pool_size=_integer(variables, "STREAM_MANAGER_EXPORTER_THREAD_POOL_SIZE",
                                  STREAM_MANAGER_THREAD_POOL_SIZE, 1, 64),
        min_part_size_bytes=_integer(variables, PART_SIZE_VARIABLE, STREAM_MANAGER_MIN_PART_SIZE_BYTES,
                                     STREAM_MANAGER_MIN_PART_SIZE_BYTES, 5 * 2**30),
    )
