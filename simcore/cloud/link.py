"""The core's link to AWS IoT Core (or the local stand-in): MQTT over mutual TLS with the thing certificate.

The MQTT client is AWSIoTPythonSDK's `AWSIoTMQTTClient`: port 8883, or 443 with ALPN `x-amzn-mqtt-ca`,
as a v1 core allowed. Outbound messages go through a spooler and are removed from it only on the
broker's PUBACK (QoS 1): at-least-once delivery, in spool order. The SDK's own offline queue is
disabled, because it keeps requests in memory only and drains them without acknowledgement callbacks.

Connection handling: until the first CONNACK the link retries itself with exponential backoff
(`backoff_base_s` doubling up to `backoff_max_s`), logging each failure with its cause (a refused
certificate, an unknown server CA, nothing listening...). After that the SDK's network thread reconnects
with the same backoff, re-subscribes and retransmits unacknowledged QoS 1 messages.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from AWSIoTPythonSDK.core.protocol.paho.client import topic_matches_sub
from AWSIoTPythonSDK.exception.AWSIoTExceptions import (
    publishError,
    publishQueueDisabledException,
    subscribeError,
    subscribeQueueDisabledException,
)
from AWSIoTPythonSDK.MQTTLib import AWSIoTMQTTClient

from simcore.cloud import sdk_internals
from simcore.cloud.failures import (
    MqttConnectRefused,
    check_credential_files,
    describe_connect_failure,
    names_its_cause,
    tls_handshake_failure,
)
from simcore.cloud.settings import LinkSettings, load_settings
from simcore.cloud.spooler import MemorySpooler, Spooler
from simcore.defaults import ALPN_PORT

MessageHandler = Callable[[str, bytes], None]
ConnectionListener = Callable[[bool], None]

# AWS IoT Core refuses (and disconnects on) messages above 128 KB; refusing them here keeps the link up.
MAX_PAYLOAD_BYTES = 128 * 1024
INFLIGHT_WINDOW = 200
RETRY_NOT_READY_S = 0.05

log = logging.getLogger(__name__)


@dataclass
class LinkStats:
    """Counters a status command shows; `dropped` counts refused messages (spool full, too large)."""

    state: str = "stopped"
    sent: int = 0
    acked: int = 0
    dropped: int = 0
    connects: int = 0
    disconnects: int = 0
    last_error: str = ""
    spooled: int = 0
    spooled_bytes: int = 0
    extra: dict = field(default_factory=dict)


class CloudLink:
    """One MQTT connection to the cloud for the core.

    `publish(topic, payload)` spools; a sender thread hands spooled messages to the SDK in order while
    connected. `subscribe(topic_filter, handler)` routes matching inbound messages to `handler`
    (default: the `on_message` given at construction). Listeners added with `add_connection_listener`
    hear `True` on every (re)connection and `False` on every loss.
    """

    def __init__(self, settings: LinkSettings, spooler: Spooler | None = None,
                 on_message: MessageHandler | None = None):
        self.settings = settings
        self.spooler = spooler if spooler is not None else MemorySpooler()
        self.on_message = on_message
        self._client: AWSIoTMQTTClient | None = None
        self._condition = threading.Condition()
        self._subscribe_lock = threading.Lock()
        self._stopping = threading.Event()
        self._connected = False
        self._state = "stopped"
        self._handlers: dict[str, list[MessageHandler]] = {}
        self._unsubscribed_filters: list[str] = []
        self._inflight: dict[int, float] = {}
        # Messages in flight when the connection was lost: the SDK sends them again after the reconnect, but
        # on its network thread, which can run after the send loop has handed newer ones over. Nothing new is
        # handed over until these are acknowledged, so the broker receives them first: order is kept.
        self._redelivering: set[int] = set()
        self._last_handed = 0
        self._too_large = 0
        self._stats = LinkStats()
        self._listeners: list[ConnectionListener] = []
        self._threads: list[threading.Thread] = []
        sdk_logger = logging.getLogger("AWSIoTPythonSDK")
        if sdk_logger.level == logging.NOTSET:
            # The SDK logs every publish at INFO; the link logs what matters itself.
            sdk_logger.setLevel(logging.WARNING)

    @classmethod
    def from_config(cls, config_path: Path, certs_dir: Path | None = None, spooler: Spooler | None = None,
                    on_message: MessageHandler | None = None, **overrides) -> CloudLink:
        """A link configured by a v1 core `config.json` (certs relative to `certs_dir`)."""
        return cls(load_settings(config_path, certs_dir, **overrides), spooler, on_message)

    # -- state -------------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """`stopped`, `connecting` or `connected`."""
        return self._state

    @property
    def connected(self) -> bool:
        """Whether the broker has acknowledged the current connection."""
        return self._connected

    def stats(self) -> LinkStats:
        """A snapshot of the counters and the spool's fill."""
        with self._condition:
            snapshot = LinkStats(**{**self._stats.__dict__, "extra": dict(self._stats.extra)})
        snapshot.state = self._state
        snapshot.dropped = self.spooler.dropped + self._too_large
        snapshot.spooled = len(self.spooler)
        snapshot.spooled_bytes = self.spooler.size_bytes
        return snapshot

    def add_connection_listener(self, listener: ConnectionListener) -> None:
        """Call `listener(True)` on every connection and `listener(False)` on every loss."""
        self._listeners.append(listener)
        if self._connected:
            listener(True)

    def wait_connected(self, timeout_s: float) -> bool:
        """Wait until connected or `timeout_s` passes; whether connected."""
        with self._condition:
            return self._condition.wait_for(lambda: self._connected, timeout_s)

    def serve(self, topic_filters: Iterable[str], on_message: MessageHandler, timeout_s: float, service: str) -> None:
        """Subscribe `on_message` to each filter, start, and wait up to `timeout_s` for the connection; a service
        of the stand-in (`service` names it) that cannot reach its broker stops and raises RuntimeError."""
        for topic_filter in topic_filters:
            self.subscribe(topic_filter, on_message)
        self.start()
        if not self.wait_connected(timeout_s):
            error = self.stats().last_error
            self.stop()
            raise RuntimeError(f"the {service} cannot reach the broker: {error or 'timed out'}")

    def wait_drained(self, timeout_s: float) -> bool:
        """Wait until every spooled message is acknowledged, or `timeout_s` passes; whether drained."""
        deadline = time.monotonic() + timeout_s
        with self._condition:
            while len(self.spooler) > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(min(remaining, 0.5))
            return True

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting and sending in the background; returns at once."""
        if self._threads:
            return
        self._stopping.clear()
        self._state = "connecting"
        for target, name in ((self._connect_loop, "cloud-connect"), (self._send_loop, "cloud-send")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Disconnect and stop the threads; spooled messages stay in the spool."""
        self._stopping.set()
        with self._condition:
            self._condition.notify_all()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads = []
        client, self._client = self._client, None
        if client is not None:
            try:
                client.disconnect()
            except Exception as error:  # the connection is already gone: stop the SDK's retrying threads
                log.debug("disconnect: %s", error)
                sdk_internals.stop_threads(client)
        self._set_connected(False)
        self._state = "stopped"

    def _new_client(self) -> AWSIoTMQTTClient:
        settings = self.settings
        client = AWSIoTMQTTClient(settings.client_id, cleanSession=settings.clean_session)
        client.configureEndpoint(settings.host, settings.port)
        if settings.uses_alpn and settings.port != ALPN_PORT:
            sdk_internals.enable_alpn(client)
        # The SDK would report a missing file as a bare OSError; opening them first keeps the file name.
        check_credential_files(settings)
        client.configureCredentials(str(settings.ca_path), str(settings.key_path), str(settings.cert_path))
        client.configureAutoReconnectBackoffTime(
            settings.backoff_base_s, settings.backoff_max_s, settings.stable_connection_s
        )
        client.configureOfflinePublishQueueing(0)
        client.configureConnectDisconnectTimeout(settings.connect_timeout_s)
        client.configureMQTTOperationTimeout(max(1.0, settings.connect_timeout_s))
        client.disableMetricsCollection()
        client.onMessage = self._dispatch
        return client

    def _connect_loop(self) -> None:
        """Connect for the first time, retrying with backoff; the SDK handles reconnects afterwards."""
        delay = self.settings.backoff_base_s
        while not self._stopping.is_set():
            error = self._connect_once()
            if error is None:
                return
            reason = describe_connect_failure(error, self.settings)
            with self._condition:
                self._stats.last_error = reason
            log.error("cloud link: %s; retrying in %.1f s", reason, delay)
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, self.settings.backoff_max_s)

    def _connect_once(self) -> BaseException | None:
        """One attempt with a fresh client: None once connected (the client is kept), else why not."""
        try:
            client = self._new_client()
        except Exception as error:  # a certificate file missing or unreadable, a setting the SDK refuses
            return error
        error = self._attempt(client)
        if error is None:
            self._client = client
            with self._condition:
                self._unsubscribed_filters = list(self._handlers)
                self._condition.notify_all()
            return None
        sdk_internals.stop_threads(client)
        if not names_its_cause(error):
            # The SDK saw the connection close without saying why (with TLS 1.3 a refused client
            # certificate shows up only after the handshake, and the SDK prints the alert instead of
            # reporting it): repeat the TLS handshake alone to read the alert.
            error = tls_handshake_failure(self.settings) or error
        return error

    def _attempt(self, client: AWSIoTMQTTClient) -> BaseException | None:
        """One connection attempt: None once the broker accepted it (CONNACK 0), else why not."""
        done = threading.Event()
        outcome: list[BaseException | None] = []

        def on_connack(mid, data=None) -> None:
            # Called for the first CONNACK and again after every automatic reconnect. `data` is the
            # CONNACK return code: connectAsync documents its ackCallback as `(mid, data)` with `data`
            # "the connect result code" (paho's on_connect rc, passed on by the SDK's event consumer).
            accepted = data in (None, 0)
            if not done.is_set():
                outcome.append(None if accepted else MqttConnectRefused(int(data)))
                done.set()
            if accepted:
                # Without TCP_NODELAY a small PUBLISH written while an earlier segment is unacknowledged
                # waits for the broker's delayed ACK: about 40 ms per prediction once shadow sync shares
                # the connection (bench/cloud_path.py).
                sdk_internals.set_tcp_nodelay(client)
                # Kept before the link says it is connected: whoever sees "connected" finds its client
                # (and its socket). _connect_once keeps it too, once this attempt returns.
                self._client = client
                self._set_connected(True)

        def on_offline() -> None:
            if not done.is_set():
                outcome.append(ConnectionResetError("the connection closed before CONNACK"))
                done.set()
                return
            self._set_connected(False)

        client.onOffline = on_offline
        try:
            client.connectAsync(self.settings.keep_alive_s, ackCallback=on_connack)
        except Exception as error:
            return error
        if not done.wait(self.settings.connect_timeout_s):
            return TimeoutError(f"no CONNACK within {self.settings.connect_timeout_s} s")
        return outcome[0]

    def _set_connected(self, connected: bool) -> None:
        with self._condition:
            if connected == self._connected:
                return
            self._connected = connected
            if connected:
                self._stats.connects += 1
                self._state = "connected"
                # Unacknowledged messages are retransmitted now: their PUBACK clock restarts too.
                now = time.monotonic()
                for seq in self._inflight:
                    self._inflight[seq] = now
                self._redelivering = set(self._inflight)
                log.info("cloud link: connected to %s:%s as %s", self.settings.host, self.settings.port,
                         self.settings.client_id)
            else:
                if self._state == "connected" and self._stopping.is_set():
                    log.info("cloud link: disconnected from %s:%s", self.settings.host, self.settings.port)
                elif self._state == "connected":
                    self._stats.disconnects += 1
                    log.warning("cloud link: connection to %s:%s lost; reconnecting with backoff "
                                "(%d messages spooled)", self.settings.host, self.settings.port,
                                len(self.spooler))
                if not self._stopping.is_set():
                    self._state = "connecting"
            self._condition.notify_all()
        for listener in list(self._listeners):
            try:
                listener(connected)
            except Exception:
                log.exception("cloud link: connection listener failed")

    # -- outbound ----------------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes) -> bool:
        """Spool a message for the cloud; False (and counted as dropped) when it was refused."""
        if isinstance(payload, str):
            payload = payload.encode()
        if len(payload) > MAX_PAYLOAD_BYTES:
            with self._condition:
                self._too_large += 1
            log.error("cloud link: message for %s refused: %d bytes exceeds AWS IoT's %d-byte limit",
                      topic, len(payload), MAX_PAYLOAD_BYTES)
            return False
        seq = self.spooler.append(topic, bytes(payload))
        if seq is None:
            return False
        with self._condition:
            self._condition.notify_all()
        return True

    def send_now(self, topic: str, payload: bytes, timeout_s: float = 0.0) -> bool:
        """Publish at QoS 0 without spooling (shadow requests); False when not sent within `timeout_s`.

        Right after a (re)connection the SDK refuses publishes until it has re-subscribed; this waits
        that out, up to `timeout_s`.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            if self._try_send_now(topic, payload):
                return True
            if time.monotonic() >= deadline or self._stopping.wait(RETRY_NOT_READY_S):
                return False

    def _try_send_now(self, topic: str, payload: bytes) -> bool:
        client = self._client
        if client is None or not self._connected:
            return False
        # Subscriptions asked for so far go out first, so the answer to this request has a route.
        self._subscribe_pending()
        with self._condition:
            if self._unsubscribed_filters:
                return False
        try:
            client.publishAsync(topic, bytearray(payload), 0)
        except (publishQueueDisabledException, publishError):
            return False
        return True

    def _send_loop(self) -> None:
        while not self._stopping.is_set():
            with self._condition:
                self._condition.wait_for(self._has_work, timeout=0.5)
                if self._stopping.is_set():
                    return
                if not self._connected or self._client is None:
                    continue
                self._check_ack_timeouts()
                window = 0 if self._redelivering else INFLIGHT_WINDOW - len(self._inflight)
                after = self._last_handed
            self._subscribe_pending()
            if window <= 0:
                continue
            for message in self.spooler.after(after, window):
                if not self._hand_over(message):
                    break

    def _has_work(self) -> bool:
        if self._stopping.is_set():
            return True
        if not self._connected:
            return False
        if self._unsubscribed_filters:
            return True
        if self._inflight and time.monotonic() - min(self._inflight.values()) > self.settings.ack_timeout_s:
            return True
        if self._redelivering:
            return False
        return len(self._inflight) < INFLIGHT_WINDOW and bool(self.spooler.after(self._last_handed, 1))

    def _check_ack_timeouts(self) -> None:
        # Normally the SDK retransmits unacknowledged messages after a reconnect. If an acknowledgement
        # is still missing after ack_timeout_s, hand everything unacknowledged over again (duplicates
        # are allowed, losses are not).
        if self._inflight and time.monotonic() - min(self._inflight.values()) > self.settings.ack_timeout_s:
            oldest = min(self._inflight)
            log.warning("cloud link: no PUBACK for %d messages within %.0f s; sending them again",
                        len(self._inflight), self.settings.ack_timeout_s)
            self._inflight.clear()
            self._redelivering.clear()  # handed over again below, oldest first: order holds
            self._last_handed = oldest - 1

    def _hand_over(self, message) -> bool:
        client = self._client
        if client is None or not self._connected or self._stopping.is_set():
            return False
        seq = message.seq
        try:
            client.publishAsync(message.topic, bytearray(message.payload), 1,
                                ackCallback=lambda mid, seq=seq: self._on_puback(seq))
        except publishQueueDisabledException:
            # Connected but the SDK is still re-subscribing: try again shortly.
            self._stopping.wait(RETRY_NOT_READY_S)
            return False
        except publishError as error:
            log.debug("cloud link: publish of #%d deferred: %s", seq, error)
            self._stopping.wait(RETRY_NOT_READY_S)
            return False
        with self._condition:
            self._inflight[seq] = time.monotonic()
            self._last_handed = max(self._last_handed, seq)
            self._stats.sent += 1
        return True

    def _on_puback(self, seq: int) -> None:
        # Runs on the SDK's event thread: an exception here would kill it (no more PUBACKs, no inbound).
        try:
            self.spooler.ack(seq)
        except sqlite3.Error as error:  # e.g. the disk is full: the message stays in flight and is resent
            log.warning("cloud link: acknowledgement of #%d not recorded (%s); it will be sent again", seq, error)
            return
        with self._condition:
            self._inflight.pop(seq, None)
            self._redelivering.discard(seq)
            self._stats.acked += 1
            self._condition.notify_all()

    # -- inbound -----------------------------------------------------------------------------------

    def subscribe(self, topic_filter: str, handler: MessageHandler | None = None) -> None:
        """Route cloud messages matching `topic_filter` to `handler` (default `on_message`), QoS 1."""
        chosen = handler or self._default_handler
        with self._condition:
            handlers = self._handlers.setdefault(topic_filter, [])
            if chosen not in handlers:
                handlers.append(chosen)
            if len(handlers) == 1:
                self._unsubscribed_filters.append(topic_filter)
            self._condition.notify_all()

    def _default_handler(self, topic: str, payload: bytes) -> None:
        if self.on_message is not None:
            self.on_message(topic, payload)

    def _subscribe_pending(self) -> None:
        # One caller at a time: send_now must not publish while another thread is mid-subscribe.
        with self._subscribe_lock:
            with self._condition:
                pending, self._unsubscribed_filters = self._unsubscribed_filters, []
            failed: list[str] = []
            for topic_filter in pending:
                client = self._client
                try:
                    if client is None:
                        raise subscribeQueueDisabledException()
                    client.subscribeAsync(topic_filter, 1)
                except (subscribeQueueDisabledException, subscribeError):
                    failed.append(topic_filter)
            if failed:
                with self._condition:
                    self._unsubscribed_filters = failed + self._unsubscribed_filters
        if failed:
            self._stopping.wait(RETRY_NOT_READY_S)

    def _dispatch(self, message) -> None:
        topic = message.topic
        payload = bytes(message.payload or b"")
        with self._condition:
            matched: list[MessageHandler] = []
            for topic_filter, handlers in self._handlers.items():
                if topic_matches_sub(topic_filter, topic):
                    matched.extend(handler for handler in handlers if handler not in matched)
        for handler in matched:
            try:
                handler(topic, payload)
            except Exception:
                log.exception("cloud link: handler for %s failed", topic)
