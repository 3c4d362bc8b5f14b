"""Prepare a host to run Lambdas as `ggc_user`: the users, and a way through to their interpreters and code.

`ensure_lambda_users` creates `ggc_group` and `ggc_user` as the EC2 bootstrap does
(group/bootstrap-core.sh: `groupadd --system`, `useradd --system --gid ggc_group --shell
/usr/sbin/nologin`). `share_with_group` lets that group *pass through* (search, never list) every folder above
a path it must reach, with one POSIX ACL entry per folder: a development machine keeps its venvs under a
0700 home folder (`/root/.pyenv/...`) that `ggc_user` could not enter. Only folders the group cannot pass
already are touched, and nothing in them becomes readable that was not readable by others before.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import shutil
import stat
import struct
import subprocess
from pathlib import Path

from simcore.core.identity import DEFAULT_GROUP, DEFAULT_USER
from simcore.errors import StartError

# The kernel's POSIX ACL extended attribute (linux/posix_acl_xattr.h): a version, then sorted entries.
_ACL_XATTR = "system.posix_acl_access"
_ACL_VERSION = 2
_ACL_HEADER = struct.Struct("<I")
_ACL_ENTRY = struct.Struct("<HHI")
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_UNDEFINED_ID = 0xFFFFFFFF
_SEARCH = 0o1


def ensure_lambda_users(user: str = DEFAULT_USER, group: str = DEFAULT_GROUP) -> list[str]:
    """Create `group` and `user` (system accounts, no login shell) if missing; the commands run.

    StartError when not root or when groupadd/useradd are missing or fail.
    """
    done: list[str] = []
    if _missing_group(group):
        done.append(_run(["groupadd", "--system", group]))
    if _missing_user(user):
        done.append(_run(["useradd", "--system", "--gid", group, "--shell", "/usr/sbin/nologin", user]))
    return done


def share_with_group(path: str | Path, group: str = DEFAULT_GROUP) -> list[Path]:
    """Let `group` search every folder above `path` (and above where its symlinks lead); the folders changed.

    Entries are added to each folder's access ACL (merged with one already there); the folder's owner,
    group and other bits are kept. StartError when the file system has no ACLs or the group is missing.
    """
    gid = _gid(group)
    changed: list[Path] = []
    for folder in _folders_on_the_way(Path(path)):
        if _group_can_search(folder, gid):
            continue
        _add_group_search(folder, gid)
        changed.append(folder)
    return changed


def _folders_on_the_way(path: Path) -> list[Path]:
    """Every folder the kernel walks to reach `path`: the parents of the path as given and of its target."""
    folders: list[Path] = []
    for candidate in (Path(os.path.abspath(path)), path.resolve()):
        start = candidate if candidate.is_dir() else candidate.parent
        for folder in (start, *start.parents):
            if folder not in folders:
                folders.append(folder)
    return folders


def _group_can_search(folder: Path, gid: int) -> bool:
    info = folder.stat()
    if info.st_mode & stat.S_IXOTH:
        return True
    if info.st_gid == gid and info.st_mode & stat.S_IXGRP:
        return True
    entries = _read_acl(folder)
    return any(tag == _GROUP and entry_id == gid and perm & _SEARCH for tag, perm, entry_id in entries)


def _add_group_search(folder: Path, gid: int) -> None:
    mode = folder.stat().st_mode
    entries = {(tag, entry_id): perm for tag, perm, entry_id in _read_acl(folder)}
    if not entries:
        entries = {
            (_USER_OBJ, _UNDEFINED_ID): (mode >> 6) & 0o7,
            (_GROUP_OBJ, _UNDEFINED_ID): (mode >> 3) & 0o7,
            (_OTHER, _UNDEFINED_ID): mode & 0o7,
        }
    entries[(_GROUP, gid)] = entries.get((_GROUP, gid), 0) | _SEARCH
    # The mask bounds every named entry and the owning group: it must let the new entry through and
    # keep what the owning group had.
    named = [perm for (tag, _), perm in entries.items() if tag in (_USER, _GROUP, _GROUP_OBJ)]
    entries[(_MASK, _UNDEFINED_ID)] = entries.get((_MASK, _UNDEFINED_ID), 0) | _SEARCH | _or_all(named)
    blob = _ACL_HEADER.pack(_ACL_VERSION) + b"".join(
        _ACL_ENTRY.pack(tag, perm, entry_id) for (tag, entry_id), perm in sorted(entries.items())
    )
    try:
        os.setxattr(folder, _ACL_XATTR, blob)
    except OSError as error:
        if error.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            raise StartError(
                f"{folder}: its file system has no POSIX ACLs, so ggc_group cannot be let through; move the "
                "interpreter or code where others may enter (mode o+x on each folder above it)"
            ) from None
        raise StartError(f"cannot let the Lambdas' group through {folder}: {error.strerror}") from None


def _or_all(perms: list[int]) -> int:
    combined = 0
    for perm in perms:
        combined |= perm
    return combined


def _read_acl(folder: Path) -> list[tuple[int, int, int]]:
    try:
        blob = os.getxattr(folder, _ACL_XATTR)
    except OSError:
        return []  # none, or no ACL support: the mode bits are the whole story
    if len(blob) < _ACL_HEADER.size or _ACL_HEADER.unpack_from(blob)[0] != _ACL_VERSION:
        return []
    body = blob[_ACL_HEADER.size:]
    return [_ACL_ENTRY.unpack_from(body, offset) for offset in range(0, len(body) - _ACL_ENTRY.size + 1,
                                                                        _ACL_ENTRY.size)]


def _run(command: list[str]) -> str:
    shown = " ".join(command)
    if os.geteuid() != 0:
        raise StartError(f"`{shown}` needs root; run it as root, or run simcore as yourself (Lambdas then run "
                         "as you)")
    if shutil.which(command[0]) is None:
        raise StartError(f"{command[0]} is not on PATH (package passwd); create the user by hand: `{shown}`")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        said = (done.stderr.strip() or f"exit status {done.returncode}").splitlines()[-1]
        raise StartError(f"`{shown}` failed: {said}")
    return shown


def _missing_group(group: str) -> bool:
    try:
        grp.getgrnam(group)
    except KeyError:
        return True
    return False


def _missing_user(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return True
    return False


def _gid(group: str) -> int:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise StartError(f"group {group} does not exist: create it with `groupadd --system {group}`") from None
