"""build_features: one reading -> the model's feature vector, with clear errors naming the field."""

import math

import pytest
from rain_inference.features import (
    FEATURE_NAMES,
    FEATURE_UNITS,
    FeatureError,
    TendencyUnavailableError,
    build_features,
    dewpoint_c,
)

READING = {"temperature": 20.0, "humidity": 50.0, "pressure": 1013.2, "pressure_tendency_3h": -1.5}


def test_features_are_in_declared_order_with_units():
    assert FEATURE_NAMES == ("temperature", "humidity", "pressure", "pressure_tendency_3h", "dewpoint_depression")
    assert set(FEATURE_UNITS) == set(FEATURE_NAMES)
    features = build_features(READING)
    assert features[:4] == [20.0, 50.0, 1013.2, -1.5]
    assert features[4] == pytest.approx(20.0 - 9.26, abs=0.01)  # dew point of 20 °C at 50 %RH is ~9.26 °C


def test_saturated_air_has_zero_dewpoint_depression():
    assert dewpoint_c(12.5, 100.0) == pytest.approx(12.5)
    assert build_features(dict(READING, humidity=100.0))[4] == pytest.approx(0.0, abs=1e-9)


def test_integers_and_extra_fields_are_accepted():
    features = build_features(dict(READING, temperature=20, ts=1383264000, seq=7))
    assert features[0] == 20.0 and isinstance(features[0], float)


def test_null_tendency_raises_tendency_unavailable_with_clear_message():
    with pytest.raises(TendencyUnavailableError, match="less than 3 h of pressure history") as caught:
        build_features(dict(READING, pressure_tendency_3h=None))
    assert isinstance(caught.value, FeatureError) and isinstance(caught.value, ValueError)
    assert caught.value.field == "pressure_tendency_3h"
    assert "3 h" in str(caught.value) and "history" in str(caught.value)


def test_missing_pressure_is_reported_before_missing_tendency():
    reading = {"temperature": 20.0, "humidity": 50.0}
    with pytest.raises(FeatureError, match="^pressure: missing") as caught:
        build_features(reading)
    assert caught.value.field == "pressure"
    assert not isinstance(caught.value, TendencyUnavailableError)


@pytest.mark.parametrize("field", ["temperature", "humidity", "pressure"])
def test_missing_field_is_named(field):
    reading = dict(READING)
    del reading[field]
    with pytest.raises(FeatureError, match=f"^{field}: missing"):
        build_features(reading)


@pytest.mark.parametrize("value, message", [
    ("20.0", "must be a number"),
    (True, "must be a number"),
    ([20.0], "must be a number"),
    (float("nan"), "must be finite"),
    (math.inf, "must be finite"),
    (-math.inf, "must be finite"),
])
@pytest.mark.parametrize("field", ["temperature", "humidity", "pressure", "pressure_tendency_3h"])
def test_wrong_type_or_non_finite_value_is_named(field, value, message):
    with pytest.raises(FeatureError, match=f"^{field}: {message}") as caught:
        build_features(dict(READING, **{field: value}))
    assert caught.value.field == field


@pytest.mark.parametrize("field, value", [
    ("temperature", 68.0 + 50),  # °F mistaken for °C
    ("humidity", 101.0),
    ("pressure", 101320.0),  # Pa mistaken for hPa
    ("pressure", 0.0),
])
def test_out_of_range_value_is_named(field, value):
    with pytest.raises(FeatureError, match=f"^{field}: .* is outside"):
        build_features(dict(READING, **{field: value}))


def test_not_a_mapping_is_refused():
    with pytest.raises(FeatureError, match="reading"):
        build_features([20.0, 50.0, 1013.2, -1.5])  # type: ignore[arg-type]
