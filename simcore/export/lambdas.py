"""A v1 group's function as the `create-component-version --lambda-function` request that imports it on v2.

`componentLambdaParameters` maps the v1 `FunctionConfiguration`: `Pinned` → `pinned`, `Timeout` →
`timeoutInSeconds`, `MemorySize` → `containerParams.memorySizeInKB`, `IsolationMode` →
`linuxProcessParams.isolationMode`, `EncodingType` → `inputPayloadEncodingType`, `Variables` →
`environmentVariables`, `ExecArgs` → `execArgs`, `AccessSysfs` → `mountROSysfs`; resource access policies become
`devices` (local devices) and `volumes` (local volumes, and ML resources through their model component); the
subscriptions that target the function become its `eventSources`. A NoContainer function has no container
parameters (v1 refused it devices and volumes too).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

from simcore.export.catalog import (
    DEPENDENCY_REQUIREMENT,
    LINUX_PLATFORM,
    OWN_COMPONENT_VERSION,
)
from simcore.export.models import ModelComponent
from simcore.group import Function, Group

VERSION_QUALIFIER = re.compile(r"\d+")


def component_names(group: Group) -> dict[str, str]:
    """Each function's component name by its ARN: the Lambda's name, as v2 names an imported Lambda by default;
    `<Lambda name>-<entry Id>` for a Lambda the group runs more than once (by alias and by version, say)."""
    counts: dict[str, int] = {}
    for function in group.functions:
        counts[function.name] = counts.get(function.name, 0) + 1
    return {function.arn: (function.name if counts[function.name] == 1
                           else re.sub(r"[^A-Za-z0-9._-]", "-", f"{function.name}-{function.id}")[:128])
            for function in group.functions}


def versioned_arn(function: Function, versions: Mapping[str, str]) -> str:
    """The function's ARN qualified by a version number, which v2 requires (an alias or `$LATEST` is refused).

    A group that names an alias gets the version `versions` gives for the function's entry Id, else 1
    (the first version SAM's AutoPublishAlias publishes, as simcore resolves `Ref X.Version`).
    """
    unqualified, _, qualifier = function.arn.rpartition(":")
    if function.id in versions:
        return f"{unqualified}:{versions[function.id]}"
    if VERSION_QUALIFIER.fullmatch(qualifier):
        return function.arn
    return f"{unqualified}:1"


def lambda_request(
    function: Function,
    group: Group,
    *,
    lambda_arn: str,
    event_sources: list[dict],
    dependencies: set[str],
    models: Mapping[str, ModelComponent],
) -> dict:
    """The `CreateComponentVersion` request (`lambdaFunction`) for `function`."""
    parameters: dict = {}
    if event_sources:
        parameters["eventSources"] = event_sources
    parameters["timeoutInSeconds"] = function.timeout_s
    parameters["pinned"] = function.pinned
    parameters["inputPayloadEncodingType"] = function.encoding_type
    if function.exec_args:
        parameters["execArgs"] = shlex.split(function.exec_args)
    if function.environment:
        parameters["environmentVariables"] = dict(function.environment)
    process: dict = {"isolationMode": function.isolation_mode}
    if function.isolation_mode == "GreengrassContainer":
        container: dict = {}
        if function.memory_kb is not None:
            container["memorySizeInKB"] = function.memory_kb
        container["mountROSysfs"] = function.access_sysfs
        volumes, devices = mounts(function, group, models)
        if volumes:
            container["volumes"] = volumes
        if devices:
            container["devices"] = devices
        process["containerParams"] = container
    parameters["linuxProcessParams"] = process
    own = {models[access.resource_id].name for access in function.resource_access if access.resource_id in models}
    request = {
        "lambdaArn": lambda_arn,
        "componentName": component_names(group)[function.arn],
        "componentVersion": OWN_COMPONENT_VERSION,
        "componentPlatforms": [LINUX_PLATFORM],
        "componentDependencies": {
            **{name: {"versionRequirement": DEPENDENCY_REQUIREMENT, "dependencyType": "HARD"}
               for name in sorted(dependencies)},
            **{name: {"versionRequirement": f"={OWN_COMPONENT_VERSION}", "dependencyType": "HARD"}
               for name in sorted(own)},
        },
        "componentLambdaParameters": parameters,
    }
    if not request["componentDependencies"]:
        del request["componentDependencies"]
    return {"lambdaFunction": request}


def mounts(function: Function, group: Group, models: Mapping[str, ModelComponent]) -> tuple[list[dict], list[dict]]:
    """(volumes, devices) of a containerized function, from its resource access policies, in their order."""
    volumes, devices = [], []
    for access in function.resource_access:
        resource = group.resource(access.resource_id)
        if resource.kind == "local_device":
            devices.append({"path": resource.source, "permission": access.permission,
                            "addGroupOwner": resource.auto_add_group_owner})
        elif resource.kind == "local_volume":
            volumes.append({"sourcePath": resource.source, "destinationPath": resource.destination_path,
                            "permission": access.permission, "addGroupOwner": resource.auto_add_group_owner})
        elif resource.id in models:
            volumes.append({"sourcePath": models[resource.id].model_folder,
                            "destinationPath": resource.destination_path, "permission": access.permission,
                            "addGroupOwner": resource.group_owner is not None})
    return volumes, devices
