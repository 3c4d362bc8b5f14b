"""A worker's IPC token is readable only by root.

The token travels in the worker's environment (`AWS_CONTAINER_AUTHORIZATION_TOKEN`), as on a v1 core. The
kernel makes `/proc/<pid>/environ` mode 0400, owned by the process's user, and the Lambda runtime makes
its process non-dumpable at once, which hands its `/proc/<pid>` files to root: not even another function
running as the same user (every one is ggc_user by default) can read it. These tests run a worker as
another `RunAs` uid (NoContainer, and GreengrassContainer where available) and check that nobody else —
another unprivileged user, the worker's own user — can read it, and that the token appears nowhere a
stranger could look (the command line, files under the core's root). Needs root to run as another uid.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from lambdas_fixtures.harness import function_arn, make_group
from support.procs import children
from support.waiting import wait_until

from simcore.core.assemble import Core
from simcore.core.isolation import check_available
from simcore.errors import SimcoreError
from simcore.group import Function

WORKER_UID = WORKER_GID = 54321
STRANGER_UID = 54322
TOKEN_VARIABLE = "AWS_CONTAINER_AUTHORIZATION_TOKEN"
# The system interpreter: the venvs live under /root, which another uid may not enter. The handler needs
# no greengrasssdk: the token is in the worker's environment whatever the handler does.
SYSTEM_PYTHON = "/usr/bin/python3"
ARN = function_arn("token-holder")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="running a worker as another uid needs root"),
    pytest.mark.skipif(not Path(SYSTEM_PYTHON).exists(), reason=f"no {SYSTEM_PYTHON} for another uid to run"),
]


@pytest.fixture
def world_readable_code() -> Iterator[Path]:
    """The handler in a directory another uid can read (pytest's tmp_path lies under a 0700 directory)."""
    directory = Path(tempfile.mkdtemp(prefix="simcore-token-test-"))
    directory.chmod(0o755)
    (directory / "holder.py").write_text(textwrap.dedent('''
        def function_handler(event, context):
            return {"ok": True}
    '''))
    (directory / "holder.py").chmod(0o644)
    yield directory
    shutil.rmtree(directory)


def _token_holders(pid: int) -> dict[int, str]:
    """Every process of the worker (pid and its descendants: a container launcher forks) holding a token."""
    holders = {}
    pending = [pid]
    while pending:
        candidate = pending.pop(0)
        pending.extend(children(candidate))
        try:
            variables = (Path(f"/proc/{candidate}/environ").read_bytes()).split(b"\0")
        except OSError:
            continue
        for variable in variables:
            name, _, value = variable.partition(b"=")
            if name == TOKEN_VARIABLE.encode() and value:
                holders[candidate] = value.decode()
    return holders


def _uid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


def _read_as(uid: int, path: str) -> subprocess.CompletedProcess:
    return subprocess.run([SYSTEM_PYTHON, "-c", f"open({path!r}, 'rb').read()"], user=uid, group=uid,
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("isolation", ["nocontainer", "container"])
def test_the_token_is_in_a_0400_environ_that_neither_another_user_nor_the_workers_own_reads(
        isolation, world_readable_code, tmp_path):
    try:
        check_available(isolation)
    except SimcoreError as error:
        pytest.skip(str(error))
    function = Function(id="token-holder", arn=ARN, name="token-holder", code_dir=world_readable_code,
                        handler="holder.function_handler", runtime="python3.8", pinned=True,
                        isolation_mode="NoContainer" if isolation == "nocontainer" else "GreengrassContainer",
                        run_as_uid=WORKER_UID, run_as_gid=WORKER_GID)
    root = Path(tempfile.mkdtemp(prefix="simcore-token-root-"))
    core = Core(make_group([function]), runtime_root=root, isolation=isolation,
                interpreters={"python3.8": SYSTEM_PYTHON})
    try:
        core.start()
        # Idle: the runtime is polling for work, so it made itself non-dumpable long before.
        worker_pid = wait_until(lambda: next(
            (w["pid"] for w in core.status()["functions"][ARN]["workers"] if w["state"] == "idle"), None),
            message="the worker's pid, idle")
        # The Lambda's own process runs as the RunAs uid (a container launcher above it stays root).
        holders = wait_until(lambda: {pid: token for pid, token in _token_holders(worker_pid).items()
                                      if _uid(pid) == WORKER_UID},
                             message=f"a token held by a uid {WORKER_UID} process")
        [token] = set(holders.values())
        assert core.tokens.lookup(token) is not None  # the live token of this worker
        for pid, uid in ((pid, _uid(pid)) for pid in _token_holders(worker_pid)):
            environ = Path(f"/proc/{pid}/environ")
            info = environ.stat()
            assert stat.S_IMODE(info.st_mode) == 0o400
            assert info.st_uid == 0 and uid in (WORKER_UID, 0), (pid, uid)  # non-dumpable: root's (or root's launcher)
            # Another user (a stranger) cannot read it, nor a process of the worker's own uid (a neighbour
            # function that shares its RunAs, as every function shares ggc_user by default).
            for reader in (STRANGER_UID, WORKER_UID):
                refused = _read_as(reader, str(environ))
                assert refused.returncode != 0 and "PermissionError" in refused.stderr, (reader, refused.stderr)
            # Never on the command line (world-readable).
            assert token not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        # ...nor written to a file under the core's root.
        for path in root.rglob("*"):
            if path.is_file():
                assert token.encode() not in path.read_bytes(), f"token written to {path}"
    finally:
        core.stop()
        shutil.rmtree(root, ignore_errors=True)
