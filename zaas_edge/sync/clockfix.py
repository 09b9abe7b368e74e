"""Wall-clock fix-up of readings taken before the clock was synchronised (pure).

The box has no real-time clock: until NTP has synchronised, ``wall_ns`` is
whatever the kernel started with. Every reading also carries ``mono_ns`` and
``boot_id``; within one boot the monotonic clock is continuous, so the first
synchronised stamp of a boot gives its offset ``wall - mono``, and every
earlier unsynchronised reading of that boot is placed at ``mono + offset``
(``synced`` set, ``corrected`` flagged, quality kept). A boot that ends, or
stays unsynchronised longer than the hold, without such a stamp is given up
on: its readings go up as they are, ``synced=False`` with ``mono_ns`` and
``boot_id``, and the platform decides.

Offsets are a plain mapping ``boot_id -> offset_ns`` (``None``: given up),
kept by the caller (the aggregator persists it with its cursor).
"""

from __future__ import annotations

__all__ = ["Fixed", "Decision", "fix", "learn", "resolve", "prune"]

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

from zaas_edge.model import Reading, Stamp


@dataclass(frozen=True, slots=True)
class Fixed:
    """The stamp an upload record gets for one reading."""

    wall_ns: int
    synced: bool
    corrected: bool = False
    mono_ns: int | None = None  # kept only while unsynced, for the platform
    boot_id: str = ""


class Decision(Enum):
    FIX = "fix"  # the boot's offset is known: correct its unsynced readings
    GIVE_UP = "give_up"  # the boot will not be synchronised: send its readings as they are
    WAIT = "wait"  # not known yet: hold the readings


def learn(offsets: Mapping[str, int | None], readings: Iterable[Reading]) -> dict[str, int | None]:
    """``offsets`` plus the offset of each boot whose first synchronised stamp is in ``readings``.

    The first synchronised stamp wins: it is the closest to the unsynchronised
    readings it corrects (the monotonic clock drifts a little afterwards). A
    boot given up on (``None``) takes its offset when one finally shows, so
    its later unsynchronised readings are corrected.
    """
    out = dict(offsets)
    for r in readings:
        if r.synced and out.get(r.boot_id) is None:
            out[r.boot_id] = r.wall_ns - r.mono_ns
    return out


def fix(r: Reading, offsets: Mapping[str, int | None]) -> Fixed:
    """The stamp of ``r`` once fixed up with what ``offsets`` knows."""
    if r.synced:
        return Fixed(r.wall_ns, True)
    off = offsets.get(r.boot_id)
    if off is not None:
        return Fixed(r.mono_ns + off, True, True)
    return Fixed(r.wall_ns, False, False, r.mono_ns, r.boot_id)


def resolve(boot_id: str, first_mono_ns: int, ahead: Iterable[Reading], hold_ns: int,
            now: Stamp | None = None) -> tuple[Decision, int | None]:
    """What to do with the unsynchronised readings of ``boot_id`` held since ``first_mono_ns``.

    ``ahead`` are the readings that follow them, in seq order. A synchronised
    one of the same boot gives the offset; a reading of another boot means
    this boot ended unsynchronised; a hold longer than ``hold_ns`` (by the
    boot's own monotonic clock, from the readings or from ``now`` when it is
    the same boot) gives up. ``now`` in another boot also means it ended.
    """
    for r in ahead:
        if r.boot_id != boot_id:
            return Decision.GIVE_UP, None
        if r.synced:
            return Decision.FIX, r.wall_ns - r.mono_ns
        if r.mono_ns - first_mono_ns >= hold_ns:
            return Decision.GIVE_UP, None
    if now is not None:
        if now.boot_id != boot_id:
            return Decision.GIVE_UP, None
        if now.mono_ns - first_mono_ns >= hold_ns:
            return Decision.GIVE_UP, None
    return Decision.WAIT, None


def prune(offsets: Mapping[str, int | None], keep: int = 16) -> dict[str, int | None]:
    """The ``keep`` most recently learnt boots (insertion order): older boots have no readings left."""
    items = list(offsets.items())[-keep:]
    return dict(items)
