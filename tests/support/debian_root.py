"""A throwaway Debian root for the EC2 boot test: made once by mmdebstrap from Debian's packages, cached as a
tarball, unpacked per session and entered with chroot in a mount namespace of its own.

The cache lies in `$RAIN_EDGE_ROOT_CACHE` (default `~/.cache/rain-edge/debian-root`), keyed by the suite and
the package list, so a change of either builds a new root. The root holds what an Ubuntu AMI brings or the
UserData's first step installs (python3-venv, pip, unzip, make, curl, systemd), plus the shared libraries a
pyenv-built CPython links to. Each `run`/`start` enters it anew: /proc, /dev and /sys from the host, the
binds given (read-only where asked), the host's resolv.conf and CA bundle (pip reaches its index as the
host does), a clean environment.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SUITE = "bookworm"
PACKAGES = ("python3-venv", "python3-pip", "unzip", "make", "curl", "ca-certificates", "systemd", "libssl3",
            "libffi8", "libsqlite3-0", "libbz2-1.0", "liblzma5", "libreadline8", "libncursesw6", "libuuid1")
# systemd's own PATH for a service, and what cloud-init gives UserData.
SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUILD_TIMEOUT_S = 900
# The host's way out, copied in: its resolver, and its CA bundle (a machine whose egress goes through a
# TLS-inspecting proxy adds that proxy's CA there, and pip in the root must trust it as the host's does).
NETWORK_FILES = ("/etc/resolv.conf", "/etc/ssl/certs/ca-certificates.crt")
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def cache_dir() -> Path:
    """Where built roots (and the boot test's pip cache) are kept between runs."""
    return Path(os.environ.get("RAIN_EDGE_ROOT_CACHE", Path.home() / ".cache" / "rain-edge" / "debian-root"))


def cached_root_tarball() -> Path:
    """The root's tarball, built by mmdebstrap on first use (one builder at a time across processes)."""
    key = hashlib.sha256(" ".join((SUITE, *PACKAGES)).encode()).hexdigest()[:12]
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    tarball = folder / f"{SUITE}-{key}.tar"
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not tarball.exists():
            mmdebstrap = shutil.which("mmdebstrap")
            if mmdebstrap is None:
                raise RuntimeError("mmdebstrap is missing: `make test` installs it as root "
                                   "(apt-get install mmdebstrap), or install it by hand")
            partial = tarball.with_suffix(".partial")
            subprocess.run([mmdebstrap, "--quiet", "--variant=minbase", f"--include={','.join(PACKAGES)}",
                            "--format=tar", SUITE, str(partial)], check=True, timeout=BUILD_TIMEOUT_S)
            partial.rename(tarball)
    return tarball


@dataclass(frozen=True)
class Bind:
    """A host path seen inside the root at `target`."""

    source: Path
    target: str
    read_only: bool = False


@dataclass
class DebianRoot:
    """An unpacked root at `path`; every command entered through `command` sees the same binds."""

    path: Path
    binds: list[Bind] = field(default_factory=list)

    @classmethod
    def unpack(cls, tarball: Path, path: Path) -> DebianRoot:
        """Unpack the cached tarball into the empty folder `path` (owners and modes kept: we are root)."""
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["tar", "-xf", str(tarball), "-C", str(path), "--numeric-owner"], check=True)
        for network_file in NETWORK_FILES:
            shutil.copyfile(network_file, path / network_file.lstrip("/"))
        # What every image has and minbase leaves out: the loopback names (the Lambdas reach the IPC at localhost).
        (path / "etc" / "hosts").write_text(HOSTS)
        return cls(path)

    def inside(self, target: str) -> Path:
        """The host path of `target` in the root."""
        return self.path / target.lstrip("/")

    def command(self, argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: str = "/") -> list[str]:
        """The host command that runs `argv` in the root, in a new mount namespace, with only `env`."""
        lines = ["set -e", 'root="$1"; shift',
                 'mount -t proc proc "$root/proc"', 'mount --rbind /dev "$root/dev"',
                 'mount --rbind /sys "$root/sys"']
        for bind in self.binds:
            target = shlex.quote(str(self.inside(bind.target)))
            kind = "-d" if bind.source.is_dir() else "-f"
            make = f"mkdir -p {target}" if kind == "-d" else f"mkdir -p $(dirname {target}); touch {target}"
            lines += [f"[ {kind} {target} ] || {{ {make}; }}", f"mount --bind {shlex.quote(str(bind.source))} {target}"]
            if bind.read_only:
                lines.append(f"mount -o remount,bind,ro {target}")
        variables = [f"{name}={value}" for name, value in {"PATH": SERVICE_PATH, **(env or {})}.items()]
        lines.append('exec chroot "$root" /usr/bin/env -i "$@"')
        inner = ["/bin/sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", cwd, *argv]
        return ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", "\n".join(lines), "sh",
                str(self.path), *variables, *inner]

    def run(self, argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: str = "/",
            timeout: float = 600) -> subprocess.CompletedProcess:
        """Run `argv` in the root to its end; its output, combined, as text."""
        return subprocess.run(self.command(argv, env, cwd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=timeout, check=False)

    def start(self, argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: str = "/",
              output: Path | None = None) -> subprocess.Popen:
        """Start `argv` in the root; every exec keeps the pid, so a signal to it reaches `argv` itself."""
        with contextlib.ExitStack() as stack:
            sink = stack.enter_context(output.open("ab")) if output else subprocess.DEVNULL
            return subprocess.Popen(self.command(argv, env, cwd), stdout=sink, stderr=subprocess.STDOUT)
