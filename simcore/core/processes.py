"""The process trees of workers: signalling a whole tree, its resident memory from /proc, its output lines."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from typing import IO, Protocol

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_FORMATTED_LINE = re.compile(r"^\[\d{4}-\d\d-\d\dT[^\]]*\]\[([A-Z]+)\]-")


class LineSink(Protocol):
    """Where a function's output lines go (`simcore.core.logs.LogWriter`)."""

    def write_line(self, line: str) -> None: ...


def signal_tree(process: subprocess.Popen, signum: int) -> None:
    """Signal the worker's whole process group (it is a session leader), or just it if that fails."""
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)


def children_by_parent() -> dict[int, list[int]]:
    """pid → child pids, from one scan of /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def tree_rss_kb(root_pid: int, children: Mapping[int, list[int]]) -> int:
    """Resident memory of `root_pid` and all its descendants, in KB."""
    total_pages = 0
    stack = [root_pid]
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/statm", "rb") as statm:
                total_pages += int(statm.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        stack.extend(children.get(pid, ()))
    return total_pages * PAGE_SIZE // 1024


def start_pump(stream: IO[bytes] | None, sink: LineSink, level: str, name: str) -> threading.Thread:
    """A thread copying `stream`'s lines to `sink`; lines not yet in the core's format get `[ts][level]-`."""

    def pump() -> None:
        assert stream is not None
        with stream:
            for raw in stream:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                match = _FORMATTED_LINE.match(line)
                if match is not None:
                    enabled = getattr(sink, "enabled", None)
                    if enabled is not None and not _level_enabled(enabled, match.group(1)):
                        continue
                else:
                    line = _plain_line(level, line)
                try:
                    sink.write_line(line)
                except ValueError:
                    return

    thread = threading.Thread(target=pump, name=f"pump-{name}", daemon=True)
    thread.start()
    return thread


def _level_enabled(enabled: Callable[[str], bool], level: str) -> bool:
    try:
        return enabled(level)
    except (ValueError, KeyError):
        return True


def _plain_line(level: str, message: str) -> str:
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    return f"[{stamp}.{int(now * 1000) % 1000:03d}Z][{level}]-{message}"
