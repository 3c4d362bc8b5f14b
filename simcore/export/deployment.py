"""The `create-deployment` request for the group's core: its components and each one's configuration.

Components: every Lambda and model component of the group's own; `LegacySubscriptionRouter` with the
subscriptions that route v1 `publish()` calls; `ShadowManager` with `synchronize` from the things' `SyncShadow`
(classic shadows, both directions, as v1 synced them); `Cloudwatch` for the CloudWatch Metrics connector
(`PublishInterval`, `MaxMetricsToRetain`, `PublishRegion`); `TokenExchangeService`, `SecretManager` (the
group's secret resources as `cloudSecrets`) and `StreamManager` when a function needs them; for a group with
devices, client device auth (one policy per device: connect as itself, publish and subscribe on its
subscriptions' subjects), the Moquette broker, the IP detector and, when subscriptions relay, the MQTT bridge.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from simcore.export.catalog import (
    CLIENT_DEVICE_AUTH,
    CLOUDWATCH,
    IP_DETECTOR,
    LEGACY_SUBSCRIPTION_ROUTER,
    MOQUETTE,
    MQTT_BRIDGE,
    OWN_COMPONENT_VERSION,
    SECRET_MANAGER,
    SHADOW_MANAGER,
    TOKEN_EXCHANGE_SERVICE,
)
from simcore.export.routes import Route
from simcore.group import Group

CLOUDWATCH_NUMBERS = ("PublishInterval", "MaxMetricsToRetain")


def configuration(merge: Mapping) -> dict:
    """A `configurationUpdate` merging `merge` (the API takes it as a JSON string)."""
    return {"merge": json.dumps(merge, sort_keys=True)}


def public_components(
    group: Group, routes: Iterable[Route], needed: set[str], shadow_in_use: bool
) -> dict[str, dict]:
    """The AWS-provided components the group needs, by name, each with its configuration merge (or none)."""
    routes = list(routes)
    merges: dict[str, dict | None] = {}
    router = {route.router["id"]: route.router for route in routes if route.router}
    if router:
        merges[LEGACY_SUBSCRIPTION_ROUTER] = {"subscriptions": router}
    synchronize = shadow_sync(group)
    if synchronize or shadow_in_use:
        merges[SHADOW_MANAGER] = {"synchronize": synchronize} if synchronize else None
    for connector in group.connectors:
        if connector.name == "CloudWatchMetrics":
            merges[CLOUDWATCH] = cloudwatch_configuration(connector.parameters)
            needed = needed | {TOKEN_EXCHANGE_SERVICE}
    secrets = [resource for resource in group.resources if resource.kind == "secret"]
    if secrets:
        merges[SECRET_MANAGER] = {"cloudSecrets": [
            {"arn": secret.source, **({"labels": list(secret.additional_staging_labels)}
                                      if secret.additional_staging_labels else {})}
            for secret in secrets
        ]}
    for name in sorted(needed):
        merges.setdefault(name, None)
    if group.devices:
        merges[CLIENT_DEVICE_AUTH] = client_device_auth(group)
        merges[MOQUETTE] = None
        merges[IP_DETECTOR] = None
        mappings = {route.subscription.id: route.bridge for route in routes if route.bridge}
        if mappings:
            merges[MQTT_BRIDGE] = {"mqttTopicMapping": mappings}
    return {name: ({} if merge is None else {"configurationUpdate": configuration(merge)})
            for name, merge in merges.items()}


def shadow_sync(group: Group) -> dict | None:
    """ShadowManager's `synchronize` for the things whose `SyncShadow` is true; None when none syncs."""
    core = group.core
    documents = [{"thingName": device.thing_name, "classic": True, "namedShadows": []}
                 for device in group.devices if device.sync_shadow]
    if not core.sync_shadow and not documents:
        return None
    synchronize: dict = {"direction": "betweenDeviceAndCloud"}
    if core.sync_shadow:
        synchronize["coreThing"] = {"classic": True, "namedShadows": []}
    if documents:
        synchronize["shadowDocuments"] = documents
    return synchronize


def cloudwatch_configuration(parameters: Mapping) -> dict:
    """`aws.greengrass.Cloudwatch` 3.x configuration from the v1 connector's parameters (numbers as numbers)."""
    merge: dict = {}
    for key in CLOUDWATCH_NUMBERS:
        if key in parameters:
            value = str(parameters[key])
            merge[key] = int(value) if value.isdigit() else value
    if parameters.get("PublishRegion"):
        merge["PublishRegion"] = str(parameters["PublishRegion"])
    return merge


def client_device_auth(group: Group) -> dict:
    """`deviceGroups`: one definition and policy per v1 device, allowing what its subscriptions did."""
    definitions, policies = {}, {}
    for device in group.devices:
        key = "".join(character for character in device.id if character.isalnum()) or "Device"
        publishes = sorted({s.subject for s in group.subscriptions if s.source == device.thing_arn})
        receives = sorted({s.subject for s in group.subscriptions if s.target == device.thing_arn})
        statements = {"AllowConnect": {"statementDescription": f"{device.thing_name} connects as itself",
                                       "operations": ["mqtt:connect"],
                                       "resources": [f"mqtt:clientId:{device.thing_name}"]}}
        if publishes:
            statements["AllowPublish"] = {"statementDescription": "the subjects its v1 subscriptions took from it",
                                          "operations": ["mqtt:publish"],
                                          "resources": [_topic_resource(subject) for subject in publishes]}
        if receives:
            statements["AllowSubscribe"] = {"statementDescription": "the subjects its v1 subscriptions sent it",
                                            "operations": ["mqtt:subscribe"],
                                            "resources": [f"mqtt:topicfilter:{subject}" for subject in receives]}
        definitions[f"{key}Group"] = {"selectionRule": f"thingName: {device.thing_name}", "policyName": f"{key}Policy"}
        policies[f"{key}Policy"] = statements
    return {"deviceGroups": {"formatVersion": "2021-03-05", "definitions": definitions, "policies": policies}}


def _topic_resource(subject: str) -> str:
    """A publish resource: a v1 subject's MQTT wildcards become the policy's `*` (a publish names a topic)."""
    return "mqtt:topic:" + "/".join("*" if level in ("+", "#") else level for level in subject.split("/"))


def deployment_request(
    group: Group,
    own_components: Iterable[str],
    public: Mapping[str, dict],
    versions: Mapping[str, str],
    run_as: Mapping[str, str],
) -> dict:
    """The `CreateDeployment` request: the core thing as target, every component with its exact version."""
    components: dict[str, dict] = {}
    for name in own_components:
        components[name] = {"componentVersion": OWN_COMPONENT_VERSION}
        if name in run_as:
            components[name]["runWith"] = {"posixUser": run_as[name]}
    for name, specification in public.items():
        components[name] = {"componentVersion": versions[name], **specification}
    return {
        "targetArn": group.core.thing_arn,
        "deploymentName": group.name,
        "components": components,
        "deploymentPolicies": {"failureHandlingPolicy": "ROLLBACK"},
    }


def client_device_association(group: Group) -> dict | None:
    """`batch-associate-client-device-with-core-device` for the group's devices; None without devices."""
    if not group.devices:
        return None
    return {"coreDeviceThingName": group.core.thing_name,
            "entries": [{"thingName": device.thing_name} for device in group.devices]}
