"""botocore errors as DeployError: AWS's code and message, the hint for the code, how to give credentials."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from simcore.deploy.aws import aws_call, aws_error
from simcore.errors import DeployError


def client_error(code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "GetObject")


def test_a_client_error_keeps_aws_code_and_message_and_adds_the_hint_for_that_code():
    error = aws_error("resource m: cannot fetch s3://b/k", client_error("AccessDenied", "Access Denied"),
                      permission="s3:GetObject", hints={"AccessDenied": "grant s3:GetObject"})
    assert error.code == "AccessDenied"
    assert error.message == "resource m: cannot fetch s3://b/k: AccessDenied: Access Denied (grant s3:GetObject)"


def test_a_client_error_without_a_hint_has_no_suffix():
    error = aws_error("what", client_error("404", "Not Found"), permission="s3:GetObject", fallback="or else")
    assert error.message == "what: 404: Not Found"


def test_missing_credentials_say_how_to_give_them_and_the_fallback():
    error = aws_error("what", NoCredentialsError(), permission="secretsmanager:GetSecretValue", fallback="or a file")
    assert error.code == "NoCredentialsError"
    assert "AWS_PROFILE" in error.message and "secretsmanager:GetSecretValue, or a file" in error.message


def test_other_botocore_errors_are_named_by_their_class():
    error = aws_error("what", EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), permission="s3:GetObject")
    assert error.code == "EndpointConnectionError"
    assert "http://127.0.0.1:9" in error.message


def test_aws_call_turns_a_botocore_error_into_a_deploy_error_and_lets_others_through():
    with pytest.raises(DeployError, match="what: NoSuchKey: gone"), aws_call("what", permission="s3:GetObject"):
        raise client_error("NoSuchKey", "gone")
    with pytest.raises(DeployError, match="too big"), aws_call("what", permission="s3:GetObject"):
        raise DeployError("too big")
