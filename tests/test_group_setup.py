"""group.setup: the core's config.json and greengrass-setup.zip, from stack outputs (moto) or a local CA."""

from __future__ import annotations

import datetime
import json
import re
import stat
import zipfile
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from group import setup

REGION = "eu-west-1"
THING_ARN = f"arn:aws:iot:{REGION}:123456789012:thing/RainEdgeCore"


@pytest.fixture
def aws_region() -> str:
    """The stacks of these tests live in eu-west-1 (the shared `aws` fixture's default region)."""
    return REGION


def stack_identity(key_store: str) -> tuple[list[dict[str, str]], dict[str, str]]:
    """What the group stack leaves behind: a thing, an active certificate, the key stored away; its outputs."""
    iot = boto3.client("iot")
    thing = iot.create_thing(thingName="RainEdgeCore")
    created = iot.create_keys_and_certificate(setAsActive=True)
    outputs = {"ThingArn": thing["thingArn"], "CertificateId": created["certificateId"],
               "CertificateArn": created["certificateArn"], "IotDataEndpoint": f"abc-ats.iot.{REGION}.amazonaws.com"}
    if key_store == "secret":
        secret = boto3.client("secretsmanager").create_secret(
            Name="rain/RainEdgeCore/private-key", SecretString=created["keyPair"]["PrivateKey"])
        outputs["PrivateKeySecretArn"] = secret["ARN"]
    else:
        boto3.client("ssm").put_parameter(Name="/rain/key", Value=created["keyPair"]["PrivateKey"],
                                          Type="SecureString")
        outputs["PrivateKeyParameterName"] = "/rain/key"
    described = [{"OutputKey": key, "OutputValue": value, "Description": "..."} for key, value in outputs.items()]
    return described, {"certificate": created["certificatePem"], "key": created["keyPair"]["PrivateKey"]}


# ------------------------------------------------------------------------------------------ build_config


def test_build_config_has_the_v1_core_layout() -> None:
    config = setup.build_config(thing_arn=THING_ARN, iot_host="abc-ats.iot.eu-west-1.amazonaws.com")
    assert config["coreThing"] == {
        "caPath": "root.ca.pem", "certPath": "core.cert.pem", "keyPath": "core.private.key",
        "thingArn": THING_ARN, "iotHost": "abc-ats.iot.eu-west-1.amazonaws.com",
        "ggHost": "greengrass-ats.iot.eu-west-1.amazonaws.com", "iotMqttPort": 8883, "keepAlive": 600,
    }
    assert config["runtime"] == {"cgroup": {"useSystemd": "yes"}}
    assert config["managedRespawn"] is False
    assert config["crypto"] == {
        "caPath": "file:///greengrass/certs/root.ca.pem",
        "principals": {
            "IoTCertificate": {"privateKeyPath": "file:///greengrass/certs/core.private.key",
                               "certificatePath": "file:///greengrass/certs/core.cert.pem"},
            "SecretsManager": {"privateKeyPath": "file:///greengrass/certs/core.private.key"},
        },
    }


def test_build_config_for_a_local_cloud_points_at_the_local_broker_and_root() -> None:
    config = setup.build_config(thing_arn=THING_ARN, iot_host="127.0.0.1", gg_host="127.0.0.1",
                                iot_mqtt_port=18883, certs_dir="/tmp/core/certs")
    assert (config["coreThing"]["iotHost"], config["coreThing"]["iotMqttPort"]) == ("127.0.0.1", 18883)
    assert config["crypto"]["caPath"] == "file:///tmp/core/certs/root.ca.pem"


@pytest.mark.parametrize(("arguments", "message"), [
    ({"thing_arn": "RainEdgeCore"}, "thing_arn must look like"),
    ({"iot_host": "mqtts://host:8883"}, "iot_host must be a host name"),
    ({"iot_mqtt_port": 0}, "iot_mqtt_port must be 1-65535"),
    ({"keep_alive_s": 5}, "keep_alive_s must be 30-1200"),
    ({"certs_dir": "certs"}, "certs_dir must be absolute"),
])
def test_build_config_names_the_bad_argument(arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        setup.build_config(**{"thing_arn": THING_ARN, "iot_host": "h.example.com", **arguments})


def test_the_stack_config_json_output_is_what_build_config_writes() -> None:
    """The template's ConfigJson output and build_config must describe the same core."""
    from cfnlint.decode import cfn_yaml

    template = cfn_yaml.load(str(Path(__file__).parents[1] / "cloudformation" / "greengrass-group.yaml"))
    text, variables = template["Outputs"]["ConfigJson"]["Value"]["Fn::Sub"]
    assert set(variables) == {"Endpoint"}
    values = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": "123456789012",
              "CoreThing": "RainEdgeCore", "Endpoint": "abc-ats.iot.eu-west-1.amazonaws.com"}
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    assert "${" not in text
    assert json.loads(text) == setup.build_config(thing_arn=THING_ARN, iot_host=values["Endpoint"])


# ------------------------------------------------------------------------------------------ from the stack


@pytest.mark.parametrize("key_store", ["secret", "ssm"])
def test_setup_from_stack_outputs_writes_config_and_zip_with_the_stored_key(
    aws: None, tmp_path: Path, key_store: str,
) -> None:
    described, expected = stack_identity(key_store)
    outputs_file = tmp_path / "outputs.json"
    outputs_file.write_text(json.dumps(described))
    out = tmp_path / "out"

    assert setup.main(["--stack-outputs", str(outputs_file), "--out", str(out)]) == 0

    config = json.loads((out / "config.json").read_text())
    assert config["coreThing"]["thingArn"] == THING_ARN
    assert config["coreThing"]["iotHost"] == f"abc-ats.iot.{REGION}.amazonaws.com"
    with zipfile.ZipFile(out / "greengrass-setup.zip") as archive:
        names = set(archive.namelist())
        assert names == {"certs/", "config/", "certs/core.cert.pem", "certs/core.private.key",
                         "certs/root.ca.pem", "config/config.json"}
        assert archive.read("certs/core.private.key").decode() == expected["key"]
        assert archive.read("certs/core.cert.pem").decode() == expected["certificate"]
        assert json.loads(archive.read("config/config.json")) == config
        root_ca = x509.load_pem_x509_certificate(archive.read("certs/root.ca.pem"))
        assert root_ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Amazon Root CA 1"
        assert stat.S_IMODE(archive.getinfo("certs/core.private.key").external_attr >> 16) == 0o600
    assert stat.S_IMODE((out / "greengrass-setup.zip").stat().st_mode) == 0o600


def test_setup_from_a_named_stack_reads_its_outputs_through_cloudformation(
    aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    described, expected = stack_identity("secret")
    # moto's CloudFormation needs extras this project does not install; botocore's Stubber still checks the
    # request and the response against the real DescribeStacks shapes.
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    stubber = Stubber(cloudformation)
    stubber.add_response("describe_stacks", {"Stacks": [{
        "StackName": "rain", "StackStatus": "CREATE_COMPLETE", "Outputs": described,
        "CreationTime": datetime.datetime(2026, 11, 21, tzinfo=datetime.UTC)}]}, {"StackName": "rain"})
    make_client = boto3.session.Session.client
    monkeypatch.setattr(boto3.session.Session, "client", lambda self, name, *args, **kwargs: (
        cloudformation if name == "cloudformation" else make_client(self, name, *args, **kwargs)))
    stubber.activate()
    root = tmp_path / "greengrass"

    assert setup.main(["--stack", "rain", "--region", REGION, "--out", str(tmp_path / "out"),
                       "--root", str(root), "--install"]) == 0
    stubber.assert_no_pending_responses()

    assert (root / "certs" / "core.private.key").read_text() == expected["key"]
    assert stat.S_IMODE((root / "certs" / "core.private.key").stat().st_mode) == 0o600
    config = json.loads((root / "config" / "config.json").read_text())
    assert config["crypto"]["caPath"] == (root.resolve() / "certs" / "root.ca.pem").as_uri()


def test_missing_outputs_are_named(aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outputs_file = tmp_path / "outputs.json"
    only_thing = [{"OutputKey": "ThingArn", "OutputValue": THING_ARN}]
    outputs_file.write_text(json.dumps({"Stacks": [{"Outputs": only_thing}]}))
    assert setup.main(["--stack-outputs", str(outputs_file), "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "lack CertificateId, PrivateKeySecretArn (or PrivateKeyParameterName)" in error
    assert not (tmp_path / "greengrass-setup.zip").exists()


def test_a_key_that_cannot_be_fetched_fails_with_the_aws_code(
    aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    described, _ = stack_identity("secret")
    outputs = {item["OutputKey"]: item["OutputValue"] for item in described}
    outputs["PrivateKeySecretArn"] = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:gone-AbCdEf"
    outputs_file = tmp_path / "outputs.json"
    outputs_file.write_text(json.dumps(outputs))
    assert setup.main(["--stack-outputs", str(outputs_file), "--out", str(tmp_path / "out")]) == 2
    assert "ResourceNotFoundException in GetSecretValue" in capsys.readouterr().err


def test_a_stored_key_of_another_certificate_is_refused(aws: None) -> None:
    described, _ = stack_identity("secret")
    outputs = {item["OutputKey"]: item["OutputValue"] for item in described}
    other = boto3.client("iot").create_keys_and_certificate(setAsActive=False)
    boto3.client("secretsmanager").put_secret_value(
        SecretId=outputs["PrivateKeySecretArn"], SecretString=other["keyPair"]["PrivateKey"])
    with pytest.raises(setup.SetupError, match="does not belong to the certificate"):
        setup.identity_from_outputs(outputs)


# ------------------------------------------------------------------------------------------ local cloud


def issue(common_name: str, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None = None,
          ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    issuer_name, issuer_key = issuer or (name, key)
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
                   .sign(issuer_key, hashes.SHA256()))
    return certificate, key


def write_pem(path: Path, certificate: x509.Certificate | None = None,
              key: ec.EllipticCurvePrivateKey | None = None) -> Path:
    if certificate is not None:
        path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    else:
        assert key is not None
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return path


@pytest.fixture
def local_ca_files(tmp_path: Path) -> dict[str, Path]:
    ca, ca_key = issue("rain-edge local CA")
    core, core_key = issue("RainEdgeCore", (ca.subject, ca_key))
    return {"--ca": write_pem(tmp_path / "ca.pem", ca), "--cert": write_pem(tmp_path / "core.pem", core),
            "--key": write_pem(tmp_path / "core.key", key=core_key)}


def test_local_setup_points_the_core_at_the_local_broker(tmp_path: Path, local_ca_files: dict[str, Path]) -> None:
    root = tmp_path / "core"
    arguments = ["--local", "--thing-name", "RainEdgeCore", "--iot-host", "127.0.0.1", "--port", "18883",
                 "--out", str(tmp_path / "out"), "--root", str(root), "--install"]
    for option, path in local_ca_files.items():
        arguments += [option, str(path)]

    assert setup.main(arguments) == 0

    config = json.loads((root / "config" / "config.json").read_text())
    assert config["coreThing"]["thingArn"] == "arn:aws:iot:us-east-1:123456789012:thing/RainEdgeCore"
    assert (config["coreThing"]["iotHost"], config["coreThing"]["ggHost"]) == ("127.0.0.1", "127.0.0.1")
    assert config["coreThing"]["iotMqttPort"] == 18883
    assert (root / "certs" / "root.ca.pem").read_bytes() == local_ca_files["--ca"].read_bytes()
    assert (root / "certs" / "core.cert.pem").read_bytes() == local_ca_files["--cert"].read_bytes()


def test_local_setup_refuses_a_key_that_is_not_the_certificates(
    tmp_path: Path, local_ca_files: dict[str, Path], capsys: pytest.CaptureFixture[str],
) -> None:
    _, stranger_key = issue("someone else")
    arguments = ["--local", "--thing-name", "RainEdgeCore", "--iot-host", "127.0.0.1",
                 "--cert", str(local_ca_files["--cert"]), "--ca", str(local_ca_files["--ca"]),
                 "--key", str(write_pem(tmp_path / "stranger.key", key=stranger_key)), "--out", str(tmp_path)]
    assert setup.main(arguments) == 2
    assert "the private key does not belong to the certificate" in capsys.readouterr().err


def test_local_setup_names_the_missing_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert setup.main(["--local", "--iot-host", "127.0.0.1", "--out", str(tmp_path)]) == 2
    assert "--local needs --thing-name or --thing-arn, --cert, --key, --ca" in capsys.readouterr().err


def test_setup_fills_the_credentials_provider_from_the_role_alias_output(aws: None, tmp_path: Path) -> None:
    described, _ = stack_identity("secret")
    described.append({"OutputKey": "RoleAlias", "OutputValue": "RainEdgeCore-GroupRoleAlias"})
    outputs_file = tmp_path / "outputs.json"
    outputs_file.write_text(json.dumps(described))

    assert setup.main(["--stack-outputs", str(outputs_file), "--out", str(tmp_path / "out")]) == 0

    core_thing = json.loads((tmp_path / "out" / "config.json").read_text())["coreThing"]
    assert core_thing["roleAlias"] == "RainEdgeCore-GroupRoleAlias"
    # The account's credentials provider endpoint (moto makes up a new one on each DescribeEndpoint).
    assert re.fullmatch(r"[a-z0-9]+\.credentials\.iot\.eu-west-1\.amazonaws\.com", core_thing["credentialsEndpoint"])
