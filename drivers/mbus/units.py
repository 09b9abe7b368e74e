"""Unit conversion for points that want another unit than the decoder's.

The decoder keeps one unit per quantity (Wh, m3, W, s, ...); a point that
publishes kWh or litres converts with :func:`convert`. Only linear,
same-dimension conversions are offered: converting Wh to m3 is a
configuration mistake and raises ``ValueError`` naming both units.
"""

from __future__ import annotations

__all__ = ["convert", "UNIT_FACTORS"]

# unit -> (dimension, factor to the dimension's base unit)
UNIT_FACTORS: dict[str, tuple[str, float]] = {
    "Wh": ("energy", 3600.0),
    "kWh": ("energy", 3.6e6),
    "MWh": ("energy", 3.6e9),
    "J": ("energy", 1.0),
    "kJ": ("energy", 1e3),
    "MJ": ("energy", 1e6),
    "GJ": ("energy", 1e9),
    "W": ("power", 1.0),
    "kW": ("power", 1e3),
    "MW": ("power", 1e6),
    "J/h": ("power", 1 / 3600),
    "GJ/h": ("power", 1e9 / 3600),
    "m3": ("volume", 1.0),
    "l": ("volume", 1e-3),
    "m3/h": ("volume_flow", 1.0),
    "l/h": ("volume_flow", 1e-3),
    "l/min": ("volume_flow", 0.06),
    "m3/min": ("volume_flow", 60.0),
    "m3/s": ("volume_flow", 3600.0),
    "kg": ("mass", 1.0),
    "t": ("mass", 1e3),
    "kg/h": ("mass_flow", 1.0),
    "t/h": ("mass_flow", 1e3),
    "s": ("time", 1.0),
    "min": ("time", 60.0),
    "h": ("time", 3600.0),
    "d": ("time", 86400.0),
    "K": ("temperature_difference", 1.0),
    "mK": ("temperature_difference", 1e-3),
    "bar": ("pressure", 1.0),
    "mbar": ("pressure", 1e-3),
    "Pa": ("pressure", 1e-5),
    "kPa": ("pressure", 1e-2),
    "V": ("voltage", 1.0),
    "mV": ("voltage", 1e-3),
    "kV": ("voltage", 1e3),
    "A": ("current", 1.0),
    "mA": ("current", 1e-3),
}


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """``value`` in ``from_unit`` expressed in ``to_unit`` (e.g. Wh to kWh)."""
    if from_unit == to_unit:
        return value
    try:
        dim_a, fa = UNIT_FACTORS[from_unit]
        dim_b, fb = UNIT_FACTORS[to_unit]
    except KeyError as exc:
        raise ValueError(f"no conversion from {from_unit!r} to {to_unit!r}: unknown unit {exc}") from None
    if dim_a != dim_b:
        raise ValueError(f"cannot convert {from_unit!r} ({dim_a}) to {to_unit!r} ({dim_b})")
    return value * fa / fb
