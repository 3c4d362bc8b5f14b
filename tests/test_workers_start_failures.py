"""Crash loops end: interpreters are tried before use, a Runtime nothing serves is refused at deploy, and a function
whose workers keep failing to start is marked failed after `max_failed_starts` with its queued work set aside.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from lambdas_fixtures.harness import function_arn, make_function, make_group
from support.interpreters import pyenv_shim, python_then_shim, swap_to_shim, version_script
from support.recorders import RecordingCloud
from support.waiting import wait_until

from simcore.cli.main import main
from simcore.core.assemble import Core
from simcore.core.interpreters import forget_probes, resolve
from simcore.core.workers import WorkerSettings
from simcore.defaults import DEFAULT_MAX_FAILED_STARTS
from simcore.errors import RuntimeConfigError
from simcore.group import CLOUD

REPO = Path(__file__).resolve().parent.parent
CLI_GROUP = REPO / "tests" / "fixtures" / "cli" / "group.yaml"


@pytest.fixture(autouse=True)
def fresh_probes():
    """Each test's scripts are new files: no answer cached from another test's path."""
    forget_probes()
    yield
    forget_probes()


# -- the probe ----------------------------------------------------------------------------------------------


def test_a_pyenv_shim_given_as_the_interpreter_is_refused_by_the_probe_with_its_words(tmp_path):
    shim = pyenv_shim(tmp_path / "shims" / "python3.7")
    with pytest.raises(RuntimeConfigError, match="exited with code 127: pyenv: python3.7: command not found") as raised:
        resolve("python3.7", {"python3.7": str(shim)}, environ={}, search_dirs=[])
    assert "--runtime python3.7=PATH" in raised.value.message


def test_a_shim_on_path_is_skipped_for_the_installed_version_and_named(tmp_path, monkeypatch):
    pyenv_shim(tmp_path / "shims" / "python3.7")
    installed = version_script(tmp_path / "pyenv" / "versions" / "3.7.16" / "bin" / "python", "3.7")
    monkeypatch.setenv("PATH", str(tmp_path / "shims"))
    resolution = resolve("python3.7", {}, environ={"PYENV_ROOT": str(tmp_path / "pyenv")}, search_dirs=[])
    assert resolution.interpreter == str(installed)
    assert resolution.warning is None
    assert resolution.refused == (f"{tmp_path / 'shims' / 'python3.7'} exited with code 127: "
                                  "pyenv: python3.7: command not found",)


def test_a_candidate_that_runs_another_version_is_skipped_and_the_fallback_says_what_to_install(tmp_path, monkeypatch):
    version_script(tmp_path / ".venv-py38" / "bin" / "python", "3.9")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    resolution = resolve("python3.8", {}, environ={"PYENV_ROOT": str(tmp_path / "none")}, search_dirs=[tmp_path])
    assert resolution.interpreter == sys.executable
    assert "runs Python 3.9, not 3.8" in resolution.warning
    assert "Install Python 3.8 (e.g. `pyenv install 3.8`) or pass --runtime python3.8=PATH" in resolution.warning


def test_each_interpreter_is_run_once_however_often_it_is_resolved(tmp_path):
    runs = tmp_path / "runs"
    counting = tmp_path / "python"
    counting.write_text(f"#!/bin/sh\necho run >> '{runs}'\nprintf 3.8\n")
    counting.chmod(0o755)
    for _ in range(3):
        assert resolve("python3.8", {"python3.8": str(counting)}, environ={}).interpreter == str(counting)
    assert runs.read_text().splitlines() == ["run"]


def test_python2_is_refused_whatever_interpreter_is_given():
    with pytest.raises(RuntimeConfigError, match="needs Python 3; port the function to python3.8"):
        resolve("python2.7", {"python2.7": sys.executable})


# -- at deploy ----------------------------------------------------------------------------------------------


def _cli_template(tmp_path: Path, runtime: str = "python3.8") -> Path:
    template = tmp_path / "group.yaml"
    template.write_text(CLI_GROUP.read_text().replace("Runtime: python3.8", f"Runtime: {runtime}"))
    (tmp_path / "echo").symlink_to(CLI_GROUP.parent / "echo")
    return template


def test_deploy_refuses_runtime_python27_in_one_line_naming_the_fix(tmp_path, capsys):
    assert main(["deploy", str(_cli_template(tmp_path, "python2.7")), "--root", str(tmp_path / "root")]) == 3
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "Runtime python2.7 cannot run on simcore" in error and "port the function to python3.8" in error
    assert "(at Resources.EchoFunction.Properties.Runtime)" in error


def test_deploy_refuses_a_runtime_interpreter_that_cannot_run_naming_the_flag(tmp_path, capsys):
    shim = pyenv_shim(tmp_path / "shims" / "python3.8", "python3.8")
    arguments = ["deploy", str(_cli_template(tmp_path)), "--runtime", f"python3.8={shim}"]
    assert main([*arguments, "--root", str(tmp_path / "root")]) == 3
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "pyenv: python3.8: command not found" in error and "--runtime python3.8=PATH" in error
    assert "(at function " in error


# -- at run time --------------------------------------------------------------------------------------------

RELAY = function_arn("relay")


def _core(tmp_path: Path, *, pinned: bool, handler: str, interpreters: dict[str, str]) -> Core:
    group = make_group([make_function("relay", "faults", handler, pinned=pinned)], [(CLOUD, "relay/in", RELAY)])
    return Core(group, runtime_root=tmp_path / "ggc", cloud=RecordingCloud(), interpreters=interpreters)


@pytest.mark.parametrize("case", ["interpreter-becomes-a-shim", "handler-cannot-be-imported"])
def test_a_function_that_keeps_failing_to_start_stops_after_n_and_its_queued_work_is_poison(tmp_path, case):
    interpreter = python_then_shim(tmp_path / "bin" / "python3.8")
    pinned = case == "handler-cannot-be-imported"
    handler = "no_such_module.handler" if pinned else "faults.relay"
    core = _core(tmp_path, pinned=pinned, handler=handler, interpreters={"python3.8": str(interpreter)})
    core.start()
    if not pinned:
        # The version was unselected after the core checked it (at start, also as the Lambdas' user).
        swap_to_shim(interpreter)
    try:
        for n in range(3):
            core.publish("relay/in", json.dumps({"n": n}).encode())
        failed = wait_until(lambda: core.status()["functions"][RELAY]["failed"],
                            message=lambda: f"the function marked failed: {core.status()['functions'][RELAY]}")
        assert f"{DEFAULT_MAX_FAILED_STARTS} starts in a row failed" in failed
        # The reason carries the last error line the worker left (what to fix), not only its exit code.
        cause = "pyenv: python3.8: command not found" if not pinned else "No module named 'no_such_module'"
        assert cause in failed
        # Once failed, no worker is started again: the number of starts is final.
        starts = core.status()["functions"][RELAY]["starts"]
        if pinned:  # one worker at a time: exactly N starts; on-demand work may have started a few at once
            assert starts == DEFAULT_MAX_FAILED_STARTS
        status = wait_until(lambda: (s := core.status())["functions"][RELAY]["poison"] == 3 and s,
                            message=lambda: f"3 poison messages: {core.status()}")
        assert status["functions"][RELAY]["failed_starts"] >= DEFAULT_MAX_FAILED_STARTS
        assert [p["subject"] for p in status["poison_messages"]] == ["relay/in"] * 3
        assert all(p["reason"].startswith("function failed: 5 starts in a row") for p in status["poison_messages"])
        # Work that arrives later is set aside too, and starts no worker.
        core.publish("relay/in", b'{"n": "late"}')
        wait_until(lambda: core.status()["functions"][RELAY]["poison"] == 4, message="the late message set aside")
        assert core.status()["functions"][RELAY]["starts"] == starts
        runtime_log = (tmp_path / "ggc" / "var" / "log" / "system" / "runtime.log").read_text()
        assert f"Function {RELAY} failed: " in runtime_log
        function_log = (tmp_path / "ggc" / "var" / "log" / "user" / "us-east-1" / "123456789012" / "relay.log")
        expected = "pyenv: python3.8: command not found" if not pinned else "Cannot load handler no_such_module"
        assert expected in function_log.read_text()
    finally:
        core.stop()


def test_the_number_of_failed_starts_is_a_setting_defaulting_to_the_documented_value():
    assert WorkerSettings().max_failed_starts == DEFAULT_MAX_FAILED_STARTS == 5


def test_deploy_of_a_runtime_with_no_interpreter_here_warns_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    assert main(["deploy", str(_cli_template(tmp_path, "python3.99")), "--root", str(tmp_path / "root")]) == 0
    output = capsys.readouterr().out
    assert "warning: function rain-edge-echo: No interpreter for python3.99" in output
    assert "Install Python 3.99 (e.g. `pyenv install 3.99`) or pass --runtime python3.99=PATH" in output
