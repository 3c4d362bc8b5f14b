"""The core's IoT policy, read from the group template, grants nothing beyond the thing's own topics and shadow.

Each statement's resources are resolved for a thing name and matched with AWS IoT policy wildcard rules
(`*` any run of characters, `/` included; `?` one character) against the topics the group really uses
(which must be allowed) and against other things' topics (which must not). The `<thing>-*` names are the
v1 core's own (its system shadows and client ids); docs/reliability.md states that limit.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "cloudformation" / "greengrass-group.yaml"
THING = "RainEdgeCore"
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012",
          "ThingName": THING, "Group.Id": "group-id-1"}
ARN_PREFIX = "arn:aws:iot:us-east-1:123456789012:"
IOT_ACTIONS = {"iot:Connect", "iot:Publish", "iot:Receive", "iot:Subscribe", "iot:GetThingShadow",
               "iot:UpdateThingShadow", "iot:DeleteThingShadow", "iot:AssumeRoleWithCertificate"}
FOREIGN_THINGS = ("OtherCore", f"{THING}2", f"X{THING}", THING.lower())


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _policy_statements() -> list[dict]:
    """The CorePolicy statements with the Greengrass service available (its `Fn::If`s taken: the widest)."""
    template = _plain(cfn_yaml.load(str(TEMPLATE_PATH)))
    found = []
    for statement in template["Resources"]["CorePolicy"]["Properties"]["PolicyDocument"]["Statement"]:
        if "Fn::If" in statement:
            condition, statement, _otherwise = statement["Fn::If"]
            assert condition == "GreengrassServiceAvailable"
        found.append(statement)
    return found


def _resolve(value: Any) -> str:
    if isinstance(value, str):
        return value
    template_text = value["Fn::Sub"]
    return re.sub(r"\$\{([^}]+)\}", lambda match: PSEUDO[match.group(1)], template_text)


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _granted(action: str) -> list[str]:
    """Every resource pattern some statement grants `action` on."""
    patterns = []
    for statement in _policy_statements():
        if action in _as_list(statement["Action"]):
            patterns += [_resolve(resource) for resource in _as_list(statement["Resource"])]
    return patterns


def _allows(patterns: list[str], resource: str) -> bool:
    """AWS IoT policy matching: `*` is any run of characters (slashes too), `?` one character."""
    for pattern in patterns:
        expression = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
        if re.fullmatch(expression, resource):
            return True
    return False


def _group_cloud_topics() -> set[str]:
    """The topics the group's subscriptions send to or take from `cloud`, for THING."""
    template = _plain(cfn_yaml.load(str(TEMPLATE_PATH)))
    subscriptions = template["Resources"]["SubscriptionDefinition"]["Properties"]["InitialVersion"]["Subscriptions"]
    topics = set()
    for subscription in subscriptions:
        if "cloud" in (subscription["Source"], subscription["Target"]):
            topics.add(_resolve(subscription["Subject"]))
    return topics


def test_no_action_is_a_wildcard_and_only_iot_and_greengrass_actions_are_granted():
    for statement in _policy_statements():
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement and "NotResource" not in statement, statement["Sid"]
        for action in _as_list(statement["Action"]):
            assert "*" not in action and "?" not in action, (statement["Sid"], action)
            assert action in IOT_ACTIONS or action.startswith("greengrass:"), action


def test_connect_is_only_as_the_things_own_client_id_with_its_certificate_attached():
    patterns = _granted("iot:Connect")
    assert _allows(patterns, f"{ARN_PREFIX}client/{THING}")
    for other in FOREIGN_THINGS:
        assert not _allows(patterns, f"{ARN_PREFIX}client/{other}"), other
    connect = next(s for s in _policy_statements() if s["Action"] == "iot:Connect")
    assert connect["Condition"] == {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}


@pytest.mark.parametrize("action, kind", [("iot:Publish", "topic"), ("iot:Receive", "topic"),
                                          ("iot:Subscribe", "topicfilter")])
def test_messaging_is_confined_to_the_things_topics_and_shadow(action, kind):
    patterns = _granted(action)
    assert patterns
    for pattern in patterns:
        name = pattern.removeprefix(f"{ARN_PREFIX}{kind}/")
        assert name != pattern, f"{pattern} is not a {kind} ARN of this account and region"
        assert name.startswith((f"rain/{THING}/", f"$aws/things/{THING}/shadow/", f"$aws/things/{THING}/jobs/",
                                f"$aws/things/{THING}-")), name
    own = _group_cloud_topics() | {f"$aws/things/{THING}/shadow/{operation}/{outcome}"
                                   for operation in ("get", "update", "delete")
                                   for outcome in ("accepted", "rejected")} | {
        f"$aws/things/{THING}/jobs/notify-next", f"$aws/things/{THING}/jobs/$next/get/accepted",
        f"$aws/things/{THING}/jobs/job-1/update", f"$aws/things/{THING}/jobs/job-1/update/rejected"}
    assert {f"rain/{THING}/inference/output", f"rain/{THING}/command/input"} <= own
    for topic in own:
        assert _allows(patterns, f"{ARN_PREFIX}{kind}/{topic}"), topic
    for other in FOREIGN_THINGS:
        for topic in (f"rain/{other}/command/input", f"$aws/things/{other}/shadow/update", "rain/#",
                      f"$aws/things/{other}/shadow/update/delta", "$aws/events/presence/connected/x",
                      f"$aws/things/{other}/jobs/notify-next"):
            assert not _allows(patterns, f"{ARN_PREFIX}{kind}/{topic}"), (action, topic)


def test_shadow_api_actions_are_on_the_things_own_shadow_only():
    for action in ("iot:GetThingShadow", "iot:UpdateThingShadow", "iot:DeleteThingShadow"):
        assert _granted(action) == [f"{ARN_PREFIX}thing/{THING}"], action
