"""What a Greengrass v1 group is, as simcore runs it: plain values, no behaviour, no I/O.

`simcore.template.loader` builds a `Group` from the CloudFormation template; every other part of the core reads it.
Field names follow the AWS::Greengrass::* properties they come from, in snake_case.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

CLOUD = "cloud"
SHADOW_SERVICE = "GGShadowService"

IsolationMode = Literal["GreengrassContainer", "NoContainer"]
Permission = Literal["ro", "rw"]
ResourceKind = Literal["ml_s3", "ml_sagemaker", "local_device", "local_volume", "secret"]


@dataclass(frozen=True)
class Thing:
    """A thing of the group with its certificate: an entry of `CoreDefinition.Cores` or `DeviceDefinition.Devices`."""

    id: str
    thing_name: str
    thing_arn: str
    certificate_arn: str
    sync_shadow: bool = False


@dataclass(frozen=True)
class Core(Thing):
    """One entry of `CoreDefinition.Cores`: the core's own thing."""


@dataclass(frozen=True)
class Device(Thing):
    """One entry of `DeviceDefinition.Devices`: a device thing whose shadow the core may sync."""


@dataclass(frozen=True)
class ResourceAccess:
    """A function's `ResourceAccessPolicies` entry."""

    resource_id: str
    permission: Permission = "ro"


@dataclass(frozen=True)
class Function:
    """One entry of `FunctionDefinition.Functions`, with its Lambda's code and runtime resolved.

    `arn` is the qualified ARN exactly as the group names it (alias or version): it is the function's
    identity in subscriptions and its `MY_FUNCTION_ARN`. `id` is its `Functions` entry's `Id`;
    `logical_id` the template's logical id of the Lambda it runs (`RainInferenceFunction`), None when the
    group did not come from a template.
    """

    id: str
    arn: str
    name: str
    code_dir: Path
    handler: str
    runtime: str
    pinned: bool = False
    memory_kb: int | None = None
    timeout_s: int = 3
    encoding_type: Literal["json", "binary"] = "json"
    environment: dict[str, str] = field(default_factory=dict)
    resource_access: tuple[ResourceAccess, ...] = ()
    access_sysfs: bool = False
    isolation_mode: IsolationMode = "GreengrassContainer"
    run_as_uid: int | None = None
    run_as_gid: int | None = None
    exec_args: str | None = None
    logical_id: str | None = None


@dataclass(frozen=True)
class SystemFunction:
    """A `FunctionDefinition.Functions` entry naming one of the core's own functions (e.g. `GGStreamManager`).

    `name` is its short name; `environment` its `Environment.Variables`, which configure it.
    """

    id: str
    arn: str
    name: str
    environment: dict[str, str] = field(default_factory=dict)
    pinned: bool = True
    memory_kb: int | None = None


@dataclass(frozen=True)
class Resource:
    """One entry of `ResourceDefinition.Resources`.

    `source` is where the data comes from: an `s3://`/`file://` URI or local path (ML models), a SageMaker
    job ARN, a `/dev/...` path (local devices), a host directory (volumes) or a secret ARN.
    `destination_path` is where a function sees it (ML models, volumes; devices keep their own path).
    `additional_staging_labels` are a secret's `AdditionalStagingLabelsToDownload` (AWSCURRENT is implied).
    """

    id: str
    name: str
    kind: ResourceKind
    source: str
    destination_path: str | None = None
    group_owner: str | None = None
    group_permission: Permission | None = None
    auto_add_group_owner: bool = False
    additional_staging_labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Subscription:
    """One entry of `SubscriptionDefinition.Subscriptions`: a one-way route.

    `source` and `target` are a function ARN as written in the group, `cloud`, `GGShadowService`,
    a connector ARN or a device thing ARN. `subject` is an MQTT topic filter (`+` and `#` allowed).
    """

    id: str
    source: str
    subject: str
    target: str


@dataclass(frozen=True)
class Logger:
    """One entry of `LoggerDefinition.Loggers`."""

    id: str
    type: Literal["FileSystem", "AWSCloudWatch"]
    component: Literal["GreengrassSystem", "Lambda"]
    level: str = "INFO"
    space_kb: int | None = None


@dataclass(frozen=True)
class Connector:
    """One entry of `ConnectorDefinition.Connectors`."""

    id: str
    arn: str
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The connector's name in its ARN, e.g. `CloudWatchMetrics`."""
        marker = "/connectors/"
        tail = self.arn.split(marker, 1)[1] if marker in self.arn else self.arn
        return tail.split("/", 1)[0]


@dataclass(frozen=True)
class Group:
    """A whole group: what one deployment runs."""

    name: str
    region: str
    account_id: str
    cores: tuple[Core, ...] = ()
    devices: tuple[Device, ...] = ()
    functions: tuple[Function, ...] = ()
    resources: tuple[Resource, ...] = ()
    subscriptions: tuple[Subscription, ...] = ()
    loggers: tuple[Logger, ...] = ()
    connectors: tuple[Connector, ...] = ()
    default_isolation_mode: IsolationMode = "GreengrassContainer"
    # The Greengrass system functions the FunctionDefinition lists (`GGIPDetector`...), by name: the core
    # provides them itself (simcore.template.builder's SYSTEM_FUNCTIONS says which it accepts).
    system_functions: tuple[str, ...] = ()
    # The same entries with their configuration (GGStreamManager is configured by its Environment.Variables).
    system_function_settings: tuple[SystemFunction, ...] = ()

    @property
    def core(self) -> Core:
        """The group's core (a v1 group has exactly one)."""
        if len(self.cores) != 1:
            raise ValueError(f"a group has exactly one core; this one has {len(self.cores)}")
        return self.cores[0]

    def function(self, arn: str) -> Function:
        """The function whose qualified ARN is `arn`; KeyError if none."""
        for candidate in self.functions:
            if candidate.arn == arn:
                return candidate
        raise KeyError(arn)

    def system_function(self, name: str) -> SystemFunction | None:
        """The system function called `name` (`GGStreamManager`) when the group lists it."""
        return next((candidate for candidate in self.system_function_settings if candidate.name == name), None)

    def resource(self, resource_id: str) -> Resource:
        """The resource with `Id` `resource_id`; KeyError if none."""
        for candidate in self.resources:
            if candidate.id == resource_id:
                return candidate
        raise KeyError(resource_id)
