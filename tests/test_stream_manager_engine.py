"""The export engine's rules on a real store, with a destination that records what it is given: priorities,
`disabled`, `startSequenceNumber`, `batchSize`, `batchIntervalMillis`, what a full stream overwrote before it
was exported, and a message the destination can never take."""

from __future__ import annotations

import threading

from support.waiting import wait_until

from simcore.streams.destinations import Undeliverable
from simcore.streams.exporters import ExportEngine
from simcore.streams.store import StreamStore


class Recording:
    """A destination that keeps each batch; refuses a payload `b"poison"` for good."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.lock = threading.Lock()

    def send(self, stream_name, messages) -> int:
        if messages[0].payload == b"poison":
            raise Undeliverable("poison")
        taken = next((index for index, message in enumerate(messages) if message.payload == b"poison"), len(messages))
        with self.lock:
            self.batches.append((stream_name, [message.sequence_number for message in messages[:taken]]))
        return taken

    def sequences(self, stream_name: str) -> list[int]:
        with self.lock:
            return [number for name, batch in self.batches if name == stream_name for number in batch]


def _kinesis(identifier: str, **settings) -> dict:
    return {"kinesis": [{"identifier": identifier, "kinesisStreamName": "k", **settings}]}


def _engine(tmp_path, clock=None):
    store = StreamStore(tmp_path, max_streams=16, memory_budget_bytes=1 << 20, max_message_bytes=1 << 16,
                        **({"clock": clock} if clock else {}))
    destination = Recording()
    return store, ExportEngine(store, lambda stream, config: destination, threads=1), destination


def test_the_lowest_priority_number_is_exported_first(tmp_path):
    store, engine, _ = _engine(tmp_path)
    store.create({"name": "bulk", "strategyOnFull": 0, "exportDefinition": _kinesis("b", priority=9)})
    store.create({"name": "alarms", "strategyOnFull": 0, "exportDefinition": _kinesis("a", priority=1)})
    store.append("bulk", b"x")
    store.append("alarms", b"y")
    job, _ = engine._pick()
    assert job is not None and job.stream_name == "alarms"


def test_disabled_exports_wait_and_start_sequence_number_skips_what_comes_before(tmp_path):
    store, engine, destination = _engine(tmp_path)
    store.create({"name": "s", "strategyOnFull": 0, "exportDefinition": _kinesis("k", disabled=True)})
    for index in range(10):
        store.append("s", b"m%d" % index)
    engine.start()
    try:
        assert engine._pick()[0] is None and destination.sequences("s") == []
        store.create({"name": "late", "strategyOnFull": 0,
                      "exportDefinition": _kinesis("k", startSequenceNumber=5, batchSize=2)})
        for index in range(8):
            store.append("late", b"m%d" % index)
        store.update({"name": "s", "strategyOnFull": 0, "exportDefinition": _kinesis("k")})
        wait_until(lambda: store.get("s").export_status["k"].get("lastExportedSequenceNumber") == 9, 20,
                   message="the enabled export")
        assert destination.sequences("s") == list(range(10))
        wait_until(lambda: destination.sequences("late") == [5, 6, 7], 20, message="from startSequenceNumber")
        assert all(len(batch) <= 2 for name, batch in destination.batches if name == "late")
        assert store.get("s").export_status["k"]["lastExportedSequenceNumber"] == 9
    finally:
        engine.stop()


def test_batch_interval_holds_a_partial_batch_until_its_oldest_message_is_that_old(tmp_path):
    now = [1_700_000_000_000]
    store, engine, _ = _engine(tmp_path, clock=lambda: now[0])
    store.create({"name": "s", "strategyOnFull": 0,
                  "exportDefinition": _kinesis("k", batchSize=3, batchIntervalMillis=60_000)})
    store.append("s", b"one")
    job, wait_s = engine._pick()
    assert job is None and 59 < wait_s <= 60
    now[0] += 60_001
    assert engine._pick()[0] is not None  # the oldest waiting message is now older than the interval
    store.create({"name": "full", "strategyOnFull": 0,
                  "exportDefinition": _kinesis("k", batchSize=3, batchIntervalMillis=60_000)})
    for payload in (b"a", b"b"):
        store.append("full", payload)
    assert {engine._pick()[0].stream_name} == {"s"}
    store.append("full", b"c")  # a full batch goes at once
    ready = set()
    for job in engine.jobs.values():
        job.running = job.stream_name in ready
        picked = engine._pick()[0]
        if picked is not None:
            ready.add(picked.stream_name)
            picked.running = True
    assert ready == {"s", "full"}


def test_overwritten_messages_are_counted_lost_and_an_undeliverable_one_is_skipped_and_named(tmp_path):
    store, engine, destination = _engine(tmp_path)
    store.create({"name": "s", "strategyOnFull": 1, "maxSize": 2048, "streamSegmentSize": 1024,
                  "exportDefinition": _kinesis("k", disabled=True)})
    for _ in range(30):
        store.append("s", b"x" * 100)
    oldest = store.get("s").log.oldest
    assert oldest > 0
    store.append("s", b"poison")
    engine.start()
    try:
        store.update({"name": "s", "strategyOnFull": 1, "maxSize": 2048, "streamSegmentSize": 1024,
                      "exportDefinition": _kinesis("k")})
        store.append("s", b"after")
        # Its position, not the destination's record: the engine counts a batch after the destination took it.
        wait_until(lambda: store.get("s").export_status["k"].get("lastExportedSequenceNumber") == 31, 20,
                   message="the export past the poison")
        assert destination.sequences("s") == [*range(oldest, 30), 31]
        status = engine.status()["s/k"]
        assert status["lostMessages"] == oldest
        assert status["failures"] == 0 and status["exportedMessagesCount"] == 30 - oldest + 1
    finally:
        engine.stop()
