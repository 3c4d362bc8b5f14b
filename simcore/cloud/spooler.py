"""The cloud spooler: cloud-bound messages wait here, in order, until the broker acknowledges them.

Two storages, as on a v1 core: `MemorySpooler` (default 2.5 MB) and `FileSpooler` (SQLite; survives a
restart and a `kill -9`). A message leaves the spool only when `ack(seq)` is called, which the link does
on the broker's QoS 1 PUBACK: delivery is at-least-once, so a message sent just before a crash or a
dropped connection may arrive twice, never zero times.

When the spool is full the NEW message is refused (v1's spooler dropped the newest too): what is already
spooled stays in order and intact, and every refused message is counted in `dropped`. A full disk in
file mode is reported the same way: a clear log line, the message refused and counted.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from simcore.defaults import DEFAULT_SPOOL_MAX_BYTES as DEFAULT_MAX_BYTES  # 2.5 MB, the v1 core's default
from simcore.private import private_file
from simcore.shadow.wal import bound_wal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpooledMessage:
    """One cloud-bound message; `seq` orders messages and never repeats within one spool."""

    seq: int
    topic: str
    payload: bytes

    @property
    def size(self) -> int:
        """What the message counts against the spool's capacity: topic plus payload bytes."""
        return len(self.topic.encode()) + len(self.payload)


class Spooler:
    """What the link needs from a spool; subclasses hold the messages."""

    max_bytes: int
    dropped: int

    def append(self, topic: str, payload: bytes) -> int | None:
        """Spool a message; its sequence number, or None when it was refused (full spool, full disk)."""
        raise NotImplementedError

    def after(self, seq: int, limit: int = 100) -> list[SpooledMessage]:
        """Up to `limit` spooled messages with a sequence number above `seq`, oldest first."""
        raise NotImplementedError

    def ack(self, seq: int) -> None:
        """Remove the message `seq` (the broker has it). Unknown numbers are ignored: acks may repeat."""
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    @property
    def size_bytes(self) -> int:
        """Bytes currently spooled."""
        raise NotImplementedError

    def close(self) -> None:
        """Release storage; spooled messages stay on disk for file storage."""

    def _refuse(self, topic: str, reason: str) -> None:
        self.dropped += 1
        # The first refusal and then every 100th: a long outage must not flood the log.
        if self.dropped == 1 or self.dropped % 100 == 0:
            log.warning("cloud spooler refused a message for %s: %s (%d dropped so far)",
                        topic, reason, self.dropped)


class MemorySpooler(Spooler):
    """Messages in memory, bounded by `max_bytes`; lost on restart (as a v1 core's Memory storage)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        self.max_bytes = max_bytes
        self.dropped = 0
        self._messages: OrderedDict[int, SpooledMessage] = OrderedDict()
        self._size = 0
        self._next_seq = 1
        self._lock = threading.Lock()

    def append(self, topic: str, payload: bytes) -> int | None:
        with self._lock:
            message = SpooledMessage(self._next_seq, topic, bytes(payload))
            if self._size + message.size > self.max_bytes:
                self._refuse(topic, f"spool full ({self._size} of {self.max_bytes} bytes used)")
                return None
            self._messages[message.seq] = message
            self._size += message.size
            self._next_seq += 1
            return message.seq

    def after(self, seq: int, limit: int = 100) -> list[SpooledMessage]:
        with self._lock:
            found: list[SpooledMessage] = []
            for key, message in self._messages.items():
                if key > seq:
                    found.append(message)
                    if len(found) >= limit:
                        break
            return found

    def ack(self, seq: int) -> None:
        with self._lock:
            message = self._messages.pop(seq, None)
            if message is not None:
                self._size -= message.size

    def __len__(self) -> int:
        with self._lock:
            return len(self._messages)

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return self._size


class FileSpooler(Spooler):
    """Messages in an SQLite file, bounded by `max_bytes`; what was spooled before a crash is still there.

    Every append is committed (WAL, synchronous=FULL) before `append` returns, so a message the core
    accepted survives `kill -9` and power loss alike.
    """

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.dropped = 0
        private_file(self.path)  # 0600 before SQLite makes its -wal/-shm with the same mode
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        bound_wal(self._db)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS spool (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " topic TEXT NOT NULL, payload BLOB NOT NULL, size INTEGER NOT NULL)"
        )
        count, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM spool").fetchone()
        self._count, self._size = int(count), int(size)
        if self._count:
            log.info("cloud spooler %s holds %d messages (%d bytes) from before the restart",
                     self.path, self._count, self._size)

    def append(self, topic: str, payload: bytes) -> int | None:
        size = len(topic.encode()) + len(payload)
        with self._lock:
            if self._size + size > self.max_bytes:
                self._refuse(topic, f"spool full ({self._size} of {self.max_bytes} bytes used)")
                return None
            try:
                cursor = self._db.execute(
                    "INSERT INTO spool (topic, payload, size) VALUES (?, ?, ?)", (topic, bytes(payload), size)
                )
            except sqlite3.Error as error:  # SQLITE_FULL (disk full), I/O errors
                self._refuse(topic, f"cannot write {self.path}: {error}")
                return None
            self._count += 1
            self._size += size
            return int(cursor.lastrowid or 0)

    def after(self, seq: int, limit: int = 100) -> list[SpooledMessage]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, payload FROM spool WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
            ).fetchall()
        return [SpooledMessage(int(row[0]), row[1], bytes(row[2])) for row in rows]

    def ack(self, seq: int) -> None:
        with self._lock:
            row = self._db.execute("DELETE FROM spool WHERE seq = ? RETURNING size", (seq,)).fetchone()
            if row is not None:
                self._count -= 1
                self._size -= int(row[0])

    def __len__(self) -> int:
        with self._lock:
            return self._count

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return self._size

    def close(self) -> None:
        with self._lock:
            self._db.close()


def make_spooler(storage: str = "Memory", path: Path | None = None,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> Spooler:
    """A spooler by v1's storage type name: `Memory`, or `FileSystem` (needs `path`)."""
    if storage.lower() == "memory":
        return MemorySpooler(max_bytes)
    if storage.lower() in ("filesystem", "file"):
        if path is None:
            raise ValueError("FileSystem spooler storage needs a file path")
        return FileSpooler(path, max_bytes)
    raise ValueError(f"unknown spooler storage {storage!r}: expected Memory or FileSystem")
