"""simcore.template.intrinsics and .physical_ids: CloudFormation's functions and the ids simcore invents."""

from __future__ import annotations

import re

import pytest

from simcore.errors import TemplateError
from simcore.template.intrinsics import NO_VALUE, Resolver, find_unsupported_functions, referenced_names
from simcore.template.physical_ids import PhysicalIds


class FakeIds:
    """Two resources: `Topic` (Ref gives its name, Arn an ARN) and nothing else."""

    def declared(self, logical_id: str) -> bool:
        return logical_id == "Topic"

    def exists(self, logical_id: str) -> bool:
        return self.declared(logical_id)

    def ref(self, logical_id: str, path: str) -> str:
        return "topic-name"

    def get_att(self, logical_id: str, attribute: str, path: str) -> str:
        if attribute != "Arn":
            raise TemplateError(f"no attribute {attribute}", location=path)
        return "arn:aws:sns:us-east-1:123456789012:topic-name"


def make_resolver(conditions=None, region="us-east-1") -> Resolver:
    return Resolver(
        parameters={"Name": "rain", "Zones": ["a", "b", "c"], "Empty": ""},
        pseudo={"AWS::Region": region, "AWS::AccountId": "123456789012", "AWS::Partition": "aws"},
        mappings={"Sizes": {"Small": {"KB": 1024}}},
        conditions=conditions or {},
        resources=FakeIds(),
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"Ref": "Name"}, "rain"),
        ({"Ref": "AWS::Region"}, "us-east-1"),
        ({"Ref": "Topic"}, "topic-name"),
        ({"Fn::GetAtt": "Topic.Arn"}, "arn:aws:sns:us-east-1:123456789012:topic-name"),
        ({"Fn::GetAtt": ["Topic", "Arn"]}, "arn:aws:sns:us-east-1:123456789012:topic-name"),
        ({"Fn::Sub": "${Name}-${AWS::Region}-${Topic}"}, "rain-us-east-1-topic-name"),
        ({"Fn::Sub": "${Topic.Arn}/x"}, "arn:aws:sns:us-east-1:123456789012:topic-name/x"),
        ({"Fn::Sub": "${!Literal}-${Name}"}, "${Literal}-rain"),
        ({"Fn::Sub": ["${Greeting}, ${Name}", {"Greeting": {"Ref": "Topic"}}]}, "topic-name, rain"),
        ({"Fn::Join": ["/", ["a", {"Ref": "Name"}, 3]]}, "a/rain/3"),
        ({"Fn::Join": [",", {"Ref": "Zones"}]}, "a,b,c"),
        ({"Fn::Select": ["1", {"Ref": "Zones"}]}, "b"),
        ({"Fn::Select": [0, {"Fn::Split": ["-", "x-y"]}]}, "x"),
        ({"Fn::FindInMap": ["Sizes", "Small", "KB"]}, 1024),
        ({"Fn::Base64": {"Fn::Sub": "${Name}"}}, "cmFpbg=="),
        ({"Fn::GetAZs": ""}, ["us-east-1a", "us-east-1b", "us-east-1c"]),
        ({"Ref": "AWS::NoValue"}, NO_VALUE),
        ({"plain": ["list", {"nested": {"Ref": "Name"}}]}, {"plain": ["list", {"nested": "rain"}]}),
    ],
)
def test_intrinsic_functions_resolve_as_cloudformation_does(value, expected):
    assert make_resolver().resolve(value, "Resources.X.Properties.P") == expected


def test_no_value_removes_the_key_and_the_list_item():
    resolver = make_resolver({"Yes": {"Fn::Equals": ["1", 1]}})
    value = {
        "Keep": "k",
        "Drop": {"Fn::If": ["Yes", {"Ref": "AWS::NoValue"}, "x"]},
        "List": ["a", {"Fn::If": ["Yes", {"Ref": "AWS::NoValue"}, "b"]}, "c"],
    }
    assert resolver.resolve(value, "P") == {"Keep": "k", "List": ["a", "c"]}


def test_condition_functions():
    conditions = {
        "IsRain": {"Fn::Equals": [{"Ref": "Name"}, "rain"]},
        "IsEmpty": {"Fn::Equals": [{"Ref": "Empty"}, ""]},
        "Both": {"Fn::And": [{"Condition": "IsRain"}, {"Condition": "IsEmpty"}]},
        "Neither": {"Fn::Not": [{"Fn::Or": [{"Condition": "IsRain"}, {"Condition": "IsEmpty"}]}]},
    }
    resolver = make_resolver(conditions)
    assert resolver.condition("Both", "x") is True
    assert resolver.condition("Neither", "x") is False


def test_only_the_chosen_branch_of_fn_if_is_resolved():
    resolver = make_resolver({"No": {"Fn::Equals": ["a", "b"]}})
    value = {"Fn::If": ["No", {"Ref": "DoesNotExist"}, "fine"]}
    assert resolver.resolve(value, "P") == "fine"


@pytest.mark.parametrize(
    ("value", "message", "location"),
    [
        ({"Ref": "Nope"}, "Unresolved resource dependencies [Nope]", "P.Ref"),
        ({"Fn::GetAtt": ["Topic", "Colour"]}, "no attribute Colour", "P.Fn::GetAtt"),
        ({"Fn::GetAtt": "NoDot"}, "Fn::GetAtt takes [LogicalId, Attribute]", "P.Fn::GetAtt"),
        ({"Fn::Select": [5, ["a"]]}, "Fn::Select index 5 is out of range for a list of 1", "P.Fn::Select"),
        ({"Fn::Select": ["x", ["a"]]}, "Fn::Select index 'x' is not an integer", "P.Fn::Select"),
        ({"Fn::Join": ["-", "notalist"]}, "Fn::Join's second argument must be a list", "P.Fn::Join"),
        ({"Fn::Split": ["", "a"]}, "Fn::Split's delimiter must not be empty", "P.Fn::Split"),
        ({"Fn::Sub": "${Zones}"}, "is a list, not a string", "P.Fn::Sub"),
        ({"Fn::FindInMap": ["Nope", "a", "b"]}, "no mapping named 'Nope'", "P.Fn::FindInMap"),
        ({"Fn::If": ["Undeclared", 1, 2]}, "condition 'Undeclared' is not declared", "P.Fn::If[0]"),
        ({"Fn::ImportValue": "shared"}, "unsupported intrinsic function Fn::ImportValue", "P.Fn::ImportValue"),
        ({"Fn::Join": ["", [{"a": 1}]]}, "expected a string here", "P.Fn::Join[1]"),
    ],
)
def test_bad_intrinsics_name_the_problem_and_the_place(value, message, location):
    with pytest.raises(TemplateError, match=re.escape(message)) as raised:
        make_resolver().resolve(value, "P")
    assert message in raised.value.message
    assert raised.value.location == location


def test_condition_cycle_is_reported():
    resolver = make_resolver({"A": {"Condition": "B"}, "B": {"Fn::Not": [{"Condition": "A"}]}})
    with pytest.raises(TemplateError, match="circular dependency between conditions: A -> B -> A"):
        resolver.condition("A", "x")


def test_condition_must_be_a_condition_function():
    with pytest.raises(TemplateError, match="a condition must be Fn::Equals"):
        make_resolver({"A": {"Ref": "Name"}}).condition("A", "x")


def test_find_unsupported_functions_reports_the_first_with_its_path():
    value = {"Resources": {"R": {"Properties": {"List": [1, {"Fn::Transform": {"Name": "M"}}]}}}}
    with pytest.raises(TemplateError, match="unsupported intrinsic function Fn::Transform") as raised:
        find_unsupported_functions(value, "")
    assert raised.value.location == "Resources.R.Properties.List[1].Fn::Transform"


def test_referenced_names_sees_refs_getatts_and_sub_variables_but_not_sub_locals():
    value = {
        "A": {"Ref": "One"},
        "B": {"Fn::GetAtt": "Two.Arn"},
        "C": {"Fn::Sub": ["${Three}-${Local}-${!Escaped}", {"Local": {"Ref": "Four"}}]},
    }
    assert sorted(name for name, _ in referenced_names(value, "P")) == ["Four", "One", "Three", "Two"]


def make_ids(resources, properties=None):
    properties = properties or {}
    return PhysicalIds(
        resources,
        region="us-east-1",
        account_id="123456789012",
        stack_name="rain-edge",
        partition="aws",
        exists=lambda logical_id: True,
        read_property=lambda logical_id, name: properties.get((logical_id, name)),
    )


def test_default_names_are_cloudformation_shaped_and_capped_at_64():
    ids = make_ids({"A" * 80: {"Type": "AWS::IoT::Thing"}})
    name = ids.ref("A" * 80, "P")
    assert len(name) == 64
    assert re.fullmatch(r"rain-edge-A+-[A-Z2-7]{12}", name)


def test_greengrass_arns_have_the_service_shape():
    ids = make_ids({"Functions": {"Type": "AWS::Greengrass::FunctionDefinition"}})
    definition_id = ids.ref("Functions", "P")
    assert re.fullmatch(r"[0-9a-f-]{36}", definition_id)
    assert ids.get_att("Functions", "LatestVersionArn", "P").startswith(
        f"arn:aws:greengrass:us-east-1:123456789012:/greengrass/definition/functions/{definition_id}/versions/"
    )


def test_custom_resource_ref_is_a_certificate_shaped_id_and_its_attributes_are_refused():
    ids = make_ids({"Keys": {"Type": "Custom::ThingCertificate"}})
    assert re.fullmatch(r"[0-9a-f]{64}", ids.ref("Keys", "P"))
    with pytest.raises(TemplateError, match="custom resource's attributes exist only once its code runs"):
        ids.get_att("Keys", "certificatePem", "P")


def test_lambda_versions_are_numbered_per_function_in_template_order():
    resources = {
        "Fn": {"Type": "AWS::Lambda::Function"},
        "V1": {"Type": "AWS::Lambda::Version"},
        "Other": {"Type": "AWS::Lambda::Version"},
        "V2": {"Type": "AWS::Lambda::Version"},
    }
    properties = {("Fn", "FunctionName"): "fn", ("V1", "FunctionName"): "fn", ("V2", "FunctionName"): "fn"}
    properties[("Other", "FunctionName")] = "arn:aws:lambda:us-east-1:123456789012:function:other"
    ids = make_ids(resources, properties)
    assert ids.ref("V2", "P") == "arn:aws:lambda:us-east-1:123456789012:function:fn:2"
    assert ids.get_att("Other", "Version", "P") == "1"
