"""Assembles the sensor Lambda from its environment and answers the messages routed to it.

`SensorApp.from_environment` never raises: a bad setting or a missing chip is logged, counted, and shown
in `reported.sensor`; the handler keeps answering. The SDK calls come in as plain functions, so this module
(and everything it imports) runs without a core.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Dict, Mapping, Optional, Tuple

from sensor_to_shadow import health as status
from sensor_to_shadow.control import MessageError, parse_delta, parse_rejected
from sensor_to_shadow.health import SensorHealth
from sensor_to_shadow.loop import SensorLoop
from sensor_to_shadow.settings import SensorSettings, load_settings
from sensor_to_shadow.shadow_writer import GetCall, ShadowWriter, UpdateCall
from sensor_to_shadow.source_bme680 import Bme680Source, open_smbus
from sensor_to_shadow.source_replay import ReplayError, ReplaySource

log = logging.getLogger(__name__)

# `reported.read_interval_error`: why the last desired read_interval_s was refused and what was kept.
REFUSAL_FIELD = "read_interval_error"


def make_source(settings: SensorSettings, open_bus: Callable[[int], object] = open_smbus,
                replay_path: Optional[str] = None) -> object:
    """The configured source; raises ReplayError (or ValueError) when it cannot be built."""
    spec = settings.source
    if spec is None:
        raise ValueError("no usable SENSOR_SOURCE")
    if spec.kind == "replay":
        return ReplaySource(spec, settings.replay_speed, replay_path)
    return Bme680Source(settings.i2c_bus, open_bus)


class SensorApp:
    """One sensor Lambda: its settings, health, loop and message handling."""

    def __init__(self, settings: SensorSettings, update: UpdateCall, get: GetCall,
                 open_bus: Callable[[int], object] = open_smbus, replay_path: Optional[str] = None) -> None:
        self.settings = settings
        self.health = SensorHealth()
        for problem in settings.problems:
            log.error("configuration: %s", problem)
        self.writer = ShadowWriter(settings.thing_name or "", update, get, self.health)
        self.loop: Optional[SensorLoop] = None
        self.config_error: Optional[str] = None
        if settings.thing_name is None:
            self.config_error = "no thing name: set THING_NAME (or run on a core with AWS_IOT_THING_NAME)"
        elif settings.source is None:
            self.config_error = "; ".join(settings.problems)
        else:
            try:
                source = make_source(settings, open_bus, replay_path)
                self.loop = SensorLoop(source, self.writer, self.health, settings.read_interval_s)
            except (ReplayError, ValueError) as error:
                self.config_error = str(error)
        if self.config_error:
            log.error("sensor not started: %s", self.config_error)
            self.health.set_status(status.CONFIG_ERROR, self.config_error)
        self.thread: Optional[threading.Thread] = None
        # The last refused delta (its reason and the desired value's timestamp): answered once, not again.
        self._last_refusal: Optional[Tuple[str, object]] = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], update: UpdateCall, get: GetCall) -> "SensorApp":
        """Build from the Lambda's environment variables."""
        return cls(load_settings(environ), update, get)

    def start(self) -> None:
        """Start the reading thread (daemon: the core stops the process, not the thread).

        Without a usable source the thread only reports the configuration error in the shadow, so the
        cloud sees why no readings come; without a thing name there is no shadow to tell.
        """
        if self.loop is None and not self.settings.thing_name:
            return
        self.thread = threading.Thread(target=self._run, name="sensor-loop", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        loop = self.loop
        if loop is None:
            self.writer.report({"sensor": self.health.as_reported()})
            return
        try:
            loop.resume_from_shadow()
        except Exception:  # after every retry: readings matter more than the resumed seq
            log.exception("could not read the shadow at start after retrying; starting from seq 1 and the "
                          "first record (a replay may repeat records, seq restarts)")
        loop.run()

    # --- messages -----------------------------------------------------------------------------------
    def handle(self, event: object, subject: Optional[str]) -> Dict[str, object]:
        """Answer one routed message by its topic; never raises. The answer says what was done."""
        topic = subject or ""
        try:
            if topic.endswith("/shadow/update/delta"):
                return self._on_delta(event)
            if topic.endswith("/shadow/update/rejected"):
                return self._on_rejected(event)
            raise MessageError("no subscription of the sensor Lambda delivers topic {!r}".format(subject))
        except MessageError as error:
            self.health.count("bad_messages")
            log.warning("bad message on %r: %s", subject, error)
            return {"ok": False, "error": {"code": "BadMessage", "message": str(error)}}

    def _on_delta(self, event: object) -> Dict[str, object]:
        try:
            request = parse_delta(event)
        except MessageError as error:
            refusal = (str(error), _desired_timestamp(event))
            if refusal == self._last_refusal:
                # Answered already: every later change of the shadow (each reading) brings the same delta
                # while the desired value stands; answering each one again is the update/delta loop.
                log.debug("delta: %s (answered before)", error)
                return {"ok": False, "error": {"code": "BadMessage", "message": str(error)}, "answered": False}
            self._last_refusal = refusal
            # Tell the cloud once why its desired value was not applied, and what the sensor kept.
            self.health.note_error("desired state rejected: {}".format(error))
            self._report({"read_interval_s": self._interval(),
                          REFUSAL_FIELD: "{}; keeping {} s".format(error, self._interval()),
                          "sensor": self.health.as_reported()})
            raise
        if request.ignored_keys:
            log.info("delta: ignoring desired keys the sensor does not own: %s",
                     ", ".join(request.ignored_keys))
        if request.read_interval_s is None:
            return {"ok": True, "applied": {}}
        if self.loop is not None:
            self.loop.set_read_interval(request.read_interval_s)
        log.info("read interval set to %s s by the cloud (delta version %s)",
                 request.read_interval_s, request.version)
        reported: Dict[str, object] = {"read_interval_s": request.read_interval_s}
        if self._last_refusal is not None:
            reported[REFUSAL_FIELD] = None  # the refusal no longer describes the shadow: delete it
            self._last_refusal = None
        self._report(reported)
        return {"ok": True, "applied": {"read_interval_s": request.read_interval_s}}

    def _on_rejected(self, event: object) -> Dict[str, object]:
        rejection = parse_rejected(event)
        self.health.count("shadow_rejected")
        log.error("shadow update rejected: code %s, %s (clientToken %s)",
                  rejection.code, rejection.message, rejection.client_token)
        ours = (rejection.client_token or "").startswith("sensor-")
        if rejection.code == 409 and not ours and self.loop is not None and self.loop.last_reported:
            # Someone else's stale write: after a fresh get, report our current state again.
            self.writer.get_document()
            self._report(self.loop.last_reported)
        return {"ok": True, "rejection": rejection._asdict()}

    def _interval(self) -> float:
        return self.loop.read_interval_s if self.loop is not None else self.settings.read_interval_s

    def _report(self, reported: Mapping[str, object]) -> None:
        if self.settings.thing_name:
            self.writer.report(reported)


def _desired_timestamp(event: object) -> object:
    """When the refused desired value was written (the delta's metadata), so a value set again is answered."""
    metadata = event.get("metadata") if isinstance(event, Mapping) else None
    entry = metadata.get("read_interval_s") if isinstance(metadata, Mapping) else None
    return entry.get("timestamp") if isinstance(entry, Mapping) else None
