"""The group template says what docs/architecture.md's contract says, and is least-privilege where it grants.

Read with cfn-lint's own YAML decoder (short-form tags included); intrinsic functions stay as written,
so the tests compare the template's text of each reference, not a resolved guess.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

from simcore.errors import TemplateError

TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "cloudformation" / "greengrass-group.yaml"
TEMPLATE = cfn_yaml.load(str(TEMPLATE_PATH))
RESOURCES = TEMPLATE["Resources"]
PARAMETERS = TEMPLATE["Parameters"]
SENSOR = {"Ref": "SensorToShadowFunction.Alias"}
READING_TO_SHADOW = {"Ref": "ReadingToShadowFunction.Alias"}
SENSOR_DEVICE = {"Fn::Sub": "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:thing/${SensorDeviceName}"}
NO_VALUE = {"Ref": "AWS::NoValue"}
INFERENCE = {"Ref": "RainInferenceFunction.Alias"}
CLOUDWATCH = {"Fn::Sub": "arn:${AWS::Partition}:greengrass:${AWS::Region}::/connectors/CloudWatchMetrics/versions/4"}
ML_FEEDBACK = {"Fn::Sub": "arn:${AWS::Partition}:greengrass:${AWS::Region}::/connectors/MLFeedback/versions/1"}


def plain(value: Any) -> Any:
    """cfn-lint's decoded nodes as plain dicts, lists and strings (they compare and hash like them)."""
    return json.loads(json.dumps(value))


def version(logical_id: str) -> dict:
    return plain(RESOURCES[logical_id]["Properties"]["InitialVersion"])


def entries(items: list) -> list[tuple[str | None, dict]]:
    """(condition, entry) for each entry of a definition list: `Fn::If [<cond>, entry, NoValue]` items unwrapped."""
    found = []
    for item in items:
        if "Fn::If" in item:
            condition, entry, otherwise = item["Fn::If"]
            assert otherwise == NO_VALUE, item
            found.append((condition, entry))
        else:
            found.append((None, item))
    return found


def functions() -> dict[str, dict]:
    return {entry["Id"]: entry for _condition, entry in entries(version("FunctionDefinition")["Functions"])}


def key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


# ------------------------------------------------------------------------------------------ parameters


def test_only_the_model_has_no_default_so_simcore_deploys_with_it_alone() -> None:
    for name in ("ThingName", "ModelS3Uri", "ModelSageMakerJobArn", "SensorDevicePath", "SensorSource",
                 "ReplaySpeed", "ReadIntervalSeconds", "MetricsIntervalSeconds"):
        assert name in PARAMETERS, name
    assert [name for name, body in PARAMETERS.items() if "Default" not in body] == ["ModelS3Uri"]


@pytest.mark.parametrize(("parameter", "accepted", "refused"), [
    ("SensorSource", ["bme680", "replay:JFK", "replay:LGA:2013-01-01:2013-03-31"],
     ["", "bme", "replay:", "replay:JFK:2013-01-01", "replay:JFK:13-1-1:13-2-1"]),
    ("SensorDevicePath", ["/dev/i2c-1", "/dev/i2c-22"], ["/dev/i2c", "/dev/spidev0.0", "1"]),
    ("ThingName", ["RainEdgeCore", "core_1-a"], ["", "a/b", "a+b", "x" * 65]),
    ("ModelSageMakerJobArn", ["", "arn:aws:sagemaker:eu-west-1:123456789012:training-job/rain-2026"],
     ["arn:aws:sagemaker:eu-west-1:123456789012:model/rain", "rain-2026"]),
])
def test_parameter_patterns_accept_and_refuse(parameter: str, accepted: list[str], refused: list[str]) -> None:
    pattern = re.compile(PARAMETERS[parameter]["AllowedPattern"])
    assert [value for value in accepted if not pattern.fullmatch(value)] == []
    assert [value for value in refused if pattern.fullmatch(value)] == []


# ------------------------------------------------------------------------------------------ the Lambdas


@pytest.mark.parametrize(("logical_id", "folder", "name"), [
    ("SensorToShadowFunction", "sensor_to_shadow", "SensorToShadow"),
    ("RainInferenceFunction", "rain_inference", "RainInference"),
])
def test_functions_are_sam_functions_as_the_contract_says(logical_id: str, folder: str, name: str) -> None:
    assert TEMPLATE["Transform"] == "AWS::Serverless-2016-10-31"
    resource = plain(RESOURCES[logical_id])
    assert resource["Type"] == "AWS::Serverless::Function"
    properties = resource["Properties"]
    assert properties["CodeUri"] == f"../lambdas/{folder}"
    assert (TEMPLATE_PATH.parent / properties["CodeUri"] / folder).is_dir()
    assert properties["Handler"] == f"{folder}.handler.function_handler"
    assert (properties["Runtime"], properties["AutoPublishAlias"]) == ("python3.8", "live")
    assert properties["FunctionName"] == {"Fn::Sub": "${AWS::StackName}-" + name}


def test_function_configuration_pins_limits_and_grants_each_its_resource() -> None:
    sensor, inference = functions()["SensorToShadow"], functions()["RainInference"]
    assert (sensor["FunctionArn"], inference["FunctionArn"]) == (SENSOR, INFERENCE)
    for entry in (sensor, inference):
        configuration = entry["FunctionConfiguration"]
        assert configuration["Pinned"] is True
        assert configuration["EncodingType"] == "json"
        assert configuration["Environment"]["Execution"] == {"IsolationMode": "GreengrassContainer"}
        assert 0 < configuration["Timeout"] <= 60
    # ~3x the RSS measured under Python 3.8 (sensor ~40 MiB, inference with NumPy ~60 MiB).
    assert sensor["FunctionConfiguration"]["MemorySize"] == 131072
    assert inference["FunctionConfiguration"]["MemorySize"] == 196608
    assert sensor["FunctionConfiguration"]["Environment"]["ResourceAccessPolicies"] == [
        {"ResourceId": "SensorI2C", "Permission": "rw"}]
    assert inference["FunctionConfiguration"]["Environment"]["ResourceAccessPolicies"] == [
        {"ResourceId": "RainModel", "Permission": "ro"}]


def test_function_environments_hold_the_contract_variables() -> None:
    sensor = functions()["SensorToShadow"]["FunctionConfiguration"]["Environment"]["Variables"]
    inference = functions()["RainInference"]["FunctionConfiguration"]["Environment"]["Variables"]
    assert set(sensor) == {"THING_NAME", "SENSOR_SOURCE", "REPLAY_SPEED", "READ_INTERVAL_S", "I2C_BUS"}
    assert sensor["THING_NAME"] == {"Ref": "ThingName"}
    assert {"THING_NAME", "MODEL_DIR", "METRICS_INTERVAL_S"} <= set(inference)
    assert inference["MODEL_DIR"] == "/ml/rain"
    # The ML Feedback connector is invoked through IPC, not fed over MQTT: an ARN, no topic.
    assert "FEEDBACK_TOPIC" not in inference
    assert inference["FEEDBACK_CONNECTOR_ARN"] == {
        "Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:aws:function:MLFeedback"}
    feedback_map = json.loads(version("ConnectorDefinition")["Connectors"][1]["Parameters"]
                              ["FeedbackConfigurationMap"]["Fn::Sub"].replace("${FeedbackBucket}", "b")
                              .replace("${ThingName}", "t"))
    assert list(feedback_map) == [inference["FEEDBACK_CONFIG_ID"]]


# ------------------------------------------------------------------------------------------ the group


def test_subscriptions_are_exactly_the_routes_the_lambdas_use() -> None:
    shadow = "$aws/things/${ThingName}/shadow/update/"
    expected = [
        ("SensorIsLambda", "GGShadowService", {"Fn::Sub": shadow + "delta"}, SENSOR),
        ("SensorIsLambda", "GGShadowService", {"Fn::Sub": shadow + "rejected"}, SENSOR),
        (None, "GGShadowService", {"Fn::Sub": shadow + "documents"}, INFERENCE),
        (None, INFERENCE, {"Fn::Sub": "rain/${ThingName}/inference/output"}, "cloud"),
        (None, INFERENCE, {"Fn::Sub": "rain/${ThingName}/model/metrics"}, "cloud"),
        (None, INFERENCE, {"Fn::Sub": "rain/${ThingName}/command/output"}, "cloud"),
        (None, "cloud", {"Fn::Sub": "rain/${ThingName}/command/input"}, INFERENCE),
        (None, INFERENCE, "cloudwatch/metric/put", CLOUDWATCH),
        # SensorMode device: the device's readings to ReadingToShadow; what the sensor Lambda hears, to it.
        ("SensorIsDevice", SENSOR_DEVICE, {"Fn::Sub": "rain/${ThingName}/sensor/reading"}, READING_TO_SHADOW),
        ("SensorIsDevice", SENSOR_DEVICE, {"Fn::Sub": "$aws/things/${ThingName}/shadow/get"}, "GGShadowService"),
        ("SensorIsDevice", "GGShadowService", {"Fn::Sub": "$aws/things/${ThingName}/shadow/get/+"}, SENSOR_DEVICE),
        ("SensorIsDevice", "GGShadowService", {"Fn::Sub": shadow + "delta"}, SENSOR_DEVICE),
        ("SensorIsDevice", "GGShadowService", {"Fn::Sub": shadow + "rejected"}, SENSOR_DEVICE),
    ]
    subscriptions = entries(version("SubscriptionDefinition")["Subscriptions"])
    found = [(str(c), key(s["Source"]), key(s["Subject"]), key(s["Target"])) for c, s in subscriptions]
    assert sorted(found) == sorted((str(c), key(a), key(b), key(d)) for c, a, b, d in expected)
    assert len({s["Id"] for _c, s in subscriptions}) == len(subscriptions)


def test_every_subscription_end_is_a_function_connector_the_cloud_or_the_shadow_service() -> None:
    ends = {key(entry["FunctionArn"]) for entry in functions().values()}
    ends |= {key(entry["ConnectorArn"]) for entry in version("ConnectorDefinition")["Connectors"]}
    ends |= {key("cloud"), key("GGShadowService"), key(SENSOR_DEVICE)}
    for _condition, subscription in entries(version("SubscriptionDefinition")["Subscriptions"]):
        assert key(subscription["Source"]) in ends, subscription["Id"]
        assert key(subscription["Target"]) in ends, subscription["Id"]


def test_simcore_loads_the_group_and_every_subscription_resolves_within_it() -> None:
    from simcore.template.loader import load_group

    group = load_group(TEMPLATE_PATH, {"ModelS3Uri": "s3://rain-artifacts/rain-model.tar.gz"})
    ends = {function.arn for function in group.functions} | {c.arn for c in group.connectors}
    ends |= {"cloud", "GGShadowService"}
    assert len(group.subscriptions) == 8
    for subscription in group.subscriptions:
        assert {subscription.source, subscription.target} <= ends, subscription
    assert group.core.sync_shadow is True
    assert {r.id: r.kind for r in group.resources} == {"RainModel": "ml_s3", "SensorI2C": "local_device"}
    # The certificate custom resource's Ref (its certificate id in AWS) makes a well-formed certificate ARN.
    assert re.fullmatch(r"arn:aws:iot:us-east-1:123456789012:cert/[0-9a-f]{64}", group.core.certificate_arn)


def test_simcore_refuses_the_group_when_the_greengrass_service_is_discontinued() -> None:
    from simcore.template.loader import load_group

    with pytest.raises(TemplateError, match="GreengrassServiceAvailable"):
        load_group(TEMPLATE_PATH, {"ModelS3Uri": "s3://b/k", "GreengrassV1Service": "discontinued"})


def test_core_syncs_its_shadow_and_resources_are_owned_as_v1_requires() -> None:
    (core,) = version("CoreDefinition")["Cores"]
    assert core["SyncShadow"] is True
    rain_model, sensor_i2c = version("ResourceDefinition")["Resources"]
    s3_branch, sagemaker_branch = rain_model["ResourceDataContainer"]["Fn::If"][2], \
        rain_model["ResourceDataContainer"]["Fn::If"][1]
    for data in (s3_branch["S3MachineLearningModelResourceData"],
                 sagemaker_branch["SageMakerMachineLearningModelResourceData"]):
        assert data["DestinationPath"] == "/ml/rain"
        assert data["OwnerSetting"] == {"GroupOwner": "ggc_group", "GroupPermission": "ro"}
    assert rain_model["ResourceDataContainer"]["Fn::If"][0] == "UseSageMakerModel"
    assert sensor_i2c["ResourceDataContainer"]["LocalDeviceResourceData"] == {
        "SourcePath": {"Ref": "SensorDevicePath"}, "GroupOwnerSetting": {"AutoAddGroupOwner": True}}


def test_loggers_cover_system_and_lambdas_on_disk_and_in_cloudwatch() -> None:
    loggers = {(entry["Type"], entry["Component"]) for entry in version("LoggerDefinition")["Loggers"]}
    assert loggers == {(kind, component) for kind in ("FileSystem", "AWSCloudWatch")
                       for component in ("GreengrassSystem", "Lambda")}


def test_connectors_are_configured_with_their_documented_parameters() -> None:
    cloudwatch, feedback = version("ConnectorDefinition")["Connectors"]
    assert cloudwatch["ConnectorArn"] == CLOUDWATCH
    assert set(cloudwatch["Parameters"]) == {"PublishInterval", "MemorySize", "MaxMetricsToRetain", "IsolationMode"}
    assert int(cloudwatch["Parameters"]["MaxMetricsToRetain"]) >= 2000
    assert feedback["ConnectorArn"] == ML_FEEDBACK
    configuration = json.loads(feedback["Parameters"]["FeedbackConfigurationMap"]["Fn::Sub"]
                               .replace("${FeedbackBucket}", "bucket").replace("${ThingName}", "RainEdgeCore"))
    (config_id, body), = configuration.items()
    assert re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9-]{1,62}", config_id)
    assert body == {"s3-bucket-name": "bucket", "s3-prefix": "RainEdgeCore",
                    "content-type": "application/json", "file-ext": "json"}


def test_group_links_every_definition_and_the_role() -> None:
    properties = plain(RESOURCES["Group"]["Properties"])
    assert properties["RoleArn"] == {"Fn::GetAtt": ["GroupRole", "Arn"]}
    links = dict(properties["InitialVersion"])
    # The device definition only with SensorMode device.
    assert links.pop("DeviceDefinitionVersionArn") == {"Fn::If": [
        "SensorIsDevice", {"Fn::GetAtt": ["DeviceDefinition", "LatestVersionArn"]}, NO_VALUE]}
    linked = {name: value["Fn::GetAtt"][0] for name, value in links.items()}
    assert linked == {f"{kind}DefinitionVersionArn": f"{kind}Definition"
                      for kind in ("Core", "Function", "Resource", "Subscription", "Logger", "Connector")}
    assert plain(RESOURCES["DeploymentReset"]["Properties"]["GroupId"]) == {"Fn::GetAtt": ["Group", "Id"]}


# ------------------------------------------------------------------------------------------ least privilege


def statements(policy_document: dict) -> list[dict]:
    return plain(policy_document)["Statement"]


def test_iot_policy_is_scoped_to_the_thing_without_wildcard_actions() -> None:
    # Statements only the Greengrass service uses are `Fn::If [GreengrassServiceAvailable, statement, NoValue]`.
    policy = []
    for statement in statements(RESOURCES["CorePolicy"]["Properties"]["PolicyDocument"]):
        if "Fn::If" in statement:
            condition, statement, otherwise = statement["Fn::If"]
            assert (condition, otherwise) == ("GreengrassServiceAvailable", {"Ref": "AWS::NoValue"})
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert all(action.startswith("greengrass:") for action in actions), actions
        policy.append(statement)
    for statement in policy:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not any(action.endswith("*") for action in actions), statement["Sid"]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if resources == ["*"]:
            # The only two Greengrass actions that take no resource.
            assert sorted(actions) == ["greengrass:AssumeRoleForGroup", "greengrass:CreateCertificate"]
            continue
        for resource in resources:
            text = resource["Fn::Sub"]
            assert "${ThingName}" in text or "${Group.Id}" in text, text
    connect = next(s for s in policy if s["Action"] == "iot:Connect")
    assert connect["Condition"] == {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}


def test_group_role_grants_only_what_the_connectors_and_the_model_resource_need() -> None:
    role = plain(RESOURCES["GroupRole"]["Properties"])
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "greengrass.amazonaws.com"}
    granted = {}
    for policy in role["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            granted[actions if isinstance(actions, str) else tuple(actions)] = statement
    stream_manager_upload = ("s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts")
    assert set(granted) == {"cloudwatch:PutMetricData", "s3:PutObject", "s3:GetObject", stream_manager_upload}
    assert granted[stream_manager_upload]["Resource"] == {"Fn::Sub": "${ReadingsBucket.Arn}/readings/*"}
    assert granted["cloudwatch:PutMetricData"]["Condition"]["StringEquals"]["cloudwatch:namespace"] == [
        {"Ref": "CloudWatchNamespace"}, "GreengrassFeedbackConnector"]
    assert granted["s3:PutObject"]["Resource"] == {"Fn::Sub": "${FeedbackBucket.Arn}/${ThingName}/*"}


def test_the_core_certificate_assumes_the_group_role_through_its_role_alias() -> None:
    alias = plain(RESOURCES["GroupRoleAlias"])
    assert alias["Type"] == "AWS::IoT::RoleAlias"
    assert alias["Properties"]["RoleArn"] == {"Fn::GetAtt": ["GroupRole", "Arn"]}
    assert alias["Properties"]["RoleAlias"] == {"Fn::Sub": "${ThingName}-GroupRoleAlias"}
    assert 900 <= alias["Properties"]["CredentialDurationSeconds"] <= 43200
    trusted = [statement["Principal"] for statement in
               plain(RESOURCES["GroupRole"]["Properties"]["AssumeRolePolicyDocument"])["Statement"]]
    assert {"Service": "credentials.iot.amazonaws.com"} in trusted
    assume = next(statement for statement in statements(RESOURCES["CorePolicy"]["Properties"]["PolicyDocument"])
                  if statement.get("Action") == "iot:AssumeRoleWithCertificate")
    assert assume["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:rolealias/${ThingName}-GroupRoleAlias"}
    assert TEMPLATE["Outputs"]["RoleAlias"]["Value"] == {"Ref": "GroupRoleAlias"}


def test_feedback_bucket_is_private_encrypted_versioned_and_logged() -> None:
    bucket = plain(RESOURCES["FeedbackBucket"]["Properties"])
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": "FeedbackAccessLogsBucket"}


def test_the_private_key_never_leaves_its_secret_through_the_stack() -> None:
    outputs = json.dumps(plain(TEMPLATE["Outputs"]))
    assert "PrivateKey\"" not in outputs and "resolve:secretsmanager" not in outputs
    assert plain(TEMPLATE["Outputs"]["PrivateKeySecretArn"]["Value"]) == {"Ref": "CorePrivateKeySecret"}
    secret = plain(RESOURCES["CorePrivateKeySecret"]["Properties"])
    assert secret["KmsKeyId"] == {"Ref": "PrivateKeyEncryptionKey"}
    assert "SecretString" not in secret and "GenerateSecretString" not in secret
    certificate = plain(RESOURCES["ThingCertificate"]["Properties"])
    assert certificate["PrivateKeySecretId"] == {"Ref": "CorePrivateKeySecret"}


def test_outputs_give_config_thing_certificate_secret_and_deploy_command() -> None:
    assert {"ConfigJson", "ThingArn", "CertificateArn", "CertificateId", "PrivateKeySecretArn",
            "IotDataEndpoint", "DeployCommand", "GroupId"} <= set(TEMPLATE["Outputs"])
    command, variables = plain(TEMPLATE["Outputs"]["DeployCommand"]["Value"])["Fn::Sub"]
    assert command.startswith("aws greengrass create-deployment ")
    assert "--group-id ${Group.Id}" in command and "--group-version-id ${VersionId}" in command
    # LatestVersionArn is arn:...:/greengrass/groups/<group id>/versions/<version id>: the id is part 5.
    assert variables["VersionId"]["Fn::Select"][0] == 5
    arn = "arn:aws:greengrass:us-east-1:123456789012:/greengrass/groups/g-1/versions/v-7"
    assert arn.split("/")[5] == "v-7"


def test_without_the_greengrass_service_only_the_iot_core_parts_remain() -> None:
    """GreengrassV1Service=discontinued deploys what AWS still runs: identity, key, feedback and readings buckets."""
    assert PARAMETERS["GreengrassV1Service"]["Default"] == "available"
    unconditional = {logical_id for logical_id, body in RESOURCES.items() if "Condition" not in body}
    assert unconditional == {
        "CoreThing", "CorePolicy", "CorePolicyAttachment", "ThingCertificate", "ThingCertificateFunction",
        "ThingCertificateFunctionRole", "PrivateKeyEncryptionKey", "CorePrivateKeySecret", "FeedbackBucket",
        "FeedbackBucketPolicy", "FeedbackAccessLogsBucket", "FeedbackAccessLogsBucketPolicy", "ReadingsBucket",
        "ReadingsBucketPolicy",
        # The IoT credentials provider outlived v1: the group role and its alias stay (docs/credentials.md).
        "GroupRole", "GroupRoleAlias"}
    # SensorIsLambda and SensorIsDevice each hold only with GreengrassServiceAvailable.
    for name in ("SensorIsLambda", "SensorIsDevice"):
        assert plain(TEMPLATE["Conditions"][name])["Fn::And"][0] == {"Condition": "GreengrassServiceAvailable"}
    sensor_mode = {"SensorToShadowFunction": "SensorIsLambda", "ReadingToShadowFunction": "SensorIsDevice",
                   "DeviceDefinition": "SensorIsDevice", "SensorDeviceThing": "SensorIsDevice"}
    for logical_id, body in RESOURCES.items():
        if logical_id in sensor_mode:
            assert body["Condition"] == sensor_mode[logical_id], logical_id
        elif body["Type"].startswith("AWS::Greengrass::") or logical_id.startswith("DeploymentReset"):
            assert body["Condition"] == "GreengrassServiceAvailable", logical_id
