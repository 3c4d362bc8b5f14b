"""AWS for building a deployment: one way to make a boto3 client, one way to turn AWS's errors into DeployError.

Clients use boto3's usual credential chain. The endpoint is the caller's, else boto3's own choice
(`AWS_ENDPOINT_URL_<SERVICE>` / `AWS_ENDPOINT_URL`, which it reads itself), else AWS. boto3 is imported on
first use: a deployment that asks AWS for nothing never loads it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from simcore.errors import DeployError


def client(service: str, region: str, endpoint_url: str | None = None) -> Any:
    """A boto3 client for `service` in `region`, at `endpoint_url` when given."""
    import boto3

    return boto3.client(service, region_name=region, endpoint_url=endpoint_url or None)


@contextlib.contextmanager
def aws_call(
    what: str, *, permission: str, hints: Mapping[str, str] | None = None, fallback: str | None = None
) -> Iterator[None]:
    """Run the block's AWS calls; a botocore error leaves it as the DeployError `aws_error` makes of it."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (ClientError, BotoCoreError) as error:
        raise aws_error(what, error, permission=permission, hints=hints, fallback=fallback) from None


def aws_error(
    what: str,
    error: Exception,
    *,
    permission: str,
    hints: Mapping[str, str] | None = None,
    fallback: str | None = None,
) -> DeployError:
    """`error` as a DeployError whose message starts with `what` (the resource and the call).

    A ClientError keeps AWS's code (as the DeployError's code) and message, and adds the hint `hints` has for
    that code. Missing credentials say how to give them, for an identity allowed `permission`. `fallback`
    (another way to get the data) is added to those two and to every other botocore error.
    """
    from botocore.exceptions import ClientError, NoCredentialsError

    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = details.get("Code", "ClientError")
        message = details.get("Message") or str(error)
        hint = (hints or {}).get(code)
        suffix = f" ({hint})" if hint else ""
        return DeployError(f"{what}: {code}: {message}{suffix}", code=code)
    if isinstance(error, NoCredentialsError):
        also = f", {fallback}" if fallback else ""
        return DeployError(
            f"{what}: no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
            f"for an identity allowed {permission}{also}",
            code="NoCredentialsError",
        )
    also = f" ({fallback})" if fallback else ""
    return DeployError(f"{what}: {error}{also}", code=type(error).__name__)
