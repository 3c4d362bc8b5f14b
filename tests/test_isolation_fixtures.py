"""Shared builders for the isolation tests (no tests here): the rain group's shape, with chosen paths."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from simcore.group import Function, Group, Resource, ResourceAccess

REGION = "us-east-1"
ACCOUNT = "123456789012"


def function(name: str, **overrides) -> Function:
    """A pinned python3.8 function named `name`; `overrides` replace any field."""
    base = Function(
        id=f"{name}-id",
        arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}:live",
        name=name,
        code_dir=Path("/nonexistent/code"),
        handler=f"{name}.handler.function_handler",
        runtime="python3.8",
        pinned=True,
    )
    return dataclasses.replace(base, **overrides)


def model_resource(destination: str = "/ml/rain", resource_id: str = "RainModel") -> Resource:
    """An S3 ML model resource extracted at `destination`."""
    return Resource(
        id=resource_id,
        name=f"{resource_id}Name",
        kind="ml_s3",
        source="s3://bucket/rain-model.tar.gz",
        destination_path=destination,
    )


def device_resource(path: str, resource_id: str = "SensorI2C") -> Resource:
    """A local device resource for `path`."""
    return Resource(id=resource_id, name=f"{resource_id}Name", kind="local_device", source=path)


def group_with(functions: tuple[Function, ...], resources: tuple[Resource, ...]) -> Group:
    """A group holding exactly these functions and resources."""
    return Group(name="rain", region=REGION, account_id=ACCOUNT, functions=functions, resources=resources)


def inference_group(destination: str, permission: str = "ro", **function_fields) -> tuple[Function, Group]:
    """The inference function reading its model at `destination` (MODEL_DIR), with `permission`."""
    fields = {
        "environment": {"MODEL_DIR": destination, "THING_NAME": "rain-core"},
        "resource_access": (ResourceAccess("RainModel", permission),),
        **function_fields,
    }
    inference = function("rain-inference", **fields)
    return inference, group_with((inference,), (model_resource(destination),))
