"""Writes `state.reported` to the local shadow through injected SDK calls, and recovers from rejections.

The SDK (`greengrasssdk.client('iot-data')`) raises `ShadowError('... returned error code 409 with message
"Version conflict"')` for an error answer: the code is read back from that message. A 409 is retried after a
fresh get; a 5xx or an IPC failure is retried with backoff; any other code (400, 413) is the payload's fault,
so it is logged and counted, never retried.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from typing import Callable, Dict, Mapping, Optional

from sensor_to_shadow.health import SensorHealth

log = logging.getLogger(__name__)

UpdateCall = Callable[[str, bytes], object]   # (thingName, payload) -> SDK answer
GetCall = Callable[[str], object]             # (thingName) -> SDK answer with the document

WRITTEN, REFUSED, FAILED = "written", "refused", "failed"  # what `ShadowWriter.write` did
_ERROR_CODE = re.compile(r"error code (\d{3})")
MAX_ATTEMPTS = 3
RETRY_BASE_S = 0.5
START_READ_ATTEMPTS = 10   # about 2 minutes of retries (0.5 s doubling to 30 s) before starting without it
START_RETRY_MAX_S = 30.0


def shadow_error_code(error: BaseException) -> Optional[int]:
    """The shadow service's HTTP-like code in an SDK error, or None (an IPC failure, no code)."""
    match = _ERROR_CODE.search(str(error))
    return int(match.group(1)) if match else None


def document_from_answer(answer: object) -> Dict[str, object]:
    """The JSON document in an SDK answer (`{'payload': bytes}`), or {} when there is none."""
    payload = answer.get("payload") if isinstance(answer, Mapping) else answer
    if isinstance(payload, (bytes, bytearray)):
        payload = payload.decode("utf-8")
    if isinstance(payload, str) and payload:
        document = json.loads(payload)
        return document if isinstance(document, dict) else {}
    return {}


class ShadowWriter:
    """Reports state for one thing; safe to call from the reading thread and the handler thread."""

    def __init__(self, thing_name: str, update: UpdateCall, get: GetCall, health: SensorHealth,
                 sleep: Callable[[float], None] = time.sleep, max_attempts: int = MAX_ATTEMPTS) -> None:
        self.thing_name = thing_name
        self._update = update
        self._get = get
        self._health = health
        self._sleep = sleep
        self._max_attempts = max_attempts
        self._lock = threading.Lock()
        self._tokens = 0

    def get_document(self) -> Dict[str, object]:
        """The current shadow document ({} when there is none yet or the get fails: logged)."""
        try:
            return document_from_answer(self._get(self.thing_name))
        except Exception as error:  # the SDK raises plain Exceptions; any of them means "no document"
            code = shadow_error_code(error)
            if code != 404:
                log.warning("get shadow of %s failed: %s", self.thing_name, error)
            return {}

    def read_document(self, attempts: int = START_READ_ATTEMPTS) -> Dict[str, object]:
        """The current document for start-up ({} when the thing has no shadow: 404); a failed get is retried.

        Start-up reads `seq` and the last `ts` from here: taking a failed get for "no shadow" would restart
        `seq` at 1 and a replay at its first record. Raises the last error after `attempts` tries.
        """
        for attempt in range(1, attempts + 1):
            try:
                return document_from_answer(self._get(self.thing_name))
            except Exception as error:  # the SDK raises plain Exceptions
                if shadow_error_code(error) == 404:
                    return {}
                log.warning("get shadow of %s at start failed (attempt %d/%d): %s",
                            self.thing_name, attempt, attempts, error)
                if attempt == attempts:
                    raise
                self._sleep(min(RETRY_BASE_S * 2 ** (attempt - 1), START_RETRY_MAX_S))
        return {}

    def report(self, reported: Mapping[str, object]) -> bool:
        """Write `state.reported`; True when the shadow accepted it."""
        return self.write(reported) == WRITTEN

    def write(self, reported: Mapping[str, object]) -> str:
        """Write `state.reported`: WRITTEN, REFUSED (the payload's fault: never worth sending again) or
        FAILED (the service could not store it, or IPC failed: worth sending again later)."""
        with self._lock:
            self._tokens += 1
            body = {"state": {"reported": dict(reported)}, "clientToken": "sensor-{}".format(self._tokens)}
            payload = json.dumps(body, allow_nan=False).encode("utf-8")
            for attempt in range(1, self._max_attempts + 1):
                try:
                    self._update(self.thing_name, payload)
                    return WRITTEN
                except Exception as error:  # ShadowError, InvocationException: both plain Exceptions
                    code = shadow_error_code(error)
                    self._health.count("shadow_errors")
                    retryable = code is None or code == 409 or code >= 500
                    log.error("shadow update of %s failed (attempt %d/%d, code %s): %s",
                              self.thing_name, attempt, self._max_attempts, code, error)
                    if not retryable:
                        return REFUSED
                    if attempt == self._max_attempts:
                        return FAILED
                    if code == 409:
                        current = self.get_document()
                        log.info("409 on %s: fresh get shows version %s; retrying",
                                 self.thing_name, current.get("version"))
                    else:
                        self._sleep(RETRY_BASE_S * 2 ** (attempt - 1))
            return FAILED
