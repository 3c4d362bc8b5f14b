"""Who may connect to the core's MQTT server: the group's devices, each with its own certificate and name.

The TLS listener has already checked that the client's certificate chains to the configured IoT CA. Then,
as a v1 core does, a device is admitted only when
1. its certificate is the one a `DeviceDefinition` entry names (`CertificateArn` ends in the certificate id,
   the SHA-256 of the DER certificate), checked as soon as TLS is up, before any MQTT byte is read, and
2. its MQTT client id is that entry's thing name (the `ThingArn`'s suffix), checked at CONNECT.
Every refusal has a reason, which the server logs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from simcore.devices.group_ca import certificate_id_of_der
from simcore.group import Device


def certificate_id_of_arn(certificate_arn: str) -> str:
    """`arn:aws:iot:<region>:<account>:cert/<id>` → `<id>`."""
    return certificate_arn.rsplit("/", 1)[-1].lower()


@dataclass(frozen=True)
class Admission:
    """The group's devices by certificate id."""

    by_certificate: dict[str, Device]

    @classmethod
    def for_devices(cls, devices: Iterable[Device]) -> Admission:
        """The admission rules of a group's DeviceDefinition."""
        return cls({certificate_id_of_arn(device.certificate_arn): device for device in devices})

    def device_for_certificate(self, der: bytes | None) -> tuple[Device | None, str]:
        """(the device whose certificate this is, "") or (None, why it is refused)."""
        if not der:
            return None, "it presented no client certificate"
        certificate_id = certificate_id_of_der(der)
        device = self.by_certificate.get(certificate_id)
        if device is None:
            return None, (f"its certificate {certificate_id[:16]}... is not the certificate of any device in the "
                          "group's DeviceDefinition")
        return device, ""

    def refusal(self, client_id: str, der: bytes | None) -> str:
        """Why a CONNECT with `client_id` over a TLS session with certificate `der` is refused ("" if admitted)."""
        device, why = self.device_for_certificate(der)
        if device is None:
            return why
        if client_id != device.thing_name:
            return (f"client id {client_id!r} is not the thing name {device.thing_name!r} its certificate "
                    "belongs to (a device connects with its thing name as client id)")
        return ""
