"""The boto3-using fixture Lambdas (tests/lambdas_fixtures/aws_user): their group, and invoking them."""

from __future__ import annotations

import json

import boto3
from lambdas_fixtures.harness import IPCClient, function_arn, make_function, make_group

from simcore.core.assemble import Core

PINNED = function_arn("aws-pinned")
FRESH = function_arn("aws-fresh")
TESTER = function_arn("aws-test-harness")
BUCKET, TABLE = "tes-lambdas", "tes-lambdas"


def aws_group():
    return make_group([
        make_function("aws-pinned", "aws_user", "aws_user.function_handler", pinned=True, timeout_s=30),
        make_function("aws-fresh", "aws_user", "aws_fresh.function_handler", timeout_s=30),
    ])


def local_client(endpoint: str, service: str):
    """The test's own client of the moto server (test keys of its own, not the Lambdas')."""
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def invoke(core: Core, function: str, key: str, *, bucket: str = BUCKET, table: str = TABLE) -> dict:
    """Invoke `function` (RequestResponse, as a test harness) to write `key`; its report."""
    client = IPCClient(port=core.ipc_port)
    client.auth_token = core.issue_token(TESTER)
    event = {"bucket": bucket, "key": key, "table": table}
    invocation_id = client.post_work(function, json.dumps(event).encode(), b"", "RequestResponse")
    result = client.get_work_result(function, invocation_id)
    assert result.func_err == "", result.payload
    return json.loads(result.payload)
