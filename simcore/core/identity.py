"""Which user and group a Lambda runs as, as a v1 core decides it, and whether that user can reach its files.

A v1 core runs every function as its access identity: the function's `RunAs` (`Uid`, `Gid`), else the
group's (`DefaultConfig.Execution.RunAs`, merged into each function by the template builder), else the host's
`ggc_user`/`ggc_group`. It runs a function as root (uid or gid 0) only when three things hold: the function
is `NoContainer`, its RunAs says 0, and the core's config.json has `runtime.allowFunctionsToRunAsRoot: yes`.

simcore does the same in every isolation mode when it runs as root. A user or group it should use but the
host lacks is a StartError naming the fix. A non-root simcore cannot switch users: its Lambdas run as the
invoking user (docs/isolation.md, "RunAs").
"""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path

from simcore.errors import RuntimeConfigError, StartError
from simcore.group import Function

DEFAULT_USER = "ggc_user"
DEFAULT_GROUP = "ggc_group"

# The probe that the identity can start the interpreter, read simcore's runtime and list the code folder.
_PROBE = "import os, sys; open(sys.argv[1], 'rb').close(); os.listdir(sys.argv[2])"
_PROBE_TIMEOUT_S = 60


@dataclass(frozen=True)
class Identity:
    """The uid and gid a Lambda's process runs as, and where they came from (for the log line)."""

    uid: int
    gid: int
    source: str

    @property
    def is_root(self) -> bool:
        """Whether the process has root's user or group."""
        return self.uid == 0 or self.gid == 0

    @property
    def is_own(self) -> bool:
        """Whether this is simcore's own identity (no switch needed)."""
        return self.uid == os.getuid() and self.gid == os.getgid()

    def describe(self) -> str:
        """`uid 998 gid 997 (ggc_user/ggc_group)`."""
        return f"uid {self.uid} gid {self.gid} ({self.source})"


def resolve_identity(
    function: Function,
    mode: str,
    *,
    allow_root: bool = False,
    default_user: str = DEFAULT_USER,
    default_group: str = DEFAULT_GROUP,
) -> Identity:
    """The identity `function` runs as in isolation `mode` ("container", "nocontainer", "off").

    As root: RunAs Uid/Gid, else `default_user`/`default_group`; StartError when one of those is missing on
    the host, or when the result is root without NoContainer, RunAs 0 and `allow_root` (config.json's
    `allowFunctionsToRunAsRoot`) together. Not root: simcore's own identity; RuntimeConfigError when a
    container or NoContainer function asks for another, which a non-root process cannot become.
    """
    if os.geteuid() != 0:
        return _unprivileged(function, mode)
    uid = function.run_as_uid
    gid = function.run_as_gid
    if uid is None:
        uid = _uid_of(default_user)
        if uid is None:
            raise StartError(
                f"function {function.name} runs as {default_user} (a v1 core's default), which does not exist on "
                f"this host: create it with `groupadd --system {default_group} && useradd --system --gid "
                f"{default_group} --shell /usr/sbin/nologin {default_user}` (or `simcore setup-users`), or name "
                "another user with RunAs Uid/Gid in the template (the function's or DefaultConfig's Execution)",
                location=function.arn,
            )
    if gid is None:
        gid = _gid_of(default_group)
        if gid is None:
            raise StartError(
                f"function {function.name} runs in group {default_group} (a v1 core's default), which does not "
                f"exist on this host: create it with `groupadd --system {default_group}` (or `simcore "
                "setup-users`), or name another group with RunAs Gid in the template",
                location=function.arn,
            )
    identity = Identity(uid, gid, _source(function, default_user, default_group))
    if identity.is_root:
        _require_root_allowed(function, mode, identity, allow_root)
    return identity


def check_reachable(identity: Identity, interpreter: str, runtime_script: Path, code_dir: Path, name: str) -> None:
    """StartError unless `identity` can start `interpreter`, read `runtime_script` and list `code_dir`.

    Runs the interpreter once as that identity (a real launch, so every reason the kernel has counts: a
    0700 home folder above a venv, a code folder under another user's temporary directory).
    """
    if identity.is_own:
        return
    code_dir = Path(os.path.abspath(code_dir))
    command = [interpreter, "-I", "-S", "-c", _PROBE, os.path.abspath(runtime_script), str(code_dir)]
    try:
        # From the code folder, as the worker starts (a relative interpreter path resolves the same way).
        done = subprocess.run(command, cwd=code_dir, user=identity.uid, group=identity.gid, extra_groups=[],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=_PROBE_TIMEOUT_S, check=False)
    except OSError as error:
        said = f"{error.strerror}: {error.filename or interpreter}"
    except subprocess.TimeoutExpired:
        said = f"{interpreter} did not finish a start-up check in {_PROBE_TIMEOUT_S} s"
    else:
        if done.returncode == 0:
            return
        lines = done.stderr.strip().splitlines()
        said = lines[-1] if lines else f"exit status {done.returncode}"
    raise StartError(
        f"function {name} runs as {identity.describe()}, which cannot run it: {said}; its interpreter, "
        f"{runtime_script} and its code must be readable by that user (a venv under a 0700 home folder is not: "
        "install them elsewhere, or let the group through with `simcore setup-users --share PATH`)",
    )


def _unprivileged(function: Function, mode: str) -> Identity:
    own = Identity(os.getuid(), os.getgid(), "simcore's own user: not root, it cannot switch")
    wanted_uid = own.uid if function.run_as_uid is None else function.run_as_uid
    wanted_gid = own.gid if function.run_as_gid is None else function.run_as_gid
    if mode != "off" and (wanted_uid, wanted_gid) != (own.uid, own.gid):
        raise RuntimeConfigError(
            f"function {function.name} should run as uid {wanted_uid} gid {wanted_gid}, but simcore runs as uid "
            f"{own.uid} gid {own.gid} without root and cannot switch; run simcore as root or leave RunAs unset",
            location=function.arn,
        )
    return own


def _require_root_allowed(function: Function, mode: str, identity: Identity, allow_root: bool) -> None:
    missing = []
    if function.isolation_mode != "NoContainer" or mode == "container":
        missing.append("the function is not NoContainer" if function.isolation_mode != "NoContainer"
                       else "--isolation container puts it in a container")
    if function.run_as_uid != 0 and function.run_as_gid != 0:
        missing.append("its RunAs does not say 0")
    if not allow_root:
        missing.append('config.json\'s runtime.allowFunctionsToRunAsRoot is not "yes"')
    if missing:
        raise StartError(
            f"function {function.name} would run as root ({identity.describe()}), which a v1 core allows only "
            "for a NoContainer function whose RunAs is 0 with allowFunctionsToRunAsRoot \"yes\" in config.json: "
            f"{'; '.join(missing)}. Give it another RunAs, or meet all three",
            location=function.arn,
        )


def _source(function: Function, default_user: str, default_group: str) -> str:
    user = "RunAs Uid" if function.run_as_uid is not None else default_user
    group = "RunAs Gid" if function.run_as_gid is not None else default_group
    return f"{user}/{group}"


def _uid_of(user: str) -> int | None:
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


def _gid_of(group_name: str) -> int | None:
    try:
        return grp.getgrnam(group_name).gr_gid
    except KeyError:
        return None
