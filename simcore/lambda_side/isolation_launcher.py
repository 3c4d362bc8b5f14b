"""Builds a GreengrassContainer-like filesystem view in a fresh mount namespace, then execs the Lambda.

Run by simcore as `unshare --mount --propagation private -- python -I -S isolation_launcher.py SPEC -- CMD...`
(see simcore/isolation.py and docs/isolation.md). Standard library only, Python 3.8-compatible: it runs before
anything of the Lambda's is importable, under whatever interpreter simcore chose.

SPEC is a JSON object:
  rootfs   a host directory (in simcore's scratch space) on which the new root tmpfs is mounted
  binds    [{"source": host path, "target": absolute path the Lambda sees, "readonly": bool}]
  devices  [{"path": "/dev/...", "readonly": bool}]   local device resources, shown at their own path
  sysfs    bool: show the host's /sys (the function's AccessSysfs)
  uid, gid ints or null: the identity the Lambda runs as (dropped to after the mounts)
  groups    list of ints (optional): its supplementary groups (a device's owning group, AutoAddGroupOwner)

The new root is a tmpfs that holds one bind mount per entry of the host's `/`, so every host path still
resolves; only the directories on the way to a target that does not exist on the host (e.g. `/` and `/ml` for
`/ml/rain`) are rebuilt in the tmpfs entry by entry, so mount points are created there and never on the host.
`/dev` is a minimal private one (null, zero, full, random, urandom, tty, pts, shm, fd) plus granted devices.
The new root is then moved onto `/` and chrooted into, as switch_root does.

Failures print one line starting with `isolation_launcher:` on stderr and exit with status 125.
"""

import ctypes
import json
import os
import stat
import sys

EXIT_LAUNCH_FAILED = 125

# <sys/mount.h>
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_RELATIME = 1 << 21

# statvfs f_flag bits that a read-only remount must keep: in a user namespace they are locked, and
# leaving one out makes the remount fail with EPERM.
_LOCKED_FLAGS = (
    (os.ST_NOSUID, MS_NOSUID),
    (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_NOATIME, MS_NOATIME),
    (os.ST_NODIRATIME, MS_NODIRATIME),
    (os.ST_RELATIME, MS_RELATIME),
)

# What a process expects in /dev whatever it does; everything else is hidden unless granted.
_STANDARD_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
_DEV_SYMLINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
)


class LaunchError(Exception):
    """A step of building the Lambda's view failed; the message says which and why."""


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)


def _encode(text):
    return None if text is None else os.fsencode(text)


def mount(source, target, fstype, flags, data=None):
    """mount(2), raising LaunchError that names both paths."""
    if _libc.mount(_encode(source), _encode(target), _encode(fstype), flags, _encode(data)) != 0:
        errno = ctypes.get_errno()
        raise LaunchError("mount {} on {} failed: {}".format(source, target, os.strerror(errno)))


def bind(source, target, readonly, recursive=False):
    """Bind `source` at `target`; a read-only bind is a second remount, as mount(8) does it."""
    mount(source, target, None, MS_BIND | (MS_REC if recursive else 0))
    if readonly:
        kept = 0
        current = os.statvfs(target).f_flag
        for statvfs_flag, mount_flag in _LOCKED_FLAGS:
            if current & statvfs_flag:
                kept |= mount_flag
        mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept)


def make_mount_point(path, like):
    """Create an empty directory or file at `path` to bind `like` onto (bind needs matching kinds)."""
    if os.path.isdir(like):
        os.makedirs(path, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.lexists(path):
            with open(path, "w"):
                pass


def host_target(target):
    """The host path a target stands for: symlinks in the part that exists are resolved."""
    return os.path.realpath(os.path.normpath(target))


def rebuilt_directories(targets):
    """Host directories to rebuild in the tmpfs: each ancestor of a target missing on the host."""
    rebuilt = {"/"}
    for target in targets:
        if os.path.lexists(target):
            continue
        ancestor = os.path.dirname(target)
        while not os.path.lexists(ancestor):
            ancestor = os.path.dirname(ancestor)
        while True:
            rebuilt.add(ancestor)
            if ancestor == "/":
                break
            ancestor = os.path.dirname(ancestor)
    return rebuilt


def replicate(host_dir, new_dir, rebuilt, skip):
    """Show each entry of `host_dir` at `new_dir`: symlinks copied, rebuilt dirs recursed, the rest bound."""
    for name in sorted(os.listdir(host_dir)):
        host_path = os.path.join(host_dir, name)
        new_path = os.path.join(new_dir, name)
        if host_path in skip:
            continue
        mode = os.lstat(host_path).st_mode
        if stat.S_ISLNK(mode):
            os.symlink(os.readlink(host_path), new_path)
        elif stat.S_ISDIR(mode):
            os.mkdir(new_path)
            if host_path in rebuilt:
                replicate(host_path, new_path, rebuilt, skip)
            else:
                bind(host_path, new_path, readonly=False, recursive=True)
        else:
            make_mount_point(new_path, host_path)
            bind(host_path, new_path, readonly=False, recursive=True)


def build_dev(rootfs, devices):
    """A private /dev with the standard nodes and the granted devices only."""
    dev = os.path.join(rootfs, "dev")
    os.mkdir(dev)
    for name in _STANDARD_DEVICES:
        host_node = os.path.join("/dev", name)
        if os.path.exists(host_node):
            make_mount_point(os.path.join(dev, name), host_node)
            bind(host_node, os.path.join(dev, name), readonly=False)
    for name, link_target in _DEV_SYMLINKS:
        os.symlink(link_target, os.path.join(dev, name))
    if os.path.isdir("/dev/pts"):
        os.mkdir(os.path.join(dev, "pts"))
        bind("/dev/pts", os.path.join(dev, "pts"), readonly=False, recursive=True)
    os.mkdir(os.path.join(dev, "shm"))
    mount("tmpfs", os.path.join(dev, "shm"), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    for device in devices:
        path = host_target(device["path"])
        if not os.path.exists(path):
            raise LaunchError("local device {} does not exist on this host".format(device["path"]))
        new_path = rootfs + path
        make_mount_point(new_path, path)
        bind(path, new_path, readonly=bool(device.get("readonly")))


def build_root(spec):
    """Mount the tmpfs root and fill it; returns its path."""
    rootfs = spec["rootfs"]
    binds = spec.get("binds", [])
    devices = spec.get("devices", [])
    for entry in binds:
        if not os.path.exists(entry["source"]):
            raise LaunchError("resource source {} does not exist".format(entry["source"]))
    os.makedirs(rootfs, exist_ok=True)
    mount("tmpfs", rootfs, "tmpfs", MS_NOSUID, "mode=0755")
    placed = [(host_target(entry["target"]), entry) for entry in binds]
    skip = {"/dev"} if spec.get("sysfs") else {"/dev", "/sys"}
    replicate("/", rootfs, rebuilt_directories([target for target, _ in placed]), skip)
    if not spec.get("sysfs"):
        os.mkdir(os.path.join(rootfs, "sys"))
    build_dev(rootfs, devices)
    # Shallow targets first, so a resource bound inside another one's mount point finds its parent.
    for target, entry in sorted(placed, key=lambda pair: pair[0].count("/")):
        new_target = rootfs + target
        make_mount_point(new_target, entry["source"])
        bind(entry["source"], new_target, readonly=bool(entry.get("readonly")))
    return rootfs


def enter_root(rootfs):
    """Make `rootfs` the root of this mount namespace (switch_root's move + chroot) and keep the cwd."""
    working_dir = os.getcwd()
    os.chdir(rootfs)
    mount(rootfs, "/", None, MS_MOVE)
    os.chroot(".")
    os.chdir(working_dir if os.path.isdir(working_dir) else "/")


def drop_privileges(uid, gid, groups=()):
    """Become the function's RunAs identity; supplementary groups are only `groups` (root's never follow)."""
    if gid is not None:
        os.setgroups(list(groups))
        os.setgid(gid)
    if uid is not None:
        os.setuid(uid)


def refuse_shared_namespace():
    """Mounting in simcore's own namespace would change the host: insist on a fresh one."""
    try:
        mine = os.readlink("/proc/self/ns/mnt")
        parents = os.readlink("/proc/{}/ns/mnt".format(os.getppid()))
    except OSError:
        return  # cannot compare (e.g. hidden /proc): unshare put us here, trust it
    if mine == parents:
        raise LaunchError("not in a private mount namespace: run me under `unshare --mount`")


def main(argv):
    """Parse `SPEC -- CMD...`, build the view, exec CMD; returns an exit status only on failure."""
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write("usage: isolation_launcher.py SPEC_JSON -- COMMAND [ARGS...]\n")
        return 2
    spec = json.loads(argv[1])
    command = argv[3:]
    try:
        refuse_shared_namespace()
        enter_root(build_root(spec))
        drop_privileges(spec.get("uid"), spec.get("gid"), spec.get("groups") or ())
        os.execvp(command[0], command)
    except (LaunchError, OSError) as error:
        sys.stderr.write("isolation_launcher: {}\n".format(error))
        sys.stderr.flush()
    return EXIT_LAUNCH_FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv))
