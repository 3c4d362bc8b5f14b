"""The amqtt fallback's authentication: a client the TLS listener let in is authenticated, and not anonymous.

The listener requires a client certificate signed by the stand-in's CA (as mosquitto's
`require_certificate true` does), so every MQTT session that reaches this plugin has proved who it is.
amqtt's own `AnonymousAuthPlugin` would mark each session anonymous, and amqtt keeps no messages for an
anonymous session while it is away: persistent sessions need this plugin instead. Imported only by the
fallback (it imports amqtt).
"""

from __future__ import annotations

from dataclasses import dataclass

from amqtt.plugins.base import BaseAuthPlugin


class CertificateAuthPlugin(BaseAuthPlugin):
    """Accept every session: its client certificate was verified by the TLS listener before MQTT began."""

    @dataclass
    class Config:
        """No options."""

    async def authenticate(self, *, session) -> bool:  # type: ignore[override]
        """True: the TLS handshake, with CERT_REQUIRED against the stand-in's CA, already authenticated it."""
        return True
