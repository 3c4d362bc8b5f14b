"""A deployment as it lies on disk, read back: its record, its group, its status.

What `simcore.deploy.deployment` writes (see its docstring for the layout) and the running core reads. It
imports nothing of the template machinery, so starting a core does not load cfn-lint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simcore.errors import DeployError
from simcore.group import (
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

STATUS_FILE = "status.json"


@dataclass(frozen=True)
class Deployment:
    """One deployment on disk: its group (code dirs pointing at the deployed copies) and paths."""

    id: str
    number: int
    root: Path
    directory: Path
    group: Group
    function_dirs: dict[str, Path] = field(default_factory=dict)  # by function ARN
    resource_dirs: dict[str, Path] = field(default_factory=dict)  # by resource id: ML data, volume sources
    parameters: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    created_at: str = ""


# -- Group <-> JSON ---------------------------------------------------------------------------------


def group_to_json(group: Group, relative_to: Path | None = None) -> dict:
    """The group as JSON-ready data; code dirs relative to `relative_to` when they lie below it."""
    data = dataclasses.asdict(group)
    for function in data["functions"]:
        code_dir = Path(function["code_dir"])
        if relative_to is not None and code_dir.is_relative_to(relative_to):
            code_dir = code_dir.relative_to(relative_to)
        function["code_dir"] = str(code_dir)
        function["resource_access"] = [dict(item) for item in function["resource_access"]]
    return data


def group_from_json(data: Mapping[str, Any], base: Path | None = None) -> Group:
    """The group `group_to_json` wrote; relative code dirs are resolved against `base`."""

    def function(item: Mapping[str, Any]) -> Function:
        values = dict(item)
        code_dir = Path(values["code_dir"])
        values["code_dir"] = base / code_dir if base is not None and not code_dir.is_absolute() else code_dir
        values["resource_access"] = tuple(ResourceAccess(**access) for access in values["resource_access"])
        return Function(**values)

    def resource(item: Mapping[str, Any]) -> Resource:
        values = dict(item)
        # JSON has no tuples; a group.json from before secrets had no labels at all.
        values["additional_staging_labels"] = tuple(values.get("additional_staging_labels", ()))
        return Resource(**values)

    try:
        return Group(
            name=data["name"],
            region=data["region"],
            account_id=data["account_id"],
            cores=tuple(Core(**item) for item in data["cores"]),
            devices=tuple(Device(**item) for item in data["devices"]),
            functions=tuple(function(item) for item in data["functions"]),
            resources=tuple(resource(item) for item in data["resources"]),
            subscriptions=tuple(Subscription(**item) for item in data["subscriptions"]),
            loggers=tuple(Logger(**item) for item in data["loggers"]),
            connectors=tuple(Connector(**item) for item in data["connectors"]),
            # A group.json from before the stream manager has none.
            system_function_settings=tuple(SystemFunction(**item)
                                           for item in data.get("system_function_settings", ())),
            default_isolation_mode=data["default_isolation_mode"],
            system_functions=tuple(data.get("system_functions", ())),  # absent in a group.json before devices
        )
    except (KeyError, TypeError) as error:
        raise DeployError(f"group.json does not describe a group: {error}") from None


# -- status -----------------------------------------------------------------------------------------


def now_stamp() -> str:
    """Now in UTC, as the core's records and status write it (ISO 8601 with milliseconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"


def write_json_atomically(path: Path, data: Any) -> None:
    """Write `data` as JSON to `path` through a temporary file, so a reader sees the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def write_status(
    root: Path,
    deployment_id: str,
    status: str,
    *,
    error: str | None = None,
    warnings: tuple[str, ...] = (),
    deployment_type: str = "NewDeployment",
    number: int | None = None,
) -> dict:
    """Write `deployments/status.json` (the real core's GetDeploymentStatus fields, plus warnings)."""
    document = {
        "DeploymentId": deployment_id,
        "DeploymentNumber": number,
        "DeploymentStatus": status,
        "DeploymentType": deployment_type,
        "ErrorMessage": error,
        "ErrorDetails": [],
        "Warnings": list(warnings),
        "UpdatedAt": now_stamp(),
    }
    write_json_atomically(Path(root) / "deployments" / STATUS_FILE, document)
    return document


def read_status(root: Path) -> dict | None:
    """The last deployment status, or None when nothing was ever deployed under `root`."""
    path = Path(root) / "deployments" / STATUS_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def load_deployment(root: Path = Path(".simcore"), which: str = "current") -> Deployment:
    """The deployment `root/<which>` (`current` or `previous`) names."""
    root = Path(root).absolute()
    link = root / which
    if not link.is_symlink():
        raise DeployError(f"no {which} deployment under {root}; run `simcore deploy` first")
    return read_deployment(root, (root / os.readlink(link)).resolve())


def read_deployment(root: Path, directory: Path) -> Deployment:
    """The deployment in `directory` (under `root`), from its `deployment.json` and `group.json`."""
    try:
        record = json.loads((directory / "deployment.json").read_text(encoding="utf-8"))
        group_data = json.loads((directory / "group.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise DeployError(f"deployment {directory} is unreadable: {error}") from None
    return Deployment(
        id=record["DeploymentId"],
        number=record["DeploymentNumber"],
        root=root,
        directory=directory,
        group=group_from_json(group_data, base=directory),
        function_dirs={arn: directory / path for arn, path in record["FunctionDirs"].items()},
        resource_dirs={resource_id: directory / path for resource_id, path in record["ResourceDirs"].items()},
        parameters=record["Parameters"],
        warnings=tuple(record["Warnings"]),
        created_at=record["CreatedAt"],
    )
