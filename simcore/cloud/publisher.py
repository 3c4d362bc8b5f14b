"""One message published at the cloud's broker, as AWS IoT Core would deliver it (`simcore cloud publish`).

It connects with its own client id (`<thing>-publish-<random>`), never the core's, so the core's link stays
connected, and publishes at QoS 0 once connected. It takes any v1 `config.json`: the stand-in or AWS IoT.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

from simcore.cloud.link import CloudLink
from simcore.cloud.settings import load_settings
from simcore.errors import StartError
from simcore.topics import validate_topic

PUBLISH_TIMEOUT_S = 10.0


def cloud_publish(config_path: Path, topic: str, payload: bytes, *, certs_dir: Path | None = None,
                  timeout_s: float = PUBLISH_TIMEOUT_S) -> None:
    """Publish `payload` on `topic` at the broker `config_path` names; StartError if it cannot be sent."""
    validate_topic(topic)
    settings = load_settings(config_path, certs_dir, backoff_base_s=0.5, backoff_max_s=4.0)
    link = CloudLink(replace(settings, client_id=f"{settings.client_id}-publish-{uuid.uuid4().hex[:8]}"))
    link.start()
    try:
        if not link.wait_connected(timeout_s):
            raise StartError(f"cannot connect to the cloud: {link.stats().last_error or 'timed out'}; is "
                             "`simcore cloud start` running, and is --config its config.json?")
        if not link.send_now(topic, payload, timeout_s):
            raise StartError("the connection to the cloud dropped before the message was sent; try again")
    finally:
        link.stop()
