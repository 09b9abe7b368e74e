"""Home Assistant discovery of a Linky's points: indexes for the Energy dashboard, tariff states as enums."""

from __future__ import annotations

from pathlib import Path

from zaas_edge.drivers.tic import MEASURES, Mode, points
from zaas_edge.drivers.tic.state_points import STATE_POINTS, state_points

from zaas_edge.clock import SystemClock
from zaas_edge.config_model import Config, GatewaySection
from zaas_edge.hub import Hub
from zaas_edge.model import Point, Reading
from zaas_edge.mqtt.config import MqttSection
from zaas_edge.mqtt.discovery import device_config, spec_of
from zaas_edge.mqtt.service import MqttService
from zaas_edge.mqtt.topics import Topics
from zaas_edge.service import DriverInfo, ServiceContext

DEVICE = "linky-031762120855"
T = Topics("site-a", "gw-1", "homeassistant")


def _doc(pts: list[Point]) -> dict:
    _, doc = device_config(T, DEVICE, {p.quantity: spec_of(p) for p in pts}, model="tic")
    return doc["cmps"]


def test_energy_indexes_feed_the_energy_dashboard_and_power_is_apparent_power() -> None:
    cmps = _doc(points(DEVICE))
    energy = [m.quantity for m in MEASURES.values() if m.unit == "Wh"]
    assert len(energy) > 20
    for q in energy:
        assert (cmps[q]["device_class"], cmps[q]["state_class"], cmps[q]["unit_of_measurement"]) == (
            "energy", "total_increasing", "Wh"), q
    for q in ("apparent_power", "apparent_power_l1", "apparent_power_export"):
        assert (cmps[q]["device_class"], cmps[q]["state_class"], cmps[q]["unit_of_measurement"]) == (
            "apparent_power", "measurement", "VA")
    assert cmps["reference_power"]["device_class"] == "apparent_power"
    assert cmps["reference_power"]["unit_of_measurement"] == "kVA"
    assert cmps["current_l1"]["device_class"] == "current" and cmps["voltage_l1"]["device_class"] == "voltage"


def test_tariff_state_and_colours_are_enum_sensors_with_their_options() -> None:
    cmps = _doc(state_points(DEVICE) + points(DEVICE, mode=Mode.STANDARD))
    for q, want in (("tariff_period", ["base", "hp", "hc", "peak", "normal", "unknown"]),
                    ("tempo_today", ["blue", "white", "red", "unknown"]),
                    ("tempo_tomorrow", ["blue", "white", "red", "unknown"]),
                    ("tariff_contract", ["base", "hc", "tempo", "ejp", "other", "unknown"]),
                    ("peak_notice", ["off", "on"]), ("peak_active", ["off", "on"])):
        c = cmps[q]
        assert c["device_class"] == "enum" and c["options"] == want, q
        assert "state_class" not in c and "unit_of_measurement" not in c, q
        # the value is the index of the state: the template maps it back, and says None out of range
        names = "[" + ", ".join(f"'{w}'" for w in want) + "]"
        assert c["value_template"] == (
            "{% set s = " + names + " %}{% set v = value_json['points'].get('" + q + "') %}"
            "{{ s[v | int] if v is number and 0 <= v | int < s | length else None }}")
    assert cmps["breaker"]["options"][0] == "closed" and "open_over_power" in cmps["breaker"]["options"]
    assert "device_class" not in cmps["supplier_index"]  # a plain number
    assert {p.quantity for p in STATE_POINTS} <= set(cmps)


def test_the_mqtt_service_announces_the_drivers_enumerated_points(tmp_path: Path) -> None:
    pts = tuple(state_points(DEVICE) + points(DEVICE, ["PAPP", "HCHC"]))

    class Drivers:
        def drivers_info(self) -> dict[str, DriverInfo]:
            return {"linky": DriverInfo("linky", "tic", True, "running", pts)}

    config = Config(gateway=GatewaySection(id="gw-1", site="site-a", state_dir=tmp_path, runtime_dir=tmp_path),
                    mqtt=MqttSection(enabled=True, host="127.0.0.1"))
    ctx = ServiceContext(name="mqtt", config=lambda: config, hub=Hub(), clock=SystemClock(assume_synced=True),
                         outbox=None, drivers=Drivers(), notice=lambda item: None, heartbeat=lambda: None,
                         add_command=lambda name, handler: None)
    service = MqttService(ctx)
    specs, owner = service._devices()
    assert specs[DEVICE] == {}  # declared but not reported yet: nothing announced that would wait forever
    st = SystemClock(assume_synced=True).now()
    service.publisher.on_readings([Reading.at(st, p.key, 0.0, p.unit) for p in pts])
    specs, owner = service._devices()
    assert owner[DEVICE] == "linky"
    assert specs[DEVICE]["tempo_today"].states == ("blue", "white", "red", "unknown")
    assert specs[DEVICE]["tempo_today"].expire_after_s  # the service's expiry is kept beside the states
    _, doc = device_config(T, DEVICE, specs[DEVICE], model="tic")
    assert doc["cmps"]["tempo_today"]["device_class"] == "enum"
    assert doc["cmps"]["energy_hc"]["state_class"] == "total_increasing"
