"""The identity rules of simcore.core.identity as plans (no process), the reachability probe, private files.

Planning as root is a rule on values: these tests pretend simcore is root (`os.geteuid` patched) where no
process is started, and use the host's `nobody`/`nogroup` as the default user so they need no ggc_user.
The probe test starts a real interpreter as another user and so needs root.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from test_isolation_fixtures import function, group_with

from simcore.core.identity import check_reachable, resolve_identity
from simcore.core.isolation import plan_launch
from simcore.core.lambda_users import ensure_lambda_users, share_with_group
from simcore.errors import RuntimeConfigError, StartError
from simcore.paths import LAMBDA_RUNTIME
from simcore.private import private_file

NOBODY = (65534, 65534)
DEFAULTS = {"default_user": "nobody", "default_group": "nogroup"}


@pytest.fixture
def as_root(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp_path_factory.getbasetemp()  # pytest checks its folder's owner against the real uid: before the patch
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(os, "getuid", lambda: 0)
    monkeypatch.setattr(os, "getgid", lambda: 0)


CASES = [  # (IsolationMode, RunAs uid/gid, allowFunctionsToRunAsRoot) -> root is allowed
    (isolation_mode, run_as, allow)
    for isolation_mode in ("NoContainer", "GreengrassContainer")
    for run_as in (0, None)
    for allow in (True, False)
]


@pytest.mark.parametrize("mode", ["off", "nocontainer", "container"])
@pytest.mark.parametrize(("isolation_mode", "run_as", "allow"), CASES)
def test_root_needs_all_three_conditions_in_every_mode(as_root, tmp_path, mode, isolation_mode, run_as, allow):
    lambda_function = function("f", isolation_mode=isolation_mode, run_as_uid=run_as, run_as_gid=run_as)
    all_three = isolation_mode == "NoContainer" and run_as == 0 and allow and mode != "container"
    if run_as is None:  # no RunAs 0: the default user, whatever allowFunctionsToRunAsRoot says
        identity = resolve_identity(lambda_function, mode, allow_root=allow, **DEFAULTS)
        assert (identity.uid, identity.gid) == NOBODY
        return
    if all_three:
        identity = resolve_identity(lambda_function, mode, allow_root=allow, **DEFAULTS)
        assert (identity.uid, identity.gid) == (0, 0)
        return
    with pytest.raises(StartError, match="would run as root") as refused:
        plan_launch(lambda_function, group_with((lambda_function,), ()), {}, mode, scratch_dir=tmp_path,
                    allow_root=allow, **DEFAULTS)
    assert refused.value.location == lambda_function.arn


def test_the_refusal_names_each_missing_condition(as_root):
    container_function = function("f", isolation_mode="GreengrassContainer", run_as_uid=0, run_as_gid=0)
    with pytest.raises(StartError, match='not NoContainer; config.json\'s runtime.allowFunctionsToRunAsRoot is '
                                         'not "yes"'):
        resolve_identity(container_function, "off", allow_root=False, **DEFAULTS)


def test_off_mode_switches_to_the_default_user_like_the_others(as_root, tmp_path):
    lambda_function = function("f")
    plan = plan_launch(lambda_function, group_with((lambda_function,), ()), {}, "off", scratch_dir=tmp_path,
                       **DEFAULTS)
    assert (plan.uid, plan.gid) == NOBODY
    assert "runs as uid 65534 gid 65534 (nobody/nogroup)" in plan.description


def test_a_missing_default_user_or_group_is_refused_with_the_commands_that_create_it(as_root):
    lambda_function = function("f")
    with pytest.raises(StartError, match=r"runs as no-such-user.*does not exist on this host: create it with "
                                         r"`groupadd --system nogroup && useradd --system --gid nogroup"):
        resolve_identity(lambda_function, "off", default_user="no-such-user", default_group="nogroup")
    with pytest.raises(StartError, match=r"group no-such-group .*`groupadd --system no-such-group`.*RunAs Gid"):
        resolve_identity(lambda_function, "off", default_user="nobody", default_group="no-such-group")


def test_run_as_names_another_user_without_needing_ggc_user(as_root):
    lambda_function = function("f", run_as_uid=4321, run_as_gid=4322)
    identity = resolve_identity(lambda_function, "nocontainer", default_user="no-such-user",
                                default_group="no-such-group")
    assert (identity.uid, identity.gid, identity.source) == (4321, 4322, "RunAs Uid/RunAs Gid")


def test_without_root_every_mode_runs_as_the_invoking_user(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "getuid", lambda: 1000)
    monkeypatch.setattr(os, "getgid", lambda: 1001)
    for mode in ("off", "nocontainer", "container"):
        identity = resolve_identity(function("f"), mode, default_user="no-such-user")
        assert (identity.uid, identity.gid) == (1000, 1001)
    # RunAs someone else: refused where it would matter, noted as not applied with --isolation off.
    with pytest.raises(RuntimeConfigError, match="without root and cannot switch"):
        resolve_identity(function("f", run_as_uid=0, run_as_gid=0), "nocontainer")
    assert resolve_identity(function("f", run_as_uid=0, run_as_gid=0), "off").uid == 1000


@pytest.mark.skipif(os.geteuid() != 0, reason="running the interpreter as another user needs root")
def test_an_identity_that_cannot_reach_the_interpreter_is_refused_naming_the_path(tmp_path):
    hidden = tmp_path / "private"
    code_dir = hidden / "code"
    code_dir.mkdir(parents=True)
    hidden.chmod(0o700)
    identity = resolve_identity(function("f", run_as_uid=NOBODY[0], run_as_gid=NOBODY[1]), "off")
    interpreter = shutil.which("python3", path="/usr/bin") or sys.executable
    with pytest.raises(StartError, match=f"runs as uid 65534 gid 65534.*cannot run it: .*Permission denied.*"
                                         f"{code_dir}"):
        check_reachable(identity, interpreter, LAMBDA_RUNTIME, code_dir, "f")
    hidden.chmod(0o755)
    check_reachable(identity, interpreter, LAMBDA_RUNTIME, code_dir, "f")  # reachable now: no error


def test_private_files_narrow_an_older_0644_database_and_its_wal(tmp_path):
    database = tmp_path / "state" / "shadows.sqlite"
    database.parent.mkdir()
    connection = sqlite3.connect(database)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE t (x)")
    connection.execute("INSERT INTO t VALUES (1)")
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        path.chmod(0o644)  # as an older simcore left them
    private_file(database)
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    connection.close()


def test_a_new_database_and_the_wal_sqlite_makes_for_it_are_0600(tmp_path):
    database = private_file(tmp_path / "new" / "spool.sqlite")
    assert stat.S_IMODE(database.parent.stat().st_mode) == 0o700
    connection = sqlite3.connect(database)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE t (x)")
    for suffix in ("", "-wal", "-shm"):
        assert stat.S_IMODE(Path(f"{database}{suffix}").stat().st_mode) == 0o600, suffix
    connection.close()


def _as_ggc_user(*command: str) -> subprocess.CompletedProcess:
    import grp
    import pwd

    return subprocess.run(list(command), user=pwd.getpwnam("ggc_user").pw_uid, group=grp.getgrnam("ggc_group").gr_gid,
                          extra_groups=[], capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="creating users and ACLs needs root")
def test_setup_users_lets_ggc_group_pass_a_0700_folder_without_listing_it(tmp_path):
    assert ensure_lambda_users() == []  # `make test` made them: nothing left to do
    home = tmp_path / "home"
    script = home / "venv" / "run.sh"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\necho reached\n")
    script.chmod(0o755)
    home.chmod(0o700)  # a home folder ggc_user may not enter
    with pytest.raises(PermissionError, match="Permission denied"):
        _as_ggc_user(str(script))
    changed = share_with_group(script)
    assert changed == [home]  # only the folder in the way: its parents were passable already
    assert stat.S_IMODE(home.stat().st_mode) & 0o007 == 0  # others still have nothing
    assert _as_ggc_user(str(script)).stdout == "reached\n"
    assert _as_ggc_user("ls", str(home)).returncode != 0  # pass through, never list
    assert share_with_group(script) == []  # a second run changes nothing
