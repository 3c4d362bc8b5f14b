"""The stand-in's broker enforces the thing's IoT policy (the group template's CorePolicy) as AWS IoT would:
the core's certificate cannot write another thing's cloud shadow under any client id, and a policy too narrow
for what the core publishes fails locally (the publish is denied and logged), before it would fail in AWS."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from support.cloud import FAST_BACKOFF
from support.waiting import wait_until

from simcore.cloud.broker import installed_mosquitto
from simcore.cloud.iot_policy import IotPolicy, mqtt_pattern
from simcore.cloud.link import CloudLink
from simcore.cloud.standin import start_cloud
from simcore.deploy.policy import thing_policy
from simcore.errors import ShadowError
from simcore.shadow.service import open_shadow_service

TEMPLATE = Path(__file__).resolve().parents[1] / "cloudformation" / "greengrass-group.yaml"
THING = "RainEdgeCore"


def template_policy() -> dict:
    """The CorePolicy document the group template gives the thing, as `simcore cloud start --enforce-policy`
    resolves it."""
    return thing_policy(TEMPLATE, THING)


def test_the_template_policy_evaluates_as_aws_iot_does():
    policy = IotPolicy(template_policy())
    allowed = dict(thing=THING, client_id=THING)
    assert policy.allows("iot:Publish", f"rain/{THING}/inference/output", **allowed)
    assert policy.allows("iot:Subscribe", f"$aws/things/{THING}/shadow/update/delta", **allowed)
    assert policy.allows("iot:Connect", f"{THING}-shadow-1a2b", **allowed)
    assert not policy.allows("iot:Publish", "$aws/things/OtherThing/shadow/update", **allowed)
    assert not policy.allows("iot:Subscribe", "rain/#", **allowed)
    assert not policy.allows("iot:Connect", "OtherThing", **allowed)
    lines = policy.mosquitto_lines(THING)
    assert f"topic write rain/{THING}/#" in lines and f"topic read $aws/things/{THING}/shadow/#" in lines
    # `RainEdgeCore-*` inside a level has no exact MQTT pattern: left out (narrower than AWS, never wider).
    assert not any(f"{THING}-" in line for line in lines)


@pytest.mark.parametrize(("resource", "pattern"), [
    ("rain/T/*", "rain/T/#"), ("a/b", "a/b"), ("a/*/c", None), ("a/T-*/c", None), ("a/?", None),
    ("clients/${iot:ClientId}/*", "clients/%c/#")])
def test_policy_resources_translate_to_mosquitto_only_when_exact(resource, pattern):
    assert mqtt_pattern(resource) == pattern


class Observer:
    """A cloud-side client (full access) recording what reaches the cloud."""

    def __init__(self, cloud) -> None:
        self.messages: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        self.link = CloudLink(cloud.client_settings("policy-observer", **FAST_BACKOFF))
        for topic_filter in ("rain/#", "$aws/things/+/shadow/update/accepted"):
            self.link.subscribe(topic_filter, self._record)
        self.link.start()
        assert self.link.wait_connected(10)

    def _record(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self.messages.append((topic, json.loads(payload)))

    def topics(self) -> list[str]:
        with self._lock:
            return [topic for topic, _ in self.messages]

    def saw_marker(self, value: int) -> bool:
        with self._lock:
            return any(document.get("state", {}).get("reported", {}).get("marker") == value
                       for _, document in self.messages)


def core_link(cloud, client_id: str) -> CloudLink:
    link = CloudLink(cloud.core_settings(client_id=client_id, **FAST_BACKOFF))
    link.start()
    assert link.wait_connected(10), link.stats().last_error
    return link


def marker(link: CloudLink, observer: Observer, value: int) -> None:
    """An allowed update of the thing's own shadow, seen by the observer: what was sent before it was handled."""
    assert link.send_now(f"$aws/things/{THING}/shadow/update",
                         json.dumps({"state": {"reported": {"marker": value}}}).encode(), 10)
    wait_until(lambda: observer.saw_marker(value), 15, message=f"marker {value} at the observer")


@pytest.fixture(params=["mosquitto", "amqtt"])
def policed_cloud(tmp_path, request):
    """Start a stand-in enforcing `policy` on mosquitto (its ACL file) or the amqtt fallback (the exact check)."""
    def start(policy: dict):
        if request.param == "mosquitto" and not installed_mosquitto():
            pytest.skip("mosquitto is not installed (apt-get install mosquitto; .ci/run installs it)")
        service = open_shadow_service()
        cloud = start_cloud(tmp_path / "cloud", 0, shadow_service=service, thing_name=THING,
                            thing_policy=policy, local_aws=False, prefer_broker=request.param)
        assert cloud.broker.kind == request.param
        started.append(cloud)
        return cloud, service.engine

    started: list = []
    yield start
    for cloud in started:
        cloud.stop()


def test_the_core_certificate_cannot_write_another_things_shadow_under_any_client_id(policed_cloud):
    cloud, engine = policed_cloud(template_policy())
    observer = Observer(cloud)
    link = core_link(cloud, f"{THING}-impostor")
    try:
        marker(link, observer, 1)
        assert link.send_now("$aws/things/OtherThing/shadow/update",
                             json.dumps({"state": {"reported": {"stolen": True}}}).encode(), 10)
        assert link.send_now(f"rain/{THING}/inference/output", json.dumps({"p_rain": 0.5}).encode(), 10)
        marker(link, observer, 2)
    finally:
        link.stop()
        observer.link.stop()
    assert f"rain/{THING}/inference/output" in observer.topics()
    assert "$aws/things/OtherThing/shadow/update/accepted" not in observer.topics()
    with pytest.raises(ShadowError) as missing:  # the other thing's cloud shadow was never written
        engine.get("OtherThing")
    assert missing.value.http_status == 404
    assert f"Denied PUBLISH from {THING}-impostor" in cloud.broker.log_text()


def test_a_policy_too_narrow_for_the_core_fails_locally(policed_cloud):
    narrow = template_policy()
    for statement in narrow["Statement"]:
        if isinstance(statement.get("Resource"), list):
            statement["Resource"] = [r for r in statement["Resource"] if "topic/rain/" not in r]
    cloud, _ = policed_cloud(narrow)
    observer = Observer(cloud)
    link = core_link(cloud, THING)
    try:
        marker(link, observer, 1)
        assert link.send_now(f"rain/{THING}/inference/output", json.dumps({"p_rain": 0.5}).encode(), 10)
        marker(link, observer, 2)
    finally:
        link.stop()
        observer.link.stop()
    assert f"rain/{THING}/inference/output" not in observer.topics()
    assert f"Denied PUBLISH from {THING}" in cloud.broker.log_text()


def test_cloud_start_enforces_the_template_policy_and_prints_the_local_aws(tmp_path):
    state_dir = tmp_path / "cloud"
    command = subprocess.Popen(
        [sys.executable, "-m", "simcore", "cloud", "start", "--state-dir", str(state_dir), "--port", "0",
         "--enforce-policy", str(TEMPLATE)], cwd=TEMPLATE.parents[1], text=True, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(command.stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("credentials provider" in line for line in lines) or command.poll() is not None,
                   90, message=lambda: f"the stand-in's start lines: {lines}")
        printed = "".join(lines)
        where = json.loads((state_dir / "cloud.json").read_text())
        assert f"local AWS (moto) on {where['aws_endpoint']}" in printed
        assert f"credentials provider https://{where['credentials_endpoint']}" in printed
        acl = (state_dir / "broker" / "acl").read_text()
        assert f"user {THING}\ntopic write $aws/things/{THING}/shadow/#" in acl
        command.send_signal(signal.SIGTERM)
        assert command.wait(30) == 0, "".join(lines)
    finally:
        if command.poll() is None:
            command.kill()
            command.wait()
