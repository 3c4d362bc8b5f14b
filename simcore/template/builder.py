"""Turns a resolved template's Greengrass resources into a `Group`, enforcing the v1 service's rules.

The group's version (`Group.InitialVersion`, or the one `AWS::Greengrass::GroupVersion` for the group)
links definition versions by ARN; each ARN is looked up among the versions the template creates
(a `*Definition`'s `InitialVersion`, reached by `LatestVersionArn`, or a `*DefinitionVersion` resource,
reached by `Ref`). Functions are matched to the template's Lambdas by their qualified ARN.

Rules enforced, as the Greengrass service did at CreateDeployment (errors name the entry):
- exactly one core; thing and certificate ARNs well formed;
- `FunctionArn` is qualified by an alias or a version of a Lambda in the template, never `$LATEST`;
- `MemorySize` is required with GreengrassContainer and refused with NoContainer; NoContainer functions
  may not use local device or volume resources, `AccessSysfs`, or ML resources without `OwnerSetting`;
- `ResourceAccessPolicies` name resources of the group; permissions are `ro` or `rw`;
- ids (functions, resources, subscriptions, loggers, connectors, cores, devices) match `[a-zA-Z0-9:_-]+`,
  at most 128 characters, unique within their definition;
- a subscription's source and target are `cloud`, `GGShadowService`, a function ARN of the group, a
  connector ARN of the group or a thing ARN (one not in the DeviceDefinition is a deploy warning); its
  subject is a valid MQTT topic filter;
- loggers: Type FileSystem|AWSCloudWatch, Component GreengrassSystem|Lambda, Level DEBUG..FATAL,
  `Space` (KB) only for FileSystem.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from simcore.defaults import SUPPORTED_RUNTIME_PATTERN
from simcore.errors import RoutingError, TemplateError
from simcore.group import (
    CLOUD,
    SHADOW_SERVICE,
    Connector,
    Core,
    Device,
    Function,
    Group,
    Logger,
    Resource,
    ResourceAccess,
    Subscription,
    SystemFunction,
)
from simcore.template.intrinsics import child_path
from simcore.template.physical_ids import LAMBDA_TYPES, definition_kind, lambda_name_from_arn
from simcore.template.resolved import ResolvedTemplate
from simcore.topics import MAX_TOPIC_BYTES, validate_filter

ENTRY_ID = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
THING_ARN = re.compile(r"arn:aws[a-z-]*:iot:[a-z0-9-]+:\d{12}:thing/([a-zA-Z0-9:_-]{1,128})")
CERTIFICATE_ARN = re.compile(r"arn:aws[a-z-]*:iot:[a-z0-9-]+:\d{12}:cert/[a-f0-9]{64}")
LAMBDA_ARN = re.compile(r"arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:([a-zA-Z0-9_-]+)(?::([$a-zA-Z0-9_-]+))?")
# The Greengrass system functions a FunctionDefinition may list: the core provides them, no Lambda runs.
# `arn:aws:lambda:::function:<name>[:<version>]` (DG health-check.md, gg-core.md#ip-auto-detect).
SYSTEM_FUNCTIONS = {
    "GGIPDetector": "advertise the core's interface addresses as its connectivity (simcore.devices)",
    "GGConnManager": "route the devices' MQTT (simcore.devices, always on when the group has devices)",
    "GGDeviceCertificateManager": "issue and renew the MQTT server certificate (simcore.devices, always on)",
    "GGStreamManager": "message streams and their exports, configured by its variables (simcore.streams)",
}
SYSTEM_FUNCTION_ARN = re.compile(r"arn:aws[a-z-]*:lambda:::function:([A-Za-z]+)(?::\d+)?")
LOG_LEVELS = ("DEBUG", "INFO", "WARN", "ERROR", "FATAL")
VERSION_LINKS = {
    "CoreDefinitionVersionArn": "Core",
    "DeviceDefinitionVersionArn": "Device",
    "FunctionDefinitionVersionArn": "Function",
    "ResourceDefinitionVersionArn": "Resource",
    "SubscriptionDefinitionVersionArn": "Subscription",
    "LoggerDefinitionVersionArn": "Logger",
    "ConnectorDefinitionVersionArn": "Connector",
}
RESOURCE_CONTAINERS = {
    "S3MachineLearningModelResourceData": "ml_s3",
    "SageMakerMachineLearningModelResourceData": "ml_sagemaker",
    "LocalDeviceResourceData": "local_device",
    "LocalVolumeResourceData": "local_volume",
    "SecretsManagerSecretResourceData": "secret",
}


class _Version:
    """A definition version the template creates: its kind, resolved content and where it is written."""

    def __init__(self, kind: str, content: dict, path: str):
        self.kind = kind
        self.content = content
        self.path = path


def build_group(template: ResolvedTemplate) -> Group:
    """The `Group` of the template's one `AWS::Greengrass::Group`."""
    groups = template.existing("AWS::Greengrass::Group")
    declared = [
        logical_id for logical_id, body in template.resources.items() if body.get("Type") == "AWS::Greengrass::Group"
    ]
    if not groups and declared:
        condition = template.resources[declared[0]].get("Condition")
        raise TemplateError(
            f"group {declared[0]} is not created: its Condition {condition} is false with these parameters",
            location=f"Resources.{declared[0]}.Condition",
        )
    if len(groups) != 1:
        raise TemplateError(
            f"the template must create exactly one AWS::Greengrass::Group, it creates {len(groups)}",
            location="Resources",
        )
    group_logical_id = groups[0]
    group_name = template.property_value(group_logical_id, "Name")
    if not group_name:
        raise TemplateError("a group needs a Name", location=template.property_path(group_logical_id, "Name"))
    links, links_path = _group_version_links(template, group_logical_id)
    versions = _definition_versions(template)
    content: dict[str, _Version] = {}
    for key, value in links.items():
        path = child_path(links_path, key)
        if key not in VERSION_LINKS:
            raise TemplateError(f"unknown group version property {key}", location=path)
        version = versions.get(value) if isinstance(value, str) else None
        if version is None:
            raise TemplateError(
                f"{key} {value!r} names no definition version this template creates "
                "(use !GetAtt <Definition>.LatestVersionArn or !Ref <DefinitionVersion>)",
                location=path,
            )
        if version.kind != VERSION_LINKS[key]:
            raise TemplateError(f"{key} names a {version.kind} definition version", location=path)
        content[VERSION_LINKS[key]] = version
    if "Core" not in content:
        raise TemplateError("a group version needs CoreDefinitionVersionArn", location=links_path)

    cores = _cores(content["Core"])
    devices = _devices(content["Device"]) if "Device" in content else ()
    resources = _resources(content["Resource"], template.template_dir) if "Resource" in content else ()
    connectors = _connectors(content["Connector"]) if "Connector" in content else ()
    functions, default_isolation = (
        _functions(content["Function"], template, resources) if "Function" in content else ((), "GreengrassContainer")
    )
    system_function_settings = _system_function_settings(content["Function"]) if "Function" in content else ()
    loggers = _loggers(content["Logger"]) if "Logger" in content else ()
    subscriptions = (
        _subscriptions(content["Subscription"], functions, connectors, devices) if "Subscription" in content else ()
    )
    return Group(
        name=str(group_name),
        region=template.region,
        account_id=template.account_id,
        cores=cores,
        devices=devices,
        functions=functions,
        resources=resources,
        subscriptions=subscriptions,
        loggers=loggers,
        connectors=connectors,
        system_function_settings=system_function_settings,
        default_isolation_mode=default_isolation,
        system_functions=_system_functions(content["Function"]) if "Function" in content else (),
    )


def system_function_name(arn: str) -> str | None:
    """The name of the Greengrass system function `arn` names (`GGIPDetector`), or None for a Lambda ARN."""
    match = SYSTEM_FUNCTION_ARN.fullmatch(arn) if isinstance(arn, str) else None
    return match.group(1) if match and match.group(1) in SYSTEM_FUNCTIONS else None


def _system_functions(version: _Version) -> tuple[str, ...]:
    names = (system_function_name(entry.get("FunctionArn")) for entry, _path in _entries(version, "Functions"))
    return tuple(dict.fromkeys(name for name in names if name))


# -- versions ---------------------------------------------------------------------------------------


def _group_version_links(template: ResolvedTemplate, group_logical_id: str) -> tuple[dict, str]:
    group_id = template.ids.ref(group_logical_id, f"Resources.{group_logical_id}")
    group_versions = [
        logical_id
        for logical_id in template.existing("AWS::Greengrass::GroupVersion")
        if template.property_value(logical_id, "GroupId") == group_id
    ]
    if len(group_versions) > 1:
        raise TemplateError(
            f"more than one GroupVersion for group {group_logical_id}: {', '.join(group_versions)}",
            location="Resources",
        )
    if group_versions:
        logical_id = group_versions[0]
        properties = template.resources[logical_id].get("Properties") or {}
        links = {
            key: template.property_value(logical_id, key)
            for key in properties
            if key != "GroupId" and template.property_value(logical_id, key) is not None
        }
        return links, f"Resources.{logical_id}.Properties"
    initial = template.property_value(group_logical_id, "InitialVersion")
    if not isinstance(initial, Mapping):
        raise TemplateError(
            f"group {group_logical_id} has no InitialVersion and no AWS::Greengrass::GroupVersion",
            location=f"Resources.{group_logical_id}.Properties",
        )
    return dict(initial), template.property_path(group_logical_id, "InitialVersion")


def _definition_versions(template: ResolvedTemplate) -> dict[str, _Version]:
    versions: dict[str, _Version] = {}
    for logical_id, body in template.resources.items():
        kind = definition_kind(str(body.get("Type")))
        if kind is None or not template.resource_exists(logical_id):
            continue
        name, is_version_resource = kind
        where = f"Resources.{logical_id}"
        if is_version_resource:
            arn = template.ids.ref(logical_id, where)
            properties = body.get("Properties") or {}
            content = {
                key: template.property_value(logical_id, key) for key in properties if key != f"{name}DefinitionId"
            }
            versions[arn] = _Version(name, content, f"{where}.Properties")
        elif template.property_value(logical_id, "InitialVersion") is not None:
            arn = template.ids.get_att(logical_id, "LatestVersionArn", where)
            content = template.property_value(logical_id, "InitialVersion")
            if not isinstance(content, Mapping):
                raise TemplateError("InitialVersion must be a mapping", location=f"{where}.Properties.InitialVersion")
            versions[arn] = _Version(name, dict(content), f"{where}.Properties.InitialVersion")
    return versions


# -- entries ----------------------------------------------------------------------------------------


def _entries(version: _Version, key: str, *, required: bool = True) -> list[tuple[dict, str]]:
    """The list `key` of a version, each entry with its path, ids checked for charset and uniqueness."""
    path = child_path(version.path, key)
    entries = version.content.get(key)
    if entries is None:
        if required:
            raise TemplateError(f"a {version.kind} definition version needs {key}", location=path)
        return []
    if not isinstance(entries, list):
        raise TemplateError(f"{key} must be a list", location=path)
    seen: set[str] = set()
    checked = []
    for index, entry in enumerate(entries):
        entry_path = child_path(path, index)
        if not isinstance(entry, Mapping):
            raise TemplateError(f"each of {key} is a mapping", location=entry_path)
        entry_id = _required(entry, "Id", entry_path)
        if not ENTRY_ID.fullmatch(entry_id):
            raise TemplateError(
                f"Id {entry_id!r} must match [a-zA-Z0-9:_-]+ and be at most 128 characters",
                location=child_path(entry_path, "Id"),
            )
        if entry_id in seen:
            raise TemplateError(f"Id {entry_id!r} is used twice in {key}", location=child_path(entry_path, "Id"))
        seen.add(entry_id)
        checked.append(({**entry, "Id": entry_id}, entry_path))
    return checked


def _required(entry: Mapping[str, Any], key: str, path: str) -> str:
    value = entry.get(key)
    if value is None or value == "":
        raise TemplateError(f"{key} is required", location=child_path(path, key))
    if isinstance(value, (Mapping, list)):
        raise TemplateError(f"{key} must be a string, got {value!r}", location=child_path(path, key))
    return str(value)


def _bool(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise TemplateError(f"expected true or false, got {value!r}", location=path)


def _int(value: Any, path: str) -> int:
    if isinstance(value, bool):
        raise TemplateError(f"expected an integer, got {value!r}", location=path)
    try:
        return int(str(value))
    except ValueError:
        raise TemplateError(f"expected an integer, got {value!r}", location=path) from None


def _thing_name(thing_arn: str, path: str) -> str:
    match = THING_ARN.fullmatch(thing_arn)
    if not match:
        raise TemplateError(
            f"ThingArn {thing_arn!r} is not an IoT thing ARN (arn:aws:iot:<region>:<account>:thing/<name>)",
            location=path,
        )
    return match.group(1)


def _check_certificate_arn(certificate_arn: str, path: str) -> None:
    if not CERTIFICATE_ARN.fullmatch(certificate_arn):
        raise TemplateError(
            f"CertificateArn {certificate_arn!r} is not an IoT certificate ARN "
            "(arn:aws:iot:<region>:<account>:cert/<id>)",
            location=path,
        )


def _cores(version: _Version) -> tuple[Core, ...]:
    entries = _entries(version, "Cores")
    if len(entries) != 1:
        raise TemplateError(
            f"a core definition version holds exactly one core, this one holds {len(entries)}",
            location=child_path(version.path, "Cores"),
        )
    return tuple(Core(**_thing_entry(entry, path)) for entry, path in entries)


def _devices(version: _Version) -> tuple[Device, ...]:
    return tuple(Device(**_thing_entry(entry, path)) for entry, path in _entries(version, "Devices"))


def _thing_entry(entry: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The fields of a core or device entry (the two have the same ones), their ARNs checked."""
    thing_arn = _required(entry, "ThingArn", path)
    certificate_arn = _required(entry, "CertificateArn", path)
    _check_certificate_arn(certificate_arn, child_path(path, "CertificateArn"))
    return {
        "id": entry["Id"],
        "thing_name": _thing_name(thing_arn, child_path(path, "ThingArn")),
        "thing_arn": thing_arn,
        "certificate_arn": certificate_arn,
        "sync_shadow": _bool(entry.get("SyncShadow", False), child_path(path, "SyncShadow")),
    }


def _owner(setting: Any, path: str) -> tuple[str | None, str | None]:
    if setting is None:
        return None, None
    if not isinstance(setting, Mapping):
        raise TemplateError("OwnerSetting must be a mapping", location=path)
    group_owner = _required(setting, "GroupOwner", path)
    permission = _required(setting, "GroupPermission", path)
    if permission not in ("ro", "rw"):
        raise TemplateError(
            f"GroupPermission must be ro or rw, got {permission!r}",
            location=child_path(path, "GroupPermission"),
        )
    return group_owner, permission


def _absolute(value: str, path: str, what: str) -> str:
    if not value.startswith("/"):
        raise TemplateError(f"{what} must be an absolute path, got {value!r}", location=path)
    return value


def _model_source(uri: str, template_dir: Path) -> str:
    """An ML model's source: URIs as written; a local path made absolute against the template's folder."""
    if "://" in uri:
        scheme = uri.split("://", 1)[0]
        if scheme not in ("s3", "file"):
            return uri  # refused by deploy, which names the scheme
        return uri
    return str((template_dir / uri).resolve())


def _resources(version: _Version, template_dir: Path) -> tuple[Resource, ...]:
    resources = []
    for entry, path in _entries(version, "Resources"):
        name = _required(entry, "Name", path)
        container = entry.get("ResourceDataContainer")
        container_path = child_path(path, "ResourceDataContainer")
        if (
            not isinstance(container, Mapping)
            or len(container) != 1
            or next(iter(container)) not in RESOURCE_CONTAINERS
        ):
            raise TemplateError(
                f"ResourceDataContainer holds exactly one of {', '.join(RESOURCE_CONTAINERS)}",
                location=container_path,
            )
        ((container_key, data),) = container.items()
        data_path = child_path(container_path, container_key)
        if not isinstance(data, Mapping):
            raise TemplateError(f"{container_key} must be a mapping", location=data_path)
        kind = RESOURCE_CONTAINERS[container_key]
        fields: dict[str, Any] = {"id": entry["Id"], "name": name, "kind": kind}
        if kind in ("ml_s3", "ml_sagemaker"):
            source_key = "S3Uri" if kind == "ml_s3" else "SageMakerJobArn"
            source = _required(data, source_key, data_path)
            fields["source"] = _model_source(source, template_dir) if kind == "ml_s3" else source
            fields["destination_path"] = _absolute(
                _required(data, "DestinationPath", data_path),
                child_path(data_path, "DestinationPath"),
                "DestinationPath",
            )
            fields["group_owner"], fields["group_permission"] = _owner(
                data.get("OwnerSetting"), child_path(data_path, "OwnerSetting")
            )
        elif kind in ("local_device", "local_volume"):
            source = _absolute(
                _required(data, "SourcePath", data_path), child_path(data_path, "SourcePath"), "SourcePath"
            )
            if kind == "local_device" and not source.startswith("/dev/"):
                raise TemplateError(
                    f"a local device's SourcePath is under /dev/, got {source!r}",
                    location=child_path(data_path, "SourcePath"),
                )
            fields["source"] = source
            if kind == "local_volume":
                fields["destination_path"] = _absolute(
                    _required(data, "DestinationPath", data_path),
                    child_path(data_path, "DestinationPath"),
                    "DestinationPath",
                )
            owner_setting = data.get("GroupOwnerSetting") or {}
            owner_path = child_path(data_path, "GroupOwnerSetting")
            fields["auto_add_group_owner"] = _bool(
                owner_setting.get("AutoAddGroupOwner", False), child_path(owner_path, "AutoAddGroupOwner")
            )
            if owner_setting.get("GroupOwner"):
                fields["group_owner"] = str(owner_setting["GroupOwner"])
        else:
            fields["source"] = _required(data, "ARN", data_path)
            labels = data.get("AdditionalStagingLabelsToDownload", [])
            if not isinstance(labels, list) or not all(isinstance(label, str) and label for label in labels):
                raise TemplateError(
                    "AdditionalStagingLabelsToDownload must be a list of staging labels",
                    location=child_path(data_path, "AdditionalStagingLabelsToDownload"),
                )
            fields["additional_staging_labels"] = tuple(labels)
        resources.append(Resource(**fields))
    return tuple(resources)


def _connectors(version: _Version) -> tuple[Connector, ...]:
    connectors = []
    for entry, path in _entries(version, "Connectors"):
        arn = _required(entry, "ConnectorArn", path)
        if "/connectors/" not in arn:
            raise TemplateError(
                f"ConnectorArn {arn!r} is not a connector ARN "
                "(arn:aws:greengrass:<region>::/connectors/<Name>/versions/<n>)",
                location=child_path(path, "ConnectorArn"),
            )
        parameters = entry.get("Parameters") or {}
        if not isinstance(parameters, Mapping):
            raise TemplateError("Parameters must be a mapping", location=child_path(path, "Parameters"))
        connectors.append(Connector(id=entry["Id"], arn=arn, parameters=dict(parameters)))
    return tuple(connectors)


def _loggers(version: _Version) -> tuple[Logger, ...]:
    loggers = []
    for entry, path in _entries(version, "Loggers"):
        logger_type = _required(entry, "Type", path)
        component = _required(entry, "Component", path)
        level = _required(entry, "Level", path)
        if logger_type not in ("FileSystem", "AWSCloudWatch"):
            raise TemplateError(
                f"Type must be FileSystem or AWSCloudWatch, got {logger_type!r}",
                location=child_path(path, "Type"),
            )
        if component not in ("GreengrassSystem", "Lambda"):
            raise TemplateError(
                f"Component must be GreengrassSystem or Lambda, got {component!r}",
                location=child_path(path, "Component"),
            )
        if level not in LOG_LEVELS:
            raise TemplateError(
                f"Level must be one of {', '.join(LOG_LEVELS)}, got {level!r}",
                location=child_path(path, "Level"),
            )
        space = entry.get("Space")
        if space is not None and logger_type != "FileSystem":
            raise TemplateError("Space applies only to FileSystem loggers", location=child_path(path, "Space"))
        loggers.append(
            Logger(
                id=entry["Id"],
                type=logger_type,  # type: ignore[arg-type]
                component=component,  # type: ignore[arg-type]
                level=level,
                space_kb=None if space is None else _int(space, child_path(path, "Space")),
            )
        )
    return tuple(loggers)


# -- functions --------------------------------------------------------------------------------------


class _LambdaIndex:
    """The template's Lambdas: qualified ARNs the template defines, and each name's logical id."""

    def __init__(self, template: ResolvedTemplate):
        self.logical_by_name: dict[str, str] = {}
        self.qualified: dict[str, str] = {}
        ids = template.ids
        for logical_id, body in template.resources.items():
            if not template.resource_exists(logical_id):
                continue
            where = f"Resources.{logical_id}"
            resource_type = body.get("Type")
            if resource_type in LAMBDA_TYPES:
                self.logical_by_name[ids.lambda_name(logical_id)] = logical_id
                if resource_type == "AWS::Serverless::Function" and template.property_value(
                    logical_id, "AutoPublishAlias"
                ):
                    for suffix in ("Alias", "Version"):
                        self.qualified[ids.ref(f"{logical_id}.{suffix}", where)] = logical_id
            elif resource_type in ("AWS::Lambda::Alias", "AWS::Lambda::Version"):
                self.qualified[ids.ref(logical_id, where)] = ""
        for arn in list(self.qualified):
            name = lambda_name_from_arn(arn)
            self.qualified[arn] = self.logical_by_name.get(name, "")

    def function_for(self, arn: str, path: str) -> str:
        """The logical id of the Lambda `arn` (a qualified ARN) runs."""
        if self.qualified.get(arn):
            return self.qualified[arn]
        match = LAMBDA_ARN.fullmatch(arn)
        if not match:
            raise TemplateError(f"FunctionArn {arn!r} is not a Lambda function ARN", location=path)
        name, qualifier = match.groups()
        if qualifier == "$LATEST":
            raise TemplateError(
                f"FunctionArn {arn!r}: Greengrass cannot run $LATEST; use an alias or a version",
                location=path,
            )
        if name not in self.logical_by_name:
            raise TemplateError(
                f"FunctionArn {arn!r} names no Lambda function of this template (simcore runs only local code)",
                location=path,
            )
        if qualifier is None:
            raise TemplateError(
                f"FunctionArn {arn!r} must be qualified by an alias or a version (e.g. !Ref "
                f"{self.logical_by_name[name]}.Alias)",
                location=path,
            )
        raise TemplateError(
            f"FunctionArn {arn!r}: the template defines no alias or version {qualifier!r} of {name}",
            location=path,
        )


def _lambda_code(template: ResolvedTemplate, logical_id: str) -> tuple[Path, str, str]:
    """(code path, handler, runtime) of a Lambda in the template."""
    is_sam = template.resources[logical_id]["Type"] == "AWS::Serverless::Function"
    code_key = "CodeUri" if is_sam else "Code"
    code = template.property_value(logical_id, code_key)
    code_path = template.property_path(logical_id, code_key)
    if code is None:
        raise TemplateError(f"{logical_id} needs {code_key}", location=code_path)
    if not isinstance(code, str) or code.startswith("s3://"):
        raise TemplateError(
            f"{code_key} must be a local path relative to the template (simcore does not fetch code from S3 "
            f"or inline ZipFile), got {code!r}",
            location=code_path,
        )
    code_dir = (template.template_dir / code).resolve()
    if not code_dir.exists():
        raise TemplateError(f"{code_key} {code!r}: no such file or directory ({code_dir})", location=code_path)
    handler = template.property_value(logical_id, "Handler")
    runtime = template.property_value(logical_id, "Runtime")
    if not handler:
        raise TemplateError(f"{logical_id} needs Handler", location=template.property_path(logical_id, "Handler"))
    if not runtime:
        raise TemplateError(f"{logical_id} needs Runtime", location=template.property_path(logical_id, "Runtime"))
    if not re.fullmatch(SUPPORTED_RUNTIME_PATTERN, str(runtime)):
        raise TemplateError(_unsupported_runtime(str(runtime)), location=template.property_path(logical_id, "Runtime"))
    return code_dir, str(handler), str(runtime)


def _unsupported_runtime(runtime: str) -> str:
    """Why simcore can never run `runtime` (simcore.core.interpreters says the same at run time), and the fix."""
    if re.fullmatch(r"python2(\.\d+)?", runtime):
        return (f"Runtime {runtime} cannot run on simcore: its Lambda runtime needs Python 3; port the function "
                "to python3.8 (Greengrass v1's newest runtime) or python3.7")
    return f"Runtime {runtime!r} is not a Python runtime simcore can run (python3.x, e.g. python3.8)"


def _functions(
    version: _Version, template: ResolvedTemplate, resources: tuple[Resource, ...]
) -> tuple[tuple[Function, ...], str]:
    default_config = version.content.get("DefaultConfig") or {}
    default_execution = (default_config.get("Execution") or {}) if isinstance(default_config, Mapping) else {}
    default_isolation = default_execution.get("IsolationMode") or "GreengrassContainer"
    default_path = child_path(version.path, "DefaultConfig.Execution.IsolationMode")
    _check_isolation(default_isolation, default_path)
    index = _LambdaIndex(template)
    resources_by_id = {resource.id: resource for resource in resources}
    functions: list[Function] = []
    seen_arns: set[str] = set()
    for entry, path in _entries(version, "Functions"):
        arn_path = child_path(path, "FunctionArn")
        arn = _required(entry, "FunctionArn", path)
        if system_function_name(arn):
            continue  # provided by the core itself (SYSTEM_FUNCTIONS)
        if arn in seen_arns:
            raise TemplateError(f"FunctionArn {arn!r} appears twice in the function definition", location=arn_path)
        seen_arns.add(arn)
        logical_id = index.function_for(arn, arn_path)
        code_dir, handler, runtime = _lambda_code(template, logical_id)
        config = entry.get("FunctionConfiguration") or {}
        config_path = child_path(path, "FunctionConfiguration")
        functions.append(
            _function(
                entry["Id"],
                arn,
                template.ids.lambda_name(logical_id),
                code_dir,
                handler,
                runtime,
                config,
                config_path,
                default_execution,
                resources_by_id,
                logical_id,
            )
        )
    return tuple(functions), default_isolation


def _system_function_settings(version: _Version) -> tuple[SystemFunction, ...]:
    """Each listed system function with the FunctionConfiguration that configures it (GGStreamManager's
    Environment.Variables)."""
    found = []
    for entry, path in _entries(version, "Functions"):
        name = system_function_name(entry.get("FunctionArn"))
        if name is None:
            continue
        config = entry.get("FunctionConfiguration") or {}
        config_path = child_path(path, "FunctionConfiguration")
        environment = config.get("Environment") or {}
        memory = config.get("MemorySize")
        found.append(SystemFunction(
            id=entry["Id"],
            arn=entry["FunctionArn"],
            name=name,
            environment=_variables(environment.get("Variables") or {},
                                   child_path(config_path, "Environment.Variables")),
            pinned=_bool(config.get("Pinned", True), child_path(config_path, "Pinned")),
            memory_kb=None if memory is None else _int(memory, child_path(config_path, "MemorySize")),
        ))
    return tuple(found)


def _check_isolation(mode: Any, path: str) -> None:
    if mode not in ("GreengrassContainer", "NoContainer"):
        raise TemplateError(f"IsolationMode must be GreengrassContainer or NoContainer, got {mode!r}", location=path)


def _function(
    function_id: str,
    arn: str,
    name: str,
    code_dir: Path,
    handler: str,
    runtime: str,
    config: Mapping[str, Any],
    path: str,
    default_execution: Mapping[str, Any],
    resources_by_id: Mapping[str, Resource],
    logical_id: str,
) -> Function:
    environment = config.get("Environment") or {}
    environment_path = child_path(path, "Environment")
    execution = environment.get("Execution") or {}
    isolation = execution.get("IsolationMode") or default_execution.get("IsolationMode") or "GreengrassContainer"
    _check_isolation(isolation, child_path(environment_path, "Execution.IsolationMode"))
    run_as = execution.get("RunAs") or default_execution.get("RunAs") or {}
    memory = config.get("MemorySize")
    memory_path = child_path(path, "MemorySize")
    if isolation == "GreengrassContainer" and memory is None:
        raise TemplateError(
            f"function {function_id}: MemorySize is required when IsolationMode is GreengrassContainer",
            location=memory_path,
        )
    if isolation == "NoContainer" and memory is not None:
        raise TemplateError(
            f"function {function_id}: MemorySize is not allowed when IsolationMode is NoContainer",
            location=memory_path,
        )
    memory_kb = None if memory is None else _int(memory, memory_path)
    if memory_kb is not None and memory_kb <= 0:
        raise TemplateError(f"function {function_id}: MemorySize must be positive", location=memory_path)
    timeout = _int(config.get("Timeout", 3), child_path(path, "Timeout"))
    if timeout <= 0:
        raise TemplateError(f"function {function_id}: Timeout must be positive", location=child_path(path, "Timeout"))
    encoding = config.get("EncodingType", "json")
    if encoding not in ("json", "binary"):
        raise TemplateError(
            f"EncodingType must be json or binary, got {encoding!r}",
            location=child_path(path, "EncodingType"),
        )
    access_sysfs = _bool(environment.get("AccessSysfs", False), child_path(environment_path, "AccessSysfs"))
    if access_sysfs and isolation == "NoContainer":
        raise TemplateError(
            f"function {function_id}: AccessSysfs is not allowed when IsolationMode is NoContainer",
            location=child_path(environment_path, "AccessSysfs"),
        )
    return Function(
        id=function_id,
        arn=arn,
        name=name,
        code_dir=code_dir,
        handler=handler,
        runtime=runtime,
        pinned=_bool(config.get("Pinned", False), child_path(path, "Pinned")),
        memory_kb=memory_kb,
        timeout_s=timeout,
        encoding_type=encoding,
        environment=_variables(environment.get("Variables") or {}, child_path(environment_path, "Variables")),
        resource_access=_resource_access(
            function_id,
            environment.get("ResourceAccessPolicies") or [],
            child_path(environment_path, "ResourceAccessPolicies"),
            isolation,
            resources_by_id,
        ),
        access_sysfs=access_sysfs,
        isolation_mode=isolation,
        run_as_uid=None if run_as.get("Uid") is None else _int(run_as["Uid"], child_path(path, "RunAs.Uid")),
        run_as_gid=None if run_as.get("Gid") is None else _int(run_as["Gid"], child_path(path, "RunAs.Gid")),
        exec_args=None if config.get("ExecArgs") is None else str(config["ExecArgs"]),
        logical_id=logical_id,
    )


def _variables(variables: Any, path: str) -> dict[str, str]:
    if not isinstance(variables, Mapping):
        raise TemplateError("Variables must be a mapping of names to strings", location=path)
    result = {}
    for key, value in variables.items():
        if isinstance(value, bool):
            result[str(key)] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            result[str(key)] = str(value)
        else:
            raise TemplateError(f"variable {key} must be a string, got {value!r}", location=child_path(path, key))
    return result


def _resource_access(
    function_id: str,
    policies: Any,
    path: str,
    isolation: str,
    resources_by_id: Mapping[str, Resource],
) -> tuple[ResourceAccess, ...]:
    if not isinstance(policies, list):
        raise TemplateError("ResourceAccessPolicies must be a list", location=path)
    accesses = []
    for index, policy in enumerate(policies):
        policy_path = child_path(path, index)
        if not isinstance(policy, Mapping):
            raise TemplateError("each ResourceAccessPolicies entry is a mapping", location=policy_path)
        resource_id = _required(policy, "ResourceId", policy_path)
        permission = policy.get("Permission", "ro")
        if permission not in ("ro", "rw"):
            raise TemplateError(
                f"Permission must be ro or rw, got {permission!r}",
                location=child_path(policy_path, "Permission"),
            )
        resource = resources_by_id.get(resource_id)
        if resource is None:
            raise TemplateError(
                f"function {function_id}: ResourceId {resource_id!r} is not a resource of the group",
                location=child_path(policy_path, "ResourceId"),
            )
        if isolation == "NoContainer":
            if resource.kind in ("local_device", "local_volume"):
                raise TemplateError(
                    f"function {function_id}: a NoContainer function cannot access local {resource.kind[6:]} "
                    f"resource {resource_id!r}",
                    location=policy_path,
                )
            if resource.kind in ("ml_s3", "ml_sagemaker") and resource.group_owner is None:
                raise TemplateError(
                    f"function {function_id}: a NoContainer function can access ML resource {resource_id!r} "
                    "only when the resource has an OwnerSetting",
                    location=policy_path,
                )
        accesses.append(ResourceAccess(resource_id=resource_id, permission=permission))
    return tuple(accesses)


# -- subscriptions ----------------------------------------------------------------------------------


def _subscriptions(
    version: _Version,
    functions: tuple[Function, ...],
    connectors: tuple[Connector, ...],
    devices: tuple[Device, ...],
) -> tuple[Subscription, ...]:
    endpoints = {CLOUD, SHADOW_SERVICE}
    endpoints.update(function.arn for function in functions)
    endpoints.update(connector.arn for connector in connectors)
    endpoints.update(device.thing_arn for device in devices)
    subscriptions = []
    for entry, path in _entries(version, "Subscriptions"):
        for key in ("Source", "Target"):
            value = _required(entry, key, path)
            # A thing ARN the DeviceDefinition lacks is a warning at deploy (simcore.deploy.deployment), not an
            # error: the router counts its messages undeliverable.
            if value not in endpoints and not THING_ARN.fullmatch(value):
                raise TemplateError(
                    f"subscription {entry['Id']}: {key} {value!r} must be cloud, GGShadowService, "
                    "the ARN of a "
                    "function, connector or device of this group",
                    location=child_path(path, key),
                )
        subject = _required(entry, "Subject", path)
        _check_subject(entry["Id"], subject, child_path(path, "Subject"))
        subscriptions.append(
            Subscription(id=entry["Id"], source=entry["Source"], subject=subject, target=entry["Target"])
        )
    return tuple(subscriptions)


def _check_subject(subscription_id: str, subject: str, location: str) -> None:
    """TemplateError at `location` unless `subject` is an MQTT topic filter the Greengrass API accepts."""
    # The filter rule is the router's (simcore.topics); only the API's length bound is the template's own.
    if len(subject.encode("utf-8")) > MAX_TOPIC_BYTES:
        raise TemplateError(
            f"subscription {subscription_id}: Subject {subject!r}: a subject is at most {MAX_TOPIC_BYTES} bytes",
            location=location,
        )
    try:
        validate_filter(subject)
    except RoutingError as error:
        raise TemplateError(f"subscription {subscription_id}: {error.message}", location=location) from None
