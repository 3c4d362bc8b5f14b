"""The stand-in cloud's MQTT broker: Debian's mosquitto with a mutual-TLS listener, or embedded amqtt.

Both listen on 127.0.0.1 only, require a client certificate signed by the local CA and take the
certificate's CN as the client's identity (mosquitto's `use_identity_as_username`). Persistence is off:
the stand-in keeps no session state across restarts, like a fresh AWS IoT connection with a clean session.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from simcore.errors import StartError

MOSQUITTO = "/usr/sbin/mosquitto"
READY_TIMEOUT_S = 10.0

log = logging.getLogger(__name__)


class BrokerError(StartError):
    """The broker could not be started or stopped; the message says what failed and how to fix it."""

    code = "BrokerError"


INSTALL_HINT = "install mosquitto (`apt-get install mosquitto`) or amqtt (`pip install amqtt`)"


def port_taken(host: str, port: int) -> BrokerError:
    """The error for a listen port something else holds."""
    return BrokerError(f"cannot listen on {host}:{port}: the port is already in use; stop what holds it, "
                       "or pick another port (`--port 0` picks a free one)")


@dataclass(frozen=True)
class BrokerTLS:
    """The files a TLS listener needs: the CA that signs clients, and the server's own certificate."""

    ca_path: Path
    cert_path: Path
    key_path: Path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


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
                 executable: str = MOSQUITTO):
        self.tls = tls
        self.work_dir = Path(work_dir)
        self.host = host
        self.port = port or free_port(host)
        self.executable = executable
        self.conf_path = self.work_dir / "mosquitto.conf"
        self.log_path = self.work_dir / "mosquitto.log"
        self._process: subprocess.Popen | None = None

    def _write_conf(self) -> None:
        lines = [
            "# Written by simcore.cloud.broker: the local stand-in for AWS IoT Core.",
            "per_listener_settings false",
            "persistence false",
            "allow_anonymous false",
            "connection_messages true",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            f"log_dest file {self.log_path}",
            "max_inflight_messages 100",
            "max_queued_messages 100000",
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
        self.work_dir.mkdir(parents=True, exist_ok=True)
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
        """Start mosquitto and return once it accepts connections."""
        if self.running:
            return
        self._write_conf()
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        stderr_path = self.work_dir / "mosquitto.stderr"
        stderr_offset = stderr_path.stat().st_size if stderr_path.exists() else 0
        stderr_log = open(stderr_path, "ab")  # noqa: SIM115 - owned by the process
        try:
            self._process = subprocess.Popen(
                [self.executable, "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL, stdout=stderr_log, stderr=stderr_log,
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


class AmqttBroker:
    """An embedded amqtt broker on its own event-loop thread, for machines without mosquitto.

    amqtt only asks for a client certificate (CERT_OPTIONAL); this subclass hook makes it required,
    so the fallback refuses the same clients mosquitto refuses.
    """

    kind = "amqtt"

    def __init__(self, tls: BrokerTLS, work_dir: Path, port: int = 0, host: str = "127.0.0.1"):
        self.tls = tls
        self.work_dir = Path(work_dir)
        self.host = host
        self.port = port or free_port(host)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker = None

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
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }

    def start(self) -> None:
        """Start the broker thread and return once it accepts connections."""
        if self.running:
            return
        try:
            from amqtt.broker import Broker  # imported here: only the fallback needs it
        except ImportError:
            raise BrokerError(f"no MQTT broker to run: mosquitto is not installed and neither is amqtt; "
                              f"{INSTALL_HINT}") from None

        class _RequiredCertBroker(Broker):
            @staticmethod
            def _create_ssl_context(listener):  # type: ignore[override]
                context = Broker._create_ssl_context(listener)
                context.verify_mode = ssl.CERT_REQUIRED
                return context

            async def _handle_message_delivery(self, client_session, handler, wait_deliver):
                # amqtt refuses every client publish to a `$` topic; AWS IoT's `$aws/...` request topics
                # are published by clients, so those are broadcast here (no plugin hooks: none configured).
                message = wait_deliver.result()
                topic = getattr(message, "topic", "") or ""
                if topic.startswith("$aws/") and "+" not in topic and "#" not in topic:
                    await self._broadcast_message(client_session, topic, message.data)
                    return True
                return await super()._handle_message_delivery(client_session, handler, wait_deliver)

        started = threading.Event()
        failure: list[BaseException] = []
        amqtt_log = logging.getLogger("amqtt.broker")
        if not any(isinstance(existing, _DropStartupFailure) for existing in amqtt_log.filters):
            amqtt_log.addFilter(_DropStartupFailure())

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._broker = _RequiredCertBroker(self._config(), loop=loop)
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

    def stop(self, timeout_s: float = 5.0) -> None:
        """Shut the broker down and join its thread."""
        loop, broker, thread = self._loop, self._broker, self._thread
        if loop is None or broker is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(timeout_s)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)
        self._loop = self._broker = self._thread = None


def _read_from(path: Path, offset: int) -> str:
    """What a file holds past `offset` ("" when it cannot be read)."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def make_broker(tls: BrokerTLS, work_dir: Path, port: int = 0, prefer: str = "mosquitto"):
    """mosquitto when its executable is installed (and `prefer` allows), otherwise the amqtt fallback."""
    if prefer == "mosquitto" and (os.access(MOSQUITTO, os.X_OK) or shutil.which("mosquitto")):
        executable = MOSQUITTO if os.access(MOSQUITTO, os.X_OK) else str(shutil.which("mosquitto"))
        return MosquittoBroker(tls, work_dir, port=port, executable=executable)
    log.warning("mosquitto not found; using the embedded amqtt broker")
    return AmqttBroker(tls, work_dir, port=port)
