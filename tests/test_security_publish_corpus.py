"""Bad publishes (tests/corpus/publish): each refused with its code and message, the core still routing.

`via: sdk` cases run through the real greengrasssdk (`iot-data` client `publish`) in a separate client
process holding a token from `Core.issue_token`, exactly as a Lambda would call it; `via: ipc` cases are
what only a hand-made client can send (a malformed client context), posted through the runtime's IPC client.
The publishing function has a `#` subscription to `cloud`, so any refusal comes from the check, not from a
missing route. After every case a good publish must still arrive: the core keeps running, and nothing
accepted is lost.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from lambdas_fixtures.harness import (
    PY38,
    IPCClient,
    IPCException,
    function_arn,
    make_function,
    make_group,
)
from support.recorders import RecordingCloud
from support.waiting import wait_until

from simcore.core.assemble import Core
from simcore.group import CLOUD

CORPUS = Path(__file__).parent / "corpus" / "publish"
CASES = {path.stem: yaml.safe_load(path.read_text(encoding="utf-8")) for path in sorted(CORPUS.glob("*.yaml"))}
SDK_CASES = sorted(name for name, case in CASES.items() if case["via"] == "sdk")
IPC_CASES = sorted(name for name, case in CASES.items() if case["via"] == "ipc")
PUBLISHER = function_arn("corpus-publisher")
ROUTER_ARN = "arn:aws:lambda:::function:GGRouter"
CONTROL_TOPIC = "corpus/ok"
RUNTIME_DIR = Path(__file__).resolve().parents[1] / "simcore" / "lambda_side"
HTTP_ERROR = re.compile(r"HTTP Error (\d{3}): (.*)", re.DOTALL)

# The client: greengrasssdk exactly as a Lambda uses it. Each case is followed by a good control publish.
SDK_CLIENT = """
import json, sys
import greengrasssdk
iot = greengrasssdk.client("iot-data")
results = {}
for case in json.load(sys.stdin):
    arguments = {"topic": case["topic"], "payload": case["payload"]}
    if case.get("queue_full_policy") is not None:
        arguments["queueFullPolicy"] = case["queue_full_policy"]
    try:
        iot.publish(**arguments)
        error = None
    except Exception as raised:
        error = [type(raised).__name__, str(raised)]
    try:
        iot.publish(topic="corpus/ok", payload=case["name"])
        control = None
    except Exception as raised:
        control = str(raised)
    results[case["name"]] = {"error": error, "control_error": control}
print(json.dumps(results))
"""


def payload_of(case: dict) -> str:
    return "x" * case["payload_size"] if "payload_size" in case else case["payload"]


@pytest.fixture(scope="module")
def core(tmp_path_factory):
    group = make_group([make_function("corpus-publisher", "compat", "echo.function_handler")],
                       [(PUBLISHER, "#", CLOUD)])
    cloud = RecordingCloud()
    running = Core(group, runtime_root=tmp_path_factory.mktemp("publish-corpus") / "ggc", cloud=cloud)
    running.start()
    running.recording = cloud
    yield running
    running.stop()


@pytest.fixture(scope="module")
def sdk_results(core) -> dict:
    """Every `via: sdk` case published once through greengrasssdk in a client process."""
    interpreter = str(PY38) if PY38.exists() else sys.executable
    environment = {**os.environ, "MY_FUNCTION_ARN": PUBLISHER, "GG_DAEMON_PORT": str(core.ipc_port),
                   "AWS_CONTAINER_AUTHORIZATION_TOKEN": core.issue_token(PUBLISHER),
                   "PYTHONPATH": str(RUNTIME_DIR)}
    cases = [{"name": name, "topic": CASES[name]["topic"], "payload": payload_of(CASES[name]),
              "queue_full_policy": CASES[name].get("queue_full_policy")} for name in SDK_CASES]
    finished = subprocess.run([interpreter, "-c", SDK_CLIENT], input=json.dumps(cases), env=environment,
                              capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    return json.loads(finished.stdout)


def _code_and_message(error_type: str, text: str) -> tuple[object, str]:
    """An IPC refusal seen through the SDK is `... HTTP Error <status>: <message>`; else the exception type."""
    found = HTTP_ERROR.search(text)
    return (int(found.group(1)), found.group(2)) if found else (error_type, text)


def _assert_only_controls_reached_the_cloud(core: Core) -> None:
    topics = {topic for topic, _ in core.recording.messages}
    assert topics <= {CONTROL_TOPIC}, topics


def test_the_corpus_has_both_kinds_of_case():
    assert len(SDK_CASES) >= 8 and len(IPC_CASES) >= 8


@pytest.mark.parametrize("name", SDK_CASES)
def test_a_bad_publish_through_the_sdk_is_refused_with_its_code_and_message(name, sdk_results, core):
    expected = CASES[name]["expected"]
    result = sdk_results[name]
    assert result["error"] is not None, f"{name} was accepted"
    code, message = _code_and_message(*result["error"])
    assert code == expected["code"], result["error"]
    assert expected["message"] in message, result["error"]
    # The core kept running: the good publish right after the bad one was routed to the cloud.
    assert result["control_error"] is None
    wait_until(lambda: name.encode() in core.recording.on(CONTROL_TOPIC), message=f"the control publish {name!r}")
    _assert_only_controls_reached_the_cloud(core)


@pytest.mark.parametrize("name", IPC_CASES)
def test_a_malformed_publish_request_is_refused_with_its_code_and_message(name, core):
    case = CASES[name]
    client = IPCClient(port=core.ipc_port)
    client.auth_token = core.issue_token(PUBLISHER)
    if "client_context_raw" in case:
        context = case["client_context_raw"]
    else:
        context = base64.b64encode(json.dumps(case["client_context"]).encode()).decode()
    with pytest.raises(IPCException, match=re.escape(case["expected"]["message"])) as refused:
        client.post_work(ROUTER_ARN, payload_of(case).encode(), context, case.get("invocation_type", "Event"))
    code, message = _code_and_message("IPCException", str(refused.value))
    assert code == case["expected"]["code"], str(refused.value)
    assert case["expected"]["message"] in message, str(refused.value)
    control = base64.b64encode(json.dumps({"custom": {"subject": CONTROL_TOPIC}}).encode()).decode()
    client.post_work(ROUTER_ARN, f"after {name}".encode(), control, "Event")
    wait_until(lambda: f"after {name}".encode() in core.recording.on(CONTROL_TOPIC),
               message=f"the control publish 'after {name}'")
    _assert_only_controls_reached_the_cloud(core)
