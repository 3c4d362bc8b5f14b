"""The core's log layout, line shape and the logging handler simcore's modules use."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from simcore.core.logs import LogLayout, LogWriter, format_line, logging_handler, normalize_level
from simcore.group import Function

LINE = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\]\[([A-Z]+)\]-([^:]+):(\d+),(.*)$", re.S)


def test_line_shape_matches_the_real_core() -> None:
    when = datetime(2019, 8, 28, 16, 21, 1, 581000, tzinfo=UTC).timestamp()
    assert format_line("INFO", "file.py", 12, "message", when) == (
        "[2019-08-28T16:21:01.581Z][INFO]-file.py:12,message"
    )


def test_milliseconds_are_truncated_not_rounded_into_the_next_second() -> None:
    when = datetime(2019, 8, 28, 16, 21, 1, tzinfo=UTC).timestamp() + 0.9999
    assert format_line("WARN", "a.py", 1, "m", when).startswith("[2019-08-28T16:21:01.999Z][WARN]")


def test_python_level_names_become_the_cores() -> None:
    assert format_line("warning", "a.py", 1, "m", 0).startswith("[1970-01-01T00:00:00.000Z][WARN]")
    assert normalize_level("CRITICAL") == "FATAL"
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        format_line("LOUD", "a.py", 1, "m", 0)


def test_layout_paths(tmp_path: Path) -> None:
    layout = LogLayout(tmp_path)
    assert layout.function_log("us-east-1", "123456789012", "rain-inference") == (
        tmp_path / "var/log/user/us-east-1/123456789012/rain-inference.log"
    )
    assert layout.connector_log("us-east-1", "CloudWatchMetrics") == (
        tmp_path / "var/log/user/us-east-1/aws/CloudWatchMetrics.log"
    )
    assert layout.system_log("GGShadowService") == tmp_path / "var/log/system/GGShadowService.log"


def test_a_lambdas_log_is_placed_by_the_region_and_account_of_its_arn(tmp_path: Path) -> None:
    layout = LogLayout(tmp_path)
    qualified = Function(id="f", arn="arn:aws:lambda:eu-west-1:210987654321:function:rain-inference:live",
                         name="rain-inference", code_dir=tmp_path, handler="h.h", runtime="python3.8")
    assert layout.lambda_log(qualified) == layout.function_log("eu-west-1", "210987654321", "rain-inference")
    bare = Function(id="f", arn="f", name="f", code_dir=tmp_path, handler="h.h", runtime="python3.8")
    assert layout.lambda_log(bare) == tmp_path / "var/log/user/local/local/f.log"


@pytest.mark.parametrize("bad", ["", "..", "a/b", "x\0y"])
def test_layout_refuses_names_that_leave_the_log_tree(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="not usable as a log file name component"):
        LogLayout(tmp_path).function_log("us-east-1", "123456789012", bad)


def test_writer_filters_by_level(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path / "f.log", level="WARN")
    assert writer.log("INFO", "a.py", 1, "quiet", 0) is False
    assert writer.log("ERROR", "a.py", 2, "loud", 0) is True
    writer.close()
    assert (tmp_path / "f.log").read_text() == "[1970-01-01T00:00:00.000Z][ERROR]-a.py:2,loud\n"


def test_writer_creates_its_directory_and_appends_across_instances(tmp_path: Path) -> None:
    path = LogLayout(tmp_path).system_log("runtime")
    for text in ("first", "second"):
        writer = LogWriter(path)
        writer.write_line(text)
        writer.close()
    assert path.read_text() == "first\nsecond\n"


def test_writing_after_close_is_an_error(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path / "f.log")
    writer.close()
    writer.close()
    with pytest.raises(ValueError, match="is closed"):
        writer.write_line("late")


def test_logging_handler_writes_records_in_the_core_shape(tmp_path: Path) -> None:
    writer = LogWriter(LogLayout(tmp_path).system_log("runtime"), level="INFO")
    logger = logging.getLogger("simcore.test_logs_format")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = logging_handler(writer)
    logger.addHandler(handler)
    try:
        logger.debug("below the threshold")
        logger.warning("worker %s restarted", "rain-inference")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logger.exception("handler failed")
    finally:
        logger.removeHandler(handler)
        writer.close()
    text = (tmp_path / "var/log/system/runtime.log").read_text()
    entries = [LINE.match(entry) for entry in re.split(r"\n(?=\[\d{4}-)", text.rstrip("\n"))]
    assert all(entries), text
    assert [(m.group(2), m.group(3)) for m in entries] == [("WARN", "test_logs_format.py"),
                                                          ("ERROR", "test_logs_format.py")]
    assert entries[0].group(5) == "worker rain-inference restarted"
    assert entries[1].group(5).startswith("handler failed\nTraceback (most recent call last):")
    assert "RuntimeError: boom" in entries[1].group(5)
    assert "below the threshold" not in text
