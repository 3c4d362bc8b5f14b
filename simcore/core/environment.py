"""The environment of one Lambda worker process, resolved the way a Greengrass v1 core does it.

Order of precedence, lowest first (a later layer overrides an earlier one):

1. A few host variables a process needs to run at all: `PATH`, `HOME`, `LANG`, `LC_ALL`, `TZ`, `TMPDIR`.
   Nothing else leaks from the core's own environment (no credentials, no proxies, no PYTHONPATH).
2. The core's defaults from the runtime facts: `AWS_REGION`, `AWS_DEFAULT_REGION`, `AWS_IOT_THING_NAME`,
   `LOG_LEVEL` (the lowest level of the group's `Lambda` loggers, INFO without one:
   `simcore.core.logs.lambda_log_level`), `ENCODING_TYPE`, `GGC_MAX_INTERFACE_VERSION=1.5`, the system
   function ARNs, where the core's services listen (`STREAM_MANAGER_SERVER_PORT` when the group runs
   GGStreamManager), and `AWS_ENDPOINT_URL` (botocore's own setting) when the core links to the stand-in
   cloud (config.json's `coreThing.localAwsEndpoint`, loopback only): never against AWS.
3. The function's own `Environment.Variables`. They may override layer 2 (e.g. `LOG_LEVEL`) but never a
   reserved name of layer 5: a function that sets one gets a RuntimeConfigError naming it.
4. Isolation rewrites (`simcore.core.isolation.LaunchPlan.env_rewrites`, variable → new value): with
   `--isolation off`, a value under a resource's `DestinationPath` becomes where the resource lies locally.
5. What the core owns and nothing overrides: `MY_FUNCTION_ARN`, `AWS_CONTAINER_AUTHORIZATION_TOKEN` and
   `AWS_CONTAINER_CREDENTIALS_FULL_URI` (the token exchange service: `simcore.core.tes`),
   `GG_DAEMON_PORT`, `PYTHONPATH` (the runtime modules, then the code directory), `PYTHONUNBUFFERED`,
   `SIMCORE_FUNCTION_TIMEOUT_MS` (what `context.get_remaining_time_in_millis()` counts down from) and
   `SIMCORE_STATE_FD` (the pipe the runtime reports its import start on: `simcore.core.workers`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from simcore.core.logs import lambda_log_level
from simcore.core.tes import credentials_uri
from simcore.errors import RuntimeConfigError
from simcore.group import Function, Group

HOST_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
SHADOW_FUNCTION_ARN = "arn:aws:lambda:::function:GGShadowService"
ROUTER_FUNCTION_ARN = "arn:aws:lambda:::function:GGRouter"
SECRETS_MANAGER_FUNCTION_ARN = "arn:aws:lambda:::function:GGSecretManager:1"
RESERVED_VARIABLES = frozenset(
    {
        "MY_FUNCTION_ARN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "GG_DAEMON_PORT",
        "SHADOW_FUNCTION_ARN",
        "ROUTER_FUNCTION_ARN",
        "SECRETS_MANAGER_FUNCTION_ARN",
        "GGC_MAX_INTERFACE_VERSION",
        "PYTHONPATH",
        "SIMCORE_FUNCTION_TIMEOUT_MS",
        "SIMCORE_STATE_FD",
    }
)


def function_environment(
    function: Function,
    group: Group,
    *,
    token: str,
    ipc_port: int,
    runtime_dir: Path,
    code_dir: Path | None = None,
    env_rewrites: Mapping[str, str] | None = None,
    host_environment: Mapping[str, str] | None = None,
    state_fd: int | None = None,
    service_variables: Mapping[str, str] | None = None,
    aws_endpoint_url: str | None = None,
) -> dict[str, str]:
    """The complete environment of a worker of `function` (precedence in the module docstring)."""
    host = os.environ if host_environment is None else host_environment
    environment = {name: host[name] for name in HOST_VARIABLES if name in host}
    environment.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")

    environment.update(
        {
            "AWS_REGION": group.region,
            "AWS_DEFAULT_REGION": group.region,
            "LOG_LEVEL": lambda_log_level(group),
            "ENCODING_TYPE": function.encoding_type,
        }
    )
    environment.update(service_variables or {})
    if len(group.cores) == 1:
        environment["AWS_IOT_THING_NAME"] = group.core.thing_name
    if aws_endpoint_url:
        environment["AWS_ENDPOINT_URL"] = aws_endpoint_url
    if function.memory_kb:
        environment["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = str(function.memory_kb // 1024)

    reserved = sorted(RESERVED_VARIABLES & set(function.environment))
    if reserved:
        raise RuntimeConfigError(
            f"Function {function.arn} sets reserved environment variable(s) {', '.join(reserved)}: "
            "the core sets them itself",
            location=f"{function.id}.Environment.Variables",
        )
    environment.update({name: str(value) for name, value in function.environment.items()})

    environment.update(env_rewrites or {})

    code_root = code_dir if code_dir is not None else function.code_dir
    environment.update(
        {
            "MY_FUNCTION_ARN": function.arn,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": token,
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": credentials_uri(ipc_port),
            "GG_DAEMON_PORT": str(ipc_port),
            "SHADOW_FUNCTION_ARN": SHADOW_FUNCTION_ARN,
            "ROUTER_FUNCTION_ARN": ROUTER_FUNCTION_ARN,
            "SECRETS_MANAGER_FUNCTION_ARN": SECRETS_MANAGER_FUNCTION_ARN,
            "GGC_MAX_INTERFACE_VERSION": "1.5",
            "PYTHONPATH": os.pathsep.join([str(runtime_dir), str(code_root)]),
            "PYTHONUNBUFFERED": "1",
            "SIMCORE_FUNCTION_TIMEOUT_MS": str(int(function.timeout_s * 1000)),
        }
    )
    if state_fd is not None:
        environment["SIMCORE_STATE_FD"] = str(state_fd)
    return environment
