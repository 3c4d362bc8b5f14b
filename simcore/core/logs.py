"""The real core's log layout and line format, size-bounded log files, and the group's logger settings.

Layout under a deployment root, as `/greengrass/ggc/var/log` on a v1 core:
  var/log/user/<region>/<account>/<function>.log   a user Lambda
  var/log/user/<region>/aws/<connector>.log        a connector
  var/log/system/<name>.log                        the core: runtime, GGShadowService, GGShadowSyncManager,
                                                   crash
Line shape: `[2019-08-28T16:21:01.581Z][INFO]-file.py:12,message` (UTC, milliseconds).

Rotation (what a FileSystem logger's `Space` bounds): a log is `<name>.log` plus up to `segments - 1` older
segments `<name>.log.1` (newest) ... `<name>.log.<segments-1>` (oldest). Each segment holds at most
`space_kb * 1024 // segments` bytes; when the next line would overflow the current segment, the segments shift
by one, the oldest is deleted and a fresh `<name>.log` starts. So the files of one log never exceed `space_kb`
together, and at least the newest `(segments - 1) / segments` of the space is always history. A single line
longer than a segment is cut to fit and says how many bytes it lost.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from simcore.errors import RuntimeConfigError
from simcore.group import Function, Group, Logger
from simcore.private import open_private_append

# LoggerDefinition levels, least to most severe.
LEVELS = ("DEBUG", "INFO", "WARN", "ERROR", "FATAL")
_LEVEL_RANK = {name: rank for rank, name in enumerate(LEVELS)}
_PYTHON_LEVEL_NAMES = {"WARNING": "WARN", "CRITICAL": "FATAL"}
_PYTHON_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING,
                  "ERROR": logging.ERROR, "FATAL": logging.CRITICAL}

DEFAULT_LEVEL = "INFO"
DEFAULT_SPACE_KB = 128
DEFAULT_SEGMENTS = 4
# How much of a log's end `last_error_line` reads: enough for a long traceback, bounded whatever the log holds.
ERROR_TAIL_BYTES = 32 * 1024
# `[stamp][LEVEL]-` then, on lines the Lambda's logging wrote, `file.py:12,`.
_LINE_PARTS = re.compile(r"^\[([^\]]*)\]\[([A-Z]+)\]-(?:[^\s,:]+:\d+,)?(.*)$")


class LogLayout:
    """Where each log lives under a deployment root."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.log_dir = self.root / "var" / "log"

    def function_log(self, region: str, account: str, name: str) -> Path:
        """A user Lambda's log: `var/log/user/<region>/<account>/<name>.log`."""
        return self.log_dir / "user" / _segment(region) / _segment(account) / f"{_segment(name)}.log"

    def lambda_log(self, function: Function) -> Path:
        """`function`'s log: region and account from its ARN (`local` for an ARN without them), its name."""
        parts = function.arn.split(":")
        region, account = (parts[3], parts[4]) if len(parts) > 6 else ("local", "local")
        return self.function_log(region or "local", account or "local", function.name)

    def connector_log(self, region: str, name: str) -> Path:
        """A connector's log: `var/log/user/<region>/aws/<name>.log`."""
        return self.log_dir / "user" / _segment(region) / "aws" / f"{_segment(name)}.log"

    def system_log(self, name: str) -> Path:
        """A core component's log: `var/log/system/<name>.log` (`runtime`, `GGShadowService`, `crash`...)."""
        return self.log_dir / "system" / f"{_segment(name)}.log"


def _segment(text: str) -> str:
    """One path component from a name; anything that could leave the log tree is refused."""
    if not text or text in (".", "..") or "/" in text or "\\" in text or "\0" in text:
        raise ValueError(f"not usable as a log file name component: {text!r}")
    return text


def normalize_level(level: str) -> str:
    """A LoggerDefinition level (Python's `WARNING`/`CRITICAL` accepted); ValueError if unknown."""
    upper = level.upper()
    upper = _PYTHON_LEVEL_NAMES.get(upper, upper)
    if upper not in _LEVEL_RANK:
        raise ValueError(f"unknown log level {level!r}; expected one of {', '.join(LEVELS)}")
    return upper


def format_line(level: str, filename: str, lineno: int, message: str, when: float | None = None) -> str:
    """One log line in the core's shape: `[2019-08-28T16:21:01.581Z][INFO]-file.py:12,message`."""
    return f"[{_stamp(time.time() if when is None else when)}][{normalize_level(level)}]-{filename}:{lineno},{message}"


def _stamp(moment: float) -> str:
    """`2019-08-28T16:21:01.581Z`: UTC, milliseconds truncated (never rounded up into the next second)."""
    seconds, millis = divmod(math.floor(moment * 1000), 1000)
    return f"{datetime.fromtimestamp(seconds, tz=UTC).strftime('%Y-%m-%dT%H:%M:%S')}.{millis:03d}Z"


class LogWriter:
    """Appends lines to one log, bounded to `space_kb` by rotation (see the module docstring); thread-safe."""

    def __init__(self, path: Path, space_kb: int = DEFAULT_SPACE_KB, level: str = DEFAULT_LEVEL,
                 *, segments: int = DEFAULT_SEGMENTS):
        if space_kb < 1:
            raise ValueError(f"log space must be at least 1 KB, got {space_kb}")
        if segments < 1:
            raise ValueError(f"a log needs at least one segment, got {segments}")
        self.path = Path(path)
        self.space_kb = space_kb
        self.level = normalize_level(level)
        self.segments = segments
        self.segment_bytes = space_kb * 1024 // segments
        self._lock = threading.Lock()
        # The core writes every log (a Lambda's stdout/stderr come through a pipe): none is the Lambda's to open.
        self._file: BinaryIO | None = open_private_append(self.path)
        self._size = self._file.tell()

    def enabled(self, level: str) -> bool:
        """Whether a message at `level` passes this log's threshold."""
        return _LEVEL_RANK[normalize_level(level)] >= _LEVEL_RANK[self.level]

    def log(self, level: str, filename: str, lineno: int, message: str, when: float | None = None) -> bool:
        """Format and write a message if `level` passes the threshold; returns whether it was written."""
        if not self.enabled(level):
            return False
        self.write_line(format_line(level, filename, lineno, message, when))
        return True

    def write_line(self, line: str) -> None:
        """Append one formatted line (a newline is added), rotating first if it would not fit."""
        data = self._fit(line.rstrip("\n").encode("utf-8", "replace") + b"\n")
        with self._lock:
            if self._file is None:
                raise ValueError(f"log {self.path} is closed")
            if self._size and self._size + len(data) > self.segment_bytes:
                self._rotate()
            self._file.write(data)
            self._file.flush()
            self._size += len(data)

    def close(self) -> None:
        """Close the file; later writes raise ValueError. Closing twice is harmless."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def files(self) -> list[Path]:
        """This log's files that exist, newest first (`name.log`, `name.log.1`, ...)."""
        candidates = [self.path, *(self._segment_path(i) for i in range(1, self.segments))]
        return [path for path in candidates if path.exists()]

    def _fit(self, data: bytes) -> bytes:
        """A line cut to one segment, saying how much was cut (a log is bounded; it cannot keep it all)."""
        if len(data) <= self.segment_bytes:
            return data
        content = data[:-1]  # without its newline
        # The count has at most as many digits as the line's length, so this leaves room for the marker.
        room = self.segment_bytes - len(b"...[truncated  bytes]\n") - len(str(len(content)))
        head = content[: max(0, room)].decode("utf-8", "ignore").encode("utf-8")
        marker = f"...[truncated {len(content) - len(head)} bytes]\n".encode()
        return (head + marker)[-self.segment_bytes:]

    def _segment_path(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}")

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.close()
        if self.segments == 1:
            self.path.unlink(missing_ok=True)
        else:
            self._segment_path(self.segments - 1).unlink(missing_ok=True)
            for index in range(self.segments - 2, 0, -1):
                older = self._segment_path(index)
                if older.exists():
                    os.replace(older, self._segment_path(index + 1))
            os.replace(self.path, self._segment_path(1))
        self._file = open_private_append(self.path)
        self._size = 0


class _WriterHandler(logging.Handler):
    """A logging.Handler that writes records to a LogWriter in the core's line shape."""

    def __init__(self, writer: LogWriter):
        super().__init__(level=_PYTHON_LEVELS[writer.level])
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
            level = _PYTHON_LEVEL_NAMES.get(record.levelname, record.levelname)
            if level not in _LEVEL_RANK:
                level = "FATAL" if record.levelno >= logging.CRITICAL else "INFO"
            line = format_line(level, record.filename, record.lineno, message, record.created)
            self.writer.write_line(line)
        except Exception:  # logging must never take the caller down; logging's own reporting applies
            self.handleError(record)


def last_error_line(writer: LogWriter, since: float, max_bytes: int = ERROR_TAIL_BYTES) -> str | None:
    """The message of the newest ERROR or FATAL line `writer`'s log holds that was written at `since` or later.

    For a traceback that is its last line (`RuntimeError: ...`): each line of a multi-line record carries the
    prefix. Reads at most `max_bytes` from the end of the log (across its newest segments), never the whole log.
    """
    since_stamp = _stamp(since)
    for line in reversed(_tail_lines(writer.files(), max_bytes)):
        parts = _LINE_PARTS.match(line)
        if parts is None:
            continue
        if parts.group(1) < since_stamp:  # one fixed-width format: text order is time order
            return None  # older than the worker: an error of an earlier process is not this one's
        if parts.group(2) in ("ERROR", "FATAL") and parts.group(3).strip():
            return parts.group(3).strip()
    return None


def _tail_lines(files: list[Path], max_bytes: int) -> list[str]:
    """The whole lines in the last `max_bytes` of a log whose files are `files` (newest first), oldest first."""
    chunks: list[bytes] = []
    left = max_bytes
    for path in files:
        try:
            with path.open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                start = max(0, size - left)
                handle.seek(start)
                data = handle.read(size - start)
        except OSError:
            continue
        if start > 0:
            data = data.split(b"\n", 1)[1] if b"\n" in data else b""  # the first line was cut
        chunks.append(data)
        left -= len(data)
        if start > 0 or left <= 0:
            break
    return b"".join(reversed(chunks)).decode("utf-8", "replace").splitlines()


def logging_handler(writer: LogWriter) -> logging.Handler:
    """A handler so simcore's own modules log to e.g. `system/runtime.log` in the core's line shape."""
    return _WriterHandler(writer)


@dataclass(frozen=True)
class ComponentLogSettings:
    """How one component (GreengrassSystem or Lambda) logs locally: a FileSystem logger or the defaults."""

    level: str = DEFAULT_LEVEL
    space_kb: int = DEFAULT_SPACE_KB
    logger_id: str | None = None  # None: no FileSystem logger in the group, the v1 defaults apply


@dataclass(frozen=True)
class LoggerSettings:
    """The group's LoggerDefinition as it applies here, plus what to say once about the rest of it."""

    system: ComponentLogSettings
    lambda_: ComponentLogSettings
    notices: tuple[str, ...] = ()

    def for_component(self, component: str) -> ComponentLogSettings:
        """Settings for `GreengrassSystem` or `Lambda`."""
        if component == "GreengrassSystem":
            return self.system
        if component == "Lambda":
            return self.lambda_
        raise ValueError(f"unknown logger component {component!r}; expected GreengrassSystem or Lambda")


def logger_settings(group: Group, *, cloud_link: bool = False) -> LoggerSettings:
    """Local log settings from the group's loggers, and notices to log once.

    A FileSystem logger sets its component's level and space. A component without one gets the v1 defaults
    (INFO, 128 KB) so that nothing a Lambda says is dropped silently; a notice says so. AWSCloudWatch loggers
    have no local effect: a notice says their logs are not shipped (with `cloud_link`, it says that simcore's
    link is MQTT to IoT Core and does not carry CloudWatch Logs). Raises RuntimeConfigError for a bad level,
    space or a second FileSystem logger for one component.
    """
    chosen: dict[str, ComponentLogSettings] = {}
    notices: list[str] = []
    for logger in group.loggers:
        if logger.type == "AWSCloudWatch":
            notices.append(_cloudwatch_notice(logger, cloud_link))
            continue
        if logger.component in chosen:
            raise RuntimeConfigError(
                f"two FileSystem loggers for component {logger.component}: "
                f"{chosen[logger.component].logger_id} and {logger.id}",
                location=logger.id,
            )
        chosen[logger.component] = _file_system_settings(logger)
    for component in ("GreengrassSystem", "Lambda"):
        if component not in chosen:
            chosen[component] = ComponentLogSettings()
            notices.append(
                f"no FileSystem logger for {component}: logging locally at {DEFAULT_LEVEL} "
                f"with {DEFAULT_SPACE_KB} KB per log file (the v1 defaults)"
            )
    return LoggerSettings(chosen["GreengrassSystem"], chosen["Lambda"], tuple(notices))


def lambda_log_level(group: Group) -> str:
    """The `LOG_LEVEL` a Lambda's runtime gets: the lowest level of the group's `Lambda` loggers, else INFO.

    As on a v1 core, the runtime's handler passes records from that level on; each logger then keeps what its own
    level allows (here: the FileSystem logger's file). RuntimeConfigError for an unknown level.
    """
    levels = []
    for logger in group.loggers:
        if logger.component != "Lambda":
            continue
        try:
            levels.append(normalize_level(logger.level))
        except ValueError as error:
            raise RuntimeConfigError(str(error), location=logger.id) from None
    return min(levels, key=_LEVEL_RANK.__getitem__) if levels else DEFAULT_LEVEL


def _file_system_settings(logger: Logger) -> ComponentLogSettings:
    try:
        level = normalize_level(logger.level)
    except ValueError as error:
        raise RuntimeConfigError(str(error), location=logger.id) from None
    space_kb = DEFAULT_SPACE_KB if logger.space_kb is None else logger.space_kb
    if space_kb < 1:
        raise RuntimeConfigError(f"logger Space must be a positive number of KB, got {space_kb}",
                                 location=logger.id)
    return ComponentLogSettings(level=level, space_kb=space_kb, logger_id=logger.id)


def _cloudwatch_notice(logger: Logger, cloud_link: bool) -> str:
    where = (
        "simcore's cloud link speaks MQTT to AWS IoT Core and does not ship CloudWatch Logs"
        if cloud_link
        else "there is no AWS link"
    )
    return (
        f"AWSCloudWatch logger {logger.id} ({logger.component}, {logger.level}) has no local effect: "
        f"{where}, so these logs are not shipped; they stay in the local log files"
    )


class LogSinks:
    """The function and system log files of one core (`simcore.core.logs`' layout, line format and rotation)."""

    def __init__(self, root: Path, group: Group):
        self.layout = LogLayout(root)
        settings = logger_settings(group)
        self._lambda = settings.lambda_
        self._system = settings.system
        self._writers: dict[Path, LogWriter] = {}
        self._lock = threading.Lock()
        self.notices = settings.notices

    def _writer(self, path: Path, level: str, space_kb: int) -> LogWriter:
        with self._lock:
            writer = self._writers.get(path)
            if writer is None:
                writer = self._writers[path] = LogWriter(path, space_kb, level)
            return writer

    def function_log(self, function: Function) -> LogWriter:
        """The writer of `user/<region>/<account>/<name>.log` for `function`."""
        return self._writer(self.layout.lambda_log(function), self._lambda.level, self._lambda.space_kb)

    def system_log(self, name: str = "runtime") -> LogWriter:
        """The writer of `system/<name>.log`."""
        return self._writer(self.layout.system_log(name), self._system.level, self._system.space_kb)

    def line(self, level: str, filename: str, lineno: int, message: str) -> str:
        """A line in the core's format."""
        return format_line(level, filename, lineno, message)

    def close(self) -> None:
        """Close every writer."""
        with self._lock:
            for writer in self._writers.values():
                writer.close()
            self._writers.clear()
