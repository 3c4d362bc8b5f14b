"""Persistent sessions at the stand-in, as AWS IoT Core keeps them: a subscriber that was away gets every QoS 1
message published meanwhile, even across a broker restart during which the core spooled and then drained.

The core's link and the subscriber (`simcore.cloud.standin.watch`, what `simcore cloud watch` runs) are both
AWSIoTPythonSDK clients; the broker is the stand-in's mosquitto with persistence on.
"""

from __future__ import annotations

import json
import threading

import pytest
from support.cloud import core_settings
from support.waiting import wait_until

from simcore.cloud.link import CloudLink
from simcore.cloud.spooler import MemorySpooler
from simcore.cloud.standin import watch

TOPIC = "rain/RainCore/inference/output"


class Lines:
    """A thread-safe text sink for `watch`: the `seq` of every payload it printed, in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._text = ""

    def write(self, text: str) -> None:
        with self._lock:
            self._text += text

    def flush(self) -> None:
        pass

    def seqs(self) -> list[int]:
        with self._lock:
            lines = self._text.splitlines()
        return [json.loads(line.split(" ", 1)[1])["seq"] for line in lines]


class Watcher:
    """`watch` on a thread, as `simcore cloud watch` runs it, until `stop()`."""

    def __init__(self, cloud) -> None:
        self.lines = Lines()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=watch, args=(cloud.config_path, TOPIC, self.lines),
            kwargs={"certs_dir": cloud.certs_dir, "stop": self._stop}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive()


def _publish(link: CloudLink, seqs: range) -> None:
    for seq in seqs:
        assert link.publish(TOPIC, json.dumps({"seq": seq}).encode())


def test_a_watcher_back_after_a_broker_restart_gets_every_message_the_core_drained_meanwhile(cloud):
    if cloud.broker.kind != "mosquitto":
        pytest.skip("the amqtt fallback keeps sessions in memory only: they do not survive its restart")
    link = CloudLink(core_settings(cloud), MemorySpooler())
    link.start()
    watcher = Watcher(cloud)
    try:
        assert link.wait_connected(10), link.stats().last_error
        # The watcher is subscribed once it hears the core.
        wait_until(lambda: link.publish(TOPIC, b'{"seq": -1}') and -1 in watcher.lines.seqs(), 20,
                   message="the watcher to hear the core", interval_s=0.2)
        _publish(link, range(0, 10))
        wait_until(lambda: set(range(10)) <= set(watcher.lines.seqs()), 20, message="seq 0-9 at the watcher")
        watcher.stop()  # the subscriber goes away; its session stays at the broker

        _publish(link, range(10, 30))  # queued for the absent watcher
        assert link.wait_drained(20)
        cloud.broker.stop()  # the broker goes, saving its sessions
        wait_until(lambda: not link.connected, 20, message="the core to see the broker gone")
        _publish(link, range(30, 60))  # spooled by the core
        assert len(link.spooler) == 30
        cloud.broker.start()
        assert link.wait_drained(60), f"{len(link.spooler)} still spooled"  # the core drains: nobody listens

        watcher = Watcher(cloud)  # the subscriber is back, with the same client id
        wait_until(lambda: set(range(10, 60)) <= set(watcher.lines.seqs()), 30, message=lambda: (
            f"every seq 10-59 at the returning watcher (missing "
            f"{sorted(set(range(10, 60)) - set(watcher.lines.seqs()))})"))
        assert link.stats().dropped == 0
    finally:
        watcher.stop()
        link.stop()


def test_a_watcher_back_after_being_away_gets_every_message_published_meanwhile(cloud):
    """Both brokers (mosquitto and the amqtt fallback) queue QoS 1 messages for an absent persistent session."""
    link = CloudLink(core_settings(cloud), MemorySpooler())
    link.start()
    watcher = Watcher(cloud)
    try:
        assert link.wait_connected(10), link.stats().last_error
        wait_until(lambda: link.publish(TOPIC, b'{"seq": -1}') and -1 in watcher.lines.seqs(), 20,
                   message="the watcher to hear the core", interval_s=0.2)
        watcher.stop()
        _publish(link, range(0, 20))
        assert link.wait_drained(20)  # the broker has them all; the watcher is away
        watcher = Watcher(cloud)
        wait_until(lambda: set(range(20)) <= set(watcher.lines.seqs()), 30, message=lambda: (
            f"every seq 0-19 at the returning watcher (missing {sorted(set(range(20)) - set(watcher.lines.seqs()))})"))
    finally:
        watcher.stop()
        link.stop()
