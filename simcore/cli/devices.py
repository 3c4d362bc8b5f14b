"""`simcore devices`: the running core's devices, whether each is connected, and its counters."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from simcore.cli.common import EXIT_NOT_RUNNING
from simcore.service.control import ControlError, call

COLUMNS = ("published", "to_device_sent", "to_device_not_subscribed", "to_device_offline", "dropped_too_large",
           "connections")


def cmd_devices(args: argparse.Namespace) -> int:
    """Print one line per device of the group (or the whole status as JSON with --json)."""
    try:
        status = call(args.root, "devices")
    except ControlError as error:
        print(f"simcore: no running core: {error.message}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    if not status.get("running"):
        print("the running core's group has no devices")
        return 0
    connected = set(status["connected"])
    print(f"device MQTT server on port {status['port']}; certificate valid until "
          f"{status['server_certificate_not_after']}; refused connections: {status['refused_connections']}")
    print("  ".join(("thing", "connected", *COLUMNS)))
    for thing, counters in sorted(status["devices"].items()):
        values = [str(counters.get(column, 0)) for column in COLUMNS]
        print("  ".join((thing, "yes" if thing in connected else "no", *values)))
    for line in status.get("recent_refusals", [])[-3:]:
        print(f"refused: {line}")
    return 0


def add_devices_command(_commands: argparse._SubParsersAction, sub: Callable) -> None:
    """Add `simcore devices`."""
    command = sub("devices", cmd_devices, "the running core's devices: connected or not, messages each way, refusals")
    command.add_argument("--json", action="store_true", help="the device server's whole status as JSON")
