"""Why a connection to the IoT endpoint failed, said in one line that names the files and endpoint involved.

The causes come from what AWSIoTPythonSDK 1.5.4 reports for each failure (the TLS handshake runs in the
caller's thread inside `connectAsync`, the MQTT exchange on the SDK's network thread):

- the server certificate is not trusted: `connectAsync` raises `ssl.SSLCertVerificationError`;
- nothing listens: `connectAsync` raises `ConnectionRefusedError`;
- the broker refuses the CONNECT (not authorised, client id rejected...): the `ackCallback` given to
  `connectAsync` receives the CONNACK return code as `data` (documented there), then the SDK goes offline;
- the endpoint refuses the thing's certificate: with TLS 1.3 the client's side of the handshake is done
  before the endpoint judges the certificate, so its alert reaches the SDK's network thread, which prints
  it to stdout and reports only a disconnect (or `connectAsync` raises `connectError(1)` when the endpoint
  had already closed the connection as the CONNECT was written). `tls_handshake_failure` then repeats the
  TLS handshake alone, with `ssl` and no MQTT, to read that alert;
- a certificate file is missing: `configureCredentials` raises a bare `OSError("path: reason")`, errno dropped;
  `check_credential_files` opens the files first so the error keeps its type and file name.
"""

from __future__ import annotations

import socket
import ssl

from AWSIoTPythonSDK.exception.operationError import operationError

from simcore.cloud.settings import ALPN_PROTOCOL, LinkSettings
from simcore.errors import SimcoreError

# How long the handshake check waits for an alert after its side of a TLS 1.3 handshake: the endpoint
# answers within one round trip; silence means it accepted the certificate and waits for MQTT CONNECT.
ALERT_WAIT_S = 2.0


class MqttConnectRefused(SimcoreError, ConnectionError):
    """The broker answered CONNECT with a non-zero CONNACK return code (as the SDK's ackCallback reports it)."""

    code = "MqttConnectRefused"
    http_status = 502

    REASONS = {1: "unacceptable protocol version", 2: "client identifier rejected", 3: "server unavailable",
               4: "bad user name or password", 5: "not authorized"}

    def __init__(self, return_code: int):
        self.return_code = return_code
        super().__init__(f"CONNACK {return_code}: {self.REASONS.get(return_code, 'refused')}")


def describe_connect_failure(error: BaseException, settings: LinkSettings) -> str:
    """One log line saying why a connection attempt failed, naming the files and endpoint involved."""
    endpoint = f"{settings.host}:{settings.port}"
    # The SDK's own exceptions keep their text in `message`; str() gives only the error code.
    text = error.message if isinstance(error, operationError) else str(error)
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
    if isinstance(error, PermissionError):
        return f"cannot read a certificate file: {error.filename or text} (permission denied)"
    if isinstance(error, ConnectionRefusedError):
        return f"nothing accepts connections on {endpoint} (connection refused)"
    if isinstance(error, MqttConnectRefused):
        return f"{endpoint} refused the MQTT connection as {settings.client_id!r}: {error.message}"
    if isinstance(error, (ConnectionResetError, BrokenPipeError)):
        return (f"{endpoint} closed the connection during the TLS/MQTT handshake; the endpoint may have "
                f"refused the certificate {settings.cert_path}")
    return f"cannot connect to {endpoint}: {type(error).__name__}: {text}"


def check_credential_files(settings: LinkSettings) -> None:
    """Raise FileNotFoundError/PermissionError (with the file name) unless the CA, cert and key can be read."""
    for path in (settings.ca_path, settings.cert_path, settings.key_path):
        with open(path, "rb"):
            pass


def tls_handshake_failure(settings: LinkSettings, timeout_s: float | None = None) -> BaseException | None:
    """Run only the TLS handshake the SDK runs (thing certificate, same CA and ALPN) and say what failed.

    No MQTT is sent. None means the endpoint completed the handshake and sent no alert within
    ALERT_WAIT_S: it accepted the certificate.
    """
    timeout_s = timeout_s or settings.connect_timeout_s
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(str(settings.ca_path))
        context.load_cert_chain(str(settings.cert_path), str(settings.key_path))
        # The SDK checks the host name only on its ALPN path; this check must judge the same way.
        context.check_hostname = settings.uses_alpn
        if settings.uses_alpn:
            context.set_alpn_protocols([ALPN_PROTOCOL])
        with socket.create_connection((settings.host, settings.port), timeout_s) as raw, \
                context.wrap_socket(raw, server_hostname=settings.host) as tls:
            # TLS 1.2 refusals were raised by the handshake; a TLS 1.3 one arrives as the first record read.
            tls.settimeout(min(ALERT_WAIT_S, timeout_s))
            try:
                if not tls.recv(1):
                    return ConnectionResetError("the endpoint closed the connection after the TLS handshake")
            except TimeoutError:
                return None
    except Exception as error:
        return error
    return None


def names_its_cause(error: BaseException) -> bool:
    """Whether a connect error says why by itself (a TLS alert, a bad server certificate, no listener...)."""
    if isinstance(error, (ssl.SSLCertVerificationError, ConnectionRefusedError, FileNotFoundError,
                          PermissionError, MqttConnectRefused)):
        return True
    return isinstance(error, ssl.SSLError) and "ALERT" in str(getattr(error, "reason", "") or "")
