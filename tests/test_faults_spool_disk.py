"""The spool's disk is really full: a 64 KB tmpfs under the FileSpooler, not a simulated limit.

Every append either returns a sequence number (and the message is then on disk, in order, surviving a
new spooler instance) or is refused with a log line that names the file and the cause, and counted in
`dropped` — which the cloud link reports as its own `dropped`. tests/test_cloud_spooler.py covers the same
with SQLite's page limit; this one mounts a filesystem (root only; skipped with the reason otherwise).
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cloud import Collector, core_settings
from support.disk import fill, mounted_tmpfs
from support.waiting import wait_until

from simcore.cloud.link import CloudLink
from simcore.cloud.settings import LinkSettings
from simcore.cloud.spooler import FileSpooler

TOPIC = "rain/DiskCore/inference/output"
CLOUD_TOPIC = "rain/RainCore/inference/output"  # the stand-in's core thing is RainCore
MESSAGE_BYTES = 4000


@pytest.fixture
def tiny_disk(tmp_path) -> Iterator[Path]:
    """A 64 KB tmpfs mounted in tmp_path, unmounted afterwards."""
    yield from mounted_tmpfs(tmp_path / "disk", "64k")


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 256 KB tmpfs: room for SQLite's shared-memory file, a WAL and a few messages."""
    yield from mounted_tmpfs(tmp_path / "disk", "256k")


def _link(spooler: FileSpooler, tmp_path: Path) -> CloudLink:
    """A cloud link that is never started: publish() only spools, which is what the disk decides."""
    settings = LinkSettings(client_id="DiskCore", host="127.0.0.1", port=8883, ca_path=tmp_path / "ca.pem",
                            cert_path=tmp_path / "cert.pem", key_path=tmp_path / "key.pem")
    return CloudLink(settings, spooler)


def test_a_full_disk_refuses_new_messages_clearly_counts_them_and_keeps_what_it_accepted(
        tiny_disk, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="simcore.cloud.spooler")
    path = tiny_disk / "spool.sqlite"
    spooler = FileSpooler(path, max_bytes=50_000_000)  # the byte limit is far away: only the disk is full
    link = _link(spooler, tmp_path)
    outcomes = []
    for number in range(40):  # 160 KB of messages for a 64 KB filesystem
        payload = f"{number:04d}".encode() + b"x" * (MESSAGE_BYTES - 4)
        outcomes.append((payload, link.publish(TOPIC, payload)))
    accepted = [payload for payload, ok in outcomes if ok]
    refused = [payload for payload, ok in outcomes if not ok]
    assert accepted, "the disk took nothing at all"
    assert refused, "a 64 KB disk took 160 KB"
    assert spooler.dropped == len(refused)
    assert link.stats().dropped == len(refused)
    assert f"cannot write {path}" in caplog.text and "full" in caplog.text
    # What was accepted is all there, in order, and survives a new spooler on the same file.
    assert [message.payload for message in spooler.after(0, 100)] == accepted
    spooler.close()
    reopened = FileSpooler(path, max_bytes=50_000_000)
    try:
        assert [message.payload for message in reopened.after(0, 100)] == accepted
    finally:
        reopened.close()


def test_once_space_is_freed_the_same_spooler_accepts_again_without_a_restart(tiny_disk, tmp_path):
    spooler = FileSpooler(tiny_disk / "spool.sqlite", max_bytes=50_000_000)
    try:
        accepted = []
        while (seq := spooler.append(TOPIC, f"{len(accepted)}".encode() * 1000)) is not None:
            accepted.append(seq)
        assert accepted and spooler.dropped == 1
        # The operator frees space (here: the filesystem grows); nothing restarts.
        subprocess.run(["mount", "-o", "remount,size=1m", str(tiny_disk)], check=True)
        later = spooler.append(TOPIC, b"after the disk was freed")
        assert later is not None and later > accepted[-1]  # order continues after the refusal
        assert [m.seq for m in spooler.after(0, 100)] == [*accepted, later]
        for seq in [*accepted, later]:  # the broker acknowledges: the spool drains
            spooler.ack(seq)
        assert len(spooler) == 0 and spooler.dropped == 1
    finally:
        spooler.close()


def test_the_cloud_link_recovers_when_the_disk_was_full_as_acknowledgements_arrived(small_disk, cloud):
    disk = small_disk
    spooler = FileSpooler(disk / "spool.sqlite", max_bytes=50_000_000)
    collector = Collector(cloud, "rain/RainCore/#")
    inbound: list[bytes] = []
    # A short acknowledgement timeout: a message whose acknowledgement could not be recorded is sent again.
    link = CloudLink(core_settings(cloud, ack_timeout_s=2.0), spooler)
    link.subscribe("rain/RainCore/command/input", lambda _topic, payload: inbound.append(payload))
    try:
        spooled = [spooler.append(CLOUD_TOPIC, f"before {n}".encode()) for n in range(5)]
        assert None not in spooled
        # The cloud-side subscriber is live (it hears its own probe) before the core sends anything.
        wait_until(lambda: collector.link.send_now("rain/RainCore/probe", b"probe", 1.0)
                   and b"probe" in collector.payloads(), 30, message="the subscriber to hear its own probe",
                   interval_s=0.2)
        filler = fill(disk)  # the broker's acknowledgements now arrive on a full disk
        link.start()
        assert link.wait_connected(10)
        wait_until(lambda: {f"before {n}".encode() for n in range(5)} <= set(collector.payloads()), 30,
                   message="the 5 spooled messages at the subscriber")
        filler.unlink()  # space is freed; nothing restarts
        assert link.publish(CLOUD_TOPIC, b"after the disk was freed")
        assert link.wait_drained(30), f"{len(spooler)} messages never acknowledged"
        assert collector.link.send_now("rain/RainCore/command/input", b"still listening", 10)
        wait_until(lambda: inbound == [b"still listening"], 30,
                   message=lambda: f"the core to hear one command (heard {inbound})")
    finally:
        link.stop()
        collector.stop()
        spooler.close()
