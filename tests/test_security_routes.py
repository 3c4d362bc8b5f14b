"""Subscriptions are the only routes: a Lambda cannot get a message onto a topic no subscription from it allows.

The publisher is a real worker process running the real greengrasssdk (tests/lambdas_fixtures/compat/echo.py,
which publishes to whatever topic its event names). IPC authentication itself (no token, a foreign token,
a spoofed `source`) is proven by tests/test_ipc_auth.py and not repeated here.
"""

from __future__ import annotations

import json
from base64 import b64encode

import pytest
from lambdas_fixtures.harness import (
    IPCClient,
    function_arn,
    interpreters,
    make_function,
    make_group,
)
from support.recorders import RecordingCloud
from support.waiting import wait_until

from simcore.core.assemble import Core
from simcore.group import CLOUD

ECHO = function_arn("security-echo")
NEIGHBOUR = function_arn("security-neighbour")
FORBIDDEN = "secret/plans"


@pytest.fixture
def core_and_cloud(tmp_path):
    group = make_group(
        [
            make_function("security-echo", "compat", "echo.function_handler", pinned=True, timeout_s=10),
            make_function("security-neighbour", "compat", "echo.function_handler", pinned=True, timeout_s=10),
        ],
        [
            (CLOUD, "echo/in", ECHO),
            (ECHO, "echo/allowed", CLOUD),
            # The forbidden topic IS routed to the cloud, and to a wildcard listener, but only from the neighbour.
            (NEIGHBOUR, FORBIDDEN, CLOUD),
            (NEIGHBOUR, "secret/#", CLOUD),
        ],
    )
    cloud = RecordingCloud()
    core = Core(group, runtime_root=tmp_path / "ggc", cloud=cloud, interpreters=interpreters("py311"))
    core.start()
    yield core, cloud
    core.stop()


def test_a_publish_no_subscription_from_the_lambda_allows_never_reaches_a_subscriber(core_and_cloud):
    core, cloud = core_and_cloud
    before = core.router.counters()
    core.publish("echo/in", json.dumps({"publish_to": FORBIDDEN, "n": 1}).encode())
    # The same pinned worker handles its items in order: once the allowed message is out, so was the other.
    core.publish("echo/in", json.dumps({"publish_to": "echo/allowed", "n": 2}).encode())
    [allowed] = cloud.wait_for("echo/allowed", 1)
    assert json.loads(allowed)["event"]["n"] == 2
    wait_until(lambda: core.router.counters()["dropped_unmatched"] == before["dropped_unmatched"] + 1,
               message="the router to count the unmatched publish as dropped")
    assert cloud.on(FORBIDDEN) == []
    assert [topic for topic, _ in cloud.messages if topic.startswith("secret/")] == []
    per_target = core.router.counters()["per_target"].get(CLOUD, {})
    assert sum(per_target.values()) == len(cloud.messages)  # the cloud got exactly what it was routed


def test_the_owner_of_the_route_is_delivered_on_the_same_topic(core_and_cloud):
    # The control for the test above: the route exists and works for the function it names.
    core, cloud = core_and_cloud
    client = IPCClient(port=core.ipc_port)
    client.auth_token = core.issue_token(NEIGHBOUR)
    context = b64encode(json.dumps({"custom": {"source": NEIGHBOUR, "subject": FORBIDDEN}}).encode())
    client.post_work("arn:aws:lambda:::function:GGRouter", b'{"from": "neighbour"}', context, "Event")
    assert json.loads(cloud.wait_for(FORBIDDEN, 1)[0]) == {"from": "neighbour"}
