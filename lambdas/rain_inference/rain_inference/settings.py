"""The inference Lambda's settings, read from its environment (the group's FunctionConfiguration variables).

Precedence: the function's own variable, then the core's (`AWS_IOT_THING_NAME` for the thing), then the
default below. A malformed value is named in `problems` (logged by the caller) and the default is used;
FEEDBACK_CONNECTOR_ARN has no default: unset or malformed, no feedback samples are sent.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from typing import List, Mapping, NamedTuple, Optional

DEFAULT_MODEL_DIR = "/ml/rain"
DEFAULT_METRICS_INTERVAL_S = 60.0
DEFAULT_FEEDBACK_BAND = 0.1
DEFAULT_FEEDBACK_CONFIG_ID = "rain-low-confidence"
DEFAULT_CLOUDWATCH_NAMESPACE = "RainEdge"
# Under the temporary folder, one folder per user and stream manager port: two cores on one host (tests) never
# share one, and a core's folder is the same after a restart (v1's fixed 8088).
DEFAULT_READINGS_DIR_NAME = "rain-readings"
DEFAULT_READINGS_PREFIX = "readings"
# A stream name as the stream manager takes it (the suffixes Uploads and Status are added to it).
STREAM_NAME_PATTERN = re.compile(r"^[\w ,.\-_]{1,240}$")
# The ML Feedback connector's ConfigId pattern (greengrass_machine_learning_sdk's feedback client).
CONFIG_ID_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]{1,62}$")
# A Lambda function ARN as greengrasssdk's invoke parses it (greengrass_common's FunctionArnFields), whole.
FUNCTION_ARN_PATTERN = re.compile(
    r"arn:aws(?:-[a-z]+)*:lambda:[a-z]{2}(?:-[a-z]+)+-\d:[0-9a-zA-Z]*:function:[a-zA-Z0-9-_]+"
    r"(?::(?:\$LATEST|[a-zA-Z0-9-_]+))?")


class InferenceSettings(NamedTuple):
    """Everything the inference Lambda reads from its environment."""

    thing_name: Optional[str]
    model_dir: str
    metrics_interval_s: float
    feedback_connector_arn: Optional[str]  # None: no feedback samples are sent
    feedback_band: float
    feedback_config_id: str
    cloudwatch_namespace: str
    problems: List[str]
    readings_stream: Optional[str] = None  # None: records are not kept (no stream manager in the group)
    readings_bucket: Optional[str] = None  # None: kept in the local stream only, not exported to S3
    readings_dir: str = ""
    readings_prefix: str = DEFAULT_READINGS_PREFIX


def _number(environ: Mapping[str, str], name: str, default: float, low: float, high: float,
            problems: List[str]) -> float:
    text = environ.get(name)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or not low <= value <= high:
        problems.append("{} must be a number between {} and {}, got {!r}; using {}".format(
            name, low, high, text, default))
        return default
    return value


def _default_readings_dir(environ: Mapping[str, str]) -> str:
    port = environ.get("STREAM_MANAGER_SERVER_PORT") or "8088"
    return os.path.join(tempfile.gettempdir(), "{}-{}-{}".format(DEFAULT_READINGS_DIR_NAME, os.getuid(), port))


def load_settings(environ: Mapping[str, str]) -> InferenceSettings:
    """Read the settings from an environment mapping; never raises, collects problems instead."""
    problems: List[str] = []
    thing_name = environ.get("THING_NAME") or environ.get("AWS_IOT_THING_NAME") or None
    if thing_name is None:
        problems.append("neither THING_NAME nor AWS_IOT_THING_NAME is set: topics cannot be named")
    metrics_interval_s = _number(
        environ, "METRICS_INTERVAL_S", DEFAULT_METRICS_INTERVAL_S, 1.0, 86400.0, problems)
    feedback_band = _number(environ, "FEEDBACK_BAND", DEFAULT_FEEDBACK_BAND, 0.0, 0.5, problems)
    config_id = environ.get("FEEDBACK_CONFIG_ID") or DEFAULT_FEEDBACK_CONFIG_ID
    if not CONFIG_ID_PATTERN.match(config_id):
        problems.append("FEEDBACK_CONFIG_ID must match {}, got {!r}; using {}".format(
            CONFIG_ID_PATTERN.pattern, config_id, DEFAULT_FEEDBACK_CONFIG_ID))
        config_id = DEFAULT_FEEDBACK_CONFIG_ID
    connector_arn = environ.get("FEEDBACK_CONNECTOR_ARN") or None
    if connector_arn is not None and not FUNCTION_ARN_PATTERN.fullmatch(connector_arn):
        problems.append("FEEDBACK_CONNECTOR_ARN must be a Lambda function ARN (the ML Feedback connector's is "
                        "arn:aws:lambda:<region>:aws:function:MLFeedback), got {!r}; feedback is off".format(
                            connector_arn))
        connector_arn = None
    if environ.get("FEEDBACK_TOPIC"):
        problems.append("FEEDBACK_TOPIC is ignored: the ML Feedback connector takes no MQTT input; samples go "
                        "by invoke to FEEDBACK_CONNECTOR_ARN")
    namespace = environ.get("CLOUDWATCH_NAMESPACE") or DEFAULT_CLOUDWATCH_NAMESPACE
    if namespace.startswith("AWS/") or namespace.startswith(":"):
        problems.append("CLOUDWATCH_NAMESPACE {!r} is reserved or invalid; using {}".format(
            namespace, DEFAULT_CLOUDWATCH_NAMESPACE))
        namespace = DEFAULT_CLOUDWATCH_NAMESPACE
    stream = environ.get("READINGS_STREAM") or None
    if stream is not None and not STREAM_NAME_PATTERN.match(stream):
        problems.append("READINGS_STREAM must be 1 to 240 letters, digits, spaces or ,.-_, got {!r}; records are "
                        "not kept".format(stream))
        stream = None
    return InferenceSettings(
        thing_name=thing_name,
        model_dir=environ.get("MODEL_DIR") or DEFAULT_MODEL_DIR,
        metrics_interval_s=metrics_interval_s,
        feedback_connector_arn=connector_arn,
        feedback_band=feedback_band,
        feedback_config_id=config_id,
        cloudwatch_namespace=namespace,
        problems=problems,
        readings_stream=stream,
        readings_bucket=environ.get("READINGS_BUCKET") or None,
        readings_dir=environ.get("READINGS_DIR") or _default_readings_dir(environ),
        readings_prefix=environ.get("READINGS_PREFIX") or DEFAULT_READINGS_PREFIX,
    )
