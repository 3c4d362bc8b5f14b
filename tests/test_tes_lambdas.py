"""boto3, unmodified, inside real Lambda workers: credentials from the core's token exchange service, which gets
them from the stand-in's AWS IoT credentials provider (mutual TLS, the core thing's certificate); the calls go to
the stand-in's moto server (server mode) through AWS_ENDPOINT_URL."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from lambdas_fixtures.harness import PY38
from support.aws_lambdas import BUCKET, FRESH, PINNED, TABLE, aws_group, invoke, local_client
from support.waiting import wait_until

from simcore.cloud.ca import LocalCA
from simcore.cloud.credentials_endpoint import CredentialsEndpoint
from simcore.core.assemble import Core
from simcore.core.credential_sources import IotCredentialsProvider
from simcore.core.tes import NoCredentialSource

THING = "test-core"
ALIAS = "test-core-GroupRoleAlias"


@pytest.fixture(scope="module")
def aws_resources(moto_server) -> str:
    local_client(moto_server, "s3").create_bucket(Bucket=BUCKET)
    local_client(moto_server, "dynamodb").create_table(
        TableName=TABLE, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    return moto_server


@pytest.fixture(scope="module")
def stand_in_ca(tmp_path_factory) -> LocalCA:
    return LocalCA(tmp_path_factory.mktemp("tes-ca") / "certs")


@pytest.fixture(scope="module")
def start_core(
    tmp_path_factory, aws_resources, stand_in_ca
) -> Iterator[Callable[..., tuple[Core, CredentialsEndpoint]]]:
    """Start a core whose TES asks a stand-in credentials endpoint (credentials valid `duration_s`)."""
    started: list = []
    interpreters = {"python3.8": str(PY38)} if PY38.exists() else {}

    def start(duration_s: float = 3600, source=None, cert=None) -> tuple[Core, CredentialsEndpoint]:
        ca = stand_in_ca
        server = ca.issue_server(file_stem=f"credentials-{len(started)}")
        endpoint = CredentialsEndpoint(ca_path=ca.ca_path, server_cert=server.cert_path, server_key=server.key_path,
                                       role_alias=ALIAS, duration_s=duration_s)
        endpoint.start()
        started.append(endpoint)
        cert = cert or ca.issue_thing(THING, file_stem=f"core-{len(started)}")
        if source is None:
            source = IotCredentialsProvider(endpoint.endpoint, ALIAS, THING, cert.cert_path, cert.key_path,
                                            ca.ca_path)
        core = Core(aws_group(), runtime_root=tmp_path_factory.mktemp("tes-core") / "ggc",
                    interpreters=interpreters, credential_source=source, aws_endpoint_url=aws_resources)
        core.start()
        started.append(core)
        return core, endpoint

    yield start
    for part in reversed(started):
        part.stop()


def stored(endpoint: str, key: str) -> tuple[dict, dict]:
    body = json.loads(local_client(endpoint, "s3").get_object(Bucket=BUCKET, Key=key)["Body"].read())
    item = local_client(endpoint, "dynamodb").get_item(TableName=TABLE, Key={"id": {"S": key}})["Item"]
    return body, item


@pytest.fixture(scope="module")
def linked_core(start_core):
    return start_core()


def test_a_pinned_function_with_clients_built_at_import_writes_s3_and_dynamodb(linked_core, aws_resources):
    core, endpoint = linked_core
    report = invoke(core, PINNED, "pinned-1")
    assert "error" not in report, report
    assert report["access_key"] in endpoint.issued.access_key_ids
    body, item = stored(aws_resources, "pinned-1")
    assert body["key"] == "pinned-1" and item["id"] == {"S": "pinned-1"}


def test_a_handler_writing_on_each_event_shares_the_cached_credentials(linked_core, aws_resources):
    core, endpoint = linked_core
    keys = {invoke(core, FRESH, f"fresh-{number}").get("access_key") for number in range(3)}
    keys.add(invoke(core, PINNED, "pinned-2").get("access_key"))
    assert len(keys) == 1 and None not in keys
    assert list(endpoint.issued.access_key_ids) == list(keys)
    for number in range(3):
        assert stored(aws_resources, f"fresh-{number}")[1]["id"] == {"S": f"fresh-{number}"}


def test_short_lived_credentials_are_refreshed_before_they_expire(start_core):
    # 4-second credentials: the TES hands each out for 2 s, botocore refreshes them on every call.
    core, endpoint = start_core(duration_s=4)
    reports: list[dict] = []

    def two_keys_used() -> bool:
        reports.append(invoke(core, PINNED, f"short-{len(reports)}"))
        return len({report.get("access_key") for report in reports}) >= 2

    wait_until(two_keys_used, 30, message=lambda: f"a second access key, reports {reports[-3:]}", interval_s=0.2)
    assert all("error" not in report for report in reports), [r for r in reports if "error" in r]
    assert {report["access_key"] for report in reports} <= set(endpoint.issued.access_key_ids)


def test_without_a_source_the_first_credential_request_names_what_to_configure(start_core):
    core, _ = start_core(source=NoCredentialSource())
    report = invoke(core, FRESH, "none")
    assert "coreThing.credentialsEndpoint" in report["error"] and "coreThing.roleAlias" in report["error"]
    # botocore resolves credentials when a client is created: a client built at import fails the import, and
    # the function's log says what to configure.
    log = core.runtime_root / "var" / "log" / "user" / "us-east-1" / "123456789012" / "aws-pinned.log"
    wait_until(lambda: log.exists() and "coreThing.credentialsEndpoint" in log.read_text(), 30,
               message=f"the pinned function's import error in {log}")


def test_a_core_certificate_of_another_ca_gets_no_credentials(start_core, tmp_path_factory):
    stranger = LocalCA(tmp_path_factory.mktemp("stranger") / "certs").issue_thing(THING)
    core, endpoint = start_core(cert=stranger)
    report = invoke(core, FRESH, "stranger")
    assert "cannot reach the AWS IoT credentials provider" in report["error"]
    assert not endpoint.issued.access_key_ids and endpoint.issued.refused >= 1
