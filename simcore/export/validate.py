"""Every exported request checked against botocore's own `greengrassv2` service model, the template with cfn-lint.

Requests: `botocore.validate.validate_parameters` (what a boto3 client runs before it sends anything: required
members, types, minimum lengths and values), then the same model's `enum`, `max` and `pattern` constraints,
which the service enforces and botocore's client leaves to it. No client is created and nothing is sent.
Template: cfn-lint's schemas and rules for the export's region, errors and warnings alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from simcore.errors import SimcoreError


class ExportValidationError(SimcoreError):
    """An exported request or template does not validate: a bug of the exporter, named with what failed."""

    code = "ExportValidationError"


def greengrassv2_model():
    """botocore's `greengrassv2` service model (bundled with botocore, read from disk)."""
    import botocore.session

    return botocore.session.get_session().get_service_model("greengrassv2")


def request_problems(operation: str, request: Mapping) -> list[str]:
    """What is wrong with `request` for `operation` (e.g. CreateDeployment) by the service model; [] when valid."""
    from botocore.exceptions import ParamValidationError
    from botocore.validate import validate_parameters

    shape = greengrassv2_model().operation_model(operation).input_shape
    problems = []
    try:
        validate_parameters(dict(request), shape)
    except ParamValidationError as error:
        problems.append(str(error))
    _constraints(request, shape, operation, problems)
    return problems


def _constraints(value, shape, path: str, problems: list[str]) -> None:
    """The model's `enum`, `max` and `pattern` (botocore checks only `min`)."""
    metadata = shape.metadata
    if shape.type_name == "structure" and isinstance(value, Mapping):
        for name, member in shape.members.items():
            if name in value:
                _constraints(value[name], member, f"{path}.{name}", problems)
    elif shape.type_name == "list" and isinstance(value, list):
        if "max" in metadata and len(value) > metadata["max"]:
            problems.append(f"{path}: at most {metadata['max']} items, got {len(value)}")
        for index, item in enumerate(value):
            _constraints(item, shape.member, f"{path}[{index}]", problems)
    elif shape.type_name == "map" and isinstance(value, Mapping):
        for key, item in value.items():
            _constraints(key, shape.key, f"{path} key {key!r}", problems)
            _constraints(item, shape.value, f"{path}.{key}", problems)
    elif shape.type_name == "string" and isinstance(value, str):
        if "enum" in metadata and value not in metadata["enum"]:
            problems.append(f"{path}: {value!r} is not one of {', '.join(metadata['enum'])}")
        if "max" in metadata and len(value) > metadata["max"]:
            problems.append(f"{path}: at most {metadata['max']} characters, got {len(value)}")
        if "pattern" in metadata and not re.search(metadata["pattern"], value):
            problems.append(f"{path}: {value!r} does not match {metadata['pattern']}")
    elif shape.type_name in ("integer", "long") and isinstance(value, int) and value > metadata.get("max", value):
        problems.append(f"{path}: at most {metadata['max']}, got {value}")


def template_problems(template_text: str, region: str) -> list[str]:
    """cfn-lint's findings (errors and warnings) on the template text, one line each; [] when clean."""
    from cfnlint.api import ManualArgs, lint

    matches = lint(template_text, config=ManualArgs(regions=[region]))
    return [f"{match.rule.id} {match.message} (line {match.linenumber})" for match in matches]


def check(requests: Mapping[str, tuple[str, Mapping]], template_text: str, region: str) -> None:
    """Raise `ExportValidationError` naming every problem of the requests (file → (operation, request)) and template."""
    problems = [f"{name}: {problem}" for name, (operation, request) in requests.items()
                for problem in request_problems(operation, request)]
    problems += [f"template: {problem}" for problem in template_problems(template_text, region)]
    if problems:
        raise ExportValidationError("the export does not validate: " + "; ".join(problems))
