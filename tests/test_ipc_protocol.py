"""The IPC wire protocol: paths with raw ARNs, headers, results, timeouts and clear errors."""

from __future__ import annotations

import base64
import http.client
import json
import threading

import pytest
from lambdas_fixtures.harness import IPCClient, IPCException, WorkItem, function_arn
from support.recorders import RecordingCloud
from support.work_source import QueueWorkSource

from simcore.core.ipc.dispatch import IPCDispatcher
from simcore.core.ipc.http import IPCServer
from simcore.core.router import Router
from simcore.core.secrets import SecretStore, SecretValue
from simcore.core.work_queue import WorkQueue
from simcore.group import CLOUD, Subscription

CALLER = function_arn("caller")
WORKER = function_arn("worker")
LATEST = "arn:aws:lambda:us-east-1:123456789012:function:latest:$LATEST"
SLOW = function_arn("slow")
ROUTER = "arn:aws:lambda:::function:GGRouter"
SECRETS = "arn:aws:lambda:::function:GGSecretManager:1"


@pytest.fixture
def ipc():
    queue = WorkQueue(max_items=4)
    cloud = RecordingCloud()
    router = Router(
        [Subscription("s", CALLER, "up/#", CLOUD), Subscription("f", CALLER, "fan", WORKER)],
        [CALLER, WORKER, LATEST, SLOW],
        queue,
        cloud=cloud,
    )
    secrets = SecretStore(
        [
            SecretValue(
                arn="arn:aws:secretsmanager:us-east-1:1:secret:s-1",
                name="s",
                secret_binary=b"\x00\x01",
                created_ms=1_500_000_000_000,
            )
        ]
    )
    dispatcher = IPCDispatcher(
        router, queue, {CALLER: 3.0, WORKER: 3.0, LATEST: 3.0, SLOW: 0.3}, QueueWorkSource(queue), secret_store=secrets
    )
    server = IPCServer(dispatcher, get_work_poll_s=0.2)
    server.start()
    yield server, dispatcher, cloud
    server.stop()


def client(server, dispatcher, arn):
    ipc_client = IPCClient(port=server.port)
    ipc_client.auth_token = dispatcher.tokens.issue(arn)
    return ipc_client


def serve_one(worker, arn, answer):
    """Take one item as a worker of `arn` and answer it with `answer(work)` (bytes or an exception)."""

    def run():
        work = worker.get_work(arn)
        while work.invocation_id is None:
            work = worker.get_work(arn)
        result = answer(work)
        if isinstance(result, Exception):
            worker.post_handler_err(arn, work.invocation_id, str(result))
        else:
            worker.post_work_result(arn, WorkItem(work.invocation_id, result, None))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_request_response_round_trip_carries_payload_and_client_context(ipc):
    server, dispatcher, _ = ipc
    caller = client(server, dispatcher, CALLER)
    worker = client(server, dispatcher, WORKER)
    seen = {}

    def answer(work):
        seen["context"] = json.loads(base64.b64decode(work.client_context))
        return work.payload.upper()

    thread = serve_one(worker, WORKER, answer)
    context = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    invocation_id = caller.post_work(WORKER, b"hello", context, "RequestResponse")
    result = caller.get_work_result(WORKER, invocation_id)
    thread.join(5)
    assert (result.payload, result.func_err) == (b"HELLO", "")
    assert seen["context"] == {"custom": {"k": "v"}}


def test_success_carries_an_empty_function_error_header(ipc):
    server, dispatcher, _ = ipc
    caller = client(server, dispatcher, CALLER)
    thread = serve_one(client(server, dispatcher, WORKER), WORKER, lambda work: b"null")
    invocation_id = caller.post_work(WORKER, b"", b"", "RequestResponse")
    connection = http.client.HTTPConnection("127.0.0.1", server.port)
    connection.request(
        "GET",
        f"/2016-11-01/functions/{WORKER}",
        headers={"Authorization": caller.auth_token, "X-Amz-InvocationId": invocation_id},
    )
    response = connection.getresponse()
    thread.join(5)
    assert response.status == 200
    assert "X-Amz-Function-Error" in response.headers
    assert response.headers["X-Amz-Function-Error"] == ""
    assert response.read() == b"null"


def test_handler_error_is_handled_with_the_error_message(ipc):
    server, dispatcher, _ = ipc
    caller = client(server, dispatcher, CALLER)
    thread = serve_one(client(server, dispatcher, WORKER), WORKER, lambda work: ValueError("boom"))
    result = caller.get_work_result(WORKER, caller.post_work(WORKER, b"{}", b"", "RequestResponse"))
    thread.join(5)
    assert result.func_err == "Handled"
    assert json.loads(result.payload) == {"errorMessage": "boom"}


def test_latest_qualifier_travels_raw_in_the_path(ipc):
    server, dispatcher, _ = ipc
    caller = client(server, dispatcher, CALLER)
    thread = serve_one(client(server, dispatcher, LATEST), LATEST, lambda work: b'"ok"')
    result = caller.get_work_result(LATEST, caller.post_work(LATEST, b"{}", b"", "RequestResponse"))
    thread.join(5)
    assert result.payload == b'"ok"'


def test_an_item_nobody_takes_fails_unhandled_after_the_timeout(ipc):
    server, dispatcher, _ = ipc
    caller = client(server, dispatcher, CALLER)
    result = caller.get_work_result(SLOW, caller.post_work(SLOW, b"{}", b"", "RequestResponse"))
    assert result.func_err == "Unhandled"
    assert "not started" in json.loads(result.payload)["errorMessage"]
    assert dispatcher.work_queue.take(SLOW, timeout=0) is None  # cancelled: no worker will see it


def test_an_item_whose_worker_does_not_answer_times_out_unhandled(ipc):
    server, dispatcher, _ = ipc
    caller = client(server, dispatcher, CALLER)
    invocation_id = caller.post_work(SLOW, b"{}", b"", "RequestResponse")
    assert client(server, dispatcher, SLOW).get_work(SLOW).invocation_id == invocation_id
    result = caller.get_work_result(SLOW, invocation_id)
    assert result.func_err == "Unhandled"
    assert json.loads(result.payload) == {"errorMessage": "Task timed out after 0.3 seconds"}


def test_invoking_an_unknown_function_is_a_clear_404(ipc):
    server, dispatcher, _ = ipc
    with pytest.raises(IPCException, match="404.*function:ghost:1 is not deployed"):
        client(server, dispatcher, CALLER).post_work(function_arn("ghost", "1"), b"{}", b"", "RequestResponse")


def test_an_unqualified_arn_reaches_the_one_qualified_function(ipc):
    server, dispatcher, _ = ipc
    caller = client(server, dispatcher, CALLER)
    thread = serve_one(client(server, dispatcher, WORKER), WORKER, lambda work: b"1")
    unqualified = WORKER.rsplit(":", 1)[0]
    result = caller.get_work_result(unqualified, caller.post_work(unqualified, b"{}", b"", "RequestResponse"))
    thread.join(5)
    assert result.payload == b"1"


def publish_context(topic, policy=""):
    return base64.b64encode(
        json.dumps({"custom": {"source": CALLER, "subject": topic, "queueFullPolicy": policy}}).encode()
    )


def test_publish_routes_with_the_tokens_function_as_source(ipc):
    server, dispatcher, cloud = ipc
    client(server, dispatcher, CALLER).post_work(ROUTER, b"reading", publish_context("up/1"), "Event")
    assert cloud.messages == [("up/1", b"reading")]


def test_publish_over_128_kb_is_refused_413(ipc):
    server, dispatcher, cloud = ipc
    with pytest.raises(IPCException, match="413.*128 KB"):
        client(server, dispatcher, CALLER).post_work(ROUTER, b"x" * (128 * 1024 + 1), publish_context("up/1"), "Event")
    assert cloud.messages == []


def test_publish_exactly_128_kb_is_accepted(ipc):
    server, dispatcher, cloud = ipc
    client(server, dispatcher, CALLER).post_work(ROUTER, b"x" * (128 * 1024), publish_context("up/1"), "Event")
    assert len(cloud.messages[0][1]) == 128 * 1024


def test_publish_to_a_wildcard_topic_is_refused_400(ipc):
    server, dispatcher, _ = ipc
    with pytest.raises(IPCException, match="400.*wildcard"):
        client(server, dispatcher, CALLER).post_work(ROUTER, b"", publish_context("up/#"), "Event")


def test_all_or_error_publish_to_a_full_queue_is_an_error_for_the_publisher(ipc):
    server, dispatcher, _ = ipc
    caller = client(server, dispatcher, CALLER)
    for _ in range(4):
        caller.post_work(ROUTER, b"", publish_context("fan", "AllOrError"), "Event")
    with pytest.raises(IPCException, match="429.*full"):
        caller.post_work(ROUTER, b"", publish_context("fan", "AllOrError"), "Event")
    caller.post_work(ROUTER, b"", publish_context("fan", "BestEffort"), "Event")  # dropped, not an error
    assert dispatcher.router.counters()["dropped_queue_full"] == 2


def test_a_client_context_that_is_not_base64_json_is_refused(ipc):
    server, dispatcher, _ = ipc
    with pytest.raises(IPCException, match="400.*base64"):
        client(server, dispatcher, CALLER).post_work(ROUTER, b"", "%%%not-base64", "Event")


def test_secret_binary_and_created_date_in_epoch_ms(ipc):
    server, dispatcher, _ = ipc
    caller = client(server, dispatcher, CALLER)
    result = caller.get_work_result(SECRETS, caller.post_work(SECRETS, b'{"SecretId": "s"}', b"", "RequestResponse"))
    answer = json.loads(result.payload)
    assert base64.b64decode(answer["SecretBinary"]) == b"\x00\x01"
    assert answer["CreatedDate"] == 1_500_000_000_000
    assert answer["VersionStages"] == ["AWSCURRENT"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b'{"SecretId": "nope"}', 404, "can't find the specified secret"),
        (b'{"SecretId": "s", "VersionStage": "AWSPREVIOUS"}', 404, "staging label: AWSPREVIOUS"),
        (b"not json", 400, "SecretId"),
    ],
)
def test_secret_errors_use_status_and_message_keys(ipc, body, status, message):
    server, dispatcher, _ = ipc
    caller = client(server, dispatcher, CALLER)
    answer = json.loads(
        caller.get_work_result(SECRETS, caller.post_work(SECRETS, body, b"", "RequestResponse")).payload
    )
    assert answer["Status"] == status
    assert message in answer["Message"]


def test_shadow_service_absent_is_a_clear_503(ipc):
    server, dispatcher, _ = ipc
    context = base64.b64encode(json.dumps({"custom": {"subject": "$aws/things/t/shadow/get"}}).encode())
    with pytest.raises(IPCException, match="503.*shadow service"):
        client(server, dispatcher, CALLER).post_work(
            "arn:aws:lambda:::function:GGShadowService", b"", context, "RequestResponse"
        )


def test_unknown_path_is_404(ipc):
    server, dispatcher, _ = ipc
    connection = http.client.HTTPConnection("127.0.0.1", server.port)
    connection.request("GET", "/nothing/here", headers={"Authorization": dispatcher.tokens.issue(CALLER)})
    assert connection.getresponse().status == 404


def test_a_client_reconnects_when_the_core_closed_its_kept_alive_connection(ipc):
    server, dispatcher, cloud = ipc
    caller = client(server, dispatcher, CALLER)
    caller.post_work(ROUTER, b"1", publish_context("up/1"), "Event")
    port = server.port
    server.stop()
    restarted = IPCServer(dispatcher, port=port)
    restarted.start()
    try:
        caller.post_work(ROUTER, b"2", publish_context("up/1"), "Event")
    finally:
        restarted.stop()
    assert [payload for _, payload in cloud.messages] == [b"1", b"2"]


def test_a_core_that_is_gone_is_an_ipc_exception(ipc):
    server, dispatcher, _ = ipc
    caller = client(server, dispatcher, CALLER)
    server.stop()
    with pytest.raises(IPCException, match="urlopen error"):
        caller.post_work(ROUTER, b"", publish_context("up/1"), "Event")
