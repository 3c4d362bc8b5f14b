"""Helpers for tests that run a real core: build a group, record cloud messages, wait with a deadline."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

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


def interpreters(kind: str) -> dict[str, str]:
    """`py38`: the Lambdas' Python 3.8 venv; `py311`: simcore's own interpreter (it has greengrasssdk too)."""
    return {"python3.8": str(PY38) if kind == "py38" else sys.executable}


def wait_until(predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.02) -> object:
    """Poll `predicate` until it returns something truthy; AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


class RecordingCloud:
    """A cloud port that keeps what reaches `cloud`, for assertions."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._changed = threading.Condition()

    def publish(self, topic: str, payload: bytes) -> None:
        with self._changed:
            self.messages.append((topic, payload))
            self._changed.notify_all()

    def on(self, topic: str) -> list[bytes]:
        """Payloads received on `topic`, in order."""
        with self._changed:
            return [payload for received_topic, payload in self.messages if received_topic == topic]

    def wait_for(self, topic: str, count: int = 1, timeout: float = 20.0) -> list[bytes]:
        """At least `count` payloads on `topic`; AssertionError at the deadline."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [payload for received_topic, payload in self.messages if received_topic == topic]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{len(found)} of {count} messages on {topic} within {timeout} s")
                self._changed.wait(remaining)
