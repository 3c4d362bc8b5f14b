"""What every command family shares: exit codes, the default root, `K=V` arguments."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from simcore.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_NOT_RUNNING

__all__ = ["DEFAULT_ROOT", "EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_NOT_RUNNING", "key_values"]

DEFAULT_ROOT = Path(".simcore")


def key_values(items: Sequence[str], what: str) -> dict[str, str]:
    """`K=V` strings as a dict; a clear usage error for anything else."""
    parsed = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise SystemExit(f"simcore: {what} must look like KEY=VALUE, got {item!r}")
        parsed[key] = value
    return parsed
