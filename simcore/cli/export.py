"""`simcore export v2`: the group as a Greengrass v2 deployment (requests, CloudFormation, MIGRATION.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from simcore.cli.common import key_values
from simcore.defaults import DEFAULT_ACCOUNT_ID, DEFAULT_REGION, DEFAULT_STACK_NAME


def add_export_command(commands) -> None:
    """`simcore export v2 TEMPLATE [--param K=V ...] -o DIR`."""
    export = commands.add_parser("export", help="export the group for another platform (v2: Greengrass v2)",
                                 description="export the group for another platform")
    targets = export.add_subparsers(dest="target", required=True, metavar="TARGET")
    v2 = targets.add_parser("v2", help="the group as a Greengrass v2 deployment, validated, with MIGRATION.md",
                            description="write the create-component-version and create-deployment requests, the "
                            "same as a CloudFormation template, and MIGRATION.md (see docs/migrate-to-v2.md)")
    v2.add_argument("template", type=Path)
    v2.add_argument("-o", "--out", type=Path, required=True, metavar="DIR", help="the folder to write into")
    v2.add_argument("--param", action="append", default=[], metavar="K=V", help="a template parameter")
    v2.add_argument("--params-file", type=Path, help="parameters as JSON (AWS CLI list or a map)")
    v2.add_argument("--region", default=DEFAULT_REGION)
    v2.add_argument("--account-id", default=DEFAULT_ACCOUNT_ID)
    v2.add_argument("--stack-name", default=DEFAULT_STACK_NAME)
    v2.add_argument("--lambda-version", action="append", default=[], metavar="FUNCTION_ID=N",
                    help="the Lambda version a function's component imports (default: its ARN's, or 1 for an alias)")
    v2.add_argument("--component-version", action="append", default=[], metavar="NAME=VERSION",
                    help="the version of an AWS-provided component the deployment pins")
    v2.set_defaults(handler=cmd_export_v2)


def cmd_export_v2(args: argparse.Namespace) -> int:
    """Export, validate and write; print what was written and how many points need a human."""
    from simcore.export.plan import ExportOptions, export_v2
    from simcore.template.loader import load_parameters

    parameters = load_parameters(args.params_file) if args.params_file else {}
    parameters.update(key_values(args.param, "--param"))
    options = ExportOptions(lambda_versions=key_values(args.lambda_version, "--lambda-version"),
                            component_versions=key_values(args.component_version, "--component-version"))
    export, written = export_v2(args.template, parameters, args.out, options=options, region=args.region,
                                account_id=args.account_id, stack_name=args.stack_name)
    print(f"exported group {export.group.name} to {args.out}: {len(export.lambda_requests)} Lambda components, "
          f"{len(export.models)} model components, {len(export.deployment['components'])} components deployed")
    print("  validated: every request against botocore's greengrassv2 model, the template with cfn-lint")
    for path in written:
        print(f"  wrote {path}")
    print(f"  next: read {args.out / 'MIGRATION.md'} (what needs a human comes first)")
    return 0
