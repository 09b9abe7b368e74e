"""What a TIC frame says: measurements with their units, and the meter's decoded state.

:func:`interpret` turns one decoded :class:`~zaas_edge.drivers.tic.codec.Frame`
into an :class:`Interpretation`: every numeric label of
:data:`~zaas_edge.drivers.tic.labels.MEASURES` becomes a :class:`Measurement`
keyed by quantity, and the state labels (``STGE``, ``RELAIS``, ``PTEC``,
``DEMAIN``, ``PEJP``, ``OPTARIF``, ``HHPHC``, ``NTARF``, ``LTARF``, ``NGTF``,
``PJOURF+1`` ...) are decoded into values instead of being passed through.

It is pure and total: a label whose data does not parse (letters in an
index, a status register that is not hex) is listed in
``Interpretation.rejected`` with the reason, for the driver to count, and the
rest of the frame is kept. Nothing here raises on meter data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TypeVar

from zaas_edge.drivers.tic.codec import Frame, Group, Horodate, Mode
from zaas_edge.drivers.tic.errors import TicError
from zaas_edge.drivers.tic.labels import MEASURES, Measure
from zaas_edge.drivers.tic.status import (
    Relays,
    ScheduleEntry,
    Status,
    TempoColour,
    decode_colour,
    decode_relays,
    decode_schedule,
    decode_status,
)

__all__ = ["Measurement", "Rejected", "MobilePeak", "Interpretation", "interpret"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Measurement:
    """One numeric value of a frame, ready to become a :class:`zaas_edge.model.Reading`.

    ``horodate`` is the time the value belongs to when the meter sends one
    (daily maxima, load-curve points, average voltages); otherwise the value
    is at most one frame old (spec §6.2.1.5) and the frame's time applies.
    """

    quantity: str
    value: float
    unit: str
    label: str
    horodate: Horodate | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A label whose data could not be read: counted and reported, never raised."""

    label: str
    data: str
    reason: str


@dataclass(frozen=True, slots=True)
class MobilePeak:
    """A mobile-peak period announced by ``DPMn`` / ``FPMn`` (the meter's wall time, no offset)."""

    number: int
    start: datetime | None
    end: datetime | None


def _no_measurements() -> Mapping[str, Measurement]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Interpretation:
    """Everything one frame says, decoded. ``None`` means "not in this frame".

    Historic-mode state: ``tariff_option`` (``OPTARIF`` as sent: ``BASE``, ``HC..``,
    ``EJP.``, ``BBRx``), ``tariff_period`` (``PTEC``: ``TH..``, ``HC..``, ``HP..``,
    ``HN..``, ``PM..``, ``HCJB`` ...), ``tomorrow`` (``DEMAIN``),
    ``ejp_notice_min`` (``PEJP``, sent only during the notice),
    ``hphc_group`` (``HHPHC``), ``phases_missing`` (``PPOT``, three-phase:
    the phases without voltage), ``overcurrent`` (``ADPS`` / ``ADIR1..3``:
    present only while over the reference current).

    Standard-mode state: ``status`` (``STGE``), ``relays`` (``RELAIS``),
    ``supplier_index`` (``NTARF``), ``tariff_label`` (``LTARF``),
    ``contract_name`` (``NGTF``), both stripped of padding; ``day_profile``
    and ``next_day_profile`` (``NJOURF``, ``NJOURF+1``); ``tomorrow_schedule``
    (``PJOURF+1``) and ``peak_schedule`` (``PPOINTE``); ``mobile_peaks``
    (``DPM1..3`` / ``FPM1..3``); ``meter_time`` (``DATE``).

    ``labels`` is every label the frame carried; ``bad_labels`` those the
    codec rejected (a bad checksum): their absence means nothing.
    """

    mode: Mode | None
    complete: bool
    short: bool
    measurements: Mapping[str, Measurement] = field(default_factory=_no_measurements)
    meter_id: str | None = None
    meter_time: Horodate | None = None
    # historic
    tariff_option: str | None = None
    tariff_period: str | None = None
    tomorrow: TempoColour | None = None
    ejp_notice_min: int | None = None
    hphc_group: str | None = None
    phases_missing: frozenset[int] | None = None
    overcurrent: tuple[Measurement, ...] = ()
    # standard
    status: Status | None = None
    relays: Relays | None = None
    supplier_index: int | None = None
    tariff_label: str | None = None
    contract_name: str | None = None
    day_profile: int | None = None
    next_day_profile: int | None = None
    tomorrow_schedule: tuple[ScheduleEntry, ...] | None = None
    peak_schedule: tuple[ScheduleEntry, ...] | None = None
    mobile_peaks: tuple[MobilePeak, ...] = ()
    message: str | None = None
    # bookkeeping
    labels: frozenset[str] = frozenset()
    bad_labels: frozenset[str] = frozenset()
    rejected: tuple[Rejected, ...] = ()
    unknown: tuple[str, ...] = ()

    def value(self, quantity: str) -> float | None:
        """The value of ``quantity`` in this frame, or ``None``."""
        m = self.measurements.get(quantity)
        return None if m is None else m.value


#: Labels that are read but carry nothing to decode (identity, text, legacy status).
_PASSIVE = frozenset({"ADCO", "ADSC", "VTIC", "PRM", "MSG1", "MSG2", "MOTDETAT", "DATE"})


def _number(data: str) -> int:
    text = data.strip()
    if not text or not text.isascii() or not text.isdigit():
        raise TicError(f"{data!r} is not a decimal number", "value")
    return int(text)


def _phases_missing(data: str) -> frozenset[int]:
    """``PPOT`` ``0X``: bit n of the hex digit X set when phase n (1..3) is absent (§6.1.2)."""
    text = data.strip()
    if len(text) != 2 or any(c not in "0123456789ABCDEFabcdef" for c in text):
        raise TicError(f"PPOT {data!r} is not two hex digits", "value")
    bits = int(text, 16)
    return frozenset(n for n in (1, 2, 3) if bits >> n & 1)


def _text(data: str) -> str:
    return " ".join(data.split())


class _Reader:
    """Collects decoded values and rejections while walking one frame's groups."""

    def __init__(self, groups: Mapping[str, Group]) -> None:
        self.groups = groups
        self.rejected: list[Rejected] = []

    def get(self, label: str, decode: Callable[[str], T]) -> T | None:
        group = self.groups.get(label)
        if group is None:
            return None
        try:
            return decode(group.data)
        except (TicError, ValueError) as exc:
            self.rejected.append(Rejected(label, group.data, str(exc)))
            return None

    def measurement(self, m: Measure) -> Measurement | None:
        group = self.groups[m.label]
        value = self.get(m.label, _number)
        return None if value is None else Measurement(m.quantity, value * m.scale, m.unit, m.label, group.horodate)


def _mobile_peaks(groups: Mapping[str, Group]) -> tuple[MobilePeak, ...]:
    peaks = []
    for n in (1, 2, 3):
        start, end = groups.get(f"DPM{n}"), groups.get(f"FPM{n}")
        if start is None and end is None:
            continue
        peaks.append(
            MobilePeak(
                n,
                None if start is None or start.horodate is None else start.horodate.time,
                None if end is None or end.horodate is None else end.horodate.time,
            )
        )
    return tuple(peaks)


_STATE = frozenset(
    {
        "OPTARIF",
        "PTEC",
        "DEMAIN",
        "PEJP",
        "HHPHC",
        "PPOT",
        "STGE",
        "RELAIS",
        "NTARF",
        "LTARF",
        "NGTF",
        "NJOURF",
        "NJOURF+1",
        "PJOURF+1",
        "PPOINTE",
        *(f"{k}PM{n}" for k in "DF" for n in (1, 2, 3)),
    }
)


def interpret(frame: Frame, mode: Mode | None = None) -> Interpretation:
    """Decode ``frame``; ``mode`` defaults to the frame's own (from its separators).

    Never raises on meter data: bad values end up in ``rejected``, labels
    this table does not know in ``unknown``.
    """
    groups = frame.groups
    reader = _Reader(groups)
    measurements: dict[str, Measurement] = {}
    overcurrent: list[Measurement] = []
    unknown: list[str] = []
    for label in groups:
        m = MEASURES.get(label)
        if m is None:
            if label not in _PASSIVE and label not in _STATE:
                unknown.append(label)
            continue
        got = reader.measurement(m)
        if got is None:
            continue
        measurements[m.quantity] = got
        if label == "ADPS" or label.startswith("ADIR"):
            overcurrent.append(got)

    meter = groups.get("ADSC") or groups.get("ADCO")
    date = groups.get("DATE")
    message = groups.get("MSG1")
    return Interpretation(
        mode=mode or frame.mode,
        complete=frame.complete,
        short=frame.short,
        measurements=MappingProxyType(measurements),
        meter_id=None if meter is None else meter.data.strip(),
        meter_time=None if date is None else date.horodate,
        tariff_option=reader.get("OPTARIF", str),
        tariff_period=reader.get("PTEC", str),
        tomorrow=reader.get("DEMAIN", decode_colour),
        ejp_notice_min=reader.get("PEJP", _number),
        hphc_group=reader.get("HHPHC", str.strip),
        phases_missing=reader.get("PPOT", _phases_missing),
        overcurrent=tuple(overcurrent),
        status=reader.get("STGE", decode_status),
        relays=reader.get("RELAIS", decode_relays),
        supplier_index=reader.get("NTARF", _number),
        tariff_label=reader.get("LTARF", _text),
        contract_name=reader.get("NGTF", _text),
        day_profile=reader.get("NJOURF", _number),
        next_day_profile=reader.get("NJOURF+1", _number),
        tomorrow_schedule=reader.get("PJOURF+1", decode_schedule),
        peak_schedule=reader.get("PPOINTE", decode_schedule),
        mobile_peaks=_mobile_peaks(groups),
        message=None if message is None else _text(message.data),
        labels=frozenset(groups),
        bad_labels=frozenset(b.label for b in frame.bad_groups if b.label is not None),
        rejected=tuple(reader.rejected),
        unknown=tuple(unknown),
    )
