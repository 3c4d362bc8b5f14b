"""simcore.template.loader: fixture groups load into the Group the template describes, parameters and all."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from simcore.errors import TemplateError
from simcore.group import CLOUD, SHADOW_SERVICE
from simcore.template.loader import load_group, load_parameters, resolve_template

FIXTURES = Path(__file__).parent / "fixtures" / "templates"
SAM_GROUP = FIXTURES / "sam_group.yaml"
PLAIN_GROUP = FIXTURES / "plain_group.yaml"
SENSOR_ALIAS = "arn:aws:lambda:us-east-1:123456789012:function:rain-edge-sensor-to-shadow:live"


@pytest.fixture(scope="module")
def sam_group():
    return load_group(SAM_GROUP)


def test_sam_function_named_by_alias_gets_the_alias_arn(sam_group):
    sensor = sam_group.function(SENSOR_ALIAS)
    assert sensor.id == "sensor-to-shadow"
    assert sensor.name == "rain-edge-sensor-to-shadow"
    assert sensor.code_dir == (FIXTURES / "lambdas" / "sensor").resolve()
    assert sensor.handler == "sensor.handler.function_handler"


def test_function_without_function_name_gets_a_cloudformation_style_name(sam_group):
    inference = next(function for function in sam_group.functions if function.id == "rain-inference")
    assert re.fullmatch(r"rain-edge-RainInferenceFunction-[A-Z2-7]{12}", inference.name)
    assert inference.arn == f"arn:aws:lambda:us-east-1:123456789012:function:{inference.name}:live"


def test_sam_globals_fill_in_what_the_function_leaves_out(sam_group):
    by_id = {function.id: function for function in sam_group.functions}
    assert by_id["sensor-to-shadow"].runtime == "python3.8"  # from Globals
    assert by_id["rain-inference"].runtime == "python3.7"  # the function's own wins


def test_function_configuration_is_resolved(sam_group):
    sensor = sam_group.function(SENSOR_ALIAS)
    assert sensor.pinned is True
    assert sensor.memory_kb == 32768  # Fn::FindInMap
    assert sensor.timeout_s == 10
    assert sensor.access_sysfs is True
    assert sensor.resource_access[0].resource_id == "sensor-i2c"
    assert sensor.resource_access[0].permission == "rw"


def test_environment_values_are_strings(sam_group):
    environment = sam_group.function(SENSOR_ALIAS).environment
    assert environment == {
        "THING_NAME": "rain-core",
        "SENSOR_SOURCE": "bme680",
        "READ_INTERVAL_S": "5",  # a Number parameter
        "I2C_BUS": "1",  # Fn::Select of Fn::Split
        "VERBOSE": "true",  # a YAML boolean, written as CloudFormation writes it
    }
    inference = next(function for function in sam_group.functions if function.id == "rain-inference")
    assert inference.environment["FEEDBACK_TOPIC"] == "rain/rain-core/feedback"  # Fn::Join


def test_core_thing_comes_from_the_thing_resource(sam_group):
    core = sam_group.core
    assert core.thing_name == "rain-core"
    assert core.thing_arn == "arn:aws:iot:us-east-1:123456789012:thing/rain-core"
    assert re.fullmatch(r"arn:aws:iot:us-east-1:123456789012:cert/[0-9a-f]{64}", core.certificate_arn)
    assert core.sync_shadow is True


def test_devices_are_read_with_string_booleans(sam_group):
    (device,) = sam_group.devices
    assert device.thing_name == "rain-core-remote"
    assert device.sync_shadow is False


def test_subscriptions_use_the_group_arns(sam_group):
    by_id = {subscription.id: subscription for subscription in sam_group.subscriptions}
    delta = by_id["shadow-delta-to-sensor"]
    assert (delta.source, delta.subject, delta.target) == (
        SHADOW_SERVICE,
        "$aws/things/rain-core/shadow/update/delta",
        SENSOR_ALIAS,
    )
    assert by_id["cloud-to-inference"].source == CLOUD
    assert by_id["inference-to-metrics"].target.endswith("/connectors/CloudWatchMetrics/versions/4")
    assert by_id["remote-to-cloud"].source == sam_group.devices[0].thing_arn


def test_loggers_and_connectors(sam_group):
    assert [(logger.id, logger.type, logger.space_kb) for logger in sam_group.loggers] == [
        ("system", "FileSystem", 128),
        ("lambda", "AWSCloudWatch", None),
    ]
    (connector,) = sam_group.connectors
    assert connector.name == "CloudWatchMetrics"
    assert connector.parameters == {"PublishInterval": "10", "PublishRegion": "us-east-1", "MemorySize": "65536",
                                    "MaxMetricsToRetain": "5000"}


def test_local_model_path_is_made_absolute_against_the_template(sam_group):
    model = sam_group.resource("rain-model")
    assert model.kind == "ml_s3"
    assert model.source == str((FIXTURES / "models" / "tiny.tar.gz").resolve())
    assert model.destination_path == "/ml/rain"
    device = sam_group.resource("sensor-i2c")
    assert (device.kind, device.source, device.auto_add_group_owner) == ("local_device", "/dev/i2c-1", True)


def test_condition_switches_the_model_to_sagemaker():
    job = "arn:aws:sagemaker:us-east-1:123456789012:training-job/rain"
    model = load_group(SAM_GROUP, {"ModelSageMakerJobArn": job}).resource("rain-model")
    assert (model.kind, model.source) == ("ml_sagemaker", job)


def test_parameters_change_what_refers_to_them():
    group = load_group(SAM_GROUP, {"ThingName": "garden", "SensorDevicePath": "/dev/i2c-7"})
    assert group.name == "garden-group"
    assert group.core.thing_name == "garden"
    assert group.function(SENSOR_ALIAS).environment["I2C_BUS"] == "7"


def test_region_account_and_stack_name_flow_into_arns():
    group = load_group(SAM_GROUP, region="eu-west-1", account_id="210987654321", stack_name="garden")
    (sensor,) = [function for function in group.functions if function.id == "sensor-to-shadow"]
    assert sensor.arn == "arn:aws:lambda:eu-west-1:210987654321:function:garden-sensor-to-shadow:live"
    assert group.core.thing_arn == "arn:aws:iot:eu-west-1:210987654321:thing/rain-core"
    assert (group.region, group.account_id) == ("eu-west-1", "210987654321")


def test_invented_ids_are_deterministic():
    assert load_group(SAM_GROUP) == load_group(SAM_GROUP)
    other_stack = load_group(SAM_GROUP, stack_name="elsewhere")
    assert other_stack.core.certificate_arn != load_group(SAM_GROUP).core.certificate_arn


def test_plain_lambda_alias_and_version_resolve_to_qualified_arns():
    group = load_group(PLAIN_GROUP, {"ThingName": "plain-thing"})
    by_id = {function.id: function for function in group.functions}
    name = by_id["worker-alias"].name
    assert by_id["worker-alias"].arn.endswith(f":function:{name}:prod")
    assert by_id["worker-version"].arn.endswith(f":function:{name}:1")
    assert by_id["worker-alias"].code_dir == by_id["worker-version"].code_dir


def test_default_config_isolation_and_run_as_apply_unless_the_function_overrides():
    group = load_group(PLAIN_GROUP, {"ThingName": "plain-thing"})
    by_id = {function.id: function for function in group.functions}
    assert group.default_isolation_mode == "NoContainer"
    worker = by_id["worker-alias"]
    assert (worker.isolation_mode, worker.memory_kb, worker.run_as_uid, worker.run_as_gid) == (
        "NoContainer",
        None,
        1000,
        1000,
    )
    assert (worker.encoding_type, worker.exec_args, worker.timeout_s) == ("binary", "-u", 7)
    assert by_id["worker-version"].isolation_mode == "GreengrassContainer"
    assert by_id["worker-version"].memory_kb == 16384


def test_plain_group_intrinsics():
    environment = load_group(PLAIN_GROUP, {"ThingName": "plain-thing"}).functions[0].environment
    assert environment == {"SUBNET": "c", "B64": "aGVsbG8=", "ZONE": "us-east-1a"}


def test_group_version_resource_links_definition_version_resources():
    group = load_group(PLAIN_GROUP, {"ThingName": "plain-thing"})
    assert group.core.thing_name == "plain-thing"
    assert [resource.kind for resource in group.resources] == ["ml_s3", "local_volume", "secret"]
    model = group.resource("model")
    assert (model.group_owner, model.group_permission) == ("ggc_group", "ro")
    assert group.resource("token").source.startswith("arn:aws:secretsmanager:us-east-1:123456789012:secret:")
    assert group.loggers == ()  # the logger definition's Condition is false by default


def test_conditional_link_appears_when_its_condition_holds():
    group = load_group(PLAIN_GROUP, {"ThingName": "plain-thing", "WithDebugLogger": "yes"})
    assert [logger.level for logger in group.loggers] == ["DEBUG"]


def test_required_parameter_without_value_is_named():
    with pytest.raises(TemplateError, match=r"Parameters: \[ThingName\] must have values"):
        load_group(PLAIN_GROUP)


def test_parameters_file_in_aws_cli_form(tmp_path):
    path = tmp_path / "parameters.json"
    path.write_text(json.dumps([{"ParameterKey": "ThingName", "ParameterValue": "from-file"}]))
    assert load_parameters(path) == {"ThingName": "from-file"}
    assert load_group(SAM_GROUP, load_parameters(path)).core.thing_name == "from-file"


def test_parameters_file_as_a_map_with_numbers_and_lists(tmp_path):
    path = tmp_path / "parameters.json"
    path.write_text(json.dumps({"ReadIntervalSeconds": 30, "Subnets": ["x", "y"]}))
    assert load_parameters(path) == {"ReadIntervalSeconds": "30", "Subnets": "x,y"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "parameters file is not JSON"),
        ('[{"ParameterKey": "A"}]', "each entry must be {ParameterKey, ParameterValue}"),
        ('"text"', "a parameters file holds a list"),
        ('{"A": {"nested": 1}}', "a parameter value must be a string, number or list"),
    ],
)
def test_bad_parameters_file_is_refused(tmp_path, content, message):
    path = tmp_path / "parameters.json"
    path.write_text(content)
    with pytest.raises(TemplateError, match=re.escape(message)):
        load_parameters(path)


def test_missing_parameters_file_is_named(tmp_path):
    with pytest.raises(TemplateError, match="cannot read parameters file") as raised:
        load_parameters(tmp_path / "absent.json")
    assert raised.value.location == str(tmp_path / "absent.json")


def test_missing_template_is_named(tmp_path):
    with pytest.raises(TemplateError, match="cannot read template"):
        load_group(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("keyword", "value", "message"),
    [
        ("stack_name", "9lives", "must start with a letter"),
        ("account_id", "12345", "must be 12 digits"),
        ("region", "mars", "is not a region name"),
    ],
)
def test_bad_deployment_identity_is_refused(keyword, value, message):
    with pytest.raises(TemplateError, match=message):
        load_group(SAM_GROUP, **{keyword: value})


def test_template_without_a_group_is_refused(tmp_path):
    path = tmp_path / "no_group.yaml"
    path.write_text("Resources:\n  Thing:\n    Type: AWS::IoT::Thing\n")
    with pytest.raises(TemplateError, match="must create exactly one AWS::Greengrass::Group, it creates 0"):
        load_group(path)


def test_resolve_template_keeps_effective_parameters():
    loaded = resolve_template(SAM_GROUP, {"ThingName": "kept"})
    assert loaded.parameters["ThingName"] == "kept"
    assert loaded.parameters["ReadIntervalSeconds"] == "5"  # the default


def test_sub_resolves_sam_alias_references_like_ref(tmp_path):
    work = tmp_path / "work"
    shutil.copytree(FIXTURES, work)
    template = SAM_GROUP.read_text().replace(
        "Target: !Ref SensorToShadowFunction.Alias",
        'Target: !Sub "${SensorToShadowFunction.Alias}"',
    )
    (work / "sam_group.yaml").write_text(template)
    group = load_group(work / "sam_group.yaml")
    assert group.subscriptions[0].target == SENSOR_ALIAS
