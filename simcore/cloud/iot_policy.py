"""The thing's AWS IoT policy, enforced by the stand-in's broker as AWS IoT would enforce it.

`IotPolicy` holds a policy document's statements (its ARNs already resolved, as the group template gives them
after CloudFormation), and answers exactly, with AWS IoT's rules: an explicit Deny wins over an Allow, nothing is
allowed unless a statement allows it, `*` in a resource matches any characters (also `/`), `?` one, and the
policy variables `${iot:Connection.Thing.ThingName}` and `${iot:ClientId}` stand for the connection's thing (the
certificate's CN, the thing the stand-in attached it to) and client id. `iot:Publish` and `iot:Receive` take
`topic/<name>` resources, `iot:Subscribe` `topicfilter/<filter>`, `iot:Connect` `client/<id>`.

mosquitto enforces it through an ACL file (`mosquitto_acl`): per identity (the certificate CN, mosquitto's
username with `use_identity_as_username`), `topic write` for what Publish allows and `topic read` for what
Subscribe allows; `%c` stands in for `${iot:ClientId}`. Its patterns are MQTT's: a resource translates only when
it has no wildcard or its only `*` is the whole last level (`a/*` → `a/#`, which also admits `a` itself: the one
place it is wider than AWS); any other resource is left out, so the stand-in is narrower than AWS there (logged).
mosquitto's `read` covers subscribing and receiving alike (iot:Receive is not checked apart). Deny statements
and iot:Connect are not expressible as mosquitto topic ACLs: `allows` is the exact answer (tests compare the
broker with it), and docs/credentials.md states the limits.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

THING_VARIABLE = "${iot:Connection.Thing.ThingName}"
CLIENT_VARIABLE = "${iot:ClientId}"
RESOURCE_KIND = {"iot:Publish": "topic", "iot:Receive": "topic", "iot:Subscribe": "topicfilter",
                 "iot:Connect": "client"}
_IOT_ARN = re.compile(r"arn:aws[a-z-]*:iot:[a-z0-9-]*:\d*:(?P<kind>topic|topicfilter|client)/(?P<name>.*)")


@dataclass(frozen=True)
class _Statement:
    allow: bool
    actions: tuple[str, ...]
    resources: tuple[tuple[str, str], ...]  # (kind, name pattern)


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, thing: str, client_id: str) -> re.Pattern[str]:
    pattern = pattern.replace(THING_VARIABLE, thing).replace(CLIENT_VARIABLE, client_id)
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.S)


class IotPolicy:
    """A policy document's IoT statements (other actions, e.g. iot:UpdateThingShadow or greengrass:*, are kept
    out: they are not the broker's to check)."""

    def __init__(self, document: Mapping[str, Any]):
        statements = []
        for raw in _as_list(document.get("Statement", [])):
            if not isinstance(raw, Mapping):
                continue  # an `Fn::If` left as NoValue
            actions = tuple(action for action in _as_list(raw.get("Action", [])) if action in RESOURCE_KIND
                            or action in ("iot:*", "*"))
            resources = []
            for resource in _as_list(raw.get("Resource", [])):
                if resource == "*":
                    resources += [(kind, "*") for kind in ("topic", "topicfilter", "client")]
                    continue
                match = _IOT_ARN.fullmatch(str(resource))
                if match:
                    resources.append((match["kind"], match["name"]))
            if actions and resources:
                statements.append(_Statement(raw.get("Effect") == "Allow", actions, tuple(resources)))
        self.statements = tuple(statements)

    def _matching(self, action: str, name: str, thing: str, client_id: str) -> Iterable[_Statement]:
        kind = RESOURCE_KIND[action]
        for statement in self.statements:
            if not any(a in (action, "iot:*", "*") for a in statement.actions):
                continue
            if any(k == kind and _glob(pattern, thing, client_id).fullmatch(name)
                   for k, pattern in statement.resources):
                yield statement

    def allows(self, action: str, name: str, *, thing: str, client_id: str) -> bool:
        """Whether `action` (iot:Publish, iot:Receive, iot:Subscribe, iot:Connect) on `name` (a topic, a topic
        filter or a client id) is allowed for a connection of `thing` as `client_id`: AWS IoT's evaluation."""
        matching = list(self._matching(action, name, thing, client_id))
        return bool(matching) and all(statement.allow for statement in matching)

    def mosquitto_lines(self, thing: str) -> list[str]:
        """The ACL lines (after `user <thing>`) that grant what the policy's Allow statements grant, as far as
        mosquitto's patterns can say it exactly (module docstring)."""
        lines: list[str] = []
        for statement in self.statements:
            if not statement.allow:
                continue
            for action in statement.actions:
                access = {"iot:Publish": "write", "iot:Subscribe": "read"}.get(action)
                if access is None:
                    continue
                for kind, pattern in statement.resources:
                    if kind != RESOURCE_KIND[action]:
                        continue
                    topic = mqtt_pattern(pattern.replace(THING_VARIABLE, thing))
                    if topic is None:
                        log.info("policy resource %s has no exact mosquitto pattern: left out (narrower)", pattern)
                        continue
                    line = f"{'pattern' if '%c' in topic else 'topic'} {access} {topic}"
                    if line not in lines:
                        lines.append(line)
        return lines


def mqtt_pattern(resource: str) -> str | None:
    """An IoT policy resource name as a mosquitto ACL topic, or None when no MQTT pattern says exactly it."""
    resource = resource.replace(CLIENT_VARIABLE, "%c")
    if "?" in resource or "+" in resource or "#" in resource:
        return None
    levels = resource.split("/")
    out = []
    for index, level in enumerate(levels):
        if "*" not in level:
            out.append(level)
        elif level == "*" and index == len(levels) - 1:
            out.append("#")  # `a/*` is `a/` and everything below: MQTT's `a/#` (which also matches `a`)
        elif level == "*":
            # Inside, `*` would also match across levels; `+` is only one. Exact only if nothing follows.
            return None
        else:
            return None
    return "/".join(out)


def mosquitto_acl(policies: Mapping[str, IotPolicy], full_access: Iterable[str]) -> str:
    """The ACL file: each thing (certificate CN) its policy's lines; each `full_access` identity (the stand-in's
    own services and cloud-side clients) every topic."""
    lines = ["# Written by simcore.cloud.iot_policy: the things' IoT policies as mosquitto ACLs."]
    for thing, policy in policies.items():
        lines += ["", f"user {thing}", *policy.mosquitto_lines(thing)]
    for identity in full_access:
        lines += ["", f"user {identity}", "topic readwrite #", "topic readwrite $aws/#"]
    return "\n".join(lines) + "\n"
