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

__all__ = ["PointSpec", "DeviceInfo", "sensor_classes", "device_config", "gateway_config", "component_key",
           "entity_name", "spec_of", "alarm_config"]

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from zaas_edge import __version__
from zaas_edge.model import Alarm, Point
from zaas_edge.mqtt.ha_classes import classify
from zaas_edge.mqtt.payloads import OFFLINE, ONLINE
from zaas_edge.mqtt.topics import Topics, safe_level

ORIGIN = {"name": "zaas-edge", "sw": __version__}


@dataclass(frozen=True, slots=True)
class PointSpec:
    """What discovery needs to know about one point of a device.

    ``states`` makes an ``enum`` sensor: the point's value is the index of its
    state (a tariff period, a Tempo colour; see ``zaas_edge.model.Point``).
    ``resolution`` (the smallest step worth keeping) gives the precision
    Home Assistant shows instead of float32 noise.
    """

    quantity: str
    unit: str
    description: str = ""
    expire_after_s: int | None = None
    states: tuple[str, ...] = ()
    resolution: float = 0.0


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """The device block: who made the device, what it is, its serial and firmware; its site for names.

    ``medium`` ("water", "gas", "heat"...) tells a water meter's m³ from a gas
    meter's; ``via`` is the object id of the gateway device it is reached through.
    They become HA's ``mf``, ``mdl``, ``sn`` (serial_number) and ``sw`` (sw_version).
    """

    manufacturer: str = ""
    model: str = ""
    serial: str = ""
    medium: str = ""
    site: str = ""
    via: str = ""
    sw_version: str = ""


def spec_of(point: Point, expire_after_s: int | None = None) -> PointSpec:
    """The discovery view of a declared point."""
    return PointSpec(point.quantity, point.unit, point.description, expire_after_s, point.states, point.resolution)


def sensor_classes(quantity: str, unit: str, medium: str = "") -> dict[str, str]:
    """``device_class``, ``state_class`` and ``unit_of_measurement`` for one point (see ``ha_classes``)."""
    c = classify(quantity, unit, medium=medium)
    out: dict[str, str] = {}
    if c.unit is not None:
        out["unit_of_measurement"] = c.unit
    if c.device_class is not None:
        out["device_class"] = c.device_class
    if c.state_class is not None:
        out["state_class"] = c.state_class
    return out


_KEY = re.compile(r"[^a-z0-9_]")
_WORDS = {"l1": "L1", "l2": "L2", "l3": "L3", "pf": "power factor", "rssi": "RSSI", "snr": "SNR", "cpu": "CPU",
          "ev": "EV", "co2": "CO₂", "fcnt": "frame counter", "rss": "RSS", "pcb": "PCB", "1m": "1 min",
          "max": "maximum", "min": "minimum", "avg": "average", "mem": "memory", "tic": "TIC"}
_SUFFIX = re.compile(r"\.(s|t|u|m)([0-9a-f]+)(?=\.|$)")


def component_key(quantity: str) -> str:
    """A component key (and object id suffix) from a quantity: lower case, ``_`` for the rest."""
    return _KEY.sub("_", quantity.lower()) or "_"


def entity_name(quantity: str) -> str:
    """A name for people from a quantity: ``energy_import_l1`` is "Energy import L1", an M-Bus
    ``energy.s1`` "Energy (billing date 1)", ``volume.t2`` "Volume tariff 2"."""
    base, _, rest = quantity.partition(".")
    extra = []
    for kind, n in _SUFFIX.findall("." + rest if rest else ""):
        extra.append({"s": f"(billing date {n})", "t": f"tariff {n}", "u": f"subunit {n}",
                      "m": f"#{n}"}[kind])
    words = [_WORDS.get(w, w) for w in re.split(r"[_/\s]+", base.strip("_/ ")) if w]
    for fn in ("max", "min", "avg", "err"):
        if rest.startswith(fn):
            words.append({"err": "during error"}.get(fn, _WORDS.get(fn, fn)))
    text = " ".join(words + extra).strip() or quantity
    return text[0].upper() + text[1:]


def _precision(resolution: float) -> int | None:
    if not resolution or resolution <= 0 or not math.isfinite(resolution):
        return None
    return max(0, min(6, -math.floor(math.log10(resolution) + 1e-9)))


def gateway_config(topics: Topics, site: str = "") -> tuple[str, dict[str, Any]]:
    """The gateway's own device, which every other device names with ``via_device``: one
    ``connectivity`` binary_sensor on the gateway's status topic (its birth and will)."""
    obj = topics.gateway_object_id
    name = f"{site or topics.site} gateway {topics.gateway}"
    doc: dict[str, Any] = {
        "dev": {"ids": [obj], "name": name, "mf": "zaas", "mdl": "zaas-edge gateway", "sw": __version__},
        "o": dict(ORIGIN),
        "cmps": {"link": {"p": "binary_sensor", "name": "Broker link", "unique_id": f"{obj}_link",
                          "default_entity_id": f"binary_sensor.{obj}_link", "device_class": "connectivity",
                          "entity_category": "diagnostic", "payload_on": ONLINE.decode(),
                          "payload_off": OFFLINE.decode()}},
        "state_topic": topics.status,
        "qos": 1,
    }
    return topics.discovery_of(obj), doc


def device_config(
    topics: Topics,
    device: str,
    points: Mapping[str, PointSpec],
    *,
    model: str = "",
    expire_after_s: int | None = None,
    info: DeviceInfo | None = None,
) -> tuple[str, dict[str, Any]]:
    """The discovery topic and document of one device with the given points."""
    if not points:
        raise ValueError(f"device {device!r} has no points to announce")
    info = info or DeviceInfo(model=model)
    obj = topics.object_id(device)
    cmps: dict[str, Any] = {}
    for quantity in sorted(points):
        spec = points[quantity]
        key = component_key(quantity)
        while key in cmps:  # "l1/v" and "l1_v" must not share an entity
            key += "_"
        c = classify(quantity, spec.unit, medium=info.medium or device, states=len(spec.states))
        value = "value_json['points'][" + _jinja_str(quantity) + "]"
        cmp: dict[str, Any] = {
            "p": c.platform,
            "name": entity_name(quantity),
            "unique_id": f"{obj}_{key}",
            "default_entity_id": f"{c.platform}.{obj}_{key}",
            # Brackets, not dots: quantities may hold '/' or '.', and 'points.values' would be a method.
            "value_template": "{{ " + value + " }}",
        }
        if c.platform == "binary_sensor":
            cmp["value_template"] = "{{ 'ON' if " + value + " else 'OFF' }}"
        if c.device_class is not None:
            cmp["device_class"] = c.device_class
        if c.state_class is not None:
            cmp["state_class"] = c.state_class
        if c.unit is not None:
            cmp["unit_of_measurement"] = c.unit
        if c.diagnostic:
            cmp["entity_category"] = "diagnostic"
        if spec.states:
            cmp.update(options=list(spec.states), value_template=_enum_template(quantity, spec))
        elif c.platform == "sensor" and (precision := _precision(spec.resolution)) is not None:
            cmp["suggested_display_precision"] = precision
        expire = spec.expire_after_s if spec.expire_after_s is not None else expire_after_s
        if expire:
            cmp["expire_after"] = int(expire)
        cmps[key] = cmp
    dev: dict[str, Any] = {"ids": [obj], "name": f"{info.site} {device}" if info.site else device,
                           "mf": info.manufacturer or "zaas", "mdl": info.model or "zaas-edge device"}
    if info.serial:
        dev["sn"] = info.serial
    if info.sw_version:
        dev["sw"] = info.sw_version
    if info.via and info.via != obj:
        dev["via_device"] = info.via
    doc: dict[str, Any] = {
        "dev": dev,
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
        "default_entity_id": f"binary_sensor.{obj}",
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
