"""Files and folders only the core's own user may read: state databases, logs, the core's `var/`.

A Lambda runs as another user (`ggc_user`, simcore.core.identity); it must not read the shadows, the spool,
the logs of other functions or the control token. Modes are set exactly (whatever the umask), and an
existing file or folder from an older simcore that made it 0644/0755 is narrowed when it is opened again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700

# SQLite's companions of a database: it creates them with the database file's own mode.
_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_dir(path: str | Path) -> Path:
    """`path` as a folder that only its owner can enter (mode 0700); missing parents are made 0700 too."""
    path = Path(path)
    missing = [folder for folder in (path, *path.parents) if not folder.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
        os.chmod(folder, PRIVATE_DIR_MODE)  # mkdir's mode is filtered by the umask
    os.chmod(path, PRIVATE_DIR_MODE)  # it may have existed, made by an older simcore
    return path


def private_file(path: str | Path) -> Path:
    """`path` as an existing file of mode 0600 (created empty if missing; a missing folder is made 0700).

    For an SQLite database, call it before `sqlite3.connect`: SQLite gives the `-wal`, `-shm` and
    `-journal` files it creates the database's mode, and those left by an older run are narrowed here.
    """
    path = Path(path)
    if not path.parent.exists():
        private_dir(path.parent)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        os.fchmod(descriptor, PRIVATE_FILE_MODE)
    finally:
        os.close(descriptor)
    for suffix in _SQLITE_COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            os.chmod(companion, PRIVATE_FILE_MODE)
    return path


def open_private_append(path: str | Path) -> BinaryIO:
    """`path` opened for appending bytes, created with mode 0600 (an existing file is narrowed to 0600)."""
    path = Path(path)
    if not path.parent.exists():
        private_dir(path.parent)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        os.fchmod(descriptor, PRIVATE_FILE_MODE)
        return os.fdopen(descriptor, "ab")
    except BaseException:
        os.close(descriptor)
        raise
