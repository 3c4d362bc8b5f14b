"""A TCP proxy on a free loopback port that a test can take down and bring back: the destination "down then back".

Up, it forwards every connection to `target`; down, it accepts and closes each at once (the client sees the
connection drop, as when a network or service goes away), and cuts the connections it was forwarding.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class ToggleProxy:
    """Forwards 127.0.0.1:`port` to `target` (host, port) while `up`."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.up = True
        self.refused = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return f"http://127.0.0.1:{self.port}"

    def set_up(self, up: bool) -> None:
        """Bring the destination back (True) or take it down (False, cutting open connections)."""
        self.up = up
        if not up:
            with self._lock:
                for sock in list(self._open):
                    _close(sock)
                self._open.clear()

    def close(self) -> None:
        """Stop listening."""
        self._closed = True
        self.set_up(False)
        _close(self._listener)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self.up:
                self.refused += 1
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                _close(sock)
                with self._lock:
                    self._open.discard(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
