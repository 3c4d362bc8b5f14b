"""`simcore deploy` and `simcore rollback`: build a deployment from a template, or go back one."""

from __future__ import annotations

import argparse

from simcore.cli.common import key_values


def cmd_deploy(args: argparse.Namespace) -> int:
    """Resolve the template and build a new deployment (the previous one is kept for rollback)."""
    from simcore.connectors.registry import check_connectors
    from simcore.core.interpreters import check_runtimes
    from simcore.deploy.deployment import deploy
    from simcore.template.loader import load_parameters

    parameters = load_parameters(args.params_file) if args.params_file else {}
    parameters.update(key_values(args.param, "--param"))
    interpreters = key_values(args.runtime, "--runtime")
    deployment = deploy(
        args.template,
        parameters,
        args.root,
        s3_endpoint_url=args.s3_endpoint_url,
        secrets_endpoint_url=args.secrets_endpoint_url,
        secrets_file=args.secrets_file,
        # Each function's Runtime resolved now, as `simcore run` will: one no interpreter serves is refused here;
        # so are connector parameters `simcore run` would refuse, and a connector it cannot run.
        runtime_check=lambda group: [*check_runtimes(group, interpreters), *check_connectors(group)],
        region=args.region,
        account_id=args.account_id,
        stack_name=args.stack_name,
        group_version_id=args.group_version_id,
    )
    print(f"deployment {deployment.number} ({deployment.id}) is current under {deployment.root}")
    for function in deployment.group.functions:
        print(f"  function {function.arn} ({'pinned' if function.pinned else 'on-demand'})")
    for warning in deployment.warnings:
        print(f"  warning: {warning}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """Make the previous deployment current again."""
    from simcore.deploy.deployment import rollback

    deployment = rollback(args.root)
    print(f"deployment {deployment.number} ({deployment.id}) is current again; restart `simcore run` to use it")
    return 0
