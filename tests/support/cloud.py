"""Helpers for the cloud tests: a stand-in cloud, a TCP gate, a collecting subscriber, the core's link settings.

The gate sits between the core's link and the real mosquitto broker. It never touches the bytes (TLS runs
end to end); it only decides WHEN the core may reach the broker, so a test can let the cloud-side
subscriber re-subscribe after a broker restart before the core reconnects and drains its spool.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from dataclasses import replace
from pathlib import Path

from simcore.cloud.link import CloudLink
from simcore.cloud.settings import LinkSettings
from simcore.cloud.standin import RunningCloud, start_cloud
from simcore.shadow.engine import ShadowEngine
from simcore.shadow.service import open_shadow_service

FAST_BACKOFF = {"backoff_base_s": 0.2, "backoff_max_s": 1.0, "connect_timeout_s": 5.0}


def start_test_cloud(state_dir: Path, thing: str = "RainCore") -> tuple[RunningCloud, ShadowEngine]:
    """A stand-in cloud on a free port with an in-memory cloud shadow engine."""
    service = open_shadow_service()
    return start_cloud(state_dir, 0, shadow_service=service, thing_name=thing), service.engine


class TcpGate:
    """A TCP relay to `upstream_port` that can refuse new connections and cut existing ones."""

    def __init__(self, upstream_port: int, host: str = "127.0.0.1"):
        self.upstream = (host, upstream_port)
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind((host, 0))
        self._server.listen(16)
        self.port = self._server.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._holding = threading.Event()  # client→broker bytes are swallowed: sent, never delivered
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def open(self) -> None:
        """Let new connections through."""
        self._open.set()

    def hold(self) -> None:
        """Swallow what clients send on the current connections (their messages stay unacknowledged)."""
        self._holding.set()

    def close(self) -> None:
        """Refuse new connections (accepted, then closed at once) and cut the existing ones."""
        self._open.clear()
        self.cut()
        self._holding.clear()

    def cut(self) -> None:
        """Close every relayed connection."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def shutdown(self) -> None:
        """Stop relaying for good."""
        self._closed = True
        self.close()
        self._server.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if not self._open.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=2)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            for source, target, holdable in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(source, target, holdable), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, holdable: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if holdable and self._holding.is_set():
                    continue
                target.sendall(chunk)
        except OSError:
            pass
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class Collector:
    """A cloud-side subscriber (its own certificate) that records every message it receives, in order."""

    def __init__(self, cloud: RunningCloud, topic_filter: str, name: str = "cloud-subscriber"):
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.link = CloudLink(cloud.client_settings(name, **FAST_BACKOFF))
        self.link.subscribe(topic_filter, self._record)
        self.link.start()

    def _record(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self.messages.append((topic, payload))

    def payloads(self) -> list[bytes]:
        """Every payload received, in arrival order."""
        with self._lock:
            return [payload for _, payload in self.messages]

    def json_field(self, name: str) -> list:
        """The `name` field of every JSON payload received, in arrival order."""
        return [json.loads(payload)[name] for payload in self.payloads()]

    def stop(self) -> None:
        """Disconnect the subscriber."""
        self.link.stop()


def core_settings(cloud: RunningCloud, port: int | None = None, **overrides) -> LinkSettings:
    """The core thing's settings from the stand-in's config.json, optionally through another port."""
    settings = cloud.core_settings(**{**FAST_BACKOFF, **overrides})
    return settings if port is None else replace(settings, port=port)
