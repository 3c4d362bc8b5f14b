"""`simcore setup-users`: create ggc_user/ggc_group and let them reach the Lambdas' interpreters and code."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from simcore.core.identity import DEFAULT_GROUP, DEFAULT_USER
from simcore.core.interpreters import resolve_interpreter
from simcore.core.lambda_users import ensure_lambda_users, share_with_group
from simcore.paths import LAMBDA_RUNTIME

# The Runtimes whose interpreters are shared when no --share is given (the one the group's Lambdas use).
DEFAULT_RUNTIMES = ("python3.8",)


def add_users_command(commands: argparse._SubParsersAction, sub: Callable) -> None:
    """Add `simcore setup-users`."""
    command = sub("setup-users", cmd_setup_users, "as root: create ggc_user/ggc_group (as the EC2 bootstrap "
                  "does) and let ggc_group pass through the folders above the Lambdas' interpreters and code")
    command.add_argument("--share", action="append", type=Path, default=[], metavar="PATH",
                         help="a path ggc_group must reach (default: the python3.8 interpreter simcore would "
                         "use, simcore's own interpreter and its Lambda runtime, and the ML connectors' runtime "
                         "when it is there)")
    command.add_argument("--user", default=DEFAULT_USER, help="the user to create (default %(default)s)")
    command.add_argument("--group", default=DEFAULT_GROUP, help="its group (default %(default)s)")


def cmd_setup_users(args: argparse.Namespace) -> int:
    """Create the users if missing, then open the way to each shared path; print what changed."""
    for command in ensure_lambda_users(args.user, args.group):
        print(f"ran: {command}")
    from simcore.connectors.image_classification import connector_runtime  # only this command needs it

    ml_runtime = connector_runtime(os.environ)  # the ML Image Classification connector's model server
    paths = args.share or [Path(resolve_interpreter(runtime)[0]) for runtime in DEFAULT_RUNTIMES] + [
        Path(sys.executable), LAMBDA_RUNTIME] + ([ml_runtime] if ml_runtime.exists() else [])
    for path in paths:
        for folder in share_with_group(path, args.group):
            print(f"{args.group} may now pass through {folder} (ACL g:{args.group}:--x)")
    print(f"{args.user}/{args.group} ready")
    return 0
