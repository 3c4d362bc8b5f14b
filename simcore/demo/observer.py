"""The demo's cloud-side client: an MQTT connection to the stand-in broker with its own certificate.

It subscribes to the thing's prediction, metrics and command-answer topics and to the cloud shadow's
`update/documents`, feeding each message to a `DemoState`; it can also send a command to the inference
Lambda (over the group's `cloud → inference` subscription) and wait for the answer.

Its session is persistent (clean session off), as a cloud application's on AWS IoT Core would be: if
its connection drops or the broker restarts, the QoS 1 predictions published meanwhile wait for it. The
client id carries a per-run suffix, so a new demo never inherits the session (and the queued messages)
of an earlier run on the same stand-in.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import replace

from simcore.cloud.link import CloudLink
from simcore.cloud.settings import LinkSettings
from simcore.demo.state import DemoState

PROBE_AGAIN_S = 0.5


class CloudObserver:
    """Watches one thing's cloud topics for the demo."""

    def __init__(self, settings: LinkSettings, state: DemoState):
        self.state = state
        settings = replace(settings, client_id=f"{settings.client_id}-{uuid.uuid4().hex[:8]}", clean_session=False)
        self.link = CloudLink(settings)
        self._probe_topic = f"simcore-demo/{settings.client_id}/ready"
        self._probe_seen = threading.Event()
        for topic_filter in state.topics.subscriptions():
            self.link.subscribe(topic_filter, state.on_cloud_message)
        self.link.subscribe(self._probe_topic, lambda _topic, _payload: self._probe_seen.set())

    def start(self, timeout_s: float = 15.0) -> None:
        """Connect, and return once the subscriptions are in force; RuntimeError naming the cause if not.

        The probe topic is subscribed last and a broker applies one client's SUBSCRIBEs in order, so a message on
        it coming back proves every subscription is in force: no prediction is missed. The probe is sent again
        until one comes back: amqtt may handle a PUBLISH before a SUBSCRIBE that came first.
        """
        self.link.start()
        if not self.link.wait_connected(timeout_s):
            error = self.link.stats().last_error
            self.link.stop()
            raise RuntimeError(f"the demo observer cannot reach the stand-in broker: {error or 'timed out'}")
        deadline = time.monotonic() + timeout_s
        while not self._probe_seen.is_set() and time.monotonic() < deadline:
            self.link.publish(self._probe_topic, b"{}")
            self._probe_seen.wait(min(PROBE_AGAIN_S, max(0.0, deadline - time.monotonic())))
        if not self._probe_seen.is_set():
            self.link.stop()
            raise RuntimeError("the demo observer's subscriptions were not confirmed by the stand-in broker")

    def stop(self) -> None:
        """Disconnect."""
        self.link.stop()

    def command(self, name: str, timeout_s: float = 5.0) -> dict | None:
        """Send `{"id", "command": name}` to the inference Lambda; its answer, or None if none came in time."""
        request_id = f"demo-{uuid.uuid4().hex[:12]}"
        self.link.publish(self.state.topics.command_input, json.dumps({"id": request_id, "command": name}).encode())
        return self.state.wait_for_answer(request_id, timeout_s)
