"""The benchmarks' scratch folders: ones the Lambdas' user may pass through to reach their code."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def lambda_scratch(prefix: str) -> Iterator[Path]:
    """A temporary folder, removed afterwards, of mode 0711: as root the Lambdas run as ggc_user, which must
    pass (not list) through it to their deployed code (tempfile makes it 0700)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        os.chmod(name, 0o711)
        yield Path(name)
