"""The few places simcore reaches past AWSIoTPythonSDK's public API, all in one module.

Written against AWSIoTPythonSDK 1.5.4. It touches these private attributes of `AWSIoTMQTTClient`:

- `client._mqtt_core` (`MqttCore`): its `configure_alpn_protocols()`, to offer ALPN on a port other than 443;
- `client._mqtt_core._event_consumer.stop()`: stops the SDK's event and network threads of a client that
  never connected (the public `disconnect()` refuses to run then);
- `client._mqtt_core._internal_async_client._paho_client._ssl` / `._sock`: the SDK's bundled paho client's
  TLS and TCP sockets, to set and read TCP_NODELAY.

If a later SDK moves them, nothing here raises: each function logs (a WARNING for ALPN, DEBUG otherwise)
and returns False or None. The link then still works, but an abandoned client's
threads keep retrying in the background, ALPN on a non-443 port is not offered (the handshake fails and
the link says so), and PUBLISHes wait for Nagle's algorithm (about 40 ms each, see bench/cloud_path.py).
"""

from __future__ import annotations

import logging
import socket

from AWSIoTPythonSDK.MQTTLib import AWSIoTMQTTClient

log = logging.getLogger(__name__)


def enable_alpn(client: AWSIoTMQTTClient) -> bool:
    """Offer ALPN `x-amzn-mqtt-ca` whatever the port; whether the SDK took it.

    The SDK turns ALPN on by itself only for port 443; a test or a proxy may need it on another port.
    """
    try:
        client._mqtt_core.configure_alpn_protocols()
    except AttributeError as error:
        log.warning("cannot turn ALPN on in AWSIoTPythonSDK (has it changed?): %s", error)
        return False
    return True


def stop_threads(client: AWSIoTMQTTClient) -> bool:
    """Stop the SDK's threads of a client whose connection failed; whether they were found.

    Without this the SDK's network thread of a client that never connected would retry forever.
    """
    try:
        client._mqtt_core._event_consumer.stop()
    except Exception as error:  # whatever the SDK raises while stopping, the client is being dropped
        log.debug("stopping an abandoned MQTT client: %s", error)
        return False
    return True


def mqtt_socket(client: AWSIoTMQTTClient) -> socket.socket | None:
    """The socket under the client's MQTT connection (TLS when connected), or None if not found."""
    try:
        paho = client._mqtt_core._internal_async_client._paho_client
        return paho._ssl or paho._sock
    except AttributeError:
        return None


def set_tcp_nodelay(client: AWSIoTMQTTClient) -> bool:
    """Set TCP_NODELAY on the client's socket (the SDK never does); whether it was set."""
    sock = mqtt_socket(client)
    if sock is None:
        log.debug("cannot set TCP_NODELAY: the SDK's socket was not found")
        return False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError) as error:  # not a plain socket, or the connection closed meanwhile
        log.debug("cannot set TCP_NODELAY: %s", error)
        return False
    return True


def tcp_nodelay(client: AWSIoTMQTTClient) -> bool | None:
    """Whether TCP_NODELAY is set on the client's socket (None: socket not found or closed)."""
    sock = mqtt_socket(client)
    if sock is None:
        return None
    try:
        return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    except (AttributeError, OSError):
        return None
