"""The AWS-provided Greengrass v2 components an export names, each with the version it deploys.

A deployment names an exact version of every component (`componentVersion` is required). The versions are
ones the v2 developer guide and its document history name; AWS releases newer ones, and each version
declares the nucleus versions it runs with, so `simcore export v2 --component-version NAME=VERSION`
overrides any of them and MIGRATION.md tells the reader to check (`aws greengrassv2 list-component-versions`).
"""

from __future__ import annotations

LEGACY_SUBSCRIPTION_ROUTER = "aws.greengrass.LegacySubscriptionRouter"
SHADOW_MANAGER = "aws.greengrass.ShadowManager"
TOKEN_EXCHANGE_SERVICE = "aws.greengrass.TokenExchangeService"
SECRET_MANAGER = "aws.greengrass.SecretManager"
STREAM_MANAGER = "aws.greengrass.StreamManager"
CLOUDWATCH = "aws.greengrass.Cloudwatch"
CLIENT_DEVICE_AUTH = "aws.greengrass.clientdevices.Auth"
MOQUETTE = "aws.greengrass.clientdevices.mqtt.Moquette"
MQTT_BRIDGE = "aws.greengrass.clientdevices.mqtt.Bridge"
IP_DETECTOR = "aws.greengrass.clientdevices.IPDetector"

PUBLIC_COMPONENT_VERSIONS: dict[str, str] = {
    LEGACY_SUBSCRIPTION_ROUTER: "2.1.14",
    SHADOW_MANAGER: "2.3.15",
    TOKEN_EXCHANGE_SERVICE: "2.0.3",
    SECRET_MANAGER: "2.2.2",
    STREAM_MANAGER: "2.3.0",
    CLOUDWATCH: "3.0.0",
    CLIENT_DEVICE_AUTH: "2.5.1",
    MOQUETTE: "2.3.1",
    MQTT_BRIDGE: "2.3.0",
    IP_DETECTOR: "2.1.5",
}

# What a Lambda component's `componentDependencies` asks of a public component: any 2.x.
DEPENDENCY_REQUIREMENT = ">=2.0.0 <3.0.0"

# The version every exported component of the group's own (Lambdas, models) gets.
OWN_COMPONENT_VERSION = "1.0.0"

# The v1 connectors by the name in their ARN: the v2 component that does the same job, or None when the
# v2 guide names none. Only CloudWatch Metrics has its parameters mapped; the others are named in MIGRATION.md.
CONNECTOR_SUCCESSORS: dict[str, str | None] = {
    "CloudWatchMetrics": CLOUDWATCH,
    "DeviceDefender": "aws.greengrass.DeviceDefender",
    "KinesisFirehose": "aws.greengrass.KinesisFirehose",
    "ModbusRTUProtocolAdapter": "aws.greengrass.Modbus",
    "SNS": "aws.greengrass.SNS",
    "MLFeedback": None,
    "ImageClassificationARMv7": None,
    "ImageClassificationAarch64": None,
    "ImageClassificationx86-64": None,
    "ObjectDetectionARMv7": None,
    "ObjectDetectionAarch64": None,
    "ObjectDetectionx86-64": None,
}

LINUX_PLATFORM = {"name": "Linux", "attributes": {"os": "linux"}}

# Where a v2 core keeps a component's work folder (the default root, /greengrass/v2): a model component
# extracts its archive under it, and the Lambdas that used the v1 ML resource mount that folder.
V2_ROOT = "/greengrass/v2"
