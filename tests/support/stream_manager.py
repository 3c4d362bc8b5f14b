"""A stream manager in the test process (authentication off, a free port), and the two SDK clients to reach it."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from simcore.streams.manager import StreamManager
from simcore.streams.settings import read_settings

# The SDK packages whose clients must work unmodified: greengrasssdk's copy and the PyPI `stream-manager`.
SDK_PACKAGES = ("greengrasssdk.stream_manager", "stream_manager")


def sdk(package: str) -> ModuleType:
    """One SDK package (the client, data classes, exceptions and Util all import from its top level)."""
    return importlib.import_module(package)


@contextlib.contextmanager
def local_stream_manager(root: Path, *, authenticate=lambda token: None, fast_retries: bool = True,
                         **variables: str) -> Iterator[StreamManager]:
    """A started StreamManager storing under `root`; `variables` are extra GGStreamManager environment variables."""
    environment = {"STREAM_MANAGER_SERVER_PORT": "0", "STREAM_MANAGER_AUTHENTICATE_CLIENT": "false", **variables}
    backoff = {"backoff_initial_s": 0.05, "backoff_max_s": 0.4} if fast_retries else {}
    manager = StreamManager(read_settings(environment, root), authenticate, **backoff)
    manager.start()
    try:
        yield manager
    finally:
        manager.stop()
