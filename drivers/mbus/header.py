"""Data headers of a RSP_UD (EN 13757-3 clause 5): who answered, and in what state.

The long header (CI 0x72/0x76) is 12 bytes::

    identification (4, BCD)  manufacturer (2)  version (1)  medium (1)
    access number (1)  status (1)  signature (2)

The short header (CI 0x7A) keeps the last four; CI 0x78 has no header.
"""

from __future__ import annotations

from dataclasses import dataclass

from zaas_edge.drivers.mbus.errors import MBusError

__all__ = [
    "LongHeader",
    "ShortHeader",
    "decode_manufacturer",
    "encode_manufacturer",
    "medium_name",
    "MEDIUM_NAMES",
    "status_flags",
    "parse_long_header",
    "parse_short_header",
]

LONG_HEADER_SIZE = 12
SHORT_HEADER_SIZE = 4

# EN 13757-3 Table 3 (medium / device type), with stable snake_case names.
MEDIUM_NAMES: dict[int, str] = {
    0x00: "other",
    0x01: "oil",
    0x02: "electricity",
    0x03: "gas",
    0x04: "heat_outlet",
    0x05: "steam",
    0x06: "warm_water",
    0x07: "water",
    0x08: "heat_cost_allocator",
    0x09: "compressed_air",
    0x0A: "cooling_outlet",
    0x0B: "cooling_inlet",
    0x0C: "heat_inlet",
    0x0D: "heat_cooling",
    0x0E: "bus_system",
    0x0F: "unknown",
    0x14: "calorific_value",
    0x15: "hot_water",
    0x16: "cold_water",
    0x17: "dual_water",
    0x18: "pressure",
    0x19: "ad_converter",
    0x1A: "smoke_detector",
    0x1B: "room_sensor",
    0x1C: "gas_detector",
    0x20: "breaker",
    0x21: "valve",
    0x25: "customer_unit",
    0x28: "waste_water",
    0x29: "garbage",
    0x2A: "carbon_dioxide",
    0x31: "communication_controller",
    0x32: "repeater_unidirectional",
    0x33: "repeater_bidirectional",
    0x36: "radio_converter_system",
    0x37: "radio_converter_meter",
}


def medium_name(code: int) -> str:
    """Snake-case name of a medium code; ``reserved_0xNN`` for unassigned codes."""
    return MEDIUM_NAMES.get(code, f"reserved_0x{code:02x}")


def decode_manufacturer(code: int) -> str:
    """Three letters from the 15-bit field: each letter is 5 bits, 'A' = 1.

    Bit 15 (set by some wireless meters) is ignored. Codes outside A..Z
    come out as the characters they encode (e.g. '@' for 0), never an error:
    the identification of a meter must stay readable even when odd.
    """
    code &= 0x7FFF
    return "".join(chr(((code >> shift) & 0x1F) + 64) for shift in (10, 5, 0))


def encode_manufacturer(letters: str) -> int:
    text = letters.upper()
    if len(text) != 3 or any(not "A" <= ch <= "Z" for ch in text):
        raise MBusError(f"manufacturer must be three letters A..Z, got {letters!r}")
    return ((ord(text[0]) - 64) << 10) | ((ord(text[1]) - 64) << 5) | (ord(text[2]) - 64)


def status_flags(status: int) -> tuple[str, ...]:
    """Names of the bits set in the status byte (EN 13757-3 Table 4)."""
    flags: list[str] = []
    app = status & 0x03
    if app == 1:
        flags.append("application_busy")
    elif app == 2:
        flags.append("application_error")
    elif app == 3:
        flags.append("abnormal_condition")
    if status & 0x04:
        flags.append("power_low")
    if status & 0x08:
        flags.append("permanent_error")
    if status & 0x10:
        flags.append("temporary_error")
    for bit in (0x20, 0x40, 0x80):
        if status & bit:
            flags.append(f"manufacturer_0x{bit:02x}")
    return tuple(flags)


@dataclass(frozen=True, slots=True)
class ShortHeader:
    """Access number, status and signature (CI 0x7A, and the tail of the long header)."""

    access_no: int
    status: int
    signature: int

    @property
    def flags(self) -> tuple[str, ...]:
        return status_flags(self.status)

    @property
    def has_error(self) -> bool:
        """The meter reports an application, permanent or temporary error."""
        return bool(self.status & 0x1A) or (self.status & 0x03) in (2, 3)


@dataclass(frozen=True, slots=True)
class LongHeader(ShortHeader):
    """The secondary address of the meter plus the short header fields.

    ``identification`` is the 8-digit number as text; digits A..F (not BCD)
    are kept as hex letters rather than refused.
    """

    identification: str
    manufacturer: str
    version: int
    medium: int

    @property
    def medium_name(self) -> str:
        return medium_name(self.medium)

    @property
    def secondary_address(self) -> str:
        """16 hex digits as used to select the meter: ID, manufacturer, version, medium."""
        return (
            f"{self.identification}{encode_manufacturer_or_raw(self.manufacturer):04X}"
            f"{self.version:02X}{self.medium:02X}"
        )

    def to_bytes(self, msb_first: bool = False) -> bytes:
        ident = bytes.fromhex(self.identification)
        man = encode_manufacturer_or_raw(self.manufacturer).to_bytes(2, "big")
        sig = self.signature.to_bytes(2, "big")
        if not msb_first:
            ident, man, sig = ident[::-1], man[::-1], sig[::-1]
        return ident + man + bytes((self.version, self.medium, self.access_no, self.status)) + sig


def encode_manufacturer_or_raw(letters: str) -> int:
    """Like :func:`encode_manufacturer` but also takes back what
    :func:`decode_manufacturer` produced from an out-of-range code."""
    return ((ord(letters[0]) - 64) << 10) | ((ord(letters[1]) - 64) << 5) | (ord(letters[2]) - 64)


def _need(data: bytes, pos: int, size: int, what: str, base: int) -> None:
    if len(data) - pos < size:
        raise MBusError(f"{what} needs {size} bytes, only {len(data) - pos} left", base + pos)


def parse_long_header(data: bytes, pos: int = 0, msb_first: bool = False, *, base: int = 0) -> LongHeader:
    _need(data, pos, LONG_HEADER_SIZE, "long data header", base)
    h = data[pos : pos + LONG_HEADER_SIZE]
    ident, man, sig = h[0:4], h[4:6], h[10:12]
    if not msb_first:
        ident, man, sig = ident[::-1], man[::-1], sig[::-1]
    return LongHeader(
        access_no=h[8],
        status=h[9],
        signature=int.from_bytes(sig, "big"),
        identification=ident.hex().upper(),
        manufacturer=decode_manufacturer(int.from_bytes(man, "big")),
        version=h[6],
        medium=h[7],
    )


def parse_short_header(data: bytes, pos: int = 0, msb_first: bool = False, *, base: int = 0) -> ShortHeader:
    _need(data, pos, SHORT_HEADER_SIZE, "short data header", base)
    sig = data[pos + 2 : pos + 4]
    if not msb_first:
        sig = sig[::-1]
    return ShortHeader(access_no=data[pos], status=data[pos + 1], signature=int.from_bytes(sig, "big"))
