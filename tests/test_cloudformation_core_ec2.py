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

TEMPLATE = cfn_yaml.load(str(Path(__file__).resolve().parents[1] / "cloudformation" / "greengrass-core-ec2.yaml"))
RESOURCES = TEMPLATE["Resources"]
PARAMETERS = TEMPLATE["Parameters"]
SAMPLE_VALUES = {
    "AWS::StackName": "rain-core", "AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012", "BundleS3Uri": "s3://artifacts/rain-edge-bundle.tar.gz",
    "ModelS3Uri": "s3://artifacts/rain-model.tar.gz", "GroupStackName": "rain", "ThingName": "RainEdgeCore",
    "CoreRuntime": "simcore", "GreengrassCoreTarballUrl": "",
}


def plain(value: Any) -> Any:
    return json.loads(json.dumps(value))


def user_data() -> str:
    """The UserData script with the Fn::Sub variables filled in, as the instance receives it."""
    text = plain(RESOURCES["CoreInstance"]["Properties"]["UserData"])["Fn::Base64"]["Fn::Sub"]
    for name, value in SAMPLE_VALUES.items():
        text = text.replace("${" + name + "}", value)
    return text


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


def test_user_data_sets_up_users_layout_bundle_unit_and_signals() -> None:
    script = user_data()
    for step in ("groupadd --system ggc_group", "useradd --system --gid ggc_group", "mkdir -p /greengrass/certs",
                 "aws s3 cp --region \"eu-west-1\" \"s3://artifacts/rain-edge-bundle.tar.gz\"",
                 "python -m group.setup --stack \"rain\"", "/etc/systemd/system/rain-edge-core.service",
                 "python -m simcore deploy cloudformation/greengrass-group.yaml --root /var/lib/simcore",
                 "--param ModelS3Uri=s3://artifacts/rain-model.tar.gz",
                 "python -m simcore run --root /var/lib/simcore --config /greengrass/config/config.json",
                 "/greengrass/ggc/core/greengrassd start",
                 "systemctl enable rain-edge-core.service", "cfn-signal --exit-code", "signal 0"):
        assert step in script, step
    assert "${" not in script


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is what the instance runs the script with")
def test_user_data_is_valid_bash() -> None:
    completed = subprocess.run(["bash", "-n"], input=user_data(), capture_output=True, text=True, check=False)
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
