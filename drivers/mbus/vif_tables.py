"""Value information tables of EN 13757-3 (2004/2013): what a VIF means.

Each code maps to the project's quantity name and unit. Values are kept in a
fixed unit per quantity so a point never changes unit when a meter changes
its exponent: energy in Wh (or J when the meter counts joules), volume in m3,
mass in kg, power in W (or J/h), flows in m3/h and kg/h, temperatures in
degC, temperature differences in K, pressure in bar, durations in s.
Imperial codes of the FB table are converted to these units.

The tables are plain dicts built once at import, so decoding a VIF is one
lookup.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "VifInfo",
    "VifeInfo",
    "PRIMARY",
    "EXT_FD",
    "EXT_FB",
    "COMBINABLE",
    "VIFE_ERRORS",
    "RESERVED",
]

# How the data of a record is read, beyond the DIF coding.
NUMBER = "number"  # signed integer / BCD / real, scaled
BINARY = "binary"  # unsigned bit field or counter, never scaled
DATE = "date"  # type G
DATETIME = "datetime"  # type F (32 bit), I (48 bit), J (24 bit, time only), G (16 bit)


@dataclass(frozen=True, slots=True)
class VifInfo:
    """Meaning of one VIF (or of the true VIF of the FB/FD extension tables).

    The decoded value is ``raw * factor * 10**exponent + offset``.
    """

    quantity: str
    unit: str = ""
    exponent: int = 0
    factor: float = 1
    offset: float = 0.0
    kind: str = NUMBER


@dataclass(frozen=True, slots=True)
class VifeInfo:
    """Meaning of one combinable (orthogonal) VIFE.

    ``suffix`` extends the quantity name (``energy`` + ``forward`` gives
    ``energy_forward``); ``unit_suffix`` extends the unit (``/h``);
    ``exponent`` scales the value (multiplicative correction factors);
    ``kind`` overrides how the data is read (dates of limit exceedance).
    """

    suffix: str = ""
    unit_suffix: str = ""
    exponent: int = 0
    kind: str | None = None
    unit: str | None = None  # replaces the unit (durations)
    factor: float = 1


RESERVED = VifInfo("reserved")

_DURATION = (1, 60, 3600, 86400)  # nn = 0..3: seconds, minutes, hours, days
_FT3_M3 = 0.028316846592
_USGAL_M3 = 0.003785411784


def _ranged(
    table: dict[int, VifInfo],
    first: int,
    count: int,
    quantity: str,
    unit: str,
    exp0: int,
    factor: float = 1,
    offset_f: bool = False,
) -> None:
    for n in range(count):
        if offset_f:
            # degrees Fahrenheit to Celsius: (F - 32) * 5/9
            table[first + n] = VifInfo(quantity, unit, exp0 + n, factor * 5 / 9, -32 * 5 / 9)
        else:
            table[first + n] = VifInfo(quantity, unit, exp0 + n, factor)


def _durations(table: dict[int, VifInfo], first: int, quantity: str, units: tuple = _DURATION) -> None:
    for n, mult in enumerate(units):
        if isinstance(mult, str):
            table[first + n] = VifInfo(quantity, mult)
        else:
            table[first + n] = VifInfo(quantity, "s", 0, mult)


def _primary() -> dict[int, VifInfo]:
    t: dict[int, VifInfo] = {}
    _ranged(t, 0x00, 8, "energy", "Wh", -3)
    _ranged(t, 0x08, 8, "energy", "J", 0)
    _ranged(t, 0x10, 8, "volume", "m3", -6)
    _ranged(t, 0x18, 8, "mass", "kg", -3)
    _durations(t, 0x20, "on_time")
    _durations(t, 0x24, "operating_time")
    _ranged(t, 0x28, 8, "power", "W", -3)
    _ranged(t, 0x30, 8, "power", "J/h", 0)
    _ranged(t, 0x38, 8, "volume_flow", "m3/h", -6)
    _ranged(t, 0x40, 8, "volume_flow", "m3/h", -7, 60)  # sent as m3/min
    _ranged(t, 0x48, 8, "volume_flow", "m3/h", -9, 3600)  # sent as m3/s
    _ranged(t, 0x50, 8, "mass_flow", "kg/h", -3)
    _ranged(t, 0x58, 4, "flow_temperature", "degC", -3)
    _ranged(t, 0x5C, 4, "return_temperature", "degC", -3)
    _ranged(t, 0x60, 4, "temperature_difference", "K", -3)
    _ranged(t, 0x64, 4, "external_temperature", "degC", -3)
    _ranged(t, 0x68, 4, "pressure", "bar", -3)
    t[0x6C] = VifInfo("date", kind=DATE)
    t[0x6D] = VifInfo("date_time", kind=DATETIME)
    t[0x6E] = VifInfo("hca")  # units for heat cost allocation, dimensionless
    t[0x6F] = RESERVED
    _durations(t, 0x70, "averaging_duration")
    _durations(t, 0x74, "actuality_duration")
    t[0x78] = VifInfo("fabrication_no", kind=BINARY)
    t[0x79] = VifInfo("enhanced_identification", kind=BINARY)
    t[0x7A] = VifInfo("bus_address", kind=BINARY)
    t[0x7B] = RESERVED  # only meaningful as 0xFB, with a VIFE
    t[0x7D] = RESERVED  # only meaningful as 0xFD, with a VIFE
    t[0x7E] = VifInfo("any")  # readout selection of all VIFs
    t[0x7F] = VifInfo("manufacturer_specific")
    return t


def _ext_fd() -> dict[int, VifInfo]:
    t: dict[int, VifInfo] = {}
    _ranged(t, 0x00, 4, "credit", "currency", -3)
    _ranged(t, 0x04, 4, "debit", "currency", -3)
    names = {
        0x08: "access_number",
        0x09: "medium",
        0x0A: "manufacturer",
        0x0B: "parameter_set_id",
        0x0C: "model_version",
        0x0D: "hardware_version",
        0x0E: "firmware_version",
        0x0F: "software_version",
        0x10: "customer_location",
        0x11: "customer",
        0x12: "access_code_user",
        0x13: "access_code_operator",
        0x14: "access_code_system_operator",
        0x15: "access_code_developer",
        0x16: "password",
        0x17: "error_flags",
        0x18: "error_mask",
        0x1A: "digital_output",
        0x1B: "digital_input",
        0x1E: "retry",
        0x20: "first_storage_cyclic",
        0x21: "last_storage_cyclic",
        0x22: "storage_block_size",
        0x60: "reset_counter",
        0x61: "cumulation_counter",
        0x62: "control_signal",
        0x63: "day_of_week",
        0x64: "week_number",
        0x65: "day_change_time",
        0x66: "parameter_activation_state",
        0x67: "special_supplier_information",
        0x75: "meter_stop_count",
    }
    for code, name in names.items():
        t[code] = VifInfo(name, kind=BINARY)
    t[0x1C] = VifInfo("baud_rate", "Bd", kind=BINARY)
    t[0x1D] = VifInfo("response_delay", "bit_times", kind=BINARY)
    _durations(t, 0x24, "storage_interval", (*_DURATION, "month", "year"))
    _durations(t, 0x2C, "duration_since_readout")
    t[0x30] = VifInfo("tariff_start", kind=DATETIME)
    _durations(t, 0x31, "tariff_duration", (60, 3600, 86400))
    _durations(t, 0x34, "tariff_period", (*_DURATION, "month", "year"))
    t[0x3A] = VifInfo("dimensionless")
    _ranged(t, 0x40, 16, "voltage", "V", -9)
    _ranged(t, 0x50, 16, "current", "A", -12)
    _durations(t, 0x68, "duration_since_cumulation", (3600, 86400, "month", "year"))
    _durations(t, 0x6C, "battery_operating_time", (3600, 86400, "month", "year"))
    t[0x70] = VifInfo("battery_change_date", kind=DATETIME)
    t[0x71] = VifInfo("rf_level", "dBm")
    t[0x74] = VifInfo("battery_remaining", "s", 0, 86400)  # sent in days
    return t


def _ext_fb() -> dict[int, VifInfo]:
    t: dict[int, VifInfo] = {}
    _ranged(t, 0x00, 2, "energy", "Wh", 5)  # 0.1 MWh .. 1 MWh
    _ranged(t, 0x08, 2, "energy", "J", 8)  # 0.1 GJ .. 1 GJ
    _ranged(t, 0x10, 2, "volume", "m3", 2)
    _ranged(t, 0x18, 2, "mass", "kg", 5)  # 100 t .. 1000 t
    t[0x21] = VifInfo("volume", "m3", -1, _FT3_M3)
    _ranged(t, 0x22, 2, "volume", "m3", -1, _USGAL_M3)
    t[0x24] = VifInfo("volume_flow", "m3/h", -3, _USGAL_M3 * 60)
    t[0x25] = VifInfo("volume_flow", "m3/h", 0, _USGAL_M3 * 60)
    t[0x26] = VifInfo("volume_flow", "m3/h", 0, _USGAL_M3)
    _ranged(t, 0x28, 2, "power", "W", 5)  # 0.1 MW .. 1 MW
    _ranged(t, 0x30, 2, "power", "J/h", 8)  # 0.1 GJ/h .. 1 GJ/h
    _ranged(t, 0x58, 4, "flow_temperature", "degC", -3, offset_f=True)
    _ranged(t, 0x5C, 4, "return_temperature", "degC", -3, offset_f=True)
    _ranged(t, 0x60, 4, "temperature_difference", "K", -3, 5 / 9)
    _ranged(t, 0x64, 4, "external_temperature", "degC", -3, offset_f=True)
    _ranged(t, 0x70, 4, "temperature_limit", "degC", -3, offset_f=True)
    _ranged(t, 0x74, 4, "temperature_limit", "degC", -3)
    _ranged(t, 0x78, 8, "cumulative_max_power", "W", -3)
    return t


def _combinable() -> dict[int, VifeInfo]:
    t: dict[int, VifeInfo] = {}
    per = [
        "s",
        "min",
        "h",
        "d",
        "week",
        "month",
        "year",
        "revolution",
        "pulse_in0",
        "pulse_in1",
        "pulse_out0",
        "pulse_out1",
        "l",
        "m3",
        "kg",
        "K",
        "kWh",
        "GJ",
        "kW",
        "Kl",
        "V",
        "A",
    ]
    for n, u in enumerate(per):
        t[0x20 + n] = VifeInfo(f"per_{u.lower()}", f"/{u}")
    for n, channel in enumerate(("in0", "in1", "out0", "out1")):
        # increment per pulse: the pulse weight, in the unit of the VIF
        t[0x28 + n] = VifeInfo(f"per_pulse_{channel}")
    t[0x36] = VifeInfo("times_s", "*s")
    t[0x37] = VifeInfo("times_s_per_v", "*s/V")
    t[0x38] = VifeInfo("times_s_per_a", "*s/A")
    t[0x39] = VifeInfo("start_date", kind=DATETIME, unit="")
    t[0x3A] = VifeInfo("uncorrected")
    t[0x3B] = VifeInfo("forward")
    t[0x3C] = VifeInfo("backward")
    t[0x3D] = VifeInfo("nonmetric")
    t[0x3E] = VifeInfo("base_conditions")
    t[0x3F] = VifeInfo("obis")
    for upper, side in ((0, "lower"), (8, "upper")):
        t[0x40 | upper] = VifeInfo(f"{side}_limit")
        t[0x41 | upper] = VifeInfo(f"{side}_limit_exceeds", unit="")
        for code, what in ((0x42, "first_begin"), (0x43, "first_end"), (0x46, "last_begin"), (0x47, "last_end")):
            t[code | upper] = VifeInfo(f"{side}_limit_{what}_date", kind=DATETIME, unit="")
        for first, which in ((0, "first"), (4, "last")):
            for nn, mult in enumerate(_DURATION):
                t[0x50 | upper | first | nn] = VifeInfo(f"{side}_limit_{which}_duration", unit="s", factor=mult)
    for first, which in ((0, "first"), (4, "last")):
        for nn, mult in enumerate(_DURATION):
            t[0x60 | first | nn] = VifeInfo(f"{which}_duration", unit="s", factor=mult)
    for code, what in ((0x6A, "first_begin"), (0x6B, "first_end"), (0x6E, "last_begin"), (0x6F, "last_end")):
        t[code] = VifeInfo(f"date_{what}", kind=DATETIME, unit="")
    for n in range(8):
        t[0x70 + n] = VifeInfo(exponent=n - 6)
    t[0x7D] = VifeInfo(exponent=3)
    t[0x7E] = VifeInfo("future")
    return t


# Error codes a slave may put in a VIFE (E000 xxxx); EN 13757-3 Table 16.
VIFE_ERRORS: dict[int, str] = {
    0x00: "none",
    0x01: "too many DIFEs",
    0x02: "storage number not implemented",
    0x03: "unit number not implemented",
    0x04: "tariff number not implemented",
    0x05: "function not implemented",
    0x06: "data class not implemented",
    0x07: "data size not implemented",
    0x0B: "too many VIFEs",
    0x0C: "illegal VIF group",
    0x0D: "illegal VIF exponent",
    0x0E: "VIF/DIF mismatch",
    0x0F: "unimplemented action",
    0x15: "no data available",
    0x16: "data overflow",
    0x17: "data underflow",
    0x18: "data error",
    0x1C: "premature end of record",
}

PRIMARY: dict[int, VifInfo] = _primary()
EXT_FD: dict[int, VifInfo] = _ext_fd()
EXT_FB: dict[int, VifInfo] = _ext_fb()
COMBINABLE: dict[int, VifeInfo] = _combinable()
