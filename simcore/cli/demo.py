"""`simcore demo`: the command that runs the whole group on replayed real weather (simcore.demo does the work)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def add_demo_command(commands: argparse._SubParsersAction, sub: Callable) -> None:
    """Add `simcore demo`."""
    from simcore.demo.run import add_demo_flags, cmd_demo

    demo = sub("demo", cmd_demo, "run the whole group on replayed real weather with a local cloud")
    add_demo_flags(demo)
