"""The exported requests as one CloudFormation template: `AWS::GreengrassV2::ComponentVersion` and `::Deployment`.

The template deploys the migration the way the v1 stack deployed the group (`aws cloudformation deploy`).
It does not create the Lambdas: v2 imports existing Lambda versions, and AWS Lambda no longer creates
functions on the runtimes a v1 core ran (python3.8 and older); each Lambda's version ARN is a parameter,
defaulting to the one in the requests. Property names are the API's, capitalised (the CloudFormation
schema's own names), except map keys, which are data (component names, variable names).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from simcore.group import Function, Group

TARGET_ARN = "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:thing/${CoreThingName}"
LAMBDA_VERSION_ARN_PATTERN = r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[a-zA-Z0-9_-]+:\d+$"


def logical_id(text: str, suffix: str) -> str:
    """A CloudFormation logical id from any name: its letters and digits, then `suffix`."""
    return re.sub(r"[^A-Za-z0-9]", "", text)[:200] + suffix


def pascal(value, shape):
    """An API value (`lambdaArn`...) in CloudFormation's spelling (`LambdaArn`...), keys of maps kept."""
    if shape.type_name == "structure" and isinstance(value, Mapping):
        return {name[0].upper() + name[1:]: pascal(item, shape.members[name]) for name, item in value.items()}
    if shape.type_name == "list" and isinstance(value, list):
        return [pascal(item, shape.member) for item in value]
    if shape.type_name == "map" and isinstance(value, Mapping):
        return {key: pascal(item, shape.value) for key, item in value.items()}
    return value


def build_template(
    group: Group,
    lambda_requests: Mapping[str, dict],
    functions: Mapping[str, Function],
    recipes: Mapping[str, dict],
    deployment: dict,
    model,
) -> dict:
    """The template: a parameter per Lambda version, a component version per own component, the deployment.

    `lambda_requests` and `functions` are keyed by component name; `recipes` by model component name;
    `model` is botocore's greengrassv2 service model.
    """
    component_shape = model.operation_model("CreateComponentVersion").input_shape
    deployment_shape = model.operation_model("CreateDeployment").input_shape
    parameters: dict = {
        "CoreThingName": {
            "Type": "String",
            "Default": group.core.thing_name,
            "Description": "The core device's thing (the v1 group's core thing).",
            "AllowedPattern": "^[a-zA-Z0-9:_-]{1,128}$",
        }
    }
    resources: dict = {}
    component_ids: dict[str, str] = {}
    bases = [functions[name].logical_id or functions[name].id for name in lambda_requests]
    for name, request in lambda_requests.items():
        function = functions[name]
        base = function.logical_id or function.id
        if bases.count(base) > 1:  # one Lambda the group runs twice: each entry its own component
            base += function.id
        parameter = logical_id(base, "VersionArn")
        parameters[parameter] = {
            "Type": "String",
            "Default": request["lambdaFunction"]["lambdaArn"],
            "Description": f"The Lambda version that component {name} runs (v1 function {function.id}).",
            "AllowedPattern": LAMBDA_VERSION_ARN_PATTERN,
        }
        properties = pascal(request["lambdaFunction"], component_shape.members["lambdaFunction"])
        properties["LambdaArn"] = {"Ref": parameter}
        component_ids[name] = logical_id(base, "Component")
        resources[component_ids[name]] = {"Type": "AWS::GreengrassV2::ComponentVersion",
                                          "Properties": {"LambdaFunction": properties}}
    for name, recipe in recipes.items():
        component_ids[name] = logical_id(name, "Component")
        resources[component_ids[name]] = {"Type": "AWS::GreengrassV2::ComponentVersion",
                                          "Properties": {"InlineRecipe": json.dumps(recipe, indent=2)}}
    components = {}
    for name, specification in deployment["components"].items():
        converted = pascal(specification, deployment_shape.members["components"].value)
        if name in component_ids:
            converted["ComponentVersion"] = {"Fn::GetAtt": [component_ids[name], "ComponentVersion"]}
        components[name] = converted
    resources["Deployment"] = {
        "Type": "AWS::GreengrassV2::Deployment",
        "Properties": {
            "TargetArn": {"Fn::Sub": TARGET_ARN},
            "DeploymentName": deployment["deploymentName"],
            "Components": components,
            "DeploymentPolicies": pascal(deployment["deploymentPolicies"],
                                         deployment_shape.members["deploymentPolicies"]),
        },
    }
    outputs = {
        "DeploymentId": {"Description": "The Greengrass v2 deployment to the core device.",
                         "Value": {"Ref": "Deployment"}},
    }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"Greengrass v2 deployment of the v1 group {group.name} (written by simcore export v2; "
                       "see MIGRATION.md).",
        "Parameters": parameters,
        "Resources": resources,
        "Outputs": outputs,
    }
