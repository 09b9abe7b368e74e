"""Which Home Assistant entity a point becomes: platform, device class, state class, unit.

The tables mirror Home Assistant's own, ``DEVICE_CLASS_UNITS`` and
``DEVICE_CLASS_STATE_CLASSES`` of ``homeassistant/components/sensor/const.py``
(the device classes a building's points can be; units spelled as HA spells
them). HA logs a warning and drops the entity from long-term statistics (and
so from the Energy dashboard) for a combination outside these tables, so
:func:`classify` only ever returns combinations :func:`check` accepts, and a
test holds every announced entity of the demo building to the same check.

Pure: no I/O, no configuration; the quantity's name, its unit and what the
driver knows of the device (its medium) decide.
"""

from __future__ import annotations

__all__ = [
    "DEVICE_CLASS_UNITS",
    "DEVICE_CLASS_STATE_CLASSES",
    "BINARY_DEVICE_CLASSES",
    "EntityClass",
    "classify",
    "check",
    "ha_unit",
    "is_snapshot",
]

import re
from dataclasses import dataclass

MEASUREMENT, TOTAL, TOTAL_INCREASING = "measurement", "total", "total_increasing"
_ALL = frozenset({MEASUREMENT, TOTAL, TOTAL_INCREASING})
_TOTALS = frozenset({TOTAL, TOTAL_INCREASING})
_MEAS = frozenset({MEASUREMENT})

_ENERGY = frozenset({"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh", "cal", "kcal", "Mcal", "Gcal"})
_TEMPERATURE = frozenset({"°C", "°F", "K"})

# device class -> units Home Assistant accepts (None: no unit).
DEVICE_CLASS_UNITS: dict[str, frozenset[str | None]] = {
    "apparent_power": frozenset({"mVA", "VA", "kVA"}),
    "battery": frozenset({"%"}),
    "carbon_dioxide": frozenset({"ppm"}),
    "current": frozenset({"mA", "A"}),
    "data_size": frozenset({"bit", "kbit", "Mbit", "Gbit", "B", "kB", "MB", "GB", "TB", "KiB", "MiB", "GiB"}),
    "duration": frozenset({"d", "h", "min", "s", "ms"}),
    "energy": _ENERGY,
    "frequency": frozenset({"Hz", "kHz", "MHz", "GHz"}),
    "gas": frozenset({"CCF", "ft³", "m³"}),
    "humidity": frozenset({"%"}),
    "illuminance": frozenset({"lx"}),
    "moisture": frozenset({"%"}),
    "power": frozenset({"mW", "W", "kW", "MW", "GW", "TW"}),
    "power_factor": frozenset({"%", None}),
    "pressure": frozenset({"Pa", "kPa", "hPa", "bar", "cbar", "mbar", "mmHg", "inHg", "psi"}),
    "reactive_energy": frozenset({"varh", "kvarh"}),
    "reactive_power": frozenset({"var", "kvar"}),
    "signal_strength": frozenset({"dB", "dBm"}),
    "temperature": _TEMPERATURE,
    "temperature_delta": _TEMPERATURE,
    "voltage": frozenset({"µV", "mV", "V", "kV", "MV"}),
    "volume": frozenset({"mL", "L", "m³", "ft³", "CCF", "gal", "fl. oz."}),
    "volume_flow_rate": frozenset({"m³/h", "m³/s", "ft³/min", "L/h", "L/min", "L/s", "gal/min", "mL/s"}),
    "water": frozenset({"CCF", "ft³", "m³", "gal", "L"}),
    "enum": frozenset({None}),
}

# device class -> state classes Home Assistant accepts (an empty set: none may be given).
DEVICE_CLASS_STATE_CLASSES: dict[str, frozenset[str]] = {
    "apparent_power": _MEAS, "battery": _MEAS, "carbon_dioxide": _MEAS, "current": _MEAS,
    "data_size": _ALL, "duration": _ALL, "energy": _TOTALS, "frequency": _MEAS, "gas": _TOTALS,
    "humidity": _MEAS, "illuminance": _MEAS, "moisture": _MEAS, "power": _MEAS, "power_factor": _MEAS,
    "pressure": _MEAS, "reactive_energy": _TOTALS, "reactive_power": _MEAS, "signal_strength": _MEAS,
    "temperature": _MEAS, "temperature_delta": _MEAS, "voltage": _MEAS, "volume": _TOTALS,
    "volume_flow_rate": _MEAS, "water": _TOTALS, "enum": frozenset(),
}

# binary_sensor device classes used here (homeassistant/components/binary_sensor: BinarySensorDeviceClass).
BINARY_DEVICE_CLASSES = frozenset({"connectivity", "moisture", "problem", "power", "running", "lock", "opening"})

# Our units (model.Reading.unit) -> Home Assistant's spelling; "" and the counting words have none.
_HA_UNITS = {"degC": "°C", "degF": "°F", "m3": "m³", "m3/h": "m³/h", "m3/s": "m³/s", "l": "L", "l/h": "L/h",
             "uV": "µV", "": None, "count": None, "counts": None}

_BY_UNIT: dict[str, tuple[str, str]] = {  # HA unit -> (device class, state class) when the unit settles it
    **{u: ("energy", TOTAL_INCREASING) for u in _ENERGY},
    **{u: ("power", MEASUREMENT) for u in DEVICE_CLASS_UNITS["power"]},
    **{u: ("apparent_power", MEASUREMENT) for u in DEVICE_CLASS_UNITS["apparent_power"]},
    **{u: ("reactive_power", MEASUREMENT) for u in DEVICE_CLASS_UNITS["reactive_power"]},
    **{u: ("reactive_energy", TOTAL_INCREASING) for u in DEVICE_CLASS_UNITS["reactive_energy"]},
    **{u: ("voltage", MEASUREMENT) for u in DEVICE_CLASS_UNITS["voltage"]},
    **{u: ("current", MEASUREMENT) for u in DEVICE_CLASS_UNITS["current"]},
    **{u: ("frequency", MEASUREMENT) for u in DEVICE_CLASS_UNITS["frequency"]},
    **{u: ("pressure", MEASUREMENT) for u in DEVICE_CLASS_UNITS["pressure"]},
    **{u: ("volume_flow_rate", MEASUREMENT) for u in DEVICE_CLASS_UNITS["volume_flow_rate"]},
    **{u: ("data_size", MEASUREMENT) for u in DEVICE_CLASS_UNITS["data_size"]},
    **{u: ("duration", MEASUREMENT) for u in DEVICE_CLASS_UNITS["duration"]},
    **{u: ("signal_strength", MEASUREMENT) for u in DEVICE_CLASS_UNITS["signal_strength"]},
    "°C": ("temperature", MEASUREMENT), "°F": ("temperature", MEASUREMENT),
    "lx": ("illuminance", MEASUREMENT), "ppm": ("carbon_dioxide", MEASUREMENT),
}

_SNAPSHOT = re.compile(r"\.s[1-9][0-9]*(?:\.|$)")  # an M-Bus storage number > 0: a value at a billing date
_DIAGNOSTIC = re.compile(r"(^|_)(rssi|snr|backlog|cpu|fcnt|mem|disk|process|uptime|software|firmware|"
                         r"register_layout|hardware|watchdog)(_|$)")
_DELTA = re.compile(r"(delta|diff|difference|spread)")
_COUNTER = re.compile(r"(count|counter|pulses|fcnt|starts|cycles)")


@dataclass(frozen=True, slots=True)
class EntityClass:
    """What one point is in Home Assistant. ``None`` fields are left out of the discovery."""

    platform: str  # "sensor" or "binary_sensor"
    device_class: str | None = None
    state_class: str | None = None
    unit: str | None = None
    diagnostic: bool = False


def ha_unit(unit: str) -> str | None:
    """Our unit in Home Assistant's spelling; None for a number without a unit."""
    return _HA_UNITS.get(unit, unit)


def is_snapshot(quantity: str) -> bool:
    """A value the meter froze at a billing date (M-Bus storage number > 0), not the running total."""
    return bool(_SNAPSHOT.search(quantity))


def _medium_class(q: str, medium: str) -> str | None:
    """``water`` or ``gas`` from the device's medium or the point's name, so the Energy dashboard takes it."""
    m = medium.lower()
    for word in ("gas", "water"):
        if word in m or word in q:
            return word
    return None


def classify(quantity: str, unit: str, *, medium: str = "", states: int = 0) -> EntityClass:
    """The entity of one point, from its quantity name, its unit and the device's medium.

    ``medium`` is what the driver or profile knows of the device ("water",
    "gas", "heat", a Linky's "electricity"), or its id when nothing else is
    known; ``states`` the number of states of an enumerated point.
    """
    q = quantity.lower()
    diagnostic = bool(_DIAGNOSTIC.search(q))
    if states:
        return EntityClass("sensor", "enum", None, None, diagnostic)
    if unit == "bool":
        if "leak" in q or "flood" in q:
            dc: str | None = "moisture"
        elif "link" in q or "online" in q or "connected" in q:
            dc = "connectivity"
        elif "alarm" in q or "fault" in q or "tamper" in q:
            dc = "problem"
        else:
            dc = None
        return EntityClass("binary_sensor", dc, None, None, diagnostic or dc == "connectivity")
    u = ha_unit(unit)
    snapshot = is_snapshot(q)
    if u is None:
        if "power_factor" in q or q == "pf" or q.startswith("pf_") or q.endswith("_pf") or "cos_phi" in q:
            return EntityClass("sensor", "power_factor", MEASUREMENT, None, diagnostic)
        if unit in ("count", "counts") or _COUNTER.search(q):
            # A counter: a running total with no unit (HA's statistics follow it, resets included).
            return EntityClass("sensor", None, None if snapshot else TOTAL_INCREASING, None, diagnostic)
        numeric = re.search(r"load|backlog|rssi|snr|level|usage", q)
        return EntityClass("sensor", None, MEASUREMENT if numeric else None, None, diagnostic)
    if u == "%":
        dc = "humidity" if "humid" in q else "battery" if "batt" in q else "moisture" if "moist" in q else None
        return EntityClass("sensor", dc, MEASUREMENT, u, diagnostic)
    if u in ("m³", "L", "ft³", "gal"):
        dc = _medium_class(q, medium) or "volume"
        if dc == "gas" and u not in DEVICE_CLASS_UNITS["gas"]:
            dc = "volume"
        # A volume is a meter's index: never "measurement" (HA refuses it with "volume").
        return EntityClass("sensor", dc, None if snapshot else TOTAL_INCREASING, u, diagnostic)
    if u == "K" or (u in _TEMPERATURE and _DELTA.search(q)):
        return EntityClass("sensor", "temperature_delta", MEASUREMENT, u, diagnostic)
    known = _BY_UNIT.get(u)
    if known is None:
        return EntityClass("sensor", None, MEASUREMENT, u, diagnostic)
    dc, sc = known
    if dc in ("energy", "reactive_energy") and snapshot:
        # A billing-date value is not a running total: offered as a plain number, not as energy.
        return EntityClass("sensor", None, None, u, diagnostic)
    if dc == "duration" and "uptime" in q:
        sc = TOTAL_INCREASING
    return EntityClass("sensor", dc, sc, u, diagnostic)


def check(platform: str, device_class: str | None, state_class: str | None, unit: str | None) -> str | None:
    """Why Home Assistant would refuse this combination, or None when it is valid."""
    if platform == "binary_sensor":
        if state_class is not None or unit is not None:
            return "a binary_sensor has neither state_class nor unit"
        if device_class is not None and device_class not in BINARY_DEVICE_CLASSES:
            return f"unknown binary_sensor device class {device_class!r}"
        return None
    if platform != "sensor":
        return f"unknown platform {platform!r}"
    if state_class is not None and state_class not in _ALL:
        return f"unknown state class {state_class!r}"
    if device_class is None:
        return None
    units = DEVICE_CLASS_UNITS.get(device_class)
    if units is None:
        return f"device class {device_class!r} is not in the table"
    if unit not in units:
        return f"unit {unit!r} is not one of device class {device_class!r}'s"
    if state_class is not None and state_class not in DEVICE_CLASS_STATE_CLASSES[device_class]:
        return f"state class {state_class!r} is not allowed with device class {device_class!r}"
    return None
