"""kill -9 of a core running GGStreamManager: every acknowledged append to a File stream is there after the
restart, byte for byte and under its sequence number (with and without flushOnWrite), numbering goes on
after the last one, and a Memory stream is gone. The PyPI SDK's client appends while the core is killed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

from support.stream_manager import sdk
from support.waiting import wait_until

SCRIPT = Path(__file__).parent / "support" / "stream_core_process.py"
sm = sdk("stream_manager")


def _start(root: Path) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen([sys.executable, str(SCRIPT), str(root)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    assert line, "the core process exited before it served"
    return process, json.loads(line)["port"]


def _append_until_refused(port: int, name: str, acknowledged: list, started: threading.Event) -> None:
    try:
        client = sm.StreamManagerClient(port=port, request_timeout=5)
        number = 0
        while True:
            payload = f"{name}-{number}-".encode() * 20
            sequence = client.append_message(name, payload)
            acknowledged.append((sequence, payload))
            number += 1
            started.set()
    except Exception:  # the core died under the client: what it acknowledged before is what counts
        started.set()


def test_acknowledged_appends_survive_kill_9_and_memory_streams_do_not(tmp_path):
    root = tmp_path / "ggc"
    process, port = _start(root)
    try:
        with sm.StreamManagerClient(port=port) as client:
            for name, flush in (("durable", False), ("flushed", True)):
                client.create_message_stream(sm.MessageStreamDefinition(
                    name=name, stream_segment_size=64 * 1024, strategy_on_full=sm.StrategyOnFull.RejectNewData,
                    flush_on_write=flush))
            client.create_message_stream(sm.MessageStreamDefinition(
                name="volatile", strategy_on_full=sm.StrategyOnFull.RejectNewData, persistence=sm.Persistence.Memory))
            client.append_message("volatile", b"gone after a crash")
        acknowledged = {"durable": [], "flushed": []}
        threads = []
        for name in acknowledged:
            started = threading.Event()
            thread = threading.Thread(target=_append_until_refused, args=(port, name, acknowledged[name], started),
                                      daemon=True)
            thread.start()
            threads.append(thread)
        wait_until(lambda: len(acknowledged["durable"]) > 300 and len(acknowledged["flushed"]) > 20,
                   60, message=lambda: f"appends before the kill ({ {k: len(v) for k, v in acknowledged.items()} })")
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        for thread in threads:
            thread.join(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    process, port = _start(root)
    try:
        with sm.StreamManagerClient(port=port) as client:
            assert sorted(client.list_streams()) == ["durable", "flushed"]
            for name, appended in acknowledged.items():
                stored = client.read_messages(name, sm.ReadMessagesOptions(max_message_count=100_000))
                held = {message.sequence_number: message.payload for message in stored}
                assert [sequence for sequence, _ in appended] == list(range(len(appended)))
                assert all(held.get(sequence) == payload for sequence, payload in appended), name
                # An append the kill cut short may or may not be there; numbering continues after it.
                assert client.append_message(name, b"after restart") == max(held) + 1
    finally:
        process.stdin.close()
        process.wait(30)
