"""greengrasssdk 1.6.1, unmodified, against simcore: every public call, through real worker processes.

The driver Lambda (tests/lambdas_fixtures/compat/compat_driver.py) uses only greengrasssdk's public API and
runs with MY_FUNCTION_ARN set (never the SDK's mock mode). It runs once under the Lambdas' Python 3.8 venv
and once under simcore's own Python 3.11 venv.
"""

from __future__ import annotations

import base64
import json

import pytest
from lambdas_fixtures.harness import (
    INTERPRETER_KINDS,
    IPCClient,
    function_arn,
    interpreters,
    make_function,
    make_group,
)
from support.recorders import RecordingCloud
from support.waiting import wait_until

from simcore.core.assemble import Core
from simcore.core.secrets import SecretStore, SecretValue
from simcore.group import CLOUD

DRIVER = function_arn("compat-driver")
ECHO = function_arn("compat-echo")
TESTER = function_arn("test-harness")
BINARY = function_arn("compat-binary")
THING = "compat-thing"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:compat-secret-AbCdEf"

def compat_group():
    return make_group(
        [
            make_function("compat-driver", "compat", "compat_driver.function_handler", timeout_s=30),
            make_function("compat-echo", "compat", "echo.function_handler", timeout_s=10),
            make_function("test-harness", "compat", "echo.function_handler"),
            # Invoked cold: its Timeout (the default is 3 s) also covers the worker's start, so it gets room.
            make_function("compat-binary", "compat", "echo.function_handler", encoding_type="binary", timeout_s=10),
        ],
        [
            (DRIVER, "compat/out", CLOUD),
            (ECHO, "compat/out/event", CLOUD),
            (CLOUD, "echo/in", ECHO),
            (ECHO, "echo/routed", CLOUD),
        ],
    )


@pytest.fixture(params=INTERPRETER_KINDS)
def running_core(request, tmp_path):
    cloud = RecordingCloud()
    secrets = SecretStore(
        [SecretValue(arn=SECRET_ARN, name="compat-secret", secret_string='{"password": "hunter2"}')],
        access={DRIVER: {SECRET_ARN}},
    )
    core = Core(
        compat_group(),
        runtime_root=tmp_path / "ggc",
        cloud=cloud,
        secret_store=secrets,
        interpreters=interpreters(request.param),
    )
    core.start()
    yield core, cloud
    core.stop()


def invoke(core: Core, arn: str, event: dict) -> tuple[str, dict]:
    """RequestResponse invoke through the real IPC client, as the test harness function."""
    client = IPCClient(port=core.ipc_port)
    client.auth_token = core.issue_token(TESTER)
    invocation_id = client.post_work(arn, json.dumps(event).encode(), b"", "RequestResponse")
    result = client.get_work_result(arn, invocation_id)
    return result.func_err, json.loads(result.payload)


def test_every_sdk_call_works_through_simcore(running_core):
    core, cloud = running_core
    func_err, report = invoke(
        core, DRIVER, {"thing": THING, "echo_arn": ECHO, "secret_id": "compat-secret", "topic": "compat/out"}
    )
    assert func_err == "", report
    assert report["my_arn"] == DRIVER

    # publish: JSON and raw payloads reach the cloud subscription; bad topics and sizes are refused.
    published = cloud.wait_for("compat/out", 2)
    assert json.loads(published[0]) == {"hello": "cloud"}
    assert published[1] == b"raw-bytes"
    assert "InvocationException" in report["publish_wildcard_error"]
    assert "wildcard" in report["publish_wildcard_error"]
    assert "128 KB" in report["publish_too_big_error"]

    # shadows: update, get, a rejected update, delete, then get → 404.
    assert report["update"]["state"]["reported"] == {"temperature": 21.5}
    assert report["get"]["state"]["reported"] == {"temperature": 21.5}
    assert report["get"]["version"] == report["update"]["version"]
    assert "ShadowError" in report["bad_update_error"] and "400" in report["bad_update_error"]
    assert report["delete"]["version"] == report["update"]["version"]
    assert "404" in report["get_after_delete"]

    # Lambda.invoke: RequestResponse result and context, a Handled error, an Event, an unknown function.
    echoed = report["invoke"]["Payload"]
    assert report["invoke"]["FunctionError"] == ""
    assert echoed["event"] == {"question": 42}
    assert echoed["function_name"] == "compat-echo"
    assert echoed["function_version"] == "live"
    assert echoed["invoked_function_arn"] == ECHO
    assert echoed["identity"] is None
    assert 0 < echoed["remaining_ms"] <= 10_000
    assert report["invoke_handled_error"] == {
        "FunctionError": "Handled",
        "Payload": {"errorMessage": "asked to fail"},
    }
    assert report["invoke_event"] == {"FunctionError": "", "Payload": ""}
    event_reply = json.loads(cloud.wait_for("compat/out/event")[0])
    assert event_reply["event"] == {"publish_to": "compat/out/event"}
    assert "404" in report["invoke_unknown_error"] and "not deployed" in report["invoke_unknown_error"]

    # Secrets Manager: a value by name, CreatedDate back as a datetime; a missing secret is an SDK error.
    assert report["secret"] == {
        "Name": "compat-secret",
        "SecretString": '{"password": "hunter2"}',
        "CreatedDate": "datetime",
    }
    assert "SecretsManagerError" in report["secret_missing_error"]
    assert "404" in report["secret_missing_error"]


def test_routed_message_carries_topic_and_source_in_the_context(running_core):
    core, cloud = running_core
    core.publish("echo/in", json.dumps({"n": 1}).encode())
    reply = json.loads(cloud.wait_for("echo/routed")[0])
    assert reply["event"] == {"n": 1}
    assert reply["custom"] == {"subject": "echo/in", "source": "cloud"}


def test_shadow_documents_are_returned_as_sent_by_the_engine(running_core):
    core, _ = running_core
    client = IPCClient(port=core.ipc_port)
    client.auth_token = core.issue_token(TESTER)
    context = base64.b64encode(json.dumps({"custom": {"subject": f"$aws/things/{THING}/shadow/get"}}).encode())
    invocation_id = client.post_work("arn:aws:lambda:::function:GGShadowService", b"", context, "RequestResponse")
    result = client.get_work_result("arn:aws:lambda:::function:GGShadowService", invocation_id)
    assert result.func_err == ""
    assert json.loads(result.payload)["code"] == 404


def test_binary_encoding_hands_the_handler_raw_bytes(running_core):
    core, _ = running_core
    client = IPCClient(port=core.ipc_port)
    client.auth_token = core.issue_token(TESTER)
    result = client.get_work_result(BINARY, client.post_work(BINARY, b"\x00\xffraw", b"", "RequestResponse"))
    assert result.func_err == ""
    assert json.loads(result.payload)["event"] == "\x00\xffraw"


def test_a_handler_exception_is_logged_with_its_traceback(running_core, tmp_path):
    core, _ = running_core
    func_err, answer = invoke(core, ECHO, {"fail": True})
    assert (func_err, answer) == ("Handled", {"errorMessage": "asked to fail"})
    log_file = core.runtime_root / "var/log/user/us-east-1/123456789012/compat-echo.log"
    text = wait_until(lambda: "ValueError: asked to fail" in log_file.read_text() and log_file.read_text(),
                      message=f"the handler's error in {log_file}")
    assert "][ERROR]-lambda_runtime.py:" in text
    assert "Traceback (most recent call last):" in text
