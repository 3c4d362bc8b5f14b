"""The write-ahead-log settings every SQLite file of the core shares: WAL, checkpointed often, kept small.

SQLite checkpoints its WAL only after 1000 pages (about 4 MB) by default and never shrinks the file, so
every database of a long-running core held a 4 MB WAL. `bound_wal` sets a smaller automatic checkpoint and
a size the WAL is truncated back to after each checkpoint (`simcore.defaults`); docs/reliability.md states
the bound and where it stops holding (a reader that keeps a snapshot open blocks the checkpoint).
"""

from __future__ import annotations

import sqlite3

from simcore.defaults import WAL_AUTOCHECKPOINT_PAGES, WAL_SIZE_LIMIT_BYTES


def bound_wal(db: sqlite3.Connection, *, synchronous: str = "FULL") -> None:
    """Put `db` in WAL mode with `synchronous` (FULL: a commit survives power loss) and the WAL bounds."""
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
    db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
