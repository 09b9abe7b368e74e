"""Link layer (EN 13757-2): the four frame formats, their checks and builders.

Formats on the wire::

    single character   E5
    short frame        10 C A CS 16
    control frame      68 03 03 68 C A CI CS 16
    long frame         68 L L 68 C A CI data... CS 16      (L = 3 + len(data))

CS is the arithmetic sum, modulo 256, of C, A, CI and the data. Everything
here is pure: :func:`parse_frame` checks one complete frame,
:class:`FrameParser` cuts frames out of a byte stream as it arrives from a
serial line (resynchronising after noise), and the builders return the bytes
a master sends.
"""

from __future__ import annotations

from dataclasses import dataclass

from zaas_edge.drivers.mbus.errors import MBusError
from zaas_edge.drivers.mbus.header import encode_manufacturer

__all__ = [
    "ACK",
    "SHORT_START",
    "LONG_START",
    "STOP",
    "C_SND_NKE",
    "C_SND_UD",
    "C_REQ_UD1",
    "C_REQ_UD2",
    "C_RSP_UD",
    "FCB",
    "ADDRESS_NETWORK_LAYER",
    "ADDRESS_BROADCAST_REPLY",
    "ADDRESS_BROADCAST",
    "Ack",
    "ShortFrame",
    "ControlFrame",
    "LongFrame",
    "Frame",
    "checksum",
    "parse_frame",
    "encode_frame",
    "FrameParser",
    "snd_nke",
    "req_ud1",
    "req_ud2",
    "snd_ud",
    "application_reset",
    "select_secondary",
    "set_primary_address",
]

ACK = 0xE5
SHORT_START = 0x10
LONG_START = 0x68
STOP = 0x16

# Control field (C). Master to slave frames have bit 6 (PRM) set; FCV (bit 4)
# says the frame count bit (FCB, bit 5) is valid.
C_SND_NKE = 0x40
C_SND_UD = 0x53
C_REQ_UD1 = 0x5A
C_REQ_UD2 = 0x5B
C_RSP_UD = 0x08
FCB = 0x20

# Reserved addresses: 0xFD addresses the slave selected by secondary address,
# 0xFE is a broadcast every slave answers, 0xFF a broadcast nobody answers.
ADDRESS_NETWORK_LAYER = 0xFD
ADDRESS_BROADCAST_REPLY = 0xFE
ADDRESS_BROADCAST = 0xFF

_MAX_DATA = 252  # L is one byte and counts C, A and CI


@dataclass(frozen=True, slots=True)
class Ack:
    """The single character E5: a slave's acknowledgement."""

    def to_bytes(self) -> bytes:
        return bytes((ACK,))


@dataclass(frozen=True, slots=True)
class ShortFrame:
    """``10 C A CS 16``: SND_NKE, REQ_UD1, REQ_UD2 from the master."""

    control: int
    address: int

    def __post_init__(self) -> None:
        _check_byte("control", self.control)
        _check_byte("address", self.address)

    def to_bytes(self) -> bytes:
        return bytes((SHORT_START, self.control, self.address, (self.control + self.address) & 0xFF, STOP))


@dataclass(frozen=True, slots=True)
class ControlFrame:
    """A long frame without data (L = 3), e.g. an application reset."""

    control: int
    address: int
    ci: int

    def __post_init__(self) -> None:
        _check_byte("control", self.control)
        _check_byte("address", self.address)
        _check_byte("ci", self.ci)

    @property
    def data(self) -> bytes:
        return b""

    def to_bytes(self) -> bytes:
        return _long_bytes(self.control, self.address, self.ci, b"")


@dataclass(frozen=True, slots=True)
class LongFrame:
    """``68 L L 68 C A CI data CS 16``: SND_UD from the master, RSP_UD from a slave."""

    control: int
    address: int
    ci: int
    data: bytes

    def __post_init__(self) -> None:
        _check_byte("control", self.control)
        _check_byte("address", self.address)
        _check_byte("ci", self.ci)
        if len(self.data) > _MAX_DATA:
            raise MBusError(f"long frame data is {len(self.data)} bytes, at most {_MAX_DATA} fit")

    @property
    def is_response(self) -> bool:
        """True for slave-to-master frames (PRM bit clear)."""
        return not self.control & 0x40

    def to_bytes(self) -> bytes:
        return _long_bytes(self.control, self.address, self.ci, self.data)


Frame = Ack | ShortFrame | ControlFrame | LongFrame


def _check_byte(name: str, value: int) -> None:
    if not 0 <= value <= 0xFF:
        raise MBusError(f"{name} must be a byte (0..255), got {value}")


def checksum(data: bytes) -> int:
    """The M-Bus checksum: arithmetic sum modulo 256."""
    return sum(data) & 0xFF


def _long_bytes(control: int, address: int, ci: int, data: bytes) -> bytes:
    body = bytes((control, address, ci)) + data
    length = len(body)
    return bytes((LONG_START, length, length, LONG_START)) + body + bytes((checksum(body), STOP))


def encode_frame(frame: Frame) -> bytes:
    """The wire bytes of ``frame``."""
    return frame.to_bytes()


def parse_frame(raw: bytes) -> Frame:
    """Check and decode exactly one complete frame; raise :class:`MBusError` otherwise."""
    raw = bytes(raw)
    if not raw:
        raise MBusError("empty buffer: no M-Bus frame", 0)
    try:
        frame, end = _parse_at(raw, 0)
    except _Incomplete as exc:
        raise MBusError(f"frame is truncated: {exc.missing} more byte(s) expected", len(raw)) from None
    if end != len(raw):
        raise MBusError(f"{len(raw) - end} unexpected byte(s) after the frame", end)
    return frame


def _parse_at(raw: bytes, pos: int) -> tuple[Frame, int]:
    """Decode the frame starting at ``pos``; return it and the offset after it.

    Raises :class:`MBusError` for a malformed frame and :class:`_Incomplete`
    when the buffer ends before the frame does.
    """
    n = len(raw)
    start = raw[pos]
    if start == ACK:
        return Ack(), pos + 1
    if start == SHORT_START:
        if n - pos < 5:
            raise _Incomplete(pos, 5 - (n - pos))
        c, a, cs, stop = raw[pos + 1], raw[pos + 2], raw[pos + 3], raw[pos + 4]
        if stop != STOP:
            raise MBusError(f"short frame: stop byte is 0x{stop:02X}, expected 0x16", pos + 4)
        if cs != (c + a) & 0xFF:
            raise MBusError(f"short frame: checksum 0x{cs:02X} does not match 0x{(c + a) & 0xFF:02X}", pos + 3)
        return ShortFrame(c, a), pos + 5
    if start == LONG_START:
        if n - pos < 4:
            raise _Incomplete(pos, 4 - (n - pos))
        l1, l2, start2 = raw[pos + 1], raw[pos + 2], raw[pos + 3]
        if l1 != l2:
            raise MBusError(f"long frame: length bytes differ (0x{l1:02X} != 0x{l2:02X})", pos + 2)
        if start2 != LONG_START:
            raise MBusError(f"long frame: second start byte is 0x{start2:02X}, expected 0x68", pos + 3)
        if l1 < 3:
            raise MBusError(f"long frame: length {l1} is below the minimum of 3 (C, A, CI)", pos + 1)
        total = l1 + 6
        if n - pos < total:
            raise _Incomplete(pos, total - (n - pos))
        body = raw[pos + 4 : pos + 4 + l1]
        cs, stop = raw[pos + 4 + l1], raw[pos + 5 + l1]
        if stop != STOP:
            raise MBusError(f"long frame: stop byte is 0x{stop:02X}, expected 0x16", pos + 5 + l1)
        if cs != checksum(body):
            raise MBusError(f"long frame: checksum 0x{cs:02X} does not match 0x{checksum(body):02X}", pos + 4 + l1)
        c, a, ci = body[0], body[1], body[2]
        if l1 == 3:
            return ControlFrame(c, a, ci), pos + total
        return LongFrame(c, a, ci, bytes(body[3:])), pos + total
    raise MBusError(f"0x{start:02X} starts no M-Bus frame (expected E5, 10 or 68)", pos)


class _Incomplete(Exception):
    """Internal: the buffer ends inside a frame."""

    def __init__(self, pos: int, missing: int) -> None:
        self.pos = pos
        self.missing = missing
        super().__init__(f"frame at byte {pos} needs {missing} more byte(s)")


class FrameParser:
    """Incremental frame splitter for a serial byte stream.

    ``feed`` returns every complete, valid frame seen so far. Noise before a
    frame, and frames with a bad length, checksum or stop byte, are dropped
    one byte at a time until a valid frame start lines up again; the counters
    ``dropped_bytes`` and ``bad_frames`` and ``last_error`` let the I/O shell
    report line trouble without this class doing any I/O.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self.dropped_bytes = 0
        self.bad_frames = 0
        self.last_error: str | None = None

    @property
    def pending(self) -> int:
        """Bytes buffered while waiting for the rest of a frame."""
        return len(self._buf)

    def clear(self) -> None:
        """Forget a partial frame, e.g. after a response timeout."""
        self.dropped_bytes += len(self._buf)
        self._buf.clear()

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        buf = self._buf
        pos = 0
        n = len(buf)
        while pos < n:
            b = buf[pos]
            if b not in (ACK, SHORT_START, LONG_START):
                pos += 1
                self.dropped_bytes += 1
                continue
            try:
                frame, end = _parse_at(buf, pos)
            except _Incomplete:
                break
            except MBusError as exc:
                self.bad_frames += 1
                self.last_error = str(exc)
                self.dropped_bytes += 1
                pos += 1
                continue
            frames.append(frame)
            pos = end
        del buf[:pos]
        return frames


# -- builders for the master side ------------------------------------------------


def _address(address: int) -> int:
    if not 0 <= address <= 0xFF:
        raise MBusError(f"primary address must be 0..255, got {address}")
    return address


def snd_nke(address: int) -> bytes:
    """SND_NKE: link reset; the slave answers E5 and clears its FCB state."""
    return ShortFrame(C_SND_NKE, _address(address)).to_bytes()


def req_ud1(address: int, fcb: bool = False) -> bytes:
    """REQ_UD1: request class 1 (alarm) data."""
    return ShortFrame(C_REQ_UD1 | (FCB if fcb else 0), _address(address)).to_bytes()


def req_ud2(address: int, fcb: bool = False) -> bytes:
    """REQ_UD2: request class 2 (user) data.

    Toggle ``fcb`` after each successful exchange to get the next telegram of
    a multi-telegram response; repeat it unchanged to get a lost one again.
    """
    return ShortFrame(C_REQ_UD2 | (FCB if fcb else 0), _address(address)).to_bytes()


def snd_ud(address: int, ci: int, data: bytes = b"", fcb: bool = False) -> bytes:
    """SND_UD: send user data (CI and payload) to a slave."""
    c = C_SND_UD | (FCB if fcb else 0)
    if not data:
        return ControlFrame(c, _address(address), ci).to_bytes()
    return LongFrame(c, _address(address), ci, bytes(data)).to_bytes()


def application_reset(address: int, subcode: int | None = None, fcb: bool = False) -> bytes:
    """SND_UD with CI 0x50: application reset, optionally with a subcode byte
    (e.g. 0x10 selects all telegrams with all data)."""
    data = b"" if subcode is None else bytes((subcode & 0xFF,))
    return snd_ud(address, 0x50, data, fcb)


def set_primary_address(address: int, new_address: int, fcb: bool = False) -> bytes:
    """SND_UD with CI 0x51 writing a new primary address (DIF 01, VIF 7A)."""
    if not 1 <= new_address <= 250:
        raise MBusError(f"new primary address must be 1..250, got {new_address}")
    return snd_ud(address, 0x51, bytes((0x01, 0x7A, new_address)), fcb)


def select_secondary(
    identification: str,
    manufacturer: str | None = None,
    version: int | None = None,
    medium: int | None = None,
    fcb: bool = False,
) -> bytes:
    """SND_UD to address 0xFD with CI 0x52: select a slave by secondary address.

    ``identification`` is the 8-digit identification number; an ``F`` digit
    is a wildcard (as are ``None`` for manufacturer, version and medium), which
    is how a master searches the bus.
    """
    ident = identification.upper()
    if len(ident) != 8 or any(ch not in "0123456789F" for ch in ident):
        raise MBusError(f"identification must be 8 digits (F as wildcard), got {identification!r}")
    id_bytes = bytes.fromhex(ident)[::-1]
    if manufacturer is None:
        man = b"\xff\xff"
    else:
        man = encode_manufacturer(manufacturer).to_bytes(2, "little")
    ver = 0xFF if version is None else version
    med = 0xFF if medium is None else medium
    _check_byte("version", ver)
    _check_byte("medium", med)
    return snd_ud(ADDRESS_NETWORK_LAYER, 0x52, id_bytes + man + bytes((ver, med)), fcb)
