"""`simcore export v2`: the requests validate with botocore's own greengrassv2 client (no network), the template with
cfn-lint, and what the export carries equals, field by field, what simcore runs from the v1 template.

The judges here are independent of the exporter: the written files are read back from disk, each request goes
through a real botocore client's parameter validation (a Stubber answers instead of the network), the template
through cfn-lint's own API, and the round trip compares against the `Group` simcore's template loader builds.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import botocore.session
import pytest
from botocore.exceptions import ParamValidationError
from botocore.stub import Stubber

from simcore.cli.main import main
from simcore.export.plan import ExportOptions, build_export, write_export
from simcore.export.validate import ExportValidationError, check, request_problems, template_problems
from simcore.group import CLOUD, SHADOW_SERVICE
from simcore.template.loader import load_group

REPO = Path(__file__).resolve().parents[1]
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rain-abcdef"
# The project's group and every group template among the test fixtures, with the parameters they need.
CASES = {
    "rain-group": (REPO / "cloudformation" / "greengrass-group.yaml", {"ModelS3Uri": "s3://rain-models/rain-model.tar.gz"}),
    "sam": (REPO / "tests" / "fixtures" / "templates" / "sam_group.yaml", {}),
    "sam-sagemaker": (REPO / "tests" / "fixtures" / "templates" / "sam_group.yaml",
                      {"ModelSageMakerJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/rain-1"}),
    "plain": (REPO / "tests" / "fixtures" / "templates" / "plain_group.yaml", {"ThingName": "plain-core"}),
    "secrets": (REPO / "tests" / "fixtures" / "secrets" / "secret_group.yaml",
                {"SecretArn": SECRET, "ExtraLabel": "beta"}),
    "identity": (REPO / "tests" / "fixtures" / "identity" / "identity_group.yaml", {"SecretArn": SECRET}),
    "cli": (REPO / "tests" / "fixtures" / "cli" / "group.yaml", {"ThingName": "cli-core"}),
    "parent-death": (REPO / "tests" / "fixtures" / "parent_death" / "group.yaml", {}),
    "corpus-base": (REPO / "tests" / "corpus" / "templates" / "valid_base.yaml", {}),
}
# What each operation answers, just enough for botocore to accept the stubbed reply.
STUB_RESPONSES = {
    "create_component_version": {"arn": "arn:aws:greengrass:us-east-1:123456789012:components:c:versions:1.0.0",
                                 "componentName": "c", "componentVersion": "1.0.0",
                                 "creationTimestamp": "2026-12-02T00:00:00Z",
                                 "status": {"componentState": "REQUESTED"}},
    "create_deployment": {"deploymentId": "d"},
    "batch_associate_client_device_with_core_device": {},
}


def export_files(case: str, out: Path, options: ExportOptions | None = None):
    """The export of one case, written to `out` without the exporter's own validation (the test judges it)."""
    template, parameters = CASES[case]
    group = load_group(template, parameters)
    export = build_export(group, template, parameters, options)
    write_export(export, out)
    return group, export


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def client_validates(operation: str, request: dict) -> None:
    """The request through a real greengrassv2 client: its own parameter validation, then a stubbed answer."""
    client = botocore.session.get_session().create_client(
        "greengrassv2", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    with Stubber(client) as stubber:
        stubber.add_response(operation, STUB_RESPONSES[operation], request)
        getattr(client, operation)(**request)
        stubber.assert_no_pending_responses()


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_written_request_passes_the_greengrassv2_clients_validation_and_the_template_lints_clean(case, tmp_path):
    _, export = export_files(case, tmp_path)
    component_files = sorted((tmp_path / "components").glob("*.json"))
    assert len(component_files) == len(export.lambda_requests) + len(export.models)
    for path in component_files:
        if path.name.endswith(".recipe.json"):
            recipe = read(path)
            assert recipe["ComponentName"] + ".recipe.json" == path.name
            client_validates("create_component_version", {"inlineRecipe": path.read_bytes()})
        else:
            request = read(path)
            assert request["lambdaFunction"]["componentName"] + ".json" == path.name
            client_validates("create_component_version", request)
    client_validates("create_deployment", read(tmp_path / "deployment.json"))
    if (tmp_path / "client-devices.json").exists():
        client_validates("batch_associate_client_device_with_core_device", read(tmp_path / "client-devices.json"))
    from cfnlint.api import ManualArgs, lint

    template_text = (tmp_path / "greengrass-v2.template.json").read_text(encoding="utf-8")
    findings = lint(template_text, config=ManualArgs(regions=["us-east-1"]))
    assert [f"{match.rule.id} {match.message}" for match in findings] == []
    template = json.loads(template_text)
    kinds = sorted(body["Type"] for body in template["Resources"].values())
    assert kinds == sorted(["AWS::GreengrassV2::ComponentVersion"] * len(component_files)
                           + ["AWS::GreengrassV2::Deployment"])


def test_a_client_refuses_what_the_model_forbids_so_the_validation_can_fail():
    with pytest.raises(ParamValidationError, match="targetArn"):
        client_validates("create_deployment", {"components": {}})


@pytest.mark.parametrize("request_, complaint", [
    ({"targetArn": "arn:aws:iot:us-east-1:123456789012:thing/t",
      "deploymentPolicies": {"failureHandlingPolicy": "RETRY"}}, "not one of ROLLBACK, DO_NOTHING"),
    ({"targetArn": "arn:aws:s3:::bucket"}, "does not match"),
    ({"targetArn": "arn:aws:iot:us-east-1:123456789012:thing/t", "deploymentName": "x" * 257}, "at most 256"),
    ({"deploymentName": "d"}, "targetArn"),
])
def test_the_models_enums_patterns_and_maxima_are_checked_beyond_botocores_client(request_, complaint):
    problems = request_problems("CreateDeployment", request_)
    assert any(complaint in problem for problem in problems), problems


def test_an_export_that_does_not_validate_is_refused_before_anything_is_written(tmp_path):
    _, export = export_files("rain-group", tmp_path / "first")
    requests = export.requests()
    requests["deployment.json"][1]["deploymentPolicies"]["failureHandlingPolicy"] = "RETRY"
    bad_template = json.dumps({"Resources": {"D": {"Type": "AWS::GreengrassV2::Deployment", "Properties": {}}}})
    assert template_problems(bad_template, "us-east-1")
    with pytest.raises(ExportValidationError, match="deployment.json.*RETRY.*template: E"):
        check(requests, bad_template, "us-east-1")


# -- round trip: what the export carries is what simcore runs ----------------------------------------------


def component_name(function, group) -> str:
    """The documented naming: the Lambda's name, or `<name>-<entry Id>` for a Lambda the group runs twice."""
    twice = sum(other.name == function.name for other in group.functions) > 1
    return f"{function.name}-{function.id}" if twice else function.name


def routes_from_files(out: Path, group) -> list[tuple[str, str, str]]:
    """(source, subject, target) of every route the written export carries, in v1's names."""
    component_arn = {}
    event_sources = []
    for function in group.functions:
        request = read(out / "components" / f"{component_name(function, group)}.json")["lambdaFunction"]
        if request:
            arn = function.arn
            assert request["lambdaArn"].rsplit(":", 1)[0] == arn.rsplit(":", 1)[0]
            component_arn[f"component:{request['componentName']}"] = arn
            for source in request["componentLambdaParameters"].get("eventSources", []):
                event_sources.append((arn, source["topic"], source["type"]))
    endpoints = {**component_arn, CLOUD: CLOUD}
    for connector in group.connectors:
        if connector.name == "CloudWatchMetrics":
            endpoints["component:aws.greengrass.Cloudwatch"] = connector.arn
    components = read(out / "deployment.json")["components"]

    def merge(name: str) -> dict:
        update = components.get(name, {}).get("configurationUpdate")
        return json.loads(update["merge"]) if update else {}

    carried = []
    router = merge("aws.greengrass.LegacySubscriptionRouter").get("subscriptions", {})
    for key, entry in router.items():
        assert entry["id"] == key
        carried.append((endpoints[entry["source"]], entry["subject"], endpoints[entry["target"]]))
    routed_to = {(target, subject) for _, subject, target in carried}
    for arn, topic, kind in event_sources:
        if kind == "IOT_CORE":
            carried.append((CLOUD, topic, arn))
        elif re.match(r"\$aws/things/[^/]+/shadow/", topic):
            carried.append((SHADOW_SERVICE, topic, arn))
        else:
            assert (arn, topic) in routed_to or merge("aws.greengrass.clientdevices.mqtt.Bridge"), (arn, topic)
    policies = merge("aws.greengrass.clientdevices.Auth").get("deviceGroups", {})
    thing_arn = {device.thing_name: device.thing_arn for device in group.devices}
    publishers = {}
    for definition in policies.get("definitions", {}).values():
        thing = definition["selectionRule"].removeprefix("thingName: ")
        for statement in policies["policies"][definition["policyName"]].values():
            if "mqtt:publish" in statement["operations"]:
                for resource in statement["resources"]:
                    publishers[resource.removeprefix("mqtt:topic:")] = thing_arn[thing]
    for mapping in merge("aws.greengrass.clientdevices.mqtt.Bridge").get("mqttTopicMapping", {}).values():
        if (mapping["source"], mapping["target"]) == ("LocalMqtt", "IotCore"):
            published_as = "/".join("*" if level in "+#" else level for level in mapping["topic"].split("/"))
            carried.append((publishers[published_as], mapping["topic"], CLOUD))
    return sorted(carried)


@pytest.mark.parametrize("case", ["rain-group", "sam", "plain", "secrets"])
def test_exported_subscriptions_pinning_environment_and_mounts_equal_what_simcore_runs(case, tmp_path):
    group, _ = export_files(case, tmp_path)
    assert routes_from_files(tmp_path, group) == sorted(
        (subscription.source, subscription.subject, subscription.target) for subscription in group.subscriptions)
    recipes = {read(path)["ComponentName"]: read(path) for path in (tmp_path / "components").glob("*.recipe.json")}
    for function in group.functions:
        request = read(tmp_path / "components" / f"{component_name(function, group)}.json")["lambdaFunction"]
        parameters = request["componentLambdaParameters"]
        assert parameters["pinned"] is function.pinned
        assert parameters.get("environmentVariables", {}) == function.environment
        assert parameters["timeoutInSeconds"] == function.timeout_s
        assert parameters["linuxProcessParams"]["isolationMode"] == function.isolation_mode
        container = parameters["linuxProcessParams"].get("containerParams", {})
        assert container.get("memorySizeInKB") == function.memory_kb
        devices, volumes = [], []
        for access in function.resource_access:
            resource = group.resource(access.resource_id)
            if resource.kind == "local_device":
                devices.append({"path": resource.source, "permission": access.permission,
                                "addGroupOwner": resource.auto_add_group_owner})
            elif resource.kind == "local_volume":
                volumes.append((resource.source, resource.destination_path, access.permission))
            elif resource.kind in ("ml_s3", "ml_sagemaker"):
                # The model travels as a component whose install extracts it where the Lambda mounts it from.
                (model,) = [recipe for recipe in recipes.values() if resource.name in recipe["ComponentName"]]
                assert model["ComponentName"] in request["componentDependencies"]
                assert "{work:path}/model" in model["Manifests"][0]["Lifecycle"]["Install"]
                volumes.append((f"/greengrass/v2/work/{model['ComponentName']}/model", resource.destination_path,
                                access.permission))
        if function.isolation_mode == "NoContainer":
            assert "containerParams" not in parameters["linuxProcessParams"]
            continue
        assert container.get("devices", []) == devices
        assert [(v["sourcePath"], v["destinationPath"], v["permission"]) for v in container.get("volumes", [])] \
            == volumes


def test_the_rain_groups_migration_names_each_of_its_shadow_calls_by_file_and_line(tmp_path):
    group, _ = export_files("rain-group", tmp_path)
    migration = (tmp_path / "MIGRATION.md").read_text(encoding="utf-8")
    human = migration.split("## Needs a human", 1)[1].split("## Commands", 1)[0]
    calls = 0
    for function in group.functions:
        for path in sorted(function.code_dir.rglob("*.py")):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                match = re.search(r"\.((?:get|update|delete)_thing_shadow)\(", line)
                if match:
                    calls += 1
                    where = f"{match.group(1)}() at {path.relative_to(function.code_dir)}:{number}"
                    assert where in human, where
        assert f"**{function.name}**" in human
    assert calls >= 3  # the sensor's get and update, the inference's update
    assert "no compatibility layer" in human and "ML Feedback" in human
    assert "aws.greengrass.ShadowManager" in migration


def test_code_scan_finds_v1_sdk_calls_but_not_mentions_and_says_what_it_could_not_read(tmp_path):
    from simcore.export.code_scan import scan_code

    (tmp_path / "app.py").write_text(
        '"""Calls update_thing_shadow() through greengrasssdk."""\nimport greengrasssdk\nimport boto3\n'
        'client = greengrasssdk.client("iot-data")\nclient.update_thing_shadow(thingName="t", payload=b"{}")\n'
        'client.publish(topic="a", payload=b"")\n', encoding="utf-8")
    (tmp_path / "broken.py").write_text("def (:\n", encoding="utf-8")
    (tmp_path / "site-packages").mkdir()
    (tmp_path / "site-packages" / "vendored.py").write_text("x.delete_thing_shadow()\n", encoding="utf-8")
    report = scan_code(tmp_path)
    assert [(f.feature, f.where()) for f in report.findings] == [
        ("aws_sdk", "app.py:3"), ("shadow", "app.py:5"), ("publish", "app.py:6")]
    assert report.unread == ["broken.py (SyntaxError)"]


def test_an_alias_is_exported_as_the_version_given_and_a_sagemaker_model_as_a_placeholder_to_fill(tmp_path):
    _, export = export_files("rain-group", tmp_path / "rain", ExportOptions(lambda_versions={"RainInference": "7"}))
    request = read(tmp_path / "rain" / "components" / "rain-edge-RainInference.json")
    assert request["lambdaFunction"]["lambdaArn"].endswith(":function:rain-edge-RainInference:7")
    template = read(tmp_path / "rain" / "greengrass-v2.template.json")
    assert template["Parameters"]["RainInferenceFunctionVersionArn"]["Default"].endswith(":7")
    migration = (tmp_path / "rain" / "MIGRATION.md").read_text(encoding="utf-8")
    assert "--lambda-version SensorToShadow=<n>" in migration and "RainInference=<n>" not in migration
    export_files("sam-sagemaker", tmp_path / "sm")
    (recipe,) = (tmp_path / "sm" / "components").glob("*.recipe.json")
    assert read(recipe)["Manifests"][0]["Artifacts"][0]["Uri"].startswith("s3://REPLACE-WITH-THE-TRAINING-JOB")
    assert "training-job/rain-1" in (tmp_path / "sm" / "MIGRATION.md").read_text(encoding="utf-8")


def test_component_versions_can_be_overridden_and_an_unknown_component_is_refused(tmp_path):
    from simcore.export.plan import ExportError

    _, export = export_files("rain-group", tmp_path,
                             ExportOptions(component_versions={"aws.greengrass.ShadowManager": "2.9.0"}))
    assert read(tmp_path / "deployment.json")["components"]["aws.greengrass.ShadowManager"]["componentVersion"] \
        == "2.9.0"
    with pytest.raises(ExportError, match="aws.greengrass.Nope"):
        export_files("rain-group", tmp_path, ExportOptions(component_versions={"aws.greengrass.Nope": "1.0.0"}))
    with pytest.raises(ExportError, match="MAJOR.MINOR.PATCH"):
        export_files("rain-group", tmp_path, ExportOptions(component_versions={"aws.greengrass.ShadowManager": "2"}))


def test_a_no_echo_parameter_is_masked_and_a_second_export_leaves_no_stale_component(tmp_path):
    from simcore.export.plan import export_v2

    template = tmp_path / "group.yaml"
    text = CASES["cli"][0].read_text(encoding="utf-8")
    template.write_text(text.replace("Parameters:\n", "Parameters:\n  Token:\n    Type: String\n    NoEcho: true\n", 1),
                        encoding="utf-8")
    (tmp_path / "echo").symlink_to(CASES["cli"][0].parent / "echo")
    out = tmp_path / "v2"
    export_v2(template, {"ThingName": "cli-core", "Token": "s3cr3t-value"}, out)
    migration = (out / "MIGRATION.md").read_text(encoding="utf-8")
    assert "s3cr3t-value" not in migration and "Token=****" in migration
    (out / "components" / "removed-function.json").write_text("{}", encoding="utf-8")
    export_v2(template, {"ThingName": "cli-core", "Token": "s3cr3t-value"}, out)
    assert not (out / "components" / "removed-function.json").exists()


def test_the_command_writes_a_validated_export_and_refuses_bad_input_in_one_line(tmp_path, capsys):
    template, parameters = CASES["cli"]
    out = tmp_path / "v2"
    assert main(["export", "v2", str(template), "--param", "ThingName=cli-core", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "validated" in printed and (out / "MIGRATION.md").is_file() and (out / "deployment.json").is_file()
    assert main(["export", "v2", str(template), "--param", "ThingName=cli-core", "-o", str(out),
                 "--lambda-version", "nope=3"]) == 3
    error = capsys.readouterr().err
    assert error.startswith("simcore: --lambda-version names no function") and error.count("\n") == 1
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    assert main(["export", "v2", str(template), "--param", "ThingName=cli-core", "-o", str(tmp_path / "a-file")]) == 3
    assert "is a file" in capsys.readouterr().err


def test_each_kind_of_subscription_has_its_v2_carrier_or_a_note_for_a_human():
    import dataclasses

    from simcore.export.lambdas import component_names
    from simcore.export.routes import routes
    from simcore.group import Subscription

    template, parameters = CASES["sam"]
    group = load_group(template, parameters)
    sensor, inference = sorted(group.functions, key=lambda function: function.id, reverse=True)
    (device,) = group.devices
    (metrics,) = group.connectors
    cases = {
        "fn-to-fn": (sensor.arn, inference.arn),
        "fn-to-fn-again": (sensor.arn, inference.arn),
        "connector-to-fn": (metrics.arn, inference.arn),
        "fn-to-shadow": (inference.arn, SHADOW_SERVICE),
        "fn-to-device": (inference.arn, device.thing_arn),
        "cloud-to-device": (CLOUD, device.thing_arn),
        "device-to-fn": (device.thing_arn, inference.arn),
        "shadow-to-cloud": (SHADOW_SERVICE, CLOUD),
    }
    extra = tuple(Subscription(key, source, "x/y", target) for key, (source, target) in cases.items())
    group = dataclasses.replace(group, subscriptions=extra)
    by_id = {route.subscription.id: route for route in routes(group, component_names(group))}
    sensor_component, inference_component = (f"component:{component_names(group)[f.arn]}" for f in (sensor, inference))
    assert by_id["fn-to-fn"].router == {"id": "fn-to-fn", "source": sensor_component, "subject": "x/y",
                                        "target": inference_component}
    assert by_id["fn-to-fn"].event_source == (inference.arn, {"topic": "x/y", "type": "PUB_SUB"})
    assert by_id["connector-to-fn"].router["source"] == "component:aws.greengrass.Cloudwatch"
    assert by_id["fn-to-shadow"].router is None and "IPC shadow client" in by_id["fn-to-shadow"].human
    assert by_id["fn-to-device"].bridge == {"topic": "x/y", "source": "Pubsub", "target": "LocalMqtt"}
    assert "no device target" in by_id["fn-to-device"].human
    assert by_id["cloud-to-device"].bridge == {"topic": "x/y", "source": "IotCore", "target": "LocalMqtt"}
    assert by_id["device-to-fn"].bridge["source"] == "LocalMqtt" and by_id["device-to-fn"].event_source
    assert by_id["shadow-to-cloud"].human and not (by_id["shadow-to-cloud"].router or by_id["shadow-to-cloud"].bridge)
    export = build_export(group, template, parameters)
    sources = export.lambda_requests[component_names(group)[inference.arn]]["lambdaFunction"][
        "componentLambdaParameters"]["eventSources"]
    assert sources.count({"topic": "x/y", "type": "PUB_SUB"}) == 1  # fn-to-fn twice, connector, device: one source
    merge = json.loads(export.deployment["components"]["aws.greengrass.LegacySubscriptionRouter"]
                       ["configurationUpdate"]["merge"])
    assert {"fn-to-fn", "fn-to-fn-again", "connector-to-fn"} <= set(merge["subscriptions"])


@pytest.mark.parametrize("case", sorted(CASES))
def test_migration_md_has_a_row_for_every_v1_element_and_puts_what_needs_a_human_first(case, tmp_path):
    group, _ = export_files(case, tmp_path)
    migration = (tmp_path / "MIGRATION.md").read_text(encoding="utf-8")
    assert migration.index("## Needs a human") < migration.index("## Commands") < migration.index("## Every v1 element")
    table = migration.split("## Every v1 element", 1)[1]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| v1 element")]
    elements = (
        [f"core `{core.id}`" for core in group.cores]
        + [f"function `{function.id}`" for function in group.functions]
        + [f"`{resource.id}`" for resource in group.resources]
        + [f"subscription `{subscription.id}`" for subscription in group.subscriptions]
        + [f"connector `{connector.id}`" for connector in group.connectors]
        + [f"device `{device.id}`" for device in group.devices]
        + [f"logger `{logger.id}`" for logger in group.loggers]
    )
    for element in elements:
        assert sum(element in row.split(" | ")[0] for row in rows) == 1, element
    assert all(row.count(" | ") == 1 for row in rows)  # a `|` inside a cell would break the table
