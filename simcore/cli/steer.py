"""`simcore status | logs | shadow | publish | stop`: look at and steer the running core."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from simcore.cli.common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_NOT_RUNNING
from simcore.service.control import ControlError, call


def cmd_status(args: argparse.Namespace) -> int:
    """Print the running core's status (or the last deployment's, when no core runs)."""
    try:
        status = call(args.root, "status")
    except ControlError as error:
        from simcore.deploy.record import read_status

        print(f"no running core: {error.message}", file=sys.stderr)
        deployment_status = read_status(args.root)
        if deployment_status is not None:
            print(json.dumps({"deployment": deployment_status}, indent=2))
        return EXIT_NOT_RUNNING
    print(json.dumps(status, indent=2))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    """Print a function's log (or a system log with --system), optionally following it."""
    from simcore.core.logs import LogLayout
    from simcore.deploy.record import load_deployment

    layout = LogLayout(Path(args.root).absolute())
    if args.system:
        try:
            path = layout.system_log(args.function)
        except ValueError as error:
            print(f"simcore: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
    else:
        group = load_deployment(args.root).group
        names = {function.name: function for function in group.functions}
        names.update({function.id: function for function in group.functions})
        function = names.get(args.function) or next(
            (candidate for candidate in group.functions if candidate.arn == args.function), None
        )
        if function is None:
            print(f"simcore: no function {args.function!r}; the group has {', '.join(sorted(names))}",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
        path = layout.lambda_log(function)
    if not path.exists():
        print(f"simcore: no log yet at {path}", file=sys.stderr)
        return EXIT_FAILED
    with path.open(encoding="utf-8", errors="replace") as handle:
        sys.stdout.write(handle.read())
        while args.follow:
            line = handle.readline()
            if line:
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                time.sleep(0.2)  # polling a file for appended lines: there is nothing to wait on
    return 0


def cmd_shadow(args: argparse.Namespace) -> int:
    """get|update|delete a local shadow on the running core."""
    payload = args.payload if args.payload is not None else ""
    if args.operation == "update" and not payload:
        print("simcore: shadow update needs a JSON payload, e.g. '{\"state\":{\"desired\":{...}}}'",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    answer = call(args.root, "shadow", {"operation": args.operation, "thing": args.thing, "payload": payload})
    print(json.dumps(answer, indent=2))
    return EXIT_BAD_INPUT if isinstance(answer, dict) and "code" in answer and "message" in answer else 0


def cmd_publish(args: argparse.Namespace) -> int:
    """Publish a message into the running core's router as if it came from `cloud`."""
    outcome = call(args.root, "publish", {"topic": args.topic, "payload": args.payload})
    print(json.dumps(outcome))
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    """Ask the running core to stop."""
    call(args.root, "stop")
    print("stop requested")
    return 0
