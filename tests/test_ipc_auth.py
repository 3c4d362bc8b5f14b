"""IPC authentication: every call needs its function's token, and a token only speaks for its function."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from lambdas_fixtures.harness import IPCClient, IPCException, function_arn
from support.work_source import QueueWorkSource

from simcore.core.ipc.dispatch import IPCDispatcher
from simcore.core.ipc.http import IPCServer
from simcore.core.router import Router
from simcore.core.work_queue import WorkQueue
from simcore.group import CLOUD, Subscription

A = function_arn("a")
B = function_arn("b")
ROUTER = "arn:aws:lambda:::function:GGRouter"


@pytest.fixture
def ipc():
    queue = WorkQueue()
    router = Router([Subscription("s", A, "t/#", CLOUD)], [A, B], queue)
    dispatcher = IPCDispatcher(router, queue, {A: 3.0, B: 3.0}, QueueWorkSource(queue))
    server = IPCServer(dispatcher, get_work_poll_s=0.2)
    server.start()
    yield server, dispatcher, queue
    server.stop()


def client_for(server, token):
    client = IPCClient(port=server.port)
    client.auth_token = token
    return client


def test_a_call_without_a_token_is_refused_401_and_logged(ipc, caplog):
    server, dispatcher, queue = ipc
    with caplog.at_level(logging.WARNING, logger="simcore.core.ipc.dispatch"), pytest.raises(IPCException, match="401"):
        client_for(server, "").post_work(B, b"{}", b"", "Event")
    assert len(queue) == 0
    assert dispatcher.refused_calls == 1
    assert "no Authorization token" in caplog.text


def test_an_unknown_token_is_refused_403_and_logged(ipc, caplog):
    server, dispatcher, queue = ipc
    with caplog.at_level(logging.WARNING, logger="simcore.core.ipc.dispatch"), pytest.raises(IPCException, match="403"):
        client_for(server, "f" * 64).post_work(B, b"{}", b"", "Event")
    assert len(queue) == 0
    assert "unknown token" in caplog.text


def test_a_worker_cannot_take_another_functions_work(ipc, caplog):
    server, dispatcher, queue = ipc
    a = client_for(server, dispatcher.tokens.issue(A))
    a.post_work(B, b'{"for": "b"}', b"", "Event")
    with caplog.at_level(logging.WARNING, logger="simcore.core.ipc.dispatch"), pytest.raises(IPCException, match="403"):
        a.get_work(B)
    assert queue.pending(B) == 1
    assert f"{A} may not get work for {B}" in caplog.text


def test_a_worker_cannot_post_results_for_another_function(ipc, caplog):
    server, dispatcher, _ = ipc
    a = client_for(server, dispatcher.tokens.issue(A))
    b = client_for(server, dispatcher.tokens.issue(B))
    invocation_id = a.post_work(B, b"{}", b"", "RequestResponse")
    assert b.get_work(B).invocation_id == invocation_id
    with caplog.at_level(logging.WARNING, logger="simcore.core.ipc.dispatch"), pytest.raises(IPCException, match="403"):
        a.post_handler_err(B, invocation_id, "forged")
    assert f"{A} may not post results for {B}" in caplog.text


def test_another_callers_result_cannot_be_fetched(ipc):
    server, dispatcher, _ = ipc
    a = client_for(server, dispatcher.tokens.issue(A))
    b = client_for(server, dispatcher.tokens.issue(B))
    invocation_id = a.post_work(B, b"{}", b"", "RequestResponse")
    with pytest.raises(IPCException, match="404"):
        b.get_work_result(B, invocation_id)


def test_publishing_as_another_source_is_refused_and_logged(ipc, caplog):
    server, dispatcher, _ = ipc
    b = client_for(server, dispatcher.tokens.issue(B))
    context = base64.b64encode(json.dumps({"custom": {"source": A, "subject": "t/x"}}).encode())
    with caplog.at_level(logging.WARNING, logger="simcore.core.ipc.dispatch"), pytest.raises(IPCException, match="403"):
        b.post_work(ROUTER, b"{}", context, "Event")
    assert dispatcher.router.counters()["undeliverable"] == 0
    assert dispatcher.router.counters()["dropped_unmatched"] == 0
    assert f"{B} may not publish as source {A}" in caplog.text


def test_a_revoked_token_no_longer_works(ipc):
    server, dispatcher, _ = ipc
    token = dispatcher.tokens.issue(A)
    dispatcher.tokens.revoke(token)
    with pytest.raises(IPCException, match="403"):
        client_for(server, token).get_work(A)
