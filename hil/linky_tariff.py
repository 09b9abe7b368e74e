"""What a simulated Linky bills: contracts, their registers, and the tariff period at a local time.

Pure: a :class:`Tariff` (the settable signals: HC schedule, Tempo colours,
EJP days and notice) and a local time give the period in force. The rules are
the ones of shared/ENERGY.md §3.3: Tempo HP 06–22 h and HC 22–06 h, EJP peak
07:00 → 01:00 next day, HC per the schedule the meter is given (8 h a day by
default, but settable, since the 2025 reform moves part of it into the
afternoon).

The meter's clock is French legal time, computed here with the EU summer-time
rule (last Sunday of March to last Sunday of October, 01:00 UTC) so the
simulator needs no time-zone database.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone

__all__ = [
    "Contract",
    "Colour",
    "Register",
    "REGISTERS",
    "Tariff",
    "period_index",
    "ejp_peak",
    "ejp_notice",
    "day_profile",
    "local_time",
    "tempo_day",
    "tempo_colours",
    "next_tempo_change",
    "TEMPO_DAY_START_H",
    "TEMPO_ANNOUNCE_H",
]

_WINTER = timezone(timedelta(hours=1))
_SUMMER = timezone(timedelta(hours=2))


def _last_sunday(year: int, month: int) -> datetime:
    d = datetime(year, month, 31 if month in (3, 10) else 30, 1, tzinfo=UTC)
    return d - timedelta(days=(d.weekday() + 1) % 7)


def local_time(t: float) -> datetime:
    """French legal time at epoch ``t``: +02:00 in summer, +01:00 otherwise."""
    utc = datetime.fromtimestamp(int(t), UTC)
    summer = _last_sunday(utc.year, 3) <= utc < _last_sunday(utc.year, 10)
    return utc.astimezone(_SUMMER if summer else _WINTER)


class Contract(enum.Enum):
    """The tariff options a Linky runs (``OPTARIF`` in historic mode)."""

    BASE = "base"
    HC = "hc"
    TEMPO = "tempo"
    EJP = "ejp"

    @property
    def optarif(self) -> str:
        return {"base": "BASE", "hc": "HC..", "tempo": "BBR(", "ejp": "EJP."}[self.value]

    @property
    def ngtf(self) -> str:
        """The contract name of standard mode, 16 characters, centred like the meter's."""
        return {"base": "BASE", "hc": "H PLEINE/CREUSE", "tempo": "TEMPO", "ejp": "EJP"}[self.value].center(16)


class Colour(enum.IntEnum):
    """A Tempo day colour; the value is its code in ``STGE`` bits 24–27."""

    NONE = 0
    BLUE = 1
    WHITE = 2
    RED = 3

    @property
    def demain(self) -> str:
        """Historic ``DEMAIN``."""
        return ("----", "BLEU", "BLAN", "ROUG")[self.value]


@dataclass(frozen=True, slots=True)
class Register:
    """One energy register: its historic label, the text of ``LTARF``, ``PTEC`` and whether it is off-peak.

    Its standard-mode index (``NTARF``, ``EASFnn``) is its position in the
    contract's tuple, from 1. ``off_peak`` chooses the distributor register
    (``EASD01`` off-peak, ``EASD02`` the rest; a simplification of the
    distributor's seasonal calendar) and the relay (closed off-peak, the
    water-heater contact).
    """

    label: str
    ltarf: str
    ptec: str
    off_peak: bool


REGISTERS: dict[Contract, tuple[Register, ...]] = {
    Contract.BASE: (Register("BASE", "BASE", "TH..", False),),
    Contract.HC: (
        Register("HCHC", "HEURE  CREUSE", "HC..", True),
        Register("HCHP", "HEURE  PLEINE", "HP..", False),
    ),
    Contract.TEMPO: (
        Register("BBRHCJB", "HC  BLEU", "HCJB", True),
        Register("BBRHPJB", "HP  BLEU", "HPJB", False),
        Register("BBRHCJW", "HC  BLANC", "HCJW", True),
        Register("BBRHPJW", "HP  BLANC", "HPJW", False),
        Register("BBRHCJR", "HC  ROUGE", "HCJR", True),
        Register("BBRHPJR", "HP  ROUGE", "HPJR", False),
    ),
    Contract.EJP: (
        Register("EJPHN", "HEURE NORMALE", "HN..", False),
        Register("EJPHPM", "HEURE POINTE", "PM..", False),
    ),
}

_TEMPO_HC = ((22 * 60, 6 * 60),)


@dataclass(frozen=True, slots=True)
class Tariff:
    """The tariff signals a supplier and the distributor send; each is settable while the meter runs.

    ``hc_schedule`` holds off-peak ranges in minutes of the local day
    (``(start, end)``, wrapping past midnight when ``end < start``).
    ``ejp_notice=None`` gives the notice automatically in the 30 minutes
    before an EJP day's peak; ``True``/``False`` forces it.
    """

    hc_schedule: tuple[tuple[int, int], ...] = ((22 * 60, 6 * 60),)
    tempo_today: Colour = Colour.BLUE
    tempo_tomorrow: Colour = Colour.NONE
    ejp_days: frozenset[date] = field(default_factory=frozenset)
    ejp_notice: bool | None = None


def _in_ranges(minute: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    for start, end in ranges:
        if start <= end:
            if start <= minute < end:
                return True
        elif minute >= start or minute < end:
            return True
    return False


def ejp_peak(tariff: Tariff, local: datetime) -> bool:
    """Whether ``local`` is in an EJP peak: 07:00 of an EJP day to 01:00 the next day."""
    day = local.date()
    return (day in tariff.ejp_days and local.hour >= 7) or (day - timedelta(days=1) in tariff.ejp_days
                                                            and local.hour < 1)


def ejp_notice(tariff: Tariff, local: datetime) -> bool:
    """The EJP notice (historic ``PEJP``, standard ``STGE`` bits 28–29) in force at ``local``."""
    if tariff.ejp_notice is not None:
        return tariff.ejp_notice
    return local.date() in tariff.ejp_days and (local.hour, local.minute) >= (6, 30) and local.hour < 7


def period_index(contract: Contract, tariff: Tariff, local: datetime) -> int:
    """The register in force at ``local``: its position in ``REGISTERS[contract]``, from 0."""
    minute = local.hour * 60 + local.minute
    if contract is Contract.BASE:
        return 0
    if contract is Contract.HC:
        return 0 if _in_ranges(minute, tariff.hc_schedule) else 1
    if contract is Contract.EJP:
        return 1 if ejp_peak(tariff, local) else 0
    colour = tariff.tempo_today if tariff.tempo_today is not Colour.NONE else Colour.BLUE
    return 2 * (colour.value - 1) + (0 if _in_ranges(minute, _TEMPO_HC) else 1)


def day_profile(contract: Contract, tariff: Tariff, day: date) -> str:
    """``PJOURF+1``: the day's index changes as eleven ``hhmmSSSS`` fields, unused ones ``NONUTILE``.

    Built like the real meter's ``00008001`` (at 00:00, index 1): the action
    code is ``0x8000 | index``; the relay bits of the code are not modelled.
    For Tempo, the day is priced at tomorrow's colour when it is known.
    """
    if contract is Contract.TEMPO and tariff.tempo_tomorrow is not Colour.NONE:
        tariff = Tariff(tariff.hc_schedule, tariff.tempo_tomorrow, Colour.NONE, tariff.ejp_days, tariff.ejp_notice)
    start = datetime(day.year, day.month, day.day)  # naive wall clock: the profile is in local time
    fields: list[str] = []
    last = -1
    for minute in range(0, 24 * 60):
        index = period_index(contract, tariff, start + timedelta(minutes=minute)) + 1
        if index != last and len(fields) < 11:
            fields.append(f"{minute // 60:02d}{minute % 60:02d}{0x8000 | index:04X}")
            last = index
    return " ".join(fields + ["NONUTILE"] * (11 - len(fields)))


#: A Tempo day runs from 06:00 to 06:00 the next day; tomorrow's colour is known from 11:00.
TEMPO_DAY_START_H = 6
TEMPO_ANNOUNCE_H = 11


def tempo_day(local: datetime) -> date:
    """The Tempo day ``local`` belongs to (before 06:00 it is still the previous day's)."""
    return (local - timedelta(hours=TEMPO_DAY_START_H)).date()


def tempo_colours(calendar: dict[date, Colour], local: datetime) -> tuple[Colour, Colour]:
    """Today's and tomorrow's colours at ``local`` from a calendar of Tempo days (blue where it says nothing);
    tomorrow's is unknown (``NONE``) until 11:00 of the Tempo day."""
    day = tempo_day(local)
    today = calendar.get(day, Colour.BLUE)
    known = local.hour >= TEMPO_ANNOUNCE_H or local.hour < TEMPO_DAY_START_H
    tomorrow = calendar.get(day + timedelta(days=1), Colour.BLUE) if known else Colour.NONE
    return today, tomorrow


def next_tempo_change(t: float) -> float:
    """The first epoch second after ``t`` at which a Tempo calendar's signals change (06:00 or 11:00 local)."""
    local = local_time(t)
    for days in (0, 1):
        for hour in (TEMPO_DAY_START_H, TEMPO_ANNOUNCE_H):
            at = (local + timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0).timestamp()
            if at > t:
                return at
    raise AssertionError("unreachable: tomorrow 06:00 is after t")
