"""The stand-in cloud's shadow service: AWS IoT's shadow topics served over MQTT by a local shadow engine.

It connects to the stand-in broker as a client with its own certificate, subscribes to
`$aws/things/+/shadow/{get,update,delete}` and answers each request through the shadow service handed
to it (the same `ShadowService` adapter and `handle_and_publish` step the core's GGShadowService uses),
publishing `accepted`/`rejected`, `delta` and `documents` as AWS IoT does.
Requests are answered in arrival order; answers leave in the same order (one spooled link).
"""

from __future__ import annotations

import logging

from simcore.cloud.link import CloudLink
from simcore.cloud.settings import LinkSettings
from simcore.cloud.spooler import MemorySpooler
from simcore.shadow.service import ShadowHandler, handle_and_publish

REQUEST_FILTERS = (
    "$aws/things/+/shadow/get",
    "$aws/things/+/shadow/update",
    "$aws/things/+/shadow/delete",
)
ANSWER_SPOOL_BYTES = 64 * 1024 * 1024

log = logging.getLogger(__name__)


class CloudShadowService:
    """Serves the shadow request topics of every thing on the broker `settings` points at."""

    def __init__(self, shadow_service: ShadowHandler, settings: LinkSettings):
        self.shadow_service = shadow_service
        self.link = CloudLink(settings, MemorySpooler(ANSWER_SPOOL_BYTES))
        self.requests = 0

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect and subscribe; raise RuntimeError if the broker is not reachable within `timeout_s`."""
        self.link.serve(REQUEST_FILTERS, self._on_request, timeout_s, "cloud shadow service")

    def stop(self) -> None:
        """Disconnect."""
        self.link.stop()

    def _on_request(self, topic: str, payload: bytes) -> None:
        self.requests += 1
        try:
            handle_and_publish(self.shadow_service, topic, payload, self.link.publish)
        except Exception:  # one bad request must not stop the service
            log.exception("cloud shadow service: request on %s failed", topic)
