"""Home Assistant device discovery (the one-message-per-device format of HA 2024.11+).

One retained message on ``homeassistant/device/<object_id>/config`` carries
the device (``dev``), the origin (``o``) and every entity (``cmps``), with the
shared state topic and availability at the top. An empty retained payload on
the same topic removes the device.

Which devices to remove is read back from the broker, not kept on the box: at
each connection the service subscribes to ``homeassistant/device/+/config``,
collects the retained configurations whose object id carries this gateway's
prefix (``zaas_<site>_<gateway>_``), and once the configuration has settled
(``discovery_settle_s``) clears those whose device no driver declares or
reports any more. The broker's retained store is the only record, so a
replaced SD card or a wiped state directory cannot leave ghosts behind.
"""

from __future__ import annotations

__all__ = ["PointSpec", "sensor_classes", "device_config", "component_key", "spec_of", "alarm_config"]

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from zaas_edge import __version__
from zaas_edge.model import Alarm, Point
from zaas_edge.mqtt.payloads import OFFLINE, ONLINE
from zaas_edge.mqtt.topics import Topics, safe_level

ORIGIN = {"name": "zaas-edge", "sw": __version__}


@dataclass(frozen=True, slots=True)
class PointSpec:
    """What discovery needs to know about one point of a device.

    ``states`` makes an ``enum`` sensor: the point's value is the index of its
    state (a tariff period, a Tempo colour; see ``zaas_edge.model.Point``).
    """

    quantity: str
    unit: str
    description: str = ""
    expire_after_s: int | None = None
    states: tuple[str, ...] = ()


def spec_of(point: Point, expire_after_s: int | None = None) -> PointSpec:
    """The discovery view of a declared point."""
    return PointSpec(point.quantity, point.unit, point.description, expire_after_s, point.states)


# Our units (model.Reading.unit) -> Home Assistant's spelling.
_HA_UNITS = {"degC": "°C", "degF": "°F", "m3": "m³", "m3/h": "m³/h", "var": "var", "varh": "varh"}

# unit -> (device_class, state_class); counters are total_increasing.
_BY_UNIT: dict[str, tuple[str | None, str | None]] = {
    "kWh": ("energy", "total_increasing"),
    "Wh": ("energy", "total_increasing"),
    "MWh": ("energy", "total_increasing"),
    "W": ("power", "measurement"),
    "kW": ("power", "measurement"),
    "VA": ("apparent_power", "measurement"),
    "kVA": ("apparent_power", "measurement"),
    "var": ("reactive_power", "measurement"),
    "kvar": ("reactive_power", "measurement"),
    "V": ("voltage", "measurement"),
    "mV": ("voltage", "measurement"),
    "A": ("current", "measurement"),
    "mA": ("current", "measurement"),
    "Hz": ("frequency", "measurement"),
    "degC": ("temperature", "measurement"),
    "degF": ("temperature", "measurement"),
    "K": ("temperature", "measurement"),
    "hPa": ("pressure", "measurement"),
    "Pa": ("pressure", "measurement"),
    "bar": ("pressure", "measurement"),
    "lx": ("illuminance", "measurement"),
    "ppm": ("carbon_dioxide", "measurement"),
    "dBm": ("signal_strength", "measurement"),
    "dB": ("signal_strength", "measurement"),
    "B": ("data_size", "measurement"),
    "s": ("duration", "measurement"),
    "m3/h": ("volume_flow_rate", "measurement"),
    "L": ("water", "total_increasing"),
}


def sensor_classes(quantity: str, unit: str) -> dict[str, str]:
    """``device_class``, ``state_class`` and ``unit_of_measurement`` for one point.

    The unit decides in most cases; where it does not (``%`` may be humidity
    or a battery, ``m3`` gas or water) the quantity's name settles it.
    """
    q = quantity.lower()
    out: dict[str, str] = {}
    if unit:
        out["unit_of_measurement"] = _HA_UNITS.get(unit, unit)
    device_class: str | None
    state_class: str | None
    if unit == "%":
        device_class = "humidity" if "humid" in q else "battery" if "batt" in q else None
        state_class = "measurement"
    elif unit == "m3":
        device_class = "water" if "water" in q else "gas" if "gas" in q else "volume"
        state_class = "total_increasing" if device_class in ("gas", "water") else "measurement"
        if device_class == "volume" and any(w in q for w in ("index", "total", "volume", "counter")):
            state_class = "total_increasing"
    elif unit == "" and ("power_factor" in q or q.endswith("pf") or "cos_phi" in q):
        device_class, state_class = "power_factor", "measurement"
    elif unit in _BY_UNIT:
        device_class, state_class = _BY_UNIT[unit]
        if unit in ("s",) and "uptime" in q:
            state_class = "total_increasing"
    else:
        device_class = None
        state_class = "measurement" if unit or _NUMERIC_HINT.search(q) else None
    if device_class:
        out["device_class"] = device_class
    if state_class:
        out["state_class"] = state_class
    return out


_NUMERIC_HINT = re.compile(r"load|count|backlog|rssi|snr|level")
_KEY = re.compile(r"[^a-z0-9_]")


def component_key(quantity: str) -> str:
    """A component key (and object id suffix) from a quantity: lower case, ``_`` for the rest."""
    return _KEY.sub("_", quantity.lower()) or "_"


def _title(quantity: str) -> str:
    return quantity.replace("_", " ").replace("/", " ").strip().capitalize() or quantity


def device_config(
    topics: Topics,
    device: str,
    points: Mapping[str, PointSpec],
    *,
    model: str = "",
    expire_after_s: int | None = None,
) -> tuple[str, dict[str, Any]]:
    """The discovery topic and document of one device with the given points."""
    if not points:
        raise ValueError(f"device {device!r} has no points to announce")
    obj = topics.object_id(device)
    cmps: dict[str, Any] = {}
    for quantity in sorted(points):
        spec = points[quantity]
        key = component_key(quantity)
        while key in cmps:  # "l1/v" and "l1_v" must not share an entity
            key += "_"
        cmp: dict[str, Any] = {
            "p": "sensor",
            "name": spec.description or _title(quantity),
            "unique_id": f"{obj}_{key}",
            "object_id": f"{obj}_{key}",
            # Brackets, not dots: quantities may hold '/' or '.', and 'points.values' would be a method.
            "value_template": "{{ value_json['points'][" + _jinja_str(quantity) + "] }}",
            **sensor_classes(quantity, spec.unit),
        }
        if spec.states:
            cmp = {k: v for k, v in cmp.items() if k not in ("unit_of_measurement", "state_class")}
            cmp.update(device_class="enum", options=list(spec.states), value_template=_enum_template(quantity, spec))
        expire = spec.expire_after_s if spec.expire_after_s is not None else expire_after_s
        if expire:
            cmp["expire_after"] = int(expire)
        cmps[key] = cmp
    doc: dict[str, Any] = {
        "dev": {"ids": [obj], "name": device, "mf": "zaas", "mdl": model or "zaas-edge device",
                "sw": __version__},
        "o": dict(ORIGIN),
        "cmps": cmps,
        "state_topic": topics.device_state(device),
        "availability": [
            {"topic": topics.status, "payload_available": ONLINE.decode(),
             "payload_not_available": OFFLINE.decode()},
            {"topic": topics.availability(device), "payload_available": ONLINE.decode(),
             "payload_not_available": OFFLINE.decode()},
        ],
        "availability_mode": "all",
        "qos": 1,
    }
    return topics.discovery(device), doc


def _enum_template(quantity: str, spec: PointSpec) -> str:
    """The state's name from its index; ``None`` (Home Assistant's "unknown") when absent or out of range."""
    names = "[" + ", ".join(_jinja_str(x) for x in spec.states) + "]"
    return ("{% set s = " + names + " %}{% set v = value_json['points'].get(" + _jinja_str(quantity) + ") %}"
            "{{ s[v | int] if v is number and 0 <= v | int < s | length else None }}")


def _jinja_str(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def alarm_config(topics: Topics, alarm: Alarm) -> tuple[str, dict[str, Any]]:
    """The discovery of an alarm rule's alarm: a ``binary_sensor`` on its retained ``alarm/<id>`` topic.

    Class ``moisture`` for a leak, ``problem`` otherwise; it belongs to the
    alarm's device (the meter it is about) or, for a summary or a derived
    value, to the gateway's own ``system`` device; the incident's fields are
    its attributes. Announced once per alarm id, when first raised.
    """
    data = alarm.data
    obj = f"{topics.object_prefix}alarm_{safe_level(alarm.alarm_id)}"
    device = data.get("device") if isinstance(data.get("device"), str) else "system"
    subject = data.get("subject") if isinstance(data.get("subject"), str) else ""
    doc: dict[str, Any] = {
        "name": f"Alarm {data.get('rule', alarm.alarm_id)}" + (f" {subject}" if subject else ""),
        "unique_id": obj,
        "object_id": obj,
        "device_class": "moisture" if data.get("kind") == "leak" else "problem",
        "state_topic": topics.alarm(alarm.alarm_id),
        "value_template": "{{ 'ON' if value_json.active else 'OFF' }}",
        "json_attributes_topic": topics.alarm(alarm.alarm_id),
        "availability_topic": topics.status,
        "payload_available": ONLINE.decode(),
        "payload_not_available": OFFLINE.decode(),
        "dev": {"ids": [topics.object_id(device)]},
        "o": dict(ORIGIN),
        "qos": 1,
    }
    return f"{topics.discovery_prefix}/binary_sensor/{obj}/config", doc
