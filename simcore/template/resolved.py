"""A CloudFormation template bound to parameters, region, account and stack name: values resolved on demand.

SAM templates (`Transform: AWS::Serverless-2016-10-31`) are read as SAM would expand them: `Globals.Function`
merged into each `AWS::Serverless::Function`. Parameters get the template's defaults and constraints checked.
`simcore.template.loader` builds one from a file; `simcore.template.builder` reads the Greengrass resources from it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from simcore.errors import TemplateError
from simcore.template.intrinsics import (
    NO_VALUE,
    PSEUDO_PARAMETERS,
    Resolver,
    find_unsupported_functions,
    intrinsic_name,
    referenced_names,
)
from simcore.template.patterns import compile_allowed_pattern
from simcore.template.physical_ids import PhysicalIds

SAM_TRANSFORM = "AWS::Serverless-2016-10-31"
UNSUPPORTED_PARAMETER_TYPE = re.compile(r"^AWS::SSM::Parameter::")


def parameter_text(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, list) and all(isinstance(item, (str, int, float)) for item in value):
        return ",".join(str(item) for item in value)
    raise TemplateError(f"a parameter value must be a string, number or list, got {value!r}", location=where)


class ResolvedTemplate:
    """A template bound to parameters, region, account and stack name, resolving values on demand."""

    def __init__(
        self,
        template: Mapping[str, Any],
        template_path: Path,
        parameters: Mapping[str, str] | None,
        *,
        region: str,
        account_id: str,
        stack_name: str,
    ):
        self.template = template
        self.template_path = template_path
        self.template_dir = template_path.parent
        self.region = region
        self.account_id = account_id
        self.stack_name = stack_name
        self.is_sam = _is_sam(template)
        self.resources: dict[str, dict] = _resources_with_globals(template, self.is_sam)
        self.parameter_values = _effective_parameters(template.get("Parameters") or {}, parameters or {})
        partition = _partition(region)
        pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::StackName": stack_name,
            "AWS::StackId": f"arn:{partition}:cloudformation:{region}:{account_id}:stack/{stack_name}/"
            + _stack_uuid(account_id, region, stack_name),
            "AWS::Partition": partition,
            "AWS::URLSuffix": "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com",
            "AWS::NotificationARNs": [],
        }
        self.ids = PhysicalIds(
            self.resources,
            region=region,
            account_id=account_id,
            stack_name=stack_name,
            partition=partition,
            exists=self.resource_exists,
            read_property=self.property_value,
        )
        self.resolver = Resolver(
            parameters=self.parameter_values,
            pseudo=pseudo,
            mappings=template.get("Mappings") or {},
            conditions=template.get("Conditions") or {},
            resources=self.ids,
        )
        self._property_cache: dict[tuple[str, str], Any] = {}
        _check_dependencies(self.resources, self.parameter_values)

    def resource_exists(self, logical_id: str) -> bool:
        """True when the resource's `Condition` (if any) holds."""
        condition = self.resources[logical_id].get("Condition")
        if condition is None:
            return True
        if not isinstance(condition, str):
            raise TemplateError(
                "a resource Condition is a condition name", location=f"Resources.{logical_id}.Condition"
            )
        return self.resolver.condition(condition, f"Resources.{logical_id}.Condition")

    def property_path(self, logical_id: str, name: str) -> str:
        """Where a property sits in the template."""
        return f"Resources.{logical_id}.Properties.{name}"

    def property_value(self, logical_id: str, name: str) -> Any:
        """The resolved value of a resource property, or None when the template does not set it."""
        key = (logical_id, name)
        if key not in self._property_cache:
            properties = self.resources[logical_id].get("Properties") or {}
            if name not in properties:
                self._property_cache[key] = None
            else:
                value = self.resolver.resolve(properties[name], self.property_path(logical_id, name))
                self._property_cache[key] = None if value is NO_VALUE else value
        return self._property_cache[key]

    def existing(self, resource_type: str) -> list[str]:
        """Logical ids of the resources of `resource_type` that exist, in template order."""
        return [
            logical_id
            for logical_id, body in self.resources.items()
            if body.get("Type") == resource_type and self.resource_exists(logical_id)
        ]


# -- template sections ------------------------------------------------------------------------------


def _is_sam(template: Mapping[str, Any]) -> bool:
    transform = template.get("Transform")
    transforms = transform if isinstance(transform, list) else [transform] if transform else []
    for name in transforms:
        if name != SAM_TRANSFORM:
            raise TemplateError(
                f"unsupported transform {name!r}: simcore expands only {SAM_TRANSFORM}", location="Transform"
            )
    for section in ("Resources", "Conditions", "Outputs", "Globals"):
        find_unsupported_functions(template.get(section) or {}, section)
    return bool(transforms)


def _resources_with_globals(template: Mapping[str, Any], is_sam: bool) -> dict[str, dict]:
    resources = {}
    globals_section = template.get("Globals") or {}
    if globals_section and not is_sam:
        raise TemplateError("Globals is a SAM section: add Transform: " + SAM_TRANSFORM, location="Globals")
    function_globals = globals_section.get("Function") or {}
    for logical_id, body in template["Resources"].items():
        where = f"Resources.{logical_id}"
        if not isinstance(body, Mapping) or not isinstance(body.get("Type"), str):
            raise TemplateError("a resource is a mapping with a Type", location=where)
        if body["Type"].startswith("AWS::Serverless::") and not is_sam:
            raise TemplateError(f"{body['Type']} needs Transform: {SAM_TRANSFORM}", location=f"{where}.Type")
        body = dict(body)
        if body["Type"] == "AWS::Serverless::Function" and function_globals:
            body["Properties"] = _merge_sam_globals(function_globals, body.get("Properties") or {})
        resources[str(logical_id)] = body
    return resources


def _merge_sam_globals(globals_value: Any, resource_value: Any) -> Any:
    """SAM's rule: mappings merge by key, lists concatenate (globals first), else the resource wins."""
    if (
        isinstance(globals_value, Mapping)
        and isinstance(resource_value, Mapping)
        and intrinsic_name(globals_value) is None
        and intrinsic_name(resource_value) is None
    ):
        merged = dict(globals_value)
        for key, value in resource_value.items():
            merged[key] = _merge_sam_globals(globals_value[key], value) if key in globals_value else value
        return merged
    if isinstance(globals_value, list) and isinstance(resource_value, list):
        return [*globals_value, *resource_value]
    return resource_value


def _partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def _stack_uuid(account_id: str, region: str, stack_name: str) -> str:
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"simcore:{account_id}:{region}:{stack_name}:stack"))


def _effective_parameters(declared: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, Any]:
    """Given values over defaults, checked against each parameter's type and constraints.

    Error texts follow CloudFormation's (`Parameters: [X] must have values`).
    """
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise TemplateError(
            f"Parameters: [{', '.join(unknown)}] do not exist in the template", location="Parameters"
        )
    missing = [name for name in declared if name not in given and "Default" not in (declared[name] or {})]
    if missing:
        raise TemplateError(f"Parameters: [{', '.join(missing)}] must have values", location="Parameters")
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        spec = spec or {}
        where = f"Parameters.{name}"
        parameter_type = str(spec.get("Type", ""))
        if not parameter_type:
            raise TemplateError(f"parameter {name} has no Type", location=where)
        if UNSUPPORTED_PARAMETER_TYPE.match(parameter_type):
            raise TemplateError(
                f"parameter {name}: type {parameter_type} reads SSM Parameter Store, which simcore does not; "
                "use Type: String",
                location=f"{where}.Type",
            )
        raw = given[name] if name in given else parameter_text(spec["Default"], f"{where}.Default")
        is_list = parameter_type == "CommaDelimitedList" or parameter_type.startswith("List<")
        items = [item.strip() if parameter_type != "CommaDelimitedList" else item for item in raw.split(",")]
        for item in items if is_list else [raw]:
            _check_parameter_value(name, spec, parameter_type, item, where)
        values[name] = items if is_list else raw
    return values


def _check_parameter_value(
    name: str, spec: Mapping[str, Any], parameter_type: str, value: str, where: str
) -> None:
    constraint = spec.get("ConstraintDescription")
    suffix = f": {constraint}" if constraint else ""
    if parameter_type in ("Number", "List<Number>"):
        try:
            number = float(value)
        except ValueError:
            raise TemplateError(
                f"Parameter '{name}' must be a number, got {value!r}{suffix}", location=where
            ) from None
        if "MinValue" in spec and number < float(spec["MinValue"]):
            raise TemplateError(
                f"Parameter '{name}' must be a number not less than {spec['MinValue']}{suffix}",
                location=where,
            )
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            raise TemplateError(
                f"Parameter '{name}' must be a number not greater than {spec['MaxValue']}{suffix}",
                location=where,
            )
    if "AllowedValues" in spec:
        allowed = [parameter_text(item, where) for item in spec["AllowedValues"] or []]
        if value not in allowed:
            raise TemplateError(
                f"Parameter '{name}' must be one of AllowedValues {allowed}, got {value!r}{suffix}",
                location=where,
            )
    if "AllowedPattern" in spec:
        pattern = str(spec["AllowedPattern"])
        if not compile_allowed_pattern(pattern, name, f"{where}.AllowedPattern").matches(value):
            raise TemplateError(
                f"Parameter '{name}' must match pattern {pattern}, got {value!r}{suffix}", location=where
            )
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        raise TemplateError(
            f"Parameter '{name}' must contain at least {spec['MinLength']} characters{suffix}", location=where
        )
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        raise TemplateError(
            f"Parameter '{name}' must contain at most {spec['MaxLength']} characters{suffix}", location=where
        )


def _check_dependencies(resources: Mapping[str, Mapping[str, Any]], parameters: Mapping[str, Any]) -> None:
    """Refuse dangling references and cycles between resources, as CloudFormation does before creating any."""
    graph: dict[str, list[str]] = {}
    for logical_id, body in resources.items():
        where = f"Resources.{logical_id}"
        depends: list[str] = []
        depends_on = body.get("DependsOn") or []
        for index, name in enumerate([depends_on] if isinstance(depends_on, str) else depends_on):
            if name not in resources:
                raise TemplateError(
                    f"Unresolved resource dependencies [{name}] in DependsOn",
                    location=f"{where}.DependsOn[{index}]",
                )
            depends.append(name)
        for name, path in referenced_names(body.get("Properties") or {}, f"{where}.Properties"):
            if name in parameters or name in PSEUDO_PARAMETERS:
                continue
            target = name if name in resources else name.split(".", 1)[0]
            if target not in resources:
                raise TemplateError(
                    f"Unresolved resource dependencies [{name}]: no parameter or resource has that name",
                    location=path,
                )
            depends.append(target)
        graph[logical_id] = depends
    _raise_on_cycle(graph)


def _raise_on_cycle(graph: Mapping[str, list[str]]) -> None:
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in graph.get(node, []):
            if state.get(target) == 1:
                cycle = stack[stack.index(target) :] + [target]
                raise TemplateError(
                    f"Circular dependency between resources: {' -> '.join(cycle)}",
                    location=f"Resources.{node}",
                )
            if state.get(target) is None:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node)
