"""The `simcore` command line: deploy a group from its template, run it, and steer the running core.

Exit codes: 0 success; 1 the operation failed; 2 bad usage (argparse); 3 bad input (template, deployment,
parameters, payload); 4 no running core to talk to.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from simcore.control import ControlError, call, wait_for_signal
from simcore.errors import SimcoreError

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_NOT_RUNNING = 1, 3, 4
DEFAULT_ROOT = Path(".simcore")


def _key_values(items: Sequence[str], what: str) -> dict[str, str]:
    """`K=V` strings as a dict; a clear usage error for anything else."""
    parsed = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise SystemExit(f"simcore: {what} must look like KEY=VALUE, got {item!r}")
        parsed[key] = value
    return parsed


def cmd_deploy(args: argparse.Namespace) -> int:
    """Resolve the template and build a new deployment (the previous one is kept for rollback)."""
    from simcore.deploy import deploy
    from simcore.template import load_parameters

    parameters = load_parameters(args.params_file) if args.params_file else {}
    parameters.update(_key_values(args.param, "--param"))
    deployment = deploy(
        args.template,
        parameters,
        args.root,
        s3_endpoint_url=args.s3_endpoint_url,
        secrets_endpoint_url=args.secrets_endpoint_url,
        secrets_file=args.secrets_file,
        region=args.region,
        account_id=args.account_id,
        stack_name=args.stack_name,
    )
    print(f"deployment {deployment.number} ({deployment.id}) is current under {deployment.root}")
    for function in deployment.group.functions:
        print(f"  function {function.arn} ({'pinned' if function.pinned else 'on-demand'})")
    for warning in deployment.warnings:
        print(f"  warning: {warning}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """Make the previous deployment current again."""
    from simcore.deploy import rollback

    deployment = rollback(args.root)
    print(f"deployment {deployment.number} ({deployment.id}) is current again; restart `simcore run` to use it")
    return 0


def run_options(args: argparse.Namespace):
    """The RunOptions the `run` and `demo` flags describe."""
    from simcore.daemon import RunOptions

    return RunOptions(
        isolation=None if args.isolation == "group" else args.isolation,
        interpreters=_key_values(args.runtime, "--runtime"),
        ipc_port=args.ipc_port,
        cloud_config=args.config,
        certs_dir=args.certs_dir,
        spool_storage=args.spool,
    )


def cmd_run(args: argparse.Namespace) -> int:
    """Run the current deployment until Ctrl-C, SIGTERM or `simcore stop`."""
    from simcore.daemon import RunningCore
    from simcore.deploy import load_deployment

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    deployment = load_deployment(args.root)
    running = RunningCore(deployment, run_options(args))
    running.start()
    print(f"core running deployment {deployment.number}; IPC on 127.0.0.1:{running.core.ipc_port}; "
          "Ctrl-C to stop", flush=True)
    stop_requested = threading.Event()
    threading.Thread(target=lambda: (running.stopped.wait(), stop_requested.set()), daemon=True).start()
    wait_for_signal(stop_requested)
    if not running.stopped.is_set():
        running.stop()
    print("core stopped; shadows and spool kept on disk")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print the running core's status (or the last deployment's, when no core runs)."""
    try:
        status = call(args.root, "status")
    except ControlError as error:
        from simcore.deploy import read_status

        print(f"no running core: {error.message}", file=sys.stderr)
        deployment_status = read_status(args.root)
        if deployment_status is not None:
            print(json.dumps({"deployment": deployment_status}, indent=2))
        return EXIT_NOT_RUNNING
    print(json.dumps(status, indent=2))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    """Print a function's log (or a system log with --system), optionally following it."""
    from simcore.deploy import load_deployment

    log_root = Path(args.root).absolute() / "var" / "log"
    if args.system:
        path = log_root / "system" / f"{args.function}.log"
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
        path = log_root / "user" / group.region / group.account_id / f"{function.name}.log"
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one sub-command per verb."""
    parser = argparse.ArgumentParser(prog="simcore", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def sub(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="the core's directory (default .simcore)")
        command.set_defaults(handler=handler)
        return command

    deploy = sub("deploy", cmd_deploy, "deploy a group from its CloudFormation template")
    deploy.add_argument("template", type=Path)
    deploy.add_argument("--param", action="append", default=[], metavar="K=V", help="a template parameter")
    deploy.add_argument("--params-file", type=Path, help="parameters as JSON (AWS CLI list or a map)")
    deploy.add_argument("--region", default="us-east-1")
    deploy.add_argument("--account-id", default="123456789012")
    deploy.add_argument("--stack-name", default="rain-edge")
    deploy.add_argument("--s3-endpoint-url", help="S3 endpoint for s3:// ML resources (e.g. a local S3)")
    deploy.add_argument("--secrets-endpoint-url", help="Secrets Manager endpoint for the group's secret resources")
    deploy.add_argument("--secrets-file", type=Path, help="secret values from a local JSON file instead of AWS "
                        "(see docs/secrets.md; also SIMCORE_SECRETS_FILE)")

    sub("rollback", cmd_rollback, "make the previous deployment current again")

    run = sub("run", cmd_run, "run the current deployment until Ctrl-C or `simcore stop`")
    add_run_flags(run)

    sub("status", cmd_status, "show the running core's workers, router counters, cloud link and sync")

    logs = sub("logs", cmd_logs, "print a function's log (name, id or ARN), or a system log with --system")
    logs.add_argument("function")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("--system", action="store_true", help="FUNCTION names a system log (runtime, GGShadowService)")

    shadow = sub("shadow", cmd_shadow, "get, update or delete a local shadow on the running core")
    shadow.add_argument("operation", choices=["get", "update", "delete"])
    shadow.add_argument("thing")
    shadow.add_argument("payload", nargs="?")

    publish = sub("publish", cmd_publish, "publish a message into the core's router, as from `cloud`")
    publish.add_argument("topic")
    publish.add_argument("payload")

    sub("stop", cmd_stop, "stop the running core")

    from simcore.cli_cloud import add_cloud_commands
    from simcore.demo import add_demo_command

    add_cloud_commands(commands, sub)
    add_demo_command(commands, sub)
    return parser


def add_run_flags(command: argparse.ArgumentParser) -> None:
    """The flags `run` and `demo` share."""
    command.add_argument("--isolation", choices=["off", "container", "nocontainer", "group"], default="off",
                         help="off: resources under the root (default, works everywhere); container: a mount "
                         "namespace as GreengrassContainer; group: each function's own IsolationMode")
    command.add_argument("--runtime", action="append", default=[], metavar="python3.8=PATH",
                         help="the interpreter for a Lambda Runtime")
    command.add_argument("--ipc-port", type=int, default=0, help="IPC port (default: any free port)")
    command.add_argument("--config", type=Path, help="a v1 config.json: link to that IoT endpoint")
    command.add_argument("--certs-dir", type=Path, help="where config.json's cert paths lie (default: beside it)")
    command.add_argument("--spool", choices=["Memory", "FileSystem"], default="FileSystem",
                         help="the cloud spooler's storage (FileSystem survives restarts)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, run the command, map errors to exit codes and one readable line."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ControlError as error:
        print(f"simcore: {error.message}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    except SimcoreError as error:
        print(f"simcore: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
