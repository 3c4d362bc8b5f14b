"""`simcore cloud ...`: start the local stand-in cloud, watch its topics, read and write its shadows, publish,
issue device certificates.

`watch`, `shadow` and `publish` take any v1 `config.json`, so they work against AWS IoT Core too.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from simcore.cli.common import DEFAULT_ROOT
from simcore.defaults import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_DISCOVERY_PORT,
    DEFAULT_MQTT_PORT,
    DEFAULT_REGION,
    DEFAULT_THING_NAME,
)

DEFAULT_STATE_DIR = Path(".simcore-cloud")
DEFAULT_CONFIG = DEFAULT_STATE_DIR / "config" / "config.json"


def cmd_cloud_start(args: argparse.Namespace) -> int:
    """Run the stand-in cloud until Ctrl-C."""
    from simcore.cloud.standin import start_standin
    from simcore.deploy.policy import thing_policy
    from simcore.service.signals import StopSignal

    policy = thing_policy(args.enforce_policy, args.thing) if args.enforce_policy else None
    with StopSignal() as stop:  # from here a stop signal stops the stand-in cleanly, even while it starts
        cloud = start_standin(args.state_dir, args.port, args.thing, thing_policy=policy)
        discovery = None
        jobs = local_aws = None
        try:
            if args.discovery_port is not None:
                discovery = _start_discovery(cloud, args.discovery_port, args.core_root)
            where = f"; discovery on port {discovery.port} for {args.core_root}" if discovery is not None else ""
            print(f"stand-in cloud ({cloud.broker.kind}) on 127.0.0.1:{cloud.port}; core config: "
                  f"{cloud.config_path}{where}", flush=True)
            if cloud.local_aws is not None and cloud.credentials is not None:
                print(f"local AWS (moto) on {cloud.local_aws.endpoint}; credentials provider "
                      f"https://{cloud.credentials.endpoint} (role alias {cloud.credentials.role_alias})",
                      flush=True)
            if args.jobs:
                jobs, local_aws = _start_jobs(cloud)
            stop.wait()
        finally:
            if jobs is not None:
                jobs.stop()
            if local_aws is not None:
                local_aws.stop()
            if discovery is not None:
                discovery.stop()
            cloud.stop()
    return 0


def _start_jobs(cloud):
    """IoT Jobs beside the stand-in, over its local AWS (moto) for the bundles and thing groups.

    Returns (jobs, a local AWS started here for a stand-in that runs none, else None)."""
    from simcore.cloud.jobs_standin import start_jobs
    from simcore.cloud.local_aws import LocalAws

    own = None
    if cloud.local_aws is None:
        own = LocalAws()
        own.start()
    endpoint = (cloud.local_aws or own).endpoint
    jobs = start_jobs(cloud, endpoint)
    print(f"IoT Jobs: control plane {jobs.settings['iot_endpoint']}, local AWS {endpoint}, "
          f"settings in {jobs.path}", flush=True)
    return jobs, own


def _start_discovery(cloud, port: int, core_root: Path):
    """The cloud's discovery endpoint, answering from the discovery record the core under `core_root` writes."""
    import datetime

    from simcore.devices.discovery import DiscoveryServer, record_from_file
    from simcore.devices.group_ca import SigningCA

    signer = SigningCA.load(cloud.ca.ca_path, cloud.certs_dir / "root.ca.key")
    cert, key = cloud.certs_dir / "discovery.cert.pem", cloud.certs_dir / "discovery.private.key"
    signer.issue_server(["localhost", "127.0.0.1"], cert, key, datetime.timedelta(days=365))
    server = DiscoveryServer(record_from_file(Path(core_root) / "var" / "state" / "discovery.json"),
                             cloud.ca.ca_path, cert, key, port=port, host="127.0.0.1")
    server.start()
    return server


def cmd_cloud_issue_cert(args: argparse.Namespace) -> int:
    """Issue a device certificate and key from the stand-in's CA; print the certificate id for the template."""
    import re

    from simcore.cloud.ca import LocalCA
    from simcore.errors import InputError

    if not re.fullmatch(r"[a-zA-Z0-9:_-]{1,128}", args.thing):
        raise InputError(f"thing name {args.thing!r}: use 1-128 of a-z A-Z 0-9 : _ - (AWS IoT's thing names)")
    issued = LocalCA(args.state_dir / "certs").issue_thing(args.thing, file_stem=args.thing)
    print(json.dumps({
        "thing": args.thing,
        "certificateId": issued.certificate_id,
        "certificateArn": f"arn:aws:iot:{args.region}:{args.account_id}:cert/{issued.certificate_id}",
        "certificate": str(issued.cert_path),
        "privateKey": str(issued.key_path),
        "rootCA": str(args.state_dir / "certs" / "root.ca.pem"),
    }, indent=2))
    return 0


def cmd_cloud_publish(args: argparse.Namespace) -> int:
    """Publish one message at the cloud broker, as AWS IoT Core would deliver it."""
    from simcore.cloud.publisher import cloud_publish

    cloud_publish(args.config, args.topic, args.payload.encode(), certs_dir=args.certs_dir)
    return 0


def cmd_cloud_watch(args: argparse.Namespace) -> int:
    """Print cloud messages matching a topic filter until Ctrl-C (or --count / --timeout)."""
    from simcore.cloud.standin import watch

    watch(args.config, args.topic_filter, sys.stdout, certs_dir=args.certs_dir, max_messages=args.count,
          timeout_s=args.timeout, client_id=args.client_id)
    return 0


def cmd_cloud_shadow(args: argparse.Namespace) -> int:
    """get|update a cloud shadow."""
    from simcore.cloud.standin import cloud_shadow_get, cloud_shadow_update

    if args.operation == "get":
        document = cloud_shadow_get(args.config, args.thing, certs_dir=args.certs_dir)
    else:
        if not args.payload:
            print("simcore: cloud shadow update needs a JSON payload", file=sys.stderr)
            return 3
        document = cloud_shadow_update(args.config, args.thing, args.payload, certs_dir=args.certs_dir)
    print(json.dumps(document, indent=2))
    return 0


def add_cloud_commands(commands: argparse._SubParsersAction, _sub: Callable) -> None:
    """Add `simcore cloud start|watch|shadow`."""
    cloud = commands.add_parser("cloud", help="the local stand-in cloud, or any IoT endpoint by config.json",
                                description=__doc__)
    verbs = cloud.add_subparsers(dest="cloud_command", required=True, metavar="VERB")

    start = verbs.add_parser("start", help="start the stand-in: a local CA, a mutual-TLS MQTT broker, shadows, "
                                           "a local AWS (moto)")
    start.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    start.add_argument("--port", type=int, default=DEFAULT_MQTT_PORT, help="MQTT over TLS port (0: any free port)")
    start.add_argument("--thing", default=DEFAULT_THING_NAME, help="the core thing to issue a certificate for")
    start.add_argument("--discovery-port", type=int, nargs="?", const=DEFAULT_DISCOVERY_PORT,
                       help=f"serve Greengrass discovery (alone: {DEFAULT_DISCOVERY_PORT}) for the core under "
                       "--core-root")
    start.add_argument("--core-root", type=Path, default=DEFAULT_ROOT, help="the core discovery answers for "
                       "(its `simcore run` writes var/state/discovery.json there)")
    start.add_argument("--enforce-policy", type=Path, metavar="TEMPLATE",
                       help="enforce the thing's IoT policy (the group template's CorePolicy) on the broker, as "
                            "AWS IoT would (docs/credentials.md)")
    start.add_argument("--jobs", action="store_true", help="also serve AWS IoT Jobs (and a local AWS for the "
                       "bundles): `simcore group deploy --standin STATE_DIR` (docs/fleet.md)")
    start.set_defaults(handler=cmd_cloud_start)

    issue = verbs.add_parser("issue-cert", help="a device certificate and key from the stand-in's CA",
                             description="Issue a certificate (CN = THING) and key from the stand-in's CA and "
                             "print its certificate id and the CertificateArn for the DeviceDefinition.")
    issue.add_argument("thing")
    issue.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    issue.add_argument("--region", default=DEFAULT_REGION)
    issue.add_argument("--account-id", default=DEFAULT_ACCOUNT_ID)
    issue.set_defaults(handler=cmd_cloud_issue_cert)

    for verb, handler, help_text in (
        ("watch", cmd_cloud_watch, "print cloud messages matching a topic filter"),
        ("shadow", cmd_cloud_shadow, "get or update a cloud shadow"),
        ("publish", cmd_cloud_publish, "publish a message at the cloud broker, as AWS IoT Core would"),
    ):
        command = verbs.add_parser(verb, help=help_text, description=help_text)
        command.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="a v1 config.json")
        command.add_argument("--certs-dir", type=Path, help="where its cert paths lie (default: beside it)")
        command.set_defaults(handler=handler)
        if verb == "watch":
            command.add_argument("topic_filter")
            command.add_argument("--count", type=int, help="stop after this many messages")
            command.add_argument("--timeout", type=float, help="stop after this many seconds")
            command.add_argument("--client-id", help="the watcher's MQTT client id (default <thing>-watch); "
                                 "its persistent session keeps QoS 1 messages for it while it is away")
        elif verb == "publish":
            command.add_argument("topic")
            command.add_argument("payload")
        else:
            command.add_argument("operation", choices=["get", "update"])
            command.add_argument("thing")
            command.add_argument("payload", nargs="?")
