"""`simcore run`: the current deployment as a long-running core (and the flags `demo` shares)."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from pathlib import Path

from simcore.cli.common import key_values
from simcore.defaults import DEFAULT_DISCOVERY_PORT, DEFAULT_MQTT_PORT, DEFAULT_SPOOL_STORAGE
from simcore.errors import EXIT_BAD_INPUT
from simcore.service.signals import StopSignal


def run_options(args: argparse.Namespace):
    """The RunOptions the `run` and `demo` flags describe."""
    from simcore.devices.connectivity import parse_host_port
    from simcore.service.running import RunOptions

    device_port = args.device_port
    return RunOptions(
        device_port=device_port,
        device_host=args.device_host,
        connectivity=[parse_host_port(text, 0) for text in args.connectivity],
        discovery_port=args.discovery_port,
        device_ca=args.device_ca,
        isolation=None if args.isolation == "group" else args.isolation,
        interpreters=key_values(args.runtime, "--runtime"),
        ipc_port=args.ipc_port,
        cloud_config=args.config,
        certs_dir=args.certs_dir,
        spool_storage=args.spool,
        jobs=getattr(args, "jobs", False),
    )


def cmd_run(args: argparse.Namespace) -> int:
    """Run the current deployment until Ctrl-C, SIGTERM or `simcore stop`."""
    from simcore.deploy.record import load_deployment
    from simcore.service.fleet_job import recover_interrupted_swap
    from simcore.service.running import RunningCore

    if getattr(args, "jobs", False) and args.config is None:
        print("simcore: --jobs takes deployments over the cloud link: give --config (the core's config.json)",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with StopSignal() as stop:  # from here a stop signal stops the core cleanly, even while it starts
        recover_interrupted_swap(args.root)  # a crash in the middle of a swap: back on the version that ran
        deployment = load_deployment(args.root)
        running = RunningCore(deployment, run_options(args))
        running.start()
        devices = ""
        if running.devices is not None:
            devices = f"; devices' MQTT on port {running.devices.port}"
            if running.devices.discovery is not None:
                devices += f", discovery on {running.devices.discovery.port}"
        print(f"core running deployment {deployment.number}; IPC on 127.0.0.1:{running.core.ipc_port}{devices}; "
              "Ctrl-C to stop", flush=True)
        threading.Thread(target=lambda: (running.stopped.wait(), stop.requested.set()), daemon=True).start()
        stop.wait()
        if not running.stopped.is_set():
            running.stop()
    print("core stopped; shadows and spool kept on disk")
    return 0


def add_run_flags(command: argparse.ArgumentParser) -> None:
    """The flags `run` and `demo` share."""
    command.add_argument("--isolation", choices=["off", "container", "nocontainer", "group"], default="off",
                         help="off: resources under the root (default, works everywhere); container: a mount "
                         "namespace as GreengrassContainer; group: each function's own IsolationMode")
    command.add_argument("--runtime", action="append", default=[], metavar="python3.8=PATH",
                         help="the interpreter for a Lambda Runtime")
    command.add_argument("--ipc-port", type=int, default=0, help="IPC port (default: any free port)")
    command.add_argument("--config", type=Path, help="a v1 config.json: link to that IoT endpoint (its "
                         "runtime.maxWorkItemCount and system.shadowSyncTimeout apply too)")
    command.add_argument("--certs-dir", type=Path, help="where config.json's cert paths lie (default: beside it)")
    command.add_argument("--jobs", action="store_true", help="take deployments from AWS IoT Jobs on the cloud "
                         "link (docs/fleet.md; needs --config)")
    command.add_argument("--spool", choices=["Memory", "FileSystem"], default=DEFAULT_SPOOL_STORAGE,
                         help="the cloud spooler's storage (default %(default)s; FileSystem survives restarts, "
                         "Memory does not)")
    devices = command.add_argument_group("the group's devices (docs/devices.md)")
    devices.add_argument("--device-port", type=int, help="the core's MQTT server for devices (default: config.json's "
                         f"coreThing.ggMqttPort, else {DEFAULT_MQTT_PORT}; 0: any free port)")
    devices.add_argument("--device-host", default="0.0.0.0", help="the address it binds (default: every interface)")
    devices.add_argument("--connectivity", action="append", default=[], metavar="HOST:PORT",
                         help="an address devices reach the core at, advertised by discovery and named in the "
                         "server certificate (repeatable; ignored when the group has GGIPDetector)")
    devices.add_argument("--discovery-port", type=int, nargs="?", const=DEFAULT_DISCOVERY_PORT,
                         help=f"serve Greengrass discovery here (alone: {DEFAULT_DISCOVERY_PORT}; 0: any free port)")
    devices.add_argument("--device-ca", type=Path, help="the CA the devices' certificates chain to (default: "
                         "--config's caPath)")
