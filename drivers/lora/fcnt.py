"""LoRaWAN frame counters: 32-bit reconstruction from the 16 bits on air, and replay rejection.

A device's uplink counter only moves forward. The frame carries its low 16
bits; the receiver knows the last 32-bit value it accepted and takes the
smallest value above it that ends in those 16 bits. If that means a jump of
more than ``max_gap`` frames (16384, the LoRaWAN 1.0 MAX_FCNT_GAP), the frame
is far more likely an old frame replayed, or a device that restarted its
counter from zero (ABP without persistent counters), than 16384 lost frames:
it is rejected and the reason says which fix applies.

State is a frozen value, ``FrameCounter``; ``check`` never changes it and
``accept`` returns the next state, so the caller advances only after the MIC
has confirmed the reconstructed counter.
"""

from __future__ import annotations

__all__ = ["MAX_FCNT_GAP", "FcntStatus", "FcntCheck", "FrameCounter", "reconstruct_fcnt"]

from dataclasses import dataclass
from enum import Enum

MAX_FCNT_GAP = 16384
_MAX32 = 0xFFFFFFFF


class FcntStatus(Enum):
    NEW = "new"  # ahead of the last accepted counter, within max_gap
    DUPLICATE = "duplicate"  # the same counter as the last accepted (a retransmission or a second gateway's copy)
    REJECTED = "rejected"  # behind, or too far ahead: a replay or a counter reset


@dataclass(frozen=True, slots=True)
class FcntCheck:
    status: FcntStatus
    fcnt32: int  # the reconstructed counter (for REJECTED: the nearest interpretation)
    reason: str = ""

    @property
    def accepted(self) -> bool:
        return self.status is FcntStatus.NEW


def reconstruct_fcnt(last_fcnt32: int | None, fcnt16: int, max_gap: int = MAX_FCNT_GAP) -> FcntCheck:
    """Classify ``fcnt16`` against the last accepted 32-bit counter (None: nothing accepted yet)."""
    if not 0 <= fcnt16 <= 0xFFFF:
        raise ValueError(f"fcnt16 must fit 16 bits, got {fcnt16}")
    if not 1 <= max_gap <= 0xFFFF:
        raise ValueError(f"max_gap must be 1..65535, got {max_gap}")
    if last_fcnt32 is None:
        # First frame heard: the high bits are unknown, assume the device is in its first 65536 frames.
        return FcntCheck(FcntStatus.NEW, fcnt16)
    if not 0 <= last_fcnt32 <= _MAX32:
        raise ValueError(f"last_fcnt32 must fit 32 bits, got {last_fcnt32}")
    if fcnt16 == last_fcnt32 & 0xFFFF:
        return FcntCheck(FcntStatus.DUPLICATE, last_fcnt32, "same counter as the last accepted frame")
    gap = (fcnt16 - last_fcnt32) & 0xFFFF  # 1..65535 frames ahead
    ahead = last_fcnt32 + gap
    if gap <= max_gap:
        if ahead > _MAX32:
            return FcntCheck(
                FcntStatus.REJECTED, ahead & _MAX32,
                "the 32-bit frame counter is exhausted: the device must rejoin or be given new session keys",
            )
        return FcntCheck(FcntStatus.NEW, ahead)
    behind = ahead - 0x10000
    if behind >= 0:
        return FcntCheck(
            FcntStatus.REJECTED, behind,
            f"counter {behind} is {last_fcnt32 - behind} behind the last accepted {last_fcnt32}: "
            "a replayed or delayed frame, or a device that restarted its counter "
            "(ABP without persistent counters: reset the device's counter state after checking)",
        )
    return FcntCheck(
        FcntStatus.REJECTED, ahead,
        f"counter jumps {gap} frames ahead of {last_fcnt32}, more than the allowed {max_gap}",
    )


@dataclass(frozen=True, slots=True)
class FrameCounter:
    """The uplink counter state of one device session."""

    last: int | None = None
    max_gap: int = MAX_FCNT_GAP

    def check(self, fcnt16: int) -> FcntCheck:
        return reconstruct_fcnt(self.last, fcnt16, self.max_gap)

    def accept(self, fcnt32: int) -> FrameCounter:
        """The state after a frame with ``fcnt32`` passed its MIC check."""
        if not 0 <= fcnt32 <= _MAX32:
            raise ValueError(f"fcnt32 must fit 32 bits, got {fcnt32}")
        if self.last is not None and fcnt32 <= self.last:
            raise ValueError(f"counter {fcnt32} does not move past the last accepted {self.last}")
        return FrameCounter(fcnt32, self.max_gap)
