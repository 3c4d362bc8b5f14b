"""Readings from a BME680 on an I2C bus, through the pimoroni `bme680` driver and `smbus2`."""

from __future__ import annotations

import logging
import time
from typing import Callable, Optional, Sequence

from sensor_to_shadow.reading import Reading

log = logging.getLogger(__name__)

# Breakouts strap the chip to either address; the driver's default (primary) is tried first.
I2C_ADDRESSES = (0x76, 0x77)


class SensorError(Exception):
    """The chip could not be read (bus error, chip absent, no new data); the message says which."""


def open_smbus(bus_number: int):
    """The real bus: `smbus2.SMBus(bus_number)` (opens /dev/i2c-<n>)."""
    import smbus2  # imported here so the module loads where no bus exists

    return smbus2.SMBus(bus_number)


class Bme680Source:
    """Reads temperature, humidity and pressure from a BME680, re-opening the bus after any failure.

    `open_bus(bus_number)` returns an SMBus-like object (the real one by default; tests pass an emulated
    bus). The driver is created lazily, so constructing this never touches hardware.
    """

    def __init__(self, bus_number: int, open_bus: Callable[[int], object] = open_smbus,
                 addresses: Sequence[int] = I2C_ADDRESSES, clock: Callable[[], float] = time.time) -> None:
        self.bus_number = bus_number
        self._open_bus = open_bus
        self._addresses = tuple(addresses)
        self._clock = clock
        self._bus: Optional[object] = None
        self._driver = None
        self.address: Optional[int] = None

    def read(self) -> Reading:
        """One forced-mode reading, or SensorError naming what failed."""
        if self._driver is None:
            self._connect()
        try:
            if not self._driver.get_sensor_data():
                raise SensorError("BME680 at 0x{:02x} reported no new data".format(self.address))
            data = self._driver.data
            return Reading(ts=self._clock(), temperature=data.temperature, humidity=data.humidity,
                           pressure=data.pressure, origin="bme680@0x{:02x}".format(self.address))
        except OSError as error:
            self.close()
            raise SensorError("I2C read from BME680 at 0x{:02x} on bus {} failed: {}".format(
                self.address, self.bus_number, error)) from error

    def close(self) -> None:
        """Drop the driver and close the bus; the next read starts over."""
        bus, self._bus, self._driver = self._bus, None, None
        if bus is not None and hasattr(bus, "close"):
            try:
                bus.close()
            except OSError as error:
                log.warning("closing I2C bus %s failed: %s", self.bus_number, error)

    def _connect(self) -> None:
        try:
            import bme680  # the driver; imported here so a core without it still loads the module
        except ImportError as error:
            raise SensorError("the bme680 driver is not installed on this core: {}".format(error)) from error
        try:
            self._bus = self._open_bus(self.bus_number)
        except (OSError, ImportError) as error:  # ImportError: smbus2 missing
            raise SensorError("cannot open I2C bus {} (/dev/i2c-{}): {}".format(
                self.bus_number, self.bus_number, error)) from error
        failures = []
        for address in self._addresses:
            try:
                self._driver = bme680.BME680(address, self._bus)
                self.address = address
                log.info("BME680 found at 0x%02x on I2C bus %s", address, self.bus_number)
                return
            # The driver turns a failed chip-id read into RuntimeError; later setup reads raise OSError.
            except (RuntimeError, OSError) as error:
                failures.append("0x{:02x}: {}".format(address, error))
        self.close()
        raise SensorError("no BME680 on I2C bus {}: {}".format(self.bus_number, "; ".join(failures)))
