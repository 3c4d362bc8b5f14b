"""Builds a deployment directory from the group template, laid out like a v1 core's `/greengrass/ggc`.

```
<root>/
  current -> deployments/<n>      the running deployment (a symlink, swapped atomically)
  previous -> deployments/<m>     the one before it, for rollback
  deployments/status.json         the last deployment's status, as the real core reports it
  deployments/<n>/
    group.json                    the resolved Group (code_dir relative to this folder)
    deployment.json               id, number, time, template, parameters, warnings, paths
    template/<template file>      the template this deployment came from
    lambda/<FunctionName>/        each function's code
    resources/<resource id>/      each ML resource, extracted
    secrets/<resource id>.json    each Secrets Manager secret resource's versions (0600, folder 0700)
    config/config.json            the core's config (coreThing, runtime, crypto; certs in <root>/certs)
    config/parameters.json        the effective parameters
  var/log/system, var/log/user    log folders (simcore.core.logs writes in them)
```
A deployment is built in `deployments/.staging-*` and renamed into place once complete, then `current`
is swapped with `os.replace` of a fresh symlink, so a reader always sees a whole deployment. A failed
deployment leaves `current` alone and writes `DeploymentStatus: Failure` with the error. The newest
`keep` deployments (and whatever `current` and `previous` name) are kept; older ones are removed.

A local device missing on this machine is a warning in the status, not a failure: demo machines have
no `/dev/i2c-1`, and the sensor Lambda can replay recorded readings instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from simcore.core_config import CoreConfig, write_core_config
from simcore.defaults import LAMBDA_CODE_UNZIPPED_MAX_BYTES
from simcore.deploy.archive import (
    DEFAULT_LIMITS,
    ExtractionLimits,
    archive_format,
    copy_folder,
    copy_model_folder,
    extract_archive,
)
from simcore.deploy.fetch import fetch_model
from simcore.deploy.record import (
    Deployment,
    group_to_json,
    load_deployment,
    now_stamp,
    read_deployment,
    write_json_atomically,
    write_status,
)
from simcore.deploy.secrets import SECRETS_DIR, fetch_secrets, secret_warnings
from simcore.errors import DeployError, SimcoreError
from simcore.group import (
    Function,
    Group,
    Resource,
)
from simcore.private import private_dir

_CODE_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
# A function's code may expand to what AWS Lambda takes: 250 MB unzipped, counted as it is copied.
CODE_LIMITS = ExtractionLimits(
    max_member_bytes=LAMBDA_CODE_UNZIPPED_MAX_BYTES,
    max_total_bytes=LAMBDA_CODE_UNZIPPED_MAX_BYTES,
    total_limit=(
        "AWS Lambda takes at most 250 MB of code unzipped "
        f"(\"Unzipped size must be smaller than {LAMBDA_CODE_UNZIPPED_MAX_BYTES} bytes\")"
    ),
)


# -- deploy -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def _deploy_lock(root: Path) -> Iterator[None]:
    """One deployment at a time per root (two would race for the next number and the symlinks)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".deploy.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _deployment_numbers(root: Path) -> list[int]:
    folder = root / "deployments"
    if not folder.is_dir():
        return []
    return sorted(int(entry.name) for entry in folder.iterdir() if entry.name.isdigit() and entry.is_dir())


def _remove_abandoned_staging(root: Path) -> None:
    """Staging folders of a deploy that was killed; safe to remove because the caller holds the lock."""
    folder = root / "deployments"
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.name.startswith(".staging-"):
                shutil.rmtree(entry, ignore_errors=True)


def _swap_symlink(link: Path, target: str) -> None:
    """Point `link` at `target` atomically: a reader sees the old or the new target, never none."""
    temporary = link.with_name(f".{link.name}.{os.getpid()}.{uuid.uuid4().hex}")
    os.symlink(target, temporary)
    os.replace(temporary, link)


def deploy(
    template_path: str | Path,
    parameters: Mapping[str, str] | None = None,
    root: Path = Path(".simcore"),
    *,
    s3_endpoint_url: str | None = None,
    secrets_endpoint_url: str | None = None,
    secrets_file: str | Path | None = None,
    limits: ExtractionLimits = DEFAULT_LIMITS,
    code_limits: ExtractionLimits = CODE_LIMITS,
    keep: int = 3,
    runtime_check: Callable[[Group], Sequence[str]] | None = None,
    group_version_id: str | None = None,
    **template_kw: Any,
) -> Deployment:
    """Build a new deployment of the group in `template_path` under `root` and make it current.

    `template_kw` goes to `simcore.template.loader.load_group` (region, account_id, stack_name).
    Secret resources come from Secrets Manager (`secrets_endpoint_url`) or from `secrets_file` /
    `SIMCORE_SECRETS_FILE` (see `simcore.deploy.secrets`). Functions' code is held to `code_limits` (AWS
    Lambda's 250 MB unzipped), ML resources to `limits`. `runtime_check` (the CLI passes
    `simcore.core.interpreters.check_runtimes`) refuses a Runtime no interpreter here serves; its warnings
    join the deployment's. `group_version_id` (a bundle's, `simcore.deploy.bundle`) is recorded as
    `GroupVersionId` in deployment.json.
    Raises `TemplateError` for a bad template, `DeployError` when code or resources cannot be placed;
    either way `deployments/status.json` records the failure and `current` is unchanged.
    """
    root = Path(root).absolute()
    template_path = Path(template_path).absolute()
    with _deploy_lock(root):
        _remove_abandoned_staging(root)
        numbers = _deployment_numbers(root)
        number = (numbers[-1] if numbers else 0) + 1
        deployment_id = str(uuid.uuid4())
        write_status(root, deployment_id, "InProgress", number=number)
        staging = root / "deployments" / f".staging-{number}-{deployment_id}"

        def fail(error_message: str) -> None:
            shutil.rmtree(staging, ignore_errors=True)
            write_status(root, deployment_id, "Failure", error=error_message, number=number)

        try:
            warnings = _build(
                template_path,
                parameters,
                root,
                staging,
                number,
                deployment_id,
                s3_endpoint_url,
                limits,
                template_kw,
                secrets_endpoint_url=secrets_endpoint_url,
                secrets_file=secrets_file,
                code_limits=code_limits,
                runtime_check=runtime_check,
                group_version_id=group_version_id,
            )
            final = _make_current(root, staging, number)
        except SimcoreError as error:
            fail(str(error))
            raise
        except OSError as error:
            message = f"cannot write the deployment: {error}"
            fail(f"DeployError: {message}")
            raise DeployError(message) from error
        except BaseException as error:  # a bug or an interrupt: the status must not stay InProgress
            fail(f"{type(error).__name__}: {error}")
            raise
        write_status(root, deployment_id, "Success", warnings=warnings, number=number)
        _prune(root, keep)
        return read_deployment(root, final)


def _make_current(root: Path, staging: Path, number: int) -> Path:
    """Rename the finished `staging` to deployments/<number>, point `current` at it and `previous` at the
    deployment `current` named before; returns the deployment's folder."""
    final = root / "deployments" / str(number)
    os.replace(staging, final)
    current = root / "current"
    if current.is_symlink():
        _swap_symlink(root / "previous", os.readlink(current))
    _swap_symlink(current, f"deployments/{number}")
    return final


def _build(
    template_path: Path,
    parameters: Mapping[str, str] | None,
    root: Path,
    staging: Path,
    number: int,
    deployment_id: str,
    s3_endpoint_url: str | None,
    limits: ExtractionLimits,
    template_kw: Mapping[str, Any],
    *,
    secrets_endpoint_url: str | None = None,
    secrets_file: str | Path | None = None,
    code_limits: ExtractionLimits = CODE_LIMITS,
    runtime_check: Callable[[Group], Sequence[str]] | None = None,
    group_version_id: str | None = None,
) -> tuple[str, ...]:
    """Fill `staging` with the whole deployment; returns its warnings."""
    # Here, not at the top: `rollback` (which a running core's failed swap calls) needs no template machinery.
    from simcore.template.loader import resolve_template

    loaded = resolve_template(template_path, parameters, **template_kw)
    group = loaded.group
    runtime_warnings = list(runtime_check(group)) if runtime_check else []
    staging.mkdir(parents=True)
    for log_folder in ("system", "user"):
        private_dir(root / "var" / "log" / log_folder)  # the core's alone: Lambdas run as another user
    (staging / "template").mkdir()
    shutil.copy2(template_path, staging / "template" / template_path.name)

    deployed_functions, function_dirs = _place_functions(group.functions, staging, code_limits)
    resource_dirs, warnings = _place_resources(group, staging, template_path.parent, s3_endpoint_url, limits)
    warnings[:0] = runtime_warnings
    fetch_secrets(group, staging / SECRETS_DIR, endpoint_url=secrets_endpoint_url, secrets_file=secrets_file)
    warnings.extend(secret_warnings(group))
    warnings.extend(_device_subscription_warnings(group))

    _write_records(
        staging,
        dataclasses.replace(group, functions=deployed_functions),
        {
            "DeploymentId": deployment_id,
            "DeploymentNumber": number,
            "CreatedAt": now_stamp(),
            "Template": str(template_path),
            "Region": group.region,
            "AccountId": group.account_id,
            "StackName": loaded.resolved.stack_name,
            "Parameters": loaded.parameters,
            "Warnings": warnings,
            "FunctionDirs": {arn: str(path) for arn, path in function_dirs.items()},
            "ResourceDirs": {resource_id: str(path) for resource_id, path in resource_dirs.items()},
            **({"GroupVersionId": group_version_id} if group_version_id else {}),
        },
    )
    _write_config(staging / "config", group, loaded.parameters, root / "certs")
    if group.devices:
        # The group CA, made once at the first deploy with devices and kept under the root (simcore.devices).
        from simcore.devices.group_ca import group_ca

        group_ca(root / "var" / "state", group.name)
    return tuple(warnings)


def _place_functions(
    functions: tuple[Function, ...], staging: Path, limits: ExtractionLimits
) -> tuple[tuple[Function, ...], dict[str, Path]]:
    """Copy each function's code to `lambda/<name>`; the functions pointing at their copies, and the copies'
    folders (relative to `staging`) by function ARN."""
    deployed: list[Function] = []
    function_dirs: dict[str, Path] = {}
    for function in functions:
        relative = Path("lambda") / function.name
        target = staging / relative
        if not target.exists():  # one Lambda may appear under two aliases: same code, one copy
            _place_code(function, target, limits)
        deployed.append(dataclasses.replace(function, code_dir=staging / relative))
        function_dirs[function.arn] = relative
    return tuple(deployed), function_dirs


def _place_resources(
    group: Group, staging: Path, template_dir: Path, s3_endpoint_url: str | None, limits: ExtractionLimits
) -> tuple[dict[str, Path], list[str]]:
    """Fetch and extract the ML resources to `resources/<id>`, check local devices and volumes; the resources'
    folders by id (relative to `staging` for ML data, absolute for volumes) and the warnings."""
    warnings: list[str] = []
    resource_dirs: dict[str, Path] = {}
    downloads = staging / ".downloads"
    for resource in group.resources:
        if resource.kind in ("ml_s3", "ml_sagemaker"):
            relative = Path("resources") / resource.id
            source = fetch_model(
                resource,
                downloads,
                template_dir=template_dir,
                region=group.region,
                s3_endpoint_url=s3_endpoint_url,
                max_bytes=limits.max_total_bytes,
            )
            _place_model(resource, source, staging / relative, limits)
            resource_dirs[resource.id] = relative
            warnings.extend(_bucket_warning(resource))
        elif resource.kind == "local_device" and not Path(resource.source).exists():
            warnings.append(
                f"local device resource {resource.id}: {resource.source} does not exist on this machine; "
                "functions that use it will fail to open it"
            )
        elif resource.kind == "local_volume":
            if not Path(resource.source).is_dir():
                warnings.append(f"local volume resource {resource.id}: {resource.source} is not a folder here")
            resource_dirs[resource.id] = Path(resource.source)
    shutil.rmtree(downloads, ignore_errors=True)
    return resource_dirs, warnings


def _write_records(staging: Path, deployed_group: Group, record: Mapping[str, Any]) -> None:
    """`group.json` (code dirs relative to `staging`) and `deployment.json` (`record`)."""
    write_json_atomically(staging / "group.json", group_to_json(deployed_group, relative_to=staging))
    write_json_atomically(staging / "deployment.json", dict(record))


def _device_subscription_warnings(group: Group) -> list[str]:
    """A subscription naming a thing the DeviceDefinition lacks: its messages can reach no device."""
    devices = {device.thing_arn for device in group.devices} | {core.thing_arn for core in group.cores}
    warnings = []
    for subscription in group.subscriptions:
        for role, endpoint in (("source", subscription.source), ("target", subscription.target)):
            if ":iot:" in endpoint and ":thing/" in endpoint and endpoint not in devices:
                warnings.append(f"subscription {subscription.id}: {role} {endpoint} is not a device of the group's "
                                "DeviceDefinition; add it there, or its messages are undeliverable")
    return warnings


def _bucket_warning(resource: Resource) -> list[str]:
    """The v1 service fetched ML models only from buckets named *greengrass* or *sagemaker* (without a policy)."""
    if not resource.source.startswith("s3://"):
        return []
    bucket = resource.source[len("s3://") :].split("/", 1)[0]
    if "greengrass" in bucket or "sagemaker" in bucket:
        return []
    return [
        f"resource {resource.id}: bucket {bucket!r} has neither 'greengrass' nor 'sagemaker' in its name; "
        "in AWS the group role would need an explicit s3:GetObject policy for it"
    ]


def _place_code(function: Function, target: Path, limits: ExtractionLimits) -> None:
    """The function's code folder copied, or its zip extracted, within `limits` (links out of the folder and
    special files refused, as for a model folder)."""
    source = function.code_dir
    try:
        if source.is_dir():
            copy_folder(source, target, limits, ignore=_CODE_IGNORE)
        elif archive_format(source) == "zip":
            extract_archive(source, target, limits)
        else:
            raise DeployError(f"function {function.id}: code {source} is neither a folder nor a zip file")
    except DeployError as error:
        if error.message.startswith(f"function {function.id}:"):
            raise
        raise DeployError(f"function {function.id}: {error.message}", location=error.location) from None
    except (OSError, shutil.Error) as error:
        raise DeployError(f"function {function.id}: cannot copy code from {source}: {error}") from None
    _readable_by_lambdas(target)


def _readable_by_lambdas(folder: Path) -> None:
    """Folders 0755, files 0644 (0755 if executable): the Lambda runs as another user (ggc_user) than the core,
    and a copy keeps the source's modes (a 0700 temporary folder, a 0600 file from an editor)."""
    for path in (folder, *folder.rglob("*")):
        if path.is_symlink():
            continue
        executable = path.is_dir() or path.stat().st_mode & 0o111
        os.chmod(path, 0o755 if executable else 0o644)


def _place_model(resource: Resource, source: Path, target: Path, limits: ExtractionLimits) -> None:
    if source.is_dir():
        copy_model_folder(source, target, limits)
        return
    if archive_format(source) is None:
        raise DeployError(
            f"resource {resource.id}: {resource.source} is not a tar or zip archive (a model resource is one)"
        )
    try:
        extract_archive(source, target, limits)
    except DeployError as error:
        raise DeployError(f"resource {resource.id}: {error.message}", location=error.location) from None


def _write_config(folder: Path, group: Group, parameters: Mapping[str, Any], certs_dir: Path) -> None:
    """The core's `config.json` and the effective parameters.

    The document is `group.setup`'s but for what deploy legitimately does not know or decides otherwise:
    no `iotHost` (the IoT endpoint comes with the identity, from `group.setup`), `useSystemd: no` (simcore,
    not systemd, runs this core), `allowFunctionsToRunAsRoot: no` recorded explicitly, and the group's core
    recorded as `thingName` and `certificateArn`. Cert files (in `certs_dir`) are placed by `group/` tools.
    """
    core = group.cores[0]
    write_core_config(folder / "config.json", CoreConfig.for_thing(
        core.thing_arn, None, certs_dir=certs_dir, use_systemd=False, allow_functions_to_run_as_root=False,
        thing_name=core.thing_name, certificate_arn=core.certificate_arn or None,
    ))
    write_json_atomically(folder / "parameters.json", dict(parameters))


def _prune(root: Path, keep: int) -> None:
    protected = set()
    for link_name in ("current", "previous"):
        link = root / link_name
        if link.is_symlink():
            protected.add(Path(os.readlink(link)).name)
    numbers = _deployment_numbers(root)
    for number in numbers[: max(len(numbers) - keep, 0)]:
        if str(number) not in protected:
            shutil.rmtree(root / "deployments" / str(number), ignore_errors=True)


# -- rolling back ---------------------------------------------------------------------------------


def rollback(root: Path = Path(".simcore")) -> Deployment:
    """Make the previous deployment current again (and the current one previous, so it can be undone)."""
    root = Path(root).absolute()
    with _deploy_lock(root):
        previous_link = root / "previous"
        current_link = root / "current"
        if not previous_link.is_symlink() or not (root / os.readlink(previous_link)).is_dir():
            raise DeployError(f"no previous deployment under {root} to roll back to")
        previous_target = os.readlink(previous_link)
        if current_link.is_symlink():
            _swap_symlink(previous_link, os.readlink(current_link))
        _swap_symlink(current_link, previous_target)
        deployment = load_deployment(root)
        write_status(
            root,
            deployment.id,
            "Success",
            warnings=deployment.warnings,
            deployment_type="Rollback",
            number=deployment.number,
        )
    return deployment
