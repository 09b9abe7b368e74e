"""Which TIC labels are measurements, and the point each becomes.

One table, :data:`MEASURES`, maps every numeric label of Enedis-NOI-CPT_54E
(historic tables §6.1.1 and §6.1.2, standard list §6.2.2) to the quantity
(second half of the point key ``<device_id>/<quantity>``), its unit and
scale. Quantity names follow the project's meter profiles (``apparent_power``,
``current_l1``, ``voltage_l1``, ``energy_import``, ``energy_export``) so a
Linky and a Modbus meter read the same way, and the same quantity is used in
both TIC modes where the label means the same thing (``PAPP`` and ``SINSTS``
are both ``apparent_power``), so switching a meter from historic to standard
mode keeps its history. Energy registers are named for their tariff period.

The two modes share no label, so one table serves both; ``mode`` says where a
label comes from, for the documentation. ``drivers/tic/POINTS.md`` lists the
same table for people; a test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from zaas_edge.drivers.tic.codec import Mode

from zaas_edge.model import Point

__all__ = ["Measure", "MEASURES", "measure_for", "points"]


@dataclass(frozen=True, slots=True)
class Measure:
    """What a numeric label means: ``value = int(data) * scale`` in ``unit``.

    ``resolution`` is the smallest step the meter sends (``PAPP`` is rounded
    to 10 VA), ready for :class:`zaas_edge.model.Point`. ``horodated`` marks
    labels whose value belongs to the horodate sent with it (a daily maximum,
    a load-curve point), not to the frame's time.
    """

    label: str
    quantity: str
    unit: str
    description: str
    mode: Mode
    scale: float = 1.0
    resolution: float = 1.0
    horodated: bool = False


H, S = Mode.HISTORIC, Mode.STANDARD

_TEMPO = {
    "BBRHCJB": ("energy_tempo_blue_hc", "Tempo blue days, off-peak hours"),
    "BBRHPJB": ("energy_tempo_blue_hp", "Tempo blue days, peak hours"),
    "BBRHCJW": ("energy_tempo_white_hc", "Tempo white days, off-peak hours"),
    "BBRHPJW": ("energy_tempo_white_hp", "Tempo white days, peak hours"),
    "BBRHCJR": ("energy_tempo_red_hc", "Tempo red days, off-peak hours"),
    "BBRHPJR": ("energy_tempo_red_hp", "Tempo red days, peak hours"),
}


def _each(label: str, quantity: str, unit: str, text: str, mode: Mode, numbers: range, **kw: bool) -> list[Measure]:
    """One row per phase or index: ``{n}`` in the label, quantity and text is the number."""
    return [Measure(label.format(n=n), quantity.format(n=n), unit, text.format(n=n), mode, **kw) for n in numbers]


_PHASES = range(1, 4)
_DATED = {"horodated": True}


def _table() -> dict[str, Measure]:
    rows: list[Measure] = [
        # --- historic (§6.1): energy indexes, one per tariff period
        Measure("BASE", "energy_base", "Wh", "Energy index, base option (total on a non-historic contract)", H),
        Measure("HCHC", "energy_hc", "Wh", "Energy index, off-peak hours (HC)", H),
        Measure("HCHP", "energy_hp", "Wh", "Energy index, peak hours (HP)", H),
        Measure("EJPHN", "energy_ejp_normal", "Wh", "Energy index, EJP normal hours", H),
        Measure("EJPHPM", "energy_ejp_peak", "Wh", "Energy index, EJP mobile-peak hours", H),
        *(Measure(label, q, "Wh", f"Energy index, {text}", H) for label, (q, text) in _TEMPO.items()),
        # historic power and currents
        Measure("PAPP", "apparent_power", "VA", "Apparent power drawn (rounded to 10 VA)", H, resolution=10.0),
        Measure("IINST", "current_l1", "A", "Current (single-phase meter)", H),
        *_each("IINST{n}", "current_l{n}", "A", "Current, phase {n}", H, _PHASES),
        Measure("ISOUSC", "subscribed_current", "A", "Subscribed current (PREF / 200 V on Linky)", H),
        Measure("IMAX", "max_current", "A", "Maximum current (always 90 A on Linky single-phase)", H),
        *_each("IMAX{n}", "max_current_l{n}", "A", "Maximum current, phase {n} (60 A on Linky)", H, _PHASES),
        Measure("PMAX", "apparent_power_max_yesterday", "VA", "Previous day's maximum apparent power", H),
        Measure("ADPS", "overcurrent", "A", "Current while over the reference current (sent only then)", H),
        *_each("ADIR{n}", "overcurrent_l{n}", "A", "Current over its setting, phase {n} (short frames)", H, _PHASES),
        # --- standard (§6.2.2): energy indexes
        Measure("EAST", "energy_import", "Wh", "Active energy drawn, total", S),
        *_each("EASF{n:02d}", "energy_import_supplier_{n:02d}", "Wh", "Drawn, supplier index {n}", S, range(1, 11)),
        *_each("EASD{n:02d}", "energy_import_distributor_{n:02d}", "Wh", "Drawn, distrib. index {n}", S, range(1, 5)),
        Measure("EAIT", "energy_export", "Wh", "Active energy injected, total (producer)", S),
        *_each("ERQ{n}", "energy_reactive_q{n}", "varh", "Reactive energy, quadrant {n}", S, range(1, 5)),
        # standard currents, voltages, powers
        *_each("IRMS{n}", "current_l{n}", "A", "RMS current, phase {n}", S, _PHASES),
        *_each("URMS{n}", "voltage_l{n}", "V", "RMS voltage, phase {n}", S, _PHASES),
        *_each("UMOY{n}", "voltage_avg_l{n}", "V", "Average voltage, phase {n} (10 min)", S, _PHASES, **_DATED),
        Measure("PREF", "reference_power", "kVA", "Reference (subscribed) apparent power", S),
        Measure("PCOUP", "breaking_power", "kVA", "Breaking threshold of the meter's breaker", S),
        Measure("SINSTS", "apparent_power", "VA", "Apparent power drawn, total", S),
        *_each("SINSTS{n}", "apparent_power_l{n}", "VA", "Apparent power drawn, phase {n}", S, _PHASES),
        Measure("SINSTI", "apparent_power_export", "VA", "Apparent power injected (producer)", S),
        Measure("SMAXSN", "apparent_power_max_today", "VA", "Today's maximum apparent power drawn", S, **_DATED),
        *_each("SMAXSN{n}", "apparent_power_max_today_l{n}", "VA", "Today's maximum, phase {n}", S, _PHASES, **_DATED),
        Measure("SMAXSN-1", "apparent_power_max_yesterday", "VA", "Yesterday's maximum drawn", S, **_DATED),
        *_each(
            "SMAXSN{n}-1", "apparent_power_max_yesterday_l{n}", "VA", "Yesterday's max, phase {n}", S, _PHASES, **_DATED
        ),
        Measure("SMAXIN", "apparent_power_export_max_today", "VA", "Today's maximum injected", S, **_DATED),
        Measure("SMAXIN-1", "apparent_power_export_max_yesterday", "VA", "Yesterday's maximum injected", S, **_DATED),
        Measure("CCASN", "power_curve", "W", "Load curve point n: mean active power drawn", S, **_DATED),
        Measure("CCASN-1", "power_curve_previous", "W", "Load curve point n-1, active power drawn", S, **_DATED),
        Measure("CCAIN", "power_export_curve", "W", "Load curve point n: mean active power injected", S, **_DATED),
        Measure("CCAIN-1", "power_export_curve_previous", "W", "Load curve point n-1, injected", S, **_DATED),
    ]
    table = {m.label: m for m in rows}
    assert len(table) == len(rows), "a label is listed twice"
    return table


#: Every numeric label, by label as sent. Read-only.
MEASURES: Mapping[str, Measure] = MappingProxyType(_table())


def measure_for(label: str) -> Measure | None:
    """The meaning of ``label``, or ``None`` when it is not a measurement."""
    return MEASURES.get(label)


def points(device_id: str, labels: Iterable[str] | None = None, mode: Mode | None = None) -> list[Point]:
    """The points of a TIC meter: one per quantity, for ``labels`` seen (default: every label of ``mode``).

    Several labels share a quantity (``IINST``, ``IINST1`` and ``IRMS1`` are
    all ``current_l1``); the first in table order describes the point.
    """
    chosen = [m for m in MEASURES.values() if (mode is None or m.mode is mode)]
    if labels is not None:
        wanted = set(labels)
        chosen = [m for m in chosen if m.label in wanted]
    out: dict[str, Point] = {}
    for m in chosen:
        out.setdefault(m.quantity, Point(device_id, m.quantity, m.unit, m.resolution, f"{m.description} ({m.label})"))
    return list(out.values())
