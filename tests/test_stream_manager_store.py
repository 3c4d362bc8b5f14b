"""The stream store without the protocol: torn writes cut off at recovery, TTL by segment, numbering that never
restarts, the Memory budget (OutOfMemoryError), and the bounds a client cannot pass."""

from __future__ import annotations

import pytest

from simcore.streams.errors import StreamError
from simcore.streams.frames import Status
from simcore.streams.segments import HEADER_BYTES, MessageLog
from simcore.streams.store import StreamStore


def _store(root, **bounds) -> StreamStore:
    settings = {"max_streams": 8, "memory_budget_bytes": 1 << 20, "max_message_bytes": 1 << 16, **bounds}
    return StreamStore(root, **settings)


def test_a_torn_last_record_is_cut_off_and_the_records_before_it_stay(tmp_path):
    log = MessageLog(tmp_path / "s", 1 << 20)
    for index in range(5):
        log.append(f"message {index}".encode(), 1000 + index)
    log.close()
    segment = next((tmp_path / "s").glob("*.seg"))
    whole = segment.stat().st_size
    with segment.open("ab") as handle:  # a crash in the middle of the sixth write
        handle.write(b"\x00\x00\x00\x10" + b"\x00" * 9)
    recovered = MessageLog(tmp_path / "s", 1 << 20)
    assert [m.payload for m in recovered.read(0, 10, 1 << 20)] == [f"message {i}".encode() for i in range(5)]
    assert recovered.recovered_cut_bytes == 13 and segment.stat().st_size == whole
    assert recovered.append(b"sixth", 2000) == 5


def test_a_corrupt_record_ends_its_segment_at_recovery(tmp_path):
    log = MessageLog(tmp_path / "s", 1 << 20)
    for index in range(3):
        log.append(b"abc", index)
    log.close()
    segment = next((tmp_path / "s").glob("*.seg"))
    data = bytearray(segment.read_bytes())
    data[2 * (HEADER_BYTES + 3) + HEADER_BYTES] ^= 0xFF  # the third payload's first byte
    segment.write_bytes(bytes(data))
    assert MessageLog(tmp_path / "s", 1 << 20).next_sequence == 2


def test_numbering_goes_on_after_every_segment_is_dropped_even_across_a_restart(tmp_path):
    log = MessageLog(tmp_path / "s", 64)
    for index in range(4):
        log.append(b"x" * 30, index)
    while log.drop_oldest_segment():
        pass
    assert log.count == 0 and log.oldest == 4
    log.close()
    assert MessageLog(tmp_path / "s", 64).append(b"next", 9) == 4


def test_ttl_drops_whole_segments_whose_newest_message_expired(tmp_path):
    now = [1_000_000]
    store = _store(tmp_path, clock=lambda: now[0])
    store.create({"name": "ttl", "strategyOnFull": 0, "streamSegmentSize": 1024, "timeToLiveMillis": 60_000})
    for _ in range(12):
        store.append("ttl", b"x" * 200)  # five records fill a 1024-byte segment
    now[0] += 61_000
    store.append("ttl", b"fresh")
    stream = store.get("ttl")
    assert stream.log.oldest == 12 and stream.dropped_messages == 12


def test_memory_streams_share_a_budget_past_which_appends_get_out_of_memory(tmp_path):
    store = _store(tmp_path, memory_budget_bytes=4096)
    store.create({"name": "mem", "strategyOnFull": 1, "persistence": 1})
    for _ in range(3):
        store.append("mem", b"x" * 1000)
    with pytest.raises(StreamError) as refused:
        store.append("mem", b"x" * 2000)
    assert refused.value.status == Status.OutOfMemoryError


def test_bounds_a_client_cannot_pass(tmp_path):
    store = _store(tmp_path, max_streams=2, max_message_bytes=100)
    store.create({"name": "a", "strategyOnFull": 0})
    store.create({"name": "b", "strategyOnFull": 0})
    with pytest.raises(StreamError, match="maximum of 2 streams"):
        store.create({"name": "c", "strategyOnFull": 0})
    with pytest.raises(StreamError) as too_large:
        store.append("a", b"x" * 101)
    assert too_large.value.status == Status.RequestPayloadTooLarge
    with pytest.raises(StreamError) as empty:
        store.append("a", b"")
    assert empty.value.status == Status.InvalidRequest


def test_file_streams_and_their_export_positions_are_recovered_and_private(tmp_path):
    store = _store(tmp_path / "root")
    store.create({"name": "kept, with spaces", "strategyOnFull": 0,
                  "exportDefinition": {"kinesis": [{"identifier": "k", "kinesisStreamName": "s"}]}})
    store.append("kept, with spaces", b"one")
    store.get("kept, with spaces").save_export_position("k", 1)
    store.close()
    again = _store(tmp_path / "root")
    stream = again.get("kept, with spaces")
    assert stream.export_positions == {"k": 1} and stream.log.count == 1
    assert (tmp_path / "root").stat().st_mode & 0o077 == 0
    assert all(path.stat().st_mode & 0o077 == 0 for path in stream.directory.iterdir())
