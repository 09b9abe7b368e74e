"""The recent frames a LoRa driver heard, each with its verdict: what ``zaas-edge lora frames`` shows.

Counters say how many frames were refused; a technician at a forwarder wants
to see *which*: this device's frame 4711 through gateway B, RSSI -117, bad
MIC. The driver records one ``FrameRecord`` per verdict in a bounded ring
(``FrameLog``), numbered by a sequence that only grows, so a client polling
with the last number it saw gets exactly the frames since (``after``), and
knows how many it missed when the ring turned over (``missed``); ``log_id``
tells it the driver restarted and numbers from 1 again. The ring is
memory only (a few hundred records): nothing here is written to the SD card.

Pure: the caller hands in the wall time.
"""

from __future__ import annotations

__all__ = ["FrameLog", "FrameRecord", "Verdict", "DEFAULT_SIZE"]

import collections
import secrets
from dataclasses import asdict, dataclass
from enum import StrEnum

from pydantic import JsonValue

DEFAULT_SIZE = 256


class Verdict(StrEnum):
    ACCEPTED = "accepted"  # MIC good, counter fresh: its readings went out
    DUPLICATE = "duplicate"  # another copy of a frame already taken (another gateway, a retransmission)
    REPLAY = "replay"  # MIC good but the counter is not ahead of the last accepted one
    BAD_MIC = "bad MIC"  # a known DevAddr, but the MIC does not match its NwkSKey
    UNKNOWN_DEVICE = "unknown device"  # a DevAddr (or DevEUI) not in the keys file
    JOIN_REQUEST = "join request"  # an OTAA join request, handed to the join handler
    INVALID = "invalid"  # not a LoRaWAN frame (or a bad radio CRC)
    IGNORED = "ignored"  # a downlink or a proprietary frame heard on the air


@dataclass(frozen=True, slots=True)
class FrameRecord:
    """One frame heard and what the driver made of it."""

    seq: int
    time: float  # wall clock seconds
    verdict: Verdict
    gateway: str | None = None  # forwarder EUI, 16 hex digits
    rssi: float | None = None
    snr: float | None = None
    dev_addr: str | None = None  # 8 hex digits, or the DevEUI of a join request
    device: str | None = None  # the keys file's id
    fcnt: int | None = None  # 32 bits once the MIC confirmed it, else the 16 on air
    fport: int | None = None
    freq_mhz: float | None = None
    datr: str | None = None
    detail: str | None = None  # why, for the refused ones
    copies: int | None = None  # accepted: how many gateways heard it

    def as_dict(self) -> dict[str, JsonValue]:
        out: dict[str, JsonValue] = asdict(self)
        out["verdict"] = self.verdict.value
        return out


class FrameLog:
    """A ring of the last ``size`` records; ``after(seq)`` reads what is newer."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError("a frame log holds at least one record")
        self._ring: collections.deque[FrameRecord] = collections.deque(maxlen=size)
        self.last_seq = 0
        # Names this log: a restarted driver (a reload) numbers from 1 again, and a client must know.
        self.log_id = secrets.token_hex(4)

    def record(self, time: float, verdict: Verdict, **fields: str | int | float | None) -> FrameRecord:
        self.last_seq += 1
        rec = FrameRecord(self.last_seq, time, verdict, **fields)  # type: ignore[arg-type]
        self._ring.append(rec)
        return rec

    def after(self, seq: int, limit: int | None = None) -> list[FrameRecord]:
        """The records numbered above ``seq``, oldest first (at most ``limit``, the newest)."""
        out = [r for r in self._ring if r.seq > seq]
        return out[-limit:] if limit else out

    def missed(self, seq: int) -> int:
        """How many records after ``seq`` the ring no longer holds (a client that polled too slowly)."""
        if not self._ring or seq >= self.last_seq:
            return 0
        return max(0, self._ring[0].seq - seq - 1)

    def answer(self, after: int, limit: int | None = None) -> dict[str, JsonValue]:
        """The ``frames`` control answer: records after ``after``, the last number and what was lost."""
        frames: list[JsonValue] = [r.as_dict() for r in self.after(after, limit)]
        return {"log_id": self.log_id, "last_seq": self.last_seq, "missed": self.missed(after), "frames": frames}
