"""Which interpreter runs a Lambda `Runtime` (python3.8...): found once, in a documented order, and tried.

A candidate serves a runtime only once it has been run: `<candidate> -c` prints its version, which must be the
runtime's major.minor. That turns away a pyenv shim for a version that is installed but not selected (it
prints `pyenv: python3.7: command not found` and exits 127), a venv whose interpreter was removed, and a
`python3.8` that is really another version. Each path is tried once per process (the answer is cached).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from simcore.defaults import SUPPORTED_RUNTIME_PATTERN
from simcore.errors import RuntimeConfigError
from simcore.group import Group
from simcore.paths import PROJECT_ROOT

_RUNTIME_PATTERN = re.compile(r"python(\d)\.(\d+)")
_SUPPORTED = re.compile(SUPPORTED_RUNTIME_PATTERN)
# Printing a version takes milliseconds; a candidate that takes longer is not one to run Lambdas with.
PROBE_TIMEOUT_S = 10.0
_PROBE_CODE = "import sys; sys.stdout.write('%d.%d' % sys.version_info[:2])"
_probed: dict[str, str] = {}  # path -> "X.Y" it runs, or "!<why it cannot run>"
_probed_lock = threading.Lock()


@dataclass(frozen=True)
class Resolution:
    """The interpreter chosen for a runtime, a warning when it is a fallback, and the candidates turned away."""

    interpreter: str
    warning: str | None
    refused: tuple[str, ...] = ()


def probe(path: str) -> str:
    """The "X.Y" version the interpreter at `path` runs, or "!" and why it cannot run; cached per path."""
    with _probed_lock:
        if path in _probed:
            return _probed[path]
    try:
        result = subprocess.run(
            [path, "-c", _PROBE_CODE], stdin=subprocess.DEVNULL, capture_output=True, timeout=PROBE_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        answer = f"!did not print its version within {PROBE_TIMEOUT_S:g} s"
    except OSError as error:
        answer = f"!cannot be run: {error.strerror or error}"
    else:
        output = result.stdout.decode("utf-8", "replace").strip()
        if result.returncode == 0 and re.fullmatch(r"\d+\.\d+", output):
            answer = output
        else:
            lines = (result.stderr or result.stdout).decode("utf-8", "replace").strip().splitlines()
            answer = f"!exited with code {result.returncode}" + (f": {lines[-1][:200]}" if lines else "")
    with _probed_lock:
        _probed[path] = answer
    return answer


def forget_probes() -> None:
    """Drop the cached probe answers (a test that changes an interpreter on disk; a reinstall)."""
    with _probed_lock:
        _probed.clear()


def runtime_problem(runtime: str) -> str | None:
    """Why simcore can never run a Lambda of this `Runtime`, whatever is installed; None when it can."""
    if _SUPPORTED.fullmatch(runtime):
        return None
    if re.fullmatch(r"python2(\.\d+)?", runtime):
        return (f"Runtime {runtime} cannot run on simcore: its Lambda runtime needs Python 3; port the function "
                "to python3.8 (Greengrass v1's newest runtime) or python3.7")
    return f"Runtime {runtime!r} is not a Python runtime simcore can run (python3.x, e.g. python3.8)"


def resolve_interpreter(
    runtime: str,
    explicit: Mapping[str, str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    search_dirs: Iterable[Path] | None = None,
) -> tuple[str, str | None]:
    """The interpreter for a Lambda `Runtime` (e.g. `python3.8`) and a warning when it is a fallback.

    See `resolve`; this is its (interpreter, warning) pair.
    """
    resolution = resolve(runtime, explicit, environ=environ, search_dirs=search_dirs)
    return resolution.interpreter, resolution.warning


def resolve(
    runtime: str,
    explicit: Mapping[str, str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    search_dirs: Iterable[Path] | None = None,
) -> Resolution:
    """The interpreter for a Lambda `Runtime`, the first candidate that runs the runtime's Python version.

    Order: `explicit[runtime]` > `$SIMCORE_PYTHON<XY>` (these two must run, or RuntimeConfigError says why) >
    `.venv-py<XY>/bin/python` under the current directory, then under the project root (a venv with
    greengrasssdk and the Lambdas' packages, as a real core had them system-wide) > `python<X.Y>` on PATH >
    `$PYENV_ROOT/versions/<X.Y>[.*]/bin/python` (`PYENV_ROOT` defaults to `~/.pyenv`) > the interpreter
    simcore runs in (with a warning: the Lambda may see a different Python). A candidate that does not run
    the version is skipped, and named in the warning.
    """
    problem = runtime_problem(runtime)
    match = _RUNTIME_PATTERN.fullmatch(runtime)
    if problem or match is None:
        raise RuntimeConfigError(problem or f"Runtime {runtime!r} is not a Python runtime simcore can run")
    major, minor = match.groups()
    version = f"{major}.{minor}"
    explicit = explicit or {}
    environ = os.environ if environ is None else environ
    variable = f"SIMCORE_PYTHON{major}{minor}"
    if runtime in explicit:
        return _required(explicit[runtime], f"the interpreter given for {runtime}", version)
    if environ.get(variable):
        return _required(environ[variable], f"${variable}", version)
    refused: list[str] = []
    for candidate in _candidates(major, minor, environ, search_dirs):
        answer = probe(candidate)
        if answer == version:
            return Resolution(candidate, None, tuple(refused))
        refused.append(f"{candidate} {_why(answer, version)}")
    skipped = f"; skipped {'; '.join(refused)}" if refused else ""
    warning = (
        f"No interpreter for {runtime} (tried {variable}, .venv-py{major}{minor}, "
        f"python{version} on PATH, pyenv{skipped}): its Lambdas run on simcore's own Python "
        f"{sys.version_info.major}.{sys.version_info.minor}. Install Python {version} (e.g. `pyenv install "
        f"{version}`) or pass --runtime {runtime}=PATH"
    )
    return Resolution(sys.executable, warning, tuple(refused))


def check_runtimes(group: Group, explicit: Mapping[str, str] | None = None) -> list[str]:
    """Resolve every function's runtime once, as the core will: RuntimeConfigError (naming the function and
    the fix) for one no interpreter can serve; the warnings of those that fall back to simcore's Python."""
    warnings: dict[str, str] = {}
    for function in group.functions:
        try:
            resolution = resolve(function.runtime, explicit)
        except RuntimeConfigError as error:
            raise RuntimeConfigError(error.message, location=f"function {function.name} (Runtime)") from None
        if resolution.warning:
            warnings.setdefault(function.runtime, f"function {function.name}: {resolution.warning}")
    return list(warnings.values())


def _candidates(major: str, minor: str, environ: Mapping[str, str], search_dirs: Iterable[Path] | None) -> list[str]:
    dirs = list(search_dirs) if search_dirs is not None else [Path.cwd(), PROJECT_ROOT]
    found = [str(Path(directory) / f".venv-py{major}{minor}" / "bin" / "python") for directory in dirs]
    found = [path for path in found if os.path.exists(path)]
    on_path = shutil.which(f"python{major}.{minor}")
    if on_path:
        found.append(on_path)
    # 3.1 must not pick 3.13: the version is X.Y exactly or X.Y.<patch>; the newest patch first.
    versions = Path(environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found.extend(sorted(
        glob.glob(f"{versions}/{major}.{minor}/bin/python") + glob.glob(f"{versions}/{major}.{minor}.*/bin/python"),
        reverse=True,
    ))
    return list(dict.fromkeys(found))


def _why(answer: str, version: str) -> str:
    return answer[1:] if answer.startswith("!") else f"runs Python {answer}, not {version}"


def _required(path: str, what: str, version: str) -> Resolution:
    """`path` (looked up on PATH when bare), which must run a Python of `version`'s major: else
    RuntimeConfigError. Another minor version is the operator's choice (simcore's own 3.11 for python3.8
    Lambdas, say), taken as given."""
    resolved = shutil.which(path) or path
    if not os.access(resolved, os.X_OK) or os.path.isdir(resolved):
        raise RuntimeConfigError(f"{what} ({path}) is not an executable file")
    answer = probe(resolved)
    if answer.startswith("!") or answer.split(".")[0] != version.split(".")[0]:
        raise RuntimeConfigError(
            f"{what} ({path}) cannot serve it: {_why(answer, version)}; give one that runs Python {version} "
            f"(--runtime python{version}=PATH)"
        )
    return Resolution(resolved, None)
