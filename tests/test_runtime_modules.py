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
