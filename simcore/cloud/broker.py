"""The stand-in cloud's MQTT broker: Debian's mosquitto with a mutual-TLS listener, or embedded amqtt.

Both listen on 127.0.0.1 only, require a client certificate signed by the local CA and take the
certificate's CN as the client's identity (mosquitto's `use_identity_as_username`).

Sessions, as AWS IoT Core keeps them: a client that connects with clean session off keeps its
subscriptions, and the QoS 1 messages published while it is away wait for it, for
`SESSION_EXPIRY` after it left (AWS's default: 1 hour). mosquitto keeps them in
`<work_dir>/persistence/` across its own restarts (saved on a clean stop and every `AUTOSAVE_S` seconds);
the amqtt fallback keeps them only while its broker runs (in memory; `simcore.cloud.amqtt_auth` makes its
sessions non-anonymous, which amqtt requires before it queues anything for them).

Ports: with port 0 the broker chooses, and the binder owns the choice: a random port *outside* the
kernel's ephemeral range (so while the broker is stopped for a restart, no `bind(0)` and no outgoing
connection of another program is handed its port), and another one when the bind fails with "address in
use". A restart keeps the port its clients know.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import weakref
from asyncio import constants, selector_events, sslproto
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from simcore.errors import StartError
from simcore.parent_death import die_with_parent

MOSQUITTO = "/usr/sbin/mosquitto"
READY_TIMEOUT_S = 10.0
SESSION_EXPIRY = "1h"  # AWS IoT Core's default persistent-session expiry
AUTOSAVE_S = 5  # how often mosquitto writes its persistence file (and on every clean stop)
MAX_QUEUED_MESSAGES = 100_000  # per offline session; AWS's own limit is per account
MAX_QUEUED_BYTES = 64 * 1024 * 1024  # per offline session: bounds the broker's memory
PORT_ATTEMPTS = 10  # binds tried when the port is ours to choose
PORT_RANGE_START = 20000  # ours are chosen from here up to the kernel's ephemeral range
_random = random.SystemRandom()
LOG_LINES_KEPT = 1000  # the amqtt fallback's in-memory log
RELOADED = "Reloading config."  # what mosquitto logs on SIGHUP

log = logging.getLogger(__name__)


class BrokerError(StartError):
    """The broker could not be started or stopped; the message says what failed and how to fix it."""

    code = "BrokerError"
    port_taken = False  # set when the listen port was in use (the caller may retry on another)


INSTALL_HINT = "install mosquitto (`apt-get install mosquitto`) or amqtt (`pip install amqtt`)"


def port_taken(host: str, port: int) -> BrokerError:
    """The error for a listen port something else holds."""
    error = BrokerError(f"cannot listen on {host}:{port}: the port is already in use; stop what holds it, "
                        "or pick another port (`--port 0` picks a free one)")
    error.port_taken = True
    return error


@dataclass(frozen=True)
class BrokerTLS:
    """The files a TLS listener needs: the CA that signs clients, and the server's own certificate."""

    ca_path: Path
    cert_path: Path
    key_path: Path


def _ephemeral_range() -> tuple[int, int]:
    """The ports the kernel hands out by itself (bind to port 0, outgoing connections)."""
    try:
        low, high = (int(value) for value in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return low, high


def _candidate_port() -> int:
    """A random port outside the kernel's ephemeral range, so no bind(0) or outgoing connection takes it
    while the broker is stopped between restarts. Only a guess: the binder retries on EADDRINUSE."""
    low, high = _ephemeral_range()
    if low - PORT_RANGE_START >= 1000:
        return _random.randrange(PORT_RANGE_START, low)
    return _random.randrange(high + 1, 65536)


def _wait_listening(host: str, port: int, deadline: float, alive) -> None:
    """Poll until something accepts TCP connections on `host:port`, or fail at `deadline`."""
    while time.monotonic() < deadline:
        if not alive():
            raise BrokerError(f"broker exited before listening on {host}:{port}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        threading.Event().wait(0.02)
    raise BrokerError(f"broker did not listen on {host}:{port} within {READY_TIMEOUT_S} s")


class MosquittoBroker:
    """One mosquitto process with a generated configuration in `work_dir`; `start()` again after `stop()`."""

    kind = "mosquitto"

    def __init__(self, tls: BrokerTLS, work_dir: Path, port: int = 0, host: str = "127.0.0.1",
                 executable: str = MOSQUITTO, acl_path: Path | None = None):
        self.tls = tls
        self.acl_path = acl_path  # an ACL file (simcore.cloud.iot_policy): the things' IoT policies
        self.work_dir = Path(work_dir)
        self.host = host
        self.port = port  # 0 until the first start binds one
        self._port_is_ours = port == 0
        self.executable = executable
        self.conf_path = self.work_dir / "mosquitto.conf"
        self.log_path = self.work_dir / "mosquitto.log"
        self.persistence_dir = self.work_dir / "persistence"
        self._process: subprocess.Popen | None = None

    def _write_conf(self) -> None:
        lines = [
            "# Written by simcore.cloud.broker: the local stand-in for AWS IoT Core.",
            "per_listener_settings false",
            "persistence true",
            f"persistence_location {self.persistence_dir}/",
            f"autosave_interval {AUTOSAVE_S}",
            f"persistent_client_expiration {SESSION_EXPIRY}",
            "allow_anonymous false",
            "connection_messages true",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            f"log_dest file {self.log_path}",
            "max_inflight_messages 100",
            f"max_queued_messages {MAX_QUEUED_MESSAGES}",
            f"max_queued_bytes {MAX_QUEUED_BYTES}",
        ]
        if os.geteuid() == 0:
            # Started as root, mosquitto drops to the `mosquitto` user, which cannot read our 0600 keys.
            lines.append("user root")
        lines += [
            f"listener {self.port} {self.host}",
            f"cafile {self.tls.ca_path}",
            f"certfile {self.tls.cert_path}",
            f"keyfile {self.tls.key_path}",
            "require_certificate true",
            "use_identity_as_username true",
            "tls_version tlsv1.2",
        ]
        if self.acl_path is not None:
            # mosquitto logs a denied publish or subscribe ("Denied PUBLISH from <client>") only at debug level:
            # with a policy to enforce, that line is how a too-narrow policy shows (the client gets no error).
            lines += [f"acl_file {self.acl_path}", "log_type debug"]
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.persistence_dir.mkdir(mode=0o700, exist_ok=True)
        self.persistence_dir.chmod(0o700)  # queued messages are the cloud's data: the broker's user only
        self.conf_path.write_text("\n".join(lines) + "\n")

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return self._process.pid if self.running and self._process else None

    def start(self) -> None:
        """Start mosquitto and return once it accepts connections.

        Spawned with a parent-death signal: mosquitto ends with the thread that started it, even on a
        `kill -9` of simcore (see simcore.parent_death), so start it from a long-lived thread.
        """
        if self.running:
            return
        _start_on_a_port(self)

    def _start_once(self) -> None:
        self._write_conf()
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        stderr_path = self.work_dir / "mosquitto.stderr"
        stderr_offset = stderr_path.stat().st_size if stderr_path.exists() else 0
        stderr_log = open(stderr_path, "ab")  # noqa: SIM115 - owned by the process
        try:
            # Its own session: a terminal's Ctrl-C or hang-up reaches simcore, which stops mosquitto
            # cleanly (so it saves its sessions); SIGTERM on parent death does the same.
            self._process = subprocess.Popen(
                [self.executable, "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL, stdout=stderr_log, stderr=stderr_log,
                start_new_session=True, preexec_fn=die_with_parent(signal.SIGTERM),
            )
        except OSError as error:
            raise BrokerError(f"cannot run {self.executable}: {error.strerror or error}; {INSTALL_HINT}") from None
        finally:
            stderr_log.close()
        # mosquitto logs "running" once its listeners are open; waiting for that line (rather than
        # probing the port) keeps TLS noise out of its log.
        deadline = time.monotonic() + READY_TIMEOUT_S
        while " running" not in self.log_text()[log_offset:]:
            if not self.running or time.monotonic() > deadline:
                self.stop()
                said = self.log_text()[log_offset:] + _read_from(stderr_path, stderr_offset)
                raise self._start_failure(said)
            threading.Event().wait(0.02)
        log.info("mosquitto pid %s listening on %s:%s (mutual TLS)", self.pid, self.host, self.port)

    def _start_failure(self, said: str) -> BrokerError:
        """Why mosquitto did not start, from what it wrote to its log and stderr."""
        if "Address already in use" in said:
            return port_taken(self.host, self.port)
        errors = [line.split("Error: ", 1)[1].strip() for line in said.splitlines() if "Error: " in line]
        reason = f": {errors[-1]}" if errors else ""
        return BrokerError(f"mosquitto did not start on {self.host}:{self.port}{reason}; see {self.log_path} "
                           f"and {self.work_dir / 'mosquitto.stderr'}")

    def reload(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Have mosquitto read its ACL file again (SIGHUP), e.g. after an identity was added to it; returns once
        its log says it reloaded (its loop is single-threaded: a client connecting after that sees the new file)."""
        if not self.running or self._process is None:
            return
        before = self.log_text().count(RELOADED)
        self._process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout_s
        while self.log_text().count(RELOADED) <= before:
            if time.monotonic() >= deadline or not self.running:
                raise BrokerError(f"mosquitto did not reload its configuration within {timeout_s:g} s")
            threading.Event().wait(0.02)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop mosquitto (SIGTERM, then SIGKILL after `timeout_s`) and reap it."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout_s)
        log.info("mosquitto on %s:%s stopped", self.host, self.port)

    def log_text(self) -> str:
        """What mosquitto has logged so far (connections, TLS refusals)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error and the chain of errors it was raised from (amqtt wraps a bind failure in its own)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


class _DropStartupFailure(logging.Filter):
    """amqtt logs its own startup failure with a traceback; `AmqttBroker.start` reports it as a BrokerError."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "Broker startup failed"


class _AlertingSSLProtocol(sslproto.SSLProtocol):
    """asyncio's TLS protocol, except that a failed server handshake sends its alert before closing.

    asyncio drops the alert OpenSSL wrote (e.g. `unknown ca` for a client certificate from another CA),
    so the client sees a bare close; mosquitto sends it, and the link's log line names the refusal from it.
    """

    def _on_handshake_complete(self, handshake_exc):  # type: ignore[override]
        if handshake_exc is not None:
            with contextlib.suppress(Exception):
                self._process_outgoing()
            # asyncio reports no OSError (SSLError is one) to the loop's handler: tell it here.
            self._loop.call_exception_handler({"message": "TLS handshake refused", "exception": handshake_exc})
        super()._on_handshake_complete(handshake_exc)


class _AlertingEventLoop(asyncio.SelectorEventLoop):
    """The amqtt broker's loop: TLS connections use `_AlertingSSLProtocol` (same arguments as asyncio's own).

    It keeps its connections, so that a stop closes every one even when amqtt's own shutdown fails: a
    client must hear the broker go (as when mosquitto exits), not keep a socket nobody reads.
    """

    def __init__(self) -> None:
        super().__init__()
        self.connections: weakref.WeakSet = weakref.WeakSet()

    def abort_connections(self) -> None:
        """Close every client connection at once (in the loop's thread)."""
        for transport in list(self.connections):
            transport.abort()

    def _make_ssl_transport(self, rawsock, protocol, sslcontext, waiter=None, *, server_side=False,
                            server_hostname=None, extra=None, server=None,
                            ssl_handshake_timeout=constants.SSL_HANDSHAKE_TIMEOUT,
                            ssl_shutdown_timeout=constants.SSL_SHUTDOWN_TIMEOUT):
        ssl_protocol = _AlertingSSLProtocol(self, protocol, sslcontext, waiter, server_side, server_hostname,
                                            ssl_handshake_timeout=ssl_handshake_timeout,
                                            ssl_shutdown_timeout=ssl_shutdown_timeout)
        raw = selector_events._SelectorSocketTransport(self, rawsock, ssl_protocol, extra=extra, server=server)
        self.connections.add(raw)
        return ssl_protocol._app_transport


class _PolicyLines(logging.Handler):
    """Keeps the policy plugin's lines for one fallback broker (the one whose ACL file they name)."""

    def __init__(self, lines: deque[str], acl_json: str):
        super().__init__(logging.INFO)
        self.lines = lines
        self.acl_json = acl_json

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "acl_json", None) == self.acl_json:
            self.lines.append(record.getMessage())


class AmqttBroker:
    """An embedded amqtt broker on its own event-loop thread, for machines without mosquitto.

    amqtt only asks for a client certificate (CERT_OPTIONAL); this subclass hook makes it required,
    so the fallback refuses the same clients mosquitto refuses.
    """

    kind = "amqtt"

    def __init__(self, tls: BrokerTLS, work_dir: Path, port: int = 0, host: str = "127.0.0.1",
                 acl_path: Path | None = None):
        self.tls = tls
        # With an ACL file, its JSON twin (`<acl>.json`) drives simcore.cloud.amqtt_policy's exact check.
        self.acl_json = Path(f"{acl_path}.json") if acl_path is not None else None
        self.work_dir = Path(work_dir)
        self.host = host
        self.port = port  # 0 until the first start binds one
        self._port_is_ours = port == 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker = None
        self._log_lines: deque[str] = deque(maxlen=LOG_LINES_KEPT)
        self._policy_log_attached = False

    @property
    def running(self) -> bool:
        """Whether the broker's loop thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def _config(self) -> dict:
        return {
            "listeners": {
                "default": {
                    "type": "tcp",
                    "bind": f"{self.host}:{self.port}",
                    "ssl": True,
                    "cafile": str(self.tls.ca_path),
                    "certfile": str(self.tls.cert_path),
                    "keyfile": str(self.tls.key_path),
                }
            },
            # Not amqtt's AnonymousAuthPlugin: amqtt queues nothing for an anonymous session while it is away.
            "plugins": {"simcore.cloud.amqtt_auth.CertificateAuthPlugin": {},
                        **({"simcore.cloud.amqtt_policy.PolicyTopicPlugin": {"acl_json": str(self.acl_json)}}
                           if self.acl_json is not None else {})},
        }

    def reload(self) -> None:
        """Nothing to do: the policy plugin reads its file again whenever it changes."""

    def start(self) -> None:
        """Start the broker thread and return once it accepts connections (port 0: one chosen as mosquitto's)."""
        if self.running:
            return
        _start_on_a_port(self)

    def _start_once(self) -> None:
        try:
            from amqtt.broker import Action, Broker  # imported here: only the fallback needs it
        except ImportError:
            raise BrokerError(f"no MQTT broker to run: mosquitto is not installed and neither is amqtt; "
                              f"{INSTALL_HINT}") from None

        class _RequiredCertBroker(Broker):
            @staticmethod
            def _create_ssl_context(listener):  # type: ignore[override]
                context = Broker._create_ssl_context(listener)
                context.verify_mode = ssl.CERT_REQUIRED
                return context

            async def _initialize_client_session(self, reader, writer, *args):
                # The certificate's CN is the client's identity, as mosquitto's use_identity_as_username.
                handler, session = await super()._initialize_client_session(reader, writer, *args)
                ssl_object = writer.get_ssl_info()
                certificate = ssl_object.getpeercert() if ssl_object is not None else None
                for rdn in (certificate or {}).get("subject", ()):
                    for key, value in rdn:
                        if key == "commonName":
                            session.username = value
                return handler, session

            async def _handle_message_delivery(self, client_session, handler, wait_deliver):
                # amqtt refuses every client publish to a `$` topic; AWS IoT's `$aws/...` request topics
                # are published by clients, so those are broadcast here, after the policy check (if any).
                message = wait_deliver.result()
                topic = getattr(message, "topic", "") or ""
                if topic.startswith("$aws/") and "+" not in topic and "#" not in topic:
                    if await self._topic_filtering(client_session, topic=topic, action=Action.PUBLISH):
                        await self._broadcast_message(client_session, topic, message.data)
                    return True
                return await super()._handle_message_delivery(client_session, handler, wait_deliver)

        started = threading.Event()
        failure: list[BaseException] = []
        if self.acl_json is not None and not self._policy_log_attached:
            # The policy plugin's denials, kept in log_text() as mosquitto's log keeps its own.
            policy_log = logging.getLogger("simcore.cloud.amqtt_policy")
            policy_log.setLevel(logging.INFO)
            policy_log.addHandler(_PolicyLines(self._log_lines, str(self.acl_json)))
            self._policy_log_attached = True
        amqtt_log = logging.getLogger("amqtt.broker")
        if not any(isinstance(existing, _DropStartupFailure) for existing in amqtt_log.filters):
            amqtt_log.addFilter(_DropStartupFailure())

        def serve() -> None:
            loop = _AlertingEventLoop()
            loop.set_exception_handler(self._record_loop_error)
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._broker = self._new_broker(_RequiredCertBroker, loop)
                loop.run_until_complete(self._broker.start())
            except BaseException as error:  # reported to start()'s caller
                failure.append(error)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=serve, name="amqtt-broker", daemon=True)
        self._thread.start()
        started.wait(READY_TIMEOUT_S)
        if failure:
            if any(isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE for cause in _causes(failure[0])):
                raise port_taken(self.host, self.port) from None
            raise BrokerError(f"amqtt broker failed to start on {self.host}:{self.port}: {failure[0]}") from failure[0]
        _wait_listening(self.host, self.port, time.monotonic() + READY_TIMEOUT_S, lambda: self.running)

    def _new_broker(self, broker_class: type, loop: asyncio.AbstractEventLoop):
        """The amqtt broker to run (a subclass may extend `broker_class`: the core's device server does)."""
        return broker_class(self._config(), loop=loop)

    def _record_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        # What asyncio reports on the broker's connections (TLS refusals above all), kept like mosquitto's log.
        line = f"{context.get('message', '')}: {context.get('exception', '')}"
        self._log_lines.append(line)
        log.debug("amqtt broker: %s", line)

    def log_text(self) -> str:
        """What the broker's connections reported (TLS refusals), the last LOG_LINES_KEPT lines."""
        return "\n".join(self._log_lines)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Shut the broker down and join its thread."""
        loop, broker, thread = self._loop, self._broker, self._thread
        if loop is None or broker is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(timeout_s)
        except Exception as error:  # amqtt could not finish its shutdown: its listener must still go
            log.warning("amqtt broker shutdown: %s; closing its listener", error or type(error).__name__)
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_close_listeners(broker), loop).result(timeout_s)
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_abort_connections(loop), loop).result(timeout_s)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)
        self._loop = self._broker = self._thread = None


async def _close_listeners(broker) -> None:
    """Close amqtt's listening sockets (already closed after a clean shutdown): the port must be free to rebind."""
    for server in getattr(broker, "_servers", {}).values():
        instance = getattr(server, "instance", None)
        if instance is not None:
            instance.close()


async def _abort_connections(loop: _AlertingEventLoop) -> None:
    """Abort every client connection and let the loop run the closes it schedules (before it is stopped)."""
    loop.abort_connections()
    for _ in range(2):
        await asyncio.sleep(0)


def _read_from(path: Path, offset: int) -> str:
    """What a file holds past `offset` ("" when it cannot be read)."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def _start_on_a_port(broker: MosquittoBroker | AmqttBroker) -> None:
    """`broker._start_once()`, choosing its port again (up to PORT_ATTEMPTS) when the one it chose was taken.

    The broker binds the port itself: a port picked here and bound later by someone else is tried again,
    never handed over. Once started, the port is kept, so a restart keeps the port clients know.
    """
    for attempt in range(1, PORT_ATTEMPTS + 1):
        if broker._port_is_ours:
            broker.port = _candidate_port()
        try:
            broker._start_once()
        except BrokerError as error:
            if not (broker._port_is_ours and error.port_taken and attempt < PORT_ATTEMPTS):
                raise
            log.info("port %s was taken before the %s broker bound it; trying another", broker.port, broker.kind)
            continue
        broker._port_is_ours = False
        return


def installed_mosquitto() -> str | None:
    """The mosquitto executable this machine can run (Debian's path first, then PATH), or None."""
    if os.access(MOSQUITTO, os.X_OK):
        return MOSQUITTO
    return shutil.which("mosquitto")


def make_broker(tls: BrokerTLS, work_dir: Path, port: int = 0, prefer: str = "mosquitto",
                acl_path: Path | None = None):
    """mosquitto when its executable is installed (and `prefer` allows), otherwise the amqtt fallback.

    `acl_path`: mosquitto enforces that ACL file; the amqtt fallback the exact policies in its JSON twin
    (`simcore.cloud.amqtt_policy`).
    """
    executable = installed_mosquitto() if prefer == "mosquitto" else None
    if executable is not None:
        return MosquittoBroker(tls, work_dir, port=port, executable=executable, acl_path=acl_path)
    # Info, not a warning: the fallback is a supported broker, and the broker kind is in every start line.
    log.info("mosquitto not found; using the embedded amqtt broker")
    return AmqttBroker(tls, work_dir, port=port, acl_path=acl_path)
