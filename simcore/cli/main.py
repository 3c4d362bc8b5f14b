"""The `simcore` command line: deploy a group from its template, run it, and steer the running core.

Exit codes: 0 success; 1 the operation failed; 2 bad usage (argparse); 3 bad input (template, deployment,
parameters, payload); 4 no running core to talk to. An expected failure is one line on stderr,
`simcore: <what is wrong and how to fix it> (at <where>)`, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from simcore.cli.common import DEFAULT_ROOT
from simcore.cli.deploy import cmd_deploy, cmd_rollback
from simcore.cli.run import add_run_flags, cmd_run
from simcore.cli.steer import cmd_logs, cmd_publish, cmd_shadow, cmd_status, cmd_stop
from simcore.defaults import DEFAULT_ACCOUNT_ID, DEFAULT_REGION, DEFAULT_STACK_NAME
from simcore.errors import EXIT_FAILED, SimcoreError


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
    deploy.add_argument("--region", default=DEFAULT_REGION)
    deploy.add_argument("--account-id", default=DEFAULT_ACCOUNT_ID)
    deploy.add_argument("--stack-name", default=DEFAULT_STACK_NAME)
    deploy.add_argument("--s3-endpoint-url", help="S3 endpoint for s3:// ML resources (e.g. a local S3)")
    deploy.add_argument("--secrets-endpoint-url", help="Secrets Manager endpoint for the group's secret resources")
    deploy.add_argument("--runtime", action="append", default=[], metavar="python3.8=PATH",
                        help="the interpreter a Lambda Runtime will run on (checked now; pass the same to `run`)")
    deploy.add_argument("--group-version-id", help=argparse.SUPPRESS)  # a bundle's, when a fleet job deploys it
    deploy.add_argument("--secrets-file", type=Path, help="secret values from a local JSON file instead of AWS "
                        "(see docs/secrets.md; also SIMCORE_SECRETS_FILE)")

    sub("rollback", cmd_rollback, "make the previous deployment current again")

    run = sub("run", cmd_run, "run the current deployment until Ctrl-C or `simcore stop`")
    add_run_flags(run)

    sub("status", cmd_status, "show the running core's workers, router counters, cloud link and sync")

    logs = sub("logs", cmd_logs, "print a function's log (its name, entry Id, template logical id or ARN), "
               "or a system log with --system")
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

    from simcore.cli.cloud import add_cloud_commands
    from simcore.cli.demo import add_demo_command
    from simcore.cli.devices import add_devices_command
    from simcore.cli.export import add_export_command
    from simcore.cli.fleet import add_fleet_commands
    from simcore.cli.group import add_group_commands
    from simcore.cli.users import add_users_command

    add_cloud_commands(commands, sub)
    add_demo_command(commands, sub)
    add_devices_command(commands, sub)
    add_export_command(commands)
    add_group_commands(commands, sub)
    add_fleet_commands(commands, sub)
    add_users_command(commands, sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, run the command, map errors to exit codes and one readable line."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except SimcoreError as error:
        # The one place an error becomes the CLI's answer: its message (with the fix) and its exit code.
        print(f"simcore: {error.describe()}", file=sys.stderr)
        return error.exit_code
    except OSError as error:
        # A folder or file the command was pointed at cannot be used (a read-only or unwritable --root,
        # --state-dir...): the machine's answer, said once, not a traceback.
        where = f" {error.filename}" if error.filename else ""
        print(f"simcore: cannot use{where}: {error.strerror or error}; check the path and its permissions",
              file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
