"""Which interpreter runs a Lambda `Runtime` (python3.8...): found once, in a documented order."""

from __future__ import annotations

import glob
import os
import re
import shutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from simcore.errors import RuntimeConfigError
from simcore.paths import PROJECT_ROOT

_RUNTIME_PATTERN = re.compile(r"python(\d)\.(\d+)")


def resolve_interpreter(
    runtime: str,
    explicit: Mapping[str, str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    search_dirs: Iterable[Path] | None = None,
) -> tuple[str, str | None]:
    """The interpreter for a Lambda `Runtime` (e.g. `python3.8`) and a warning when it is a fallback.

    Order: `explicit[runtime]` > `$SIMCORE_PYTHON<XY>` > `.venv-py<XY>/bin/python` under the current
    directory, then under the project root (a venv with greengrasssdk and the Lambdas' packages, as a real
    core had them system-wide) > `python<X.Y>` on PATH > `$PYENV_ROOT/versions/<X.Y>[.*]/bin/python`
    (`PYENV_ROOT` defaults to `~/.pyenv`) >
    the interpreter simcore runs in (with a warning: the Lambda may see a different Python).
    """
    match = _RUNTIME_PATTERN.fullmatch(runtime)
    if match is None:
        raise RuntimeConfigError(f"Runtime {runtime!r} is not a Python runtime simcore can run (python3.x)")
    major, minor = match.groups()
    explicit = explicit or {}
    environ = os.environ if environ is None else environ
    if runtime in explicit:
        return _usable(explicit[runtime], f"the interpreter given for {runtime}"), None
    variable = f"SIMCORE_PYTHON{major}{minor}"
    if environ.get(variable):
        return _usable(environ[variable], f"${variable}"), None
    dirs = list(search_dirs) if search_dirs is not None else [Path.cwd(), PROJECT_ROOT]
    for directory in dirs:
        candidate = Path(directory) / f".venv-py{major}{minor}" / "bin" / "python"
        if candidate.exists():
            return str(candidate), None
    on_path = shutil.which(f"python{major}.{minor}")
    if on_path:
        return on_path, None
    # 3.1 must not pick 3.13: the version is X.Y exactly or X.Y.<patch>.
    versions = Path(environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    pyenv = sorted(
        glob.glob(f"{versions}/{major}.{minor}/bin/python") + glob.glob(f"{versions}/{major}.{minor}.*/bin/python")
    )
    if pyenv:
        return pyenv[-1], None
    warning = (
        f"No interpreter for {runtime} (tried {variable}, .venv-py{major}{minor}, "
        f"python{major}.{minor} on PATH, pyenv): its Lambdas run on simcore's own Python "
        f"{sys.version_info.major}.{sys.version_info.minor}"
    )
    return sys.executable, warning


def _usable(path: str, what: str) -> str:
    resolved = shutil.which(path) or path
    if not os.access(resolved, os.X_OK):
        raise RuntimeConfigError(f"{what} ({path}) is not an executable file")
    return resolved
