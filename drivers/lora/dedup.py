"""Deduplication of one radio frame heard by several packet forwarders.

The same uplink reaches every gateway in range within a few milliseconds of
each other. The first copy opens a short window; copies with the same key
(DevAddr, FCnt, MIC) that arrive inside it join the group, and when the window
closes the copy with the best RSSI is released, once. Copies arriving after
that, up to ``memory`` seconds after the first, are counted and dropped.

Pure logic: time is the caller's monotonic ``now`` in seconds; the I/O shell
asks ``next_deadline()`` when to wake up and calls ``pop_due(now)``.
"""

from __future__ import annotations

__all__ = ["Deduplicator", "Deduplicated", "frame_key"]

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .lorawan import DataFrame

T = TypeVar("T")


def frame_key(frame: DataFrame) -> tuple[int, int, bytes]:
    """Two receptions are the same frame when DevAddr, FCnt and MIC agree."""
    return (frame.dev_addr, frame.fcnt16, frame.mic)


@dataclass(frozen=True, slots=True)
class Deduplicated(Generic[T]):
    key: Hashable
    item: T  # the copy with the best RSSI
    rssi: float | None
    copies: int  # how many receptions were merged


@dataclass(slots=True)
class _Group(Generic[T]):
    first_seen: float
    item: T
    rssi: float | None
    copies: int = 1
    released: bool = False


def _better(rssi: float | None, than: float | None) -> bool:
    if rssi is None:
        return False
    return than is None or rssi > than


class Deduplicator(Generic[T]):
    """Groups copies of a frame over ``window`` seconds and keeps the strongest one."""

    def __init__(self, window: float = 0.2, memory: float = 10.0) -> None:
        if window < 0 or memory < window:
            raise ValueError("need 0 <= window <= memory")
        self.window = window
        self.memory = memory
        self._groups: dict[Hashable, _Group[T]] = {}
        self.late_copies = 0  # copies heard after their group was released

    def offer(self, key: Hashable, item: T, rssi: float | None, now: float) -> bool:
        """Add one reception. True when it is the first copy of its frame."""
        self._expire(now)
        group = self._groups.get(key)
        if group is None:
            self._groups[key] = _Group(now, item, rssi)
            return True
        group.copies += 1
        if group.released:
            self.late_copies += 1
        elif _better(rssi, group.rssi):
            group.item, group.rssi = item, rssi
        return False

    def pop_due(self, now: float) -> list[Deduplicated[T]]:
        """Frames whose window has closed, each released exactly once, oldest first."""
        out: list[Deduplicated[T]] = []
        for key, group in self._groups.items():
            if not group.released and now >= group.first_seen + self.window:
                group.released = True
                out.append(Deduplicated(key, group.item, group.rssi, group.copies))
        self._expire(now)
        return out

    def next_deadline(self) -> float | None:
        """When the next window closes (None: nothing pending)."""
        pending = [g.first_seen + self.window for g in self._groups.values() if not g.released]
        return min(pending) if pending else None

    def __len__(self) -> int:
        return len(self._groups)

    def remembers(self, key: Hashable, now: float) -> bool:
        """Whether a frame with this key is pending or remembered (within ``memory`` of its first copy)."""
        self._expire(now)
        return key in self._groups

    def _expire(self, now: float) -> None:
        # Dicts keep insertion order, which is first_seen order for a monotonic clock,
        # so the scan stops at the first group still remembered.
        old: list[Hashable] = []
        for key, group in self._groups.items():
            if now < group.first_seen + self.memory:
                break
            if group.released:
                old.append(key)
        for key in old:
            del self._groups[key]
