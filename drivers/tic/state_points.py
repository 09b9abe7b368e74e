"""The tariff state and the breaker as readings: enumerated points the rules engine and MQTT read.

A :class:`~zaas_edge.drivers.tic.tariff.TariffState` is published on the
meter's device as a few points, each a number so that it flows through the
hub, the store and sync like any reading. Enumerated points carry their
``states`` (:attr:`zaas_edge.model.Point.states`): the value is the index
of the state, and Home Assistant discovery turns them into ``enum`` sensors
with these options. The order of ``states`` is part of the stored history:
new states are only ever appended.

===================== ============================================ ===========================
quantity              states (value = index)                       from
===================== ============================================ ===========================
``tariff_contract``   base, hc, tempo, ejp, other, unknown         ``OPTARIF`` / ``NGTF``
``tariff_period``     base, hp, hc, peak, normal, unknown          ``PTEC`` / ``LTARF``, STGE
``tempo_today``       blue, white, red, unknown                    ``PTEC`` / STGE 24..25
``tempo_tomorrow``    blue, white, red, unknown                    ``DEMAIN`` / STGE 26..27
``peak_notice``       off, on                                      ``PEJP`` / STGE 28..29
``peak_active``       off, on                                      ``PTEC PM..`` / STGE 30..31
``breaker``           closed, open_over_power, ... (``Breaker``)   STGE 1..3 (standard only)
``supplier_index``    (a number, 1..16)                            ``NTARF`` / STGE 10..13
``tariff_next_change`` (Unix seconds; absent when unknown)         ``PJOURF+1`` or the rule
===================== ============================================ ===========================
"""

from __future__ import annotations

__all__ = ["STATE_POINTS", "StatePoint", "state_points", "state_values", "is_exact"]

from dataclasses import dataclass

from zaas_edge.drivers.tic.meaning import Interpretation
from zaas_edge.drivers.tic.status import Breaker, TempoColour
from zaas_edge.drivers.tic.tariff import Contract, Period, TariffState

from zaas_edge.model import Point

_ON_OFF = ("off", "on")


@dataclass(frozen=True, slots=True)
class StatePoint:
    quantity: str
    states: tuple[str, ...]
    unit: str
    description: str


STATE_POINTS: tuple[StatePoint, ...] = (
    StatePoint("tariff_contract", tuple(c.value for c in Contract), "", "Tariff contract"),
    StatePoint("tariff_period", tuple(p.value for p in Period), "", "Tariff period in force"),
    StatePoint("tempo_today", tuple(c.value for c in TempoColour), "", "Tempo colour today"),
    StatePoint("tempo_tomorrow", tuple(c.value for c in TempoColour), "", "Tempo colour tomorrow"),
    StatePoint("peak_notice", _ON_OFF, "", "EJP or mobile-peak notice"),
    StatePoint("peak_active", _ON_OFF, "", "EJP or mobile peak in progress"),
    StatePoint("breaker", tuple(b.value for b in Breaker), "", "The meter's breaker (STGE)"),
    StatePoint("supplier_index", (), "", "Supplier tariff index in use (NTARF)"),
    StatePoint("tariff_next_change", (), "", "Next known tariff change (Unix time, s)"),
)
_BY_QUANTITY = {p.quantity: p for p in STATE_POINTS}


def is_exact(quantity: str) -> bool:
    """Stored on any change, not through a deadband: energy indexes and states."""
    return quantity.startswith("energy_") or quantity in _BY_QUANTITY


def state_points(device_id: str) -> list[Point]:
    """The declared state points of one meter's device (for discovery)."""
    return [Point(device_id, p.quantity, p.unit, 1.0, p.description, states=p.states) for p in STATE_POINTS]


def _index(quantity: str, value: str) -> float:
    return float(_BY_QUANTITY[quantity].states.index(value))


def state_values(state: TariffState, interp: Interpretation) -> list[tuple[str, float, str]]:
    """``(quantity, value, unit)`` for the state at this frame; what is unknown is left out."""
    out = [
        ("tariff_contract", _index("tariff_contract", state.contract.value), ""),
        ("tariff_period", _index("tariff_period", state.period.value), ""),
        ("tempo_today", _index("tempo_today", state.tempo_today.value), ""),
        ("tempo_tomorrow", _index("tempo_tomorrow", state.tempo_tomorrow.value), ""),
        ("peak_notice", float(state.peak_notice), ""),
        ("peak_active", float(state.peak_active), ""),
    ]
    if interp.status is not None:
        out.append(("breaker", _index("breaker", interp.status.breaker.value), ""))
    if state.supplier_index is not None:
        out.append(("supplier_index", float(state.supplier_index), ""))
    if state.next_change is not None:
        out.append(("tariff_next_change", float(int(state.next_change.timestamp())), ""))
    return out
