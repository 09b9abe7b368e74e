"""Availability follows each device's own schedule, and ``status`` and MQTT agree on "online".

An M-Bus meter on its default 900 s readout used to go ``offline`` on MQTT
120 s after each read while ``status`` called it online. The unit tests use a
fake clock; one test runs the real MQTT service against mosquitto with the
publisher's clock moved forward.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

import tests.mosquitto as broker_helpers
from tests.mosquitto import Collector, Mosquitto
from tests.test_mqtt_service import BASE, Harness
from zaas_edge.config_model import Config
from zaas_edge.health import SCHEDULE_FACTOR, DeviceHealth, device_online, quiet_limit_s
from zaas_edge.model import Point, Reading
from zaas_edge.mqtt.schedule import schedules_of
from zaas_edge.service import DriverInfo

mosquitto = broker_helpers.mosquitto  # the fixture

MBUS = {"id": "mbus", "type": "mbus", "port": "/dev/ttyUSB0", "meters": [{"id": "heat-1", "address": 5}]}


def test_an_mbus_meter_on_its_default_interval_stays_online_between_readouts() -> None:
    limits = schedules_of([MBUS], 120.0)
    assert limits.limit("heat-1", "mbus") == SCHEDULE_FACTOR * 900  # the meter's default readout interval
    health = DeviceHealth("heat-1", now=0.0)
    health.success(0.0, 0.4)
    for quiet in (121.0, 600.0, 899.0, 1800.0):  # between two readouts, and one readout missed
        assert health.status(quiet).online is True
        assert device_online(health.online, quiet, limits.limit("heat-1", "mbus")) is True
    assert device_online(health.online, 2251.0, limits.limit("heat-1", "mbus")) is False  # two missed and more
    for t in (900.0, 1800.0, 2700.0):
        health.failure(t, "no answer")
    assert health.online is False  # the driver's verdict wins, whatever the schedule says
    assert device_online(health.online, 1.0, limits.limit("heat-1", "mbus")) is False


def test_schedules_of_every_bus() -> None:
    drivers = [
        MBUS | {"meters": [{"id": "heat-1", "address": 5}, {"id": "water-1", "address": 6, "interval_s": 60}]},
        {"id": "line", "type": "modbus", "devices": [
            {"id": "fast", "unit": 1, "interval_fast_s": 2, "interval_slow_s": 600},
            {"id": "slow", "unit": 2, "points": {"energy": {"interval_s": 900}}},
            {"id": "plain", "unit": 3}]},
        {"id": "lora", "type": "lora", "offline_after_s": 7200},
        {"id": "ble", "type": "ble", "devices": [{"id": "tag", "mac": "AA:BB:CC:DD:EE:FF", "offline_after_s": 30}]},
        {"id": "system", "type": "system", "interval_s": 300},
    ]
    s = schedules_of(drivers, 120.0)
    assert s.limit("heat-1") == 2250 and s.limit("water-1") == 150
    assert s.limit("fast") == 120 and s.limit("slow") == 2250 and s.limit("plain") == 120
    assert s.limit("water-7", "lora") == 7200 and s.limit("tag") == 120 and s.limit("unknown", "ble") == 3600
    assert s.limit("system") == 750 and s.limit("ghost") == 120


@given(st.lists(st.dictionaries(st.sampled_from(["id", "type", "meters", "devices", "interval_s",
                                                 "offline_after_s", "points"]),
                                st.one_of(st.none(), st.booleans(), st.integers(-5, 10_000), st.text(max_size=5),
                                          st.sampled_from(["mbus", "modbus", "lora", "ble", "system"]),
                                          st.lists(st.dictionaries(st.sampled_from(["id", "interval_s",
                                                                                    "interval_fast_s"]),
                                                                   st.one_of(st.text(max_size=3),
                                                                             st.floats(-1, 1e5),
                                                                             st.none())), max_size=3))),
                max_size=4), st.floats(1, 86_400))
def test_schedules_of_garbage_never_crashes_and_never_goes_below_the_configured_timeout(drivers, configured) -> None:
    s = schedules_of(drivers, configured)
    assert all(v >= configured for v in s.devices.values())
    assert all(v >= configured for v in s.drivers.values())


@given(st.floats(1, 86_400), st.one_of(st.none(), st.floats(0.1, 86_400)))
def test_quiet_limit_is_the_larger_of_the_configured_timeout_and_the_schedule(configured, interval) -> None:
    limit = quiet_limit_s(configured, interval)
    assert limit >= configured and (interval is None or limit >= SCHEDULE_FACTOR * interval)


async def test_the_mqtt_service_keeps_a_900_s_mbus_meter_online_between_readouts(tmp_path: Path,
                                                                                 mosquitto: Mosquitto) -> None:
    h = Harness(tmp_path, mosquitto, availability_timeout_s=120)
    h.config = Config(gateway=h.config.gateway, mqtt=h.config.mqtt, drivers=[MBUS])
    h.drivers.info = {"mbus": DriverInfo("mbus", "mbus", True, "running", (Point("heat-1", "energy", "kWh", 0.01),))}
    offset = [0.0]
    h.service.publisher.mono = lambda: time.monotonic() + offset[0]
    rounds = [0]
    refresh = h.service._refresh_availability

    async def counted(conn, *, force: bool = False) -> None:  # noqa: ANN001 - the service's connection
        rounds[0] += 1
        await refresh(conn, force=force)

    h.service._refresh_availability = counted  # type: ignore[method-assign]
    topic = f"{BASE}/device/heat-1/availability"
    await h.start()
    try:
        async with Collector(mosquitto, f"{BASE}/device/heat-1/#", "homeassistant/device/+/config") as sub:
            st_ = h.clock.now()
            h.hub.readings([Reading.at(st_, "heat-1/energy", 8512.34, "kWh")])
            assert await sub.wait_for(topic, lambda p: p == b"online") == b"online"
            disco = json.loads(await sub.wait_for("homeassistant/device/zaas_site-a_gw-1_heat-1/config"))
            assert disco["cmps"]["energy"]["expire_after"] >= 2250  # HA keeps the value between readouts too

            offset[0] = 600.0  # five times the configured 120 s, well within the meter's schedule
            seen = rounds[0]
            await h.until(lambda: rounds[0] >= seen + 2)
            states = [p for t, p, _ in sub.messages if t == topic]  # offline (retained) until the first read
            assert states[states.index(b"online"):] == [b"online"]
            assert h.service._availability["heat-1"] is True

            offset[0] = 2300.0  # more than two readouts missed: offline
            assert await sub.wait_for(topic, lambda p: p == b"offline") == b"offline"
    finally:
        await h.stop()
