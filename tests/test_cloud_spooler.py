"""The cloud spooler: order, acknowledgement, the full-spool policy, file persistence, a full disk."""

from __future__ import annotations

import logging

import pytest

from simcore.cloud.spooler import DEFAULT_MAX_BYTES, FileSpooler, MemorySpooler, make_spooler


@pytest.fixture(params=["memory", "file"])
def spooler(request, tmp_path):
    if request.param == "memory":
        made = MemorySpooler(max_bytes=1000)
    else:
        made = FileSpooler(tmp_path / "spool.db", max_bytes=1000)
    yield made
    made.close()


def test_default_capacity_is_the_v1_cores_2_5_mb():
    assert MemorySpooler().max_bytes == DEFAULT_MAX_BYTES == int(2.5 * 1024 * 1024)


def test_messages_come_out_in_the_order_they_went_in(spooler):
    seqs = [spooler.append("t/a", f"m{i}".encode()) for i in range(10)]
    assert seqs == sorted(seqs) and None not in seqs
    assert [m.payload for m in spooler.after(0, 100)] == [f"m{i}".encode() for i in range(10)]
    assert [m.payload for m in spooler.after(seqs[4], 3)] == [b"m5", b"m6", b"m7"]


def test_a_message_leaves_only_when_acknowledged(spooler):
    first = spooler.append("t", b"one")
    second = spooler.append("t", b"two")
    assert len(spooler) == 2
    spooler.ack(second)
    spooler.ack(second)  # a repeated PUBACK is harmless
    assert [m.seq for m in spooler.after(0)] == [first]
    assert spooler.size_bytes == len("t") + len("one")


def test_a_full_spool_refuses_the_new_message_and_counts_it(spooler, caplog):
    caplog.set_level(logging.WARNING, logger="simcore.cloud.spooler")
    accepted = []
    for i in range(30):
        seq = spooler.append("topic", b"x" * 95)  # 100 bytes each with the topic
        if seq is not None:
            accepted.append(i)
    assert accepted == list(range(10))  # the oldest ten stay, in order; the newest are refused
    assert spooler.dropped == 20
    assert "spool full" in caplog.text
    spooler.ack(spooler.after(0, 1)[0].seq)
    assert spooler.append("topic", b"x" * 95) is not None  # room again after an acknowledgement


def test_file_spool_survives_a_new_spooler_instance(tmp_path):
    path = tmp_path / "spool.db"
    before = FileSpooler(path)
    seqs = [before.append("rain/t/inference/output", f"{i}".encode()) for i in range(5)]
    before.ack(seqs[0])
    before.close()
    after = FileSpooler(path)
    assert [m.payload for m in after.after(0)] == [b"1", b"2", b"3", b"4"]
    assert len(after) == 4
    new_seq = after.append("t", b"5")
    assert new_seq > seqs[-1]  # numbering continues: order holds across restarts
    after.close()


def test_a_full_disk_is_a_clear_error_and_a_counted_drop(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="simcore.cloud.spooler")
    spooler = FileSpooler(tmp_path / "spool.db", max_bytes=50_000_000)
    # SQLite's page limit makes the file hit "database or disk is full" exactly as a full disk does.
    pages = spooler._db.execute("PRAGMA page_count").fetchone()[0]
    spooler._db.execute(f"PRAGMA max_page_count = {pages + 2}")
    results = [spooler.append("t", b"y" * 4000) for _ in range(10)]
    assert None in results
    assert spooler.dropped == results.count(None)
    assert "full" in caplog.text and str(tmp_path / "spool.db") in caplog.text
    kept = [m.payload for m in spooler.after(0, 100)]
    assert len(kept) == len([r for r in results if r is not None])  # what was accepted is all there
    spooler.close()


def test_make_spooler_takes_v1_storage_names(tmp_path):
    assert isinstance(make_spooler("Memory"), MemorySpooler)
    file_spooler = make_spooler("FileSystem", tmp_path / "s.db")
    assert isinstance(file_spooler, FileSpooler)
    file_spooler.close()
    with pytest.raises(ValueError, match="needs a file path"):
        make_spooler("FileSystem")
    with pytest.raises(ValueError, match="unknown spooler storage"):
        make_spooler("Tape")
