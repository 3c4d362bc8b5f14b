"""Each v1 subscription as what carries it on v2: a legacy-router subscription, a Lambda event source, an MQTT
bridge mapping, or a note that a person must decide.

On v2 the legacy subscription router (`aws.greengrass.LegacySubscriptionRouter`) routes only what a Lambda (or
a v1 connector's component) publishes with the v1 SDK's `publish()`: its `source` is always a component, its
`target` a component or `cloud`. What reaches a Lambda is its component's `eventSources` (`IOT_CORE` for the
cloud, `PUB_SUB` for local publishers, among them the shadow manager's shadow topics). Client devices talk to
the local MQTT broker; the MQTT bridge relays between it (`LocalMqtt`), local pub/sub (`Pubsub`) and `IotCore`.
"""

from __future__ import annotations

from dataclasses import dataclass

from simcore.export.catalog import CONNECTOR_SUCCESSORS
from simcore.group import CLOUD, SHADOW_SERVICE, Group, Subscription


@dataclass(frozen=True)
class Route:
    """What one v1 subscription became. Any of the three carriers may be set; `human` says what is left to do."""

    subscription: Subscription
    became: str
    router: dict | None = None
    event_source: tuple[str, dict] | None = None  # (function ARN, {"topic", "type"})
    bridge: dict | None = None
    human: str | None = None


class Endpoints:
    """The names v2 gives a group's subscription endpoints."""

    def __init__(self, group: Group, component_names: dict[str, str]):
        self.group = group
        self.component_names = component_names  # function ARN -> its component's name
        self.connectors = {connector.arn: connector for connector in group.connectors}
        self.devices = {device.thing_arn: device for device in group.devices}

    def kind(self, endpoint: str) -> str:
        """`function`, `cloud`, `shadow`, `connector` or `device`."""
        if endpoint == CLOUD:
            return "cloud"
        if endpoint == SHADOW_SERVICE:
            return "shadow"
        if endpoint in self.component_names:
            return "function"
        if endpoint in self.connectors:
            return "connector"
        return "device"

    def component(self, endpoint: str) -> str | None:
        """`component:<name>` for a function or a connector with a v2 successor; None for anything else."""
        if endpoint in self.component_names:
            return f"component:{self.component_names[endpoint]}"
        connector = self.connectors.get(endpoint)
        successor = CONNECTOR_SUCCESSORS.get(connector.name) if connector else None
        return f"component:{successor}" if successor else None

    def label(self, endpoint: str) -> str:
        """How MIGRATION.md names an endpoint."""
        kind = self.kind(endpoint)
        if kind == "function":
            return f"component {self.component_names[endpoint]}"
        if kind == "connector":
            return f"connector {self.connectors[endpoint].name}"
        if kind == "device":
            device = self.devices.get(endpoint)
            return f"device {device.thing_name}" if device else endpoint
        return endpoint


def route(subscription: Subscription, endpoints: Endpoints) -> Route:
    """What carries `subscription` on v2."""
    source, target, subject = subscription.source, subscription.target, subscription.subject
    kinds = (endpoints.kind(source), endpoints.kind(target))
    source_component, target_component = endpoints.component(source), endpoints.component(target)
    what = f"{endpoints.label(source)} -> {endpoints.label(target)} on `{subject}`"

    def router(to: str) -> dict:
        return {"id": subscription.id, "source": source_component, "subject": subject, "target": to}

    if kinds[0] in ("function", "connector") and source_component is None:
        return Route(subscription, f"not carried: {what}",
                     human=f"subscription {subscription.id}: connector {endpoints.label(source)} has no v2 component")
    if kinds[1] == "connector" and target_component is None:
        return Route(subscription, f"not carried: {what}",
                     human=f"subscription {subscription.id}: {endpoints.label(target)} has no v2 component")
    if kinds == ("function", "cloud") or kinds == ("connector", "cloud"):
        return Route(subscription, f"legacy router: {what}", router=router("cloud"))
    if kinds[0] in ("function", "connector") and kinds[1] in ("function", "connector"):
        event_source = (target, {"topic": subject, "type": "PUB_SUB"}) if kinds[1] == "function" else None
        return Route(subscription, f"legacy router: {what}" + (" (and a PUB_SUB event source)" if event_source else ""),
                     router=router(target_component), event_source=event_source)
    if kinds == ("cloud", "function"):
        return Route(subscription, f"event source IOT_CORE `{subject}` of {endpoints.label(target)}",
                     event_source=(target, {"topic": subject, "type": "IOT_CORE"}))
    if kinds == ("shadow", "function"):
        return Route(subscription, f"event source PUB_SUB `{subject}` of {endpoints.label(target)}, published by "
                     "the shadow manager", event_source=(target, {"topic": subject, "type": "PUB_SUB"}))
    if kinds == ("device", "cloud"):
        return Route(subscription, f"MQTT bridge LocalMqtt -> IotCore on `{subject}`",
                     bridge=_mapping(subscription, "LocalMqtt", "IotCore"))
    if kinds == ("cloud", "device"):
        return Route(subscription, f"MQTT bridge IotCore -> LocalMqtt on `{subject}`",
                     bridge=_mapping(subscription, "IotCore", "LocalMqtt"))
    if kinds == ("device", "function"):
        return Route(subscription, f"MQTT bridge LocalMqtt -> Pubsub and event source PUB_SUB `{subject}` of "
                     f"{endpoints.label(target)}", bridge=_mapping(subscription, "LocalMqtt", "Pubsub"),
                     event_source=(target, {"topic": subject, "type": "PUB_SUB"}))
    if kinds == ("function", "device"):
        return Route(subscription, f"MQTT bridge Pubsub -> LocalMqtt on `{subject}`",
                     bridge=_mapping(subscription, "Pubsub", "LocalMqtt"),
                     human=f"subscription {subscription.id}: the legacy router has no device target, so "
                     f"{endpoints.label(source)}'s v1 publish() on `{subject}` reaches no device; publish it to local "
                     "pub/sub through IPC (the bridge relays it)")
    if kinds == ("device", "device"):
        return Route(subscription, f"the local MQTT broker, as the client device auth policy allows: {what}")
    if kinds == ("device", "shadow"):
        return Route(subscription, f"MQTT bridge LocalMqtt -> Pubsub on `{subject}`, for the shadow manager",
                     bridge=_mapping(subscription, "LocalMqtt", "Pubsub"),
                     human=f"subscription {subscription.id}: a device's shadow requests reach the shadow manager "
                     "through the bridge; check its `synchronize` settings for that device")
    if kinds == ("function", "shadow"):
        return Route(subscription, f"not carried: {what}",
                     human=f"subscription {subscription.id}: {endpoints.label(source)} publishes shadow requests; on "
                     "v2 use the IPC shadow client (UpdateThingShadow...) and an accessControl policy")
    return Route(subscription, f"not carried: {what}",
                 human=f"subscription {subscription.id}: {what} has no v2 equivalent this export knows; map it by hand")


def _mapping(subscription: Subscription, source: str, target: str) -> dict:
    return {"topic": subscription.subject, "source": source, "target": target}


def routes(group: Group, component_names: dict[str, str]) -> list[Route]:
    """Every subscription of the group, in template order, with what carries it."""
    endpoints = Endpoints(group, component_names)
    return [route(subscription, endpoints) for subscription in group.subscriptions]
