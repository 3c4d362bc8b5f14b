"""What the status says about a function's workers, with real workers: `running` for a pinned function whose
module code never returns, the last error line of a crash-looping one, and the group's Lambda log level."""

from __future__ import annotations

import json

import pytest
from lambdas_fixtures.harness import INTERPRETER_KINDS, function_arn, interpreters, make_function, make_group
from support.recorders import RecordingCloud
from support.waiting import wait_until

from simcore.core.assemble import Core
from simcore.core.environment import function_environment
from simcore.core.logs import LogLayout, LogWriter, last_error_line
from simcore.group import CLOUD, Logger

LOOPER = function_arn("looper")
BREAKER = function_arn("breaker")
CHATTY = function_arn("chatty")


@pytest.fixture(params=INTERPRETER_KINDS)
def interpreter_kind(request):
    return request.param


def test_a_pinned_function_whose_module_code_never_returns_shows_running(tmp_path, interpreter_kind):
    group = make_group(
        [make_function("looper", "lifecycle", "loops_at_import.function_handler", pinned=True)],
        [(LOOPER, "lifecycle/started", CLOUD)],
    )
    cloud = RecordingCloud()
    with Core(group, runtime_root=tmp_path / "ggc", cloud=cloud, interpreters=interpreters(interpreter_kind)) as core:
        [started] = cloud.wait_for("lifecycle/started", 1)
        # The module published from inside its import, which never ends: the runtime never asks for work.
        [worker] = core.status()["functions"][LOOPER]["workers"]
        assert (worker["pid"], worker["state"]) == (json.loads(started)["pid"], "running")


def test_a_crash_looping_function_shows_its_last_error_line(tmp_path, interpreter_kind):
    group = make_group([make_function("breaker", "lifecycle", "raises_at_import.function_handler", pinned=True)])
    with Core(group, runtime_root=tmp_path / "ggc", interpreters=interpreters(interpreter_kind)) as core:
        status = wait_until(lambda: (s := core.status()["functions"][BREAKER])["crashes"] >= 2 and s,
                            30, message=lambda: f"two crashes of breaker: {core.status()['functions'][BREAKER]}")
    assert status["last_error"] == "RuntimeError: sensor bus /dev/i2c-9 is missing"
    assert status["last_exit"] == "exited (code 1)"


def test_a_crash_with_no_error_line_does_not_show_an_earlier_workers_error(tmp_path):
    log = LogWriter(tmp_path / "f.log")
    log.log("ERROR", "handler.py", 3, "ValueError: from an earlier worker", when=1000.0)
    log.log("INFO", "handler.py", 4, "a later worker starts", when=2000.0)
    assert last_error_line(log, since=1999.5) is None
    assert last_error_line(log, since=999.0) == "ValueError: from an earlier worker"


def test_the_last_error_line_is_read_from_the_end_of_the_log_only(tmp_path):
    log = LogWriter(tmp_path / "f.log", space_kb=1024, segments=2)
    log.log("ERROR", "handler.py", 3, "KeyError: far back", when=1000.0)
    for n in range(2000):
        log.log("INFO", "handler.py", 4, f"reading {n:05d} " + "x" * 40, when=1001.0)
    assert log.path.stat().st_size > 64 * 1024
    assert last_error_line(log, since=0.0, max_bytes=32 * 1024) is None
    assert last_error_line(log, since=0.0, max_bytes=1024 * 1024) == "KeyError: far back"


def test_the_last_error_line_is_found_in_the_previous_segment_after_a_rotation(tmp_path):
    log = LogWriter(tmp_path / "f.log", space_kb=8, segments=2)
    log.log("ERROR", "handler.py", 3, "OSError: just before a rotation", when=1000.0)
    while not log.path.with_name("f.log.1").exists():
        log.log("INFO", "handler.py", 4, "y" * 100, when=1001.0)
    assert "OSError" not in log.path.read_text()
    assert last_error_line(log, since=0.0) == "OSError: just before a rotation"


@pytest.mark.parametrize(("level", "debug_kept"), [("DEBUG", True), ("INFO", False)])
def test_the_lambda_loggers_level_reaches_the_function(tmp_path, level, debug_kept):
    function = make_function("chatty", "lifecycle", "debug_logger.function_handler", pinned=True)
    group = make_group([function], loggers=(Logger("LambdaLogs", "FileSystem", "Lambda", level),))
    log_path = LogLayout(tmp_path / "ggc").lambda_log(function)
    with Core(group, runtime_root=tmp_path / "ggc"):
        # Both lines come from one logger on one stream, DEBUG first: once INFO is there, DEBUG was decided.
        text = wait_until(lambda: log_path.exists() and "info line from the module" in log_path.read_text()
                          and log_path.read_text(), message="the module's INFO line in the function's log")
    assert ("debug line from the module" in text) is debug_kept


def test_log_level_is_the_lowest_lambda_logger_level_and_system_loggers_do_not_count():
    function = make_function("chatty", "lifecycle", "debug_logger.function_handler")
    loggers = (
        Logger("SystemLogs", "FileSystem", "GreengrassSystem", "DEBUG"),
        Logger("LambdaLogs", "FileSystem", "Lambda", "WARN"),
        Logger("LambdaCloud", "AWSCloudWatch", "Lambda", "ERROR"),
    )

    def level_of(*chosen: Logger) -> str:
        group = make_group([function], loggers=chosen)
        return function_environment(function, group, token="-", ipc_port=0, runtime_dir=tmp_dir)["LOG_LEVEL"]

    tmp_dir = function.code_dir
    assert level_of(*loggers) == "WARN"
    assert level_of(loggers[0]) == "INFO"
    assert level_of(loggers[2]) == "ERROR"
    assert level_of(Logger("LambdaCloud", "AWSCloudWatch", "Lambda", "DEBUG"), loggers[1]) == "DEBUG"
