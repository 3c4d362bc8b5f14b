"""simcore's local AWS (a moto server) in a child process, so its state is apart from in-process moto mocks."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import urllib.request
from collections.abc import Iterator


@contextlib.contextmanager
def moto_server_process() -> Iterator[str]:
    """A moto server in a child process for the block; its endpoint URL."""
    child = subprocess.Popen(
        [sys.executable, "-m", "simcore.cloud.local_aws"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        endpoint = child.stdout.readline().strip()
        if not endpoint.startswith("http://127.0.0.1:"):
            raise AssertionError(f"the local AWS did not start: {endpoint!r}")
        yield endpoint
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)


def reset(endpoint: str) -> None:
    """Forget every resource the server holds (moto's reset call) and switch IAM checks off again."""
    _post(endpoint, "/moto-api/reset", "")
    stop_checking_iam(endpoint)


def stop_checking_iam(endpoint: str) -> None:
    """moto answers every request without IAM checks (its default)."""
    _post(endpoint, "/moto-api/reset-auth", "inf")


def check_iam_after(endpoint: str, calls: int) -> None:
    """moto answers the next `calls` requests without IAM checks, then checks every caller's IAM policies."""
    _post(endpoint, "/moto-api/reset-auth", str(calls))


def _post(endpoint: str, path: str, body: str) -> None:
    # text/plain: a form content type would have Flask take the body as form fields, and moto reads it raw.
    headers = {"Content-Type": "text/plain"}
    request = urllib.request.Request(endpoint + path, data=body.encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
