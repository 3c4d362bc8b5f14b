"""GGStreamManager from a Lambda: template → deploy → RunningCore → a real worker (Python 3.8 when present)
whose unmodified `greengrasssdk.stream_manager` client connects with its worker's token and runs every
operation; a process without a token is refused while client authentication is on."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from greengrasssdk.stream_manager import ConnectFailedException, StreamManagerClient
from lambdas_fixtures.harness import PY38, IPCClient, function_arn

from simcore.deploy.deployment import deploy
from simcore.deploy.record import group_from_json, group_to_json
from simcore.service.running import RunningCore, RunOptions

TEMPLATE = Path(__file__).parent / "fixtures" / "streams" / "stream_group.yaml"
CLIENT = function_arn("stream-client")
TESTER = function_arn("stream-test-harness")


@pytest.fixture(scope="module")
def running(tmp_path_factory) -> Iterator[RunningCore]:
    deployment = deploy(TEMPLATE, {}, tmp_path_factory.mktemp("streams-lambda") / "ggc")
    interpreters = {"python3.8": str(PY38)} if PY38.exists() else {}
    core = RunningCore(deployment, RunOptions(isolation="off", interpreters=interpreters))
    core.start()
    try:
        yield core
    finally:
        core.stop()


def call(running: RunningCore, **event) -> dict:
    client = IPCClient(port=running.core.ipc_port)
    client.auth_token = running.core.issue_token(TESTER)
    invocation = client.post_work(CLIENT, json.dumps(event).encode(), b"", "RequestResponse")
    result = client.get_work_result(CLIENT, invocation)
    assert result.func_err == "", result.payload
    return json.loads(result.payload)


def test_the_group_lists_the_stream_manager_as_a_system_function_and_its_record_keeps_it(running):
    group = running.deployment.group
    manager = group.system_function("GGStreamManager")
    assert manager is not None and manager.environment["STREAM_MANAGER_AUTHENTICATE_CLIENT"] == "true"
    assert all(function.arn != manager.arn for function in group.functions)
    assert "GGStreamManager" in group.system_functions
    again = group_from_json(json.loads(json.dumps(group_to_json(group))))
    assert again.system_function_settings == group.system_function_settings


def test_a_lambda_runs_every_operation_through_greengrasssdk(running):
    assert call(running, op="create", name="lambda-readings", strategy="OverwriteOldestData") == {"result": None}
    assert call(running, op="list")["result"] == ["lambda-readings"]
    assert call(running, op="append", name="lambda-readings", texts=["a", "b", "c"]) == {"result": [0, 1, 2]}
    read = call(running, op="read", name="lambda-readings", start=1, min=2, max=5)["result"]
    assert [(number, base64.b64decode(data)) for number, data in read] == [(1, b"b"), (2, b"c")]
    described = call(running, op="describe", name="lambda-readings")["result"]
    assert (described["oldest"], described["newest"]) == (0, 2)
    assert call(running, op="update", name="lambda-readings", strategy="RejectNewData") == {"result": None}
    assert call(running, op="delete", name="lambda-readings") == {"result": None}
    assert call(running, op="list")["result"] == []


def test_a_lambda_gets_the_sdk_exceptions(running):
    assert call(running, op="describe", name="absent")["error"] == "ResourceNotFoundException"
    call(running, op="create", name="lambda-errors")
    assert call(running, op="create", name="lambda-errors")["error"] == "InvalidRequestException"
    assert call(running, op="read", name="lambda-errors", start=0)["error"] == "NotEnoughMessagesException"
    changed = call(running, op="update", name="lambda-errors", persistence="Memory")
    assert changed["error"] == "UpdateNotAllowedException"


def test_a_process_without_a_worker_token_is_refused(running, monkeypatch):
    port = running.core.stream_manager.port
    monkeypatch.delenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", raising=False)
    with pytest.raises(ConnectFailedException):
        StreamManagerClient(port=port)
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "0" * 64)
    with pytest.raises(ConnectFailedException):
        StreamManagerClient(port=port)
    assert running.core.stream_manager.server.counters["unauthorized"] >= 2
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", running.core.issue_token(TESTER))
    with StreamManagerClient(port=port) as client:
        assert isinstance(client.list_streams(), list)
