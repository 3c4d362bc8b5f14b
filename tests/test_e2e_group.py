"""End to end: the group's own template, deployed with a weather replay, run with the stand-in cloud.

One run per isolation mode (off, and GreengrassContainer where this machine allows it) drives every part
on the path: template → deploy (model archive extracted) → RunningCore (IPC, router, workers, SQLite
shadows) → the real Lambdas under Python 3.8 with the real greengrasssdk → the cloud link (mutual TLS,
spooler) → the stand-in's mosquitto broker and cloud shadows → shadow sync back down to the sensor.
The tests of one run share it and follow its life: readings, predictions, commands, desired state.
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import MODEL_ARCHIVE, REPO_ROOT, weather_csv
from support.cloud import FAST_BACKOFF
from support.waiting import wait_until

from simcore.cloud.link import CloudLink
from simcore.cloud.standin import RunningCloud, cloud_shadow_get, cloud_shadow_update, start_standin
from simcore.core.isolation import check_available
from simcore.deploy.deployment import deploy
from simcore.deploy.record import Deployment
from simcore.errors import ShadowError, SimcoreError
from simcore.service.running import RunningCore, RunOptions

TEMPLATE = REPO_ROOT / "cloudformation" / "greengrass-group.yaml"
PY38 = REPO_ROOT / ".venv-py38" / "bin" / "python"
THING = "E2ECore"
STATION, FIRST_DAY, LAST_DAY = "JFK", "2013-11-01", "2013-11-02"  # both days replayed (inclusive)
REPLAY_SPEED = "24"  # data hours per wall second: two days in about two seconds
OUTPUT_TOPIC = f"rain/{THING}/inference/output"
COMMAND_INPUT = f"rain/{THING}/command/input"
COMMAND_OUTPUT = f"rain/{THING}/command/output"
SENSOR_FIELDS = ("temperature", "humidity", "pressure", "pressure_tendency_3h", "ts", "seq", "sensor")
DEADLINE_S = 120.0


def replayed_record_times() -> list[int]:
    """The epoch seconds of every weather.csv record the replay covers (the station, both days)."""
    first = datetime.date.fromisoformat(FIRST_DAY)
    last = datetime.date.fromisoformat(LAST_DAY)
    times = []
    with open(weather_csv(), newline="") as handle:
        for record in csv.DictReader(handle):
            when = datetime.datetime.strptime(record["time_hour"], "%Y-%m-%dT%H:%M:%SZ").replace(
                tzinfo=datetime.UTC)
            if record["origin"] == STATION and first <= when.date() <= last:
                times.append(int(when.timestamp()))
    return sorted(times)


def predictable_record_times(lambda_path_features: list[dict]) -> set[int]:
    """Of the replayed records, those the model can predict on (every feature present and in range)."""
    first = datetime.date.fromisoformat(FIRST_DAY)
    last = datetime.date.fromisoformat(LAST_DAY)
    times = set()
    for row in lambda_path_features:
        when = datetime.datetime.strptime(row["time_hour"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.UTC)
        if row["station"] == STATION and first <= when.date() <= last and row["features"] is not None:
            times.add(int(when.timestamp()))
    return times


class CloudSubscriber:
    """A cloud-side client with its own certificate, recording everything on `rain/<thing>/#`."""

    def __init__(self, cloud: RunningCloud):
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.link = CloudLink(cloud.client_settings(f"{THING}-e2e-subscriber", **FAST_BACKOFF))
        self.link.subscribe(f"rain/{THING}/#", self._record)
        self.link.start()

    def _record(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self.messages.append((topic, payload))

    def on(self, topic: str) -> list[dict]:
        """The JSON payloads received on `topic`, in arrival order."""
        with self._lock:
            return [json.loads(payload) for received, payload in self.messages if received == topic]

    def wait_subscribed(self) -> None:
        """Return once a message this client publishes comes back: the subscription is live at the broker."""
        probe = f"rain/{THING}/e2e-probe"
        assert self.link.wait_connected(30), self.link.stats().last_error
        wait_until(lambda: self.link.send_now(probe, b'{"probe": true}', 1.0) and self.on(probe), 30,
                   message="the cloud subscriber to hear its own probe", interval_s=0.2)


@dataclass
class GroupRun:
    """One running deployment with everything a test needs to look at."""

    deployment: Deployment
    cloud: RunningCloud
    running: RunningCore
    subscriber: CloudSubscriber
    predictable: set[int]
    replayed: list[int]
    local_versions: list[int] = field(default_factory=list)

    def local_shadow(self) -> dict:
        """The local shadow document ({"state": {}} until the first write)."""
        try:
            return self.running.shadow_engine.get(THING)
        except ShadowError as error:
            assert error.http_status == 404, error
            return {"state": {}}

    def local_reported(self) -> dict:
        return self.local_shadow()["state"].get("reported", {})

    def predicted_times(self) -> set[int]:
        return {message["ts"] for message in self.subscriber.on(OUTPUT_TOPIC)}

    def cloud_shadow(self) -> dict:
        return cloud_shadow_get(self.cloud.config_path, THING, certs_dir=self.cloud.certs_dir)


def deploy_replay(root: Path, device_path: str | None = None) -> Deployment:
    """The group template deployed with the replay parameters into `root`."""
    parameters = {
        "ThingName": THING,
        "ModelS3Uri": str(MODEL_ARCHIVE),
        "SensorSource": f"replay:{STATION}:{FIRST_DAY}:{LAST_DAY}",
        "ReplaySpeed": REPLAY_SPEED,
        "MetricsIntervalSeconds": "1",
    }
    if device_path is not None:
        parameters["SensorDevicePath"] = device_path
    return deploy(TEMPLATE, parameters, root)


I2C_MAJOR = 89  # the kernel's i2c-dev character devices


def stand_in_i2c_device() -> Path | None:
    """A spare /dev/i2c-N node (root only), so GreengrassContainer has a real device to grant.

    The replaying sensor never opens it: it only has to exist, as /dev/i2c-1 would on a Pi. None when the
    node cannot be made (not root, read-only /dev).
    """
    for bus in range(90, 100):
        path = Path(f"/dev/i2c-{bus}")
        if path.exists():
            continue
        try:
            os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(I2C_MAJOR, bus))
        except OSError:
            return None
        return path
    return None


def missing_devices(deployment: Deployment) -> list[str]:
    """Local device resources a GreengrassContainer would have to grant but this machine lacks."""
    return [resource.source for resource in deployment.group.resources
            if resource.kind == "local_device" and not Path(resource.source).exists()]


@pytest.fixture(scope="module", params=["off", "container"])
def group_run(request, tmp_path_factory, lambda_path_features) -> Iterator[GroupRun]:
    isolation = request.param
    if isolation == "container":
        try:
            check_available("container")
        except SimcoreError as error:
            pytest.skip(str(error))
    base = tmp_path_factory.mktemp(f"e2e-{isolation}")
    deployment = deploy_replay(base / "core")
    device = None
    if isolation == "container" and missing_devices(deployment):
        device = stand_in_i2c_device()
        if device is None:
            pytest.skip(f"GreengrassContainer must grant the sensor's device {missing_devices(deployment)}, "
                        "which this machine lacks (no I2C bus), and no stand-in node could be made")
        request.addfinalizer(lambda: device.unlink(missing_ok=True))
        deployment = deploy_replay(base / "core", str(device))
    cloud = start_standin(base / "cloud", 0, THING)
    subscriber = CloudSubscriber(cloud)
    running = None
    try:
        subscriber.wait_subscribed()
        interpreters = {"python3.8": str(PY38)} if PY38.exists() else {}
        running = RunningCore(deployment, RunOptions(
            isolation=isolation, interpreters=interpreters, cloud_config=cloud.config_path,
            certs_dir=cloud.certs_dir, spool_storage="FileSystem", shadow_sync_timeout_s=2.0))
        run = GroupRun(deployment, cloud, running, subscriber, predictable_record_times(lambda_path_features),
                       replayed_record_times())
        running.shadow_service.listeners.append(
            lambda thing, result: thing == THING and result.documents.get("current")
            and run.local_versions.append(result.documents["current"]["version"]))
        running.start()
        yield run
    finally:
        if running is not None:
            running.stop()
        subscriber.link.stop()
        cloud.stop()


def test_readings_reach_the_local_shadow_with_increasing_versions(group_run: GroupRun):
    run = group_run
    wait_until(lambda: run.local_reported().get("seq", 0) >= len(run.predictable), DEADLINE_S,
               message=lambda: f"every reading in the local shadow; the core's status: {run.running.status()}",
               interval_s=0.2)
    reported = run.local_reported()
    assert all(name in reported for name in SENSOR_FIELDS), sorted(reported)
    assert reported["ts"] in run.replayed
    assert set(reported["rain"]) >= {"p", "raining", "seq"}
    assert 0.0 <= reported["rain"]["p"] <= 1.0
    versions = list(run.local_versions)
    assert len(versions) >= len(run.predictable)  # a write per reading, and more (rain, sensor status)
    assert versions == sorted(set(versions)), "every accepted update has a new, higher version"


def test_every_predictable_replayed_record_gets_its_prediction_in_the_cloud(group_run: GroupRun):
    run = group_run
    assert 40 <= len(run.replayed) <= 48  # two days of hourly records (weather.csv misses a few hours)
    assert len(run.predictable) >= len(run.replayed) * 3 // 4  # the rest lack a field or a tendency
    wait_until(lambda: run.predicted_times() >= run.predictable, DEADLINE_S, message=lambda: (
        f"every prediction (missing for {sorted(run.predictable - run.predicted_times())[:10]})"), interval_s=0.2)
    predictions = run.subscriber.on(OUTPUT_TOPIC)
    assert run.predicted_times() == run.predictable  # and none for a record the model cannot take
    for prediction in predictions:
        assert prediction["thing"] == THING
        assert 0.0 <= prediction["p_rain"] <= 1.0
        assert prediction["raining"] == (prediction["p_rain"] >= prediction["threshold"])
    # At-least-once may repeat a message; it never invents one: each seq carries one ts.
    assert len({(p["seq"], p["ts"]) for p in predictions}) == len({p["seq"] for p in predictions})
    link = run.running.status()["cloud"]
    assert link["dropped"] == 0


def test_the_cloud_shadow_converges_with_the_local_reported_state(group_run: GroupRun):
    run = group_run
    wait_until(lambda: run.predicted_times() >= run.predictable, DEADLINE_S, message=lambda: (
        f"every prediction (missing for {sorted(run.predictable - run.predicted_times())[:10]})"), interval_s=0.2)

    def converged() -> bool:
        local = run.local_shadow()["state"].get("reported")
        return local is not None and run.cloud_shadow()["state"].get("reported") == local

    wait_until(converged, DEADLINE_S, message=lambda: (
        f"the cloud shadow to converge; local {run.local_shadow()}, cloud {run.cloud_shadow()}"), interval_s=0.5)
    assert run.running.status()["shadow_sync"]


def test_a_command_from_the_cloud_is_answered_on_the_command_output_topic(group_run: GroupRun):
    run = group_run
    request = {"id": "e2e-model-info", "command": "get-model-info"}
    assert run.subscriber.link.send_now(COMMAND_INPUT, json.dumps(request).encode(), 10)

    def answer() -> dict | None:
        return next((a for a in run.subscriber.on(COMMAND_OUTPUT) if a.get("id") == request["id"]), None)

    wait_until(lambda: answer() is not None, DEADLINE_S, message="the get-model-info answer", interval_s=0.1)
    found = answer()
    assert found["ok"] is True, found
    model_info = found["result"]
    assert model_info["loaded"] is True and model_info["load_error"] is None, model_info
    assert model_info["version"] == run.subscriber.on(OUTPUT_TOPIC)[0]["model_version"]
    assert model_info["threshold"] == run.subscriber.on(OUTPUT_TOPIC)[0]["threshold"]
    unknown = {"id": "e2e-unknown", "command": "reboot"}
    assert run.subscriber.link.send_now(COMMAND_INPUT, json.dumps(unknown).encode(), 10)
    wait_until(lambda: any(a.get("id") == "e2e-unknown" for a in run.subscriber.on(COMMAND_OUTPUT)),
               DEADLINE_S, message="the unknown command's answer", interval_s=0.1)
    refused = next(a for a in run.subscriber.on(COMMAND_OUTPUT) if a.get("id") == "e2e-unknown")
    assert refused["ok"] is False and refused["error"]["code"] == "UnknownCommand", refused


def test_a_desired_read_interval_set_in_the_cloud_reaches_the_sensor_and_is_reported_back(group_run: GroupRun):
    run = group_run
    cloud_shadow_update(run.cloud.config_path, THING, {"state": {"desired": {"read_interval_s": 42}}},
                        certs_dir=run.cloud.certs_dir)
    # Down: cloud desired → shadow sync → local desired → delta → the sensor Lambda → local reported.
    wait_until(lambda: run.local_reported().get("read_interval_s") == 42, DEADLINE_S,
               message=lambda: f"read_interval_s 42 in the local reported state: {run.local_shadow()}", interval_s=0.2)
    # Up again: the cloud shadow shows it reported, and no delta is left.
    wait_until(lambda: run.cloud_shadow()["state"].get("reported", {}).get("read_interval_s") == 42
               and "delta" not in run.cloud_shadow()["state"], DEADLINE_S,
               message=lambda: f"read_interval_s 42 reported in the cloud, no delta: {run.cloud_shadow()}",
               interval_s=0.5)
    assert "delta" not in run.local_shadow()["state"]
