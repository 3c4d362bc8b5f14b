"""The 3-hour pressure tendency from timestamped pressure readings (one feature definition for training and serving).

Both the sensor Lambda and `resources/rain_model/train.py` feed readings through `PressureHistory`, so the
tendency the model was trained on is computed exactly as the one it is served with.
"""

import bisect
import math
from typing import List, Optional

TENDENCY_WINDOW_S = 3 * 3600.0
"""The tendency is the pressure change over this many seconds."""

TOLERANCE_S = 30 * 60.0
"""The reference reading is the one nearest to `ts - TENDENCY_WINDOW_S`, if it lies within this of it."""

MAX_LOOKBACK_S = 24 * 3600.0
"""Across a gap in the readings, the latest reading before the window, up to this old, is the reference."""

MIN_SPACING_S = 60.0
"""Readings closer than this to the last kept one are not kept: bounds memory at fast read intervals."""


class PressureHistory:
    """Timestamped pressure readings of one sensor, kept just long enough to compute the 3-hour tendency.

    The tendency of a reading at `ts` is the pressure change since a reference reading, expressed per 3 h:
    `(p - p_ref) * window_s / (ts - ts_ref)`. The reference is the kept reading nearest to `ts - window_s`
    within `tolerance_s` (with hourly data: exactly 3 h earlier, and the scale factor is 1). When a gap in the
    record leaves none there, the reference is the latest reading before the window, if it is at most
    `max_lookback_s` old (the change is then scaled down to 3 h). Otherwise, as in the first 3 hours, there
    is no tendency: None.

    Time is the readings' own timestamps (epoch seconds), never the wall clock, so a replay of recorded
    weather at any speed yields the tendencies the live sensor would have. Memory is bounded: at most one
    reading per `min_spacing_s` is kept, and only those inside the window plus tolerance, plus the latest
    one before it: at most `(window_s + tolerance_s) / min_spacing_s + 3` readings (213 with the defaults).
    A timestamp earlier than the last one (a clock stepped back, a replay restarted) clears the history:
    mixing two timelines would give a wrong tendency, and None for three hours is the honest answer.
    """

    def __init__(
        self,
        window_s: float = TENDENCY_WINDOW_S,
        tolerance_s: float = TOLERANCE_S,
        max_lookback_s: float = MAX_LOOKBACK_S,
        min_spacing_s: float = MIN_SPACING_S,
    ) -> None:
        if not 0 <= tolerance_s < window_s:
            raise ValueError("tolerance_s must be >= 0 and smaller than window_s")
        if max_lookback_s < window_s + tolerance_s:
            raise ValueError("max_lookback_s must be at least window_s + tolerance_s")
        if not 0 <= min_spacing_s <= tolerance_s:
            raise ValueError("min_spacing_s must be between 0 and tolerance_s")
        self.window_s = float(window_s)
        self.tolerance_s = float(tolerance_s)
        self.max_lookback_s = float(max_lookback_s)
        self.min_spacing_s = float(min_spacing_s)
        # Two parallel lists sorted by time: bisect needs a plain list of timestamps.
        self._timestamps: List[float] = []
        self._pressures: List[float] = []
        self._latest_ts: Optional[float] = None

    def __len__(self) -> int:
        """How many readings are held."""
        return len(self._timestamps)

    def clear(self) -> None:
        """Forget every reading (tendencies are None until 3 h of history exist again)."""
        del self._timestamps[:]
        del self._pressures[:]
        self._latest_ts = None

    def add(self, ts_epoch_s: float, pressure_hpa: float) -> Optional[float]:
        """Record a reading and return its 3-hour tendency in hPa, or None while there is no reference reading.

        Raises ValueError for a timestamp or pressure that is not a finite number.
        """
        ts = _finite(ts_epoch_s, "ts_epoch_s")
        pressure = _finite(pressure_hpa, "pressure_hpa")
        if self._latest_ts is not None and ts < self._latest_ts:
            self.clear()
        tendency = self._tendency_at(ts, pressure)
        self._keep(ts, pressure)
        return tendency

    def _reference_index(self, ts: float) -> Optional[int]:
        timestamps = self._timestamps
        target = ts - self.window_s
        after = bisect.bisect_left(timestamps, target)  # first kept reading at or after target
        nearest = None
        for candidate in (after - 1, after):
            if not 0 <= candidate < len(timestamps):
                continue
            distance = abs(timestamps[candidate] - target)
            if distance <= self.tolerance_s and (nearest is None or distance < abs(timestamps[nearest] - target)):
                nearest = candidate
        if nearest is not None:
            return nearest
        # A gap: the latest reading before target - tolerance, if not too old.
        before = bisect.bisect_left(timestamps, target - self.tolerance_s) - 1
        if before >= 0 and ts - timestamps[before] <= self.max_lookback_s:
            return before
        return None

    def _tendency_at(self, ts: float, pressure: float) -> Optional[float]:
        reference = self._reference_index(ts)
        if reference is None:
            return None
        elapsed = ts - self._timestamps[reference]
        return (pressure - self._pressures[reference]) * (self.window_s / elapsed)

    def _keep(self, ts: float, pressure: float) -> None:
        self._latest_ts = ts
        timestamps = self._timestamps
        if timestamps and ts - timestamps[-1] < self.min_spacing_s:
            return
        timestamps.append(ts)
        self._pressures.append(pressure)
        # Readings before the horizon are never a within-tolerance reference again; the latest of them is
        # kept as the gap fallback, older ones can go.
        horizon = ts - self.window_s - self.tolerance_s
        stale = bisect.bisect_left(timestamps, horizon) - 1
        if stale > 0:
            del timestamps[:stale]
            del self._pressures[:stale]
        if timestamps and ts - timestamps[0] > self.max_lookback_s:
            del timestamps[0]
            del self._pressures[0]


def _finite(value: float, name: str) -> float:
    # bool is an int and str converts with float(): neither is a pressure or a timestamp.
    if isinstance(value, (bool, str, bytes)):
        raise ValueError("{} must be a number, got {!r}".format(name, value))
    try:
        converted = float(value)
    except (TypeError, ValueError):
        raise ValueError("{} must be a number, got {!r}".format(name, value)) from None
    if not math.isfinite(converted):
        raise ValueError("{} must be finite, got {!r}".format(name, value))
    return converted
