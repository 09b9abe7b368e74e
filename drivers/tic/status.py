"""Decoders for the TIC's coded state labels: ``STGE``, ``RELAIS``, ``PJOURF+1``, colours.

Each decoder takes the group's data text and returns a frozen value, or
raises :class:`TicError` (``reason="value"``) naming what is wrong; the
interpreter turns that into a rejected label, never a crash. Bit positions
and codes are those of Enedis-NOI-CPT_54E v3 §6.2.3.14 (status register),
§6.2.3.19 (relays) and §6.2.3.22 (day profile).

Note on ``STGE`` bit 0: the spec reads "contact sec: 0 = fermé, 1 = ouvert"
(0 closed, 1 open), the reverse of ``RELAIS`` (1 = closed). The corpus capture
agrees with the spec (``STGE 003A0001`` beside ``RELAIS 000``), so the
decoder follows the spec, not the summary in shared/ENERGY.md.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import time

from zaas_edge.drivers.tic.errors import TicError

__all__ = [
    "TempoColour",
    "Breaker",
    "Euridis",
    "CplStatus",
    "ContactAction",
    "Status",
    "Relays",
    "ScheduleEntry",
    "decode_status",
    "decode_relays",
    "decode_schedule",
    "decode_colour",
]


class TempoColour(enum.StrEnum):
    """A Tempo day colour; ``UNKNOWN`` when not (yet) announced or not a Tempo contract."""

    BLUE = "blue"
    WHITE = "white"
    RED = "red"
    UNKNOWN = "unknown"


_COLOUR_CODE = (TempoColour.UNKNOWN, TempoColour.BLUE, TempoColour.WHITE, TempoColour.RED)
_DEMAIN = {"----": TempoColour.UNKNOWN, "BLEU": TempoColour.BLUE, "BLAN": TempoColour.WHITE, "ROUG": TempoColour.RED}


class Breaker(enum.StrEnum):
    """The meter's breaking device ("organe de coupure"), STGE bits 1..3: closed, or why it opened."""

    CLOSED = "closed"
    OPEN_OVER_POWER = "open_over_power"
    OPEN_OVER_VOLTAGE = "open_over_voltage"
    OPEN_LOAD_SHEDDING = "open_load_shedding"
    OPEN_REMOTE_ORDER = "open_remote_order"  # CPL or Euridis order
    OPEN_OVERHEAT_HIGH_CURRENT = "open_overheat_high_current"  # current above the maximum switching current
    OPEN_OVERHEAT_LOW_CURRENT = "open_overheat_low_current"
    UNKNOWN = "unknown"  # code 7, not defined by the spec


_BREAKER = tuple(Breaker)


class Euridis(enum.StrEnum):
    """The Euridis communication output, STGE bits 19..20 (code 2 is not defined)."""

    DISABLED = "disabled"
    ENABLED = "enabled"
    ENABLED_SECURED = "enabled_secured"
    UNKNOWN = "unknown"


_EURIDIS = (Euridis.DISABLED, Euridis.ENABLED, Euridis.UNKNOWN, Euridis.ENABLED_SECURED)


class CplStatus(enum.StrEnum):
    """The power-line carrier (CPL) link, STGE bits 21..22 (code 3 is not defined)."""

    NEW_UNLOCKED = "new_unlocked"
    NEW_LOCKED = "new_locked"
    REGISTERED = "registered"
    UNKNOWN = "unknown"


_CPL = tuple(CplStatus)


def _bits(value: int, lsb: int, width: int = 1) -> int:
    return (value >> lsb) & ((1 << width) - 1)


@dataclass(frozen=True, slots=True)
class Status:
    """The status register ``STGE``, bit by bit.

    ``supplier_index`` (1..16) and ``distributor_index`` (1..4) are the
    energy index in use, already +1 as in ``NTARF``. ``mobile_peak_notice``
    and ``mobile_peak`` are 0 (none) or the mobile-peak number 1..3.
    ``tempo_today`` is ``UNKNOWN`` on non-Tempo contracts.
    """

    raw: int
    dry_contact_open: bool  # bit 0 (0 closed, 1 open, per the spec)
    breaker: Breaker  # bits 1..3
    cover_open: bool  # bit 4: distributor terminal cover (cache-bornes)
    over_voltage: bool  # bit 6
    over_reference_power: bool  # bit 7: dépassement de la puissance de référence en cours
    producer: bool  # bit 8
    active_energy_negative: bool  # bit 9: sens de l'énergie active
    supplier_index: int  # bits 10..13, +1
    distributor_index: int  # bits 14..15, +1
    clock_degraded: bool  # bit 16
    standard_mode: bool  # bit 17: TIC output in standard mode
    euridis: Euridis  # bits 19..20
    cpl: CplStatus  # bits 21..22
    cpl_synchronised: bool  # bit 23
    tempo_today: TempoColour  # bits 24..25
    tempo_tomorrow: TempoColour  # bits 26..27
    mobile_peak_notice: int  # bits 28..29
    mobile_peak: int  # bits 30..31

    @property
    def breaker_open(self) -> bool:
        return self.breaker is not Breaker.CLOSED

    @classmethod
    def from_int(cls, raw: int) -> Status:
        if not 0 <= raw <= 0xFFFFFFFF:
            raise TicError(f"status register {raw:#x} is not 32 bits", "value")
        return cls(
            raw=raw,
            dry_contact_open=bool(_bits(raw, 0)),
            breaker=_BREAKER[_bits(raw, 1, 3)],
            cover_open=bool(_bits(raw, 4)),
            over_voltage=bool(_bits(raw, 6)),
            over_reference_power=bool(_bits(raw, 7)),
            producer=bool(_bits(raw, 8)),
            active_energy_negative=bool(_bits(raw, 9)),
            supplier_index=_bits(raw, 10, 4) + 1,
            distributor_index=_bits(raw, 14, 2) + 1,
            clock_degraded=bool(_bits(raw, 16)),
            standard_mode=bool(_bits(raw, 17)),
            euridis=_EURIDIS[_bits(raw, 19, 2)],
            cpl=_CPL[_bits(raw, 21, 2)],
            cpl_synchronised=bool(_bits(raw, 23)),
            tempo_today=_COLOUR_CODE[_bits(raw, 24, 2)],
            tempo_tomorrow=_COLOUR_CODE[_bits(raw, 26, 2)],
            mobile_peak_notice=_bits(raw, 28, 2),
            mobile_peak=_bits(raw, 30, 2),
        )


def decode_status(data: str) -> Status:
    """``STGE``: 8 hex digits, most significant first."""
    text = data.strip()
    if len(text) != 8 or any(c not in "0123456789ABCDEFabcdef" for c in text):
        raise TicError(f"STGE {data!r} is not 8 hex digits", "value")
    return Status.from_int(int(text, 16))


@dataclass(frozen=True, slots=True)
class Relays:
    """``RELAIS``: relay 1 is the real dry contact, 2..8 are virtual; True = closed."""

    raw: int

    @property
    def closed(self) -> tuple[bool, ...]:
        """Relays 1..8 in order (index 0 is relay 1)."""
        return tuple(bool(self.raw >> i & 1) for i in range(8))

    @property
    def dry_contact_closed(self) -> bool:
        return bool(self.raw & 1)


def decode_relays(data: str) -> Relays:
    """``RELAIS``: 3 decimal digits, 000..255, bit n-1 is relay n."""
    text = data.strip()
    if not (text.isascii() and text.isdigit()) or int(text) > 255:
        raise TicError(f"RELAIS {data!r} is not a decimal 000..255", "value")
    return Relays(int(text))


class ContactAction(enum.StrEnum):
    """What a day-profile slot does to the dry contact (action bits 14..15)."""

    KEEP = "keep"
    TEMPO = "tempo"  # Tempo contract: set by the meter's Tempo contact configuration
    OPEN = "open"
    CLOSE = "close"


_CONTACT = tuple(ContactAction)


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    """One slot of a day profile (``PJOURF+1``, ``PPOINTE``): from ``start``, do this.

    ``supplier_index`` is the energy index switched to (1..10), or ``None``
    when the slot leaves the tariff unchanged. ``virtual_contacts`` are
    virtual relays 1..7 (bits 4..10), True = closed. ``raw`` is the 8
    characters as sent.
    """

    start: time
    supplier_index: int | None
    dry_contact: ContactAction
    virtual_contacts: tuple[bool, ...]
    raw: str


def _entry(block: str) -> ScheduleEntry:
    if len(block) != 8 or not block[:4].isdigit() or any(c not in "0123456789ABCDEFabcdef" for c in block[4:]):
        raise TicError(f"day-profile slot {block!r} is not HHMMSSSS", "value")
    hour, minute = int(block[:2]), int(block[2:4])
    if hour > 23 or minute > 59:
        raise TicError(f"day-profile slot {block!r}: {hour:02d}:{minute:02d} is not a time of day", "value")
    action = int(block[4:], 16)
    index = action & 0xF
    return ScheduleEntry(
        start=time(hour, minute),
        supplier_index=index if 1 <= index <= 10 else None,
        dry_contact=_CONTACT[action >> 14],
        virtual_contacts=tuple(bool(action >> bit & 1) for bit in range(4, 11)),
        raw=block,
    )


def decode_schedule(data: str) -> tuple[ScheduleEntry, ...]:
    """``PJOURF+1`` / ``PPOINTE``: up to 11 space-separated ``HHMMSSSS`` slots, ``NONUTILE`` skipped.

    One malformed slot rejects the whole profile: a schedule with a hole in
    it would move a tariff change to the wrong time.
    """
    entries = [_entry(block) for block in data.split() if block != "NONUTILE"]
    if len(data.split()) > 11:
        raise TicError(f"day profile {data!r} has more than 11 slots", "value")
    return tuple(entries)


def decode_colour(data: str) -> TempoColour:
    """Historic ``DEMAIN``: ``----`` (not announced), ``BLEU``, ``BLAN``, ``ROUG``."""
    try:
        return _DEMAIN[data.strip()]
    except KeyError:
        raise TicError(f"DEMAIN {data!r} is not ----, BLEU, BLAN or ROUG", "value") from None
