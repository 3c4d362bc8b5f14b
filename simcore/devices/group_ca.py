"""The group CA and the core's MQTT server certificate it signs, as a v1 core keeps them.

A v1 group has its own CA in the cloud; the core asks it for a server certificate on its first run, when its
connectivity changes and before the certificate expires (7 days by default, 7 to 30), and devices learn the
group CA from discovery. With the v1 cloud gone, the group CA lives with the core, under its deployment root:

    <root>/var/state/group-ca/ca.crt, ca.key     the group CA (RSA 2048, SHA-256, 10 years)
    <root>/var/state/server/server.crt, .key     the MQTT server certificate (RSA 2048, SHA-256-RSA)

Keys are 0600 in 0700 folders (simcore.private). The server certificate carries a SAN for every address the
core advertises: an IP SAN for an IP address (AWSIoTPythonSDK checks the host name, and Python matches an
IP address only against IP SANs), a DNS SAN for a name.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from simcore.cloud.ca import CLOCK_SKEW, self_signed_ca
from simcore.private import PRIVATE_FILE_MODE, private_dir

CA_VALIDITY = datetime.timedelta(days=3650)
RSA_BITS = 2048


def certificate_id_of_der(der: bytes) -> str:
    """AWS IoT's certificate id: the SHA-256 of the DER certificate, in hex."""
    return hashlib.sha256(der).hexdigest()


def certificate_id_of_pem(pem: bytes) -> str:
    """The certificate id of a PEM certificate."""
    return certificate_id_of_der(x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER))


def _write_private(path: Path, data: bytes) -> None:
    private_dir(path.parent)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    with os.fdopen(descriptor, "wb") as out:
        os.fchmod(out.fileno(), PRIVATE_FILE_MODE)
        out.write(data)


def _write_atomically(path: Path, data: bytes, private: bool) -> None:
    """Write through a temporary file: a broker restarting mid-rotation reads the old or the new file."""
    temporary = path.with_name(f".{path.name}.tmp")
    if private:
        _write_private(temporary, data)
    else:
        temporary.write_bytes(data)
    os.replace(temporary, path)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


@dataclass
class SigningCA:
    """A CA certificate and its key, able to sign server certificates."""

    cert: x509.Certificate
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    cert_path: Path

    @property
    def pem(self) -> str:
        """The CA certificate in PEM, as discovery hands it to devices."""
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @classmethod
    def load(cls, cert_path: Path, key_path: Path) -> SigningCA:
        """A CA from its PEM files (RSA or EC key)."""
        cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
        key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_path}: expected an RSA or EC private key")
        return cls(cert, key, Path(cert_path))

    def issue_server(self, hosts: Iterable[str], cert_path: Path, key_path: Path,
                     validity: datetime.timedelta) -> x509.Certificate:
        """A new RSA server certificate valid for `hosts` (IP or DNS SANs) for `validity`, written atomically."""
        hosts = list(dict.fromkeys(hosts))
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + validity)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )
        _write_atomically(Path(key_path), _key_pem(key), private=True)
        _write_atomically(Path(cert_path), cert.public_bytes(serialization.Encoding.PEM), private=False)
        return cert


def group_ca(state_dir: Path, group_name: str) -> SigningCA:
    """The group CA in `<state_dir>/group-ca/`, made on first use and reused afterwards."""
    folder = private_dir(Path(state_dir) / "group-ca")
    cert_path, key_path = folder / "ca.crt", folder / "ca.key"
    if cert_path.exists() and key_path.exists():
        return SigningCA.load(cert_path, key_path)
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    cert = self_signed_ca(key, f"Greengrass group CA {group_name}"[:64], CA_VALIDITY)
    _write_private(key_path, _key_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return SigningCA(cert, key, cert_path)


def not_after(cert_path: Path) -> datetime.datetime:
    """When the certificate at `cert_path` expires (UTC)."""
    return x509.load_pem_x509_certificate(Path(cert_path).read_bytes()).not_valid_after_utc
