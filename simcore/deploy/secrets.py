"""A group's Secrets Manager secret resources: fetched when a deployment is built, served to Lambdas at run time.

A v1 core downloads each `SecretsManagerSecretResourceData` secret at deployment (its `AWSCURRENT` version
and every label in `AdditionalStagingLabelsToDownload`) and keeps it on the core; Lambdas read it through
`GGSecretManager` (greengrasssdk's `client('secretsmanager').get_secret_value`), and only a function whose
`ResourceAccessPolicies` name the secret resource may. simcore does the same:

- `fetch_secrets` runs during `simcore.deploy.deployment`: it writes `<deployment>/secrets/<resource id>.json`,
  one file per secret (mode 0600, in a 0700 folder) holding every fetched version.
- `read_stored_secrets` runs when the core starts: `simcore.core.secrets` turns those records into the IPC
  server's `SecretStore`, with per-function access from the functions' `ResourceAccessPolicies`.

Where the values come from, first match wins:
1. the `secrets_file` argument, else the `SIMCORE_SECRETS_FILE` environment variable: a local JSON file
   `{"<secret ARN>": {"SecretString": "..."} | {"SecretBinary": "<base64>"}, ...}` for machines without AWS
   (an entry may add `"Name"`, and `"Stages": {"<label>": {"SecretString": ...}}` for additional labels);
2. AWS Secrets Manager through boto3 (`get_secret_value`) with the usual credential chain, in the region of
   the secret's ARN. Endpoint: the `endpoint_url` argument, else `AWS_ENDPOINT_URL_SECRETS_MANAGER` /
   `AWS_ENDPOINT_URL` (boto3 reads them itself), else AWS.
A secret that cannot be fetched fails the deployment with a `DeployError` naming the resource and AWS's code.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
import os
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from simcore.deploy import aws
from simcore.errors import DeployError
from simcore.group import Group, Resource

SECRETS_FILE_ENV = "SIMCORE_SECRETS_FILE"
SECRETS_DIR = "secrets"
CURRENT_STAGE = "AWSCURRENT"
# Secrets Manager's own limit on a secret value (SecretString or SecretBinary).
MAX_SECRET_BYTES = 65536
SECRET_ARN = re.compile(r"arn:aws[a-z-]*:secretsmanager:([a-z0-9-]+):(\d{12}):secret:([A-Za-z0-9/_+=.@-]+)")
# Secrets Manager appends "-" and six random characters to a secret's name to make its ARN.
_ARN_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}$")
# The managed policy AWSGreengrassResourceAccessRolePolicy lets the group role read only these secrets.
_GREENGRASS_NAME_PREFIX = "greengrass-"

_LOCAL_FILE_HINT = f"or give the values in a local JSON file named by {SECRETS_FILE_ENV} (docs/secrets.md)"
_FETCH_HINTS = {
    code: f"{hint}, {_LOCAL_FILE_HINT}"
    for code, hint in {
        "ResourceNotFoundException": "check the secret ARN and that the staging label exists on a version",
        "AccessDeniedException": "the credentials need secretsmanager:GetSecretValue on this secret "
        "(and kms:Decrypt when it is encrypted with a customer managed key)",
        "DecryptionFailure": "the credentials need kms:Decrypt on the secret's KMS key",
    }.items()
}


def secret_resources(group: Group) -> list[Resource]:
    """The group's Secrets Manager secret resources, in template order."""
    return [resource for resource in group.resources if resource.kind == "secret"]


def parse_secret_arn(resource: Resource) -> tuple[str, str]:
    """(region, secret name) of a secret resource's ARN; DeployError when it is not a Secrets Manager ARN."""
    match = SECRET_ARN.fullmatch(resource.source)
    if not match:
        raise DeployError(
            f"secret resource {resource.id}: {resource.source!r} is not a Secrets Manager secret ARN "
            "(arn:aws:secretsmanager:<region>:<account>:secret:<name>)"
        )
    region, _, name_with_suffix = match.groups()
    return region, _ARN_SUFFIX.sub("", name_with_suffix)


def secret_warnings(group: Group) -> list[str]:
    """Secrets the v1 group role could not have read without an extra policy (name not `greengrass-*`)."""
    warnings = []
    for resource in secret_resources(group):
        match = SECRET_ARN.fullmatch(resource.source)
        if match and not match.group(3).startswith(_GREENGRASS_NAME_PREFIX):
            warnings.append(
                f"secret resource {resource.id}: the secret's name does not start with 'greengrass-'; "
                "in AWS the group role would need an explicit secretsmanager:GetSecretValue policy for it"
            )
    return warnings


def _stages(resource: Resource) -> list[str]:
    return list(dict.fromkeys((CURRENT_STAGE, *resource.additional_staging_labels)))


# -- fetching -----------------------------------------------------------------------------------------------


def fetch_secrets(
    group: Group,
    dest_dir: Path,
    *,
    endpoint_url: str | None = None,
    secrets_file: str | Path | None = None,
) -> list[Path]:
    """Fetch every secret resource of `group` into `dest_dir` (created 0700); the files written (0600).

    Nothing is created, and AWS is not asked, when the group has no secret resources.
    """
    resources = secret_resources(group)
    if not resources:
        return []
    secrets_file = secrets_file or os.environ.get(SECRETS_FILE_ENV) or None
    local_values = _read_secrets_file(Path(secrets_file)) if secrets_file else None
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(dest_dir, 0o700)  # mkdir's mode is filtered by the umask, and the folder may have existed
    clients: dict[str, Any] = {}
    written = []
    for resource in resources:
        region, name = parse_secret_arn(resource)
        if local_values is not None:
            record = _record_from_file(resource, name, local_values, Path(secrets_file))
        else:
            if region not in clients:
                clients[region] = aws.client("secretsmanager", region, endpoint_url)
            record = _record_from_aws(resource, clients[region])
        path = dest_dir / f"{resource.id}.json"
        _write_private(path, record)
        written.append(path)
    return written


def _record_from_aws(resource: Resource, client: Any) -> dict[str, Any]:
    """The stored record of one secret: each requested stage's version, fetched once per version."""
    versions: dict[str, dict[str, Any]] = {}
    arn = name = None
    for stage in _stages(resource):
        with aws.aws_call(
            f"secret resource {resource.id}: cannot fetch {resource.source} ({stage})",
            permission="secretsmanager:GetSecretValue",
            hints=_FETCH_HINTS,
            fallback=_LOCAL_FILE_HINT,
        ):
            answer = client.get_secret_value(SecretId=resource.source, VersionStage=stage)
        arn, name = answer["ARN"], answer["Name"]
        binary = answer.get("SecretBinary")
        created = answer.get("CreatedDate")
        versions.setdefault(
            answer["VersionId"],
            {
                "VersionId": answer["VersionId"],
                "VersionStages": list(answer.get("VersionStages") or [stage]),
                "SecretString": answer.get("SecretString"),
                "SecretBinary": base64.b64encode(binary).decode() if binary is not None else None,
                "CreatedDate": int(created.timestamp() * 1000) if isinstance(created, datetime.datetime) else 0,
            },
        )
        # A label the answer did not list (it moved between two calls) is still served from this version.
        if stage not in versions[answer["VersionId"]]["VersionStages"]:
            versions[answer["VersionId"]]["VersionStages"].append(stage)
    return {
        "ResourceId": resource.id,
        "ARN": arn,
        "Name": name,
        "Source": "secretsmanager",
        "Versions": list(versions.values()),
    }


def _read_secrets_file(path: Path) -> Mapping[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise DeployError(f"cannot read the secrets file {path} ({SECRETS_FILE_ENV}): {error.strerror}") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise DeployError(f"the secrets file {path} is not JSON: {error}", location=str(path)) from None
    if not isinstance(document, dict):
        raise DeployError(
            f"the secrets file {path} must hold a JSON object mapping secret ARNs to values", location=str(path)
        )
    return document


def _record_from_file(resource: Resource, name: str, values: Mapping[str, Any], path: Path) -> dict[str, Any]:
    entry = values.get(resource.source)
    if entry is None:
        raise DeployError(
            f"secret resource {resource.id}: ResourceNotFoundException: the secrets file {path} has no entry "
            f"for {resource.source}",
            code="ResourceNotFoundException",
            location=str(path),
        )
    location = f"{path}: {resource.source}"
    if not isinstance(entry, dict):
        raise DeployError(f"secret resource {resource.id}: the entry must be an object", location=location)
    stage_entries = entry.get("Stages") or {}
    if not isinstance(stage_entries, dict):
        raise DeployError(f"secret resource {resource.id}: Stages must map labels to values", location=location)
    versions = []
    modified_ms = int(path.stat().st_mtime * 1000)
    for stage in _stages(resource):
        value = entry if stage == CURRENT_STAGE else stage_entries.get(stage)
        if value is None:
            raise DeployError(
                f"secret resource {resource.id}: ResourceNotFoundException: the secrets file {path} has no "
                f"value for staging label {stage} (add it under Stages)",
                code="ResourceNotFoundException",
                location=location,
            )
        secret_string, secret_binary = _local_value(resource, stage, value, location)
        digest = hashlib.sha256((secret_string or secret_binary or "").encode()).hexdigest()
        versions.append(
            {
                # Stable across redeploys of the same value, as a Secrets Manager version id is.
                "VersionId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{resource.source}#{stage}#{digest}")),
                "VersionStages": [stage],
                "SecretString": secret_string,
                "SecretBinary": secret_binary,
                "CreatedDate": modified_ms,
            }
        )
    return {
        "ResourceId": resource.id,
        "ARN": resource.source,
        "Name": entry.get("Name") or name,
        "Source": f"file:{path}",
        "Versions": versions,
    }


def _local_value(resource: Resource, stage: str, value: Any, location: str) -> tuple[str | None, str | None]:
    """(SecretString, SecretBinary as base64) of one value in the secrets file, checked as AWS would."""
    where = f"secret resource {resource.id} ({stage})"
    if not isinstance(value, dict) or ("SecretString" in value) == ("SecretBinary" in value):
        raise DeployError(f"{where}: give exactly one of SecretString or SecretBinary", location=location)
    if "SecretString" in value:
        secret_string = value["SecretString"]
        if not isinstance(secret_string, str):
            raise DeployError(f"{where}: SecretString must be a string", location=location)
        size = len(secret_string.encode("utf-8"))
    else:
        secret_binary = value["SecretBinary"]
        try:
            size = len(base64.b64decode(secret_binary, validate=True))
        except (binascii.Error, TypeError, ValueError):
            raise DeployError(f"{where}: SecretBinary must be base64", location=location) from None
    if size > MAX_SECRET_BYTES:
        raise DeployError(
            f"{where}: InvalidParameterException: the value is {size} bytes; Secrets Manager allows "
            f"{MAX_SECRET_BYTES}",
            code="InvalidParameterException",
            location=location,
        )
    if "SecretString" in value:
        return value["SecretString"], None
    return None, value["SecretBinary"]


def _write_private(path: Path, record: Mapping[str, Any]) -> None:
    """Write `record` as JSON readable by the owner only, replacing any earlier file whole."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(descriptor, 0o600)  # an earlier temporary file keeps its old mode through O_CREAT
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            json.dump(record, stream, indent=2, sort_keys=True)
            stream.write("\n")
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, path)


# -- serving ------------------------------------------------------------------------------------------------


def read_stored_secrets(group: Group, deployment_dir: Path) -> dict[str, dict[str, Any]]:
    """The stored record (`ARN`, `Name`, `Versions`) of each secret resource of a deployment, by resource id."""
    return {
        resource.id: _read_record(resource, Path(deployment_dir) / SECRETS_DIR / f"{resource.id}.json")
        for resource in secret_resources(group)
    }


def _read_record(resource: Resource, path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(record, dict) or not isinstance(record.get("Versions"), list):
            raise ValueError("not a stored secret")
        return record
    except FileNotFoundError:
        raise DeployError(
            f"secret resource {resource.id}: this deployment holds no stored value for it ({path}); "
            "deploy the group again"
        ) from None
    except (OSError, ValueError) as error:
        raise DeployError(f"secret resource {resource.id}: {path} is unreadable: {error}") from None
