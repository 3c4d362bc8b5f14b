"""What a hostile local process can make the IPC server hold, before and after it shows a token.

Real sockets against a running core's IPC server. The memory and thread tests run the core in a process
of its own (tests/support/core_process.py) and read its VmRSS, VmHWM and thread count from /proc.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
from collections.abc import Iterator

import pytest
from lambdas_fixtures.harness import function_arn, make_function, make_group
from support.core_process import CoreProcess
from support.waiting import wait_until

from simcore.core.assemble import Core
from simcore.core.ipc.dispatch import MAX_INVOKE_BYTES
from simcore.defaults import DEFAULT_IPC_ADMISSION_SLOTS

VICTIM = function_arn("victim")
BYSTANDER = function_arn("bystander")
ROUTER = "arn:aws:lambda:::function:GGRouter"
# A guard against a server that never answers (the bug these tests catch): the test fails, it does not hang.
HANG_GUARD_S = 30.0
MB = 1024 * 1024


def _path(arn: str, suffix: str = "") -> str:
    return f"/2016-11-01/functions/{arn}{suffix}"


def _context(custom: object) -> str:
    return base64.b64encode(json.dumps({"custom": custom}).encode()).decode()


def _head(path: str, headers: dict[str, str], method: str = "POST") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: localhost", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _status_of(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP response from a raw socket."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, {k: v for k, v in response.getheaders()}, response.read()


@pytest.fixture
def core(tmp_path) -> Iterator[Core]:
    group = make_group([make_function(name, "compat", "echo.function_handler") for name in ("victim", "bystander")])
    running = Core(group, runtime_root=tmp_path / "core")
    running.start()
    yield running
    running.stop()


def _send_head(port: int, head: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD_S)
    sock.sendall(head)
    return sock


# -- the order: token and target from the headers, then the body ---------------------------------------------


def test_a_request_without_a_token_is_refused_401_before_its_body_is_sent(core):
    # Only the headers go out: a server that waited for the declared megabyte would never answer.
    sock = _send_head(core.ipc_port, _head(_path(VICTIM), {"Content-Length": str(MB)}))
    status, headers, body = _status_of(sock)
    sock.close()
    assert status == 401
    assert headers["Connection"] == "close"
    assert json.loads(body)["errorMessage"] == "Missing Authorization token"


def test_an_invoke_of_an_unknown_function_is_refused_404_before_its_body_is_sent(core):
    token = core.issue_token(BYSTANDER)
    head = _head(_path(function_arn("nobody")), {"Authorization": token, "Content-Length": str(MB)})
    sock = _send_head(core.ipc_port, head)
    status, headers, body = _status_of(sock)
    sock.close()
    assert status == 404
    assert headers["X-Amzn-ErrorType"] == "ResourceNotFoundException"
    assert "is not deployed in this group" in json.loads(body)["errorMessage"]


@pytest.mark.parametrize(
    ("content_length", "message"),
    [
        ("abc", "Content-Length must be a whole number of bytes, not 'abc'"),
        ("-1", "Content-Length must be a whole number of bytes, not '-1'"),
        ("1e3", "Content-Length must be a whole number of bytes, not '1e3'"),
        (None, "A POST request needs a Content-Length header"),
    ],
)
def test_a_bad_or_missing_content_length_is_400(core, content_length, message):
    headers = {"Authorization": core.issue_token(BYSTANDER), "X-Amz-Invocation-Type": "Event"}
    if content_length is not None:
        headers["Content-Length"] = content_length
    sock = _send_head(core.ipc_port, _head(_path(VICTIM), headers))
    status, response_headers, body = _status_of(sock)
    sock.close()
    assert status == 400
    assert response_headers["X-Amzn-ErrorType"] == "InvalidRequestContentException"
    assert json.loads(body) == {"errorMessage": message, "errorType": "InvalidRequestContentException"}
    assert core.work_queue.pending(VICTIM) == 0


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (_context(["a", "list"]), "X-Amz-Client-Context's custom must be a JSON object"),
        (base64.b64encode(b"[1, 2]").decode(), "X-Amz-Client-Context must encode a JSON object"),
        ("%%%not-base64", "X-Amz-Client-Context is not base64-encoded JSON"),
    ],
)
@pytest.mark.parametrize("target", [ROUTER, VICTIM])
def test_a_malformed_client_context_is_400_not_500(core, header, message, target):
    connection = http.client.HTTPConnection("127.0.0.1", core.ipc_port, timeout=HANG_GUARD_S)
    connection.request(
        "POST",
        _path(target),
        body=b"{}",
        headers={"Authorization": core.issue_token(BYSTANDER), "X-Amz-Client-Context": header},
    )
    response = connection.getresponse()
    assert response.status == 400
    assert json.loads(response.read())["errorMessage"].startswith(message)


def test_a_body_over_the_invoke_limit_is_refused_413_before_it_is_sent(core):
    headers = {"Authorization": core.issue_token(BYSTANDER), "Content-Length": str(MAX_INVOKE_BYTES + 1)}
    sock = _send_head(core.ipc_port, _head(_path(VICTIM), headers))
    status, response_headers, body = _status_of(sock)
    sock.close()
    assert status == 413
    assert response_headers["X-Amzn-ErrorType"] == "RequestTooLargeException"
    assert json.loads(body)["errorMessage"] == (
        f"The request body is {MAX_INVOKE_BYTES + 1} bytes; the limit is 6 MB ({MAX_INVOKE_BYTES} bytes)"
    )


def test_a_publish_body_over_128_kb_is_refused_413_before_it_is_sent(core):
    headers = {
        "Authorization": core.issue_token(BYSTANDER),
        "Content-Length": str(128 * 1024 + 1),
        "X-Amz-Client-Context": _context({"subject": "t"}),
    }
    sock = _send_head(core.ipc_port, _head(_path(ROUTER), headers))
    status, _, _ = _status_of(sock)
    sock.close()
    assert status == 413


@pytest.mark.parametrize(
    "head",
    [_head(_path(VICTIM), {f"X-Pad-{i}": "p" * 1000 for i in range(17)}), _head(_path("x" * 20_000), {})],
    ids=["headers", "request-line"],
)
def test_headers_over_16_kb_are_refused_431(core, head):
    sock = _send_head(core.ipc_port, head)
    status, _, body = _status_of(sock)
    sock.close()
    assert status == 431
    assert json.loads(body)["errorMessage"] == "The request line and headers exceed 16384 bytes"


def test_a_body_is_answered_100_continue_only_after_the_token_passed(core):
    no_token = _send_head(core.ipc_port, _head(_path(VICTIM), {"Content-Length": "2", "Expect": "100-continue"}))
    assert _status_of(no_token)[0] == 401
    no_token.close()
    token = core.issue_token(BYSTANDER)
    head = _head(_path(VICTIM), {"Authorization": token, "Content-Length": "2", "Expect": "100-continue",
                                 "X-Amz-Invocation-Type": "Event"})
    sock = _send_head(core.ipc_port, head)
    assert sock.recv(64).startswith(b"HTTP/1.1 100 Continue\r\n")
    sock.sendall(b"{}")
    assert _status_of(sock)[0] == 202
    sock.close()


def test_a_request_not_complete_within_the_read_timeout_is_shut_down(tmp_path):
    group = make_group([make_function("victim", "compat", "echo.function_handler")])
    core = Core(group, runtime_root=tmp_path / "core")
    core.start()
    core.server.read_timeout_s = 0.5
    try:
        token = core.issue_token(VICTIM)
        # Headers complete, body one byte short of what it declared, then silence.
        sock = _send_head(core.ipc_port, _head(_path(VICTIM), {"Authorization": token, "Content-Length": "3"}))
        sock.sendall(b"{}")
        assert sock.recv(1024) == b""  # shut down by the server, no answer
        sock.close()
        assert core.server.counters()["connections_timed_out"] == 1
        assert core.work_queue.pending(VICTIM) == 0
    finally:
        core.stop()


# -- what an attack makes the core hold ----------------------------------------------------------------------


@pytest.fixture
def core_process(tmp_path) -> Iterator[CoreProcess]:
    # A read timeout longer than any test: the half-open connections must still be held when they are counted
    # (with the default 10 s, a slow machine could see the first ones shut down before the last connect).
    process = CoreProcess(tmp_path / "core", read_timeout_s=600)
    yield process
    process.stop()


def _flood(port: int, head: bytes, body_bytes: int) -> tuple[int, int]:
    """Send `head`, read the answer, then try to send `body_bytes`; (status, bytes the kernel took)."""
    sock = _send_head(port, head)
    status, _, _ = _status_of(sock)
    sent = 0
    chunk = b"x" * MB
    try:
        while sent < body_bytes:
            sent += sock.send(chunk)
    except OSError:
        pass  # the server closed the connection: what it did not read, it does not hold
    sock.close()
    return status, sent


def _half_open(port: int, count: int) -> list[socket.socket]:
    """`count` connections, each with the start of a request and no end to it."""
    opened = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD_S)
        with contextlib.suppress(OSError):  # refused and closed by the server at once
            sock.sendall(b"POST /2016-11-01/functions/x HTTP/1.1\r\nContent-Length: -1\r\n")
        opened.append(sock)
    return opened


def test_the_ipc_attack_leaves_the_cores_rss_within_10_mb_of_idle(core_process):
    port = core_process.port
    token = core_process.tokens["bystander"]
    idle = core_process.ask("status")
    core_process.ask("reset_peak")

    # Content-Length: -1 and no token, then 512 MB: the v1-era handler read to the end of the stream.
    status, sent = _flood(port, _head(_path(VICTIM), {"Content-Length": "-1"}), 512 * MB)
    assert status == 401 and sent < 64 * MB
    status, sent = _flood(port, _head(_path(VICTIM), {"Content-Length": str(2 * 1024 * MB)}), 512 * MB)
    assert status == 401 and sent < 64 * MB
    status, sent = _flood(port, _head(_path(VICTIM), {"Authorization": token, "Content-Length": "-1"}), 512 * MB)
    assert status == 400 and sent < 64 * MB
    status, sent = _flood(
        port, _head(_path(VICTIM), {"Authorization": token, "Content-Length": str(2 * 1024 * MB)}), 512 * MB
    )
    assert status == 413 and sent < 64 * MB

    accepted_before = core_process.ipc()["connections_accepted"]
    sockets = _half_open(port, 3000)
    wait_until(
        lambda: core_process.ipc()["connections_accepted"] >= accepted_before + 3000,
        message=lambda: f"the core to take all 3000 connections: {core_process.ipc()}",
    )
    during = core_process.ask("status")
    for sock in sockets:
        sock.close()
    wait_until(
        lambda: core_process.ipc()["connections_open"] == 0,
        message=lambda: f"every connection closed: {core_process.ipc()}",
    )
    after = core_process.ask("status")

    assert during["core"]["ipc"]["admission_slots_used"] == DEFAULT_IPC_ADMISSION_SLOTS
    for moment in (during, after):
        assert moment["rss_kb"] - idle["rss_kb"] < 10 * 1024, (idle["rss_kb"], moment["rss_kb"])
    # VmHWM: the highest RSS at any instant since the reset, however brief.
    assert after["peak_kb"] - idle["rss_kb"] < 10 * 1024, (idle["rss_kb"], after["peak_kb"])


def test_3000_half_open_connections_do_not_get_3000_threads(core_process):
    port = core_process.port
    token = core_process.tokens["bystander"]
    # A caller that authenticated before the flood keeps its kept-alive connection and is served throughout.
    caller = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG_GUARD_S)

    def publish() -> int:
        caller.request(
            "POST", _path(ROUTER), body=b"{}",
            headers={"Authorization": token, "X-Amz-Client-Context": _context({"subject": "t"}),
                     "X-Amz-Invocation-Type": "Event"},
        )
        response = caller.getresponse()
        response.read()
        return response.status

    assert publish() == 202
    before = core_process.ask("status")
    sockets = _half_open(port, 3000)
    try:
        wait_until(
            lambda: core_process.ipc()["connections_accepted"] >= before["core"]["ipc"]["connections_accepted"] + 3000,
            message=lambda: f"the core to take all 3000 connections: {core_process.ipc()}",
        )
        during = core_process.ask("status")
        assert publish() == 202
    finally:
        for sock in sockets:
            sock.close()
    ipc = during["core"]["ipc"]
    assert ipc["admission_slots_used"] == DEFAULT_IPC_ADMISSION_SLOTS
    refused = ipc["connections_refused"] - before["core"]["ipc"]["connections_refused"]
    assert refused == 3000 - DEFAULT_IPC_ADMISSION_SLOTS
    # One thread per admitted connection at most: the flood adds the admission slots' worth, not 3000.
    assert during["threads"] - before["threads"] <= DEFAULT_IPC_ADMISSION_SLOTS
    assert during["threads"] < 100
    caller.close()


def test_a_flood_of_connections_leaves_room_once_it_ends(core_process):
    sockets = _half_open(core_process.port, DEFAULT_IPC_ADMISSION_SLOTS + 10)
    for sock in sockets:
        sock.close()
    wait_until(lambda: core_process.ipc()["connections_open"] == 0, message="the flood's connections closed")
    connection = http.client.HTTPConnection("127.0.0.1", core_process.port, timeout=HANG_GUARD_S)
    connection.request("GET", _path(VICTIM), headers={"Authorization": core_process.tokens["victim"]})
    response = connection.getresponse()
    assert response.status == 400  # served: get_work_result without an invocation id
    assert "X-Amz-InvocationId" in json.loads(response.read())["errorMessage"]


def test_bodies_being_read_at_once_share_one_budget(core):
    core.server.body_budget_bytes = 3 * MB
    token = core.issue_token(BYSTANDER)
    first = _send_head(core.ipc_port, _head(_path(VICTIM), {"Authorization": token, "Content-Length": str(2 * MB)}))
    # The first body is being read (its bytes reserved) while the second asks for room.
    wait_until(lambda: core.server.counters()["body_bytes_reading"] == 2 * MB, message="the first body reserved")
    second = _send_head(core.ipc_port, _head(_path(VICTIM), {"Authorization": token, "Content-Length": str(2 * MB)}))
    status, headers, _ = _status_of(second)
    second.close()
    first.close()
    assert status == 429
    assert headers["X-Amzn-ErrorType"] == "TooManyRequestsException"
