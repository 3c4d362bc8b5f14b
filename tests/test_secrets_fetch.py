"""simcore.deploy.secrets at deploy: secret resources fetched from Secrets Manager (moto, in-process) or a file."""

from __future__ import annotations

import base64
import json
import re
import stat
from pathlib import Path

import boto3
import pytest

from simcore.core.secrets import secret_store_from_records
from simcore.deploy.deployment import deploy
from simcore.deploy.record import load_deployment, read_status
from simcore.deploy.secrets import SECRETS_FILE_ENV, fetch_secrets, read_stored_secrets
from simcore.errors import DeployError, TemplateError
from simcore.group import Group, Resource, ResourceAccess
from simcore.template.loader import load_group

TEMPLATE = Path(__file__).parent / "fixtures" / "secrets" / "secret_group.yaml"
READER = "arn:aws:lambda:us-east-1:123456789012:function:secret-reader:live"
OUTSIDER = "arn:aws:lambda:us-east-1:123456789012:function:secret-outsider:live"
UNKNOWN_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:greengrass-absent-AbCdEf"
AWS_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_PROFILE", SECRETS_FILE_ENV)


@pytest.fixture
def secretsmanager(aws, monkeypatch):
    """A Secrets Manager client on moto's AWS; the secrets come from it, not from a secrets file."""
    monkeypatch.delenv(SECRETS_FILE_ENV, raising=False)
    return boto3.client("secretsmanager", region_name="us-east-1")


@pytest.fixture
def no_aws(monkeypatch, tmp_path):
    """An environment with no AWS credentials anywhere (and no instance metadata to ask)."""
    for name in (
        *AWS_ENV,
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")



def load_secret_store(group, deployment_dir):
    """What the running core serves: the deployment's stored secrets as GGSecretManager's store."""
    return secret_store_from_records(group, read_stored_secrets(group, deployment_dir))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_deploy_fetches_current_and_extra_label_into_private_files(secretsmanager, tmp_path):
    arn = secretsmanager.create_secret(Name="greengrass-db", SecretString='{"password": "one"}')["ARN"]
    secretsmanager.put_secret_value(SecretId=arn, SecretString='{"password": "two"}', VersionStages=["next"])
    deployment = deploy(TEMPLATE, {"SecretArn": arn, "ExtraLabel": "next"}, tmp_path / "ggc")

    folder = deployment.directory / "secrets"
    stored = folder / "db-password.json"
    assert _mode(folder) == 0o700
    assert _mode(stored) == 0o600
    assert [entry.name for entry in folder.iterdir()] == ["db-password.json"]
    record = json.loads(stored.read_text())
    assert record["ARN"] == arn and record["Name"] == "greengrass-db"
    by_stage = {stage: version["SecretString"] for version in record["Versions"] for stage in version["VersionStages"]}
    assert by_stage == {"AWSCURRENT": '{"password": "one"}', "next": '{"password": "two"}'}
    # The secret's name starts with greengrass-: the v1 group role could read it, so no warning.
    assert read_status(tmp_path / "ggc")["Warnings"] == []


def test_stored_secrets_are_served_only_to_functions_with_access(secretsmanager, tmp_path):
    arn = secretsmanager.create_secret(Name="greengrass-db", SecretBinary=b"\x00\xffkey")["ARN"]
    deploy(TEMPLATE, {"SecretArn": arn}, tmp_path / "ggc")
    deployment = load_deployment(tmp_path / "ggc")
    store = load_secret_store(deployment.group, deployment.directory)

    answer = store.get(READER, "greengrass-db", None)
    assert answer["ARN"] == arn
    assert base64.b64decode(answer["SecretBinary"]) == b"\x00\xffkey"
    assert answer["VersionStages"] == ["AWSCURRENT"]
    assert store.get(READER, arn, "AWSCURRENT")["Name"] == "greengrass-db"
    assert store.get(OUTSIDER, arn, None)["Status"] == 403
    assert store.get(READER, "greengrass-other", None)["Status"] == 404


def test_missing_secret_fails_the_deployment_with_the_aws_code(secretsmanager, tmp_path):
    with pytest.raises(DeployError, match=re.escape(f"cannot fetch {UNKNOWN_ARN} (AWSCURRENT)")) as raised:
        deploy(TEMPLATE, {"SecretArn": UNKNOWN_ARN}, tmp_path / "ggc")
    assert raised.value.code == "ResourceNotFoundException"
    assert f"secret resource db-password: cannot fetch {UNKNOWN_ARN} (AWSCURRENT)" in raised.value.message
    status = read_status(tmp_path / "ggc")
    assert status["DeploymentStatus"] == "Failure"
    assert "ResourceNotFoundException" in status["ErrorMessage"]
    assert not (tmp_path / "ggc" / "current").exists()
    # Nothing of the failed deployment (secrets included) is left on disk.
    assert [entry.name for entry in (tmp_path / "ggc" / "deployments").iterdir()] == ["status.json"]


def test_missing_staging_label_names_the_label(secretsmanager, tmp_path):
    arn = secretsmanager.create_secret(Name="greengrass-db", SecretString="one")["ARN"]
    with pytest.raises(DeployError, match=re.escape(f"cannot fetch {arn} (absent)")) as raised:
        deploy(TEMPLATE, {"SecretArn": arn, "ExtraLabel": "absent"}, tmp_path / "ggc")
    assert raised.value.code == "ResourceNotFoundException"
    assert f"cannot fetch {arn} (absent)" in raised.value.message


def test_no_credentials_says_how_to_give_them_or_use_a_local_file(no_aws, tmp_path):
    with pytest.raises(DeployError, match="no AWS credentials found") as raised:
        deploy(TEMPLATE, {"SecretArn": UNKNOWN_ARN}, tmp_path / "ggc")
    assert raised.value.code == "NoCredentialsError"
    assert "AWS_PROFILE" in raised.value.message
    assert SECRETS_FILE_ENV in raised.value.message


def test_local_secrets_file_stands_in_for_secrets_manager(no_aws, monkeypatch, tmp_path):
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-password-AbCdEf"
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(
        json.dumps({arn: {"SecretString": "local-one", "Stages": {"next": {"SecretBinary": "AAE="}}}})
    )
    monkeypatch.setenv(SECRETS_FILE_ENV, str(secrets_file))
    deployment = deploy(TEMPLATE, {"SecretArn": arn, "ExtraLabel": "next"}, tmp_path / "ggc")

    assert _mode(deployment.directory / "secrets" / "db-password.json") == 0o600
    store = load_secret_store(deployment.group, deployment.directory)
    current = store.get(READER, "db-password", None)  # the name is the ARN's, without the random suffix
    assert current["ARN"] == arn and current["SecretString"] == "local-one"
    assert base64.b64decode(store.get(READER, arn, "next")["SecretBinary"]) == b"\x00\x01"
    # A name outside greengrass-* would have needed a policy on the v1 group role: a warning, not a failure.
    assert any("greengrass-" in warning for warning in read_status(tmp_path / "ggc")["Warnings"])


def test_local_secrets_file_without_the_secret_is_refused(no_aws, tmp_path):
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(json.dumps({"arn:aws:secretsmanager:us-east-1:123456789012:secret:other-AbCdEf": {}}))
    with pytest.raises(DeployError, match=re.escape(f"has no entry for {UNKNOWN_ARN}")) as raised:
        deploy(TEMPLATE, {"SecretArn": UNKNOWN_ARN}, tmp_path / "ggc", secrets_file=secrets_file)
    assert raised.value.code == "ResourceNotFoundException"
    assert f"has no entry for {UNKNOWN_ARN}" in raised.value.message


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"SecretString": "a", "SecretBinary": "AA=="}, "exactly one of SecretString or SecretBinary"),
        ({"SecretBinary": "not base64!"}, "SecretBinary must be base64"),
        ({"SecretString": "x" * 65537}, "65537 bytes; Secrets Manager allows 65536"),
    ],
)
def test_bad_local_secret_values_are_refused(no_aws, tmp_path, entry, expected):
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(json.dumps({UNKNOWN_ARN: entry}))
    with pytest.raises(DeployError, match=expected):
        deploy(TEMPLATE, {"SecretArn": UNKNOWN_ARN}, tmp_path / "ggc", secrets_file=secrets_file)


def test_unreadable_secrets_file_is_named(no_aws, tmp_path):
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text("{not json")
    with pytest.raises(DeployError, match="secrets.json is not JSON"):
        deploy(TEMPLATE, {"SecretArn": UNKNOWN_ARN}, tmp_path / "ggc", secrets_file=secrets_file)


def test_secret_arn_that_is_not_a_secrets_manager_arn_is_refused(no_aws, tmp_path):
    with pytest.raises(DeployError, match="is not a Secrets Manager secret ARN"):
        deploy(TEMPLATE, {"SecretArn": "arn:aws:s3:::bucket/key"}, tmp_path / "ggc")


def test_staging_labels_must_be_a_list_of_strings(tmp_path):
    template = tmp_path / "labels.yaml"
    code_dir = TEMPLATE.parents[2] / "lambdas_fixtures" / "secret_reader"
    template.write_text(
        TEMPLATE.read_text()
        .replace("../../lambdas_fixtures/secret_reader", str(code_dir))
        .replace("!If [WithExtraLabel, [!Ref ExtraLabel], !Ref AWS::NoValue]", "next")
    )
    with pytest.raises(TemplateError, match="AdditionalStagingLabelsToDownload must be a list"):
        load_group(template, {"SecretArn": UNKNOWN_ARN})


def test_a_group_without_secret_resources_asks_nothing(no_aws, tmp_path):
    group = Group(name="g", region="us-east-1", account_id="123456789012")
    assert fetch_secrets(group, tmp_path / "secrets") == []
    assert not (tmp_path / "secrets").exists()


def test_fetch_rewrites_an_existing_folder_private(secretsmanager, tmp_path):
    arn = secretsmanager.create_secret(Name="greengrass-db", SecretString="one")["ARN"]
    group = Group(
        name="g",
        region="us-east-1",
        account_id="123456789012",
        resources=(Resource(id="db", name="Db", kind="secret", source=arn),),
    )
    folder = tmp_path / "secrets"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    (written,) = fetch_secrets(group, folder)
    assert written == folder / "db.json"
    assert _mode(folder) == 0o700 and _mode(written) == 0o600
    # Functions that name no secret get an empty allowance, not access to everything.
    store = load_secret_store(group, tmp_path)
    assert store.get("arn:aws:lambda:us-east-1:123456789012:function:f:1", arn, None)["Status"] == 403


def test_deployment_without_stored_secrets_says_deploy_again(tmp_path):
    group = Group(
        name="g",
        region="us-east-1",
        account_id="123456789012",
        resources=(Resource(id="db", name="Db", kind="secret", source=UNKNOWN_ARN),),
    )
    with pytest.raises(DeployError, match="deploy the group again"):
        load_secret_store(group, tmp_path)


def test_access_follows_resource_access_policies(secretsmanager, tmp_path):
    first = secretsmanager.create_secret(Name="greengrass-a", SecretString="a")["ARN"]
    second = secretsmanager.create_secret(Name="greengrass-b", SecretString="b")["ARN"]
    from dataclasses import replace

    from simcore.group import Function

    base = Function(id="f", arn="arn:f", name="f", code_dir=tmp_path, handler="h.h", runtime="python3.8")
    group = Group(
        name="g",
        region="us-east-1",
        account_id="123456789012",
        functions=(
            replace(base, resource_access=(ResourceAccess("a"),)),
            replace(base, id="g", arn="arn:g", resource_access=(ResourceAccess("a"), ResourceAccess("b"))),
        ),
        resources=(
            Resource(id="a", name="A", kind="secret", source=first),
            Resource(id="b", name="B", kind="secret", source=second),
        ),
    )
    fetch_secrets(group, tmp_path / "secrets")
    store = load_secret_store(group, tmp_path)
    assert store.get("arn:f", "greengrass-a", None)["SecretString"] == "a"
    assert store.get("arn:f", "greengrass-b", None)["Status"] == 403
    assert store.get("arn:g", "greengrass-b", None)["SecretString"] == "b"


def test_access_denied_fails_the_deployment_naming_the_resource(aws, monkeypatch, tmp_path):
    from support.moto_process import check_iam_after

    iam = boto3.client("iam", region_name="us-east-1")
    arn = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="greengrass-db", SecretString="x"
    )["ARN"]
    iam.create_user(UserName="core")
    allow_s3 = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}
    policy = {"Version": "2012-10-17", "Statement": [allow_s3]}
    iam.put_user_policy(UserName="core", PolicyName="s3-only", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="core")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    # From here moto checks every caller's IAM policies: the core's identity may read S3, not secrets.
    check_iam_after(aws, 0)
    boto3.setup_default_session()  # the default session cached the first identity's credentials
    try:
        with pytest.raises(DeployError, match="not authorized to perform: secretsmanager:GetSecretValue") as raised:
            deploy(TEMPLATE, {"SecretArn": arn}, tmp_path / "ggc")
    finally:
        boto3.DEFAULT_SESSION = None  # later tests must not inherit the restricted identity
    assert f"secret resource db-password: cannot fetch {arn} (AWSCURRENT)" in raised.value.message
    assert "not authorized to perform: secretsmanager:GetSecretValue" in raised.value.message
    assert read_status(tmp_path / "ggc")["DeploymentStatus"] == "Failure"


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_secrets_endpoint_override_is_used(no_aws, monkeypatch, tmp_path, how):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens, so the connection is refused at once
    options = {"secrets_endpoint_url": closed} if how == "argument" else {}
    if how == "environment":
        monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", closed)
    with pytest.raises(DeployError, match="Could not connect to the endpoint URL") as raised:
        deploy(TEMPLATE, {"SecretArn": UNKNOWN_ARN}, tmp_path / "ggc", **options)
    assert raised.value.code == "EndpointConnectionError"
    assert "127.0.0.1:9" in raised.value.message
    assert SECRETS_FILE_ENV in raised.value.message
