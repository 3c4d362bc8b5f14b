"""`simcore demo`: the command that runs the whole group on replayed real weather (simcore.demo does the work)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def add_demo_command(commands: argparse._SubParsersAction, sub: Callable) -> None:
    """Add `simcore demo` (its flags only: the demo itself is imported when it runs)."""
    from simcore.demo.flags import add_demo_flags

    demo = sub("demo", cmd_demo, "run the whole group on replayed real weather with a local cloud")
    add_demo_flags(demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo (imports its views and scoring now, not when the parser is built)."""
    from simcore.demo.run import cmd_demo as run_demo

    return run_demo(args)
