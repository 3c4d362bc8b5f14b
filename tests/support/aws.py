"""moto's in-memory AWS for the tests, with nothing of the developer's own AWS set-up leaking in."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest
from moto import mock_aws

REGION = "us-east-1"


@contextlib.contextmanager
def fake_aws(monkeypatch: pytest.MonkeyPatch, region: str = REGION) -> Iterator[None]:
    """moto's AWS with test credentials and `region` as the default, while the block runs.

    Endpoint overrides and a named profile are removed: a developer's `AWS_ENDPOINT_URL*` (a LocalStack, say)
    or `AWS_PROFILE` would otherwise send the calls elsewhere or fail to resolve.
    """
    _test_credentials(monkeypatch, region)
    with mock_aws():
        yield


def point_at_moto_server(monkeypatch: pytest.MonkeyPatch, endpoint: str, region: str = REGION) -> None:
    """boto3 in this process sends every call to the moto server at `endpoint`, with test credentials."""
    _test_credentials(monkeypatch, region)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)


def _test_credentials(monkeypatch: pytest.MonkeyPatch, region: str) -> None:
    """Test credentials and `region`; a developer's endpoint overrides and named profile removed."""
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name == "AWS_PROFILE":
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
