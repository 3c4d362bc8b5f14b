"""A core in a process of its own, for tests that measure what the core holds (RSS, threads) under attack.

`python tests/support/core_process.py <runtime_root> [<read timeout s>]` starts a `Core` for a group of two
on-demand functions (no worker starts until one is invoked), prints one JSON line
`{"port", "tokens": {name: token}}`, then answers commands read from stdin, one JSON line each:

- `status`: `{"rss_kb", "peak_kb", "threads", "core"}` — VmRSS and VmHWM from /proc/self/status, the
  process's thread count (/proc/self/task) and `Core.status()`;
- `reset_peak`: resets VmHWM to the current RSS (writes 5 to /proc/self/clear_refs), so a later `peak_kb`
  is the highest RSS since, however briefly it was reached.

It stops the core and exits at EOF on stdin. `CoreProcess` is the test side.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1]
FUNCTIONS = ("victim", "bystander")


def _memory_kb() -> dict[str, int]:
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return {"rss_kb": found["VmRSS"], "peak_kb": found["VmHWM"]}


def _serve(runtime_root: Path, read_timeout_s: float | None) -> None:
    sys.path[:0] = [str(TESTS), str(TESTS.parent)]
    from lambdas_fixtures.harness import function_arn, make_function, make_group

    from simcore.core.assemble import Core

    group = make_group([make_function(name, "compat", "echo.function_handler") for name in FUNCTIONS])
    core = Core(group, runtime_root=runtime_root)
    core.start()
    if read_timeout_s is not None:  # a test that holds connections longer than the default read timeout
        core.server.read_timeout_s = read_timeout_s
    tokens = {name: core.issue_token(function_arn(name)) for name in FUNCTIONS}
    print(json.dumps({"port": core.ipc_port, "tokens": tokens}), flush=True)
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "reset_peak":
                Path("/proc/self/clear_refs").write_text("5")
                answer: dict[str, Any] = {"ok": True}
            elif command == "status":
                answer = {**_memory_kb(), "threads": len(os.listdir("/proc/self/task")), "core": core.status()}
            else:
                answer = {"error": f"unknown command {command!r}"}
            print(json.dumps(answer), flush=True)
    finally:
        core.stop()


class CoreProcess:
    """The test side: start the core process, ask it for its status, stop it."""

    def __init__(self, runtime_root: Path, read_timeout_s: float | None = None):
        extra = [] if read_timeout_s is None else [str(read_timeout_s)]
        self._process = subprocess.Popen(
            [sys.executable, __file__, str(runtime_root), *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=TESTS.parent,
        )
        hello = json.loads(self._process.stdout.readline())
        self.port: int = hello["port"]
        self.tokens: dict[str, str] = hello["tokens"]

    def ask(self, command: str) -> dict[str, Any]:
        """Send one command; its JSON answer."""
        self._process.stdin.write(command + "\n")
        self._process.stdin.flush()
        return json.loads(self._process.stdout.readline())

    def ipc(self) -> dict[str, Any]:
        """The core's IPC counters."""
        return self.ask("status")["core"]["ipc"]

    def stop(self) -> None:
        """Close stdin (the core stops) and wait for the process."""
        self._process.stdin.close()
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


if __name__ == "__main__":
    _serve(Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else None)
