"""Application layer (EN 13757-3): from a frame's CI and data to a telegram.

Supported CI fields:

* 0x72 / 0x76: RSP_UD, variable data structure with the long header
  (0x76 sends multi-byte values most significant byte first);
* 0x7A: RSP_UD, variable data structure with the short header;
* 0x78: RSP_UD, variable data structure without header;
* 0x73 / 0x77: RSP_UD, fixed data structure (two counters);
* 0x70: application error report from the slave;
* 0x71: alarm status (answer to REQ_UD1);
* 0x51: data send from the master (records without header);
* 0x52: selection of a slave by secondary address.

Anything else raises :class:`MBusError` naming the CI.
"""

from __future__ import annotations

from dataclasses import dataclass

from zaas_edge.drivers.mbus import coding as cd
from zaas_edge.drivers.mbus.errors import MBusError
from zaas_edge.drivers.mbus.frames import ControlFrame, Frame, LongFrame, parse_frame
from zaas_edge.drivers.mbus.header import (
    LongHeader,
    ShortHeader,
    decode_manufacturer,
    parse_long_header,
    parse_short_header,
)
from zaas_edge.drivers.mbus.records import DataRecord, Function, parse_records

__all__ = [
    "VariableDataTelegram",
    "FixedDataTelegram",
    "ApplicationError",
    "AlarmStatus",
    "SecondarySelection",
    "Telegram",
    "APPLICATION_ERRORS",
    "FIXED_MEDIUM_NAMES",
    "decode_user_data",
    "decode_frame",
    "decode_telegram",
]

# Offset of the first data byte in a long frame: 68 L L 68 C A CI.
FRAME_DATA_OFFSET = 7

APPLICATION_ERRORS: dict[int, str] = {
    0: "unspecified error",
    1: "unimplemented CI field",
    2: "buffer too long, truncated",
    3: "too many records",
    4: "premature end of record",
    5: "more than 10 DIFEs",
    6: "more than 10 VIFEs",
    7: "reserved",
    8: "application too busy for handling readout request",
    9: "too many readouts",
}


@dataclass(frozen=True, slots=True)
class VariableDataTelegram:
    """A variable data structure: header (long, short or none) and records."""

    ci: int
    header: LongHeader | ShortHeader | None
    records: tuple[DataRecord, ...]
    manufacturer_data: bytes = b""
    more_records_follow: bool = False

    def by_key(self) -> dict[str, DataRecord]:
        """Records by :attr:`DataRecord.key`, in telegram order.

        Manufacturer-specific data is left out. A key seen again gets a
        ``#2``, ``#3`` suffix, so no record is lost when a meter repeats one.
        """
        out: dict[str, DataRecord] = {}
        for record in self.records:
            if record.quantity == "manufacturer_data":
                continue
            key = record.key
            if key in out:
                k = 2
                while f"{key}#{k}" in out:
                    k += 1
                key = f"{key}#{k}"
            out[key] = record
        return out


# Fixed data structure: medium codes (4 bits) and counter units (6 bits),
# EN 13757-3 Annex (fixed data structure), as (quantity, unit, exponent).
FIXED_MEDIUM_NAMES = (
    "other",
    "oil",
    "electricity",
    "gas",
    "heat",
    "steam",
    "hot_water",
    "water",
    "heat_cost_allocator",
    "reserved",
    "gas_mode2",
    "heat_mode2",
    "hot_water_mode2",
    "water_mode2",
    "heat_cost_allocator_mode2",
    "reserved",
)


def _fixed_units() -> dict[int, tuple[str, str, int]]:
    t: dict[int, tuple[str, str, int]] = {0x00: ("time", "", 0), 0x01: ("date", "", 0)}
    for n in range(9):
        t[0x02 + n] = ("energy", "Wh", n)  # Wh .. 100 MWh
        t[0x0B + n] = ("energy", "J", 3 + n)  # kJ .. 100 GJ
        t[0x14 + n] = ("power", "W", n)  # W .. 100 MW
        t[0x1D + n] = ("power", "J/h", 3 + n)  # kJ/h .. 100 GJ/h
        t[0x26 + n] = ("volume", "m3", -6 + n)  # ml .. 100 m3
        t[0x2F + n] = ("volume_flow", "m3/h", -6 + n)  # ml/h .. 100 m3/h
    t[0x38] = ("temperature", "degC", -3)
    t[0x39] = ("hca", "", 0)
    t[0x3F] = ("counter", "", 0)  # without units
    return t


_FIXED_UNITS = _fixed_units()
_FIXED_HISTORIC = 0x3E  # counter 2 only: same unit as counter 1, historic value


@dataclass(frozen=True, slots=True)
class FixedDataTelegram:
    """Fixed data structure (CI 0x73/0x77): identification and two counters."""

    ci: int
    identification: str
    access_no: int
    status: int
    medium: int
    records: tuple[DataRecord, ...]

    @property
    def medium_name(self) -> str:
        return FIXED_MEDIUM_NAMES[self.medium]


@dataclass(frozen=True, slots=True)
class ApplicationError:
    """CI 0x70: the slave could not answer; ``code`` is None when it sent no code."""

    ci: int
    code: int | None
    extra: bytes = b""

    @property
    def message(self) -> str:
        if self.code is None:
            return APPLICATION_ERRORS[0]
        return APPLICATION_ERRORS.get(self.code, f"reserved error code {self.code}")


@dataclass(frozen=True, slots=True)
class AlarmStatus:
    """CI 0x71: alarm status byte(s) sent in answer to REQ_UD1."""

    ci: int
    status: bytes


@dataclass(frozen=True, slots=True)
class SecondarySelection:
    """CI 0x52 from the master: select the slave matching this secondary address.

    ``None`` fields and ``F`` digits in ``identification`` are wildcards.
    """

    ci: int
    identification: str
    manufacturer: str | None
    version: int | None
    medium: int | None

    def matches(self, header: LongHeader) -> bool:
        """Whether a slave with ``header`` is the one being selected."""
        if any(p != "F" and p != h for p, h in zip(self.identification, header.identification, strict=True)):
            return False
        if self.manufacturer is not None and self.manufacturer != header.manufacturer:
            return False
        if self.version is not None and self.version != header.version:
            return False
        return self.medium is None or self.medium == header.medium


Telegram = VariableDataTelegram | FixedDataTelegram | ApplicationError | AlarmStatus | SecondarySelection


def decode_user_data(ci: int, data: bytes, *, base: int = 0) -> Telegram:
    """Decode the user data following the CI field.

    ``base`` is added to byte offsets in error messages.
    """
    data = bytes(data)
    if ci in (0x72, 0x76):
        msb = ci == 0x76
        header = parse_long_header(data, 0, msb, base=base)
        block = parse_records(data, 12, base=base, msb_first=msb)
        return VariableDataTelegram(ci, header, block.records, block.manufacturer_data, block.more_records_follow)
    if ci == 0x7A:
        short = parse_short_header(data, 0, base=base)
        block = parse_records(data, 4, base=base)
        return VariableDataTelegram(ci, short, block.records, block.manufacturer_data, block.more_records_follow)
    if ci in (0x78, 0x51):
        block = parse_records(data, 0, base=base)
        return VariableDataTelegram(ci, None, block.records, block.manufacturer_data, block.more_records_follow)
    if ci in (0x73, 0x77):
        return _decode_fixed(ci, data, base)
    if ci == 0x70:
        return ApplicationError(ci, data[0] if data else None, data[1:])
    if ci == 0x71:
        return AlarmStatus(ci, data)
    if ci == 0x52:
        return _decode_selection(ci, data, base)
    raise MBusError(f"unsupported CI field 0x{ci:02X}", base - 1 if base else None)


def _decode_selection(ci: int, data: bytes, base: int) -> SecondarySelection:
    if len(data) != 8:
        raise MBusError(f"secondary address selection needs 8 bytes, got {len(data)}", base)
    ident = data[3::-1].hex().upper()
    if any(ch not in "0123456789F" for ch in ident):
        raise MBusError(f"selection identification {ident} has digits other than 0-9 and F", base)
    man = int.from_bytes(data[4:6], "little")
    return SecondarySelection(
        ci,
        ident,
        None if man == 0xFFFF else decode_manufacturer(man),
        None if data[6] == 0xFF else data[6],
        None if data[7] == 0xFF else data[7],
    )


def _decode_fixed(ci: int, data: bytes, base: int) -> FixedDataTelegram:
    if len(data) != 16:
        raise MBusError(f"fixed data structure needs 16 bytes, got {len(data)}", base)
    msb = ci == 0x77
    ident_b = data[0:4] if msb else data[3::-1]
    access_no, status = data[4], data[5]
    u1, u2 = data[6], data[7]
    medium = ((u1 & 0xC0) >> 6) | ((u2 & 0xC0) >> 4)
    binary = bool(status & 0x80)
    historic = bool(status & 0x40)
    records = []
    unit1 = _FIXED_UNITS.get(u1 & 0x3F, ("reserved", "", 0))
    for idx, (code, pos) in enumerate(((u1 & 0x3F, 8), (u2 & 0x3F, 12))):
        field = data[pos : pos + 4]
        if msb:
            field = field[::-1]
        storage = 1 if historic else 0
        if idx == 1 and code == _FIXED_HISTORIC:
            quantity, unit, exponent = unit1
            storage = 1
        else:
            quantity, unit, exponent = _FIXED_UNITS.get(code, ("reserved", "", 0))
        raw = cd.decode_int(field, signed=False) if binary else cd.decode_bcd(field)
        if raw is None:
            value = None
        elif exponent >= 0:
            value = raw * 10**exponent
        else:
            value = raw / 10**-exponent
        records.append(
            DataRecord(
                quantity=quantity,
                value=value,
                unit=unit,
                function=Function.INSTANTANEOUS,
                storage=storage,
                coding=0x4 if binary else 0xC,
                data=bytes(data[pos : pos + 4]),
                offset=pos,
                error=None if raw is not None else "invalid BCD digits",
            )
        )
    return FixedDataTelegram(ci, ident_b.hex().upper(), access_no, status, medium, tuple(records))


def decode_frame(frame: Frame) -> Telegram:
    """Decode the application layer of a long or control frame."""
    if isinstance(frame, LongFrame):
        return decode_user_data(frame.ci, frame.data, base=FRAME_DATA_OFFSET)
    if isinstance(frame, ControlFrame):
        return decode_user_data(frame.ci, b"", base=FRAME_DATA_OFFSET)
    raise MBusError(f"{type(frame).__name__} carries no application data")


def decode_telegram(raw: bytes) -> Telegram:
    """Check one complete frame and decode its application layer."""
    return decode_frame(parse_frame(raw))
