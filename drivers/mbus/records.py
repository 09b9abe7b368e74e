"""Data records of the variable data structure (EN 13757-3 clause 6).

A record is ``DIF [DIFE...] VIF [VIFE...] data``:

* DIF: data field coding (bits 0-3), function (bits 4-5), storage number
  bit 0 (bit 6), extension (bit 7);
* each DIFE: 4 more storage bits, 2 tariff bits, 1 subunit bit, extension;
* VIF: quantity, unit and exponent, or a pointer to the FB/FD extension
  tables, plain text (0x7C/0xFC) or manufacturer specific (0x7F/0xFF);
* VIFEs: the true VIF after FB/FD, then combinable modifiers
  (forward/backward flow, per-time units, correction factors, error codes);
* data: fixed size from the coding, or LVAR-prefixed for coding 0x0D.

Special DIFs: 0x0F / 0x1F start manufacturer-specific data that runs to the
end of the telegram (0x1F: more records follow in the next telegram), 0x2F
is an idle filler byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from zaas_edge.drivers.mbus import coding as cd
from zaas_edge.drivers.mbus import vif_tables as vt
from zaas_edge.drivers.mbus.errors import MBusError

__all__ = [
    "Function",
    "Coding",
    "DataRecord",
    "RecordBlock",
    "VibMeaning",
    "describe_vib",
    "parse_records",
    "CODING_SIZES",
    "MAX_DIFE",
    "MAX_VIFE",
]

MAX_DIFE = 10
MAX_VIFE = 10


class Function(StrEnum):
    INSTANTANEOUS = "instantaneous"
    MAXIMUM = "maximum"
    MINIMUM = "minimum"
    ERROR = "error"  # value during error state


_FUNCTIONS = (Function.INSTANTANEOUS, Function.MAXIMUM, Function.MINIMUM, Function.ERROR)
_FUNCTION_SUFFIX = {
    Function.INSTANTANEOUS: "",
    Function.MAXIMUM: ".max",
    Function.MINIMUM: ".min",
    Function.ERROR: ".err",
}


class Coding(IntEnum):
    """The data field of the DIF (bits 0-3)."""

    NONE = 0x0
    INT8 = 0x1
    INT16 = 0x2
    INT24 = 0x3
    INT32 = 0x4
    REAL32 = 0x5
    INT48 = 0x6
    INT64 = 0x7
    SELECTION = 0x8
    BCD2 = 0x9
    BCD4 = 0xA
    BCD6 = 0xB
    BCD8 = 0xC
    VARIABLE = 0xD
    BCD12 = 0xE


CODING_SIZES: dict[int, int] = {
    0x0: 0,
    0x1: 1,
    0x2: 2,
    0x3: 3,
    0x4: 4,
    0x5: 4,
    0x6: 6,
    0x7: 8,
    0x8: 0,
    0x9: 1,
    0xA: 2,
    0xB: 3,
    0xC: 4,
    0xE: 6,
}
_INT_CODINGS = frozenset((0x1, 0x2, 0x3, 0x4, 0x6, 0x7))
_BCD_CODINGS = frozenset((0x9, 0xA, 0xB, 0xC, 0xE))

Value = int | float | str | bytes | None


@dataclass(frozen=True, slots=True)
class DataRecord:
    """One decoded record, with the raw fields it came from.

    ``value`` is in ``unit`` with the meter's exponent applied: an int when
    that is exact, a float otherwise, an ISO 8601 string for dates and
    times, a string for text, bytes for manufacturer-specific data, ``None``
    when the record carries no value or an invalid one (``error`` says why).
    ``offset`` is the position of the DIF in the user data (after the CI).
    """

    quantity: str
    value: Value
    unit: str
    function: Function = Function.INSTANTANEOUS
    storage: int = 0
    tariff: int = 0
    subunit: int = 0
    coding: int = 0
    dif: int = 0
    dife: bytes = b""
    vif: int | None = None
    vife: bytes = b""
    data: bytes = b""
    offset: int = 0
    modifiers: tuple[str, ...] = ()
    error: str | None = None
    manufacturer_vife: bytes = b""
    text_unit: str | None = None  # the unit text of a plain-text VIF (0x7C/0xFC)

    @property
    def key(self) -> str:
        """Suffix for a point key: quantity, then function, storage, tariff,
        subunit and manufacturer VIFEs when not the default.

        ``energy``, ``energy.s1``, ``volume.t2``, ``power.max``, ``energy.s1.t1``,
        ``voltage.m01`` (manufacturer VIFE 0x01, often the phase).
        """
        parts = [self.quantity, _FUNCTION_SUFFIX[self.function]]
        if self.storage:
            parts.append(f".s{self.storage}")
        if self.tariff:
            parts.append(f".t{self.tariff}")
        if self.subunit:
            parts.append(f".u{self.subunit}")
        if self.manufacturer_vife:
            parts.append(".m" + self.manufacturer_vife.hex())
        return "".join(parts)

    @property
    def is_numeric(self) -> bool:
        return isinstance(self.value, (int, float)) and not isinstance(self.value, bool)


@dataclass(frozen=True, slots=True)
class RecordBlock:
    """What :func:`parse_records` found: the records, trailing manufacturer data
    (after DIF 0x0F/0x1F, empty if none) and whether DIF 0x1F announced more
    records in a following telegram."""

    records: tuple[DataRecord, ...]
    manufacturer_data: bytes = b""
    more_records_follow: bool = False


def _fail(message: str, pos: int, base: int) -> MBusError:
    return MBusError(message, base + pos)


def parse_records(data: bytes, pos: int = 0, *, base: int = 0, msb_first: bool = False) -> RecordBlock:
    """Decode every record of ``data`` from ``pos`` to the end.

    ``base`` is added to offsets in error messages (7 when ``data`` is the
    data of a long frame, so offsets count from the frame's first byte).
    ``msb_first`` reads multi-byte values most significant byte first
    (CI 0x76, the deprecated mode 2).
    """
    records: list[DataRecord] = []
    n = len(data)
    while pos < n:
        dif = data[pos]
        if dif & 0x0F == 0x0F:
            if dif == 0x2F:  # idle filler
                pos += 1
                continue
            if dif in (0x0F, 0x1F):
                rest = bytes(data[pos + 1 :])
                records.append(
                    DataRecord(
                        quantity="manufacturer_data",
                        value=rest,
                        unit="",
                        coding=0x0F,
                        dif=dif,
                        data=rest,
                        offset=pos,
                    )
                )
                return RecordBlock(tuple(records), rest, dif == 0x1F)
            raise _fail(f"reserved special DIF 0x{dif:02X} in a response", pos, base)
        record, pos = _parse_record(data, pos, base, msb_first)
        records.append(record)
    return RecordBlock(tuple(records))


def _read_extensions(
    data: bytes, pos: int, first: int, what: str, limit: int, base: int, start: int
) -> tuple[bytes, int]:
    """Read extension bytes while the previous byte has bit 7 set."""
    n = len(data)
    out = bytearray()
    prev = first
    while prev & 0x80:
        if pos >= n:
            raise _fail(f"record at byte {base + start}: telegram ends inside the {what} chain", pos, base)
        if len(out) == limit:
            raise _fail(f"record at byte {base + start}: more than {limit} {what}s", pos, base)
        prev = data[pos]
        out.append(prev)
        pos += 1
    return bytes(out), pos


def _parse_record(data: bytes, pos: int, base: int, msb_first: bool) -> tuple[DataRecord, int]:
    n = len(data)
    start = pos
    dif = data[pos]
    pos += 1
    dife, pos = _read_extensions(data, pos, dif, "DIFE", MAX_DIFE, base, start)

    storage = (dif >> 6) & 0x01
    tariff = 0
    subunit = 0
    for k, e in enumerate(dife):
        storage |= (e & 0x0F) << (1 + 4 * k)
        tariff |= ((e >> 4) & 0x03) << (2 * k)
        subunit |= ((e >> 6) & 0x01) << k

    if pos >= n:
        raise _fail(f"record at byte {base + start}: telegram ends before the VIF", pos, base)
    vif = data[pos]
    pos += 1
    text_unit: str | None = None
    low = vif & 0x7F
    if low == 0x7C:  # plain text unit: length, characters (last first), then VIFEs
        if pos >= n:
            raise _fail(f"record at byte {base + start}: telegram ends before the plain-text VIF length", pos, base)
        length = data[pos]
        pos += 1
        if n - pos < length:
            raise _fail(
                f"record at byte {base + start}: plain-text VIF of {length} bytes overruns the telegram", pos, base
            )
        text_unit = cd.decode_text(data[pos : pos + length])
        pos += length
    vife, pos = _read_extensions(data, pos, vif, "VIFE", MAX_VIFE, base, start)

    m = describe_vib(vif, vife, text_unit)
    if m.missing_vife:
        raise _fail(f"record at byte {base + start}: VIF 0x{vif:02X} needs a VIFE", pos, base)
    unit, kind, error = m.unit, m.kind, m.error

    # Data field.
    coding = dif & 0x0F
    if coding == 0x0D:
        if pos >= n:
            raise _fail(f"record at byte {base + start}: telegram ends before the LVAR byte", pos, base)
        lvar = data[pos]
        pos += 1
        size = _lvar_size(lvar)
        if size is None:
            raise _fail(f"record at byte {base + start}: reserved LVAR 0x{lvar:02X}", pos - 1, base)
    else:
        lvar = -1
        size = CODING_SIZES[coding]
    if n - pos < size:
        raise _fail(f"record at byte {base + start}: data field needs {size} bytes, only {n - pos} left", pos, base)
    raw_data = bytes(data[pos : pos + size])
    pos += size
    field = raw_data[::-1] if msb_first and lvar < 0 else raw_data

    value: Value
    if coding in (0x0, 0x8):
        value = None
    elif lvar >= 0 and lvar <= 0xBF:
        value = cd.decode_text(field)
    elif kind in (vt.DATE, vt.DATETIME) and coding in _INT_CODINGS and size in (2, 3, 4, 6):
        value, invalid = _decode_time(kind, field)
        if value is None:
            error = error or "invalid date"
        elif invalid:
            error = error or "time invalid"
        unit = ""
    else:
        raw: int | float | None
        if coding in _INT_CODINGS:
            raw = cd.decode_int(field, signed=kind != vt.BINARY)
        elif coding == 0x5:
            raw = cd.decode_real32(field)
        elif coding in _BCD_CODINGS or 0xC0 <= lvar <= 0xD9:
            raw = cd.decode_bcd(field)
            if raw is not None and 0xD0 <= lvar <= 0xD9:
                raw = -raw
            if raw is None:
                error = error or "invalid BCD digits"
        else:  # LVAR binary number
            raw = cd.decode_int(field, signed=False)
        value = None if raw is None else _scale(raw, m.exponent, m.factor, m.offset)

    return (
        DataRecord(
            quantity=m.quantity,
            value=value,
            unit=unit,
            function=_FUNCTIONS[(dif >> 4) & 0x03],
            storage=storage,
            tariff=tariff,
            subunit=subunit,
            coding=coding,
            dif=dif,
            dife=dife,
            vif=vif,
            vife=vife,
            data=raw_data,
            offset=start,
            modifiers=m.modifiers,
            error=error,
            manufacturer_vife=m.manufacturer_vife,
            text_unit=text_unit,
        ),
        pos,
    )


@dataclass(frozen=True, slots=True)
class VibMeaning:
    """What a VIF with its VIFEs says about the data that follows."""

    quantity: str
    unit: str
    exponent: int
    factor: float
    offset: float
    kind: str
    modifiers: tuple[str, ...] = ()
    error: str | None = None
    manufacturer_vife: bytes = b""
    missing_vife: bool = False


def describe_vib(vif: int, vife: bytes, text_unit: str | None = None) -> VibMeaning:
    """Resolve a VIF and its VIFEs through the tables (no I/O, no exceptions)."""
    low = vif & 0x7F
    combinable: bytes = vife
    mfr_vife = b""
    if text_unit is not None:
        info = vt.VifInfo("plain_text", text_unit)
    elif vif in (0xFB, 0xFD, 0xEF):
        if not vife:
            return VibMeaning("reserved", "", 0, 1, 0.0, vt.NUMBER, missing_vife=True)
        table = vt.EXT_FB if vif == 0xFB else vt.EXT_FD if vif == 0xFD else {}
        info = table.get(vife[0] & 0x7F, vt.RESERVED)
        combinable = vife[1:]
    elif low == 0x7F:  # manufacturer-specific VIF: its VIFEs are too
        info = vt.PRIMARY[0x7F]
        combinable = b""
        mfr_vife = vife
    elif low == 0x7C:
        info = vt.VifInfo("plain_text")
    else:
        info = vt.PRIMARY.get(low, vt.RESERVED)

    quantity = info.quantity
    unit = info.unit
    exponent = info.exponent
    factor = info.factor
    offset = info.offset
    kind = info.kind
    modifiers: list[str] = []
    error: str | None = None
    j = 0
    while j < len(combinable):
        code = combinable[j] & 0x7F
        j += 1
        if code == 0x7F:  # the rest of the VIFEs are manufacturer specific
            mfr_vife = combinable[j:]
            modifiers.append("manufacturer")
            break
        if code == 0x7C:  # extension of the combinable table: next VIFE is the code
            if j < len(combinable):
                modifiers.append(f"ext_{combinable[j] & 0x7F:02x}")
                j += 1
            continue
        if code < 0x20:
            if code:
                error = vt.VIFE_ERRORS.get(code, f"error code 0x{code:02x}")
            continue
        if 0x78 <= code <= 0x7B:
            # additive correction constant 10^(nn-3) in the unit of the VIF
            modifiers.append("additive_correction")
            exponent += (code & 0x03) - 3
            continue
        mod = vt.COMBINABLE.get(code)
        if mod is None:
            modifiers.append(f"vife_{code:02x}")
            continue
        if mod.suffix:
            modifiers.append(mod.suffix)
        if mod.unit is not None:
            unit, exponent, factor, offset = mod.unit, 0, mod.factor, 0.0
        unit += mod.unit_suffix
        exponent += mod.exponent
        if mod.kind is not None:
            kind = mod.kind
    if modifiers:
        quantity = "_".join((quantity, *(m for m in modifiers if m != "manufacturer")))
    return VibMeaning(quantity, unit, exponent, factor, offset, kind, tuple(modifiers), error, bytes(mfr_vife))


def _lvar_size(lvar: int) -> int | None:
    """Byte count announced by an LVAR byte (EN 13757-3:2013 Table 5)."""
    if lvar <= 0xBF:
        return lvar  # text
    if 0xC0 <= lvar <= 0xC9 or 0xD0 <= lvar <= 0xD9:
        return lvar & 0x0F  # positive / negative BCD, 2 digits per byte
    if 0xE0 <= lvar <= 0xEF:
        return lvar - 0xE0  # binary number
    if 0xF0 <= lvar <= 0xF4:
        return 4 * (lvar - 0xEC)  # binary number, 16..32 bytes
    if lvar == 0xF5:
        return 48
    if lvar == 0xF6:
        return 64
    return None


def _decode_time(kind: str, field: bytes) -> tuple[str | None, bool]:
    size = len(field)
    if size == 2:
        return cd.decode_date_g(field), False
    if size == 4:
        return cd.decode_datetime_f(field)
    if size == 6:
        return cd.decode_datetime_i(field)
    return cd.decode_time_j(field), False


def _scale(raw: int | float, exponent: int, factor: float, offset: float) -> int | float:
    """``raw * factor * 10**exponent + offset``, exact for integers where possible."""
    if isinstance(raw, int) and offset == 0 and float(factor).is_integer():
        f = int(factor)
        if exponent >= 0:
            return raw * f * 10**exponent
        return raw * f / 10**-exponent
    if exponent >= 0:
        return raw * factor * 10**exponent + offset
    return raw * factor / 10**-exponent + offset
