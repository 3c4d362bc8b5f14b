"""SHA-256 of a file, read in pieces: one definition for the bundle's manifest and the job document."""

from __future__ import annotations

import hashlib
from pathlib import Path

_PIECE_BYTES = 1024 * 1024


def file_sha256(path: Path) -> str:
    """The hex SHA-256 of the file at `path` (read a MiB at a time: a bundle may be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while piece := stream.read(_PIECE_BYTES):
            digest.update(piece)
    return digest.hexdigest()
