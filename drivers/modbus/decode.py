"""Register decoding and encoding: 16-bit Modbus registers to values and back.

Pure functions, no I/O. A value of more than one register is assembled from
its bytes in the order the device puts them, named after a 32-bit value whose
big-endian bytes are ``A B C D``:

* ``ABCD``: big-endian, most significant word first (the Modbus default);
* ``CDAB``: words swapped (least significant word first, bytes big-endian);
* ``BADC``: bytes swapped inside each word, words in order;
* ``DCBA``: fully little-endian.

For 64-bit values the same rule extends to four words (``CDAB`` reverses the
word order, ``BADC`` swaps the bytes of each word). For one-register values
only the byte swap matters (``BADC``/``DCBA`` swap, ``ABCD``/``CDAB`` do not).

Missing values: meters mark "not available" with sentinels (SunSpec defines
0x8000 for int16, 0xFFFF for uint16, 0x80000000 / 0xFFFFFFFF for 32-bit and
so on; some meters answer all-FF). A register declares its policy, and a
sentinel decodes to ``Decoded(None, Quality.ERROR)`` rather than to a
plausible but false number. A float that is NaN or infinite is never a
measurement, whatever the policy.
"""

from __future__ import annotations

__all__ = [
    "DataType",
    "WordOrder",
    "SentinelPolicy",
    "Decoded",
    "RegisterSpec",
    "register_count",
    "decode_raw",
    "encode_raw",
    "decode_bits",
    "encode_bits",
    "decode_string",
    "encode_string",
    "decode_scale_factor",
    "is_sentinel",
    "decode_value",
    "ValueDecoder",
    "compile_value",
    "registers_bytes",
    "encode_value",
    "exact_raw",
    "raw_range",
    "SF_MISSING",
]

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from zaas_edge.errors import ProtocolError
from zaas_edge.model import Quality


class DataType(StrEnum):
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"  # ASCII, two characters per register, NUL/space trimmed

    @property
    def is_float(self) -> bool:
        return self in (DataType.FLOAT32, DataType.FLOAT64)

    @property
    def is_signed(self) -> bool:
        return self in (DataType.INT16, DataType.INT32, DataType.INT64) or self.is_float


class WordOrder(StrEnum):
    ABCD = "ABCD"
    CDAB = "CDAB"
    BADC = "BADC"
    DCBA = "DCBA"

    @property
    def words_reversed(self) -> bool:
        return self in (WordOrder.CDAB, WordOrder.DCBA)

    @property
    def bytes_swapped(self) -> bool:
        return self in (WordOrder.BADC, WordOrder.DCBA)


class SentinelPolicy(StrEnum):
    """How a register says "no value".

    * ``none``: every integer is a value (floats: NaN/inf are still missing);
    * ``sunspec``: the SunSpec "not implemented" value of the type: 0x8000
      (int16), 0xFFFF (uint16), 0x80000000 (int32), 0xFFFFFFFF (uint32),
      0x8000000000000000 (int64), 0xFFFFFFFFFFFFFFFF (uint64), NaN (floats);
    * ``all_ff``: every register 0xFFFF (many meters before their first
      measurement, or for a phase that is not wired);
    * ``max``: the largest value of the type (0x7FFF... signed, 0xFFFF...
      unsigned), used by some meters (ABB) for "invalid".
    """

    NONE = "none"
    SUNSPEC = "sunspec"
    ALL_FF = "all_ff"
    MAX = "max"


_STRUCT = {
    DataType.INT16: ">h",
    DataType.UINT16: ">H",
    DataType.INT32: ">i",
    DataType.UINT32: ">I",
    DataType.INT64: ">q",
    DataType.UINT64: ">Q",
    DataType.FLOAT32: ">f",
    DataType.FLOAT64: ">d",
}

_COUNT = {
    DataType.INT16: 1,
    DataType.UINT16: 1,
    DataType.INT32: 2,
    DataType.UINT32: 2,
    DataType.INT64: 4,
    DataType.UINT64: 4,
    DataType.FLOAT32: 2,
    DataType.FLOAT64: 4,
}

# A scale-factor register (SunSpec ``sunssf``, int16) reading 0x8000 means "not implemented".
SF_MISSING = -0x8000


def register_count(dtype: DataType, length: int | None = None) -> int:
    """Registers a value of ``dtype`` takes; strings need their ``length`` in registers."""
    if dtype is DataType.STRING:
        if length is None or length < 1:
            raise ValueError("a string register needs a length of at least one register")
        return length
    return _COUNT[dtype]


def _check_registers(registers: Sequence[int], expected: int, what: str) -> None:
    if len(registers) != expected:
        raise ProtocolError(f"{what} needs {expected} register(s), got {len(registers)}")
    for r in registers:
        if not isinstance(r, int) or isinstance(r, bool) or not 0 <= r <= 0xFFFF:
            raise ProtocolError(f"{what}: register value {r!r} is not a 16-bit unsigned integer")


def _to_bytes(registers: Sequence[int], order: WordOrder) -> bytes:
    """Registers as the device sent them, to big-endian bytes of the value."""
    words = list(registers)
    if order.words_reversed:
        words.reverse()
    if order.bytes_swapped:
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    return b"".join(w.to_bytes(2, "big") for w in words)


def _to_registers(data: bytes, order: WordOrder) -> tuple[int, ...]:
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if order.bytes_swapped:
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    if order.words_reversed:
        words.reverse()
    return tuple(words)


def decode_raw(registers: Sequence[int], dtype: DataType, order: WordOrder = WordOrder.ABCD) -> int | float:
    """The number held by ``registers``, unscaled. Wrong length raises ``ProtocolError``."""
    if dtype is DataType.STRING:
        raise ProtocolError("decode_raw does not decode strings: use decode_string")
    _check_registers(registers, _COUNT[dtype], dtype.value)
    (value,) = struct.unpack(_STRUCT[dtype], _to_bytes(registers, order))
    return value


def encode_raw(value: int | float, dtype: DataType, order: WordOrder = WordOrder.ABCD) -> tuple[int, ...]:
    """Registers holding ``value`` (the inverse of ``decode_raw``).

    An integer type takes an integer in its range; a value out of range
    raises ``ProtocolError`` instead of wrapping around silently.
    """
    if dtype is DataType.STRING:
        raise ProtocolError("encode_raw does not encode strings: use encode_string")
    if not dtype.is_float:
        if isinstance(value, float):
            if not value.is_integer():
                raise ProtocolError(f"{dtype.value} cannot hold the fraction {value!r}")
            value = int(value)
    try:
        data = struct.pack(_STRUCT[dtype], value)
    except (struct.error, OverflowError) as exc:
        raise ProtocolError(f"{value!r} does not fit in {dtype.value}") from exc
    return _to_registers(data, order)


def decode_bits(register: int, bit: int | None = None, mask: int | None = None) -> int:
    """A bit field of one register: a single ``bit`` (0 = least significant) or a ``mask``.

    A mask is shifted down so that ``mask=0x00F0`` on ``0x0030`` gives 3.
    """
    _check_registers([register], 1, "bit field")
    if bit is not None:
        if not 0 <= bit <= 15:
            raise ProtocolError(f"bit index {bit} is outside 0..15")
        return (register >> bit) & 1
    if mask is None or not 0 < mask <= 0xFFFF:
        raise ProtocolError(f"bit mask {mask!r} is not a non-zero 16-bit mask")
    shift = (mask & -mask).bit_length() - 1
    return (register & mask) >> shift


def encode_bits(register: int, value: int, bit: int | None = None, mask: int | None = None) -> int:
    """``register`` with the field set to ``value`` (read-modify-write of a bit field)."""
    _check_registers([register], 1, "bit field")
    if bit is not None:
        mask = 1 << bit if 0 <= bit <= 15 else None
    if mask is None or not 0 < mask <= 0xFFFF:
        raise ProtocolError(f"bit field needs a bit in 0..15 or a 16-bit mask, got bit={bit!r} mask={mask!r}")
    shift = (mask & -mask).bit_length() - 1
    if value < 0 or (value << shift) & ~mask:
        raise ProtocolError(f"{value} does not fit in mask 0x{mask:04X}")
    return (register & ~mask & 0xFFFF) | (value << shift)


def decode_string(registers: Sequence[int], order: WordOrder = WordOrder.ABCD) -> str:
    """ASCII text, two characters per register, trimmed of NUL and spaces at both ends.

    Bytes outside printable ASCII are a protocol error, not text to display.
    """
    if not registers:
        raise ProtocolError("a string needs at least one register")
    _check_registers(registers, len(registers), "string")
    data = b"".join(
        (((r & 0xFF) << 8) | (r >> 8) if order.bytes_swapped else r).to_bytes(2, "big") for r in registers
    )
    # Padding may lead (rare) or trail (usual); text ends at the first NUL after it.
    text = data.lstrip(b"\x00 ").split(b"\x00", 1)[0].rstrip(b" ")
    if any(b < 0x20 or b > 0x7E for b in text):
        raise ProtocolError(f"string registers hold non-ASCII bytes: {data!r}")
    return text.decode("ascii")


def encode_string(text: str, count: int, order: WordOrder = WordOrder.ABCD) -> tuple[int, ...]:
    """``text`` in ``count`` registers, NUL-padded."""
    try:
        data = text.encode("ascii")
    except UnicodeEncodeError as exc:
        raise ProtocolError(f"{text!r} is not ASCII") from exc
    if len(data) > 2 * count:
        raise ProtocolError(f"{text!r} needs more than {count} registers")
    data = data.ljust(2 * count, b"\x00")
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if order.bytes_swapped:
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    return tuple(words)


def decode_scale_factor(register: int) -> int | None:
    """A SunSpec scale factor (int16 exponent of ten); 0x8000 means missing (None)."""
    _check_registers([register], 1, "scale factor")
    sf = register - 0x10000 if register & 0x8000 else register
    if sf == SF_MISSING:
        return None
    if not -10 <= sf <= 10:
        # SunSpec allows -10..10; anything else is a misread register, not a scale.
        raise ProtocolError(f"scale factor {sf} is outside -10..10")
    return sf


def _max_of(dtype: DataType) -> int:
    bits = 16 * _COUNT[dtype]
    return (1 << (bits - 1)) - 1 if dtype.is_signed else (1 << bits) - 1


def is_sentinel(registers: Sequence[int], raw: int | float, dtype: DataType, policy: SentinelPolicy,
                extra: Sequence[int] = ()) -> bool:
    """Whether ``raw`` (as decoded from ``registers``) means "no value" under ``policy``.

    ``extra`` lists further raw sentinel values the manual names for this register.
    """
    if isinstance(raw, float):
        if math.isnan(raw) or math.isinf(raw):
            return True
    elif raw in extra:
        return True
    if policy is SentinelPolicy.NONE:
        return False
    if policy is SentinelPolicy.ALL_FF:
        return all(r == 0xFFFF for r in registers)
    if dtype.is_float:
        return False  # NaN handled above; floats have no other sentinel
    if policy is SentinelPolicy.SUNSPEC:
        if dtype.is_signed:
            return raw == -(1 << (16 * _COUNT[dtype] - 1))
        return raw == (1 << (16 * _COUNT[dtype])) - 1
    if policy is SentinelPolicy.MAX:
        return raw == _max_of(dtype)
    return False


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded value: ``value`` is None exactly when ``quality`` is ERROR."""

    value: float | None
    quality: Quality = Quality.OK

    @classmethod
    def missing(cls) -> Decoded:
        return cls(None, Quality.ERROR)


@dataclass(frozen=True, slots=True)
class RegisterSpec:
    """How to turn one point's registers into a value in its unit.

    value = raw * scale * 10**sf + offset, where ``sf`` comes from a
    scale-factor register when the point has one.
    """

    dtype: DataType
    order: WordOrder = WordOrder.ABCD
    scale: float = 1.0
    offset: float = 0.0
    sentinel: SentinelPolicy = SentinelPolicy.NONE
    sentinel_values: tuple[int, ...] = ()
    bit: int | None = None
    mask: int | None = None
    length: int | None = None  # registers, strings only

    @property
    def count(self) -> int:
        return register_count(self.dtype, self.length)


def decode_value(registers: Sequence[int], spec: RegisterSpec, sf_register: int | None = None,
                 has_sf: bool = False) -> Decoded:
    """Decode one point. ``has_sf`` says the point uses a scale-factor register whose
    raw content is ``sf_register``; a missing scale factor makes the value missing."""
    if spec.dtype is DataType.STRING:
        raise ProtocolError("decode_value decodes numbers; use decode_string for text")
    raw = decode_raw(registers, spec.dtype, spec.order)
    if is_sentinel(registers, raw, spec.dtype, spec.sentinel, spec.sentinel_values):
        return Decoded.missing()
    if spec.bit is not None or spec.mask is not None:
        if spec.count != 1:
            raise ProtocolError("a bit field is one register")
        raw = decode_bits(registers[0] if not spec.order.bytes_swapped else
                          ((registers[0] & 0xFF) << 8) | (registers[0] >> 8), spec.bit, spec.mask)
    exponent = 0
    if has_sf:
        if sf_register is None:
            return Decoded.missing()
        sf = decode_scale_factor(sf_register)
        if sf is None:
            return Decoded.missing()
        exponent = sf
    value = raw * spec.scale
    if exponent:
        value = value * 10.0**exponent
    return Decoded(float(value + spec.offset), Quality.OK)


ValueDecoder = Callable[[bytes, int], float | None]  # (response bytes, byte offset) -> value, None if missing

_WORDS: dict[int, struct.Struct] = {}
# One precompiled struct per number format, shared by every decoder of that type (a building's
# thousands of float32 points use one).
_UNPACK = {dtype: struct.Struct(fmt).unpack_from for dtype, fmt in _STRUCT.items()}
_INT_ONLY = frozenset({int})


def registers_bytes(registers: Sequence[int]) -> bytes | None:
    """A whole response's registers as their big-endian bytes (what the device sent), for
    ``compile_value``'s decoders; None when one is not a 16-bit register (``decode_value`` says why)."""
    n = len(registers)
    words = _WORDS.get(n)
    if words is None:
        words = _WORDS[n] = struct.Struct(f">{n}H")
    if {*map(type, registers)} - _INT_ONLY:  # a bool or a float is no register: decode_value says so
        return None
    try:
        return words.pack(*registers)
    except struct.error:
        return None


def compile_value(spec: RegisterSpec) -> ValueDecoder | None:
    """The decoder of ``spec``'s point read straight from a response's bytes: the number
    ``decode_value`` gives (``float(raw * scale + offset)``), None where it says missing.

    For the common point only, a number in ``ABCD`` order with no bit field and no sentinel but a
    float's NaN or infinity (a building of float32 meters polls nothing else); None for any other
    spec, which ``decode_value`` decodes. One precompiled ``struct`` per format instead of a list, a
    byte string and a format lookup per point per poll. A scale-factor register is the caller's
    business: a point with one is decoded by ``decode_value``.
    """
    if (spec.dtype is DataType.STRING or spec.bit is not None or spec.mask is not None
            or spec.order is not WordOrder.ABCD or spec.sentinel is not SentinelPolicy.NONE or spec.sentinel_values):
        return None
    unpack = _UNPACK[spec.dtype]
    scale, offset = spec.scale, spec.offset
    if spec.dtype.is_float:
        isfinite = math.isfinite

        def decode_float(data: bytes, at: int) -> float | None:
            (raw,) = unpack(data, at)
            if not isfinite(raw):
                return None
            return float(raw * scale + offset)

        return decode_float

    def decode_int(data: bytes, at: int) -> float | None:
        (raw,) = unpack(data, at)
        return float(raw * scale + offset)

    return decode_int


def raw_range(dtype: DataType) -> tuple[int, int] | None:
    """The smallest and largest raw value of an integer type; None for floats and text."""
    if dtype.is_float or dtype is DataType.STRING:
        return None
    bits = 16 * register_count(dtype)
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if dtype.is_signed else (0, (1 << bits) - 1)


def _num(x: float) -> str:
    return f"{x:.12g}"


def exact_raw(value: float, spec: RegisterSpec, sf: int = 0) -> int | float:
    """The raw value that makes the device read exactly ``value``, or ``ProtocolError`` in one line.

    Where ``encode_value`` rounds to the nearest step, this refuses: a technician
    writing 21.5 to an int16 set point must learn that the register holds whole
    numbers, not find 22 there. The message names the type and its range.
    """
    if not math.isfinite(value):
        raise ProtocolError(f"cannot write {value!r}")
    step = spec.scale * 10.0**sf
    if step == 0:
        raise ProtocolError("a scale of zero cannot be inverted")
    raw = (value - spec.offset) / step
    limits = raw_range(spec.dtype)
    if limits is None:
        if spec.dtype is DataType.FLOAT32 and abs(raw) > 3.4028234663852886e38:
            raise ProtocolError(f"{_num(value)} does not fit a float32 (at most ±3.4e38)")
        return raw
    lo, hi = limits
    if step == 1 and spec.offset == 0:
        what = f"{spec.dtype.value} holds whole numbers from {lo} to {hi}"
    else:
        what = (f"{spec.dtype.value} with scale {_num(step)}"
                + (f" and offset {_num(spec.offset)}" if spec.offset else "")
                + f" holds steps of {_num(abs(step))} from {_num(min(lo * step, hi * step) + spec.offset)}"
                  f" to {_num(max(lo * step, hi * step) + spec.offset)}")
    nearest = round(raw)
    # A scale or an offset divides in floating point (21.6 / 0.1 = 216.00000000000003): allow that noise, no more.
    noise = 0.0 if step == 1 and spec.offset == 0 else 1e-9 * max(1.0, abs(raw))
    if abs(raw - nearest) > noise:
        raise ProtocolError(f"{_num(value)} cannot be written exactly: {what}")
    if not lo <= nearest <= hi:
        raise ProtocolError(f"{_num(value)} is out of range: {what}")
    return nearest


def encode_value(value: float, spec: RegisterSpec, sf: int = 0) -> tuple[int, ...]:
    """Registers to write so that the device reads ``value`` (the inverse of ``decode_value``).

    Integer types round to the nearest step; a value out of range raises ``ProtocolError``.
    """
    if spec.dtype is DataType.STRING or spec.bit is not None or spec.mask is not None:
        raise ProtocolError("encode_value writes numbers; bit fields use encode_bits, text encode_string")
    if not math.isfinite(value):
        raise ProtocolError(f"cannot write {value!r}")
    step = spec.scale * 10.0**sf
    if step == 0:
        raise ProtocolError("a scale of zero cannot be inverted")
    raw: float | int = (value - spec.offset) / step
    if not spec.dtype.is_float:
        raw = round(raw)
    return encode_raw(raw, spec.dtype, spec.order)
