"""The token exchange service against botocore's own container credential provider (in this process), its
cache and failure cache, the 403s before any body, and the AWS IoT credentials provider over mutual TLS."""

from __future__ import annotations

import json
import logging
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import botocore.exceptions
import botocore.session
import pytest
from lambdas_fixtures.harness import make_function, make_group
from support.waiting import wait_until

from simcore.cloud.ca import LocalCA
from simcore.cloud.credentials_endpoint import CredentialsEndpoint
from simcore.core.assemble import Core
from simcore.core.credential_sources import IotCredentialsProvider
from simcore.core.environment import function_environment
from simcore.core.tes import TES_PATH, AwsCredentials, CredentialsError, NoCredentialSource, TokenExchange
from simcore.core_config import CoreConfig, CoreConfigError, from_document
from simcore.errors import RuntimeConfigError

TESTER = "arn:aws:lambda:us-east-1:123456789012:function:tes-tester:live"


def credentials(key: str = "ASIATESTKEY0000001", lifetime_s: float = 3600) -> AwsCredentials:
    return AwsCredentials(key, "secret-" + key, "token-" + key, datetime.now(UTC) + timedelta(seconds=lifetime_s))


class CountingSource:
    """A source handing out numbered credentials (or raising `failure`), counting its fetches."""

    def __init__(self, lifetime_s: float = 3600, failure: CredentialsError | None = None):
        self.lifetime_s = lifetime_s
        self.failure = failure
        self.fetches = 0

    def describe(self) -> str:
        return "the test's source"

    def fetch(self) -> AwsCredentials:
        self.fetches += 1
        if self.failure is not None:
            raise self.failure
        return credentials(f"ASIATESTKEY{self.fetches:07d}", self.lifetime_s)


@pytest.fixture
def core_with(tmp_path):
    """A core with no functions whose TES uses the given source; yields (core, token)."""
    cores = []

    def build(source) -> tuple[Core, str]:
        core = Core(make_group([]), runtime_root=tmp_path / f"ggc{len(cores)}", credential_source=source)
        core.start()
        cores.append(core)
        return core, core.issue_token(TESTER)

    yield build
    for core in cores:
        core.stop()


def container_env(monkeypatch, port: int, token: str | None) -> None:
    """This process's botocore set up as a worker's is: the core's URI and token, and no keys of its own."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"http://localhost:{port}{TES_PATH}")
    if token is None:
        monkeypatch.delenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", raising=False)
    else:
        monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", token)


def raw_request(port: int, request: bytes) -> tuple[int, bytes]:
    """Send `request` as is and read the answer's status and body (the connection is closed after it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            chunk = connection.recv(65536)
            if not chunk:
                break
            body += chunk
    return int(head.split(b" ")[1]), body


def test_botocore_container_provider_reads_what_the_core_serves(core_with, monkeypatch):
    source = CountingSource()
    core, token = core_with(source)
    container_env(monkeypatch, core.ipc_port, token)
    found = botocore.session.Session().get_credentials()
    assert found.method == "container-role"
    frozen = found.get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (
        "ASIATESTKEY0000001", "secret-ASIATESTKEY0000001", "token-ASIATESTKEY0000001")
    assert source.fetches == 1


def test_boto3_signs_with_the_served_credentials_against_moto(core_with, monkeypatch, moto_server):
    core, token = core_with(CountingSource())
    container_env(monkeypatch, core.ipc_port, token)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    # A session of its own, as a Lambda's process starts with: boto3's default one may hold another test's keys.
    s3 = boto3.session.Session().client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="tes-signed")
    s3.put_object(Bucket="tes-signed", Key="k", Body=b"v")
    assert s3.get_object(Bucket="tes-signed", Key="k")["Body"].read() == b"v"
    assert core.status()["credentials"]["fetched"] == 1


@pytest.mark.parametrize("authorization", [None, "not-a-token-of-this-core"])
def test_missing_or_foreign_token_is_403_before_any_body_and_logged(core_with, caplog, authorization):
    source = CountingSource()
    core, _ = core_with(source)
    header = f"Authorization: {authorization}\r\n" if authorization else ""
    # It declares a body it never sends: the answer comes from the headers alone.
    request = (f"GET {TES_PATH} HTTP/1.1\r\nHost: localhost\r\n{header}Content-Length: 100\r\n\r\n").encode()
    with caplog.at_level(logging.WARNING, logger="simcore.core.ipc.dispatch"):
        status, body = raw_request(core.ipc_port, request)
    assert status == 403
    assert "Authorization token" in json.loads(body)["errorMessage"]
    assert source.fetches == 0
    assert any("credentials request" in record.getMessage() for record in caplog.records)


def test_botocore_with_a_foreign_token_gets_the_403(core_with, monkeypatch):
    core, _ = core_with(CountingSource())
    container_env(monkeypatch, core.ipc_port, "f" * 64)
    with pytest.raises(botocore.exceptions.CredentialRetrievalError, match="403"):
        botocore.session.Session().get_credentials()


def test_a_post_is_405(core_with):
    core, token = core_with(CountingSource())
    status, _ = raw_request(core.ipc_port, (f"POST {TES_PATH} HTTP/1.1\r\nAuthorization: {token}\r\n"
                                            "Content-Length: 0\r\n\r\n").encode())
    assert status == 405


def test_no_source_the_first_request_names_what_to_configure(core_with, monkeypatch):
    core, token = core_with(NoCredentialSource())
    container_env(monkeypatch, core.ipc_port, token)
    with pytest.raises(botocore.exceptions.CredentialRetrievalError) as raised:
        botocore.session.Session().get_credentials()
    assert "coreThing.credentialsEndpoint" in str(raised.value)
    assert "coreThing.roleAlias" in str(raised.value)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).timestamp()

    def __call__(self) -> float:
        return self.now


def test_credentials_are_served_from_the_cache_until_shortly_before_they_expire():
    clock = Clock()
    source = CountingSource(lifetime_s=3600)
    exchange = TokenExchange(source, refresh_before_s=1200, clock=clock)
    first = exchange.credentials()
    clock.now += 3600 - 1200 - 5
    assert exchange.credentials() == first and source.fetches == 1
    clock.now += 10
    assert exchange.credentials() != first and source.fetches == 2


def test_short_lived_credentials_are_refreshed_at_half_their_life():
    clock = Clock()
    source = CountingSource(lifetime_s=900)
    exchange = TokenExchange(source, refresh_before_s=1200, clock=clock)
    first = exchange.credentials()
    clock.now += 440
    assert exchange.credentials() == first
    clock.now += 20
    assert exchange.credentials() != first


def test_a_failure_is_cached_briefly_longer_for_a_refusal():
    clock = Clock()
    outage = CountingSource(failure=CredentialsError("unreachable"))
    exchange = TokenExchange(outage, refusal_hold_s=60, failure_hold_s=10, clock=clock)
    for _ in range(5):
        with pytest.raises(CredentialsError, match="unreachable"):
            exchange.credentials()
    assert outage.fetches == 1
    clock.now += 11
    with pytest.raises(CredentialsError):
        exchange.credentials()
    assert outage.fetches == 2

    refusal = CountingSource(failure=CredentialsError("denied", upstream_status=403, http_status=502))
    exchange = TokenExchange(refusal, refusal_hold_s=60, failure_hold_s=10, clock=clock)
    with pytest.raises(CredentialsError):
        exchange.credentials()
    clock.now += 30
    with pytest.raises(CredentialsError):
        exchange.credentials()
    assert refusal.fetches == 1
    assert exchange.counters()["answered_from_failure_cache"] == 1


def test_while_a_refresh_fails_the_credentials_in_hand_are_served_until_they_expire():
    clock = Clock()
    source = CountingSource(lifetime_s=3600)
    exchange = TokenExchange(source, refresh_before_s=1200, clock=clock)
    first = exchange.credentials()
    source.failure = CredentialsError("upstream down")
    clock.now += 3000
    assert exchange.credentials() == first
    clock.now += 601
    with pytest.raises(CredentialsError, match="upstream down"):
        exchange.credentials()


# -- the AWS IoT credentials provider path (the stand-in's endpoint) ------------------------------------


@pytest.fixture
def provider_endpoint(tmp_path):
    ca = LocalCA(tmp_path / "certs")
    server = ca.issue_server(file_stem="credentials")
    endpoint = CredentialsEndpoint(ca_path=ca.ca_path, server_cert=server.cert_path, server_key=server.key_path,
                                   role_alias="test-core-GroupRoleAlias")
    endpoint.start()
    yield ca, endpoint
    endpoint.stop()


def provider(ca: LocalCA, endpoint: CredentialsEndpoint, cert, thing: str = "test-core",
             alias: str = "test-core-GroupRoleAlias") -> IotCredentialsProvider:
    return IotCredentialsProvider(endpoint.endpoint, alias, thing, cert.cert_path, cert.key_path, ca.ca_path)


def test_the_thing_certificate_gets_credentials_over_mutual_tls(provider_endpoint):
    ca, endpoint = provider_endpoint
    fetched = provider(ca, endpoint, ca.issue_thing("test-core")).fetch()
    assert fetched.access_key_id.startswith("ASIA") and len(fetched.access_key_id) == 20
    assert fetched.access_key_id in endpoint.issued.access_key_ids
    assert timedelta(minutes=59) < fetched.expiration - datetime.now(UTC) <= timedelta(hours=1)


def test_a_certificate_of_another_ca_is_refused(provider_endpoint, tmp_path):
    ca, endpoint = provider_endpoint
    stranger = LocalCA(tmp_path / "other-ca").issue_thing("test-core")
    with pytest.raises(CredentialsError, match="cannot reach the AWS IoT credentials provider"):
        provider(ca, endpoint, stranger).fetch()
    assert not endpoint.issued.access_key_ids
    # The server counts the refused handshake on its own thread, maybe after the client has given up.
    wait_until(lambda: endpoint.issued.refused == 1, 10, message="the endpoint to count the refused handshake")


def test_another_things_name_or_an_unknown_alias_is_refused_and_says_so(provider_endpoint):
    ca, endpoint = provider_endpoint
    cert = ca.issue_thing("test-core")
    with pytest.raises(CredentialsError, match="answered 403: The certificate is not attached to thing other"):
        provider(ca, endpoint, cert, thing="other").fetch()
    with pytest.raises(CredentialsError, match="answered 404") as raised:
        provider(ca, endpoint, cert, alias="nope").fetch()
    assert raised.value.upstream_status == 404


# -- config.json and the worker environment ----------------------------------------------------------------


def config_document(**core_thing) -> dict:
    config = CoreConfig.for_thing("arn:aws:iot:us-east-1:123456789012:thing/test-core", "127.0.0.1",
                                  certs_dir=Path("/tmp/certs"))
    document = config.to_document()
    document["coreThing"].update(core_thing)
    return document


def test_config_json_carries_the_credentials_provider_and_the_local_aws():
    document = config_document(credentialsEndpoint="c2abc.credentials.iot.us-east-1.amazonaws.com",
                               roleAlias="RainEdgeCore-GroupRoleAlias", localAwsEndpoint="http://127.0.0.1:4566")
    thing = from_document(document).core_thing
    assert (thing.credentials_endpoint, thing.role_alias, thing.local_aws_endpoint) == (
        "c2abc.credentials.iot.us-east-1.amazonaws.com", "RainEdgeCore-GroupRoleAlias", "http://127.0.0.1:4566")
    assert from_document(from_document(document).to_document()) == from_document(document)


@pytest.mark.parametrize(("fields", "named"), [
    ({"credentialsEndpoint": "c2abc.credentials.iot.us-east-1.amazonaws.com"}, "coreThing.roleAlias"),
    ({"credentialsEndpoint": "https://c2abc.example/x", "roleAlias": "a"}, "coreThing.credentialsEndpoint"),
    ({"localAwsEndpoint": "https://s3.amazonaws.com"}, "coreThing.localAwsEndpoint"),
])
def test_config_json_refuses_half_a_provider_or_a_non_local_aws(fields, named):
    with pytest.raises(CoreConfigError) as raised:
        from_document(config_document(**fields))
    assert raised.value.field == named


def test_every_worker_gets_the_credentials_uri_and_only_a_stand_in_core_the_endpoint(tmp_path):
    function = make_function("f", "secret_reader", "secret_reader.function_handler")
    group = make_group([function])
    plain = function_environment(function, group, token="t", ipc_port=8000, runtime_dir=tmp_path)
    assert plain["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == "http://localhost:8000/2016-11-01/credentialprovider/"
    assert plain["AWS_CONTAINER_AUTHORIZATION_TOKEN"] == "t"
    assert "AWS_ENDPOINT_URL" not in plain
    linked = function_environment(function, group, token="t", ipc_port=8000, runtime_dir=tmp_path,
                                  aws_endpoint_url="http://127.0.0.1:4566")
    assert linked["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    sneaky = make_function("g", "secret_reader", "secret_reader.function_handler",
                           environment={"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.2/x"})
    with pytest.raises(RuntimeConfigError, match="AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        function_environment(sneaky, make_group([sneaky]), token="t", ipc_port=8000, runtime_dir=tmp_path)


# -- the order of the sources ---------------------------------------------------------------------------------


def test_the_sources_come_in_the_documented_order_with_a_warning_for_the_environment(monkeypatch, tmp_path):
    from simcore.core.credential_sources import EnvironmentCredentials, choose_source

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIADEVELOPER0000001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "developer-secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    files = {"cert_path": tmp_path / "c", "key_path": tmp_path / "k", "ca_path": tmp_path / "ca"}
    first, warning = choose_source(credentials_endpoint="c2.credentials.iot.us-east-1.amazonaws.com",
                                   role_alias="alias", thing_name="t", **files)
    assert isinstance(first, IotCredentialsProvider) and warning is None

    second, warning = choose_source(credentials_endpoint=None, role_alias=None, thing_name="t", **files)
    assert isinstance(second, EnvironmentCredentials)
    assert "environment or profile" in warning and "development" in warning
    fetched = second.fetch()
    assert (fetched.access_key_id, fetched.secret_access_key, fetched.session_token) == (
        "AKIADEVELOPER0000001", "developer-secret", "")
    assert timedelta(minutes=59) < fetched.expiration - datetime.now(UTC) <= timedelta(hours=1)

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    third, warning = choose_source(credentials_endpoint=None, role_alias=None, thing_name="t", **files)
    assert isinstance(third, NoCredentialSource) and "coreThing.credentialsEndpoint" in warning
