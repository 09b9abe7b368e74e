"""The tariff in force, as one value the rules engine reads: :class:`TariffState`.

:func:`tariff_state` folds one :class:`~zaas_edge.drivers.tic.meaning.Interpretation`
into the contract, the period in force, the Tempo colours, the EJP or
mobile-peak notice and peak, and the next known change time;
:func:`changes` lists what differs between two states, for events. Both are
pure: the caller passes ``now`` and, to ride over frames that lack the
tariff labels (three-phase short frames, interrupted frames, a tariff group
with a bad checksum), the previous state.

Where the next change comes from (shared/ENERGY.md §3.3):

- standard mode: the meter's own day profile ``PJOURF+1``, tomorrow's slots;
  today's remaining slots too when ``NJOURF`` equals ``NJOURF+1`` (the same
  day profile), since today's profile is not sent;
- historic Tempo: HP 06:00-22:00, HC 22:00-06:00, the day (and colour)
  changing at 06:00;
- historic EJP: the peak runs 07:00 to 01:00, announced by ``PEJP``;
- historic HC: unknown, since the hours follow the local ``HHPHC`` group,
  which the meter does not describe (and the 2025 reform moves them);
  ``next_change`` is then ``None`` and ``next_change_source`` says why.

Times are built in ``now``'s time zone: pass an aware time in the meter's
zone (``Europe/Paris``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta

from zaas_edge.drivers.tic.codec import Mode
from zaas_edge.drivers.tic.meaning import Interpretation
from zaas_edge.drivers.tic.status import ScheduleEntry, TempoColour

__all__ = ["Contract", "Period", "TariffState", "TariffChange", "tariff_state", "changes"]


class Contract(enum.StrEnum):
    BASE = "base"
    HC = "hc"  # heures creuses / heures pleines
    TEMPO = "tempo"
    EJP = "ejp"
    OTHER = "other"  # a standard-mode supplier offer we do not recognise: see ``contract_name``
    UNKNOWN = "unknown"  # no contract label seen yet


class Period(enum.StrEnum):
    BASE = "base"  # a single period all day (historic TH..)
    HP = "hp"
    HC = "hc"
    PEAK = "peak"  # EJP mobile peak (PM..) or a mobile peak in progress
    NORMAL = "normal"  # EJP normal hours (HN..)
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class TariffState:
    """The tariff in force at one frame.

    ``contract_name`` is ``NGTF`` in standard mode (the supplier's offer
    name, padding removed) or ``OPTARIF`` as sent in historic mode.
    ``period_label`` is the raw ``PTEC`` or ``LTARF`` the period was read
    from. ``peak_notice`` is the EJP notice (``PEJP``) or a mobile-peak
    notice (STGE bits 28..29); ``peak_active`` an EJP peak (``PTEC PM..``) or a
    mobile peak in progress (STGE bits 30..31). ``next_change`` is the next
    known change of period or index, ``None`` when it cannot be known, and
    ``next_change_source`` says where it came from or why it is unknown.
    """

    mode: Mode | None
    contract: Contract
    contract_name: str | None
    period: Period
    period_label: str | None
    supplier_index: int | None
    tempo_today: TempoColour
    tempo_tomorrow: TempoColour
    peak_notice: bool
    peak_active: bool
    next_change: datetime | None
    next_change_source: str


@dataclass(frozen=True, slots=True)
class TariffChange:
    """One field of :class:`TariffState` that changed; ``kind`` is the event name (``tariff.period``)."""

    field: str
    old: str
    new: str

    @property
    def kind(self) -> str:
        return f"tariff.{self.field}"


#: The fields :func:`changes` compares; ``next_change`` is left out, it is a forecast, not an event.
CHANGE_FIELDS = (
    "contract",
    "contract_name",
    "period",
    "supplier_index",
    "tempo_today",
    "tempo_tomorrow",
    "peak_notice",
    "peak_active",
)


def changes(old: TariffState | None, new: TariffState) -> list[TariffChange]:
    """What differs from ``old`` to ``new``; nothing for the first state (it is published as state)."""
    if old is None:
        return []
    out = []
    for name in CHANGE_FIELDS:
        a, b = getattr(old, name), getattr(new, name)
        if a != b:
            out.append(TariffChange(name, _show(a), _show(b)))
    return out


def _show(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- reading the frame -------------------------------------------------------

_PTEC = {
    "TH..": Period.BASE,
    "HC..": Period.HC,
    "HP..": Period.HP,
    "HN..": Period.NORMAL,
    "PM..": Period.PEAK,
}
_PTEC_COLOUR = {"B": TempoColour.BLUE, "W": TempoColour.WHITE, "R": TempoColour.RED}


def _historic_contract(option: str) -> Contract:
    text = option.strip().upper()
    if text == "BASE":
        return Contract.BASE
    if text.startswith("HC"):
        return Contract.HC
    if text.startswith("EJP"):
        return Contract.EJP
    if text.startswith("BBR"):
        return Contract.TEMPO
    return Contract.OTHER


def _standard_contract(name: str) -> Contract:
    words = set(name.upper().replace("/", " ").split())
    if "TEMPO" in words:
        return Contract.TEMPO
    if "EJP" in words:
        return Contract.EJP
    if words & {"HC", "HP", "CREUSE", "CREUSES", "PLEINE", "PLEINES"}:
        return Contract.HC
    if "BASE" in words:
        return Contract.BASE
    return Contract.OTHER


def _historic_period(ptec: str) -> tuple[Period, TempoColour | None]:
    text = ptec.strip().upper()
    if text in _PTEC:
        return _PTEC[text], None
    if len(text) == 4 and text[2] == "J" and text[:2] in ("HC", "HP") and text[3] in _PTEC_COLOUR:
        return (Period.HC if text[:2] == "HC" else Period.HP), _PTEC_COLOUR[text[3]]
    return Period.UNKNOWN, None


def _standard_period(label: str) -> Period:
    words = set(label.upper().split())
    if words & {"HC", "CREUSE", "CREUSES"}:
        return Period.HC
    if words & {"HP", "PLEINE", "PLEINES"}:
        return Period.HP
    if words & {"PM", "POINTE", "POINTES"}:
        return Period.PEAK
    if words & {"HN", "NORMALE", "NORMALES"}:
        return Period.NORMAL
    if "BASE" in words:
        return Period.BASE
    return Period.UNKNOWN


def _absent_means_no(interp: Interpretation, label: str) -> bool | None:
    """For labels sent only while a condition holds: present, absent (a complete frame), or unknown."""
    if label in interp.labels:
        return True
    if interp.complete and not interp.short and label not in interp.bad_labels:
        return False
    return None


@dataclass(slots=True)
class _Read:
    """What this frame says, each ``None`` when the frame does not say it."""

    contract: Contract | None = None
    contract_name: str | None = None
    period: Period | None = None
    period_label: str | None = None
    supplier_index: int | None = None
    tempo_today: TempoColour | None = None
    tempo_tomorrow: TempoColour | None = None
    peak_notice: bool | None = None
    peak_active: bool | None = None


def _read(interp: Interpretation) -> _Read:
    r = _Read()
    if interp.mode is Mode.STANDARD:
        if interp.contract_name is not None:
            r.contract, r.contract_name = _standard_contract(interp.contract_name), interp.contract_name
        if interp.tariff_label is not None:
            r.period, r.period_label = _standard_period(interp.tariff_label), interp.tariff_label
        r.supplier_index = interp.supplier_index
        status = interp.status
        if status is not None:
            r.supplier_index = r.supplier_index or status.supplier_index
            r.tempo_today, r.tempo_tomorrow = status.tempo_today, status.tempo_tomorrow
            r.peak_notice, r.peak_active = status.mobile_peak_notice != 0, status.mobile_peak != 0
            if status.mobile_peak:
                r.period = Period.PEAK
    elif interp.mode is Mode.HISTORIC:
        if interp.tariff_option is not None:
            r.contract, r.contract_name = _historic_contract(interp.tariff_option), interp.tariff_option
        if interp.tariff_period is not None:
            r.period, colour = _historic_period(interp.tariff_period)
            r.period_label = interp.tariff_period
            r.peak_active = r.period is Period.PEAK
            if colour is not None:
                r.tempo_today = colour
        r.tempo_tomorrow = interp.tomorrow
        r.peak_notice = _absent_means_no(interp, "PEJP")
    return r


# --- the next change -----------------------------------------------------------


def _at(day: date, t: time, now: datetime) -> datetime:
    return datetime.combine(day, t, tzinfo=now.tzinfo)


def _next_of(now: datetime, times: tuple[time, ...]) -> datetime:
    """The first of ``times`` (each day) strictly after ``now``."""
    today = now.date()
    return min(at for day in (today, today + timedelta(days=1)) for t in times if (at := _at(day, t, now)) > now)


def _from_profile(interp: Interpretation, now: datetime, index: int | None) -> tuple[datetime | None, str]:
    schedule: tuple[ScheduleEntry, ...] | None = interp.tomorrow_schedule
    if schedule is None:
        return None, "no PJOURF+1 (tomorrow's profile) in the frame"
    today = now.date()
    in_force = index
    same_profile = interp.day_profile is not None and interp.day_profile == interp.next_day_profile
    if same_profile:
        clock = now.time().replace(tzinfo=None)
        for entry in schedule:
            if entry.start > clock and entry.supplier_index is not None and entry.supplier_index != in_force:
                return _at(today, entry.start, now), "PJOURF+1 (today has the same day profile)"
    for entry in schedule:
        if entry.supplier_index is None:
            continue
        if entry.supplier_index != in_force:
            source = "PJOURF+1" if same_profile else "PJOURF+1 (tomorrow; today's remaining slots are not sent)"
            return _at(today + timedelta(days=1), entry.start, now), source
    return None, "PJOURF+1 holds no index change tomorrow"


def _next_change(mode: Mode | None, state: _Read, interp: Interpretation, now: datetime) -> tuple[datetime | None, str]:
    if mode is Mode.STANDARD:
        return _from_profile(interp, now, state.supplier_index)
    contract = state.contract
    if contract is Contract.TEMPO:
        return _next_of(now, (time(6), time(22))), "Tempo rule: HP 06:00-22:00, the day changes at 06:00"
    if contract is Contract.EJP:
        if state.peak_active:
            return _next_of(now, (time(1),)), "EJP rule: the peak ends at 01:00"
        if state.peak_notice:
            return _next_of(now, (time(7),)), "EJP rule: a notified peak starts at 07:00"
        return None, "an EJP peak day is known only from its PEJP notice"
    if contract is Contract.HC:
        group = f" (group {interp.hphc_group})" if interp.hphc_group else ""
        return None, f"HC hours follow the local HHPHC schedule{group}, which the meter does not send"
    if contract is Contract.BASE:
        return None, "a base contract has a single period"
    return None, "contract not known"


def tariff_state(interp: Interpretation, now: datetime, previous: TariffState | None = None) -> TariffState:
    """The tariff state this frame shows at ``now``; what the frame lacks is taken from ``previous``.

    A frame of the other mode than ``previous`` starts afresh (the meter was
    switched); a frame with no readable group keeps ``previous`` whole.
    """
    r = _read(interp)
    mode = interp.mode or (previous.mode if previous is not None else None)
    carry = previous is not None and previous.mode in (mode, None)
    if carry:
        assert previous is not None
        for f in fields(_Read):
            if getattr(r, f.name) is None:
                setattr(r, f.name, getattr(previous, f.name))
    next_change, source = _next_change(mode, r, interp, now)
    if (
        carry
        and previous is not None
        and mode is Mode.STANDARD
        and interp.tomorrow_schedule is None
        and previous.next_change is not None
        and previous.next_change > now
    ):
        next_change, source = previous.next_change, previous.next_change_source
    return TariffState(
        mode=mode,
        contract=r.contract or Contract.UNKNOWN,
        contract_name=r.contract_name,
        period=r.period or Period.UNKNOWN,
        period_label=r.period_label,
        supplier_index=r.supplier_index,
        tempo_today=r.tempo_today or TempoColour.UNKNOWN,
        tempo_tomorrow=r.tempo_tomorrow or TempoColour.UNKNOWN,
        peak_notice=bool(r.peak_notice),
        peak_active=bool(r.peak_active),
        next_change=next_change,
        next_change_source=source,
    )
