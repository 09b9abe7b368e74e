"""The Protocol Buffers wire format, as much of it as the batch body needs (sans-I/O).

Why our own: the batch body is a protobuf message (docs/sync-batch.proto) so
that a platform team generates its decoder from the schema, but the gateway
needs neither the protobuf runtime nor generated code on the Pi, and the hot
columns (thousands of packed varints per batch) decode faster in one tight
loop than through message objects.

Writing follows the canonical serialisation the official libraries produce:
fields in number order, proto3 defaults (0, "", empty lists) left out,
repeated scalars packed. Reading accepts what any conforming encoder may
send: fields in any order, packed or unpacked repeated scalars, a singular
field repeated (the last wins), a sub-message split in parts (merged),
unknown fields skipped. Anything else is a :class:`ProtocolError`.
"""

from __future__ import annotations

__all__ = ["VARINT", "I64", "LEN", "I32", "Fields", "put_uint", "put_sint", "put_int64", "put_bool",
           "put_bytes", "put_text", "put_texts", "put_packed", "put_packed_sint", "put_doubles"]

import struct
from collections.abc import Sequence

from zaas_edge.errors import ProtocolError
from zaas_edge.wire.varint import Reader, put, put1, zz

VARINT, I64, LEN, I32 = 0, 1, 2, 5
_U64 = 1 << 64
_MAX_FIELD = (1 << 29) - 1


# ------------------------------------------------------------- writing

def put_uint(out: bytearray, field: int, v: int) -> None:
    """A uint32/uint64/enum field; 0 (the proto3 default) is not written."""
    if v:
        if not 0 < v < _U64:
            raise ValueError(f"field {field}: {v} does not fit an unsigned 64-bit varint")
        put1(out, field << 3)
        put1(out, v)


def put_sint(out: bytearray, field: int, v: int) -> None:
    """A sint32/sint64 field (zigzag); 0 is not written."""
    put_uint(out, field, zz(v))


def put_int64(out: bytearray, field: int, v: int) -> None:
    """An int64 field: a negative value is its two's complement, ten bytes."""
    if not -(1 << 63) <= v < 1 << 63:
        raise ValueError(f"field {field}: {v} does not fit int64")
    put_uint(out, field, v % _U64)


def put_bool(out: bytearray, field: int, v: bool) -> None:
    put_uint(out, field, 1 if v else 0)


def put_bytes(out: bytearray, field: int, b: bytes | bytearray, *, always: bool = False) -> None:
    """A length-delimited field: bytes, a string or a sub-message (``always``: written even when empty)."""
    if b or always:
        put1(out, field << 3 | LEN)
        put1(out, len(b))
        out += b


def put_text(out: bytearray, field: int, s: str) -> None:
    put_bytes(out, field, s.encode("utf-8"))


def put_texts(out: bytearray, field: int, items: Sequence[str]) -> None:
    """A repeated string: every element written, empty ones too."""
    for s in items:
        put_bytes(out, field, s.encode("utf-8"), always=True)


def put_packed(out: bytearray, field: int, values: Sequence[int]) -> None:
    """A packed repeated unsigned column; an empty column is not written."""
    if not values:
        return
    if max(values) >= _U64:
        raise ValueError(f"field {field}: a value does not fit an unsigned 64-bit varint")
    body = bytearray()
    put(body, values)  # refuses negatives
    put_bytes(out, field, body)


def put_packed_sint(out: bytearray, field: int, values: Sequence[int]) -> None:
    put_packed(out, field, [v << 1 if v >= 0 else ((-v) << 1) - 1 for v in values])


def put_doubles(out: bytearray, field: int, packed_le: bytes | bytearray) -> None:
    """A packed repeated double column, given as its little-endian bytes."""
    put_bytes(out, field, packed_le)


# ------------------------------------------------------------- reading

class Fields:
    """The fields of one message: number -> occurrences ``(wire type, a, b)``.

    ``a`` is a varint's value or where a payload starts, ``b`` where it ends.
    Typed getters check the wire type the schema gives the field.
    """

    __slots__ = ("buf", "by_number")

    def __init__(self, buf: bytes, start: int = 0, end: int | None = None) -> None:
        self.buf = buf
        self.by_number: dict[int, list[tuple[int, int, int]]] = {}
        self.merge(start, len(buf) if end is None else end)

    def merge(self, start: int, end: int) -> None:
        rd = Reader(self.buf, start, end)
        by = self.by_number
        while rd.pos < end:
            at = rd.pos
            key = rd.u()
            field, wire = key >> 3, key & 7
            if not 0 < field <= _MAX_FIELD:
                raise ProtocolError(f"field number {field} at byte {at}")
            if wire == VARINT:
                v = rd.u()
                if v >= _U64:
                    raise ProtocolError(f"field {field}: varint beyond 64 bits at byte {at}")
                occ = (VARINT, v, 0)
            elif wire == LEN:
                n = rd.u()
                if n > end - rd.pos:
                    raise ProtocolError(f"field {field}: {n} bytes announced at byte {rd.pos}, "
                                        f"{end - rd.pos} left")
                occ = (LEN, rd.pos, rd.pos + n)
                rd.pos += n
            elif wire in (I64, I32):
                n = 8 if wire == I64 else 4
                if n > end - rd.pos:
                    raise ProtocolError(f"field {field}: truncated fixed-width value at byte {rd.pos}")
                occ = (wire, rd.pos, rd.pos + n)
                rd.pos += n
            else:
                raise ProtocolError(f"field {field}: wire type {wire} (groups are not used) at byte {at}")
            lst = by.get(field)
            if lst is None:
                by[field] = [occ]
            else:
                lst.append(occ)

    def _last(self, field: int, wire: int, what: str) -> tuple[int, int, int] | None:
        occ = self.by_number.get(field)
        if not occ:
            return None
        last = occ[-1]
        if last[0] != wire:
            raise ProtocolError(f"field {field} ({what}) has wire type {last[0]}")
        return last

    def uint(self, field: int) -> int:
        occ = self._last(field, VARINT, "a varint")
        return occ[1] if occ else 0

    def sint(self, field: int) -> int:
        z = self.uint(field)
        return (z >> 1) ^ -(z & 1)

    def int64(self, field: int) -> int:
        v = self.uint(field)
        return v - _U64 if v >> 63 else v

    def bool(self, field: int) -> bool:
        return self.uint(field) != 0

    def text(self, field: int) -> str:
        occ = self._last(field, LEN, "a string")
        return self._utf8(field, occ[1], occ[2]) if occ else ""

    def texts(self, field: int) -> list[str]:
        out = []
        for wire, a, b in self.by_number.get(field, ()):
            if wire != LEN:
                raise ProtocolError(f"field {field} (strings) has wire type {wire}")
            out.append(self._utf8(field, a, b))
        return out

    def _utf8(self, field: int, a: int, b: int) -> str:
        try:
            return self.buf[a:b].decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(f"field {field}: string is not UTF-8 at byte {a}") from None

    def message(self, field: int) -> Fields | None:
        """A singular sub-message, its parts merged; None when absent."""
        occ = self.by_number.get(field)
        if not occ:
            return None
        sub: Fields | None = None
        for wire, a, b in occ:
            if wire != LEN:
                raise ProtocolError(f"field {field} (a message) has wire type {wire}")
            if sub is None:
                sub = Fields(self.buf, a, b)
            else:
                sub.merge(a, b)
        return sub

    def messages(self, field: int) -> list[Fields]:
        out = []
        for wire, a, b in self.by_number.get(field, ()):
            if wire != LEN:
                raise ProtocolError(f"field {field} (messages) has wire type {wire}")
            out.append(Fields(self.buf, a, b))
        return out

    def uints(self, field: int) -> list[int]:
        """A repeated varint column, packed or not (zigzag or two's complement is the caller's)."""
        occ = self.by_number.get(field)
        if not occ:
            return []
        out: list[int] = []
        for wire, a, b in occ:
            if wire == LEN:
                col = Reader(self.buf, a, b).rest()
                if col and max(col) >= _U64:
                    raise ProtocolError(f"field {field}: varint beyond 64 bits")
                out += col
            elif wire == VARINT:
                out.append(a)
            else:
                raise ProtocolError(f"field {field} (varints) has wire type {wire}")
        return out

    def doubles(self, field: int) -> list[float]:
        """A repeated double column, packed or not."""
        out: list[float] = []
        for wire, a, b in self.by_number.get(field, ()):
            if wire == LEN:
                if (b - a) % 8:
                    raise ProtocolError(f"field {field}: {b - a} bytes is not a whole number of doubles")
                out += struct.unpack_from(f"<{(b - a) // 8}d", self.buf, a)
            elif wire == I64:
                out += struct.unpack_from("<d", self.buf, a)
            else:
                raise ProtocolError(f"field {field} (doubles) has wire type {wire}")
        return out
