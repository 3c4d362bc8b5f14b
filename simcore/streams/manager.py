"""`GGStreamManager` assembled: the store, the protocol server, the export engine and the TTL sweep.

The core builds one when its group lists `arn:aws:lambda:::function:GGStreamManager:1`; it runs in the core's
process (docs/stream-manager.md, "Where it runs").
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from simcore.defaults import (
    STREAM_MANAGER_HANDSHAKE_TIMEOUT_S,
    STREAM_MANAGER_MAX_CONNECTIONS,
    STREAM_MANAGER_MAX_IN_FLIGHT,
    STREAM_MANAGER_MAX_MESSAGE_BYTES,
    STREAM_MANAGER_MAX_STREAMS,
    STREAM_MANAGER_MEMORY_BUDGET_BYTES,
)
from simcore.errors import StartError
from simcore.streams.definitions import MAX_MILLIS, ExportConfig
from simcore.streams.destinations import Destination, ExportFailed, IoTAnalytics, Kinesis, SiteWise
from simcore.streams.exporters import ExportEngine, Throttle
from simcore.streams.s3_tasks import Reader, S3TaskExecutor
from simcore.streams.server import ServerLimits, StreamManagerServer
from simcore.streams.settings import StreamManagerSettings
from simcore.streams.store import StreamStore

TTL_SWEEP_S = 30.0


class _Unsupported:
    """HTTP export: test-only in v1, not offered here; reported in the export status and retried."""

    def send(self, stream_name: str, messages: Any) -> int:
        raise ExportFailed("HTTP export (test-only in v1) is not supported by simcore")


class StreamManager:
    """The stream manager of one core."""

    def __init__(self, settings: StreamManagerSettings, authenticate: Callable[[str | None], str | None], *,
                 reader: Reader | None = None, backoff_initial_s: float = 1.0, backoff_max_s: float = 300.0):
        """`authenticate(token)` names a token's function or None; `reader` is whom an S3 upload's file must be
        readable by (None: no check)."""
        self.settings = settings
        self.reader = reader
        self.store = StreamStore(settings.store_root, max_streams=STREAM_MANAGER_MAX_STREAMS,
                                 memory_budget_bytes=STREAM_MANAGER_MEMORY_BUDGET_BYTES,
                                 max_message_bytes=STREAM_MANAGER_MAX_MESSAGE_BYTES)
        limits = ServerLimits(
            max_connections=STREAM_MANAGER_MAX_CONNECTIONS,
            max_frame_bytes=STREAM_MANAGER_MAX_MESSAGE_BYTES + 64 * 1024,
            max_in_flight=STREAM_MANAGER_MAX_IN_FLIGHT,
            handshake_timeout_s=STREAM_MANAGER_HANDSHAKE_TIMEOUT_S,
            max_response_bytes=STREAM_MANAGER_MAX_MESSAGE_BYTES,
            max_read_timeout_ms=MAX_MILLIS,
        )
        self.server = StreamManagerServer(self.store, settings.port, limits,
                                          require_auth=settings.authenticate_client, authenticate=authenticate)
        self.engine = ExportEngine(self.store, self._destination, threads=settings.thread_pool_size,
                                   throttle=Throttle(settings.max_bandwidth_kbps),
                                   backoff_initial_s=backoff_initial_s, backoff_max_s=backoff_max_s)
        self._stop_sweep = threading.Event()
        self._sweep: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on (the configured one before start)."""
        return self.server.port if self.server.port is not None else self.settings.port

    def start(self) -> int:
        """Serve and export; the port. StartError when the port cannot be had."""
        try:
            port = self.server.start()
        except OSError as error:
            raise StartError(f"the stream manager cannot listen on 127.0.0.1:{self.settings.port}: "
                             f"{error.strerror or error}; set GGStreamManager's STREAM_MANAGER_SERVER_PORT to a "
                             "free port", location="GGStreamManager.Environment.Variables."
                                                   "STREAM_MANAGER_SERVER_PORT") from None
        self.engine.start()
        self._sweep = threading.Thread(target=self._sweep_loop, name="stream-ttl", daemon=True)
        self._sweep.start()
        return port

    def stop(self) -> None:
        """Stop serving and exporting; File streams stay on disk."""
        self._stop_sweep.set()
        self.server.stop()
        self.engine.stop()
        if self._sweep is not None:
            self._sweep.join(timeout=10)
        self.store.close()

    def status(self) -> dict[str, Any]:
        """Streams, server counters and exports, as plain data."""
        return {"port": self.port, "streams": len(self.store.names()), "server": dict(self.server.counters),
                "exports": self.engine.status()}

    def _sweep_loop(self) -> None:
        while not self._stop_sweep.wait(TTL_SWEEP_S):
            self.store.expire_all()

    def _destination(self, stream_name: str, config: ExportConfig) -> Destination:
        endpoint = self.settings.endpoint_url
        if config.kind == "kinesis":
            return Kinesis(config.settings["kinesisStreamName"], endpoint)
        if config.kind == "iotAnalytics":
            return IoTAnalytics(config.settings["iotChannel"], config.settings["iotMsgIdPrefix"], endpoint)
        if config.kind == "IotSitewise":
            return SiteWise(endpoint)
        if config.kind == "s3TaskExecutor":
            return S3TaskExecutor(config, self._append_status, part_size=self.settings.min_part_size_bytes,
                                  reader=self.reader, endpoint_url=endpoint)
        return _Unsupported()

    def _append_status(self, stream_name: str, payload: bytes) -> None:
        # A missing or full status stream must not fail the upload it reports on.
        with contextlib.suppress(Exception):
            self.store.append(stream_name, payload)
