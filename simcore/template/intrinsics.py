"""CloudFormation intrinsic functions and conditions, resolved against parameters and invented resource ids.

What a resource's `Ref` or `Fn::GetAtt` yields is not decided here: the resolver asks a `ResourceIds`
object (see `simcore.template.physical_ids`). Everything else follows CloudFormation's documented behaviour:
`Ref`, `Fn::GetAtt`, `Fn::Sub` (both forms, `${!Literal}` escapes), `Fn::Join`, `Fn::Select`, `Fn::Split`,
`Fn::If`, `Fn::Equals`/`Fn::Not`/`Fn::And`/`Fn::Or`/`Condition` (in `Conditions`), `Fn::FindInMap`,
`Fn::Base64`, `Fn::GetAZs` (three zones `<region>a..c`, deterministic) and `AWS::NoValue`.
Anything else (`Fn::ImportValue`, `Fn::Transform`, `Fn::Cidr`, language extensions) is refused with its
path in the template: simcore cannot know another stack's exports or run a macro.

Paths name a place in the template the way a person reads it: `Resources.RainGroup.Properties.X[0].Y`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any, Protocol

from simcore.errors import TemplateError

SUPPORTED_FUNCTIONS = frozenset(
    {
        "Ref",
        "Fn::GetAtt",
        "Fn::Sub",
        "Fn::Join",
        "Fn::Select",
        "Fn::Split",
        "Fn::If",
        "Fn::FindInMap",
        "Fn::Base64",
        "Fn::GetAZs",
    }
)
CONDITION_FUNCTIONS = frozenset({"Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition"})
PSEUDO_PARAMETERS = frozenset(
    {
        "AWS::Region",
        "AWS::AccountId",
        "AWS::StackName",
        "AWS::StackId",
        "AWS::Partition",
        "AWS::URLSuffix",
        "AWS::NotificationARNs",
        "AWS::NoValue",
    }
)
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class _NoValue:
    """`AWS::NoValue`: removes the property (or list item) that holds it."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


class ResourceIds(Protocol):
    """What the resolver needs to know about resources: their names and what `Ref`/`GetAtt` yield."""

    def exists(self, logical_id: str) -> bool:
        """True when the template declares `logical_id` and its `Condition` (if any) holds."""

    def declared(self, logical_id: str) -> bool:
        """True when the template declares `logical_id` at all."""

    def ref(self, logical_id: str, path: str) -> Any:
        """The value of `Ref logical_id` (SAM's `X.Alias`/`X.Version` included)."""

    def get_att(self, logical_id: str, attribute: str, path: str) -> Any:
        """The value of `Fn::GetAtt [logical_id, attribute]`."""


def intrinsic_name(value: Any) -> str | None:
    """The function name when `value` is an intrinsic call (a one-key mapping `Ref`/`Fn::*`), else None."""
    if isinstance(value, Mapping) and len(value) == 1:
        (key,) = value.keys()
        if key == "Ref" or (isinstance(key, str) and key.startswith("Fn::")):
            return key
    return None


def child_path(path: str, key: str | int) -> str:
    """`path` extended by a mapping key or a list index."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def split_get_att(args: Any, path: str) -> tuple[str, str]:
    """`Fn::GetAtt` arguments as (logical id, attribute); both the list and the `A.B` string form."""
    if isinstance(args, str) and "." in args:
        logical_id, attribute = args.split(".", 1)
        return logical_id, attribute
    if isinstance(args, list) and len(args) == 2 and all(isinstance(part, str) for part in args):
        return args[0], args[1]
    raise TemplateError(
        f"Fn::GetAtt takes [LogicalId, Attribute] or 'LogicalId.Attribute', got {args!r}", location=path
    )


def sub_variables(template_string: str) -> list[str]:
    """The `${...}` variable names in an `Fn::Sub` string, without `${!Literal}` escapes."""
    return [name.strip() for name in _SUB_VARIABLE.findall(template_string) if not name.startswith("!")]


class Resolver:
    """Resolves intrinsic functions in template values.

    `parameters` maps parameter names to their effective value (a string, or a list of strings for list
    types). `pseudo` holds the pseudo parameters. Conditions are evaluated on first use and cached;
    a condition that depends on itself is reported as a cycle.
    """

    def __init__(
        self,
        *,
        parameters: Mapping[str, Any],
        pseudo: Mapping[str, Any],
        mappings: Mapping[str, Any],
        conditions: Mapping[str, Any],
        resources: ResourceIds,
    ):
        self.parameters = parameters
        self.pseudo = pseudo
        self.mappings = mappings
        self.conditions = conditions
        self.resources = resources
        self._condition_values: dict[str, bool] = {}
        self._conditions_in_progress: list[str] = []

    # -- values -------------------------------------------------------------------------------------

    def resolve(self, value: Any, path: str) -> Any:
        """`value` with every intrinsic function replaced by its result; `NO_VALUE` entries removed."""
        name = intrinsic_name(value)
        if name is not None:
            return self._call(name, value[name], child_path(path, name))
        if isinstance(value, Mapping):
            resolved_mapping = {}
            for key, item in value.items():
                resolved = self.resolve(item, child_path(path, key))
                if resolved is not NO_VALUE:
                    resolved_mapping[str(key)] = resolved
            return resolved_mapping
        if isinstance(value, list):
            resolved_list = [self.resolve(item, child_path(path, index)) for index, item in enumerate(value)]
            return [item for item in resolved_list if item is not NO_VALUE]
        return value

    def resolve_string(self, value: Any, path: str) -> str:
        """`resolve(value)` as a string (numbers and booleans written as CloudFormation writes them)."""
        resolved = self.resolve(value, path)
        return self._as_string(resolved, path)

    @staticmethod
    def _as_string(value: Any, path: str) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (str, int, float)):
            return str(value)
        raise TemplateError(f"expected a string here, got {type(value).__name__} {value!r}", location=path)

    def _call(self, name: str, args: Any, path: str) -> Any:
        handler = {
            "Ref": self._ref,
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::Join": self._join,
            "Fn::Select": self._select,
            "Fn::Split": self._split,
            "Fn::If": self._if,
            "Fn::FindInMap": self._find_in_map,
            "Fn::Base64": self._base64,
            "Fn::GetAZs": self._get_azs,
        }.get(name)
        if handler is None:
            raise unsupported_function(name, path)
        return handler(args, path)

    def _ref(self, args: Any, path: str) -> Any:
        if not isinstance(args, str):
            args = self.resolve(args, path)
            if not isinstance(args, str):
                raise TemplateError(f"Ref takes a name, got {args!r}", location=path)
        if args == "AWS::NoValue":
            return NO_VALUE
        if args in self.pseudo:
            return self.pseudo[args]
        if args in PSEUDO_PARAMETERS:
            raise TemplateError(f"pseudo parameter {args} is not available here", location=path)
        if args in self.parameters:
            return self.parameters[args]
        base = args.split(".", 1)[0]
        if self.resources.declared(args) or self.resources.declared(base):
            return self.resources.ref(args, path)
        raise TemplateError(
            f"Unresolved resource dependencies [{args}]: Ref names no parameter, pseudo parameter or resource",
            location=path,
        )

    def _is_sam_reference(self, name: str) -> bool:
        base, _, suffix = name.partition(".")
        is_sam = getattr(self.resources, "is_sam_function", None)
        return suffix in ("Alias", "Version") and is_sam is not None and is_sam(base)

    def _get_att(self, args: Any, path: str) -> Any:
        logical_id, attribute = split_get_att(args, path)
        if not isinstance(attribute, str):
            attribute = self.resolve_string(attribute, path)
        if not self.resources.declared(logical_id):
            raise TemplateError(
                f"Unresolved resource dependencies [{logical_id}]: Fn::GetAtt names no resource",
                location=path,
            )
        return self.resources.get_att(logical_id, attribute, path)

    def _sub(self, args: Any, path: str) -> str:
        if isinstance(args, str):
            template_string, local_values = args, {}
        elif isinstance(args, list) and len(args) == 2 and isinstance(args[1], Mapping):
            template_string = args[0]
            local_values = {
                str(key): self.resolve(item, child_path(child_path(path, 1), key)) for key, item in args[1].items()
            }
        else:
            raise TemplateError("Fn::Sub takes a string or [string, {Var: value}]", location=path)
        if not isinstance(template_string, str):
            raise TemplateError("Fn::Sub's first argument must be a literal string", location=path)

        def replace(match: re.Match[str]) -> str:
            variable = match.group(1)
            if variable.startswith("!"):
                return "${" + variable[1:] + "}"
            variable = variable.strip()
            if variable in local_values:
                value = local_values[variable]
            elif variable in self.pseudo or variable in self.parameters or self.resources.declared(variable):
                value = self._ref(variable, path)
            elif self._is_sam_reference(variable):
                value = self._ref(variable, path)  # SAM resolves ${Fn.Alias} like !Ref Fn.Alias
            elif "." in variable:
                value = self._get_att(variable, path)
            else:
                value = self._ref(variable, path)
            if isinstance(value, list):
                raise TemplateError(f"Fn::Sub variable ${{{variable}}} is a list, not a string", location=path)
            return self._as_string(value, path)

        return _SUB_VARIABLE.sub(replace, template_string)

    def _join(self, args: Any, path: str) -> str:
        if not (isinstance(args, list) and len(args) == 2):
            raise TemplateError("Fn::Join takes [delimiter, [values]]", location=path)
        delimiter = self.resolve_string(args[0], child_path(path, 0))
        values = self.resolve(args[1], child_path(path, 1))
        if not isinstance(values, list):
            raise TemplateError(f"Fn::Join's second argument must be a list, got {values!r}", location=path)
        return delimiter.join(self._as_string(item, child_path(path, 1)) for item in values)

    def _select(self, args: Any, path: str) -> Any:
        if not (isinstance(args, list) and len(args) == 2):
            raise TemplateError("Fn::Select takes [index, [values]]", location=path)
        index_text = self.resolve_string(args[0], child_path(path, 0))
        values = self.resolve(args[1], child_path(path, 1))
        if not isinstance(values, list):
            raise TemplateError(f"Fn::Select's second argument must be a list, got {values!r}", location=path)
        try:
            index = int(index_text)
        except ValueError:
            raise TemplateError(f"Fn::Select index {index_text!r} is not an integer", location=path) from None
        if not 0 <= index < len(values):
            raise TemplateError(f"Fn::Select index {index} is out of range for a list of {len(values)}", location=path)
        return values[index]

    def _split(self, args: Any, path: str) -> list[str]:
        if not (isinstance(args, list) and len(args) == 2):
            raise TemplateError("Fn::Split takes [delimiter, string]", location=path)
        delimiter = self.resolve_string(args[0], child_path(path, 0))
        if not delimiter:
            raise TemplateError("Fn::Split's delimiter must not be empty", location=path)
        return self.resolve_string(args[1], child_path(path, 1)).split(delimiter)

    def _if(self, args: Any, path: str) -> Any:
        if not (isinstance(args, list) and len(args) == 3 and isinstance(args[0], str)):
            raise TemplateError("Fn::If takes [ConditionName, value_if_true, value_if_false]", location=path)
        chosen = 1 if self.condition(args[0], child_path(path, 0)) else 2
        return self.resolve(args[chosen], child_path(path, chosen))

    def _find_in_map(self, args: Any, path: str) -> Any:
        if not (isinstance(args, list) and len(args) == 3):
            raise TemplateError("Fn::FindInMap takes [MapName, TopLevelKey, SecondLevelKey]", location=path)
        map_name, top_key, second_key = (
            self.resolve_string(item, child_path(path, index)) for index, item in enumerate(args)
        )
        mapping = self.mappings.get(map_name)
        if not isinstance(mapping, Mapping):
            raise TemplateError(f"Fn::FindInMap: no mapping named {map_name!r} in Mappings", location=path)
        top = mapping.get(top_key)
        if not isinstance(top, Mapping):
            raise TemplateError(f"Fn::FindInMap: mapping {map_name} has no key {top_key!r}", location=path)
        if second_key not in top:
            raise TemplateError(f"Fn::FindInMap: mapping {map_name}.{top_key} has no key {second_key!r}", location=path)
        return top[second_key]

    def _base64(self, args: Any, path: str) -> str:
        return base64.b64encode(self.resolve_string(args, path).encode("utf-8")).decode("ascii")

    def _get_azs(self, args: Any, path: str) -> list[str]:
        region = self.resolve_string(args, path) or self.pseudo["AWS::Region"]
        return [f"{region}{zone}" for zone in "abc"]

    # -- conditions ---------------------------------------------------------------------------------

    def condition(self, name: str, path: str) -> bool:
        """The value of the condition `name` from the `Conditions` section."""
        if name in self._condition_values:
            return self._condition_values[name]
        if name not in self.conditions:
            raise TemplateError(f"condition {name!r} is not declared in Conditions", location=path)
        if name in self._conditions_in_progress:
            cycle = " -> ".join([*self._conditions_in_progress, name])
            raise TemplateError(f"circular dependency between conditions: {cycle}", location=path)
        self._conditions_in_progress.append(name)
        try:
            value = self._evaluate_condition(self.conditions[name], f"Conditions.{name}")
        finally:
            self._conditions_in_progress.pop()
        self._condition_values[name] = value
        return value

    def _evaluate_condition(self, expression: Any, path: str) -> bool:
        name = None
        if isinstance(expression, Mapping) and len(expression) == 1:
            (name,) = expression.keys()
        if name not in CONDITION_FUNCTIONS:
            raise TemplateError(
                f"a condition must be Fn::Equals, Fn::Not, Fn::And, Fn::Or or Condition, got {expression!r}",
                location=path,
            )
        args = expression[name]
        inner = child_path(path, name)
        if name == "Condition":
            if not isinstance(args, str):
                raise TemplateError("Condition takes a condition name", location=inner)
            return self.condition(args, inner)
        if name == "Fn::Equals":
            if not (isinstance(args, list) and len(args) == 2):
                raise TemplateError("Fn::Equals takes [value, value]", location=inner)
            left, right = (self.resolve(item, child_path(inner, index)) for index, item in enumerate(args))
            return _comparable(left) == _comparable(right)
        if not isinstance(args, list):
            raise TemplateError(f"{name} takes a list of conditions", location=inner)
        values = [self._evaluate_condition(item, child_path(inner, index)) for index, item in enumerate(args)]
        if name == "Fn::Not":
            if len(values) != 1:
                raise TemplateError("Fn::Not takes exactly one condition", location=inner)
            return not values[0]
        if not 2 <= len(values) <= 10:
            raise TemplateError(f"{name} takes between 2 and 10 conditions", location=inner)
        return all(values) if name == "Fn::And" else any(values)


def _comparable(value: Any) -> Any:
    """CloudFormation compares condition operands as strings (`Fn::Equals [1, "1"]` holds)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return [_comparable(item) for item in value]
    return value


def unsupported_function(name: str, path: str) -> TemplateError:
    """The error for an intrinsic function simcore does not resolve, naming it and where it is."""
    why = {
        "Fn::ImportValue": "another stack's exports do not exist locally",
        "Fn::Transform": "macros run only in AWS",
        "Fn::Cidr": "simcore does not allocate networks",
        "Fn::GetStackOutput": "other stacks do not exist locally",
    }.get(name, "simcore does not resolve it")
    return TemplateError(f"unsupported intrinsic function {name} ({why})", location=path)


def find_unsupported_functions(value: Any, path: str) -> None:
    """Raise for the first intrinsic call in `value` that the resolver cannot evaluate."""
    name = intrinsic_name(value)
    if name is not None and name not in SUPPORTED_FUNCTIONS and name not in CONDITION_FUNCTIONS:
        raise unsupported_function(name, child_path(path, name))
    if isinstance(value, Mapping):
        for key, item in value.items():
            find_unsupported_functions(item, child_path(path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            find_unsupported_functions(item, child_path(path, index))


def referenced_names(value: Any, path: str) -> list[tuple[str, str]]:
    """Every (name, path) that `value` refers to through Ref, Fn::GetAtt or Fn::Sub (for dependency checks).

    A `Fn::GetAtt` or `${A.B}` yields `A`; SAM's `Ref X.Alias` yields `X.Alias` (the caller decides).
    """
    found: list[tuple[str, str]] = []
    name = intrinsic_name(value)
    if name == "Ref" and isinstance(value[name], str):
        found.append((value[name], child_path(path, name)))
        return found
    if name == "Fn::GetAtt":
        args = value[name]
        if isinstance(args, str) and "." in args:
            found.append((args.split(".", 1)[0], child_path(path, name)))
            return found
        if isinstance(args, list) and args and isinstance(args[0], str):
            found.append((args[0], child_path(path, name)))
            found.extend(referenced_names(args[1:], child_path(path, name)))
            return found
    if name == "Fn::Sub":
        args = value[name]
        sub_path = child_path(path, name)
        template_string, local_names = args, set()
        if isinstance(args, list) and len(args) == 2 and isinstance(args[1], Mapping):
            template_string, local_names = args[0], set(args[1].keys())
            found.extend(referenced_names(args[1], child_path(sub_path, 1)))
        if isinstance(template_string, str):
            for variable in sub_variables(template_string):
                if variable not in local_names:
                    found.append((variable, sub_path))
        return found
    if isinstance(value, Mapping):
        for key, item in value.items():
            found.extend(referenced_names(item, child_path(path, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(referenced_names(item, child_path(path, index)))
    return found
