"""`simcore fleet up N | down`: a fleet of cores on this machine against one stand-in cloud (docs/fleet.md)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from simcore.cli.common import key_values

DEFAULT_FLEET_DIR = Path(".simcore-fleet")
DEFAULT_TEMPLATE = Path("cloudformation") / "greengrass-group.yaml"


def cmd_fleet_up(args: argparse.Namespace) -> int:
    """Start N cores, each its own thing, certificate, root and ports, in one thing group."""
    from simcore.service.fleet import fleet_up

    members = fleet_up(args.count, args.standin, args.fleet_dir, args.template, key_values(args.param, "--param"),
                       prefix=args.thing_prefix, thing_group=args.thing_group,
                       interpreters=key_values(args.runtime, "--runtime"))
    for member in members:
        print(f"  {member.thing}: pid {member.pid}, root {member.root}, log {member.log}")
    print(f"{len(members)} cores up in thing group {args.thing_group}; "
          f"`simcore group deploy BUNDLE --targets {args.thing_group} --standin {args.standin}` rolls out to them")
    return 0


def cmd_fleet_down(args: argparse.Namespace) -> int:
    """Stop every core of the fleet (their roots and logs stay)."""
    from simcore.service.fleet import fleet_down

    print(f"{fleet_down(args.fleet_dir)} cores stopped")
    return 0


def add_fleet_commands(commands: argparse._SubParsersAction, _sub: Callable) -> None:
    """Add `simcore fleet up|down`."""
    fleet = commands.add_parser("fleet", help="a fleet of cores on this machine against the stand-in cloud",
                                description=__doc__)
    verbs = fleet.add_subparsers(dest="fleet_command", required=True, metavar="VERB")
    up = verbs.add_parser("up", help="start N cores (`simcore run --jobs` each) in one thing group")
    up.add_argument("count", type=int)
    up.add_argument("--standin", type=Path, default=Path(".simcore-cloud"),
                    help="the stand-in's state dir (started with `simcore cloud start --jobs`)")
    up.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE, help="the group every core starts with")
    up.add_argument("--param", action="append", default=[], metavar="K=V", help="a template parameter "
                    "(ThingName is each core's own)")
    up.add_argument("--runtime", action="append", default=[], metavar="python3.8=PATH")
    up.add_argument("--thing-prefix", default="fleet-core", help="things are <prefix>-01, <prefix>-02...")
    up.add_argument("--thing-group", default="simcore-fleet")
    up.set_defaults(handler=cmd_fleet_up)
    down = verbs.add_parser("down", help="stop the fleet's cores")
    down.set_defaults(handler=cmd_fleet_down)
    for command in (up, down):
        command.add_argument("--fleet-dir", type=Path, default=DEFAULT_FLEET_DIR)
