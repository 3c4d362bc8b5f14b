"""Helpers for tests that run a real core: build a group of the fixture Lambdas, reach it through the IPC client.

Waiting and recording cloud messages: `support.waiting` and `support.recorders`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from simcore.group import Core as GroupCore
from simcore.group import Function, Group, Subscription

FIXTURES = Path(__file__).resolve().parent
REPO = FIXTURES.parent.parent
RUNTIME_DIR = REPO / "simcore" / "lambda_side"
PY38 = REPO / ".venv-py38" / "bin" / "python"
REGION = "us-east-1"
ACCOUNT = "123456789012"

# The runtime's IPC client, importable in the test process (it is what every worker uses).
if str(RUNTIME_DIR) not in sys.path:
    sys.path.append(str(RUNTIME_DIR))

from greengrass_ipc_python_sdk.ipc_client import IPCClient, IPCException, WorkItem  # noqa: E402

__all__ = ["IPCClient", "IPCException", "WorkItem"]


def function_arn(name: str, qualifier: str = "live") -> str:
    """A qualified function ARN in the test account."""
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}:{qualifier}"


def make_function(name: str, code: str, handler: str, **settings) -> Function:
    """A Function whose code is `tests/lambdas_fixtures/<code>`."""
    return Function(
        id=name,
        arn=function_arn(name),
        name=name,
        code_dir=FIXTURES / code,
        handler=handler,
        runtime=settings.pop("runtime", "python3.8"),
        **settings,
    )


def make_group(functions: Iterable[Function], routes: Iterable[tuple[str, str, str]] = (), **extra) -> Group:
    """A group with one core thing and subscriptions given as (source, subject, target)."""
    subscriptions = tuple(
        Subscription(id=f"s{index}", source=source, subject=subject, target=target)
        for index, (source, subject, target) in enumerate(routes)
    )
    core = GroupCore(
        id="core",
        thing_name="test-core",
        thing_arn=f"arn:aws:iot:{REGION}:{ACCOUNT}:thing/test-core",
        certificate_arn=f"arn:aws:iot:{REGION}:{ACCOUNT}:cert/abc",
    )
    return Group(
        name="test",
        region=REGION,
        account_id=ACCOUNT,
        cores=(core,),
        functions=tuple(functions),
        subscriptions=subscriptions,
        **extra,
    )


# The worker interpreters a core test runs under, as fixture params: the Lambdas' own (when its venv is there)
# and simcore's.
INTERPRETER_KINDS = [
    pytest.param("py38", marks=[pytest.mark.py38, pytest.mark.skipif(not PY38.exists(), reason="no .venv-py38")]),
    "py311",
]


def interpreters(kind: str) -> dict[str, str]:
    """`py38`: the Lambdas' Python 3.8 venv; `py311`: simcore's own interpreter (it has greengrasssdk too)."""
    return {"python3.8": str(PY38) if kind == "py38" else sys.executable}

