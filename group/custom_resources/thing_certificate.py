"""Custom::ThingCertificate: keys and an active certificate for an IoT thing, the private key kept secret.

Properties:
  PrivateKeySecretId       a Secrets Manager secret (id or ARN) the PEM private key is written to, or
  PrivateKeyParameterName  an SSM parameter this resource creates as a SecureString (exactly one of the two);
  PrivateKeyKmsKeyId       optional KMS key for the SecureString;
  ThingName                optional: the certificate is attached to this thing;
  PolicyName               optional: this IoT policy is attached to the certificate.
Returns PhysicalResourceId = the certificate id, and Data: CertificateArn, CertificateId, IotDataEndpoint.
The private key goes only to the secret or parameter: never to Data, never to a log line.

Create checks the thing and policy first and rolls a half-made certificate back, so a failed Create
leaves nothing behind. Update makes a new certificate when a property that matters changed (returning a new
id, so CloudFormation deletes the old one); Delete detaches, deactivates and deletes the certificate.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.exceptions import ClientError

from .protocol import CustomResourceError, Outcome, run

LOGGER = logging.getLogger(__name__)

CERTIFICATE_ID = re.compile(r"^[0-9a-f]{64}$")
# Properties whose change needs a new certificate (ServiceToken and the like do not).
IDENTITY_PROPERTIES = (
    "ThingName", "PolicyName", "PrivateKeySecretId", "PrivateKeyParameterName", "PrivateKeyKmsKeyId",
)


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point: serve one CloudFormation request."""
    return run(event, create=create, update=update, delete=delete)


def create(event: Mapping[str, Any]) -> Outcome:
    """Create keys and an active certificate, attach it, store the key; roll back on any failure."""
    properties = event.get("ResourceProperties", {})
    key_store = _key_store(properties)
    iot = boto3.client("iot")
    thing_name = properties.get("ThingName") or None
    policy_name = properties.get("PolicyName") or None
    # Fail before anything is made: a missing thing or policy is the commonest mistake.
    if thing_name:
        iot.describe_thing(thingName=thing_name)
    if policy_name:
        iot.get_policy(policyName=policy_name)

    created = iot.create_keys_and_certificate(setAsActive=True)
    certificate_id = created["certificateId"]
    certificate_arn = created["certificateArn"]
    try:
        if thing_name:
            iot.attach_thing_principal(thingName=thing_name, principal=certificate_arn)
        if policy_name:
            iot.attach_policy(policyName=policy_name, target=certificate_arn)
        key_store.put(created["keyPair"]["PrivateKey"], certificate_id)
        endpoint = iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
    except Exception:
        _remove_certificate(iot, certificate_id, certificate_arn, thing_name, policy_name)
        raise
    LOGGER.info("created certificate %s for thing %s", certificate_id, thing_name)
    return certificate_id, _data(certificate_id, certificate_arn, endpoint)


def update(event: Mapping[str, Any]) -> Outcome:
    """Keep the certificate if nothing that matters changed; otherwise make a new one."""
    properties = event.get("ResourceProperties", {})
    old_properties = event.get("OldResourceProperties", {})
    physical_id = event.get("PhysicalResourceId", "")
    unchanged = all(properties.get(name) == old_properties.get(name) for name in IDENTITY_PROPERTIES)
    if unchanged and CERTIFICATE_ID.match(physical_id):
        _key_store(properties)  # still validated, so a broken template fails here and not at Delete
        iot = boto3.client("iot")
        description = iot.describe_certificate(certificateId=physical_id)["certificateDescription"]
        endpoint = iot.describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
        return physical_id, _data(physical_id, description["certificateArn"], endpoint)
    return create(event)


def delete(event: Mapping[str, Any]) -> Outcome:
    """Detach, deactivate and delete the certificate (and its SSM parameter); absent ones are fine."""
    physical_id = event.get("PhysicalResourceId", "")
    if not CERTIFICATE_ID.match(physical_id):
        # A Create that failed before a certificate existed: nothing to delete.
        return physical_id, {}
    properties = event.get("ResourceProperties", {})
    iot = boto3.client("iot")
    try:
        description = iot.describe_certificate(certificateId=physical_id)["certificateDescription"]
    except ClientError as error:
        if _code(error) == "ResourceNotFoundException":
            return physical_id, {}
        raise
    _remove_certificate(
        iot, physical_id, description["certificateArn"],
        properties.get("ThingName") or None, properties.get("PolicyName") or None,
    )
    parameter_name = properties.get("PrivateKeyParameterName")
    if parameter_name:
        SsmParameterKeyStore(parameter_name, properties.get("PrivateKeyKmsKeyId")).remove(physical_id)
    return physical_id, {}


def _data(certificate_id: str, certificate_arn: str, endpoint: str) -> dict[str, str]:
    return {"CertificateId": certificate_id, "CertificateArn": certificate_arn, "IotDataEndpoint": endpoint}


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _remove_certificate(
    iot: Any, certificate_id: str, certificate_arn: str, thing_name: str | None, policy_name: str | None
) -> None:
    """Detach what this resource attached, then deactivate and delete; tolerate what is already gone."""
    if thing_name:
        _ignore_missing(iot.detach_thing_principal, thingName=thing_name, principal=certificate_arn)
    if policy_name:
        _ignore_missing(iot.detach_policy, policyName=policy_name, target=certificate_arn)
    iot.update_certificate(certificateId=certificate_id, newStatus="INACTIVE")
    iot.delete_certificate(certificateId=certificate_id)


def _ignore_missing(call: Any, **arguments: str) -> None:
    try:
        call(**arguments)
    except ClientError as error:
        if _code(error) != "ResourceNotFoundException":
            raise


class SecretsManagerKeyStore:
    """The private key as the current value of an existing Secrets Manager secret (the stack owns it)."""

    def __init__(self, secret_id: str):
        self.secret_id = secret_id

    def put(self, private_key_pem: str, certificate_id: str) -> None:
        """Write the key as the secret's new current version."""
        boto3.client("secretsmanager").put_secret_value(SecretId=self.secret_id, SecretString=private_key_pem)


class SsmParameterKeyStore:
    """The private key as an SSM SecureString this resource creates (CloudFormation cannot make one)."""

    def __init__(self, name: str, kms_key_id: str | None = None):
        self.name = name
        self.kms_key_id = kms_key_id or None

    def description(self, certificate_id: str) -> str:
        """The parameter's description names the certificate, so Delete removes only its own key."""
        return f"Private key of IoT certificate {certificate_id}"

    def put(self, private_key_pem: str, certificate_id: str) -> None:
        """Create or overwrite the SecureString."""
        arguments: dict[str, Any] = {
            "Name": self.name, "Value": private_key_pem, "Type": "SecureString", "Overwrite": True,
            "Description": self.description(certificate_id), "Tier": "Standard",
        }
        if self.kms_key_id:
            arguments["KeyId"] = self.kms_key_id
        boto3.client("ssm").put_parameter(**arguments)

    def remove(self, certificate_id: str) -> None:
        """Delete the parameter if it still holds this certificate's key (an Update may have replaced it)."""
        ssm = boto3.client("ssm")
        name_filter = [{"Key": "Name", "Values": [self.name]}]
        found = ssm.describe_parameters(ParameterFilters=name_filter)["Parameters"]
        if found and found[0].get("Description") == self.description(certificate_id):
            ssm.delete_parameter(Name=self.name)


def _key_store(properties: Mapping[str, Any]) -> SecretsManagerKeyStore | SsmParameterKeyStore:
    secret_id = properties.get("PrivateKeySecretId") or None
    parameter_name = properties.get("PrivateKeyParameterName") or None
    if bool(secret_id) == bool(parameter_name):
        raise CustomResourceError(
            "exactly one of PrivateKeySecretId and PrivateKeyParameterName is required "
            f"(got {'both' if secret_id else 'neither'})"
        )
    if secret_id:
        return SecretsManagerKeyStore(secret_id)
    return SsmParameterKeyStore(parameter_name, properties.get("PrivateKeyKmsKeyId"))

