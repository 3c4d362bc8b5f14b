"""Stand-in interpreters for the probe in `simcore.core.interpreters`: small shell scripts, made executable.

`version_script` answers the probe (`-c <code>`) with a version and runs nothing else; `pyenv_shim` is what
pyenv's shim does for a version that is installed but not selected: one line on stderr and exit 127.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _write(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def version_script(path: Path, version: str) -> Path:
    """A script that prints `version` (as `sys.version_info[:2]` would) and exits 0."""
    return _write(path, f"printf '%s' '{version}'\n")


def pyenv_shim(path: Path, command: str = "python3.7") -> Path:
    """pyenv's answer for a version that is installed but not the selected one."""
    return _write(path, f"echo 'pyenv: {command}: command not found' >&2\nexit 127\n")


def python_then_shim(path: Path) -> Path:
    """Runs simcore's own Python until `swap_to_shim` turns it into a pyenv shim (the version was unselected)."""
    return _write(path, f'exec "{sys.executable}" "$@"\n')


def swap_to_shim(path: Path, command: str = "python3.8") -> None:
    """Rewrite the script at `path` in place into a pyenv shim (the probe's cached answer stays)."""
    pyenv_shim(path, command)
