"""The core's config.json and greengrass-setup.zip, from the group stack or for a local stand-in cloud.

This is step 3 of the original v1 flow (edit the config, zip `certs/` and `config/`, copy it to the core),
with no hand edits: the certificate comes from AWS IoT, the private key from where the stack stored it
(Secrets Manager or an SSM SecureString), the endpoint and thing from the stack's outputs. simcore reads
the same config.json for its identity and cloud endpoint.

    python -m group.setup --stack NAME [--region R]          # outputs fetched through boto3
    python -m group.setup --stack-outputs outputs.json        # `aws cloudformation describe-stacks` output
    python -m group.setup --local --thing-name T --iot-host 127.0.0.1 --port 8883 \\
        --cert core.pem --key core.key --ca ca.pem            # a local broker standing in for AWS IoT
Common: --out DIR (config.json and the zip), --root DIR (where the core lives, /greengrass by default; the
config's paths point there), --install (also unpack the zip into --root, as `unzip -o ... -d /greengrass`).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.httpsession
from botocore.exceptions import BotoCoreError, ClientError
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from simcore.core_config import (
    CA_FILE,
    CERT_FILE,
    KEY_FILE,
    THING_ARN,
    CoreConfig,
    CoreConfigError,
    check_core_config,
    core_config_text,
    write_core_config,
)
from simcore.defaults import DEFAULT_ACCOUNT_ID, DEFAULT_KEEP_ALIVE_S, DEFAULT_MQTT_PORT, DEFAULT_REGION

DEFAULT_ROOT = Path("/greengrass")
# The config.json fields build_config's arguments fill, to name the argument when the config refuses it.
_ARGUMENT_OF_FIELD = {"coreThing.thingArn": "thing_arn", "coreThing.iotHost": "iot_host",
                      "coreThing.ggHost": "gg_host", "coreThing.iotMqttPort": "iot_mqtt_port",
                      "coreThing.keepAlive": "keep_alive_s", "coreThing.caPath": "ca_file",
                      "coreThing.certPath": "cert_file", "coreThing.keyPath": "key_file",
                      "coreThing.credentialsEndpoint": "credentials_endpoint", "coreThing.roleAlias": "role_alias"}
# The CA AWS IoT's ATS endpoints chain to; the core verifies the cloud with it.
AMAZON_ROOT_CA = "Amazon Root CA 1"
# Files inside greengrass-setup.zip and the modes they are unpacked with (the key only for its owner).
ZIP_MODES = {f"certs/{CERT_FILE}": 0o644, f"certs/{KEY_FILE}": 0o600, f"certs/{CA_FILE}": 0o644,
             "config/config.json": 0o644}


class SetupError(Exception):
    """The setup cannot be produced; the message says which input is wrong or missing."""


def setup_config(
    *, thing_arn: str, iot_host: str, gg_host: str | None = None, iot_mqtt_port: int = DEFAULT_MQTT_PORT,
    keep_alive_s: int = DEFAULT_KEEP_ALIVE_S, certs_dir: str | Path = DEFAULT_ROOT / "certs",
    cert_file: str = CERT_FILE, key_file: str = KEY_FILE, ca_file: str = CA_FILE, use_systemd: bool = True,
    credentials_endpoint: str | None = None, role_alias: str | None = None,
) -> CoreConfig:
    """The Greengrass v1 (1.7+) core config for a real core (systemd) or a local stand-in (`use_systemd=False`).

    `coreThing` paths are file names in `certs_dir` (as the core resolves them); `crypto` repeats them as
    file:// URIs. `gg_host` defaults to the region's Greengrass ATS endpoint. Raises ValueError naming the
    bad argument.
    """
    if not Path(certs_dir).is_absolute():
        raise ValueError(f"certs_dir must be absolute (the core resolves it), got {str(certs_dir)!r}")
    config = CoreConfig.for_thing(
        thing_arn, iot_host, certs_dir=Path(certs_dir), ca_file=ca_file, cert_file=cert_file, key_file=key_file,
        iot_mqtt_port=iot_mqtt_port, keep_alive_s=keep_alive_s, gg_host=gg_host, use_systemd=use_systemd,
        credentials_endpoint=credentials_endpoint, role_alias=role_alias,
    )
    try:
        return check_core_config(config)
    except CoreConfigError as error:
        argument = _ARGUMENT_OF_FIELD.get(error.field or "")
        if argument is None:
            raise
        raise ValueError(error.message.replace(error.field, argument, 1)) from None


def build_config(**arguments: Any) -> dict[str, Any]:
    """`setup_config(**arguments)` as the config.json document (a dict)."""
    return setup_config(**arguments).to_document()


@dataclass(frozen=True)
class CoreIdentity:
    """Everything the core needs to be its thing and reach its cloud."""

    thing_arn: str
    certificate_pem: str
    private_key_pem: str
    root_ca_pem: str
    iot_host: str
    gg_host: str | None = None
    iot_mqtt_port: int = DEFAULT_MQTT_PORT
    # The AWS IoT credentials provider the core's token exchange service asks (docs/credentials.md).
    credentials_endpoint: str | None = None
    role_alias: str | None = None


@dataclass(frozen=True)
class SetupFiles:
    """What `write_setup` wrote."""

    config_path: Path
    zip_path: Path
    installed_root: Path | None


# ---------------------------------------------------------------------------------------------- from a stack


def read_stack_outputs(document: Any) -> dict[str, str]:
    """Outputs as {key: value} from `describe-stacks` JSON, its `Outputs` list, or a plain mapping."""
    if isinstance(document, Mapping) and "Stacks" in document:
        stacks = document["Stacks"]
        if len(stacks) != 1:
            raise SetupError(f"expected exactly one stack in the describe-stacks output, found {len(stacks)}")
        document = stacks[0].get("Outputs", [])
    if isinstance(document, list):
        try:
            return {item["OutputKey"]: item["OutputValue"] for item in document}
        except (KeyError, TypeError) as error:
            raise SetupError(f"each stack output needs OutputKey and OutputValue: {error}") from None
    if isinstance(document, Mapping) and all(isinstance(value, str) for value in document.values()):
        return dict(document)
    raise SetupError("stack outputs must be describe-stacks JSON, its Outputs list, or a {key: value} object")


def fetch_stack_outputs(stack_name: str, session: boto3.session.Session) -> dict[str, str]:
    """The stack's outputs through CloudFormation's DescribeStacks."""
    try:
        described = session.client("cloudformation").describe_stacks(StackName=stack_name)
    except (ClientError, BotoCoreError) as error:
        raise SetupError(f"cannot describe stack {stack_name!r}: {error}") from None
    return read_stack_outputs(described)


def identity_from_outputs(
    outputs: Mapping[str, str], session: boto3.session.Session | None = None, root_ca_pem: str | None = None,
) -> CoreIdentity:
    """Fetch the certificate and private key the stack outputs point to (root CA: Amazon Root CA 1)."""
    missing = [key for key in ("ThingArn", "CertificateId") if not outputs.get(key)]
    key_sources = [key for key in ("PrivateKeySecretArn", "PrivateKeyParameterName") if outputs.get(key)]
    if not key_sources:
        missing.append("PrivateKeySecretArn (or PrivateKeyParameterName)")
    if missing:
        raise SetupError(f"the stack outputs lack {', '.join(missing)}; is this the group stack?")
    match = THING_ARN.fullmatch(outputs["ThingArn"])
    if not match:
        raise SetupError(f"output ThingArn is not a thing ARN: {outputs['ThingArn']!r}")
    session = session or boto3.session.Session(region_name=match["region"])
    try:
        iot = session.client("iot")
        certificate = iot.describe_certificate(certificateId=outputs["CertificateId"])["certificateDescription"]
        iot_host = outputs.get("IotDataEndpoint") or iot.describe_endpoint(
            endpointType="iot:Data-ATS")["endpointAddress"]
        # The group stack's role alias (its RoleAlias output) and the account's credentials provider endpoint.
        role_alias = outputs.get("RoleAlias") or None
        credentials_endpoint = outputs.get("CredentialsEndpoint") or (iot.describe_endpoint(
            endpointType="iot:CredentialProvider")["endpointAddress"] if role_alias else None)
        if "PrivateKeySecretArn" in key_sources:
            secret = session.client("secretsmanager").get_secret_value(SecretId=outputs["PrivateKeySecretArn"])
            private_key_pem = secret["SecretString"]
        else:
            parameter = session.client("ssm").get_parameter(
                Name=outputs["PrivateKeyParameterName"], WithDecryption=True)
            private_key_pem = parameter["Parameter"]["Value"]
    except ClientError as error:
        details = error.response.get("Error", {})
        raise SetupError(
            f"{details.get('Code')} in {error.operation_name}: {details.get('Message')}") from None
    except BotoCoreError as error:
        raise SetupError(f"AWS call failed: {error}") from None
    identity = CoreIdentity(
        thing_arn=outputs["ThingArn"], certificate_pem=certificate["certificatePem"],
        private_key_pem=private_key_pem, root_ca_pem=root_ca_pem or amazon_root_ca_pem(), iot_host=iot_host,
        credentials_endpoint=credentials_endpoint, role_alias=role_alias,
    )
    check_key_matches_certificate(identity.private_key_pem, identity.certificate_pem)
    return identity


def amazon_root_ca_pem() -> str:
    """Amazon Root CA 1, from the CA bundle botocore ships (no download)."""
    with warnings.catch_warnings():
        # The bundle holds a few legacy certificates cryptography warns about; they are skipped anyway.
        warnings.simplefilter("ignore")
        bundle = x509.load_pem_x509_certificates(Path(botocore.httpsession.DEFAULT_CA_BUNDLE).read_bytes())
    for certificate in bundle:
        names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if names and names[0].value == AMAZON_ROOT_CA:
            return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
    raise SetupError(f"{AMAZON_ROOT_CA} is not in {botocore.httpsession.DEFAULT_CA_BUNDLE}; pass --root-ca")


# ---------------------------------------------------------------------------------------------- local cloud


def identity_for_local_cloud(
    *, thing_arn: str, iot_host: str, port: int, cert_path: Path, key_path: Path, ca_path: Path,
) -> CoreIdentity:
    """An identity issued by a local CA, for a local MQTT broker standing in for AWS IoT."""
    files = {"--cert": cert_path, "--key": key_path, "--ca": ca_path}
    texts = {option: _read_pem(path, option) for option, path in files.items()}
    check_key_matches_certificate(texts["--key"], texts["--cert"])
    _load_certificate(texts["--ca"], "--ca")
    return CoreIdentity(
        thing_arn=thing_arn, certificate_pem=texts["--cert"], private_key_pem=texts["--key"],
        root_ca_pem=texts["--ca"], iot_host=iot_host, gg_host=iot_host, iot_mqtt_port=port,
    )


def _read_pem(path: Path, option: str) -> str:
    try:
        return Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as error:
        raise SetupError(f"{option} {path}: cannot read a PEM file: {error}") from None


def _load_certificate(pem: str, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode("ascii"))
    except ValueError as error:
        raise SetupError(f"{what} is not a PEM certificate: {error}") from None


def check_key_matches_certificate(private_key_pem: str, certificate_pem: str) -> None:
    """Raise SetupError unless the private key is the one the certificate was issued for."""
    certificate = _load_certificate(certificate_pem, "the certificate")
    try:
        private_key = serialization.load_pem_private_key(private_key_pem.encode("ascii"), password=None)
    except (ValueError, TypeError) as error:
        raise SetupError(f"the private key is not an unencrypted PEM key: {error}") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if private_key.public_key().public_bytes(serialization.Encoding.DER, public) != \
            certificate.public_key().public_bytes(serialization.Encoding.DER, public):
        raise SetupError("the private key does not belong to the certificate")


# ---------------------------------------------------------------------------------------------- writing


def write_setup(
    identity: CoreIdentity, out_dir: Path, *, root: Path = DEFAULT_ROOT, install: bool = False
) -> SetupFiles:
    """Write `config.json` and `greengrass-setup.zip` into out_dir; with `install`, unpack it into root."""
    config = setup_config(
        thing_arn=identity.thing_arn, iot_host=identity.iot_host, gg_host=identity.gg_host,
        iot_mqtt_port=identity.iot_mqtt_port, certs_dir=root.resolve() / "certs",
        credentials_endpoint=identity.credentials_endpoint, role_alias=identity.role_alias,
    )
    config_text = core_config_text(config)
    contents = {
        f"certs/{CERT_FILE}": identity.certificate_pem,
        f"certs/{KEY_FILE}": identity.private_key_pem,
        f"certs/{CA_FILE}": identity.root_ca_pem,
        "config/config.json": config_text,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    config_path = write_core_config(out_dir / "config.json", config)
    zip_path = out_dir / "greengrass-setup.zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for directory in ("certs/", "config/"):
            entry = zipfile.ZipInfo(directory)
            entry.external_attr = (0o40755 << 16) | 0x10
            archive.writestr(entry, b"")
        for name, text in contents.items():
            entry = zipfile.ZipInfo(name)
            entry.external_attr = (0o100000 | ZIP_MODES[name]) << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, text)
    _write_private(zip_path, buffer.getvalue())
    if install:
        for name, text in contents.items():
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            _write_private(target, text.encode("utf-8"), ZIP_MODES[name])
    return SetupFiles(config_path=config_path, zip_path=zip_path, installed_root=root if install else None)


def _write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write with `mode` from the first byte (the zip and the key are never world-readable, even briefly)."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as out:
        os.fchmod(out.fileno(), mode)  # exactly `mode`, whatever the umask
        out.write(data)


# ---------------------------------------------------------------------------------------------- command line


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m group.setup", description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--stack", help="the group stack's name; its outputs are fetched through boto3")
    source.add_argument("--stack-outputs", type=Path, help="JSON from `aws cloudformation describe-stacks`")
    source.add_argument("--local", action="store_true", help="an identity for a local stand-in cloud")
    parser.add_argument("--region", help="AWS region (default: from the thing ARN or the AWS config)")
    parser.add_argument("--out", type=Path, default=Path("build/greengrass-setup"))
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="where the core lives (/greengrass)")
    parser.add_argument("--install", action="store_true", help="also unpack the setup into --root")
    parser.add_argument("--root-ca", type=Path, help="the cloud's CA (PEM) instead of Amazon Root CA 1")
    local = parser.add_argument_group("--local")
    local.add_argument("--thing-name", help="the core thing's name")
    local.add_argument("--thing-arn", help="default arn:aws:iot:<region>:<account-id>:thing/<thing-name>")
    local.add_argument("--account-id", default=DEFAULT_ACCOUNT_ID,
                       help=f"for the default --thing-arn ({DEFAULT_ACCOUNT_ID}, as simcore's template loader uses)")
    local.add_argument("--iot-host", help="the local broker's host")
    local.add_argument("--port", type=int, default=DEFAULT_MQTT_PORT, help="the local broker's TLS port")
    local.add_argument("--cert", type=Path, help="the core's certificate (PEM)")
    local.add_argument("--key", type=Path, help="the core's private key (PEM)")
    local.add_argument("--ca", type=Path, help="the CA that issued the broker's certificate (PEM)")
    return parser.parse_args(argv)


def identity_from_arguments(arguments: argparse.Namespace) -> CoreIdentity:
    """Build the identity the command line asks for."""
    if arguments.local:
        needed = {"--thing-name or --thing-arn": arguments.thing_name or arguments.thing_arn,
                  "--iot-host": arguments.iot_host, "--cert": arguments.cert, "--key": arguments.key,
                  "--ca": arguments.ca}
        missing = [option for option, value in needed.items() if not value]
        if missing:
            raise SetupError(f"--local needs {', '.join(missing)}")
        region = arguments.region or DEFAULT_REGION
        thing_arn = arguments.thing_arn or f"arn:aws:iot:{region}:{arguments.account_id}:thing/{arguments.thing_name}"
        return identity_for_local_cloud(
            thing_arn=thing_arn, iot_host=arguments.iot_host, port=arguments.port,
            cert_path=arguments.cert, key_path=arguments.key, ca_path=arguments.ca,
        )
    root_ca_pem = None
    if arguments.root_ca:
        root_ca_pem = _read_pem(arguments.root_ca, "--root-ca")
        _load_certificate(root_ca_pem, "--root-ca")
    if arguments.stack:
        session = boto3.session.Session(region_name=arguments.region)
        return identity_from_outputs(fetch_stack_outputs(arguments.stack, session), session, root_ca_pem)
    try:
        document = json.loads(arguments.stack_outputs.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SetupError(f"--stack-outputs {arguments.stack_outputs}: {error}") from None
    outputs = read_stack_outputs(document)
    session = boto3.session.Session(region_name=arguments.region) if arguments.region else None
    return identity_from_outputs(outputs, session, root_ca_pem)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; 0 on success, 2 with a message on bad input."""
    arguments = parse_arguments(argv)
    try:
        identity = identity_from_arguments(arguments)
        written = write_setup(identity, arguments.out, root=arguments.root, install=arguments.install)
    except (SetupError, ValueError) as error:
        print(f"group.setup: {error}", file=sys.stderr)
        return 2
    print(f"wrote {written.config_path} and {written.zip_path}")
    if written.installed_root:
        print(f"installed certs/ and config/ under {written.installed_root}")
    else:
        print(f"on the core: sudo unzip -o greengrass-setup.zip -d {arguments.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
