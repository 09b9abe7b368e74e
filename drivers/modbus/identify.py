"""Recognising a Modbus device by what it holds: one way for the scan and for the daemon.

``find_marker`` looks for a profile's marker (SunSpec's ``SunS``) at its
candidate addresses; a ``Device`` uses it to learn where its registers start,
``identify`` to tell which profile of the library fits a unit that answered a
scan. Both follow the same rules, so a profile the scan suggests is one the
daemon then finds:

- an exception response is an answer (the unit is alive): try the next candidate;
- a garbled answer (CRC) is noise on the line: the next candidate may pass;
- a silent unit or a bad answer ends the search: one timeout, not one per candidate;
- a lost link is the caller's business (``LinkDown`` is raised).

Reads go through a ``ReadRegisters`` the caller gives, so the daemon counts
them on the device and the scan reads the bus directly.
"""

from __future__ import annotations

__all__ = ["ReadRegisters", "MarkerSearch", "Identification", "find_marker", "identify"]

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from zaas_edge.errors import ProtocolError, TransientError, ZaasError

from .decode import decode_value, register_count
from .plan import Table
from .profile import TABLES, Detection, Profile
from .transport import CrcError, ExceptionResponse, LinkDown

ReadRegisters = Callable[[Table, int, int], Awaitable[list[int]]]
"""``read(table, start, count)``: registers of one unit, raising the transport's errors."""

# A register signature: quantities whose value range identifies a meter that answers there.
PLAUSIBLE: dict[str, tuple[float, float]] = {
    "voltage_l1": (80.0, 480.0), "voltage_l2": (80.0, 480.0), "voltage_l3": (80.0, 480.0),
    "frequency": (45.0, 65.0)}
_REQUIRED_SIGNATURE = ("voltage_l1", "frequency")


@dataclass(frozen=True, slots=True)
class MarkerSearch:
    """What a marker search learnt: whether the unit answered at all, and where the marker is."""

    answered: bool
    base: int | None  # the candidate holding the marker and every expected value, if any


@dataclass(frozen=True, slots=True)
class Identification:
    """The profiles that fit a unit, best first (several when the registers cannot tell), and how."""

    profiles: tuple[str, ...]
    how: str


async def find_marker(det: Detection, read: ReadRegisters) -> MarkerSearch:
    """Probe ``det``'s candidates in order until one holds the marker (and its expected values)."""
    table = TABLES[det.table]
    seen: dict[int, list[int]] = {}
    answered = False
    for base in det.candidates:
        try:
            seen[base] = await read(table, base, det.marker_registers)
            answered = True
            for e in det.expect:
                seen[base + e.offset] = await read(table, base + e.offset, register_count(e.type, 1))
        except ExceptionResponse:
            answered = True
            continue
        except LinkDown:
            raise
        except CrcError:
            pass
        except (TransientError, ProtocolError):
            break
        found = det.match(seen)
        if found is not None:
            return MarkerSearch(True, found)
    return MarkerSearch(answered, None)


async def identify(read: ReadRegisters, profiles: Iterable[Profile]) -> Identification:
    """Which of ``profiles`` fits the unit behind ``read``: a marker first, else a register signature
    (voltage and frequency where a profile without a marker has them, in range)."""
    lib = list(profiles)
    for prof in lib:
        if prof.detection is not None:
            found = await find_marker(prof.detection, read)
            if found.base is not None:
                return Identification((prof.name,), f"{prof.detection.marker} marker at {found.base}")
    scores: list[tuple[int, str]] = []
    for prof in lib:
        if prof.detection is None:
            score = await _signature(prof, read)
            if score > 0:
                scores.append((score, prof.name))
    if not scores:
        return Identification((), "no profile matches its registers")
    best = max(s for s, _ in scores)
    return Identification(tuple(sorted(n for s, n in scores if s == best)),
                          "register signature (voltage and frequency in range)")


async def _signature(prof: Profile, read: ReadRegisters) -> int:
    """How many signature quantities of ``prof`` read in range; 0 when a required one does not."""
    checks = [q for q in PLAUSIBLE if q in prof.quantities]
    if not all(q in checks for q in _REQUIRED_SIGNATURE):
        return 0
    ok = 0
    for q in checks:
        p = prof.point(q)
        try:
            regs = await read(prof.table_of(p), p.address, p.count)
        except LinkDown:
            raise
        except ZaasError:
            return 0
        try:
            value = decode_value(regs, prof.register_spec(p)).value
        except (ProtocolError, ValueError):
            value = None
        lo, hi = PLAUSIBLE[q]
        if value is not None and lo <= value <= hi:
            ok += 1
        elif q in _REQUIRED_SIGNATURE:
            return 0
    return ok
