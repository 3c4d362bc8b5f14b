"""Really full disks for fault tests: a tiny tmpfs mounted for the test, filled byte-exact.

Mounting needs root; without it the test is skipped with the reason. Standard library and pytest only.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

MAX_FILLED_BYTES = 1024 * 1024  # fill() refuses anything bigger: it must never fill a shared disk


def mounted_tmpfs(mount_point: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of `size` (`64k`, `1m`) at `mount_point` (made here), yield it, unmount it."""
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def fill(disk: Path) -> Path:
    """Fill what is left of `disk` with one file, byte-exact; the file, to delete to free the space.

    Only ever a tiny tmpfs mounted by `mounted_tmpfs`: filling any other filesystem would fill a shared disk.
    """
    usage = os.statvfs(disk)
    assert os.path.ismount(disk) and usage.f_blocks * usage.f_frsize <= MAX_FILLED_BYTES, f"{disk} is not a tiny mount"
    filler = disk / "filler"
    with filler.open("ab", buffering=0) as handle:
        try:
            while True:
                handle.write(b"f" * 512)
        except OSError as error:
            assert error.errno == 28, error  # ENOSPC
    return filler
