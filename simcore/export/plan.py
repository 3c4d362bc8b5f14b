"""`simcore export v2`: a v1 group template → the Greengrass v2 requests, template and MIGRATION.md, validated.

`export_v2` loads the template with simcore's own loader (the `Group` simcore runs), maps every element
(`lambdas`, `models`, `routes`, `deployment`), reads each Lambda's code for v1 SDK calls (`code_scan`), builds
the CloudFormation template (`cloudformation`) and MIGRATION.md (`migration`), validates it all (`validate`)
and only then writes the files:

    components/<Lambda component>.json        create-component-version --cli-input-json
    components/<model component>.recipe.json  create-component-version --inline-recipe fileb://
    deployment.json                           create-deployment --cli-input-json
    client-devices.json                       batch-associate-client-device-with-core-device (with devices)
    greengrass-v2.template.json               the same as AWS::GreengrassV2::* resources
    MIGRATION.md                              every v1 element, what it became, what needs a human
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from simcore.defaults import DEFAULT_ACCOUNT_ID, DEFAULT_REGION, DEFAULT_STACK_NAME
from simcore.errors import InputError
from simcore.export import catalog
from simcore.export.cloudformation import build_template
from simcore.export.code_scan import CodeReport, scan_code
from simcore.export.deployment import client_device_association, deployment_request, public_components
from simcore.export.lambdas import component_names, lambda_request, versioned_arn
from simcore.export.models import ModelComponent, model_components
from simcore.export.routes import Route, routes
from simcore.group import Function, Group

TEMPLATE_FILE = "greengrass-v2.template.json"
DEPLOYMENT_FILE = "deployment.json"
DEVICES_FILE = "client-devices.json"
MIGRATION_FILE = "MIGRATION.md"


class ExportError(InputError):
    """What `simcore export v2` was given cannot be exported (an override naming nothing, an output that is a file)."""

    code = "ExportError"


@dataclass
class ExportOptions:
    """Overrides: a Lambda version per function entry Id, a version per AWS-provided component."""

    lambda_versions: dict[str, str] = field(default_factory=dict)
    component_versions: dict[str, str] = field(default_factory=dict)


@dataclass
class V2Export:
    """Everything one export writes, before it is written."""

    group: Group
    template_path: Path
    parameters: dict[str, str]
    functions: dict[str, Function]  # component name -> the v1 function
    lambda_requests: dict[str, dict]  # component name -> create-component-version request
    models: dict[str, ModelComponent]  # ML resource id -> its component
    routes: list[Route]
    dependencies: dict[str, set[str]]  # component name -> AWS-provided components it depends on
    code: dict[str, CodeReport]  # component name -> what its code does
    deployment: dict
    association: dict | None
    template: dict
    public_versions: dict[str, str]
    lambda_versions: dict[str, str] = field(default_factory=dict)  # --lambda-version overrides

    def requests(self) -> dict[str, tuple[str, dict]]:
        """Each request file → (operation, request), as validated and written."""
        requests = {f"components/{name}.json": ("CreateComponentVersion", request)
                    for name, request in self.lambda_requests.items()}
        for model in self.models.values():
            requests[f"components/{model.name}.recipe.json"] = (
                "CreateComponentVersion", {"inlineRecipe": json.dumps(model.recipe).encode()})
        requests[DEPLOYMENT_FILE] = ("CreateDeployment", self.deployment)
        if self.association:
            requests[DEVICES_FILE] = ("BatchAssociateClientDeviceWithCoreDevice", self.association)
        return requests


def build_export(group: Group, template_path: Path, parameters: Mapping[str, str],
                 options: ExportOptions | None = None) -> V2Export:
    """Map `group` (as simcore's loader built it from `template_path`) to its v2 export, without writing."""
    from simcore.export.validate import greengrassv2_model

    options = options or ExportOptions()
    unknown = sorted(set(options.lambda_versions) - {function.id for function in group.functions})
    if unknown:
        raise ExportError(f"--lambda-version names no function of the group: {', '.join(unknown)} "
                          f"(function entry Ids: {', '.join(f.id for f in group.functions) or 'none'})")
    for function_id, version in options.lambda_versions.items():
        if not re.fullmatch(r"[1-9]\d{0,9}", version):
            raise ExportError(f"--lambda-version {function_id}={version}: a Lambda version is a number (1, 2...)")
    unknown = sorted(set(options.component_versions) - set(catalog.PUBLIC_COMPONENT_VERSIONS))
    if unknown:
        raise ExportError(f"--component-version names no component the export deploys: {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(catalog.PUBLIC_COMPONENT_VERSIONS))})")
    for name, version in options.component_versions.items():
        if not re.fullmatch(r"\d+\.\d+\.\d+", version):
            raise ExportError(f"--component-version {name}={version}: a component version is MAJOR.MINOR.PATCH")
    names_by_arn = component_names(group)
    functions = {names_by_arn[function.arn]: function for function in group.functions}
    models = model_components(group)
    group_routes = routes(group, names_by_arn)
    code = {name: scan_code(function.code_dir) for name, function in functions.items()}
    dependencies = {name: _dependencies(function, group, group_routes, code[name])
                    for name, function in functions.items()}
    lambda_requests = {}
    for name, function in functions.items():
        sources: list[dict] = []
        for route in group_routes:
            # Two subscriptions on one subject from two local sources are one event source (not two deliveries).
            if route.event_source and route.event_source[0] == function.arn and route.event_source[1] not in sources:
                sources.append(route.event_source[1])
        lambda_requests[name] = lambda_request(
            function, group, lambda_arn=versioned_arn(function, options.lambda_versions),
            event_sources=sources, dependencies=dependencies[name], models=models)
    needed = set().union(*dependencies.values()) if dependencies else set()
    shadow_in_use = catalog.SHADOW_MANAGER in needed
    public = public_components(group, group_routes, needed, shadow_in_use)
    versions = {**catalog.PUBLIC_COMPONENT_VERSIONS, **options.component_versions}
    run_as = {name: f"{function.run_as_uid}" + (f":{function.run_as_gid}" if function.run_as_gid is not None else "")
              for name, function in functions.items() if function.run_as_uid is not None}
    own = list(functions) + [model.name for model in models.values()]
    deployment = deployment_request(group, own, public, versions, run_as)
    template = build_template(group, lambda_requests, functions,
                              {model.name: model.recipe for model in models.values()}, deployment,
                              greengrassv2_model())
    return V2Export(
        group=group, template_path=template_path, parameters=dict(parameters), functions=functions,
        lambda_requests=lambda_requests, models=models, routes=group_routes, dependencies=dependencies, code=code,
        deployment=deployment, association=client_device_association(group), template=template,
        public_versions={name: versions[name] for name in public},
        lambda_versions=dict(options.lambda_versions),
    )


def _dependencies(function: Function, group: Group, group_routes: list[Route], code: CodeReport) -> set[str]:
    """The AWS-provided components a Lambda component depends on, from its routes, resources and code."""
    needed = set()
    component = f"component:{component_names(group)[function.arn]}"
    if any(route.router and route.router["source"] == component for route in group_routes) or code.uses("publish"):
        needed.add(catalog.LEGACY_SUBSCRIPTION_ROUTER)
    shadow_routes = any(route.event_source and route.event_source[0] == function.arn
                        and route.subscription.source == "GGShadowService" for route in group_routes)
    if shadow_routes or code.uses("shadow"):
        needed.add(catalog.SHADOW_MANAGER)
    kinds = {group.resource(access.resource_id).kind for access in function.resource_access}
    if "secret" in kinds or code.uses("secrets"):
        needed.add(catalog.SECRET_MANAGER)
    if code.uses("aws_sdk"):
        needed.add(catalog.TOKEN_EXCHANGE_SERVICE)
    if code.uses("stream_manager"):
        needed.add(catalog.STREAM_MANAGER)
    return needed


def write_export(export: V2Export, out_dir: Path) -> list[Path]:
    """Write the export's files under `out_dir` (created; files of an earlier export replaced); their paths."""
    from simcore.export.migration import migration_text

    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"-o {out_dir} is a file; give a folder for the export", location=str(out_dir))
    (out_dir / "components").mkdir(parents=True, exist_ok=True)
    written = []
    if (out_dir / MIGRATION_FILE).is_file():
        # An earlier export's folder: its component files go, so none of a removed function is left to send.
        for stale in (out_dir / "components").glob("*.json"):
            stale.unlink()
        (out_dir / DEVICES_FILE).unlink(missing_ok=True)

    def write(relative: str, text: str) -> None:
        path = out_dir / relative
        # Not secret, but written whole or not at all: a reader never sees half a request.
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
        written.append(path)

    for relative, (_, request) in export.requests().items():
        if relative.endswith(".recipe.json"):
            continue
        write(relative, json.dumps(request, indent=2) + "\n")
    for model in export.models.values():
        write(f"components/{model.name}.recipe.json", json.dumps(model.recipe, indent=2) + "\n")
    write(TEMPLATE_FILE, template_text(export))
    write(MIGRATION_FILE, migration_text(export, out_dir))
    return written


def shown_parameters(loaded) -> dict[str, str]:
    """The effective parameters as MIGRATION.md may show them: a `NoEcho` parameter's value is masked."""
    declared = loaded.resolved.template.get("Parameters") or {}
    return {key: ("****" if str((declared.get(key) or {}).get("NoEcho", "")).lower() == "true" else str(value))
            for key, value in loaded.parameters.items()}


def template_text(export: V2Export) -> str:
    """The CloudFormation template as it is written (and linted)."""
    return json.dumps(export.template, indent=2) + "\n"


def export_v2(
    template_path: str | Path,
    parameters: Mapping[str, str] | None,
    out_dir: str | Path,
    *,
    options: ExportOptions | None = None,
    region: str = DEFAULT_REGION,
    account_id: str = DEFAULT_ACCOUNT_ID,
    stack_name: str = DEFAULT_STACK_NAME,
) -> tuple[V2Export, list[Path]]:
    """Load, map, validate (botocore's model, cfn-lint), then write; raises before writing anything invalid."""
    from simcore.export.validate import check
    from simcore.template.loader import resolve_template

    loaded = resolve_template(template_path, parameters, region=region, account_id=account_id, stack_name=stack_name)
    export = build_export(loaded.group, Path(template_path), shown_parameters(loaded), options)
    check(export.requests(), template_text(export), region)
    return export, write_export(export, Path(out_dir))


__all__ = ["ExportError", "ExportOptions", "V2Export", "build_export", "export_v2", "write_export"]
