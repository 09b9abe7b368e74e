"""Building RSP_UD telegrams from records: the inverse of :mod:`.records`.

The meter simulator and tests describe each record as a :class:`RecordSpec`
(the VIF bytes, the value in the decoder's unit, the DIF coding, function,
storage, tariff, subunit) and get the bytes a meter would send. Values are
unscaled with the same tables the decoder uses, so ``decode(encode(spec))``
gives back ``spec.value`` (to the precision of the coding).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time

from zaas_edge.drivers.mbus import coding as cd
from zaas_edge.drivers.mbus import vif_tables as vt
from zaas_edge.drivers.mbus.errors import MBusError
from zaas_edge.drivers.mbus.frames import C_RSP_UD, LongFrame
from zaas_edge.drivers.mbus.header import LongHeader, ShortHeader
from zaas_edge.drivers.mbus.records import (
    CODING_SIZES,
    MAX_DIFE,
    MAX_VIFE,
    Coding,
    DataRecord,
    Function,
    describe_vib,
)

__all__ = [
    "RecordSpec",
    "encode_record",
    "encode_records",
    "encode_variable_data",
    "encode_fixed_data",
    "rsp_ud",
    "spec_from_record",
]

_FUNCTION_BITS = {
    Function.INSTANTANEOUS: 0x00,
    Function.MAXIMUM: 0x10,
    Function.MINIMUM: 0x20,
    Function.ERROR: 0x30,
}
_INT_CODINGS = {Coding.INT8, Coding.INT16, Coding.INT24, Coding.INT32, Coding.INT48, Coding.INT64}
_BCD_CODINGS = {Coding.BCD2, Coding.BCD4, Coding.BCD6, Coding.BCD8, Coding.BCD12}


@dataclass(frozen=True, slots=True)
class RecordSpec:
    """One record to encode.

    ``vib`` is the VIF and its VIFEs as sent, e.g. ``b"\\x06"`` (energy kWh),
    ``b"\\xfd\\x17"`` (error flags); for a plain-text VIF it is
    ``0x7C/0xFC, length, text (last character first), VIFEs``.
    ``value`` is in the unit the decoder reports for that VIF (Wh, m3, ...),
    an ISO string for date VIFs, ``str`` for LVAR text, ``None`` for
    :attr:`Coding.NONE`.
    """

    vib: bytes
    value: int | float | str | None
    coding: Coding = Coding.INT32
    function: Function = Function.INSTANTANEOUS
    storage: int = 0
    tariff: int = 0
    subunit: int = 0


def _dib(spec: RecordSpec) -> bytes:
    storage, tariff, subunit = spec.storage, spec.tariff, spec.subunit
    if storage < 0 or tariff < 0 or subunit < 0:
        raise MBusError("storage, tariff and subunit must not be negative")
    dif = int(spec.coding) | _FUNCTION_BITS[Function(spec.function)] | ((storage & 1) << 6)
    rest = storage >> 1
    difes = bytearray()
    while rest or tariff or subunit:
        difes.append((rest & 0x0F) | ((tariff & 0x03) << 4) | ((subunit & 0x01) << 6))
        rest >>= 4
        tariff >>= 2
        subunit >>= 1
    if len(difes) > MAX_DIFE:
        raise MBusError(
            f"storage {spec.storage}, tariff {spec.tariff}, subunit {spec.subunit} need "
            f"{len(difes)} DIFEs, at most {MAX_DIFE} are allowed"
        )
    if difes:
        dif |= 0x80
        for k in range(len(difes) - 1):
            difes[k] |= 0x80
    return bytes((dif,)) + bytes(difes)


def _split_vib(vib: bytes) -> tuple[int, bytes, str | None]:
    if not vib:
        raise MBusError("a record needs a VIF")
    vif = vib[0]
    pos = 1
    text: str | None = None
    if vif & 0x7F == 0x7C:
        if len(vib) < 2 or len(vib) < 2 + vib[1]:
            raise MBusError("plain-text VIF needs its length byte and text")
        text = cd.decode_text(vib[2 : 2 + vib[1]])
        pos = 2 + vib[1]
    vife = bytes(vib[pos:])
    # Each byte but the last must carry the extension bit, and only those.
    chain = bytes((vif,)) + vife
    for k, b in enumerate(chain):
        last = k == len(chain) - 1
        if bool(b & 0x80) == last:
            raise MBusError(f"VIF/VIFE chain {vib.hex()} has a wrong extension bit at byte {k}")
    if len(vife) > MAX_VIFE:
        raise MBusError(f"{len(vife)} VIFEs, at most {MAX_VIFE} are allowed")
    return vif, vife, text


def encode_record(spec: RecordSpec) -> bytes:
    """The bytes of one data record; raise :class:`MBusError` when the value
    cannot be coded as asked (too large, wrong type, invalid date)."""
    coding = Coding(spec.coding)
    vif, vife, text = _split_vib(spec.vib)
    meaning = describe_vib(vif, vife, text)
    if meaning.missing_vife:
        raise MBusError(f"VIF 0x{vif:02X} needs a VIFE")
    head = _dib(spec) + bytes(spec.vib)
    value = spec.value
    try:
        return head + _encode_value(coding, value, meaning)
    except (OverflowError, ValueError, TypeError, UnicodeEncodeError) as exc:
        raise MBusError(f"cannot code {value!r} as {coding.name} for VIF {spec.vib.hex()}: {exc}") from None


def _encode_value(coding: Coding, value: object, meaning) -> bytes:  # noqa: ANN001 - VibMeaning
    if coding in (Coding.NONE, Coding.SELECTION):
        if value is not None:
            raise ValueError("this coding carries no data")
        return b""
    if value is None:
        raise ValueError("a value is required")
    size = CODING_SIZES.get(int(coding), 0)
    if coding == Coding.VARIABLE:
        if isinstance(value, str):
            raw = cd.encode_text(value)
            if len(raw) > 0xBF:
                raise ValueError("text longer than 191 bytes")
            return bytes((len(raw),)) + raw
        if isinstance(value, int) and value >= 0:
            n = max(1, (value.bit_length() + 7) // 8)
            if n > 15:
                raise ValueError("binary LVAR numbers above 15 bytes are not encoded")
            return bytes((0xE0 + n,)) + cd.encode_int(value, n, signed=False)
        if isinstance(value, int):
            digits = len(str(-value))
            n = (digits + 1) // 2
            if n > 9:
                raise ValueError("BCD LVAR above 9 bytes")
            return bytes((0xD0 + n,)) + cd.encode_bcd(-value, n)
        raise TypeError("variable length takes str or int")
    if meaning.kind in (vt.DATE, vt.DATETIME) and coding in _INT_CODINGS and size in (2, 3, 4, 6):
        if not isinstance(value, str):
            raise TypeError("date and time values are ISO strings")
        if size == 2:
            return cd.encode_date_g(date.fromisoformat(value[:10]))
        if size == 3:
            return cd.encode_time_j(time.fromisoformat(value))
        if size == 4:
            return cd.encode_datetime_f(datetime.fromisoformat(value))
        return cd.encode_datetime_i(datetime.fromisoformat(value))
    if isinstance(value, (str, bytes)):
        raise TypeError("numeric coding needs a number")
    if coding == Coding.REAL32:
        raw_f = _unscale_float(float(value), meaning)
        return cd.encode_real32(raw_f)
    raw = _unscale_int(value, meaning)
    if coding in _BCD_CODINGS:
        return cd.encode_bcd(raw, size)
    return cd.encode_int(raw, size, signed=meaning.kind != vt.BINARY)


def _unscale_float(value: float, meaning) -> float:  # noqa: ANN001
    v = (value - meaning.offset) / meaning.factor
    return v * 10**-meaning.exponent if meaning.exponent <= 0 else v / 10**meaning.exponent


def _unscale_int(value: int | float, meaning) -> int:  # noqa: ANN001
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("not a finite number")
    if isinstance(value, int) and meaning.offset == 0 and float(meaning.factor).is_integer():
        f, e = int(meaning.factor), meaning.exponent
        num, den = (value * 10**-e, f) if e <= 0 else (value, f * 10**e)
        q, r = divmod(num, den)
        return q if r == 0 else round(num / den)
    return round(_unscale_float(float(value), meaning))


def encode_records(specs: Iterable[RecordSpec]) -> bytes:
    return b"".join(encode_record(s) for s in specs)


def encode_variable_data(
    header: LongHeader | ShortHeader | None,
    records: Iterable[RecordSpec],
    manufacturer_data: bytes | None = None,
    more_records_follow: bool = False,
) -> tuple[int, bytes]:
    """CI and user data of a variable data structure.

    The CI follows the header: 0x72 (long), 0x7A (short) or 0x78 (none).
    ``manufacturer_data`` (or ``more_records_follow``) appends DIF 0x0F
    (0x1F) and the bytes after it.
    """
    if isinstance(header, LongHeader):
        ci, head = 0x72, header.to_bytes()
    elif isinstance(header, ShortHeader):
        ci = 0x7A
        head = bytes((header.access_no, header.status)) + header.signature.to_bytes(2, "little")
    else:
        ci, head = 0x78, b""
    body = head + encode_records(records)
    if manufacturer_data is not None or more_records_follow:
        body += bytes((0x1F if more_records_follow else 0x0F,)) + bytes(manufacturer_data or b"")
    return ci, body


def rsp_ud(
    address: int,
    header: LongHeader | ShortHeader | None,
    records: Iterable[RecordSpec],
    manufacturer_data: bytes | None = None,
    more_records_follow: bool = False,
    acd: bool = False,
    dfc: bool = False,
) -> bytes:
    """A complete RSP_UD long frame, as a slave (or the simulator) sends it."""
    ci, data = encode_variable_data(header, records, manufacturer_data, more_records_follow)
    control = C_RSP_UD | (0x20 if acd else 0) | (0x10 if dfc else 0)
    return LongFrame(control, address, ci, data).to_bytes()


def encode_fixed_data(
    identification: str,
    access_no: int,
    status: int,
    medium: int,
    counter1: tuple[int, int],
    counter2: tuple[int, int],
) -> bytes:
    """User data of a fixed data structure (CI 0x73): counters are
    ``(unit code, raw count)``; status bit 7 selects binary over BCD."""
    if not 0 <= medium <= 15:
        raise MBusError(f"fixed structure medium is 4 bits, got {medium}")
    try:
        ident = bytes.fromhex(identification)[::-1]
    except ValueError:
        raise MBusError(f"identification must be 8 hex digits, got {identification!r}") from None
    if len(ident) != 4:
        raise MBusError(f"identification must be 8 hex digits, got {identification!r}")
    (u1, c1), (u2, c2) = counter1, counter2
    units = bytes((((medium & 0x03) << 6) | (u1 & 0x3F), ((medium & 0x0C) << 4) | (u2 & 0x3F)))
    try:
        if status & 0x80:
            counters = cd.encode_int(c1, 4, signed=False) + cd.encode_int(c2, 4, signed=False)
        else:
            counters = cd.encode_bcd(c1, 4) + cd.encode_bcd(c2, 4)
    except OverflowError as exc:
        raise MBusError(f"counter does not fit: {exc}") from None
    return ident + bytes((access_no & 0xFF, status & 0xFF)) + units + counters


def spec_from_record(record: DataRecord) -> RecordSpec:
    """The spec that encodes back to ``record`` (variable-structure records only)."""
    if record.vif is None:
        raise MBusError(f"record {record.quantity} has no VIF: not from a variable data structure")
    vib = bytes((record.vif,))
    if record.text_unit is not None:
        text = cd.encode_text(record.text_unit)
        vib += bytes((len(text),)) + text
    vib += record.vife
    return RecordSpec(
        vib=vib,
        value=record.value if not isinstance(record.value, bytes) else None,
        coding=Coding(record.coding),
        function=record.function,
        storage=record.storage,
        tariff=record.tariff,
        subunit=record.subunit,
    )
