"""How long each device may stay quiet before Home Assistant is told it is offline.

An M-Bus meter read every 900 s is healthy for 899 s after each readout; a
LoRaWAN sensor heard every 20 minutes is healthy for most of an hour. One
gateway-wide timeout would show the first offline 120 s after every read, so
the availability topics and ``expire_after`` follow each device's own
schedule: the larger of ``[mqtt] availability_timeout_s`` and
``zaas_edge.health.SCHEDULE_FACTOR`` times the device's interval
(``zaas_edge.health.quiet_limit_s``); a listened-to device (LoRaWAN, BLE) by
the silence after which its driver calls it offline (``offline_after_s``,
meant as several of its report intervals), so MQTT never says offline
before ``status`` does.

Pure: read from the ``[[drivers]]`` sections as configured (plain tables),
nothing else.
"""

from __future__ import annotations

__all__ = ["Schedules", "schedules_of"]

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from zaas_edge.health import quiet_limit_s

Table = Mapping[str, object]


def _num(v: object) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else None


def _tables(v: object) -> list[Table]:
    return [t for t in v if isinstance(t, Mapping)] if isinstance(v, list) else []


@dataclass(frozen=True, slots=True)
class Schedules:
    """Quiet limits (seconds) by device id, and by driver id for devices not listed in the configuration
    (LoRaWAN devices of a keys file, a forwarder's own statistics)."""

    default_s: float
    devices: Mapping[str, float] = field(default_factory=dict)
    drivers: Mapping[str, float] = field(default_factory=dict)

    def limit(self, device: str, driver: str | None = None) -> float:
        """How long ``device`` may give no reading and still be online."""
        got = self.devices.get(device)
        if got is None and driver is not None:
            got = self.drivers.get(driver)
        return got if got is not None else self.default_s


_MBUS_DEFAULT_S = 900.0  # drivers.mbus.options.MeterOptions.interval_s
_LISTENED_DEFAULT_S = 3600.0  # the lora and ble drivers' offline_after_s
_SYSTEM_DEFAULT_S = 10.0


def schedules_of(drivers: Iterable[Table], configured_s: float) -> Schedules:
    """Each configured device's quiet limit from its driver section."""
    devices: dict[str, float] = {}
    by_driver: dict[str, float] = {}
    for d in drivers:
        kind, driver_id = d.get("type"), d.get("id")
        if not isinstance(driver_id, str):
            continue
        if kind == "mbus":
            for m in _tables(d.get("meters")):
                if isinstance(m.get("id"), str):
                    devices[str(m["id"])] = quiet_limit_s(configured_s, _num(m.get("interval_s")) or _MBUS_DEFAULT_S)
        elif kind == "modbus":
            for dev in _tables(d.get("devices")):
                if not isinstance(dev.get("id"), str):
                    continue
                overrides = dev.get("points")
                point_intervals = [_num(p.get("interval_s")) for p in overrides.values()
                                   if isinstance(p, Mapping)] if isinstance(overrides, Mapping) else []
                # Any reading is a sign of life: the device's fastest poll decides.
                known = [i for i in (_num(dev.get("interval_fast_s")), _num(dev.get("interval_slow_s")),
                                     *point_intervals) if i is not None]
                devices[str(dev["id"])] = quiet_limit_s(configured_s, min(known) if known else None)
        elif kind in ("lora", "ble"):
            silent = _num(d.get("offline_after_s")) or _LISTENED_DEFAULT_S
            by_driver[driver_id] = max(configured_s, silent)
            for dev in _tables(d.get("devices")):
                if isinstance(dev.get("id"), str):
                    devices[str(dev["id"])] = max(configured_s, _num(dev.get("offline_after_s")) or silent)
        elif kind == "system":
            devices[driver_id] = quiet_limit_s(configured_s, _num(d.get("interval_s")) or _SYSTEM_DEFAULT_S)
    return Schedules(configured_s, devices, by_driver)
