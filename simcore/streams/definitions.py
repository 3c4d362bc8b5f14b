"""`MessageStreamDefinition` as the protocol carries it: validated and completed with v1's defaults.

A definition stays the camelCase map the client sent (that is what DescribeMessageStream gives back), checked
with the same bounds the SDK's data classes declare, so a definition another client sends unchecked is
refused here with InvalidRequest and a message naming the field. `StreamSettings` is the typed view the
store and exporters use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from simcore.streams.errors import StreamError
from simcore.streams.frames import Status

NAME_PATTERN = re.compile(r"[\w ,.\-_]*")
MAX_LONG = 9_223_372_036_854_775_807
MAX_MILLIS = 9_223_372_036_854
DEFAULT_MAX_SIZE = 256 * 1024 * 1024
DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024
MIN_MULTIPART_THRESHOLD = 5 * 1024 * 1024
REJECT_NEW_DATA, OVERWRITE_OLDEST_DATA = 0, 1
FILE, MEMORY = 0, 1

# Export kinds: the ExportDefinition key, each exporter's batch size ceiling (its default too).
EXPORT_KINDS = {"kinesis": 500, "iotAnalytics": 100, "IotSitewise": 10, "http": 500, "s3TaskExecutor": 1}


@dataclass(frozen=True)
class ExportConfig:
    """One exporter of a stream: its kind (an ExportDefinition key) and its settings, defaults applied."""

    kind: str
    identifier: str
    batch_size: int
    batch_interval_ms: int | None
    priority: int
    start_sequence_number: int
    disabled: bool
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class StreamSettings:
    """A definition's typed view, v1's defaults filled in."""

    name: str
    max_size: int
    segment_size: int
    ttl_ms: int | None
    strategy_on_full: int
    persistence: int
    flush_on_write: bool
    exports: tuple[ExportConfig, ...]


def _invalid(message: str) -> StreamError:
    return StreamError(Status.InvalidRequest, message)


def check_name(value: Any, field: str = "name") -> str:
    """A stream (or exporter) name: 1..255 characters of letters, digits, spaces, `,.-_`."""
    if not isinstance(value, str) or not 1 <= len(value) <= 255 or not NAME_PATTERN.fullmatch(value):
        raise _invalid(f"{field} must be 1 to 255 letters, digits, spaces, commas, periods, hyphens or "
                       f"underscores, got {value!r}")
    return value


def _int(data: Mapping[str, Any], key: str, low: int, high: int, where: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _invalid(f"{where}{key} must be an integer from {low} to {high}, got {value!r}")
    return value


def _bool(data: Mapping[str, Any], key: str, where: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise _invalid(f"{where}{key} must be a boolean, got {value!r}")
    return value


def _text(data: Mapping[str, Any], key: str, where: str, *, required: bool,
          max_length: int | None = None) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise _invalid(f"{where}{key} is required")
        return None
    if not isinstance(value, str) or not value or (max_length is not None and len(value) > max_length):
        limit = f" of at most {max_length} characters" if max_length else ""
        raise _invalid(f"{where}{key} must be a non-empty string{limit}, got {value!r}")
    return value


def _export(kind: str, entry: Any, index: int) -> ExportConfig:
    where = f"exportDefinition.{kind}[{index}]."
    if not isinstance(entry, Mapping):
        raise _invalid(f"{where[:-1]} must be a map")
    identifier = check_name(entry.get("identifier"), f"{where}identifier")
    settings: dict[str, Any] = {}
    if kind == "kinesis":
        settings["kinesisStreamName"] = _text(entry, "kinesisStreamName", where, required=True)
    elif kind == "iotAnalytics":
        settings["iotChannel"] = _text(entry, "iotChannel", where, required=True)
        settings["iotMsgIdPrefix"] = _text(entry, "iotMsgIdPrefix", where, required=False, max_length=32)
    elif kind == "http":
        settings["uri"] = _text(entry, "uri", where, required=True)
    elif kind == "s3TaskExecutor":
        threshold = _int(entry, "sizeThresholdForMultipartUploadBytes", MIN_MULTIPART_THRESHOLD, MAX_LONG, where)
        settings["sizeThresholdForMultipartUploadBytes"] = threshold or MIN_MULTIPART_THRESHOLD
        status = entry.get("statusConfig") or {}
        if not isinstance(status, Mapping):
            raise _invalid(f"{where}statusConfig must be a map")
        level = _int(status, "statusLevel", 0, 4, f"{where}statusConfig.")
        stream = status.get("statusStreamName")
        settings["statusLevel"] = 2 if level is None else level
        settings["statusStreamName"] = None if stream is None else check_name(stream, f"{where}statusStreamName")
    ceiling = EXPORT_KINDS[kind]
    batch_size = None if kind == "s3TaskExecutor" else _int(entry, "batchSize", 1, ceiling, where)
    interval = None if kind == "s3TaskExecutor" else _int(entry, "batchIntervalMillis", 60_000, MAX_MILLIS, where)
    start = 0 if kind == "s3TaskExecutor" else _int(entry, "startSequenceNumber", 0, MAX_LONG, where)
    return ExportConfig(
        kind=kind,
        identifier=identifier,
        batch_size=batch_size or ceiling,
        batch_interval_ms=interval,
        priority=_int(entry, "priority", 1, 10, where) or 10,
        start_sequence_number=start or 0,
        disabled=_bool(entry, "disabled", where),
        settings=settings,
    )


def parse_definition(definition: Any) -> StreamSettings:
    """The typed view of a definition map; StreamError(InvalidRequest) naming the first bad field."""
    if not isinstance(definition, Mapping):
        raise _invalid("definition is required and must be a MessageStreamDefinition")
    name = check_name(definition.get("name"))
    strategy = definition.get("strategyOnFull")
    if strategy not in (REJECT_NEW_DATA, OVERWRITE_OLDEST_DATA) or isinstance(strategy, bool):
        raise _invalid(f"strategyOnFull is required: 0 (RejectNewData) or 1 (OverwriteOldestData), got {strategy!r}")
    persistence = definition.get("persistence", FILE)
    if persistence is None:
        persistence = FILE
    if persistence not in (FILE, MEMORY) or isinstance(persistence, bool):
        raise _invalid(f"persistence must be 0 (File) or 1 (Memory), got {persistence!r}")
    max_size = _int(definition, "maxSize", 1024, MAX_LONG, "") or DEFAULT_MAX_SIZE
    segment_size = _int(definition, "streamSegmentSize", 1024, 2_147_483_647, "") or DEFAULT_SEGMENT_SIZE
    exports: list[ExportConfig] = []
    export_definition = definition.get("exportDefinition") or {}
    if not isinstance(export_definition, Mapping):
        raise _invalid("exportDefinition must be a map")
    for kind, entries in export_definition.items():
        if kind not in EXPORT_KINDS:
            raise _invalid(f"exportDefinition has no kind {kind!r} (use {', '.join(EXPORT_KINDS)})")
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise _invalid(f"exportDefinition.{kind} must be a list")
        exports.extend(_export(kind, entry, index) for index, entry in enumerate(entries))
    identifiers = [export.identifier for export in exports]
    duplicates = sorted({identifier for identifier in identifiers if identifiers.count(identifier) > 1})
    if duplicates:
        raise _invalid(f"export identifiers must be unique within a stream: {', '.join(duplicates)} repeated")
    return StreamSettings(
        name=name,
        max_size=max_size,
        segment_size=min(segment_size, max_size),
        ttl_ms=_int(definition, "timeToLiveMillis", 60_000, MAX_MILLIS, ""),
        strategy_on_full=strategy,
        persistence=persistence,
        flush_on_write=_bool(definition, "flushOnWrite", ""),
        exports=tuple(exports),
    )
