"""`simcore demo`: the stand-in cloud, the group deployed with a replay, the core with shadow sync, the views.

Order of things: count the replay's records (the progress bar's total), start the stand-in cloud (its own
state under `<root>/cloud`), deploy the template under `<root>/core` with `SensorSource=replay:...`,
connect the cloud-side observer, start the core with its cloud link and shadow sync, then watch until
every written reading has its prediction in the cloud (or nothing moves for `--stall-timeout` seconds, or
Ctrl-C). Stopping always runs the same way: the core (workers stopped, shadows and the file spool stay on
disk), the observer, the web server, the stand-in. Then the summary is printed and written to
`<root>/demo-summary.json`.

Exit code: 0 when the replay completed with no message lost, 1 otherwise (stalled, lost messages), 130 on
Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

# The flags live apart so that building the CLI parser imports neither rich nor NumPy.
from simcore.demo.flags import REPO_ROOT
from simcore.demo.local_aws import prepare as prepare_local_aws
from simcore.demo.local_aws import read_back as read_local_aws
from simcore.demo.records import ReplayPeriod, count_records, parse_date
from simcore.demo.state import DemoState
from simcore.demo.summary import Summary, build_summary, load_model_card
from simcore.errors import InputError
from simcore.service.signals import StopSignal

PY38_INTERPRETER = Path(".venv-py38") / "bin" / "python"
MODEL_RESOURCE = "RainModel"
WATCH_INTERVAL_S = 0.25
METRICS_QUERY_EVERY_S = 2.0
# The stand-in's local AWS is read back this often during the run; at the end, after the uploads drained.
LOCAL_AWS_READ_EVERY_S = 5.0
LOCAL_AWS_DRAIN_S = 15.0
EXIT_INCOMPLETE, EXIT_INTERRUPTED = 1, 130

log = logging.getLogger(__name__)


class DemoSetupError(InputError):
    """Something the demo needs is missing (the model archive, the template)."""

    code = "DemoSetupError"


def python38_interpreters() -> dict[str, str]:
    """`{"python3.8": <.venv-py38's python>}` when the Makefile built it (cwd or repository), else {}."""
    for base in (Path.cwd(), REPO_ROOT):
        candidate = base / PY38_INTERPRETER
        if candidate.exists():
            return {"python3.8": str(candidate.absolute())}
    return {}


def replay_period(args: argparse.Namespace) -> ReplayPeriod:
    """The period the flags describe (dates checked)."""
    return ReplayPeriod(args.station, parse_date(args.date_from, "from"), parse_date(args.date_to, "to"))


def check_inputs(args: argparse.Namespace) -> None:
    """Clear errors for what a demo cannot start without."""
    if not args.template.is_file():
        raise DemoSetupError(f"no group template at {args.template}", location="--template")
    if not args.model.is_file():
        raise DemoSetupError(f"no model archive at {args.model}: build it with `make model`", location="--model")
    if not args.speed > 0:
        raise DemoSetupError(f"--speed must be a positive number of data hours per second, got {args.speed}",
                             location="--speed")
    if args.metrics_interval < 1:
        raise DemoSetupError("--metrics-interval must be at least 1 second", location="--metrics-interval")


def template_parameters(args: argparse.Namespace, period: ReplayPeriod) -> dict[str, str]:
    """The group template's parameters for this demo."""
    return {
        "ThingName": args.thing,
        "ModelS3Uri": str(args.model.absolute()),
        "SensorSource": period.sensor_source,
        "ReplaySpeed": f"{args.speed:g}",
        "MetricsIntervalSeconds": str(args.metrics_interval),
    }


class DemoRun:
    """One demo run; `run()` returns the summary. Split from the CLI so tests can drive it."""

    def __init__(self, args: argparse.Namespace, console: Console | None = None,
                 on_web_ready: Callable[[str], None] | None = None):
        self.args = args
        self.console = console or Console()
        self.on_web_ready = on_web_ready
        self.period = replay_period(args)
        self.root = Path(args.root).absolute()
        self.stop = StopSignal()
        self.web = None
        self.lambda_metrics: dict | None = None
        self._local_aws: tuple[str, Any] | None = None  # the stand-in's local AWS endpoint and the group
        self._local_aws_read_at = 0.0
        self._last_metrics_query = 0.0
        self.readings_landed = None  # simcore.demo.readings.Landed, after the run

    def run(self) -> Summary:
        """Everything, start to summary; stops cleanly whatever happens."""
        from simcore.cloud.standin import start_standin
        from simcore.demo import sensor_device
        from simcore.demo.fresh import forget_replay_position
        from simcore.demo.observer import CloudObserver
        from simcore.demo.readings import LocalReadings, run_readings_dir
        from simcore.demo.view_terminal import TerminalView
        from simcore.deploy.deployment import deploy
        from simcore.deploy.policy import thing_policy
        from simcore.service.running import RunningCore, RunOptions

        args, period = self.args, self.period
        check_inputs(args)
        total = count_records(period)
        self.root.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        cloud = observer = running = view = device = readings = readings_dir = None
        model_card = None
        outcome = "interrupted"
        state = DemoState(args.thing, total)
        with self.stop:
            try:
                self._start_web(state)
                # The stand-in enforces the thing's IoT policy from the template, as AWS IoT would.
                cloud = start_standin(self.root / "cloud", 0, args.thing,
                                      thing_policy=thing_policy(args.template, args.thing))
                parameters = template_parameters(args, period)
                readings_dir = parameters["ReadingsDir"] = run_readings_dir()
                device_cert = None
                if args.sensor == "device":
                    device_cert, device_parameters = sensor_device.device_parameters(cloud.ca)
                    parameters.update(device_parameters)
                deployment = deploy(args.template, parameters, self.root / "core")
                if cloud.local_aws is not None:
                    self._local_aws = (cloud.local_aws.endpoint, deployment.group)
                    prepare_local_aws(cloud.local_aws.endpoint, deployment.group)
                model_card = load_model_card(deployment.resource_dirs.get(MODEL_RESOURCE))
                readings = LocalReadings(deployment.group,
                                         cloud.local_aws.endpoint if cloud.local_aws is not None else None)
                readings.start()
                observer = CloudObserver(cloud.client_settings(f"{args.thing}-demo-observer"), state)
                observer.start()
                running = RunningCore(deployment, RunOptions(
                    isolation="off", interpreters=python38_interpreters(), cloud_config=cloud.config_path,
                    certs_dir=cloud.certs_dir, spool_storage="FileSystem",
                    # --sensor device: the core's device server on loopback, its discovery beside it.
                    device_port=0, device_host="127.0.0.1", discovery_port=0, connectivity=[("127.0.0.1", 0)]))
                forget_replay_position(running.shadow_service, cloud.config_path, cloud.certs_dir, args.thing)
                running.shadow_service.listeners.append(state.on_local_shadow)
                title = (f"simcore demo · {args.thing} · replay {period.station} {period.date_from} to "
                         f"{period.date_to} ({total} records) at {args.speed:g} h/s")
                view = TerminalView(state, title, self.console, self.web.url if self.web else None)
                view.open()
                running.start()
                if device_cert is not None:
                    device = sensor_device.SensorDeviceProcess.start(
                        device_cert, cloud.ca.ca_path, args.thing, running.devices.discovery.port,
                        period.sensor_source, args.speed, self.root / "sensor-device.log")
                outcome = self._watch(state, running, observer, view)
                if outcome != "interrupted":
                    # The Lambda's final counters: what it declined to predict, for the summary.
                    self._ask_lambda_metrics(observer, timeout_s=5.0)
            except BaseException:
                # The run cannot finish: nothing will ever serve a summary, so the page goes too.
                if self.web is not None:
                    self.web.stop()
                    self.web = None
                raise
            finally:
                if view is not None:
                    # After SIGHUP the terminal is gone and writing to it fails (EIO): stop the rest anyway.
                    with contextlib.suppress(OSError):
                        view.close()
                if device is not None:
                    device.stop()
                if running is not None:
                    state.set_core_status(running.status())
                    if outcome != "interrupted":
                        self._read_local_aws(state, running, final=True)
                    running.stop()
                if readings is not None:
                    with contextlib.suppress(Exception):  # what landed is a report, never a reason to fail
                        self.readings_landed = readings.landed()
                    readings.stop()
                if readings_dir is not None:  # the hour not yet uploaded goes with this run's local S3
                    shutil.rmtree(readings_dir, ignore_errors=True)
                if observer is not None:
                    observer.stop()
                if cloud is not None:
                    cloud.stop()
        summary = build_summary(state, period, outcome, time.monotonic() - started, model_card, self.lambda_metrics)
        summary.local_aws = state.local_aws
        document = summary.as_dict()
        if self.readings_landed is not None:
            document["readings_in_s3"] = dataclasses.asdict(self.readings_landed)
        (self.root / "demo-summary.json").write_text(json.dumps(document, indent=2) + "\n")
        if self.web is not None:
            self.web.summary = summary.as_dict()
        return summary

    def _start_web(self, state: DemoState) -> None:
        if self.args.no_web:
            return
        from simcore.demo.web import DemoWebServer

        run_info = {"station": self.period.station, "from": self.period.date_from.isoformat(),
                    "to": self.period.date_to.isoformat(), "speed": self.args.speed}
        try:
            self.web = DemoWebServer(state, self.args.port, run_info)
        except OSError as error:
            raise DemoSetupError(f"cannot serve the web page on 127.0.0.1:{self.args.port}: {error.strerror}; "
                                 "choose another --port, or --no-web", location="--port") from error
        self.web.start()
        if self.on_web_ready is not None:
            self.on_web_ready(self.web.url)

    def _watch(self, state: DemoState, running, observer, view) -> str:
        """Refresh the views until the replay is complete, stalls, or a stop is asked for; the outcome."""
        while not self.stop.requested.is_set():
            state.set_core_status(running.status())
            self._read_local_aws(state, running)
            view.update()
            progress = state.progress()
            if progress["finished"]:
                missing = len(state.missing_predictions())
                if missing == 0:
                    return "complete"
                if self._declined_by_model(observer) >= missing:
                    return "complete"
            if progress["idle_s"] > self.args.stall_timeout:
                self.console.print(
                    f"[bold red]stalled:[/] no new reading or prediction for {self.args.stall_timeout:g} s "
                    f"({progress['readings_written']} readings written, {progress['predictions_received']} "
                    f"predictions received, sensor {progress['sensor_status'] or 'silent'}); see the logs under "
                    f"{self.root / 'core' / 'var' / 'log'}")
                return "stalled"
            state.wait_for_change(WATCH_INTERVAL_S)
        return "interrupted"

    def _read_local_aws(self, state: DemoState, running, *, final: bool = False) -> None:
        """What the connectors put in the stand-in's local AWS, read back every few seconds and at the end (once the
        connectors' uploads are drained, waiting at most LOCAL_AWS_DRAIN_S)."""
        if self._local_aws is None:
            return
        now = time.monotonic()
        if not final and now - self._local_aws_read_at < LOCAL_AWS_READ_EVERY_S:
            return
        self._local_aws_read_at = now
        if final:
            running.connectors.flush_uploads(LOCAL_AWS_DRAIN_S)
        endpoint, group = self._local_aws
        state.set_local_aws(read_local_aws(endpoint, group))

    def _ask_lambda_metrics(self, observer, timeout_s: float) -> None:
        """Ask the inference Lambda for its metrics (`get-metrics`); keep the last answer that came."""
        answer = observer.command("get-metrics", timeout_s=timeout_s)
        if answer and answer.get("ok") and isinstance(answer.get("result"), dict):
            self.lambda_metrics = answer["result"]

    def _declined_by_model(self, observer) -> int:
        """Readings the inference Lambda saw and declined (no tendency, bad reading): asked for at intervals."""
        from simcore.demo.summary import DECLINED_COUNTERS

        now = time.monotonic()
        if now - self._last_metrics_query >= METRICS_QUERY_EVERY_S:
            self._last_metrics_query = now
            self._ask_lambda_metrics(observer, timeout_s=2.0)
        counters = (self.lambda_metrics or {}).get("counters") or {}
        return sum(int(counters.get(name) or 0) for name in DECLINED_COUNTERS)


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo and print the summary."""
    from simcore.demo.view_summary import print_summary

    root = Path(args.root).absolute()
    root.mkdir(parents=True, exist_ok=True)
    _log_to_file(root / "demo.log")
    console = Console()
    demo = DemoRun(args, console)
    summary = demo.run()
    with contextlib.suppress(OSError):  # a hung-up terminal; the summary is in demo-summary.json
        print_summary(summary, console)
        if demo.readings_landed is not None:
            landed = demo.readings_landed
            console.print(f"readings exported by the stream manager to the local S3: {landed.records} records in "
                          f"{landed.objects} hourly objects (s3://{landed.bucket}/readings/)")
    if demo.web is not None:
        if args.keep_web and summary.outcome != "interrupted":
            console.print(f"the final page stays on {demo.web.url}; Ctrl-C to leave")
            with StopSignal() as stop:
                stop.wait()
        demo.web.stop()
    if summary.outcome == "interrupted":
        return EXIT_INTERRUPTED
    return 0 if summary.outcome == "complete" and summary.messages_lost == 0 else EXIT_INCOMPLETE


def _log_to_file(path: Path) -> None:
    """Everything the core logs goes to `<root>/demo.log`; only warnings reach the terminal (the view owns it)."""
    file_handler = logging.FileHandler(path)
    file_handler.setLevel(logging.INFO)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    console_handler = logging.StreamHandler()
    console_handler.setLevel(logging.WARNING)
    console_handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[file_handler, console_handler], force=True)
