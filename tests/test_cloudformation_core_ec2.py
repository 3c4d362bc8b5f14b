"""The EC2 core template: SSH only from a required CIDR, an SSM-resolved image, a UserData that bash accepts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml
from support.fn_sub import fn_sub

PROJECT = Path(__file__).resolve().parents[1]
TEMPLATE = cfn_yaml.load(str(PROJECT / "cloudformation" / "greengrass-core-ec2.yaml"))
BOOTSTRAP = PROJECT / "group" / "bootstrap-core.sh"
RESOURCES = TEMPLATE["Resources"]
PARAMETERS = TEMPLATE["Parameters"]
SAMPLE_VALUES = {
    "AWS::StackName": "rain-core", "AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012", "BundleS3Uri": "s3://artifacts/rain-edge-bundle.tar.gz",
    "ModelS3Uri": "s3://artifacts/rain-model.tar.gz", "GroupStackName": "rain", "ThingName": "RainEdgeCore",
    "CoreRuntime": "simcore", "GreengrassCoreTarballUrl": "", "SensorSource": "replay:JFK", "ReplaySpeed": "1",
}


def plain(value: Any) -> Any:
    return json.loads(json.dumps(value))


def user_data() -> str:
    """The UserData script with the Fn::Sub variables filled in, as the instance receives it."""
    return fn_sub(plain(RESOURCES["CoreInstance"]["Properties"]["UserData"])["Fn::Base64"]["Fn::Sub"], SAMPLE_VALUES)


def test_ssh_cidr_is_required_and_never_the_whole_internet() -> None:
    ssh = PARAMETERS["SshCidr"]
    assert "Default" not in ssh
    pattern = re.compile(ssh["AllowedPattern"])
    assert pattern.fullmatch("203.0.113.7/32") and pattern.fullmatch("10.0.0.0/8")
    for refused in ("0.0.0.0/0", "203.0.113.7", "203.0.113.7/33", "::/0"):
        assert not pattern.fullmatch(refused), refused
    (ingress,) = plain(RESOURCES["CoreSecurityGroup"]["Properties"]["SecurityGroupIngress"])
    assert (ingress["FromPort"], ingress["ToPort"], ingress["CidrIp"]) == (22, 22, {"Ref": "SshCidr"})


def test_image_comes_from_an_ssm_public_parameter() -> None:
    image = PARAMETERS["ImageId"]
    assert image["Type"] == "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"
    assert image["Default"].startswith("/aws/service/canonical/ubuntu/server/")
    assert plain(RESOURCES["CoreInstance"]["Properties"]["ImageId"]) == {"Ref": "ImageId"}


def test_runtime_choice_defaults_to_simcore_and_v1_needs_its_tarball() -> None:
    runtime = PARAMETERS["CoreRuntime"]
    assert (runtime["Default"], runtime["AllowedValues"]) == ("simcore", ["simcore", "greengrass-v1"])
    rule = plain(TEMPLATE["Rules"]["V1CoreNeedsItsTarball"])
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "CoreRuntime"}, "greengrass-v1"]}
    assert rule["Assertions"][0]["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "GreengrassCoreTarballUrl"}, ""]}]}


def test_user_data_fetches_the_bundle_and_hands_the_stack_values_to_its_bootstrap() -> None:
    script = user_data()
    for step in ("aws-cfn-bootstrap-py3-latest.tar.gz", "pip install -q awscli uv",
                 'aws s3 cp --region "eu-west-1"', '"s3://artifacts/rain-edge-bundle.tar.gz"',
                 "exec bash /opt/rain-edge/group/bootstrap-core.sh --stack-name \"rain-core\"",
                 '--model-s3-uri "s3://artifacts/rain-model.tar.gz"', '--group-stack-name "rain"',
                 '--core-runtime "simcore"', '--sensor-source "replay:JFK"', "cfn-signal --exit-code 1"):
        assert step in script, step
    # What is left of ${...} is the shell's own: each internet-reaching source's variable, with its default.
    assert "${RAIN_EDGE_CFN_BOOTSTRAP:-https://s3.amazonaws.com/cloudformation-examples/" in script
    assert "${RAIN_EDGE_S3_ENDPOINT:-}" in script


def test_bootstrap_sets_up_users_layout_unit_and_signals() -> None:
    script = BOOTSTRAP.read_text()
    for step in ("groupadd --system ggc_group", "useradd --system --gid ggc_group", "/greengrass/certs",
                 'python -m group.setup --stack "$GROUP_STACK_NAME"', "/etc/systemd/system/rain-edge-core.service",
                 "python -m simcore deploy cloudformation/greengrass-group.yaml --root /var/lib/simcore",
                 '--param $(unit_word "ModelS3Uri=$MODEL_S3_URI")',
                 "python -m simcore run --root /var/lib/simcore --config /greengrass/config/config.json",
                 "/greengrass/ggc/core/greengrassd start", "systemctl enable rain-edge-core.service",
                 '"$CFN_SIGNAL" "${options[@]}"', "signal 0", 'RAIN_EDGE_PYTHON38:-uv', 'RAIN_EDGE_S3_ENDPOINT:-'):
        assert step in script, step


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is what the instance runs the script with")
def test_user_data_and_bootstrap_are_valid_bash() -> None:
    for script in (user_data(), BOOTSTRAP.read_text()):
        completed = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, check=False)
        assert completed.returncode == 0, completed.stderr


def test_instance_requires_imdsv2_encrypts_its_disk_and_signals_creation() -> None:
    data = plain(RESOURCES["CoreLaunchTemplate"]["Properties"]["LaunchTemplateData"])
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["BlockDeviceMappings"][0]["Ebs"]["Encrypted"] is True
    assert plain(RESOURCES["CoreInstance"]["CreationPolicy"])["ResourceSignal"]["Count"] == 1


def test_outputs_give_the_ssh_and_scp_commands() -> None:
    outputs = plain(TEMPLATE["Outputs"])
    assert outputs["SshCommand"]["Value"] == {"Fn::Sub": "ssh -i ${KeyName}.pem ubuntu@${CoreAddress}"}
    assert outputs["ScpCommand"]["Value"]["Fn::Sub"].startswith("scp -i ${KeyName}.pem ")
    assert "greengrass-setup.zip" in outputs["ScpCommand"]["Value"]["Fn::Sub"]
