"""The modules simcore puts on each Lambda's PYTHONPATH: ARN parsing, environment names, the runtime loop."""

from __future__ import annotations

import base64
import importlib
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
from lambdas_fixtures.harness import PY38, RUNTIME_DIR

# Importable once the harness has put simcore/lambda_side on sys.path, as a worker's PYTHONPATH does.
env_vars = importlib.import_module("greengrass_common.env_vars")
lambda_runtime = importlib.import_module("lambda_runtime")
FunctionArnFields = importlib.import_module("greengrass_common.function_arn_fields").FunctionArnFields

RUNTIME_FILES = [
    RUNTIME_DIR / "lambda_runtime.py",
    RUNTIME_DIR / "greengrass_common",
    RUNTIME_DIR / "greengrass_ipc_python_sdk",
]


@pytest.mark.parametrize(
    ("arn", "fields"),
    [
        ("arn:aws:lambda:us-east-1:123456789012:function:sensor:live", ("us-east-1", "123456789012", "sensor", "live")),
        ("arn:aws:lambda:eu-west-2:123456789012:function:f:$LATEST", ("eu-west-2", "123456789012", "f", "$LATEST")),
        ("arn:aws:lambda:us-gov-west-1:1:function:f", ("us-gov-west-1", "1", "f", None)),
        ("arn:aws-cn:lambda:cn-north-1:1:function:f:3", ("cn-north-1", "1", "f", "3")),
    ],
)
def test_function_arns_parse_into_region_account_name_qualifier(arn, fields):
    parsed = FunctionArnFields(arn)
    assert (parsed.region, parsed.account_id, parsed.name, parsed.qualifier) == fields


def test_unqualified_arn_keeps_the_partition_and_build_adds_a_qualifier():
    parsed = FunctionArnFields("arn:aws-cn:lambda:cn-north-1:1:function:f:3")
    assert parsed.unqualified_arn == "arn:aws-cn:lambda:cn-north-1:1:function:f"
    assert FunctionArnFields.build_function_arn(parsed.unqualified_arn, "live") == parsed.unqualified_arn + ":live"
    assert FunctionArnFields.build_function_arn(parsed.unqualified_arn, "") == parsed.unqualified_arn


@pytest.mark.parametrize("arn", ["arn:aws:lambda:::function:GGRouter", "not an arn", ""])
def test_strings_that_are_not_function_arns_raise_the_cores_value_error(arn):
    with pytest.raises(ValueError, match="^Cannot parse given string as a function ARN.$"):
        FunctionArnFields(arn)


def test_env_vars_exposes_every_name_greengrasssdk_imports(monkeypatch):
    monkeypatch.setenv("MY_FUNCTION_ARN", "arn:aws:lambda:us-east-1:1:function:f:1")
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "secret")
    reloaded = importlib.reload(env_vars)
    try:
        assert reloaded.MY_FUNCTION_ARN == "arn:aws:lambda:us-east-1:1:function:f:1"
        assert reloaded.AUTH_TOKEN == "secret"
        assert reloaded.SHADOW_FUNCTION_ARN == "arn:aws:lambda:::function:GGShadowService"
        assert reloaded.ROUTER_FUNCTION_ARN == "arn:aws:lambda:::function:GGRouter"
        assert reloaded.SECRETS_MANAGER_FUNCTION_ARN == "arn:aws:lambda:::function:GGSecretManager:1"
    finally:
        monkeypatch.undo()
        importlib.reload(env_vars)


def test_events_are_json_with_empty_as_an_empty_dict_or_raw_bytes_for_binary():
    assert lambda_runtime.build_event(b'{"a": [1]}', "json") == {"a": [1]}
    assert lambda_runtime.build_event(b"", "json") == {}
    assert lambda_runtime.build_event(b"\x00raw", "binary") == b"\x00raw"
    with pytest.raises(ValueError, match="Expecting property name"):
        lambda_runtime.build_event(b"{not json", "json")


def test_results_are_json_with_none_as_null_and_bytes_raw_for_binary():
    assert lambda_runtime.encode_result(None, "json") == b"null"
    assert lambda_runtime.encode_result({"ok": True}, "json") == b'{"ok": true}'
    assert lambda_runtime.encode_result(b"\x01", "binary") == b"\x01"
    with pytest.raises(TypeError, match="is not JSON serializable"):
        lambda_runtime.encode_result(object(), "json")


def test_client_context_is_decoded_into_client_custom_env():
    header = base64.b64encode(json.dumps({"custom": {"subject": "t/1", "source": "cloud"}, "env": {"k": 1}}).encode())
    context = lambda_runtime.decode_client_context(header.decode())
    assert (context.client, context.custom, context.env) == (None, {"subject": "t/1", "source": "cloud"}, {"k": 1})
    assert lambda_runtime.decode_client_context("").custom is None
    assert lambda_runtime.decode_client_context("%%%").custom is None


def test_context_has_the_aws_lambda_fields():
    arn = "arn:aws:lambda:us-east-1:1:function:sensor:live"
    context = lambda_runtime.LambdaContext(arn, "id-1", lambda_runtime.ClientContext(), 3000)
    assert (context.aws_request_id, context.invoked_function_arn) == ("id-1", arn)
    assert (context.function_name, context.function_version, context.identity) == ("sensor", "live", None)
    assert 0 < context.get_remaining_time_in_millis() <= 3000


def test_log_lines_have_the_cores_shape_and_level_names():
    record = logging.LogRecord("x", logging.WARNING, "/code/handler.py", 12, "two\nlines", None, None)
    lines = lambda_runtime.CoreLineFormatter().format(record).splitlines()
    shape = re.compile(r"^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\]\[WARN\]-handler\.py:12,(two|lines)$")
    assert len(lines) == 2 and all(shape.match(line) for line in lines)


def test_a_handler_path_without_a_module_is_refused():
    with pytest.raises(ValueError, match="module.function"):
        lambda_runtime.load_handler("handler")


def test_the_runtime_refuses_to_start_without_my_function_arn(tmp_path):
    result = subprocess.run(
        [sys.executable, str(RUNTIME_DIR / "lambda_runtime.py"), "--handler", "x.y"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(RUNTIME_DIR)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "MY_FUNCTION_ARN is not set" in result.stderr


def test_runtime_modules_need_nothing_newer_than_python_3_7():
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("vermin")),
            "--no-tips",
            "--violations",
            "-t=3.7-",
            *map(str, RUNTIME_FILES),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.py38
@pytest.mark.skipif(not PY38.exists(), reason="no .venv-py38")
def test_runtime_modules_import_and_parse_under_python_3_8():
    code = (
        "import lambda_runtime, greengrass_ipc_python_sdk.ipc_client as c;"
        "from greengrass_common.function_arn_fields import FunctionArnFields as F;"
        "print(F('arn:aws:lambda:us-east-1:1:function:f:live').name, c.IPCClient(port=1).port)"
    )
    result = subprocess.run(
        [str(PY38), "-c", code], env={"PYTHONPATH": str(RUNTIME_DIR)}, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.split() == ["f", "1"], result.stderr


def test_the_handler_flag_is_read_in_both_spellings_and_anything_else_is_refused(capsys):
    assert lambda_runtime.parse_handler(["--handler", "pkg.mod.fn"]) == "pkg.mod.fn"
    assert lambda_runtime.parse_handler(["--handler=pkg.mod.fn"]) == "pkg.mod.fn"
    with pytest.raises(SystemExit, match="^2$"):
        lambda_runtime.parse_handler([])
    assert "--handler is required" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="^2$"):
        lambda_runtime.parse_handler(["--handler", "a.b", "--verbose"])
    assert "unexpected argument '--verbose'" in capsys.readouterr().err


# A worker imports these only if its handler does: they are megabytes of every worker (bench/footprint.py).
NOT_BEFORE_THE_HANDLER = ("ssl", "_ssl", "_hashlib", "http.client", "email", "argparse", "urllib.request")


@pytest.mark.parametrize("interpreter", [sys.executable, str(PY38)], ids=["simcore's Python", "Python 3.8"])
def test_a_worker_loads_no_tls_http_client_or_argparse_before_its_handler(interpreter):
    if not Path(interpreter).exists():
        pytest.skip("no .venv-py38")
    code = (
        "import sys, lambda_runtime, greengrasssdk\n"
        "greengrasssdk.client('iot-data')\n"
        f"print(' '.join(sorted(m for m in {NOT_BEFORE_THE_HANDLER!r} if m in sys.modules)) or '-')\n"
    )
    result = subprocess.run(
        [interpreter, "-c", code], capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(RUNTIME_DIR),
             "MY_FUNCTION_ARN": "arn:aws:lambda:us-east-1:1:function:f:1"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["-"], f"loaded before the handler: {result.stdout.strip()}"


class OneAnswerServer:
    """A loopback server that answers every request on a connection with the same raw bytes."""

    def __init__(self, answer: bytes, close_after: bool = False):
        import socket
        import threading

        self.answer, self.close_after = answer, close_after
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import socket

        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection:
                reader = connection.makefile("rb")
                while True:
                    head = b""
                    while not head.endswith(b"\r\n\r\n"):
                        line = reader.readline()
                        if not line:
                            break
                        head += line
                    if not head:
                        break
                    length = re.search(rb"Content-Length: (\d+)", head)
                    self.requests.append(head + reader.read(int(length.group(1)) if length else 0))
                    connection.sendall(self.answer)
                    if self.close_after:
                        break
                reader.close()  # the socket's file holds it open: close both, then the peer sees the end
                connection.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


def test_the_ipc_client_reads_chunked_and_close_delimited_answers_and_keeps_the_connection():
    from greengrass_ipc_python_sdk.ipc_client import IPCClient

    chunked = OneAnswerServer(b"HTTP/1.1 200 OK\r\nX-Amz-InvocationId: abc\r\nTransfer-Encoding: chunked\r\n\r\n"
                              b"3\r\n{\"a\r\n5\r\n\": 1}\r\n0\r\n\r\n")
    try:
        client = IPCClient(endpoint="127.0.0.1", port=chunked.port)
        client.auth_token = "token"
        first = client.get_work("arn:aws:lambda:us-east-1:1:function:f:1")
        second = client.get_work("arn:aws:lambda:us-east-1:1:function:f:1")
    finally:
        chunked.close()
    assert (first.invocation_id, first.payload) == ("abc", b'{"a": 1}') == (second.invocation_id, second.payload)
    assert len(chunked.requests) == 2  # both on the one kept-alive connection
    assert chunked.requests[0].startswith(b"GET /2016-11-01/functions/arn:aws:lambda:us-east-1:1:function:f:1/work ")
    assert b"\r\nAuthorization: token\r\n" in chunked.requests[0]

    to_the_end = OneAnswerServer(b"HTTP/1.0 200 OK\r\n\r\nuntil close", close_after=True)
    try:
        client = IPCClient(endpoint="127.0.0.1", port=to_the_end.port)
        work = client.get_work("arn:aws:lambda:us-east-1:1:function:f:1")
    finally:
        to_the_end.close()
    assert (work.invocation_id, work.payload) == (None, b"until close")


def test_the_ipc_client_refuses_a_truncated_or_unbounded_answer_with_an_ipc_exception():
    from greengrass_ipc_python_sdk.ipc_client import IPCClient, IPCException

    for answer, expected in (
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nshort", "ended after 5 of 10 bytes"),
        (b"HTTP/1.1 200 OK\r\nX-Long: " + b"x" * 70000 + b"\r\n\r\n", "longer than 65536 bytes"),
        (b"SMTP ready\r\n\r\n", "not an HTTP status line"),
    ):
        server = OneAnswerServer(answer, close_after=True)
        try:
            with pytest.raises(IPCException, match=expected):
                IPCClient(endpoint="127.0.0.1", port=server.port).get_work("arn:aws:lambda:us-east-1:1:function:f:1")
        finally:
            server.close()
