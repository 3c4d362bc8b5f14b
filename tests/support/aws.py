"""moto's AWS (a server in a child process) for the tests, with nothing of the developer's own AWS set-up leaking in."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from support.moto_process import reset

REGION = "us-east-1"


def fake_aws(monkeypatch: pytest.MonkeyPatch, endpoint: str, region: str = REGION) -> None:
    """The moto server at `endpoint` emptied (a fresh account), and boto3 pointed at it with test credentials.

    Endpoint overrides and a named profile of the developer's are removed first: a developer's
    `AWS_ENDPOINT_URL*` (a LocalStack, say) or `AWS_PROFILE` would otherwise send the calls elsewhere.
    """
    reset(endpoint)
    point_at_moto_server(monkeypatch, endpoint, region)


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


@contextlib.contextmanager
def in_process_aws(monkeypatch: pytest.MonkeyPatch, region: str = REGION) -> Iterator[None]:
    """moto's in-process mock while the block runs, with test credentials and `region` the default region."""
    from moto import mock_aws

    _test_credentials(monkeypatch, region)
    with mock_aws():
        yield
