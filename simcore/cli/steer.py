"""`simcore status | logs | shadow | publish | stop`: look at and steer the running core."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from simcore.cli.common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_NOT_RUNNING
from simcore.group import Function
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
        functions = load_deployment(args.root).group.functions
        function = find_function(functions, args.function)
        if function is None:
            names = sorted({name for candidate in functions for name in function_names(candidate)})
            print(f"simcore: no function {args.function!r}; name one by its name, entry Id, template logical "
                  f"id or ARN: {', '.join(names)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if args.function not in function_names(function):
            print(f"simcore: {args.function!r} taken as {function.logical_id or function.id} ({function.name})",
                  file=sys.stderr)
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


def function_names(function: Function) -> tuple[str, ...]:
    """Every name a user may give a function by: its name, its entry `Id`, its template logical id, its ARN."""
    return tuple(name for name in (function.name, function.id, function.logical_id, function.arn) if name)


def find_function(functions: Iterable[Function], name: str) -> Function | None:
    """The function `name` names exactly (see `function_names`); else the only one whose name, Id or logical id
    contains it, ignoring case (`InferenceFunction` for `RainInferenceFunction`); else None."""
    functions = tuple(functions)
    exact = next((function for function in functions if name in function_names(function)), None)
    if exact is not None:
        return exact
    needle = name.lower()
    if not needle:
        return None
    close = [function for function in functions
             if any(needle in candidate.lower() for candidate in function_names(function)[:-1])]
    return close[0] if len(close) == 1 else None


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
