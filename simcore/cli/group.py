"""`simcore bundle` and `simcore group deploy|status|cancel`: a group deployed to a fleet through AWS IoT Jobs.

Against AWS: `--region`, `--bucket` and `--role-arn` (the role IoT Jobs presigns the bundle's URL with), boto3's
usual credentials. Against the stand-in cloud: `--standin <its state dir>` (its jobs.json gives the rest).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from simcore.cli.common import key_values
from simcore.defaults import DEFAULT_ACCOUNT_ID, DEFAULT_REGION, DEFAULT_STACK_NAME
from simcore.errors import InputError

WATCH_INTERVAL_S = 2.0


class FleetAccessError(InputError):
    """The fleet command does not know where to deploy: no stand-in jobs.json, or no bucket for AWS."""

    code = "FleetAccessError"


def cmd_bundle(args: argparse.Namespace) -> int:
    """Write the group's bundle (deterministic) and print its group version id."""
    from simcore.deploy.bundle import build_bundle
    from simcore.template.loader import load_parameters

    parameters = load_parameters(args.params_file) if args.params_file else {}
    parameters.update(key_values(args.param, "--param"))
    manifest = build_bundle(args.template, parameters, args.output, region=args.region,
                            account_id=args.account_id, stack_name=args.stack_name)
    print(f"bundle {args.output}: group version {manifest['groupVersionId']}, {len(manifest['files'])} files")
    return 0


def fleet_access(args: argparse.Namespace):
    """Where the fleet commands deploy: the stand-in's jobs.json, or AWS from the flags."""
    from simcore.cloud.fleet_publish import FleetAccess

    if args.standin is not None:
        from simcore.cloud.jobs_standin import read_jobs_settings

        try:
            return FleetAccess.from_standin(read_jobs_settings(args.standin))
        except FileNotFoundError:
            raise FleetAccessError(f"no running stand-in with jobs in {args.standin}: start it with "
                                   f"`simcore cloud start --jobs --state-dir {args.standin}`") from None
    if not args.bucket:
        raise FleetAccessError("give --bucket (the S3 bucket bundles go to), or --standin for the stand-in cloud")
    return FleetAccess(args.region, args.bucket, args.endpoint_url, args.s3_endpoint_url, args.role_arn)


def cmd_group_deploy(args: argparse.Namespace) -> int:
    """Upload the bundle and create the job."""
    from simcore.cloud.fleet_publish import publish

    published = publish(fleet_access(args), args.bundle, args.targets, job_id=args.job_id, rollout=args.rollout,
                        abort_failure_rate=args.abort_on_failure_rate)
    print(f"job {published['jobId']}: group version {published['groupVersionId']} to "
          f"{', '.join(published['targets'])}")
    return 0


def _print_status(status: dict) -> None:
    out = sys.stdout
    counts = status["counts"]
    summary = ", ".join(f"{name[len('numberOf'):-len('Things')].lower()} {value}"
                        for name, value in counts.items() if value)
    out.write(f"job {status['jobId']}: {status['status']} ({summary or 'no executions yet'})\n")
    for thing in status["things"]:
        details = "; ".join(f"{key}={value}" for key, value in sorted(thing["details"].items()))
        out.write(f"  {thing['thing']:<28} {thing['status']:<12} {details}\n")
    out.flush()


def cmd_group_status(args: argparse.Namespace) -> int:
    """Show the job and every core's state (--watch: until the job ends, core by core as they change)."""
    from simcore.cloud.fleet_publish import TERMINAL, job_status

    access = fleet_access(args)
    if args.json:
        print(json.dumps(job_status(access, args.job), indent=2))
        return 0
    seen: dict[str, str] = {}
    while True:
        status = job_status(access, args.job)
        if not args.watch:
            _print_status(status)
            return 0
        for thing in status["things"]:
            if seen.get(thing["thing"]) != thing["status"]:
                seen[thing["thing"]] = thing["status"]
                details = "; ".join(f"{key}={value}" for key, value in sorted(thing["details"].items()))
                print(f"{time.strftime('%H:%M:%S')} {thing['thing']:<28} {thing['status']:<12} {details}",
                      flush=True)
        if status["status"] != "IN_PROGRESS" and all(thing["status"] in TERMINAL for thing in status["things"]):
            _print_status(status)
            return 0
        time.sleep(WATCH_INTERVAL_S)


def cmd_group_cancel(args: argparse.Namespace) -> int:
    """Cancel the job."""
    from simcore.cloud.fleet_publish import cancel

    cancel(fleet_access(args), args.job, force=args.force)
    print(f"job {args.job} cancelled{' (in-progress executions too)' if args.force else ''}")
    return 0


def _access_flags(command: argparse.ArgumentParser) -> None:
    command.add_argument("--standin", type=Path, metavar="STATE_DIR",
                         help="the stand-in cloud's state dir (started with `simcore cloud start --jobs`)")
    command.add_argument("--region", default=DEFAULT_REGION)
    command.add_argument("--bucket", help="the S3 bucket for bundles (AWS)")
    command.add_argument("--role-arn", help="the IAM role IoT Jobs presigns the bundle URL with (AWS)")
    command.add_argument("--endpoint-url", help="another IoT control-plane endpoint")
    command.add_argument("--s3-endpoint-url", help="another S3 endpoint")


def add_group_commands(commands: argparse._SubParsersAction, _sub: Callable) -> None:
    """Add `simcore bundle` and `simcore group deploy|status|cancel`."""
    bundle = commands.add_parser("bundle", help="pack a group for remote cores (deterministic zip)",
                                 description=cmd_bundle.__doc__)
    bundle.add_argument("template", type=Path)
    bundle.add_argument("--param", action="append", default=[], metavar="K=V", help="a template parameter")
    bundle.add_argument("--params-file", type=Path, help="parameters as JSON (AWS CLI list or a map)")
    bundle.add_argument("-o", "--output", type=Path, required=True)
    bundle.add_argument("--region", default=DEFAULT_REGION)
    bundle.add_argument("--account-id", default=DEFAULT_ACCOUNT_ID)
    bundle.add_argument("--stack-name", default=DEFAULT_STACK_NAME)
    bundle.set_defaults(handler=cmd_bundle)

    group = commands.add_parser("group", help="deploy a bundle to a fleet of cores through AWS IoT Jobs",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = group.add_subparsers(dest="group_command", required=True, metavar="VERB")
    deploy = verbs.add_parser("deploy", help="upload a bundle and create the IoT job")
    deploy.add_argument("bundle", type=Path)
    deploy.add_argument("--targets", nargs="+", required=True, metavar="THING|THING_GROUP")
    deploy.add_argument("--job-id")
    deploy.add_argument("--rollout", metavar="N/min|P%/min", help="at most N things (or P%% of them) a minute")
    deploy.add_argument("--abort-on-failure-rate", type=float, metavar="PERCENT",
                        help="cancel the job once this percentage of finished cores FAILED")
    deploy.set_defaults(handler=cmd_group_deploy)
    status = verbs.add_parser("status", help="the job and each core's state")
    status.add_argument("job")
    status.add_argument("--watch", action="store_true", help="follow the rollout core by core until it ends")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_group_status)
    cancel = verbs.add_parser("cancel", help="cancel the job")
    cancel.add_argument("job")
    cancel.add_argument("--force", action="store_true", help="also stop cores that are deploying it")
    cancel.set_defaults(handler=cmd_group_cancel)
    for command in (deploy, status, cancel):
        _access_flags(command)

