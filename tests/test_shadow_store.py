"""ShadowEngine storage: shadows survive a new engine on the same database; threads lose no update."""

from __future__ import annotations

import json
import threading

import pytest

from simcore.errors import ShadowError
from simcore.shadow.engine import ShadowEngine


def test_shadow_survives_a_new_engine_on_the_same_database(tmp_path):
    db = tmp_path / "shadows.db"
    with ShadowEngine(db, clock=lambda: 100.0) as first:
        first.update("core-1", b'{"state": {"desired": {"interval": 60}, "reported": {"t": 20.5}}}')
        first.update("core-1", b'{"state": {"reported": {"t": 21.0}}}')
        before = first.get("core-1")
    with ShadowEngine(db, clock=lambda: 100.0) as second:
        assert second.get("core-1") == before
        assert second.version("core-1") == 2
        assert second.update("core-1", b'{"state": {"reported": {"interval": 60}}}').accepted["version"] == 3


def test_deleted_shadow_stays_deleted_and_keeps_its_version_across_restart(tmp_path):
    db = tmp_path / "shadows.db"
    with ShadowEngine(db) as first:
        first.update("core-1", b'{"state": {"reported": {"t": 1}}}')
        first.update("core-1", b'{"state": {"reported": {"t": 2}}}')
        first.delete("core-1")
    with ShadowEngine(db) as second:
        with pytest.raises(ShadowError, match="No shadow exists with name: core-1") as caught:
            second.get("core-1")
        assert caught.value.http_status == 404
        assert second.things() == []
        assert second.update("core-1", b'{"state": {"reported": {"t": 3}}}').accepted["version"] == 3


def test_refused_update_leaves_the_stored_document_unchanged(tmp_path):
    db = tmp_path / "shadows.db"
    with ShadowEngine(db) as engine:
        engine.update("core-1", b'{"state": {"reported": {"t": 1}}}')
        with pytest.raises(ShadowError, match="Version conflict"):
            engine.update("core-1", b'{"state": {"reported": {"t": 2}}, "version": 9}')
    with ShadowEngine(db) as reopened:
        assert reopened.get("core-1")["state"] == {"reported": {"t": 1}}
        assert reopened.version("core-1") == 1


def test_concurrent_updates_get_strictly_increasing_versions_and_lose_nothing():
    threads_count, updates_each = 8, 50
    with ShadowEngine() as engine:
        versions: list[int] = []
        versions_lock = threading.Lock()
        start = threading.Barrier(threads_count)

        def writer(writer_id: int) -> None:
            start.wait()
            for n in range(updates_each):
                payload = {"state": {"reported": {f"w{writer_id}": n, f"w{writer_id}_{n}": True}}}
                version = engine.update("thing-1", json.dumps(payload)).accepted["version"]
                with versions_lock:
                    versions.append(version)

        workers = [threading.Thread(target=writer, args=(i,)) for i in range(threads_count)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

        total = threads_count * updates_each
        assert sorted(versions) == list(range(1, total + 1))
        reported = engine.get("thing-1")["state"]["reported"]
        for writer_id in range(threads_count):
            assert reported[f"w{writer_id}"] == updates_each - 1
            assert all(reported[f"w{writer_id}_{n}"] is True for n in range(updates_each))
        assert engine.version("thing-1") == total


def test_optimistic_locking_counter_under_threads_counts_every_increment(tmp_path):
    """Read-modify-write with `version`: conflicts are retried, so every increment lands exactly once."""
    threads_count, increments_each = 4, 25
    with ShadowEngine(tmp_path / "shadows.db") as engine:
        engine.update("counter", b'{"state": {"reported": {"count": 0}}}')
        conflicts = []

        def incrementer() -> None:
            done = 0
            while done < increments_each:
                document = engine.get("counter")
                count = document["state"]["reported"]["count"]
                request = {"state": {"reported": {"count": count + 1}}, "version": document["version"]}
                try:
                    engine.update("counter", json.dumps(request))
                    done += 1
                except ShadowError as error:
                    assert error.http_status == 409
                    conflicts.append(error)

        workers = [threading.Thread(target=incrementer) for _ in range(threads_count)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert engine.get("counter")["state"]["reported"]["count"] == threads_count * increments_each
        assert engine.version("counter") == 1 + threads_count * increments_each


def test_two_engines_on_one_file_serialise_their_writes(tmp_path):
    db = tmp_path / "shadows.db"
    with ShadowEngine(db) as first, ShadowEngine(db) as second:
        versions = []

        def writer(engine: ShadowEngine, name: str) -> None:
            for n in range(30):
                payload = json.dumps({"state": {"reported": {f"{name}{n}": n}}})
                versions.append(engine.update("shared", payload).accepted["version"])

        workers = [threading.Thread(target=writer, args=(e, n)) for e, n in ((first, "a"), (second, "b"))]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert sorted(versions) == list(range(1, 61))
        assert len(first.get("shared")["state"]["reported"]) == 60
