"""An emulated BME680 on an emulated I2C bus: an SMBus-like object the real `bme680` driver can talk to.

The chip answers its chip id, variant, calibration registers and, after a forced-mode write, the raw ADC
registers for a target temperature, humidity and pressure. The raw values come from INVERTING Bosch's
floating-point compensation (datasheet section 3.3, as also printed in Bosch's BME680_driver): the driver
reads them back through its own integer maths, so a test proves the driver and the emulator agree on the
register map and the compensation, within the sensor's stated accuracy.

The calibration constants are those of a real BME680 (printed by the wrclark/bme680 readout example).
Bus faults are emulated too: `fail_next(n)` makes the next n transfers raise `OSError(EIO)`, `unplug()`
makes every transfer raise `OSError(ENXIO)` (no device acknowledges the address) until `plug_in()`.
"""

from __future__ import annotations

import errno
import threading

CHIP_ID = 0x61
VARIANT_LOW = 0x00

REG_CHIP_ID = 0xD0
REG_VARIANT = 0xF0
REG_SOFT_RESET = 0xE0
REG_CTRL_MEAS = 0x74
REG_FIELD0 = 0x1D
SOFT_RESET_CMD = 0xB6
NEW_DATA = 0x80

# Calibration of a real chip (signed where the datasheet says so).
REAL_CHIP_CALIBRATION: dict[str, int] = {
    "par_t1": 26203,
    "par_t2": 26519,
    "par_t3": 3,
    "par_p1": 35008,
    "par_p2": -10284,
    "par_p3": 88,
    "par_p4": 9692,
    "par_p5": -202,
    "par_p6": 30,
    "par_p7": 24,
    "par_p8": -516,
    "par_p9": -3469,
    "par_p10": 30,
    "par_h1": 794,
    "par_h2": 1007,
    "par_h3": 0,
    "par_h4": 45,
    "par_h5": 20,
    "par_h6": 120,
    "par_h7": -100,
    "par_gh1": -30,
    "par_gh2": -12000,
    "par_gh3": 18,
    "res_heat_range": 1,
    "res_heat_val": 40,
    "range_sw_err": 0,
}

ADC_20_BIT_MAX = (1 << 20) - 1
ADC_16_BIT_MAX = (1 << 16) - 1


def _u8(value: int) -> int:
    return value & 0xFF


class EmulatedBME680Bus:
    """An SMBus stand-in with one BME680 at `address`; set the weather with `set_environment`."""

    def __init__(
        self, address: int = 0x76, calibration: dict[str, int] | None = None, chip_id: int = CHIP_ID
    ) -> None:
        self.address = address
        self.calibration = dict(REAL_CHIP_CALIBRATION if calibration is None else calibration)
        self.registers: list[int] = [0] * 256
        self.registers[REG_CHIP_ID] = chip_id
        self.registers[REG_VARIANT] = VARIANT_LOW
        self._write_calibration()
        self.temperature_c = 20.0
        self.humidity_pct = 50.0
        self.pressure_hpa = 1013.25
        self.measurements = 0
        self.transfers = 0
        self._failures_left = 0
        self._unplugged = False
        self.closed = False
        self._lock = threading.Lock()

    # --- what a test controls -----------------------------------------------------------------------
    def set_environment(self, temperature_c: float, humidity_pct: float, pressure_hpa: float) -> None:
        """The weather the chip measures at its next forced-mode conversion."""
        self.temperature_c = temperature_c
        self.humidity_pct = humidity_pct
        self.pressure_hpa = pressure_hpa

    def fail_next(self, transfers: int) -> None:
        """Make the next `transfers` bus transfers fail with OSError(EIO), as a glitching bus does."""
        self._failures_left = transfers

    def unplug(self) -> None:
        """Every transfer fails with OSError(ENXIO) until `plug_in` (the chip is gone from the bus)."""
        self._unplugged = True

    def plug_in(self) -> None:
        """The chip answers again."""
        self._unplugged = False

    # --- the smbus2.SMBus surface the driver uses -------------------------------------------------
    def read_byte_data(self, i2c_addr: int, register: int) -> int:
        """Read one register."""
        self._transfer(i2c_addr)
        return self.registers[register]

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]:
        """Read `length` consecutive registers."""
        self._transfer(i2c_addr)
        return list(self.registers[register : register + length])

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None:
        """Write one register; a soft reset or a forced-mode write acts like the chip would."""
        self._transfer(i2c_addr)
        self._write(register, value)

    def write_i2c_block_data(self, i2c_addr: int, register: int, values: list[int]) -> None:
        """Write consecutive registers."""
        self._transfer(i2c_addr)
        for offset, value in enumerate(values):
            self._write(register + offset, value)

    def close(self) -> None:
        """Release the bus (smbus2.SMBus.close)."""
        self.closed = True

    # --- the chip ------------------------------------------------------------------------------------
    def _transfer(self, i2c_addr: int) -> None:
        with self._lock:
            self.transfers += 1
            if self._unplugged or i2c_addr != self.address:
                raise OSError(errno.ENXIO, "No such device or address")
            if self._failures_left > 0:
                self._failures_left -= 1
                raise OSError(errno.EIO, "Remote I/O error")

    def _write(self, register: int, value: int) -> None:
        if register == REG_SOFT_RESET:
            if value == SOFT_RESET_CMD:
                for control in range(0x70, 0x76):
                    self.registers[control] = 0
            return
        self.registers[register] = _u8(value)
        if register == REG_CTRL_MEAS and value & 0x03 == 0x01:
            self._measure()
            # A forced conversion ends with the chip back in sleep mode.
            self.registers[REG_CTRL_MEAS] = _u8(value) & ~0x03

    def _measure(self) -> None:
        raw = raw_adc_for(self.calibration, self.temperature_c, self.humidity_pct, self.pressure_hpa)
        self.measurements += 1
        regs = self.registers
        regs[REG_FIELD0] = NEW_DATA
        regs[0x1E] = _u8(self.measurements)
        adc_p, adc_t, adc_h = raw["pressure"], raw["temperature"], raw["humidity"]
        regs[0x1F], regs[0x20], regs[0x21] = adc_p >> 12, _u8(adc_p >> 4), _u8(adc_p << 4)
        regs[0x22], regs[0x23], regs[0x24] = adc_t >> 12, _u8(adc_t >> 4), _u8(adc_t << 4)
        regs[0x25], regs[0x26] = adc_h >> 8, _u8(adc_h)
        # A gas reading (range 5, mid-scale ADC), valid and heater-stable, so the driver's gas maths runs too.
        gas_adc, gas_range = 600, 5
        regs[0x2A] = gas_adc >> 2
        regs[0x2B] = _u8((gas_adc << 6) | 0x20 | 0x10 | gas_range)

    def _write_calibration(self) -> None:
        """Place the calibration constants at the datasheet's register addresses."""
        cal = self.calibration
        regs = self.registers

        def word(lsb_addr: int, value: int) -> None:
            regs[lsb_addr] = _u8(value)
            regs[lsb_addr + 1] = _u8(value >> 8)

        word(0xE9, cal["par_t1"])
        word(0x8A, cal["par_t2"])
        regs[0x8C] = _u8(cal["par_t3"])
        word(0x8E, cal["par_p1"])
        word(0x90, cal["par_p2"])
        regs[0x92] = _u8(cal["par_p3"])
        word(0x94, cal["par_p4"])
        word(0x96, cal["par_p5"])
        regs[0x99] = _u8(cal["par_p6"])
        regs[0x98] = _u8(cal["par_p7"])
        word(0x9C, cal["par_p8"])
        word(0x9E, cal["par_p9"])
        regs[0xA0] = _u8(cal["par_p10"])
        # par_h1 and par_h2 are 12-bit values sharing register 0xE2 (h1 in bits 3:0, h2 in bits 7:4).
        regs[0xE3] = _u8(cal["par_h1"] >> 4)
        regs[0xE1] = _u8(cal["par_h2"] >> 4)
        regs[0xE2] = _u8(((cal["par_h2"] & 0x0F) << 4) | (cal["par_h1"] & 0x0F))
        regs[0xE4] = _u8(cal["par_h3"])
        regs[0xE5] = _u8(cal["par_h4"])
        regs[0xE6] = _u8(cal["par_h5"])
        regs[0xE7] = _u8(cal["par_h6"])
        regs[0xE8] = _u8(cal["par_h7"])
        word(0xEB, cal["par_gh2"])
        regs[0xED] = _u8(cal["par_gh1"])
        regs[0xEE] = _u8(cal["par_gh3"])
        regs[0x02] = _u8(cal["res_heat_range"] << 4)
        regs[0x00] = _u8(cal["res_heat_val"])
        regs[0x04] = _u8(cal["range_sw_err"] << 4)


# --- Bosch's floating-point compensation (datasheet 3.3.1-3.3.3) and its inversion -------------------
def t_fine_float(cal: dict[str, int], adc_t: float) -> float:
    """Bosch's float `t_fine` for a raw temperature; the temperature in °C is t_fine / 5120."""
    var1 = (adc_t / 16384.0 - cal["par_t1"] / 1024.0) * cal["par_t2"]
    var2 = ((adc_t / 131072.0 - cal["par_t1"] / 8192.0) ** 2) * (cal["par_t3"] * 16.0)
    return var1 + var2


def pressure_float(cal: dict[str, int], t_fine: float, adc_p: float) -> float:
    """Bosch's float pressure compensation, in Pa."""
    var1 = t_fine / 2.0 - 64000.0
    var2 = var1 * var1 * (cal["par_p6"] / 131072.0)
    var2 = var2 + var1 * cal["par_p5"] * 2.0
    var2 = var2 / 4.0 + cal["par_p4"] * 65536.0
    var1 = ((cal["par_p3"] * var1 * var1) / 16384.0 + cal["par_p2"] * var1) / 524288.0
    var1 = (1.0 + var1 / 32768.0) * cal["par_p1"]
    press = 1048576.0 - adc_p
    press = ((press - var2 / 4096.0) * 6250.0) / var1
    var1 = (cal["par_p9"] * press * press) / 2147483648.0
    var2 = press * (cal["par_p8"] / 32768.0)
    var3 = (press / 256.0) ** 3 * (cal["par_p10"] / 131072.0)
    return press + (var1 + var2 + var3 + cal["par_p7"] * 128.0) / 16.0


def humidity_float(cal: dict[str, int], temperature_c: float, adc_h: float) -> float:
    """Bosch's float humidity compensation, in %RH (unclamped)."""
    var1 = adc_h - (cal["par_h1"] * 16.0 + (cal["par_h3"] / 2.0) * temperature_c)
    var2 = var1 * (
        (cal["par_h2"] / 262144.0)
        * (1.0 + (cal["par_h4"] / 16384.0) * temperature_c + (cal["par_h5"] / 1048576.0) * temperature_c**2)
    )
    var3 = cal["par_h6"] / 16384.0
    var4 = cal["par_h7"] / 2097152.0
    return var2 + (var3 + var4 * temperature_c) * var2 * var2


def _bisect_increasing(function, target: float, low: int, high: int) -> int:
    """The integer x in [low, high] whose function(x) is nearest to target, for an increasing function."""
    while high - low > 1:
        middle = (low + high) // 2
        if function(middle) < target:
            low = middle
        else:
            high = middle
    return low if abs(function(low) - target) <= abs(function(high) - target) else high


def raw_adc_for(
    cal: dict[str, int], temperature_c: float, humidity_pct: float, pressure_hpa: float
) -> dict[str, int]:
    """The raw ADC values a chip with calibration `cal` would read for this weather."""
    adc_t = _bisect_increasing(lambda adc: t_fine_float(cal, adc) / 5120.0, temperature_c, 0, ADC_20_BIT_MAX)
    t_fine = t_fine_float(cal, adc_t)
    # Compensated pressure falls as the raw value rises: bisect on its negation.
    adc_p = _bisect_increasing(
        lambda adc: -pressure_float(cal, t_fine, adc), -pressure_hpa * 100.0, 0, ADC_20_BIT_MAX
    )
    adc_h = _bisect_increasing(
        lambda adc: humidity_float(cal, t_fine / 5120.0, adc), humidity_pct, 0, ADC_16_BIT_MAX
    )
    return {"temperature": adc_t, "pressure": adc_p, "humidity": adc_h}
