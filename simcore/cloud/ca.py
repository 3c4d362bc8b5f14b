"""A local certificate authority for the stand-in cloud: CA, broker server certificate, thing certificates.

Files are written in the layout a real core's `config.json` points at (`/greengrass/certs`):
`root.ca.pem`, `<id>.cert.pem`, `<id>.private.key`. Keys are EC P-256, as AWS IoT issues by default
with `CreateKeysAndCertificate`; certificates are valid for ten years because the stand-in is local.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILE = "root.ca.pem"
CA_KEY_FILE = "root.ca.key"
VALIDITY = datetime.timedelta(days=3650)
CLOCK_SKEW = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class IssuedCertificate:
    """Where one issued certificate and its private key were written, and the certificate's id."""

    cert_path: Path
    key_path: Path
    certificate_id: str


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_private(path: Path, data: bytes) -> None:
    """Write key material readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as stream:
        stream.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def self_signed_ca(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, common_name: str,
                   validity: datetime.timedelta) -> x509.Certificate:
    """A CA certificate for `key`, signed by itself: it signs end-entity certificates only (path length 0),
    valid from five minutes ago (a peer's clock a little behind) for `validity`."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def certificate_id(cert: x509.Certificate) -> str:
    """AWS IoT's certificate id: the SHA-256 of the DER certificate, in hex."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


class LocalCA:
    """A CA whose certificate and key live in `certs_dir`; created on first use, reused afterwards."""

    def __init__(self, certs_dir: Path, common_name: str = "simcore local IoT CA"):
        self.certs_dir = Path(certs_dir)
        self.ca_path = self.certs_dir / CA_FILE
        self._ca_key_path = self.certs_dir / CA_KEY_FILE
        if self.ca_path.exists() and self._ca_key_path.exists():
            self._cert = x509.load_pem_x509_certificate(self.ca_path.read_bytes())
            loaded = serialization.load_pem_private_key(self._ca_key_path.read_bytes(), password=None)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{self._ca_key_path}: expected an EC private key")
            self._key = loaded
        else:
            self._key, self._cert = self._create(common_name)

    def _create(self, common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = _new_key()
        cert = self_signed_ca(key, common_name, VALIDITY)
        _write_private(self._ca_key_path, _key_pem(key))
        self.ca_path.parent.mkdir(parents=True, exist_ok=True)
        self.ca_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return key, cert

    def _issue(self, common_name: str, san: list[x509.GeneralName], usage: ExtendedKeyUsageOID,
               file_stem: str) -> IssuedCertificate:
        key = _new_key()
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False
            )
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        cert_id = certificate_id(cert)
        stem = file_stem or cert_id[:10]
        cert_path = self.certs_dir / f"{stem}.cert.pem"
        key_path = self.certs_dir / f"{stem}.private.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_private(key_path, _key_pem(key))
        return IssuedCertificate(cert_path, key_path, cert_id)

    def issue_server(self, hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
                     file_stem: str = "broker") -> IssuedCertificate:
        """A TLS server certificate for the broker, valid for `hosts` (DNS names or IP addresses)."""
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        return self._issue(hosts[0], names, ExtendedKeyUsageOID.SERVER_AUTH, file_stem)

    def issue_thing(self, thing_name: str, file_stem: str = "") -> IssuedCertificate:
        """A client certificate whose subject CN is `thing_name`.

        The broker takes the CN as the MQTT username (`use_identity_as_username`). Files are named
        `<stem>.cert.pem`/`<stem>.private.key`, the stem defaulting to the first 10 hex digits of the
        certificate id, as the AWS IoT console names downloads.
        """
        return self._issue(thing_name, [], ExtendedKeyUsageOID.CLIENT_AUTH, file_stem)
