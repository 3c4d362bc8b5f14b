"""The real `bme680` driver against the emulated I2C bus, and the Lambda's BME680 source on top of it."""

from __future__ import annotations

import bme680
import pytest
from emulated_bme680 import EmulatedBME680Bus, humidity_float, pressure_float, raw_adc_for, t_fine_float
from sensor_to_shadow.source_bme680 import Bme680Source, SensorError

# The BME680 datasheet's absolute accuracy: ±1 °C, ±3 %RH, ±1 hPa.
TEMPERATURE_TOLERANCE_C = 1.0
HUMIDITY_TOLERANCE_PCT = 3.0
PRESSURE_TOLERANCE_HPA = 1.0

WEATHER = [
    (-40.0, 0.0, 300.0),
    (85.0, 100.0, 1100.0),
    (20.0, 50.0, 1013.25),
    (-10.5, 95.0, 980.4),
    (35.2, 10.0, 1040.0),
    (0.0, 0.5, 870.0),
    (12.3, 77.7, 1001.1),
    (-25.0, 30.0, 650.0),
]


@pytest.mark.parametrize("temperature, humidity, pressure", WEATHER)
def test_driver_reads_back_the_emulated_weather_within_datasheet_accuracy(temperature, humidity, pressure):
    bus = EmulatedBME680Bus()
    bus.set_environment(temperature, humidity, pressure)
    sensor = bme680.BME680(bme680.I2C_ADDR_PRIMARY, bus)
    assert sensor.get_sensor_data()
    assert sensor.data.temperature == pytest.approx(temperature, abs=TEMPERATURE_TOLERANCE_C)
    assert sensor.data.humidity == pytest.approx(humidity, abs=HUMIDITY_TOLERANCE_PCT)
    assert sensor.data.pressure == pytest.approx(pressure, abs=PRESSURE_TOLERANCE_HPA)


def test_raw_values_invert_bosch_float_compensation():
    calibration = EmulatedBME680Bus().calibration
    raw = raw_adc_for(calibration, 21.5, 40.0, 1005.0)
    t_fine = t_fine_float(calibration, raw["temperature"])
    assert t_fine / 5120.0 == pytest.approx(21.5, abs=0.01)
    assert pressure_float(calibration, t_fine, raw["pressure"]) / 100.0 == pytest.approx(1005.0, abs=0.01)
    assert humidity_float(calibration, t_fine / 5120.0, raw["humidity"]) == pytest.approx(40.0, abs=0.01)


def test_driver_parses_the_emulated_calibration_registers_as_the_chip_constants():
    bus = EmulatedBME680Bus()
    sensor = bme680.BME680(bme680.I2C_ADDR_PRIMARY, bus)
    parsed = sensor.calibration_data
    for name, value in bus.calibration.items():
        if name.startswith("par_"):
            assert getattr(parsed, name) == value, name
    assert parsed.res_heat_range == bus.calibration["res_heat_range"]
    assert parsed.range_sw_err == bus.calibration["range_sw_err"]


def test_source_reads_a_reading_with_its_own_timestamp():
    bus = EmulatedBME680Bus()
    bus.set_environment(18.0, 60.0, 1009.0)
    source = Bme680Source(1, open_bus=lambda number: bus, clock=lambda: 1700000000.5)
    reading = source.read()
    assert reading.ts == 1700000000.5
    assert reading.temperature == pytest.approx(18.0, abs=TEMPERATURE_TOLERANCE_C)
    assert reading.humidity == pytest.approx(60.0, abs=HUMIDITY_TOLERANCE_PCT)
    assert reading.pressure == pytest.approx(1009.0, abs=PRESSURE_TOLERANCE_HPA)
    assert reading.observed_rain is None
    assert reading.origin == "bme680@0x76"


def test_source_finds_the_chip_at_the_secondary_address():
    bus = EmulatedBME680Bus(address=0x77)
    source = Bme680Source(1, open_bus=lambda number: bus)
    assert source.read().origin == "bme680@0x77"


def test_source_names_both_addresses_when_no_chip_answers():
    bus = EmulatedBME680Bus()
    bus.unplug()
    source = Bme680Source(3, open_bus=lambda number: bus)
    with pytest.raises(SensorError, match=r"no BME680 on I2C bus 3: 0x76: .*; 0x77: "):
        source.read()
    assert bus.closed


def test_source_rejects_a_chip_with_another_id():
    bus = EmulatedBME680Bus(chip_id=0x60)  # a BME280 answers 0x60
    with pytest.raises(SensorError, match="Invalid CHIP ID: 0x60"):
        Bme680Source(1, open_bus=lambda number: bus).read()


def test_source_reports_a_bus_that_cannot_be_opened():
    def no_bus(number):
        raise FileNotFoundError(2, "No such file or directory", f"/dev/i2c-{number}")

    with pytest.raises(SensorError, match=r"cannot open I2C bus 1 \(/dev/i2c-1\)"):
        Bme680Source(1, open_bus=no_bus).read()


def test_source_turns_a_failing_transfer_into_a_sensor_error_and_reconnects():
    bus = EmulatedBME680Bus()
    opened = []

    def open_bus(number):
        opened.append(number)
        return bus

    source = Bme680Source(1, open_bus=open_bus)
    source.read()
    bus.fail_next(1)
    with pytest.raises(SensorError, match="Remote I/O error"):
        source.read()
    assert bus.closed
    bus.set_environment(30.0, 20.0, 1020.0)
    assert source.read().temperature == pytest.approx(30.0, abs=TEMPERATURE_TOLERANCE_C)
    assert opened == [1, 1]


def test_source_reports_a_missing_smbus2_as_a_sensor_error():
    def no_smbus2(number):
        raise ImportError("No module named 'smbus2'")

    with pytest.raises(SensorError, match="cannot open I2C bus 1 .*smbus2"):
        Bme680Source(1, open_bus=no_smbus2).read()
