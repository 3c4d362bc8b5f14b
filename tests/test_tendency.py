"""PressureHistory: the 3-hour pressure tendency by reading timestamps, bounded memory, clear errors."""

import math

import pytest
from sensor_to_shadow.tendency import PressureHistory

HOUR = 3600.0
T0 = 1_383_264_000.0  # 2013-11-01T00:00:00Z


def test_first_three_hours_have_no_tendency_then_exact_difference():
    history = PressureHistory()
    pressures = [1010.0, 1009.5, 1009.0, 1008.2, 1007.9]
    tendencies = [history.add(T0 + hour * HOUR, p) for hour, p in enumerate(pressures)]
    assert tendencies[:3] == [None, None, None]
    assert tendencies[3] == pytest.approx(1008.2 - 1010.0)
    assert tendencies[4] == pytest.approx(1007.9 - 1009.5)


def test_uses_reading_timestamps_not_wall_clock():
    # Readings 3 h apart in their own time arrive within microseconds of each other (a fast replay).
    history = PressureHistory()
    assert history.add(T0, 1000.0) is None
    assert history.add(T0 + 3 * HOUR, 1003.0) == pytest.approx(3.0)


def test_reference_within_tolerance_is_nearest_and_scaled_to_three_hours():
    history = PressureHistory()
    history.add(T0, 1000.0)
    history.add(T0 + 20 * 60, 1001.0)
    # ts - 3 h = T0 + 25 min: the reading at T0 + 20 min is nearest; change 1 hPa over 2 h 40 min.
    tendency = history.add(T0 + 3 * HOUR + 25 * 60, 1002.0)
    assert tendency == pytest.approx(1.0 * 3 * HOUR / (3 * HOUR + 5 * 60))


def test_gap_falls_back_to_latest_reading_before_window_scaled():
    history = PressureHistory()
    history.add(T0, 1000.0)
    history.add(T0 + HOUR, 1001.0)
    # Nothing between 2.5 h and 3.5 h before T0 + 6 h: the reading at T0 + 1 h (5 h back) is the reference.
    assert history.add(T0 + 6 * HOUR, 1006.0) == pytest.approx(5.0 * 3 / 5)


def test_reference_older_than_max_lookback_gives_none():
    history = PressureHistory()
    history.add(T0, 1000.0)
    assert history.add(T0 + 25 * HOUR, 1001.0) is None


def test_less_than_two_and_a_half_hours_of_history_gives_none():
    history = PressureHistory()
    history.add(T0, 1000.0)
    assert history.add(T0 + 2 * HOUR, 1001.0) is None


def test_linear_pressure_at_fast_sampling_gives_exact_rate():
    history = PressureHistory()
    rate_per_s = -2.0 / (3 * HOUR)  # falling 2 hPa per 3 h
    tendency = None
    for step in range(0, int(4 * HOUR), 7):  # a reading every 7 s
        tendency = history.add(T0 + step, 1013.0 + rate_per_s * step)
    assert tendency == pytest.approx(-2.0, abs=1e-9)


def test_memory_is_bounded_at_one_reading_per_second():
    history = PressureHistory()
    for step in range(0, int(30 * HOUR), 1):
        history.add(T0 + step, 1000.0 + math.sin(step / 5000.0))
    bound = (history.window_s + history.tolerance_s) / history.min_spacing_s + 3
    assert 0 < len(history) <= bound


def test_clock_stepping_back_clears_history():
    history = PressureHistory()
    for hour in range(4):
        history.add(T0 + hour * HOUR, 1000.0 + hour)
    assert history.add(T0 - HOUR, 990.0) is None
    assert len(history) == 1
    assert history.add(T0 + 2 * HOUR, 993.0) == pytest.approx(3.0)


@pytest.mark.parametrize("ts, pressure, field", [
    (float("nan"), 1000.0, "ts_epoch_s"),
    (T0, float("inf"), "pressure_hpa"),
    (T0, "1000", "pressure_hpa"),
    (T0, None, "pressure_hpa"),
    (True, 1000.0, "ts_epoch_s"),
])
def test_bad_inputs_raise_value_error_naming_the_argument(ts, pressure, field):
    history = PressureHistory()
    with pytest.raises(ValueError, match=field):
        history.add(ts, pressure)
    assert len(history) == 0


def test_invalid_configuration_is_refused():
    with pytest.raises(ValueError, match="max_lookback_s"):
        PressureHistory(max_lookback_s=HOUR)
    with pytest.raises(ValueError, match="tolerance_s"):
        PressureHistory(tolerance_s=4 * HOUR)
