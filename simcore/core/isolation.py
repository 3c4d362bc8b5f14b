"""How a Lambda process is isolated: GreengrassContainer (mount namespace), NoContainer, `--isolation off`.

`plan_launch` turns a function's configuration into a `LaunchPlan` that `simcore.core.workers` applies when it
starts the process: a command prefix, environment rewrites, the uid/gid for `subprocess.Popen`, and one log
line. `check_available` says, before anything starts, whether a mode can work on this machine and why not.

Modes (docs/isolation.md has the whole story):
- "container": `unshare --mount` plus `simcore/lambda_side/isolation_launcher.py`, which builds a private root in
  which ML resources and local volumes appear at their `DestinationPath` (read-only when the function's
  access is `ro`), `/dev` holds only the standard nodes and the granted devices, `/sys` only with
  AccessSysfs; it then drops to the function's RunAs identity and execs the Lambda.
- "nocontainer": the Lambda runs on the host as its RunAs identity; resource paths are rewritten as in "off".
- "off": no namespaces, no identity change; environment values under a resource's `DestinationPath` are
  rewritten to where the resource lies under the deployment root.

The identity a Lambda runs as is `simcore.core.identity`'s: as a v1 core decides it, in every mode.
"""

from __future__ import annotations

import functools
import grp
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from simcore.core.identity import DEFAULT_GROUP, DEFAULT_USER, Identity, resolve_identity
from simcore.errors import RuntimeConfigError, StartError
from simcore.group import Function, Group, Resource
from simcore.paths import ISOLATION_LAUNCHER

Mode = Literal["container", "nocontainer", "off"]
MODES: tuple[Mode, ...] = ("container", "nocontainer", "off")

LAUNCHER = ISOLATION_LAUNCHER

# Resource kinds that a function sees as a directory at a DestinationPath.
_PATH_RESOURCE_KINDS = ("ml_s3", "ml_sagemaker", "local_volume")


@dataclass(frozen=True)
class LaunchPlan:
    """What `workers` applies to start one Lambda process isolated as configured."""

    argv_prefix: list[str]
    env_rewrites: dict[str, str]
    uid: int | None
    gid: int | None
    description: str
    # The mounts a container-mode launch makes, as (target the Lambda sees, host source, permission).
    mounts: tuple[tuple[str, str, str], ...] = field(default=())
    # Who the Lambda's own process runs as (in container mode the launcher switches to it); None: simcore's.
    identity: Identity | None = None
    # Its supplementary groups when it switches: the owning groups of resources with AutoAddGroupOwner.
    extra_groups: tuple[int, ...] = ()


def mode_for(function: Function, override: Mode | None = None) -> Mode:
    """The mode for `function`: `override` (e.g. `--isolation off`) when given, else its IsolationMode."""
    if override is not None:
        _check_mode(override)
        return override
    return "nocontainer" if function.isolation_mode == "NoContainer" else "container"


def check_available(mode: Mode) -> None:
    """Raise RuntimeConfigError saying why `mode` cannot work on this machine; return if it can."""
    _check_mode(mode)
    if mode == "off":
        return
    if os.name != "posix":
        raise RuntimeConfigError(f"isolation mode {mode!r} needs a POSIX host; use --isolation off")
    if mode == "nocontainer":
        return
    reason = _container_unavailable_reason()
    if reason is not None:
        raise RuntimeConfigError(f"GreengrassContainer isolation is not available: {reason}")


def plan_launch(
    function: Function,
    group: Group,
    resource_dirs: Mapping[str, Path],
    mode: Mode,
    *,
    scratch_dir: Path,
    default_user: str = DEFAULT_USER,
    default_group: str = DEFAULT_GROUP,
    allow_root: bool = False,
) -> LaunchPlan:
    """The launch plan for `function` in `mode`.

    `resource_dirs` maps a resource's Id (or, failing that, its Name) to where the deployment extracted it;
    local volumes default to their source path. `scratch_dir` is a directory simcore owns: container mode
    mounts the Lambda's private root on `scratch_dir/rootfs` inside the namespace (the host sees it empty).
    `allow_root` is config.json's `runtime.allowFunctionsToRunAsRoot`. Raises RuntimeConfigError for a
    missing resource or device, StartError for an identity the host lacks or root that is not allowed.
    """
    _check_mode(mode)
    identity = resolve_identity(function, mode, allow_root=allow_root, default_user=default_user,
                                default_group=default_group)
    path_resources = _path_resources(function, group, resource_dirs)
    if mode == "container":
        return _container_plan(function, group, path_resources, identity, Path(scratch_dir))
    rewrites = rewrite_environment(function.environment, path_resources)
    where = _describe_rewrites(path_resources)
    if mode == "off":
        description = (
            f"{function.name}: isolation off (no namespaces), runs as {identity.describe()}; "
            f"resources stay under the deployment root{where}; ro is not enforced; devices used in place"
            + _ignored_run_as(function, identity)
        )
    else:
        description = (
            f"{function.name}: NoContainer, runs on the host as {identity.describe()}; "
            f"resources where they lie{where}; devices used in place"
        )
    switch = not identity.is_own
    extra_groups = resource_groups(function, group) if switch and os.geteuid() == 0 else ()
    return LaunchPlan(
        argv_prefix=[],
        env_rewrites=rewrites,
        uid=identity.uid if switch else None,
        gid=identity.gid if switch else None,
        description=description + _describe_groups(extra_groups),
        identity=identity,
        extra_groups=extra_groups,
    )


def resource_groups(function: Function, group: Group) -> tuple[int, ...]:
    """The groups a v1 core adds to the Lambda's process: for each local device or volume it may access whose
    `GroupOwnerSetting.AutoAddGroupOwner` is true, the `GroupOwner` named there, else the group owning the
    resource's source path (a device missing on this host adds nothing: it is the Lambda's to report)."""
    gids: list[int] = []
    for access in function.resource_access:
        try:
            resource = group.resource(access.resource_id)
        except KeyError:
            continue  # named by _path_resources
        if resource.kind not in ("local_device", "local_volume") or not resource.auto_add_group_owner:
            continue
        gid = _group_id(resource.group_owner, function) if resource.group_owner else _owning_group(resource.source)
        if gid is not None and gid not in gids:
            gids.append(gid)
    return tuple(gids)


def _group_id(name: str, function: Function) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise StartError(
            f"function {function.name} should get group {name} (a resource's GroupOwner), which does not exist "
            f"on this host: create it with `groupadd --system {name}` or name another GroupOwner",
            location=function.arn,
        ) from None


def _owning_group(path: str) -> int | None:
    try:
        return os.stat(path).st_gid
    except OSError:
        return None


def _describe_groups(gids: tuple[int, ...]) -> str:
    return f"; with groups {', '.join(map(str, gids))} of its resources (AutoAddGroupOwner)" if gids else ""


def rewrite_environment(
    environment: Mapping[str, str], path_resources: Mapping[str, tuple[Resource, Path, str]]
) -> dict[str, str]:
    """Environment values that name a path under a resource's DestinationPath, rewritten to its local dir.

    A value matches when it equals the DestinationPath or continues it with `/` (so `/ml/rainfall` is not
    under `/ml/rain`); the longest matching DestinationPath wins. Only changed variables are returned.
    """
    destinations = sorted(
        ((resource.destination_path.rstrip("/") or "/", local_dir) for resource, local_dir, _ in
         path_resources.values() if resource.destination_path),
        key=lambda pair: len(pair[0]),
        reverse=True,
    )
    rewrites: dict[str, str] = {}
    for name, value in environment.items():
        for destination, local_dir in destinations:
            if value == destination or value.startswith(destination + "/"):
                rewrites[name] = str(local_dir) + value[len(destination):]
                break
    return rewrites


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise RuntimeConfigError(f"unknown isolation mode {mode!r}; expected one of {', '.join(MODES)}")


def _path_resources(
    function: Function, group: Group, resource_dirs: Mapping[str, Path]
) -> dict[str, tuple[Resource, Path, str]]:
    """The function's resources that have a DestinationPath: id -> (resource, local dir, permission)."""
    found: dict[str, tuple[Resource, Path, str]] = {}
    for access in function.resource_access:
        try:
            resource = group.resource(access.resource_id)
        except KeyError:
            raise RuntimeConfigError(
                f"function {function.name} refers to resource {access.resource_id!r}, which the group "
                "does not define",
                location=function.arn,
            ) from None
        if resource.kind not in _PATH_RESOURCE_KINDS or not resource.destination_path:
            continue
        local_dir = resource_dirs.get(resource.id) or resource_dirs.get(resource.name)
        if local_dir is None and resource.kind == "local_volume":
            local_dir = Path(resource.source)
        if local_dir is None:
            raise RuntimeConfigError(
                f"resource {resource.id} ({resource.destination_path}) of function {function.name} has not "
                "been deployed: no local directory for it",
                location=function.arn,
            )
        found[resource.id] = (resource, Path(local_dir), access.permission)
    return found


def _devices(function: Function, group: Group) -> list[tuple[str, str]]:
    """The function's local devices as (path, permission)."""
    devices = []
    for access in function.resource_access:
        resource = group.resource(access.resource_id)
        if resource.kind == "local_device":
            devices.append((resource.source, access.permission))
    return devices


def _container_plan(
    function: Function,
    group: Group,
    path_resources: Mapping[str, tuple[Resource, Path, str]],
    identity: Identity,
    scratch_dir: Path,
) -> LaunchPlan:
    rootless = os.geteuid() != 0
    extra_groups = () if rootless else resource_groups(function, group)
    binds, volume_mounts = _volume_binds(function, path_resources)
    devices, device_mounts = _device_binds(function, group)
    mounts = volume_mounts + device_mounts
    spec = {
        "rootfs": str(scratch_dir / "rootfs"),
        "binds": binds,
        "devices": devices,
        "sysfs": function.access_sysfs,
        "uid": None if rootless else identity.uid,
        "gid": None if rootless else identity.gid,
        "groups": list(extra_groups),
    }
    shown = ", ".join(f"{target} <- {source} ({permission})" for target, source, permission in mounts)
    return LaunchPlan(
        argv_prefix=[
            *_unshare_command(rootless),
            sys.executable,
            "-I",
            "-S",
            str(LAUNCHER),
            json.dumps(spec, separators=(",", ":")),
            "--",
        ],
        env_rewrites={},
        uid=None,
        gid=None,
        description=(
            f"{function.name}: GreengrassContainer (mount namespace{', rootless' if rootless else ''}), "
            f"runs as {identity.describe()}; {shown or 'no resources'}; private /dev; "
            f"/sys {'shown' if function.access_sysfs else 'hidden'}" + _describe_groups(extra_groups)
        ),
        mounts=tuple(mounts),
        identity=identity,
        extra_groups=extra_groups,
    )


def _volume_binds(
    function: Function, path_resources: Mapping[str, tuple[Resource, Path, str]]
) -> tuple[list[dict], list[tuple[str, str, str]]]:
    """The launcher's bind mounts for the function's volume and ML resources, and the same as
    (target, source, permission) for the plan; a resource whose local folder is gone is an error."""
    binds = []
    mounts = []
    for resource, local_dir, permission in path_resources.values():
        if not local_dir.exists():
            raise RuntimeConfigError(
                f"resource {resource.id} for {resource.destination_path} is missing: "
                f"{local_dir} does not exist",
                location=function.arn,
            )
        target = os.path.normpath(resource.destination_path)
        binds.append({"source": str(local_dir), "target": target, "readonly": permission == "ro"})
        mounts.append((target, str(local_dir), permission))
    return binds, mounts


def _device_binds(function: Function, group: Group) -> tuple[list[dict], list[tuple[str, str, str]]]:
    """The launcher's device entries for the function's local devices, and the same as
    (path, path, permission) for the plan; a device missing on this host is an error."""
    devices = []
    mounts = []
    for path, permission in _devices(function, group):
        if not os.path.exists(path):
            raise RuntimeConfigError(
                f"local device {path} of function {function.name} does not exist on this host "
                "(GreengrassContainer mounts it into the Lambda's /dev)",
                location=function.arn,
            )
        devices.append({"path": path, "readonly": permission == "ro"})
        mounts.append((path, path, permission))
    return devices, mounts


def _unshare_command(rootless: bool) -> list[str]:
    unshare = shutil.which("unshare") or "unshare"
    user_namespace = ["--user", "--map-root-user"] if rootless else []
    return [unshare, *user_namespace, "--mount", "--propagation", "private", "--"]


def _ignored_run_as(function: Function, identity: Identity) -> str:
    if function.run_as_uid is None and function.run_as_gid is None or not identity.is_own or os.geteuid() == 0:
        return ""
    return f"; its RunAs {function.run_as_uid}:{function.run_as_gid} is not applied (simcore is not root)"


def _describe_rewrites(path_resources: Mapping[str, tuple[Resource, Path, str]]) -> str:
    if not path_resources:
        return ""
    pairs = ", ".join(
        f"{resource.destination_path} -> {local_dir}" for resource, local_dir, _ in path_resources.values()
    )
    return f" ({pairs})"


@functools.cache
def _container_unavailable_reason() -> str | None:
    """Why a mount namespace cannot be built here, or None; probes once with a real launch."""
    if sys.platform == "darwin":
        return "macOS has no Linux mount namespaces; run with --isolation off"
    if not sys.platform.startswith("linux"):
        return f"{sys.platform} has no Linux mount namespaces; run with --isolation off"
    if shutil.which("unshare") is None:
        return "the unshare command (util-linux) is not on PATH; install util-linux or use --isolation off"
    rootless = os.geteuid() != 0
    if rootless and _user_namespaces_disabled():
        return (
            f"simcore runs as uid {os.getuid()}, not root, and this kernel has unprivileged user namespaces "
            "disabled; run simcore as root or with --isolation off"
        )
    return _probe_launch(rootless)


def _user_namespaces_disabled() -> bool:
    for knob in ("/proc/sys/user/max_user_namespaces", "/proc/sys/kernel/unprivileged_userns_clone"):
        try:
            if Path(knob).read_text().strip() == "0":
                return True
        except OSError:
            continue
    return False


def _probe_launch(rootless: bool) -> str | None:
    """Launch a tiny process that must see a directory at a path that does not exist on the host."""
    with tempfile.TemporaryDirectory(prefix="simcore-isolation-probe-") as scratch:
        source = Path(scratch, "source")
        source.mkdir()
        target = f"/simcore-probe-{uuid.uuid4().hex}"
        spec = {
            "rootfs": str(Path(scratch, "rootfs")),
            "binds": [{"source": str(source), "target": target, "readonly": True}],
            "devices": [],
            "sysfs": False,
            "uid": None,
            "gid": None,
        }
        command = [
            *_unshare_command(rootless),
            sys.executable, "-I", "-S", str(LAUNCHER), json.dumps(spec), "--",
            sys.executable, "-I", "-S", "-c",
            f"import os, sys; sys.exit(0 if os.path.isdir({target!r}) else 3)",
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"a test launch in a mount namespace failed: {error}"
        if done.returncode != 0:
            said = (done.stderr.strip() or f"exit status {done.returncode}").splitlines()[-1]
            who = "" if rootless else " (as root)"
            return f"a test launch in a mount namespace{who} failed: {said}; run with --isolation off"
        if os.path.lexists(target):
            return f"the test launch left {target} on the host; refusing to use it"
    return None


LaunchPlanner = Callable[[Function], LaunchPlan]


def off_planner(function: Function) -> LaunchPlan:
    """The plan of a bare launch: no prefix, no rewrites, the identity a v1 core gives the function."""
    identity = resolve_identity(function, "off")
    switch = not identity.is_own
    return LaunchPlan(argv_prefix=[], env_rewrites={}, uid=identity.uid if switch else None,
                      gid=identity.gid if switch else None, description="", identity=identity)


def isolation_planner(
    group: Group, resource_dirs: Mapping[str, Path], mode: str | None, scratch_root: Path, *,
    allow_root: bool = False,
) -> LaunchPlanner:
    """A planner backed by `plan_launch` (mode None: each function's IsolationMode); `allow_root` is
    config.json's `allowFunctionsToRunAsRoot`."""

    def plan(function: Function) -> LaunchPlan:
        function_mode = mode_for(function, mode)  # type: ignore[arg-type]
        check_available(function_mode)
        return plan_launch(function, group, resource_dirs, function_mode, scratch_dir=scratch_root / function.name,
                           allow_root=allow_root)

    return plan
