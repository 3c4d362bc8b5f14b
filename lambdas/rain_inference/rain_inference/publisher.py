"""Publishes JSON messages through an injected publish call (greengrasssdk's iot-data `publish`)."""

from __future__ import annotations

import json
import logging
from typing import Callable

from rain_inference.metrics import RunningMetrics

log = logging.getLogger(__name__)

PublishCall = Callable[[str, bytes], object]  # (topic, payload)


class Publisher:
    """Serialises and publishes; a failure is logged and counted, never raised."""

    def __init__(self, publish: PublishCall, metrics: RunningMetrics) -> None:
        self._publish = publish
        self._metrics = metrics

    def publish_json(self, topic: str, message: object) -> bool:
        """Publish `message` as JSON on `topic`; True when the core took it."""
        try:
            payload = json.dumps(message, allow_nan=False, sort_keys=True).encode("utf-8")
            self._publish(topic, payload)
            return True
        except Exception as error:  # the SDK's InvocationException and a non-JSON value alike
            log.error("publish to %s failed: %s", topic, error)
            self._metrics.record_error("publish", "{}: {}".format(topic, error))
            return False
