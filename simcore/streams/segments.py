"""One stream's messages in segments: appended, read by sequence number, dropped a whole segment at a time.

File persistence: a folder per stream, a file per segment named after its first sequence number
(`00000000000000000042.seg`). A record is a 24-byte header (payload length, sequence number, ingest time in
ms, CRC-32 of header and payload) and the payload. Each append is one `write()` on an unbuffered file before
the append is acknowledged, so a kill -9 of the core loses nothing acknowledged (the kernel holds the bytes);
`flush_on_write` adds an `fsync` so a power cut does not either. On open, every segment is scanned; a torn or
corrupt record (a crash in mid-write) and what follows it in its segment are cut off. When every segment is
dropped an empty one is created at the next sequence number, so numbering never restarts.

Memory persistence keeps the same segments as lists of payloads: nothing reaches the disk.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from array import array
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

_RECORD = struct.Struct(">IqqI")
HEADER_BYTES = _RECORD.size
SUFFIX = ".seg"


@dataclass(frozen=True)
class StoredMessage:
    """A message as read back: its sequence number, ingest time (ms since the epoch) and payload."""

    sequence_number: int
    ingest_time_ms: int
    payload: bytes


@dataclass
class _Segment:
    first: int
    path: Path | None
    offsets: array = field(default_factory=lambda: array("q"))
    sizes: array = field(default_factory=lambda: array("q"))
    ingest_times: array = field(default_factory=lambda: array("q"))
    payloads: list[bytes] | None = None
    size_bytes: int = 0
    fd: int | None = None

    @property
    def count(self) -> int:
        return len(self.offsets)

    @property
    def end(self) -> int:
        """One past its last sequence number."""
        return self.first + self.count


def _checksum(length: int, sequence: int, ingest: int, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(struct.pack(">Iqq", length, sequence, ingest)))


class MessageLog:
    """The segments of one stream; thread-safe (the server's loop, exporters and the TTL sweep share it)."""

    def __init__(self, directory: Path | None, segment_size: int, flush_on_write: bool = False):
        """`directory` None: Memory persistence. An existing folder is recovered (see the module docstring)."""
        self.directory = directory
        self.segment_size = segment_size
        self.flush_on_write = flush_on_write
        self.lock = threading.RLock()
        self.segments: list[_Segment] = []
        self.recovered_cut_bytes = 0
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._recover()
        if not self.segments:
            self.segments.append(self._new_segment(0))

    # -- reading the state ---------------------------------------------------------------------------

    @property
    def oldest(self) -> int:
        """The oldest sequence number held (equals `next_sequence` when the stream is empty)."""
        with self.lock:
            for segment in self.segments:
                if segment.count:
                    return segment.first
            return self.next_sequence

    @property
    def next_sequence(self) -> int:
        """The number the next append gets."""
        with self.lock:
            return self.segments[-1].end

    @property
    def total_bytes(self) -> int:
        """Bytes held, headers included."""
        with self.lock:
            return sum(segment.size_bytes for segment in self.segments)

    @property
    def count(self) -> int:
        """Messages held."""
        with self.lock:
            return sum(segment.count for segment in self.segments)

    # -- appending and reading -----------------------------------------------------------------------

    def append(self, payload: bytes, ingest_time_ms: int) -> int:
        """Store one message and return its sequence number (durable per the module docstring on return)."""
        record_bytes = HEADER_BYTES + len(payload)
        with self.lock:
            active = self.segments[-1]
            if active.count and active.size_bytes + record_bytes > self.segment_size:
                active = self._roll()
            sequence = active.end
            if active.path is not None:
                header = _RECORD.pack(len(payload), sequence, ingest_time_ms,
                                      _checksum(len(payload), sequence, ingest_time_ms, payload))
                assert active.fd is not None
                os.write(active.fd, header + payload)
                if self.flush_on_write:
                    os.fsync(active.fd)
            else:
                assert active.payloads is not None
                active.payloads.append(bytes(payload))
            active.offsets.append(active.size_bytes)
            active.sizes.append(len(payload))
            active.ingest_times.append(ingest_time_ms)
            active.size_bytes += record_bytes
            return sequence

    def read(self, start: int, max_count: int, max_bytes: int) -> list[StoredMessage]:
        """Up to `max_count` messages from `start` (or the oldest, when `start` is gone), at most `max_bytes`
        of payload but always at least one when one is there."""
        messages: list[StoredMessage] = []
        total = 0
        with self.lock:
            start = max(start, self.oldest)
            for segment in self.segments:
                if segment.end <= start:
                    continue
                index = max(0, start - segment.first)
                while index < segment.count and len(messages) < max_count:
                    size = segment.sizes[index]
                    if messages and total + size > max_bytes:
                        return messages
                    messages.append(StoredMessage(segment.first + index, segment.ingest_times[index],
                                                  self._payload(segment, index)))
                    total += size
                    index += 1
                if len(messages) >= max_count:
                    break
        return messages

    def _payload(self, segment: _Segment, index: int) -> bytes:
        if segment.payloads is not None:
            return segment.payloads[index]
        assert segment.fd is not None
        return os.pread(segment.fd, segment.sizes[index], segment.offsets[index] + HEADER_BYTES)

    # -- dropping ------------------------------------------------------------------------------------

    def drop_oldest_segment(self) -> int:
        """Drop the oldest segment holding messages (the active one last: an empty one replaces it);
        the number of messages dropped."""
        with self.lock:
            segment = next((candidate for candidate in self.segments if candidate.count), None)
            if segment is None:
                return 0
            if segment is self.segments[-1]:
                self.segments.append(self._new_segment(segment.end))
            self.segments.remove(segment)
            self._discard(segment)
            return segment.count

    def drop_expired(self, cutoff_ms: int) -> int:
        """Drop each segment whose newest message was ingested before `cutoff_ms`; messages dropped."""
        dropped = 0
        with self.lock:
            while True:
                segment = next((candidate for candidate in self.segments if candidate.count), None)
                if segment is None or segment.ingest_times[-1] >= cutoff_ms:
                    return dropped
                dropped += self.drop_oldest_segment()

    def close(self) -> None:
        """Close the segment files (Memory: forget the messages)."""
        with self.lock:
            for segment in self.segments:
                if segment.fd is not None:
                    os.close(segment.fd)
                    segment.fd = None
                segment.payloads = [] if segment.payloads is not None else None

    def destroy(self) -> None:
        """Close and remove every segment (a deleted stream)."""
        with self.lock:
            for segment in self.segments:
                self._discard(segment)
            self.segments = []

    # -- segments ------------------------------------------------------------------------------------

    def _roll(self) -> _Segment:
        segment = self._new_segment(self.segments[-1].end)
        self.segments.append(segment)
        return segment

    def _new_segment(self, first: int) -> _Segment:
        if self.directory is None:
            return _Segment(first=first, path=None, payloads=[])
        path = self.directory / f"{first:020d}{SUFFIX}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        if self.flush_on_write:
            os.fsync(fd)
            _fsync_dir(self.directory)
        return _Segment(first=first, path=path, fd=fd)

    def _discard(self, segment: _Segment) -> None:
        if segment.fd is not None:
            os.close(segment.fd)
            segment.fd = None
        if segment.path is not None:
            segment.path.unlink(missing_ok=True)

    def _recover(self) -> None:
        assert self.directory is not None
        paths = sorted(self.directory.glob(f"*{SUFFIX}"))
        for path in paths:
            try:
                first = int(path.stem)
            except ValueError:
                continue
            segment = _Segment(first=first, path=path, fd=os.open(path, os.O_RDWR | os.O_APPEND))
            self._scan(segment)
            if self.segments and segment.first < self.segments[-1].end:
                log.warning("stream segment %s overlaps the one before it: removed", path)
                self._discard(segment)
                continue
            self.segments.append(segment)
        # Only the newest segment may stay empty: it carries the next sequence number.
        for segment in self.segments[:-1]:
            if not segment.count:
                self.segments.remove(segment)
                self._discard(segment)

    def _scan(self, segment: _Segment) -> None:
        assert segment.fd is not None
        length = os.fstat(segment.fd).st_size
        offset = 0
        while offset + HEADER_BYTES <= length:
            size, sequence, ingest, checksum = _RECORD.unpack(os.pread(segment.fd, HEADER_BYTES, offset))
            if sequence != segment.end or offset + HEADER_BYTES + size > length:
                break
            payload = os.pread(segment.fd, size, offset + HEADER_BYTES)
            if _checksum(size, sequence, ingest, payload) != checksum:
                break
            segment.offsets.append(offset)
            segment.sizes.append(size)
            segment.ingest_times.append(ingest)
            offset += HEADER_BYTES + size
        if offset < length:
            log.warning("stream segment %s: %d bytes after the last whole record cut off", segment.path,
                        length - offset)
            self.recovered_cut_bytes += length - offset
            os.ftruncate(segment.fd, offset)
        segment.size_bytes = offset


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
