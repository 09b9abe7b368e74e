"""Unsigned LEB128 varints and zigzag integers: the byte layer of the batch codec.

Pure and allocation-light: the decoding loops read whole columns at once,
since a method call per value costs more than decoding it.
"""

from __future__ import annotations

__all__ = ["zz", "unzz", "put", "put1", "put_str", "Reader", "section"]

from collections.abc import Sequence

from zaas_edge.errors import ProtocolError


def zz(v: int) -> int:
    return v << 1 if v >= 0 else ((-v) << 1) - 1


def unzz(z: int) -> int:
    return (z >> 1) ^ -(z & 1)


def put(out: bytearray, values: Sequence[int]) -> None:
    """Unsigned LEB128 varints; a run of small values is copied in one go."""
    if not values:
        return
    if max(values) < 0x80 and min(values) >= 0:
        out += bytes(values)
        return
    for v in values:
        if v < 0:
            raise ValueError("negative varint")
        while v >= 0x80:
            out.append((v & 0x7F) | 0x80)
            v >>= 7
        out.append(v)


def put1(out: bytearray, v: int) -> None:
    put(out, (v,))


def put_str(out: bytearray, s: str) -> None:
    b = s.encode("utf-8")
    put1(out, len(b))
    out += b


class Reader:
    """A cursor over one section; any overrun or oddity is a ProtocolError."""

    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf: bytes, pos: int = 0, end: int | None = None) -> None:
        self.buf, self.pos, self.end = buf, pos, len(buf) if end is None else end

    def u(self) -> int:
        buf, pos, end = self.buf, self.pos, self.end
        shift = result = 0
        while True:
            if pos >= end:
                raise ProtocolError(f"truncated varint at byte {pos}")
            b = buf[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if b < 0x80:
                break
            shift += 7
            if shift > 63:
                raise ProtocolError(f"varint longer than 64 bits at byte {pos}")
        self.pos = pos
        return result

    def us(self, count: int) -> list[int]:
        buf, pos = self.buf, self.pos
        if count > self.end - pos:
            raise ProtocolError(f"{count} values announced, {self.end - pos} bytes left at byte {pos}")
        chunk = buf[pos:pos + count]
        if not chunk or max(chunk) < 0x80:  # the common case: every value fits one byte
            self.pos = pos + count
            return list(chunk)
        return self._varints(count)

    def rest(self) -> list[int]:
        """Every varint left in the section (a column read in one go)."""
        return self._varints(None)

    def _varints(self, count: int | None) -> list[int]:
        # One tight loop for a whole column: a method call per value costs more than the decoding.
        buf, pos, end = self.buf, self.pos, self.end
        out: list[int] = []
        append = out.append
        while (pos < end) if count is None else (len(out) < count):
            shift = result = 0
            while True:
                if pos >= end:
                    raise ProtocolError(f"truncated varint at byte {pos}")
                b = buf[pos]
                pos += 1
                result |= (b & 0x7F) << shift
                if b < 0x80:
                    break
                shift += 7
                if shift > 63:
                    raise ProtocolError(f"varint longer than 64 bits at byte {pos}")
            append(result)
        self.pos = pos
        return out

    def z(self) -> int:
        return unzz(self.u())

    def byte(self) -> int:
        if self.pos >= self.end:
            raise ProtocolError(f"truncated at byte {self.pos}")
        self.pos += 1
        return self.buf[self.pos - 1]

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise ProtocolError(f"{n} bytes announced at byte {self.pos}, {self.end - self.pos} left")
        self.pos += n
        return self.buf[self.pos - n:self.pos]

    def text(self) -> str:
        try:
            return self.take(self.u()).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"string is not UTF-8 before byte {self.pos}") from exc

    def section(self) -> Reader:
        n = self.u()
        if n > self.end - self.pos:
            raise ProtocolError(f"section of {n} bytes at byte {self.pos}, {self.end - self.pos} left")
        sub = Reader(self.buf, self.pos, self.pos + n)
        self.pos += n
        return sub

    def done(self, what: str) -> None:
        if self.pos != self.end:
            raise ProtocolError(f"{self.end - self.pos} unexpected bytes after the {what}")


def section(out: bytearray, body: bytearray) -> None:
    put1(out, len(body))
    out += body
