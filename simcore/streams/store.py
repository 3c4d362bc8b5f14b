"""The message streams: create, update, delete, list, append with maxSize/strategyOnFull, TTL, export progress.

File streams live under the store root, one folder each (named by the hex of the stream's name, since names
may hold spaces and commas): `definition.json` (the definition as the client sent it), `exports.json` (each
exporter's next sequence number) and the segments (`simcore.streams.segments`). Both JSON files are replaced
atomically (write, rename; the definition fsynced first, a position not: losing one sends a batch again).
Memory streams are forgotten when the core stops, definition and all.

Bounds: at most `max_streams` streams; Memory streams together hold at most `memory_budget_bytes` (past it an
append is refused with OutOfMemoryError); a message is at most `max_message_bytes`.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from simcore.private import private_dir
from simcore.streams.definitions import FILE, MEMORY, REJECT_NEW_DATA, StreamSettings, check_name, parse_definition
from simcore.streams.errors import StreamError
from simcore.streams.frames import Status
from simcore.streams.segments import HEADER_BYTES, MessageLog

DEFINITION_FILE = "definition.json"
EXPORTS_FILE = "exports.json"


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch (ingest times, TTL)."""
    return time.time_ns() // 1_000_000


def _write_json(path: Path, data: Any, *, durable: bool = True) -> None:
    """Replace `path` atomically (a kill -9 leaves the old or the new file); `durable` fsyncs it first, so a
    power cut does too."""
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(temporary, path)


class Stream:
    """One message stream: its definition, its messages and its exporters' progress."""

    def __init__(self, definition: Mapping[str, Any], settings: StreamSettings, directory: Path | None):
        self.definition = dict(definition)
        self.settings = settings
        self.directory = directory
        self.log = MessageLog(directory, settings.segment_size, settings.flush_on_write)
        self.export_positions: dict[str, int] = {}
        self.export_status: dict[str, dict[str, Any]] = {}
        self.dropped_messages = 0
        if directory is not None and (directory / EXPORTS_FILE).exists():
            self.export_positions = {str(key): int(value) for key, value in
                                     json.loads((directory / EXPORTS_FILE).read_text(encoding="utf-8")).items()}

    @property
    def name(self) -> str:
        """The stream's name."""
        return self.settings.name

    def save_definition(self) -> None:
        """Write `definition.json` (File streams)."""
        if self.directory is not None:
            _write_json(self.directory / DEFINITION_FILE, self.definition)

    def save_export_position(self, identifier: str, next_sequence: int) -> None:
        """Record that exporter `identifier` has exported everything before `next_sequence`."""
        with self.log.lock:
            self.export_positions[identifier] = next_sequence
            if self.directory is not None:
                # Not fsynced: a position lost to a power cut only sends a batch again (at least once).
                _write_json(self.directory / EXPORTS_FILE, self.export_positions, durable=False)

    def describe(self) -> dict[str, Any]:
        """`MessageStreamInfo` as the protocol carries it."""
        with self.log.lock:
            oldest, following = self.log.oldest, self.log.next_sequence
            info: dict[str, Any] = {
                "definition": self.definition,
                "storageStatus": {
                    "oldestSequenceNumber": oldest,
                    "newestSequenceNumber": following - 1,
                    "totalBytes": self.log.total_bytes,
                },
            }
            statuses = [dict(status) for status in self.export_status.values()]
        if statuses:
            info["exportStatuses"] = statuses
        return info


class StreamStore:
    """Every stream of the core, recovered from `root` at start."""

    def __init__(
        self,
        root: Path,
        *,
        max_streams: int,
        memory_budget_bytes: int,
        max_message_bytes: int,
        clock: Callable[[], int] = now_ms,
    ):
        self.root = private_dir(Path(root))
        self.max_streams = max_streams
        self.memory_budget_bytes = memory_budget_bytes
        self.max_message_bytes = max_message_bytes
        self.clock = clock
        self.streams: dict[str, Stream] = {}
        self.lock = threading.RLock()
        self.listeners: list[Callable[[str], None]] = []  # called with a stream's name after each append
        self.change_listeners: list[Callable[[str], None]] = []  # after a create, update or delete
        self._recover()

    def _recover(self) -> None:
        for directory in sorted(self.root.iterdir()):
            definition_path = directory / DEFINITION_FILE
            if not directory.is_dir() or not definition_path.exists():
                continue
            definition = json.loads(definition_path.read_text(encoding="utf-8"))
            settings = parse_definition(definition)
            self.streams[settings.name] = Stream(definition, settings, directory)

    def _directory(self, name: str) -> Path:
        return self.root / name.encode("utf-8").hex()

    def get(self, name: Any) -> Stream:
        """The stream named `name`; ResourceNotFound when there is none."""
        check_name(name)
        with self.lock:
            stream = self.streams.get(name)
        if stream is None:
            raise StreamError(Status.ResourceNotFound, f"stream {name!r} does not exist")
        return stream

    def create(self, definition: Any) -> Stream:
        """A new stream; InvalidRequest when the name is taken or the definition is bad."""
        settings = parse_definition(definition)
        with self.lock:
            if settings.name in self.streams:
                raise StreamError(Status.InvalidRequest, f"stream {settings.name!r} already exists")
            if len(self.streams) >= self.max_streams:
                raise StreamError(Status.InvalidRequest, f"the core holds its maximum of {self.max_streams} streams")
            directory = None
            if settings.persistence == FILE:
                directory = self._directory(settings.name)
                if directory.exists():  # left by a delete that a crash interrupted
                    shutil.rmtree(directory)
            stream = Stream(definition, settings, directory)
            stream.save_definition()
            self.streams[settings.name] = stream
        self._changed(settings.name)
        return stream

    def update(self, definition: Any) -> Stream:
        """Replace a stream's whole definition; its messages stay. UpdateNotAllowed for a change of
        persistence (the messages cannot move between memory and disk)."""
        settings = parse_definition(definition)
        stream = self.get(settings.name)
        if settings.persistence != stream.settings.persistence:
            raise StreamError(Status.UpdateNotAllowed,
                              f"stream {settings.name!r}: persistence cannot change from "
                              f"{_persistence(stream.settings.persistence)} to {_persistence(settings.persistence)}")
        with stream.log.lock:
            try:
                stream.definition, stream.settings = dict(definition), settings
                stream.log.segment_size = settings.segment_size
                stream.log.flush_on_write = settings.flush_on_write
                stream.save_definition()
            except OSError as error:
                raise StreamError(Status.UpdateFailed, f"stream {settings.name!r}: {error}") from None
            identifiers = {export.identifier for export in settings.exports}
            for identifier in list(stream.export_status):
                if identifier not in identifiers:
                    del stream.export_status[identifier]
            self._trim_to_size(stream, 0)
        self._changed(settings.name)
        return stream

    def delete(self, name: Any) -> None:
        """Delete a stream and its messages."""
        stream = self.get(name)
        with self.lock:
            self.streams.pop(stream.name, None)
        with stream.log.lock:
            stream.log.destroy()
            if stream.directory is not None:
                shutil.rmtree(stream.directory, ignore_errors=True)
        self._changed(stream.name)

    def names(self) -> list[str]:
        """Every stream's name."""
        with self.lock:
            return list(self.streams)

    def append(self, name: Any, payload: Any) -> int:
        """Append one message; its sequence number. Refused: InvalidRequest (empty, or RejectNewData and full),
        RequestPayloadTooLarge, OutOfMemoryError (Memory streams past the budget)."""
        if not isinstance(payload, bytes) or not payload:
            raise StreamError(Status.InvalidRequest, "payload must be at least 1 byte")
        if len(payload) > self.max_message_bytes:
            raise StreamError(Status.RequestPayloadTooLarge,
                              f"a message may hold at most {self.max_message_bytes} bytes, got {len(payload)}")
        # The name's check (a regex) only when the fast look-up misses: appends are the hot path.
        stream = self.streams.get(name) if isinstance(name, str) else None
        if stream is None:
            stream = self.get(name)
        record = HEADER_BYTES + len(payload)
        with stream.log.lock:
            if record > stream.settings.max_size:
                raise StreamError(Status.InvalidRequest,
                                  f"stream {stream.name!r}: a {len(payload)}-byte message exceeds maxSize "
                                  f"{stream.settings.max_size}")
            if stream.settings.persistence == MEMORY and self._memory_bytes() + record > self.memory_budget_bytes:
                raise StreamError(Status.OutOfMemoryError,
                                  f"Memory streams hold the core's budget of {self.memory_budget_bytes} bytes")
            self._expire(stream)
            self._trim_to_size(stream, record)
            sequence = stream.log.append(payload, self.clock())
        for listener in self.listeners:
            listener(stream.name)
        return sequence

    def _trim_to_size(self, stream: Stream, incoming: int) -> None:
        while stream.log.total_bytes + incoming > stream.settings.max_size:
            if stream.settings.strategy_on_full == REJECT_NEW_DATA:
                raise StreamError(Status.InvalidRequest,
                                  f"stream {stream.name!r} is full (maxSize {stream.settings.max_size} bytes, "
                                  "strategyOnFull RejectNewData)")
            dropped = stream.log.drop_oldest_segment()
            if not dropped:
                return
            stream.dropped_messages += dropped

    def _expire(self, stream: Stream) -> None:
        if stream.settings.ttl_ms is not None:
            stream.dropped_messages += stream.log.drop_expired(self.clock() - stream.settings.ttl_ms)

    def expire_all(self) -> None:
        """Drop the segments past every stream's time to live (the periodic sweep)."""
        for name in self.names():
            stream = self.streams.get(name)
            if stream is not None:
                with stream.log.lock:
                    self._expire(stream)

    def _memory_bytes(self) -> int:
        with self.lock:
            return sum(stream.log.total_bytes for stream in self.streams.values()
                       if stream.settings.persistence == MEMORY)

    def _changed(self, name: str) -> None:
        for listener in self.change_listeners:
            listener(name)

    def close(self) -> None:
        """Close every stream's files (File streams stay on disk)."""
        with self.lock:
            for stream in self.streams.values():
                stream.log.close()


def _persistence(value: int) -> str:
    return "File" if value == FILE else "Memory"
