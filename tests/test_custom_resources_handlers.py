"""The group stack's custom resources against moto, speaking the real CloudFormation protocol.

Each request's response is PUT to a pre-signed-style URL served by a local http.server; the tests read
what CloudFormation would have read, and the AWS state moto holds afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from group.custom_resources import deployment_reset, protocol, thing_certificate

REGION = "us-east-1"
SERVICE_TOKEN = f"arn:aws:lambda:{REGION}:123456789012:function:rain-ThingCertificate"
STACK_ID = f"arn:aws:cloudformation:{REGION}:123456789012:stack/rain/0f0e0d0c-0000-4000-8000-000000000000"


class ResponseCollector:
    """A local stand-in for the pre-signed S3 URL: records every PUT body and its headers."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.content_types: list[str | None] = []
        self.received = threading.Condition()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                with collector.received:
                    collector.bodies.append(body)
                    collector.content_types.append(self.headers.get("Content-Type"))
                    collector.received.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cfn-response?X-Amz-Signature=test"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def last(self) -> dict[str, Any]:
        """The most recent response body."""
        with self.received:
            assert self.bodies, "no response was sent to the ResponseURL"
            return self.bodies[-1]


@pytest.fixture
def responses() -> Iterator[ResponseCollector]:
    collector = ResponseCollector()
    collector.thread.start()
    yield collector
    collector.server.shutdown()
    collector.server.server_close()


def request(
    responses: ResponseCollector, request_type: str, properties: dict[str, Any], *,
    physical_id: str | None = None, old_properties: dict[str, Any] | None = None,
    logical_id: str = "ThingCertificate",
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "RequestType": request_type,
        "ResponseURL": responses.url,
        "StackId": STACK_ID,
        "RequestId": f"req-{len(responses.bodies)}",
        "ResourceType": "Custom::Test",
        "LogicalResourceId": logical_id,
        "ResourceProperties": {"ServiceToken": SERVICE_TOKEN, **properties},
    }
    if physical_id is not None:
        event["PhysicalResourceId"] = physical_id
    if old_properties is not None:
        event["OldResourceProperties"] = {"ServiceToken": "arn:aws:lambda:x", **old_properties}
    return event


@pytest.fixture
def thing_and_policy(aws: None) -> dict[str, str]:
    iot = boto3.client("iot")
    iot.create_thing(thingName="RainEdgeCore")
    iot.create_thing(thingName="OtherCore")
    statement = {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}
    iot.create_policy(policyName="core-policy",
                      policyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}))
    secret = boto3.client("secretsmanager").create_secret(Name="rain/RainEdgeCore/private-key")
    return {"ThingName": "RainEdgeCore", "PolicyName": "core-policy", "PrivateKeySecretId": secret["ARN"]}


def certificate_ids() -> list[str]:
    return [c["certificateId"] for c in boto3.client("iot").list_certificates()["certificates"]]


# ------------------------------------------------------------------------------------------ protocol


def test_response_reaches_the_url_with_the_request_ids_and_an_empty_content_type(
    responses: ResponseCollector,
) -> None:
    event = request(responses, "Create", {"GroupId": "g-1"}, logical_id="DeploymentReset")
    deployment_reset.handler(event, None)
    body = responses.last()
    assert body["Status"] == "SUCCESS"
    assert (body["StackId"], body["RequestId"], body["LogicalResourceId"]) == (
        STACK_ID, event["RequestId"], "DeploymentReset")
    assert body["PhysicalResourceId"] == "deployment-reset-g-1"
    # The pre-signed URL is signed for an empty content type; anything else is refused by S3.
    assert responses.content_types == [""]


def test_unknown_request_type_is_reported_failed(responses: ResponseCollector) -> None:
    deployment_reset.handler(request(responses, "Upsert", {"GroupId": "g-1"}), None)
    body = responses.last()
    assert body["Status"] == "FAILED"
    assert "unknown RequestType 'Upsert'" in body["Reason"]


def test_unreachable_response_url_raises_after_retries() -> None:
    with pytest.raises(ConnectionError, match="could not send the response"):
        protocol.send_response("http://127.0.0.1:9/unreachable", {"Status": "SUCCESS"}, retry_delays_s=(0, 0))


# ------------------------------------------------------------------------------------------ certificate


def test_create_makes_active_certificate_attached_to_thing_and_policy_with_key_in_secret(
    responses: ResponseCollector, thing_and_policy: dict[str, str],
) -> None:
    thing_certificate.handler(request(responses, "Create", thing_and_policy), None)
    body = responses.last()
    assert body["Status"] == "SUCCESS", body["Reason"]
    certificate_id = body["PhysicalResourceId"]
    assert body["Data"]["CertificateId"] == certificate_id
    assert body["Data"]["IotDataEndpoint"].endswith(f"-ats.iot.{REGION}.amazonaws.com")
    assert "PRIVATE KEY" not in json.dumps(body)

    iot = boto3.client("iot")
    description = iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]
    assert description["status"] == "ACTIVE"
    assert body["Data"]["CertificateArn"] == description["certificateArn"]
    principals = iot.list_thing_principals(thingName="RainEdgeCore")["principals"]
    assert principals == [description["certificateArn"]]
    attached = iot.list_attached_policies(target=description["certificateArn"])["policies"]
    assert [p["policyName"] for p in attached] == ["core-policy"]

    stored = boto3.client("secretsmanager").get_secret_value(SecretId=thing_and_policy["PrivateKeySecretId"])
    private_key = serialization.load_pem_private_key(stored["SecretString"].encode(), password=None)
    certificate = x509.load_pem_x509_certificate(description["certificatePem"].encode())
    assert private_key.public_key().public_numbers() == certificate.public_key().public_numbers()


def test_create_with_ssm_parameter_stores_a_secure_string(
    responses: ResponseCollector, thing_and_policy: dict[str, str],
) -> None:
    properties = {"ThingName": "RainEdgeCore", "PrivateKeyParameterName": "/rain/RainEdgeCore/private-key"}
    thing_certificate.handler(request(responses, "Create", properties), None)
    assert responses.last()["Status"] == "SUCCESS"
    parameter = boto3.client("ssm").get_parameter(Name="/rain/RainEdgeCore/private-key", WithDecryption=True)
    assert parameter["Parameter"]["Type"] == "SecureString"
    assert parameter["Parameter"]["Value"].startswith("-----BEGIN RSA PRIVATE KEY-----")


def test_create_for_missing_thing_fails_with_aws_code_and_leaves_no_certificate(
    responses: ResponseCollector, thing_and_policy: dict[str, str],
) -> None:
    missing_thing = {**thing_and_policy, "ThingName": "NoSuchThing"}
    thing_certificate.handler(request(responses, "Create", missing_thing), None)
    body = responses.last()
    assert body["Status"] == "FAILED"
    assert "ResourceNotFoundException" in body["Reason"]
    assert certificate_ids() == []


def test_create_rolls_the_certificate_back_when_the_key_cannot_be_stored(
    responses: ResponseCollector, thing_and_policy: dict[str, str],
) -> None:
    missing_secret = {**thing_and_policy, "PrivateKeySecretId": "rain/NoSuchSecret"}
    thing_certificate.handler(request(responses, "Create", missing_secret), None)
    body = responses.last()
    assert body["Status"] == "FAILED"
    assert "ResourceNotFoundException in PutSecretValue" in body["Reason"]
    assert certificate_ids() == []
    assert boto3.client("iot").list_thing_principals(thingName="RainEdgeCore")["principals"] == []


@pytest.mark.parametrize("stores", [{}, {"PrivateKeySecretId": "a", "PrivateKeyParameterName": "/b"}])
def test_create_needs_exactly_one_place_for_the_key(
    responses: ResponseCollector, thing_and_policy: dict[str, str], stores: dict[str, str],
) -> None:
    thing_certificate.handler(request(responses, "Create", {"ThingName": "RainEdgeCore", **stores}), None)
    body = responses.last()
    assert body["Status"] == "FAILED"
    assert "exactly one of PrivateKeySecretId and PrivateKeyParameterName" in body["Reason"]
    assert certificate_ids() == []


def test_update_without_identity_change_keeps_the_certificate(
    responses: ResponseCollector, thing_and_policy: dict[str, str],
) -> None:
    thing_certificate.handler(request(responses, "Create", thing_and_policy), None)
    created = responses.last()
    event = request(responses, "Update", thing_and_policy, physical_id=created["PhysicalResourceId"],
                    old_properties=thing_and_policy)
    thing_certificate.handler(event, None)
    updated = responses.last()
    assert updated["Status"] == "SUCCESS"
    assert updated["PhysicalResourceId"] == created["PhysicalResourceId"]
    # (moto makes up a new endpoint per DescribeEndpoint call; AWS's is stable, so only the ids compare)
    for key in ("CertificateId", "CertificateArn"):
        assert updated["Data"][key] == created["Data"][key]
    assert certificate_ids() == [created["PhysicalResourceId"]]


def test_update_to_another_thing_makes_a_new_certificate_and_delete_removes_the_old(
    responses: ResponseCollector, thing_and_policy: dict[str, str],
) -> None:
    thing_certificate.handler(request(responses, "Create", thing_and_policy), None)
    old_id = responses.last()["PhysicalResourceId"]
    moved = {**thing_and_policy, "ThingName": "OtherCore"}
    thing_certificate.handler(
        request(responses, "Update", moved, physical_id=old_id, old_properties=thing_and_policy), None)
    new_id = responses.last()["PhysicalResourceId"]
    assert responses.last()["Status"] == "SUCCESS"
    assert new_id != old_id
    iot = boto3.client("iot")
    new_arn = iot.describe_certificate(certificateId=new_id)["certificateDescription"]["certificateArn"]
    assert iot.list_thing_principals(thingName="OtherCore")["principals"] == [new_arn]

    # CloudFormation then deletes the old physical resource, with the old properties.
    thing_certificate.handler(request(responses, "Delete", thing_and_policy, physical_id=old_id), None)
    assert responses.last()["Status"] == "SUCCESS"
    assert certificate_ids() == [new_id]
    assert iot.list_thing_principals(thingName="RainEdgeCore")["principals"] == []


def test_delete_detaches_deactivates_and_deletes_the_certificate(
    responses: ResponseCollector, thing_and_policy: dict[str, str],
) -> None:
    thing_certificate.handler(request(responses, "Create", thing_and_policy), None)
    created = responses.last()
    thing_certificate.handler(
        request(responses, "Delete", thing_and_policy, physical_id=created["PhysicalResourceId"]), None)
    assert responses.last()["Status"] == "SUCCESS"
    iot = boto3.client("iot")
    assert certificate_ids() == []
    assert iot.list_thing_principals(thingName="RainEdgeCore")["principals"] == []
    assert iot.list_targets_for_policy(policyName="core-policy")["targets"] == []


def test_delete_after_a_failed_create_or_of_a_gone_certificate_succeeds(
    responses: ResponseCollector, thing_and_policy: dict[str, str],
) -> None:
    after_failed_create = request(responses, "Delete", thing_and_policy, physical_id="failed-req-0")
    thing_certificate.handler(after_failed_create, None)
    assert responses.last()["Status"] == "SUCCESS"
    gone = "0" * 64
    thing_certificate.handler(request(responses, "Delete", thing_and_policy, physical_id=gone), None)
    assert responses.last()["Status"] == "SUCCESS"


def test_delete_keeps_an_ssm_key_that_a_newer_certificate_overwrote(
    responses: ResponseCollector, thing_and_policy: dict[str, str],
) -> None:
    name = "/rain/RainEdgeCore/private-key"
    first = {"ThingName": "RainEdgeCore", "PrivateKeyParameterName": name}
    second = {"ThingName": "OtherCore", "PrivateKeyParameterName": name}
    thing_certificate.handler(request(responses, "Create", first), None)
    old_id = responses.last()["PhysicalResourceId"]
    thing_certificate.handler(
        request(responses, "Update", second, physical_id=old_id, old_properties=first), None)
    new_id = responses.last()["PhysicalResourceId"]
    ssm = boto3.client("ssm")

    thing_certificate.handler(request(responses, "Delete", first, physical_id=old_id), None)
    assert responses.last()["Status"] == "SUCCESS"
    assert ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"].startswith("-----BEGIN")

    thing_certificate.handler(request(responses, "Delete", second, physical_id=new_id), None)
    assert responses.last()["Status"] == "SUCCESS"
    with pytest.raises(ClientError, match="ParameterNotFound"):
        ssm.get_parameter(Name=name)


# ------------------------------------------------------------------------------------------ deployment reset


def deployed_group() -> str:
    greengrass = boto3.client("greengrass")
    core = greengrass.create_core_definition(Name="core", InitialVersion={"Cores": [{
        "Id": "RainEdgeCore", "ThingArn": "arn:aws:iot:us-east-1:123456789012:thing/RainEdgeCore",
        "CertificateArn": "arn:aws:iot:us-east-1:123456789012:cert/" + "a" * 64, "SyncShadow": True}]})
    group = greengrass.create_group(
        Name="rain", InitialVersion={"CoreDefinitionVersionArn": core["LatestVersionArn"]})
    greengrass.create_deployment(
        GroupId=group["Id"], GroupVersionId=group["LatestVersion"], DeploymentType="NewDeployment")
    return group["Id"]


# moto 5.2.5's server answers `ResetDeployments` (`.../deployments/$reset`) with a 404: its server-mode URL rule for
# that path does not match, while its in-process mock's regex does. These two tests use the in-process mock.
def test_delete_resets_a_deployed_group(responses: ResponseCollector, aws_in_process: None) -> None:
    group_id = deployed_group()
    event = request(responses, "Delete", {"GroupId": group_id}, physical_id=f"deployment-reset-{group_id}",
                    logical_id="DeploymentReset")
    deployment_reset.handler(event, None)
    body = responses.last()
    assert body["Status"] == "SUCCESS", body["Reason"]
    deployments = boto3.client("greengrass").list_deployments(GroupId=group_id)["Deployments"]
    reset = [d for d in deployments if d["DeploymentId"] == body["Data"]["DeploymentId"]]
    assert [d["DeploymentType"] for d in reset] in (["ResetDeployment"], ["ForceResetDeployment"])


@pytest.mark.parametrize("deployed", [False, True])
def test_delete_of_a_missing_or_never_deployed_group_needs_no_reset(
    responses: ResponseCollector, aws_in_process: None, deployed: bool,
) -> None:
    group_id = boto3.client("greengrass").create_group(Name="never")["Id"] if deployed else "no-such-group"
    deployment_reset.handler(request(responses, "Delete", {"GroupId": group_id}, physical_id="x"), None)
    assert responses.last()["Status"] == "SUCCESS"


def test_create_without_group_id_fails_naming_the_property(responses: ResponseCollector) -> None:
    deployment_reset.handler(request(responses, "Create", {}), None)
    body = responses.last()
    assert body["Status"] == "FAILED"
    assert body["Reason"] == "property GroupId is required (a non-empty string)"


def test_reset_refused_by_aws_is_reported_failed_with_its_code(
    responses: ResponseCollector, aws: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    greengrass = boto3.client("greengrass")
    stubber = Stubber(greengrass)
    stubber.add_client_error("reset_deployments", service_error_code="AccessDeniedException",
                             service_message="not authorized to perform greengrass:ResetDeployments",
                             http_status_code=403)
    monkeypatch.setattr(deployment_reset.boto3, "client", lambda service: greengrass)
    with stubber:
        deployment_reset.handler(request(responses, "Delete", {"GroupId": "g-1"}, physical_id="x"), None)
    body = responses.last()
    assert body["Status"] == "FAILED"
    assert body["Reason"] == (
        "AccessDeniedException in ResetDeployments: not authorized to perform greengrass:ResetDeployments")


# ------------------------------------------------------------------------------------------ as Lambda loads them


@pytest.mark.parametrize("logical_id", ["ThingCertificateFunction", "DeploymentResetFunction"])
def test_the_template_names_a_handler_that_imports_from_its_code_uri_alone(logical_id: str) -> None:
    """AWS Lambda puts only CodeUri's content on sys.path; the handler must import from there."""
    from cfnlint.decode import cfn_yaml

    template_path = Path(__file__).resolve().parents[1] / "cloudformation" / "greengrass-group.yaml"
    properties = cfn_yaml.load(str(template_path))["Resources"][logical_id]["Properties"]
    code_root = (template_path.parent / properties["CodeUri"]).resolve()
    module, function = properties["Handler"].rsplit(".", 1)
    probe = (f"import sys; sys.path.insert(0, {str(code_root)!r}); import importlib; "
             f"assert callable(getattr(importlib.import_module({module!r}), {function!r}))")
    # -I: isolated, so neither the project root nor the current directory is importable.
    completed = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True,
                               cwd="/", check=False, timeout=120)
    assert completed.returncode == 0, completed.stderr
