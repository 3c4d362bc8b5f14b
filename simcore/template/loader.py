"""The group's CloudFormation template, loaded and resolved into a `Group`.

The YAML (or JSON) is read with cfn-lint's decoder, which knows the short-form tags (`!Ref`, `!Sub`...).
Parameters come from the caller (or `load_parameters`), with the template's defaults and constraints.
SAM templates (`Transform: AWS::Serverless-2016-10-31`) are read as SAM would expand them: `Globals.Function`
merged into each `AWS::Serverless::Function`, and `!Ref X.Alias` naming the alias `AutoPublishAlias` makes.
Intrinsics are resolved by `simcore.template.intrinsics`, resource ids invented by
`simcore.template.physical_ids`, and the Greengrass resources turned into a `Group` by `simcore.template.builder`.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cfnlint.decode import decode_str

from simcore.defaults import (
    CFN_TEMPLATE_BODY_MAX_BYTES,
    CFN_TEMPLATE_MAX_BYTES,
    DEFAULT_ACCOUNT_ID,
    DEFAULT_REGION,
    DEFAULT_STACK_NAME,
)
from simcore.errors import TemplateError
from simcore.group import Group
from simcore.template.builder import build_group
from simcore.template.resolved import ResolvedTemplate, parameter_text


def load_parameters(path: str | Path) -> dict[str, str]:
    """Parameters from a JSON file: the AWS CLI's `[{ParameterKey, ParameterValue}]` list or a map."""
    path = Path(path)
    text = read_regular_text(
        path, "parameters file", limit="a parameters file is read only up to a template's size (1 MB)"
    )
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise TemplateError(f"parameters file is not JSON: {error}", location=str(path)) from None
    if isinstance(data, dict):
        return {str(key): parameter_text(value, f"{path}: {key}") for key, value in data.items()}
    if isinstance(data, list):
        parameters = {}
        for index, entry in enumerate(data):
            if not (isinstance(entry, dict) and "ParameterKey" in entry and "ParameterValue" in entry):
                raise TemplateError(
                    "each entry must be {ParameterKey, ParameterValue}", location=f"{path}[{index}]"
                )
            parameters[str(entry["ParameterKey"])] = parameter_text(
                entry["ParameterValue"], f"{path}[{index}]"
            )
        return parameters
    raise TemplateError(
        "a parameters file holds a list of {ParameterKey, ParameterValue} or a map", location=str(path)
    )


# Why a template may hold no more: AWS's own limit and its words.
TEMPLATE_LIMIT = (
    f"AWS CloudFormation refuses a template body over 1 MB (\"Template may not exceed {CFN_TEMPLATE_MAX_BYTES} "
    f"bytes in size.\"; {CFN_TEMPLATE_BODY_MAX_BYTES:,} bytes when passed directly); split it into nested stacks"
)


def read_regular_text(
    path: Path, what: str, max_bytes: int = CFN_TEMPLATE_MAX_BYTES, limit: str = TEMPLATE_LIMIT
) -> str:
    """The UTF-8 text of the regular file at `path`, refused (TemplateError) when it is over `max_bytes`.

    A FIFO, a device or a socket is refused before it is opened (reading `/dev/zero` never ends, opening a
    FIFO waits for a writer); the open itself does not wait (O_NONBLOCK) and the size is checked again on
    what is read, so a file that is swapped or grows meanwhile cannot get past the limit either.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise TemplateError(f"cannot read {what}: not a regular file (a FIFO, device or socket?)",
                                location=str(path))
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(descriptor, "rb") as stream:
            if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                raise TemplateError(f"cannot read {what}: not a regular file", location=str(path))
            data = stream.read(max_bytes + 1)
    except OSError as error:
        raise TemplateError(f"cannot read {what}: {error.strerror}", location=str(path)) from None
    if len(data) > max_bytes:
        raise TemplateError(f"{what} is over {max_bytes:,} bytes: {limit}", location=str(path))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise TemplateError(f"{what} is not UTF-8 text: {error.reason} at byte {error.start}",
                            location=str(path)) from None


def read_template(path: str | Path) -> dict:
    """The template at `path` as plain data, short-form tags expanded (`!Ref X` → `{"Ref": "X"}`)."""
    path = Path(path)
    text = read_regular_text(path, "template")
    template, matches = decode_str(text)
    if matches:
        first = matches[0]
        raise TemplateError(
            f"template is not valid YAML/JSON: {first.message}", location=f"{path}:{first.linenumber}"
        )
    if not isinstance(template, Mapping):
        raise TemplateError("a template is a mapping with a Resources section", location=str(path))
    if not isinstance(template.get("Resources"), Mapping) or not template["Resources"]:
        raise TemplateError("the template has no Resources", location="Resources")
    return template


def load_group(
    path: str | Path,
    parameters: Mapping[str, str] | None = None,
    *,
    region: str = DEFAULT_REGION,
    account_id: str = DEFAULT_ACCOUNT_ID,
    stack_name: str = DEFAULT_STACK_NAME,
) -> Group:
    """The `Group` the template at `path` defines, with `parameters` applied.

    Raises `TemplateError` naming the offending item and its path in the template.
    """
    return resolve_template(
        path, parameters, region=region, account_id=account_id, stack_name=stack_name
    ).group


class LoadedGroup:
    """A group together with the resolved template it came from (deploy needs both)."""

    def __init__(self, group: Group, resolved: ResolvedTemplate):
        self.group = group
        self.resolved = resolved

    @property
    def parameters(self) -> dict[str, Any]:
        """The effective parameter values (given ones plus defaults)."""
        return dict(self.resolved.parameter_values)


def resolve_template(
    path: str | Path,
    parameters: Mapping[str, str] | None = None,
    *,
    region: str = DEFAULT_REGION,
    account_id: str = DEFAULT_ACCOUNT_ID,
    stack_name: str = DEFAULT_STACK_NAME,
) -> LoadedGroup:
    """Like `load_group`, keeping the resolved template and effective parameters."""
    if not re.fullmatch(r"[a-zA-Z][-a-zA-Z0-9]{0,127}", stack_name):
        raise TemplateError(
            f"stack name {stack_name!r} must start with a letter and hold only letters, digits and hyphens "
            "(at most 128)"
        )
    if not re.fullmatch(r"\d{12}", account_id):
        raise TemplateError(f"account id {account_id!r} must be 12 digits")
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", region):
        raise TemplateError(f"region {region!r} is not a region name like us-east-1")
    template_path = Path(path).resolve()
    template = read_template(template_path)
    resolved = ResolvedTemplate(
        template, template_path, parameters, region=region, account_id=account_id, stack_name=stack_name
    )
    return LoadedGroup(build_group(resolved), resolved)
