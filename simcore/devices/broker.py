"""The core's MQTT server for the group's devices: amqtt, embedded, with v1's admission and routing rules.

It is the stand-in's amqtt broker (`simcore.cloud.broker.AmqttBroker`: mutual TLS with the client
certificate required, alerts on refused handshakes, a stop that closes every connection) with four changes
made by subclassing amqtt's `Broker`:
- admission (simcore.devices.admission): a certificate that is no group device's is refused as soon as TLS
  is up; a CONNECT whose client id is not that device's thing name gets CONNACK "not authorized". amqtt
  would drop an existing session of the claimed client id before authenticating; that is held back until
  the client is admitted, so a refused client cannot push a device off.
- PUBLISH: never broadcast. Each message goes to `on_publish(thing name, topic, payload)` (the router);
  wildcard topics close the connection (MQTT's rule), payloads over 128 KB and retain flags are counted.
- SUBSCRIBE: granted at QoS 0 (v1 serves devices QoS 0 only) and recorded; `deliver` sends a message to a
  connected device only when one of its filters matches, as a broker does.
- a new admitted connection with the client id of a live one closes the old one, as AWS IoT does.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from simcore.cloud.broker import AmqttBroker, BrokerTLS
from simcore.devices.admission import Admission
from simcore.topics import topic_matches

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 128 * 1024  # AWS IoT's message size limit; v1 documents none of its own
MAX_PENDING_PER_DEVICE = 1000  # messages being written to one device: a device that does not read loses the rest
MAX_CONNECTIONS = 1000  # TLS sessions the listener holds at once
CONNECT_TIMEOUT_S = 10.0  # from TLS up to a whole CONNECT packet: a silent client is closed after this
REFUSALS_KEPT = 50

# amqtt drops the old session of a CONNECT's client id before authentication; while a connection is being
# admitted, those drops wait here (one list per connection task).
_held_back_deletes: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("held_back", default=None)


def _peer_der(writer) -> bytes | None:
    ssl_object = writer.get_ssl_info()
    return ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None


def _peer_name(writer) -> str:
    info = writer.get_peer_info()
    return f"{info[0]}:{info[1]}" if info else "an unknown peer"


class _ConnectDeadline:
    """amqtt's reader, with a deadline on the reads until the CONNECT packet is in (amqtt waits forever)."""

    def __init__(self, reader, timeout_s: float):
        self.reader = reader
        self.deadline: float | None = asyncio.get_running_loop().time() + timeout_s

    async def read(self, n: int = -1) -> bytes:
        if self.deadline is None:
            return await self.reader.read(n)
        remaining = self.deadline - asyncio.get_running_loop().time()
        try:
            return await asyncio.wait_for(self.reader.read(n), max(remaining, 0.0))
        except TimeoutError:
            from amqtt.errors import NoDataError  # amqtt's own "no CONNECT": it releases the connection

            raise NoDataError(f"no CONNECT within {CONNECT_TIMEOUT_S:g} s") from None

    def feed_eof(self) -> None:
        self.reader.feed_eof()


@dataclass
class _Connection:
    handler: object
    writer: object
    filters: set[str] = field(default_factory=set)
    pending: int = 0


class DeviceBroker(AmqttBroker):
    """amqtt on its own thread, serving the group's devices (see the module docstring).

    `on_publish(thing_name, topic, payload)` is called on the broker's thread for each accepted PUBLISH;
    `on_subscribe(thing_name, topic_filter)` for each SUBSCRIBE filter; `deliver()` may be called from any thread.
    """

    kind = "amqtt"

    def __init__(self, tls: BrokerTLS, work_dir: Path, admission: Admission, *,
                 on_publish: Callable[[str, str, bytes], None],
                 on_subscribe: Callable[[str, str], None] = lambda _thing, _filter: None,
                 port: int = 0, host: str = "0.0.0.0"):
        super().__init__(tls, work_dir, port=port, host=host)
        self.admission = admission
        self.on_publish = on_publish
        self.on_subscribe = on_subscribe
        self._live: dict[str, _Connection] = {}
        self._lock = threading.Lock()
        self.counters: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        self.refused = 0
        self.refusals: collections.deque[str] = collections.deque(maxlen=REFUSALS_KEPT)

    # -- what the rest of the core uses ------------------------------------------------------------

    def connected(self) -> list[str]:
        """The thing names of the devices connected now."""
        with self._lock:
            return sorted(self._live)

    def snapshot(self) -> tuple[dict[str, dict[str, int]], int, list[str]]:
        """(per-device counters, connections refused, the last refusals), read together."""
        with self._lock:
            counters = {thing: dict(values) for thing, values in self.counters.items()}
            return counters, self.refused, list(self.refusals)

    def _count(self, thing: str, name: str) -> None:
        with self._lock:
            self.counters[thing][name] += 1

    def deliver(self, thing_name: str, topic: str, payload: bytes) -> str:
        """Send one message to a device at QoS 0: "sent", "offline", "not_subscribed" or "backlog" (dropped)."""
        with self._lock:
            connection = self._live.get(thing_name)
            if connection is None:
                outcome = "offline"
            elif not any(topic_matches(topic_filter, topic) for topic_filter in connection.filters):
                outcome = "not_subscribed"
            elif connection.pending >= MAX_PENDING_PER_DEVICE:
                outcome = "backlog"
            else:
                connection.pending += 1
                outcome = "sent"
            self.counters[thing_name][f"to_device_{outcome}"] += 1
        if outcome == "sent":
            loop = self._loop
            try:
                loop.call_soon_threadsafe(self._spawn_send, connection, topic, payload)
            except (AttributeError, RuntimeError):  # the broker stopped meanwhile
                with self._lock:
                    connection.pending -= 1
                return "offline"
        return outcome

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the broker; every device is disconnected."""
        super().stop(timeout_s)
        with self._lock:
            self._live.clear()

    # -- the broker's thread -----------------------------------------------------------------------

    def _spawn_send(self, connection: _Connection, topic: str, payload: bytes) -> None:
        asyncio.ensure_future(self._send(connection, topic, payload))

    async def _send(self, connection: _Connection, topic: str, payload: bytes) -> None:
        try:
            await connection.handler.mqtt_publish(topic, payload, 0, False)
        except Exception as error:  # the device went away mid-write: QoS 0, nothing is retried
            log.debug("message on %s to a device not sent: %s", topic, error)
        finally:
            with self._lock:
                connection.pending -= 1

    def _refuse(self, peer: str, why: str) -> None:
        line = f"device connection from {peer} refused: {why}"
        log.warning(line)
        with self._lock:
            self.refused += 1
            self.refusals.append(line)

    def _record_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        super()._record_loop_error(loop, context)
        # A certificate the IoT CA did not sign, or none (a client that hung up mid-handshake is no refusal).
        if context.get("message") == "TLS handshake refused" and isinstance(context.get("exception"), ssl.SSLError):
            self._refuse("a client", f"TLS handshake failed: {context.get('exception')}")

    def _config(self) -> dict:
        config = super()._config()
        config["listeners"]["default"]["max_connections"] = MAX_CONNECTIONS
        return config

    def _new_broker(self, broker_class: type, loop: asyncio.AbstractEventLoop):
        outer = self

        class _DeviceAmqtt(broker_class):
            async def _client_connected(self, listener_name, reader, writer):
                _device, why = outer.admission.device_for_certificate(_peer_der(writer))
                if why:
                    outer._refuse(_peer_name(writer), why)
                    await writer.close()
                    return
                _held_back_deletes.set([])
                timed = _ConnectDeadline(reader, CONNECT_TIMEOUT_S)
                try:
                    await super()._client_connected(listener_name, timed, writer)
                finally:
                    await writer.close()  # amqtt leaves some failed sessions' sockets open

            async def _delete_session(self, client_id):
                held_back = _held_back_deletes.get()
                if held_back is not None:
                    held_back.append(client_id)
                    return
                await super()._delete_session(client_id)

            async def _authenticate(self, session, listener):
                return True  # admission decided in _handle_client_session, before amqtt's own steps

            async def _handle_client_session(self, reader, writer, session, handler, server, listener_name):
                reader.deadline = None  # the CONNECT is in
                held_back = _held_back_deletes.get() or []
                _held_back_deletes.set(None)
                why = outer.admission.refusal(session.client_id, _peer_der(writer))
                if why:
                    outer._refuse(_peer_name(writer), why)
                    handler.attach(session, reader, writer)
                    await handler.mqtt_connack_authorize(False)
                    await writer.close()
                    return
                for client_id in held_back:
                    await super()._delete_session(client_id)
                connection = _Connection(handler, writer)
                with outer._lock:
                    previous = outer._live.get(session.client_id)
                    outer._live[session.client_id] = connection
                outer._count(session.client_id, "connections")
                if previous is not None:
                    await previous.writer.close()
                log.info("device %s connected from %s", session.client_id, _peer_name(writer))
                try:
                    await super()._handle_client_session(reader, writer, session, handler, server, listener_name)
                finally:
                    with outer._lock:
                        if outer._live.get(session.client_id) is connection:
                            del outer._live[session.client_id]
                    log.info("device %s disconnected", session.client_id)

            async def add_subscription(self, subscription, session):
                granted = await super().add_subscription((subscription[0], 0), session)  # v1: QoS 0 locally
                if granted != 0x80:
                    with outer._lock:
                        connection = outer._live.get(session.client_id)
                        if connection is not None:
                            connection.filters.add(subscription[0])
                    outer.on_subscribe(session.client_id, subscription[0])
                return granted

            def _del_subscription(self, a_filter, session):
                with outer._lock:
                    connection = outer._live.get(session.client_id)
                    if connection is not None:
                        connection.filters.discard(a_filter)
                return super()._del_subscription(a_filter, session)

            async def _handle_message_delivery(self, client_session, handler, wait_deliver):
                message = wait_deliver.result()
                if message is None:
                    return True
                thing = client_session.client_id
                topic = message.topic or ""
                if not topic or "+" in topic or "#" in topic:
                    log.warning("device %s published on %r, not a topic: disconnected (MQTT 3.3.2-2)", thing, topic)
                    return False
                payload = bytes(message.data or b"")
                if message.publish_packet is not None and message.publish_packet.retain_flag:
                    outer._count(thing, "retain_ignored")  # v1 keeps no retained messages
                if len(payload) > MAX_PAYLOAD_BYTES:
                    outer._count(thing, "dropped_too_large")
                    log.warning("device %s published %d bytes on %s: over the %d-byte limit, dropped",
                                thing, len(payload), topic, MAX_PAYLOAD_BYTES)
                    return True
                outer._count(thing, "published")
                try:
                    outer.on_publish(thing, topic, payload)
                except Exception as error:  # one bad message must not end the device's connection
                    outer._count(thing, "not_routed")
                    log.warning("message from device %s on %s not routed: %s", thing, topic, error)
                return True

        return _DeviceAmqtt(self._config(), loop=loop)
