"""GGSecretManager's data: the group's secret values and which function may read which."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from simcore.group import Group


@dataclass(frozen=True)
class SecretValue:
    """One secret version the core can serve (what a group's secret resource resolves to)."""

    arn: str
    name: str
    secret_string: str | None = None
    secret_binary: bytes | None = None
    version_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    version_stages: tuple[str, ...] = ("AWSCURRENT",)
    created_ms: int = field(default_factory=lambda: int(time.time() * 1000))

    def to_response(self) -> dict[str, Any]:
        """The GetSecretValue answer the SDK expects (CreatedDate in epoch milliseconds)."""
        binary = base64.b64encode(self.secret_binary).decode() if self.secret_binary is not None else None
        return {
            "ARN": self.arn,
            "Name": self.name,
            "VersionId": self.version_id,
            "SecretBinary": binary,
            "SecretString": self.secret_string,
            "VersionStages": list(self.version_stages),
            "CreatedDate": self.created_ms,
        }


class SecretStore:
    """The secrets of a group's secret resources, found by ARN or name, with per-function access."""

    def __init__(self, values: Iterable[SecretValue] = (), access: Mapping[str, set[str]] | None = None):
        """`access` maps a function ARN to the secret ARNs it may read; None lets every function read all."""
        self._values = list(values)
        self._access = access

    def get(self, caller_arn: str, secret_id: str, version_stage: str | None) -> dict[str, Any]:
        """The response body for GetSecretValue, or an error body with `Status` and `Message`."""
        stage = version_stage or "AWSCURRENT"
        named = [v for v in self._values if secret_id in (v.arn, v.name)]
        if not named:
            return {"Status": 404, "Message": "Secrets Manager can't find the specified secret."}
        if self._access is not None and named[0].arn not in self._access.get(caller_arn, set()):
            return {
                "Status": 403,
                "Message": f"Function {caller_arn} has no access to secret {secret_id}: "
                "add the secret resource to its ResourceAccessPolicies",
            }
        for value in named:
            if stage in value.version_stages:
                return value.to_response()
        return {
            "Status": 404,
            "Message": f"Secrets Manager can't find the specified secret value for staging label: {stage}",
        }


def secret_store_from_records(group: Group, records: Mapping[str, Mapping[str, Any]]) -> SecretStore:
    """The `SecretStore` of stored records (by resource id): each readable by the functions whose policies name it."""
    values: list[SecretValue] = []
    arn_by_resource: dict[str, str] = {}
    for resource_id, record in records.items():
        arn_by_resource[resource_id] = record["ARN"]
        for version in record["Versions"]:
            binary = version.get("SecretBinary")
            values.append(
                SecretValue(
                    arn=record["ARN"],
                    name=record["Name"],
                    secret_string=version.get("SecretString"),
                    secret_binary=base64.b64decode(binary) if binary is not None else None,
                    version_id=version["VersionId"],
                    version_stages=tuple(version["VersionStages"]),
                    created_ms=int(version.get("CreatedDate") or 0),
                )
            )
    access = {
        function.arn: {
            arn_by_resource[policy.resource_id]
            for policy in function.resource_access
            if policy.resource_id in arn_by_resource
        }
        for function in group.functions
    }
    return SecretStore(values, access)
