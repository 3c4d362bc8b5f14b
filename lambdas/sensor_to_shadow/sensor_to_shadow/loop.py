"""The sensor Lambda's long-lived work: read, validate, add the tendency, report; back off when the bus fails.

`step()` does one reading and says how long to wait before the next; `run()` repeats it on its own thread
until stopped. Waiting uses an Event, so a new interval from the cloud takes effect at once.
In replay mode the wait comes from the records' own time step and REPLAY_SPEED; `read_interval_s` is
still reported (and applied to the hardware mode only).
"""

from __future__ import annotations

import collections
import logging
import threading
from typing import Deque, Dict, Optional

from sensor_to_shadow import health as status
from sensor_to_shadow.control import MessageError, parse_read_interval
from sensor_to_shadow.health import SensorHealth
from sensor_to_shadow.reading import Reading
from sensor_to_shadow.shadow_writer import FAILED, WRITTEN, ShadowWriter
from sensor_to_shadow.source_bme680 import SensorError
from sensor_to_shadow.source_replay import ReplayFinished
from sensor_to_shadow.tendency import PressureHistory
from sensor_to_shadow.validation import InvalidReading, check_field, validate

log = logging.getLogger(__name__)

BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 300.0
# Readings the shadow could not store (a full disk: 500), kept in memory and written oldest first once it
# stores again, so the inference Lambda still sees each one. About 0.5 KB each: 1024 hold ~17 hours at the
# default 60 s interval in ~0.5 MB. Beyond it the oldest go first (counted in readings_dropped).
MAX_UNWRITTEN_READINGS = 1024
FINISH_RETRY_S = 5.0  # a finished replay with readings still unwritten tries again this often


def _json_time(ts: float) -> object:
    return int(ts) if float(ts).is_integer() else round(ts, 3)


class SensorLoop:
    """Turns readings from `source` into shadow reports through `writer`.

    `source` has `read() -> Reading` (raising SensorError, or ReplayFinished at the end of a replay) and,
    for a replay, `seconds_until_next()` and `preroll` (the records of the 3 h before the range).
    """

    def __init__(self, source: object, writer: ShadowWriter, health: SensorHealth, read_interval_s: float,
                 history: Optional[PressureHistory] = None) -> None:
        self.source = source
        self.writer = writer
        self.health = health
        self.read_interval_s = read_interval_s
        self.history = history if history is not None else PressureHistory()
        self.seq = 0
        self.last_reported: Dict[str, object] = {}
        self.consecutive_errors = 0
        self.wake = threading.Event()
        self.stop_requested = threading.Event()
        self.is_replay = hasattr(source, "seconds_until_next")
        self.unwritten: Deque[Dict[str, object]] = collections.deque()

    # --- start-up ----------------------------------------------------------------------------------
    def resume_from_shadow(self) -> None:
        """Continue `seq` after the last reported one, resume an unfinished replay after the last reading
        the shadow holds, apply a pending desired read_interval_s, pre-roll."""
        document = self.writer.read_document()
        state = document.get("state") if isinstance(document.get("state"), dict) else {}
        reported = state.get("reported") if isinstance(state.get("reported"), dict) else {}
        seq = reported.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool) and seq > 0:
            self.seq = seq
        if self.is_replay:
            self._resume_replay(reported)
        delta = state.get("delta") if isinstance(state.get("delta"), dict) else {}
        if "read_interval_s" in delta:
            try:
                self.set_read_interval(parse_read_interval(delta["read_interval_s"]))
                self.writer.report({"read_interval_s": self.read_interval_s})
            except MessageError as error:
                log.warning("pending desired %s", error)
        self.preroll()

    def _resume_replay(self, reported: Dict[str, object]) -> None:
        # Only the same replay, left unfinished: a finished one (or another range) starts from its beginning.
        ts = reported.get("ts")
        sensor = reported.get("sensor") if isinstance(reported.get("sensor"), dict) else {}
        same_replay = reported.get("replay") == getattr(self.source, "identity", None)
        if not same_replay or sensor.get("status") == status.FINISHED:
            return
        if isinstance(ts, bool) or not isinstance(ts, (int, float)):
            return
        skipped = self.source.resume_after(float(ts))
        log.info("resuming %s after ts %s, the shadow's last reading (seq %s): %d records already written",
                 reported.get("replay"), ts, self.seq, skipped)

    def preroll(self) -> int:
        """Feed the history with the replay's records before its range (silently): returns how many."""
        fed = 0
        for reading in getattr(self.source, "preroll", ()):
            try:
                check_field("pressure", reading.pressure)
            except InvalidReading:
                continue
            self.history.add(reading.ts, reading.pressure)
            fed += 1
        return fed

    # --- control -------------------------------------------------------------------------------------
    def set_read_interval(self, seconds: float) -> None:
        """Use a new interval from now on (wakes the loop so it applies at once)."""
        self.read_interval_s = seconds
        self.wake.set()

    def stop(self) -> None:
        """Ask `run` to return."""
        self.stop_requested.set()
        self.wake.set()

    # --- work ----------------------------------------------------------------------------------------
    def step(self) -> Optional[float]:
        """One reading; the seconds to wait before the next, or None when there is nothing more to read."""
        try:
            reading = self.source.read()
        except ReplayFinished as finished:
            if not self.write_unwritten():
                return FINISH_RETRY_S  # the end is reported once every reading is in the shadow
            log.info("%s", finished)
            self._report_status(status.FINISHED, str(finished))
            return None
        except SensorError as error:
            return self._sensor_failed(str(error))
        self.consecutive_errors = 0
        try:
            validate(reading)
        except InvalidReading as invalid:
            reason = "invalid reading from {}: {}".format(reading.origin or "sensor", invalid)
            log.warning("%s; not written", reason)
            self.health.count("invalid_readings")
            self._report_status(status.INVALID, reason)
            self._remember_pressure(reading)
            return self._next_delay()
        self._write(reading)
        return self._next_delay()

    def _remember_pressure(self, reading: Reading) -> None:
        # Training adds every record's pressure to the history even when another field is missing:
        # a valid pressure beside a bad humidity still counts, so tendencies match training's.
        try:
            check_field("pressure", reading.pressure)
            self.history.add(reading.ts, reading.pressure)
        except (InvalidReading, ValueError):
            pass

    def run(self) -> None:
        """Repeat `step` until stopped or the source is exhausted; never raises."""
        self.wake.clear()  # an interval applied before the start needs no early wake-up
        while not self.stop_requested.is_set():
            try:
                delay = self.step()
            except Exception:  # a bug must not kill the pinned Lambda's only worker thread silently
                log.exception("sensor loop step failed")
                self.health.count("errors")
                delay = BACKOFF_MAX_S
            if delay is None:
                return
            self.wake.wait(delay)
            self.wake.clear()

    def _write(self, reading: Reading) -> None:
        tendency = self.history.add(reading.ts, reading.pressure)
        self.seq += 1
        self.health.set_status(status.OK)
        reported: Dict[str, object] = {
            "temperature": reading.temperature,
            "humidity": reading.humidity,
            "pressure": reading.pressure,
            "pressure_tendency_3h": tendency,
            "ts": _json_time(reading.ts),
            "seq": self.seq,
            "read_interval_s": self.read_interval_s,
            "sensor": self.health.as_reported(),
        }
        if self.is_replay:
            reported["observed_rain"] = reading.observed_rain
            reported["replay"] = self.source.identity  # a restart resumes only the same replay
        if len(self.unwritten) >= MAX_UNWRITTEN_READINGS and not self.write_unwritten():
            dropped = self.unwritten.popleft()
            self.health.count("readings_dropped")
            log.error("%d readings wait for the shadow: dropping the oldest (seq %s)", len(self.unwritten) + 1,
                      dropped.get("seq"))
        self.unwritten.append(reported)
        self.write_unwritten()

    def write_unwritten(self) -> bool:
        """Write the readings waiting for the shadow, oldest first; True when none is left waiting.

        Stops at the first one the shadow cannot store yet (it stays first in line). One the shadow
        refuses for its content (400, 413) would be refused again: it is counted and let go.
        """
        while self.unwritten:
            reported = self.unwritten[0]
            self.health.set_unwritten(len(self.unwritten) - 1)  # those still waiting behind this one
            reported["sensor"] = self.health.as_reported()
            outcome = self.writer.write(reported)
            if outcome == FAILED:
                break
            self.unwritten.popleft()
            if outcome == WRITTEN:
                self.health.count("readings")
                self.last_reported = reported
        self.health.set_unwritten(len(self.unwritten))
        if self.unwritten:
            log.warning("%d readings wait for the shadow to store them again (oldest seq %s)",
                        len(self.unwritten), self.unwritten[0].get("seq"))
        return not self.unwritten

    def _sensor_failed(self, reason: str) -> float:
        self.consecutive_errors += 1
        self.health.count("errors")
        ceiling = max(BACKOFF_MAX_S, self.read_interval_s)
        delay = min(BACKOFF_BASE_S * 2 ** (self.consecutive_errors - 1), ceiling)
        log.error("sensor read failed (%d in a row): %s; retrying in %.1f s",
                  self.consecutive_errors, reason, delay)
        self._report_status(status.ERROR, reason)
        return delay

    def _report_status(self, new_status: str, reason: Optional[str]) -> None:
        # Only a change of status is written: a dead bus must not flood the shadow every backoff step.
        if self.health.set_status(new_status, reason):
            self.writer.report({"sensor": self.health.as_reported()})

    def _next_delay(self) -> float:
        if self.is_replay:
            return self.source.seconds_until_next()
        return self.read_interval_s
