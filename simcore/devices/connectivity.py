"""The core's connectivity information: the addresses devices may reach its MQTT server at.

With `GGIPDetector` in the group's FunctionDefinition the core advertises its own interface addresses (IPv4,
as v1's detector listed them, loopback included, each `AUTOIP_<ip>_<n>`); without it, the addresses the
operator gives (`simcore run --connectivity HOST:PORT`, repeatable), in that order. Discovery hands the
list to devices, and the server certificate carries a SAN for each.
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from dataclasses import dataclass

from simcore.errors import InputError

IP_DETECTOR = "GGIPDetector"
_SIOCGIFADDR = 0x8915  # Linux: an interface's IPv4 address


@dataclass(frozen=True)
class ConnectivityEntry:
    """One `ConnectivityInfo` entry, as discovery serves it."""

    id: str
    host_address: str
    port: int
    metadata: str = ""

    def to_document(self) -> dict:
        """The entry in the discovery answer's shape (capitalised keys)."""
        return {"Id": self.id, "HostAddress": self.host_address, "PortNumber": self.port, "Metadata": self.metadata}


def parse_host_port(text: str, default_port: int) -> tuple[str, int]:
    """`HOST[:PORT]` (an IPv6 address in brackets) → (host, port); InputError for anything else.

    Without a port, `default_port` (0: whatever port the MQTT server listens on)."""
    host, port_text = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else rest
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host or (port_text and not port_text.isdigit()):
        raise InputError(f"--connectivity {text!r}: use HOST:PORT (e.g. 192.168.1.4:8883)")
    if not port_text:
        return host, default_port
    port = int(port_text)
    if not 0 < port < 65536:
        raise InputError(f"--connectivity {text!r}: the port must be 1-65535")
    return host, port


def interface_addresses() -> list[str]:
    """This machine's IPv4 interface addresses, the loopback last."""
    found: list[str] = []
    for _index, name in socket.if_nameindex():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                answer = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue  # an interface without an IPv4 address
        found.append(socket.inet_ntoa(answer[20:24]))
    unique = list(dict.fromkeys(found))
    return sorted(unique, key=lambda address: ipaddress.ip_address(address).is_loopback)


def connectivity(auto_ip: bool, given: list[tuple[str, int]], port: int) -> list[ConnectivityEntry]:
    """What the core advertises: its interfaces on `port` (auto IP), else `given` (a port 0 there is `port`),
    else 127.0.0.1:`port`."""
    if auto_ip:
        return [ConnectivityEntry(f"AUTOIP_{address}_{index}", address, port)
                for index, address in enumerate(interface_addresses())]
    if given:
        return [ConnectivityEntry(f"{host}_{index}", host, entry_port or port)
                for index, (host, entry_port) in enumerate(given)]
    return [ConnectivityEntry("localhost_0", "127.0.0.1", port)]
