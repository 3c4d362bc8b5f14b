"""A secret resource end to end: template → deploy (Secrets Manager, moto in-process) → RunningCore → a real
worker whose unmodified greengrasssdk calls `client('secretsmanager').get_secret_value` over IPC.

The reader function names the secret resource in its ResourceAccessPolicies; the outsider (same code) does not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from lambdas_fixtures.harness import PY38, IPCClient, function_arn
from support.aws import fake_aws

from simcore.deploy.deployment import deploy
from simcore.service.running import RunningCore, RunOptions

TEMPLATE = Path(__file__).parent / "fixtures" / "secrets" / "secret_group.yaml"
READER = function_arn("secret-reader")
OUTSIDER = function_arn("secret-outsider")
TESTER = function_arn("secret-test-harness")


@dataclass
class SecretCore:
    running: RunningCore
    arn: str

    def read(self, function: str, secret_id: str, stage: str | None = None) -> dict:
        """Invoke `function` (RequestResponse, as the test harness) and return its report."""
        client = IPCClient(port=self.running.core.ipc_port)
        client.auth_token = self.running.core.issue_token(TESTER)
        event = {"secret_id": secret_id, "stage": stage}
        invocation_id = client.post_work(function, json.dumps(event).encode(), b"", "RequestResponse")
        result = client.get_work_result(function, invocation_id)
        assert result.func_err == "", result.payload
        return json.loads(result.payload)


@pytest.fixture(scope="module")
def secret_core(tmp_path_factory, moto_server) -> Iterator[SecretCore]:
    root = tmp_path_factory.mktemp("secrets-e2e") / "ggc"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("SIMCORE_SECRETS_FILE", raising=False)
        fake_aws(patch, moto_server)
        secretsmanager = boto3.client("secretsmanager", region_name="us-east-1")
        arn = secretsmanager.create_secret(Name="greengrass-db", SecretString='{"password": "hunter2"}')["ARN"]
        secretsmanager.put_secret_value(SecretId=arn, SecretString='{"password": "next"}', VersionStages=["next"])
        deployment = deploy(TEMPLATE, {"SecretArn": arn, "ExtraLabel": "next"}, root)
    interpreters = {"python3.8": str(PY38)} if PY38.exists() else {}
    running = RunningCore(deployment, RunOptions(isolation="off", interpreters=interpreters))
    running.start()
    try:
        yield SecretCore(running, arn)
    finally:
        running.stop()


def test_function_with_access_reads_the_current_value_by_name_and_arn(secret_core: SecretCore):
    by_name = secret_core.read(READER, "greengrass-db")["value"]
    assert by_name == {
        "ARN": secret_core.arn,
        "Name": "greengrass-db",
        "SecretString": '{"password": "hunter2"}',
        "SecretBinary": None,
        "VersionStages": ["AWSCURRENT"],
        "CreatedDate": "datetime",
    }
    assert secret_core.read(READER, secret_core.arn)["value"] == by_name


def test_function_with_access_reads_an_additional_staging_label(secret_core: SecretCore):
    value = secret_core.read(READER, "greengrass-db", "next")["value"]
    assert value["SecretString"] == '{"password": "next"}'
    assert value["VersionStages"] == ["next"]


def test_function_without_access_gets_the_sdk_error_403(secret_core: SecretCore):
    report = secret_core.read(OUTSIDER, "greengrass-db")
    assert "value" not in report
    assert report["error"].startswith("SecretsManagerError: Request for secret value returned error code 403")
    assert "ResourceAccessPolicies" in report["error"]


def test_unknown_secret_and_unknown_label_get_the_sdk_error_404(secret_core: SecretCore):
    unknown = secret_core.read(READER, "greengrass-nobody")["error"]
    assert unknown.startswith("SecretsManagerError: Request for secret value returned error code 404")
    assert "can't find the specified secret" in unknown
    label = secret_core.read(READER, "greengrass-db", "AWSPREVIOUS")["error"]
    assert "error code 404" in label and "staging label: AWSPREVIOUS" in label
