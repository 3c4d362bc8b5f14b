"""Why a connection to the IoT endpoint failed, said in one line that names the files and endpoint involved."""

from __future__ import annotations

import socket
import ssl

from simcore.cloud.settings import ALPN_PROTOCOL, LinkSettings


def describe_connect_failure(error: BaseException, settings: LinkSettings) -> str:
    """One log line saying why a connection attempt failed, naming the files and endpoint involved."""
    endpoint = f"{settings.host}:{settings.port}"
    text = str(error)
    lowered = text.lower()
    if isinstance(error, ssl.SSLCertVerificationError):
        return (f"TLS handshake with {endpoint} failed: the server certificate was not accepted "
                f"({error.verify_message}); it is not signed by the CA in {settings.ca_path} or does not "
                f"name {settings.host}")
    if isinstance(error, ssl.SSLError) and any(
        marker in lowered for marker in ("unknown ca", "bad certificate", "certificate required",
                                         "certificate unknown", "unsupported certificate", "access denied")
    ):
        return (f"TLS handshake with {endpoint} failed: the endpoint refused this thing's certificate "
                f"{settings.cert_path} ({getattr(error, 'reason', None) or text}); it is not signed by a CA "
                f"the endpoint trusts, or it is inactive/revoked")
    if isinstance(error, ssl.SSLError) and ("pem" in lowered or "key values mismatch" in lowered):
        return f"cannot load the thing's certificate/key ({settings.cert_path}, {settings.key_path}): {text}"
    if isinstance(error, ssl.SSLError):
        return f"TLS handshake with {endpoint} failed: {text}"
    if isinstance(error, FileNotFoundError):
        return f"a certificate file is missing: {error.filename or text}"
    if isinstance(error, ConnectionRefusedError):
        return f"nothing accepts connections on {endpoint} (connection refused)"
    if isinstance(error, MqttConnectRefused):
        return f"{endpoint} refused the MQTT connection as {settings.client_id!r}: {error}"
    if isinstance(error, (ConnectionResetError, BrokenPipeError)):
        return (f"{endpoint} closed the connection during the TLS/MQTT handshake; the endpoint may have "
                f"refused the certificate {settings.cert_path}")
    return f"cannot connect to {endpoint}: {type(error).__name__}: {text}"


class MqttConnectRefused(ConnectionError):
    """The broker answered CONNECT with a non-zero CONNACK return code."""

    REASONS = {1: "unacceptable protocol version", 2: "client identifier rejected", 3: "server unavailable",
               4: "bad user name or password", 5: "not authorized"}

    def __init__(self, return_code: int):
        self.return_code = return_code
        super().__init__(f"CONNACK {return_code}: {self.REASONS.get(return_code, 'refused')}")


def _mqtt_connect_packet(client_id: str, keep_alive_s: int) -> bytes:
    """An MQTT 3.1.1 CONNECT with a clean session and no credentials."""
    encoded_id = client_id.encode()
    body = (b"\x00\x04MQTT\x04\x02" + min(keep_alive_s, 65535).to_bytes(2, "big")
            + len(encoded_id).to_bytes(2, "big") + encoded_id)
    length, remaining = b"", len(body)
    while True:
        digit, remaining = remaining % 128, remaining // 128
        length += bytes([digit | (0x80 if remaining else 0)])
        if not remaining:
            break
    return b"\x10" + length + body


def probe_connection(settings: LinkSettings, timeout_s: float | None = None) -> BaseException | None:
    """Connect once the way the SDK does (TLS with the thing certificate, MQTT CONNECT) and say what failed.

    None means the endpoint accepted the certificate and answered CONNACK 0. Used to name the cause
    when the SDK only saw a closed connection.
    """
    timeout_s = timeout_s or settings.connect_timeout_s
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(str(settings.ca_path))
        context.load_cert_chain(str(settings.cert_path), str(settings.key_path))
        # The SDK checks the host name only on its ALPN path; the probe must judge the same way.
        context.check_hostname = settings.uses_alpn
        if settings.uses_alpn:
            context.set_alpn_protocols([ALPN_PROTOCOL])
        with socket.create_connection((settings.host, settings.port), timeout_s) as raw, \
                context.wrap_socket(raw, server_hostname=settings.host) as tls:
            try:
                tls.sendall(_mqtt_connect_packet(settings.client_id, settings.keep_alive_s))
            except OSError as write_error:
                # A refused certificate closes the connection with an alert: reading surfaces the alert.
                try:
                    tls.recv(1)
                except OSError as read_error:
                    return read_error
                return write_error
            connack = b""
            while len(connack) < 4:
                chunk = tls.recv(4 - len(connack))
                if not chunk:
                    return ConnectionResetError("the endpoint closed the connection before CONNACK")
                connack += chunk
            if connack[0] != 0x20:
                return ConnectionError(f"unexpected answer to CONNECT: {connack.hex()}")
            if connack[3] != 0:
                return MqttConnectRefused(connack[3])
            tls.sendall(b"\xe0\x00")  # DISCONNECT
    except Exception as error:
        return error
    return None


def names_its_cause(error: BaseException) -> bool:
    """Whether a connect error says why by itself (a TLS alert, a bad server certificate, no listener)."""
    if isinstance(error, (ssl.SSLCertVerificationError, ConnectionRefusedError, FileNotFoundError,
                          MqttConnectRefused)):
        return True
    return isinstance(error, ssl.SSLError) and "ALERT" in str(getattr(error, "reason", "") or "")
