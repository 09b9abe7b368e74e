"""What one read request costs on the wire, in seconds, per transport.

Pure arithmetic, no I/O: the read planner (``plan.py``) weighs one more
request against the unused registers a wider request would carry, and this
module says what each is worth on a given bus.

* **RTU** (an RS-485 line, directly or behind a serial device server). A read
  request is 8 characters (address, function, start, count, CRC); its answer
  is 5 characters (address, function, byte count, CRC) plus the data. Between
  them and after them the line stays silent for the inter-frame gap
  (3.5 characters, 1.75 ms above 19,200 baud), and the device takes its
  *turnaround* to answer (typically 10 to 50 ms for a meter; ``DEFAULT_TURNAROUND_S``
  unless the bus says otherwise). Each register is 2 more characters of the
  answer, each 8 coils or inputs one more. A character is a start bit, 8 data
  bits, the parity bit if any and the stop bits, at the line's baud rate: at
  9,600 8N1 a request costs about 41 ms before its first register and each
  register about 2.1 ms, so bridging up to about 19 unused registers is
  cheaper than a second request.
* **TCP** (Modbus TCP). A request is one network round trip (``rtt_s``: the
  device's answer time on a LAN) plus the MBAP header (7 bytes each way) and
  PDU bytes at the link speed; a register is 2 bytes at the link speed, which
  at 100 Mbit/s is nothing: on TCP a wider request always beats a second one,
  up to the protocol limit.

``RequestCost.for_bus`` picks the figures from a bus's settings; RTU over TCP
is RTU at the serial server's line speed plus the network round trip.
"""

from __future__ import annotations

__all__ = [
    "RequestCost",
    "BusLine",
    "char_time_s",
    "min_frame_gap_s",
    "DEFAULT_TURNAROUND_S",
    "DEFAULT_RTT_S",
    "DEFAULT_LINK_BPS",
    "RTU_REQUEST_CHARS",
    "RTU_RESPONSE_CHARS",
    "MBAP_BYTES",
]

from dataclasses import dataclass
from typing import Protocol

DEFAULT_TURNAROUND_S = 0.020  # a meter's typical answer time after a request on a serial line
DEFAULT_RTT_S = 0.005  # a Modbus TCP device's typical answer time on a LAN
DEFAULT_LINK_BPS = 100_000_000  # Fast Ethernet: the Pi's own port is faster, most meters' are not
RTU_REQUEST_CHARS = 8  # address, function, start (2), count (2), CRC (2)
RTU_RESPONSE_CHARS = 5  # address, function, byte count, CRC (2); the data come on top
MBAP_BYTES = 7  # transaction id, protocol id, length, unit id
TCP_REQUEST_PDU = 5  # function, start (2), count (2)
TCP_RESPONSE_PDU = 2  # function, byte count; the data come on top


def char_time_s(baudrate: int, parity: str = "N", stopbits: int = 1, bytesize: int = 8) -> float:
    """Seconds one character takes on the line: start bit, data, parity, stop bits."""
    bits = 1 + bytesize + (0 if parity == "N" else 1) + stopbits
    return bits / baudrate


def min_frame_gap_s(baudrate: int, parity: str = "N", stopbits: int = 1, bytesize: int = 8) -> float:
    """The RTU silent interval between frames: 3.5 character times, and at least
    1.75 ms above 19,200 baud (the fixed value the Modbus serial line spec gives)."""
    if baudrate > 19200:
        return 0.00175
    return 3.5 * char_time_s(baudrate, parity, stopbits, bytesize)


class BusLine(Protocol):
    """What the cost model needs of a bus's settings (``ModbusOptions`` has all of it)."""

    @property
    def transport(self) -> str: ...
    @property
    def baudrate(self) -> int: ...
    @property
    def parity(self) -> str: ...
    @property
    def stopbits(self) -> int: ...
    @property
    def bytesize(self) -> int: ...
    @property
    def frame_gap_s(self) -> float: ...
    @property
    def turnaround_s(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class RequestCost:
    """Bus time of one read request: ``fixed_s`` per request, plus per register or per bit carried.

    Value object: validated at construction, compared by value, hashable (a
    plan caches on it).
    """

    fixed_s: float
    per_register_s: float
    per_bit_s: float
    label: str = ""  # how the figures were made, for reports: "rtu 9600 8E1", "tcp rtt 5 ms"

    def __post_init__(self) -> None:
        for name in ("fixed_s", "per_register_s", "per_bit_s"):
            v = getattr(self, name)
            if not v >= 0 or v == float("inf"):
                raise ValueError(f"{name} must be a finite figure of 0 or more, got {v}")

    @classmethod
    def for_rtu(cls, baudrate: int, parity: str = "N", stopbits: int = 1, bytesize: int = 8,
                turnaround_s: float = DEFAULT_TURNAROUND_S, frame_gap_s: float | None = None) -> RequestCost:
        """An RTU line: framing and two inter-frame gaps and the turnaround per request, 2 characters a register.

        ``frame_gap_s`` is the silence the bus keeps between frames (default:
        3.5 characters at the line's speed, as ``ModbusOptions.frame_gap_s``).
        """
        if baudrate <= 0:
            raise ValueError(f"baud rate must be positive, got {baudrate}")
        char = char_time_s(baudrate, parity, stopbits, bytesize)
        gap = min_frame_gap_s(baudrate, parity, stopbits, bytesize) if frame_gap_s is None else frame_gap_s
        fixed = (RTU_REQUEST_CHARS + RTU_RESPONSE_CHARS) * char + 2 * gap + turnaround_s
        return cls(fixed, 2 * char, char / 8, f"rtu {baudrate} {bytesize}{parity}{stopbits}")

    @classmethod
    def for_tcp(cls, rtt_s: float = DEFAULT_RTT_S, link_bps: float = DEFAULT_LINK_BPS) -> RequestCost:
        """Modbus TCP: a round trip and the MBAP framing per request, 2 bytes a register at the link speed."""
        if link_bps <= 0:
            raise ValueError(f"link speed must be positive, got {link_bps}")
        byte = 8 / link_bps
        fixed = rtt_s + (2 * MBAP_BYTES + TCP_REQUEST_PDU + TCP_RESPONSE_PDU) * byte
        return cls(fixed, 2 * byte, byte / 8, f"tcp rtt {rtt_s * 1000:g} ms")

    @classmethod
    def for_bus(cls, line: BusLine, frame_gap_s: float | None = None) -> RequestCost:
        """The cost on a configured bus: TCP, RTU, or RTU behind a serial server (RTU plus a round trip).

        ``frame_gap_s`` replaces the bus's inter-frame silence (a device's own
        ``inter_frame_delay_ms``).
        """
        turnaround = line.turnaround_s
        if line.transport == "tcp":
            return cls.for_tcp(DEFAULT_RTT_S if turnaround is None else turnaround)
        t = DEFAULT_TURNAROUND_S if turnaround is None else turnaround
        if line.transport == "rtu-over-tcp" and turnaround is None:
            t += DEFAULT_RTT_S
        gap = line.frame_gap_s if frame_gap_s is None else frame_gap_s
        cost = cls.for_rtu(line.baudrate, line.parity, line.stopbits, line.bytesize, t, gap)
        return cost if line.transport == "rtu" else RequestCost(cost.fixed_s, cost.per_register_s, cost.per_bit_s,
                                                                f"rtu-over-tcp {cost.label[4:]}")

    def payload_s(self, is_bits: bool, count: int) -> float:
        """Bus time of the data of ``count`` registers (or bits, sent as whole bytes)."""
        if is_bits:
            return -(-count // 8) * 8 * self.per_bit_s
        return count * self.per_register_s

    def request_s(self, is_bits: bool, count: int) -> float:
        """Bus time of one request carrying ``count`` registers (or bits)."""
        return self.fixed_s + self.payload_s(is_bits, count)

    def break_even_registers(self) -> float:
        """How many unused registers one request is worth (inf when registers cost nothing)."""
        return self.fixed_s / self.per_register_s if self.per_register_s else float("inf")
