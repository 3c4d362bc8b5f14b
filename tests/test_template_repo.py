"""The project's own group template (cloudformation/greengrass-group.yaml) loads into the group the
architecture describes: two pinned Lambdas by their `live` alias, the model and the I2C bus, every route."""

from __future__ import annotations

from pathlib import Path

import pytest

from simcore.errors import TemplateError
from simcore.group import CLOUD, SHADOW_SERVICE
from simcore.template.loader import load_group

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "cloudformation" / "greengrass-group.yaml"
PARAMETERS = {"ModelS3Uri": "s3://greengrass-rain-models/rain-model.tar.gz", "ThingName": "garden"}
PREFIX = "arn:aws:lambda:us-east-1:123456789012:function:"


@pytest.fixture(scope="module")
def group():
    return load_group(TEMPLATE, PARAMETERS, stack_name="rain-edge")


def _by_handler(group, handler_prefix):
    (function,) = [function for function in group.functions if function.handler.startswith(handler_prefix)]
    return function


def test_both_lambdas_run_by_their_live_alias(group):
    sensor = _by_handler(group, "sensor_to_shadow.")
    inference = _by_handler(group, "rain_inference.")
    for function, folder in ((sensor, "sensor_to_shadow"), (inference, "rain_inference")):
        assert function.arn == f"{PREFIX}{function.name}:live"
        assert function.name.startswith("rain-edge-")
        assert function.code_dir == REPO / "lambdas" / folder
        assert function.handler == f"{folder}.handler.function_handler"
        assert (function.code_dir / folder / "handler.py").is_file()
        assert function.runtime == "python3.8"
        assert function.pinned is True


def test_resources_and_who_may_use_them(group):
    model = group.resource(_resource_id(group, "ml_s3"))
    assert model.destination_path == "/ml/rain"
    assert model.source == PARAMETERS["ModelS3Uri"]
    device = group.resource(_resource_id(group, "local_device"))
    assert device.source == "/dev/i2c-1"
    sensor = _by_handler(group, "sensor_to_shadow.")
    inference = _by_handler(group, "rain_inference.")
    assert (device.id, "rw") in {(access.resource_id, access.permission) for access in sensor.resource_access}
    assert (model.id, "ro") in {(access.resource_id, access.permission) for access in inference.resource_access}


def _resource_id(group, kind):
    (resource,) = [resource for resource in group.resources if resource.kind == kind]
    return resource.id


def test_environment_follows_the_contract(group):
    sensor = _by_handler(group, "sensor_to_shadow.").environment
    assert sensor["THING_NAME"] == "garden"
    assert sensor["SENSOR_SOURCE"] == "bme680"
    assert sensor["I2C_BUS"] == "1"
    assert {"REPLAY_SPEED", "READ_INTERVAL_S"} <= set(sensor)
    inference = _by_handler(group, "rain_inference.").environment
    assert inference["THING_NAME"] == "garden"
    assert inference["MODEL_DIR"] == "/ml/rain"
    assert "METRICS_INTERVAL_S" in inference


def test_every_route_the_lambdas_use_is_subscribed(group):
    sensor = _by_handler(group, "sensor_to_shadow.").arn
    inference = _by_handler(group, "rain_inference.").arn
    routes = {(subscription.source, subscription.subject, subscription.target) for subscription in group.subscriptions}
    shadow = "$aws/things/garden/shadow"
    assert {
        (SHADOW_SERVICE, f"{shadow}/update/delta", sensor),
        (SHADOW_SERVICE, f"{shadow}/update/rejected", sensor),
        (SHADOW_SERVICE, f"{shadow}/update/documents", inference),
        (inference, "rain/garden/inference/output", CLOUD),
        (inference, "rain/garden/model/metrics", CLOUD),
        (inference, "rain/garden/command/output", CLOUD),
        (CLOUD, "rain/garden/command/input", inference),
    } <= routes
    cloudwatch = [connector for connector in group.connectors if connector.name == "CloudWatchMetrics"]
    assert cloudwatch, "the CloudWatchMetrics connector is in the group"
    assert (inference, "cloudwatch/metric/put", cloudwatch[0].arn) in routes


def test_core_syncs_its_shadow(group):
    assert group.core.thing_name == "garden"
    assert group.core.sync_shadow is True


def test_sagemaker_parameter_switches_the_model_resource():
    job = "arn:aws:sagemaker:us-east-1:123456789012:training-job/rain"
    group = load_group(TEMPLATE, {**PARAMETERS, "ModelSageMakerJobArn": job})
    (model,) = [resource for resource in group.resources if resource.kind.startswith("ml_")]
    assert (model.kind, model.source, model.destination_path) == ("ml_sagemaker", job, "/ml/rain")


def test_model_path_relative_to_the_template_is_accepted():
    group = load_group(TEMPLATE, {"ModelS3Uri": "../resources/rain_model/dist/rain-model.tar.gz"})
    (model,) = [resource for resource in group.resources if resource.kind == "ml_s3"]
    assert model.source == str(REPO / "resources" / "rain_model" / "dist" / "rain-model.tar.gz")


def test_template_requires_the_model_uri():
    with pytest.raises(TemplateError, match=r"Parameters: \[ModelS3Uri\] must have values"):
        load_group(TEMPLATE)
