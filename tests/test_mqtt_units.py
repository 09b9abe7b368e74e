"""The pure parts of the MQTT service: topics, deadbands, coalescing, payloads,
discovery, command validation and the rate limiter. No broker here."""

from __future__ import annotations

import asyncio
import json
import math
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zaas_edge.errors import PermanentError
from zaas_edge.model import Alarm, Event, Point, Quality, Reading, Severity, Stamp
from zaas_edge.mqtt.commands import MAX_PAYLOAD, CommandHandler
from zaas_edge.mqtt.config import MqttSection
from zaas_edge.mqtt.discovery import PointSpec, component_key, device_config, entity_name, sensor_classes
from zaas_edge.mqtt.payloads import alarm_event_payload, alarm_payload, event_payload, state_payload
from zaas_edge.mqtt.publisher import Gate, Policy, PolicyTable, StatePublisher
from zaas_edge.mqtt.topics import Topics, device_of, safe_level
from zaas_edge.service import DriverInfo
from zaas_edge.shed.overrides import LimitOverrides, LoadOverrides

T = Topics("site-a", "gw-1")
STAMP = Stamp(1_700_000_000_500_000_000, 5_000_000_000, "boot", True)


def r(point: str, value: float, unit: str = "W", q: Quality = Quality.OK, wall_ns: int = STAMP.wall_ns,
      synced: bool = True) -> Reading:
    return Reading(point, value, unit, wall_ns, 0, "boot", synced, q)


# -- topics -----------------------------------------------------------------------------

def test_topics() -> None:
    assert T.status == "zaas/v1/site-a/gw-1/status"
    assert T.device_state("meter-1") == "zaas/v1/site-a/gw-1/device/meter-1/state"
    assert T.availability("m") == "zaas/v1/site-a/gw-1/device/m/availability"
    assert T.alarm("device.m.offline") == "zaas/v1/site-a/gw-1/alarm/device.m.offline"
    assert T.command_target("zaas/v1/site-a/gw-1/cmd/driver/m/set") == "driver/m"
    assert T.command_target("zaas/v1/site-a/gw-1/cmd/driver/m/state") is None
    assert T.command_target("zaas/v1/other/gw-1/cmd/driver/m/set") is None
    assert T.command_state("driver/m") == "zaas/v1/site-a/gw-1/cmd/driver/m/state"
    assert T.discovery("meter-1") == "homeassistant/device/zaas_site-a_gw-1_meter-1/config"
    assert T.discovered_device("homeassistant/device/zaas_site-a_gw-1_x/config") == "zaas_site-a_gw-1_x"
    assert T.discovered_device("homeassistant/device/zaas_site-a_gw-10_x/config") is None
    assert safe_level("a/b+c#") == "a_b_c_" and device_of("meter-1/l1/voltage") == "meter-1"


# -- deadband and intervals ---------------------------------------------------------------

def test_gate_deadband_and_intervals() -> None:
    g = Gate(lambda key: Policy(deadband_pct=1.0, deadband_abs=0.0, min_interval_s=2.0, max_interval_s=60.0))
    assert g.due(r("m/p", 100.0), 0.0) == 0.0  # first value: now
    g.published(r("m/p", 100.0), 0.0)
    assert g.due(r("m/p", 100.5), 10.0) is None  # within 1 %
    assert g.due(r("m/p", 101.5), 10.0) == 10.0  # beyond
    assert g.due(r("m/p", 101.5), 1.0) == 2.0  # beyond, but not before the minimum interval
    assert g.due(r("m/p", 100.0, q=Quality.STALE), 10.0) == 10.0  # quality change
    assert g.due(r("m/p", 100.0), 60.0) == 60.0  # nothing changed for max_interval: heartbeat
    assert g.due(r("m/p", 100.0), 59.9) is None


def test_gate_absolute_deadband_zero_and_nan() -> None:
    g = Gate(lambda key: Policy(deadband_pct=0.0, deadband_abs=0.5, min_interval_s=0.0, max_interval_s=60.0))
    g.published(r("m/p", 0.0), 0.0)
    assert g.due(r("m/p", 0.4), 1.0) is None and g.due(r("m/p", 0.6), 1.0) == 1.0
    g.published(r("m/p", math.nan), 0.0)
    assert g.due(r("m/p", math.nan), 1.0) is None and g.due(r("m/p", 1.0), 1.0) == 1.0


def test_policy_table_first_glob_wins_and_inherits() -> None:
    s = MqttSection.model_validate({"deadband_pct": 2.0, "points": {
        "meter-*/energy*": {"deadband_pct": 0.0, "max_interval_s": 900},
        "meter-*/*": {"min_interval_s": 5.0}}})
    t = PolicyTable.from_section(s)
    assert t("meter-1/energy_import") == Policy(0.0, 0.0, 1.0, 900.0)
    assert t("meter-1/power") == Policy(2.0, 0.0, 5.0, 300.0)
    assert t("system/cpu_usage") == Policy(2.0, 0.0, 1.0, 300.0)


def test_points_table_from_toml_inline_form() -> None:
    doc = tomllib.loads('points = { "meter-*/energy*" = { deadband_pct = 0.0, max_interval_s = 900 } }')
    assert MqttSection.model_validate(doc).points["meter-*/energy*"].max_interval_s == 900


def test_section_rejects_min_above_max() -> None:
    with pytest.raises(ValueError, match="min_interval_s"):
        MqttSection(min_interval_s=10, max_interval_s=5)


class Mono:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


async def test_publisher_coalesces_a_partial_poll_and_sends_a_complete_one_at_once() -> None:
    mono = Mono()
    p = StatePublisher(T, lambda k: Policy(0.5, 0.0, 0.0, 300.0), coalesce_s=0.1, mono=mono)
    p.on_readings([r(f"m/p{i}", float(i)) for i in range(30)])  # a whole poll in one batch
    msgs, nxt = p.take_due()
    assert len(msgs) == 1 and nxt is None
    topic, payload = msgs[0]
    assert topic == T.device_state("m") and len(json.loads(payload)["points"]) == 30
    # Then a register at a time: one change waits for the rest of the poll.
    mono.t += 1
    p.on_readings([r("m/p0", 50.0)])
    assert p.take_due() == ([], pytest.approx(101.1))
    for i in range(1, 30):
        p.on_readings([r(f"m/p{i}", float(i))])  # unchanged: not due by themselves
    msgs, _ = p.take_due()  # every point fresh: no need to wait out the window
    assert len(msgs) == 1 and json.loads(msgs[0][1])["points"]["p0"] == 50
    # Within the deadband: nothing.
    mono.t += 1
    p.on_readings([r("m/p0", 50.1)])
    mono.t += 1
    assert p.take_due() == ([], None)
    assert p.offered == 2


async def test_publisher_keeps_only_the_latest_and_wakes_the_loop() -> None:
    mono = Mono()
    p = StatePublisher(T, lambda k: Policy(0.0, 0.0, 0.0, 300.0), coalesce_s=0.05, mono=mono)
    waiter = asyncio.ensure_future(p.wait(None))
    await asyncio.sleep(0)
    for v in range(1000):
        p.on_readings([r("m/p", float(v)), r("n/p", float(v))])
    await asyncio.wait_for(waiter, 1)  # woken by the readings
    everything = dict(p.everything())
    assert json.loads(everything[T.device_state("m")])["points"] == {"p": 999}
    assert len(everything) == 2 and p.take_due() == ([], None)


# -- payloads ------------------------------------------------------------------------------

def test_state_payload() -> None:
    doc = json.loads(state_payload({
        "power": r("m/power", 1234.0, wall_ns=1_700_000_000_000_000_000),
        "voltage": r("m/voltage", 230.12, "V", Quality.STALE, wall_ns=1_700_000_001_250_000_000),
        "bad": r("m/bad", math.inf, q=Quality.ERROR),
    }))
    assert doc == {"ts": 1700000001.25, "q": "error", "points": {"bad": None, "power": 1234, "voltage": 230.12},
                   "quality": {"bad": "error", "voltage": "stale"}}
    unsynced = json.loads(state_payload({"p": r("m/p", 1.5, synced=False)}))
    assert unsynced["synced"] is False and unsynced["q"] == "ok" and "quality" not in unsynced
    with pytest.raises(ValueError):
        state_payload({})


def test_alarm_and_event_payloads() -> None:
    a = Alarm("device.m.offline", True, "m is silent", "modbus", STAMP, Severity.WARNING, {"tries": 3})
    assert json.loads(alarm_payload(a)) == {"active": True, "severity": "warning", "since": 1700000000.5,
                                            "text": "m is silent"}
    ev = json.loads(alarm_event_payload(a))
    assert ev["kind"] == "alarm.raised" and ev["alarm"] == "device.m.offline" and ev["data"] == {"tries": 3}
    e = Event("load.shed", "boiler shed", "rules", STAMP, Severity.NOTICE, {"load": "boiler", "at": {1}})
    assert json.loads(event_payload(e)) == {"kind": "load.shed", "text": "boiler shed", "source": "rules",
                                            "severity": "notice", "ts": 1700000000.5,
                                            "data": {"load": "boiler", "at": [1]}}


# -- discovery -----------------------------------------------------------------------------

@pytest.mark.parametrize("quantity,unit,expected", [
    ("energy_import", "kWh", {"device_class": "energy", "state_class": "total_increasing",
                              "unit_of_measurement": "kWh"}),
    ("energy", "Wh", {"device_class": "energy", "state_class": "total_increasing", "unit_of_measurement": "Wh"}),
    ("power", "W", {"device_class": "power", "state_class": "measurement", "unit_of_measurement": "W"}),
    ("l1_voltage", "V", {"device_class": "voltage", "state_class": "measurement", "unit_of_measurement": "V"}),
    ("current", "A", {"device_class": "current", "state_class": "measurement", "unit_of_measurement": "A"}),
    ("gas_volume", "m3", {"device_class": "gas", "state_class": "total_increasing", "unit_of_measurement": "m³"}),
    ("water_index", "m3", {"device_class": "water", "state_class": "total_increasing", "unit_of_measurement": "m³"}),
    ("temperature", "degC", {"device_class": "temperature", "state_class": "measurement",
                             "unit_of_measurement": "°C"}),
    ("humidity", "%", {"device_class": "humidity", "state_class": "measurement", "unit_of_measurement": "%"}),
    ("battery", "%", {"device_class": "battery", "state_class": "measurement", "unit_of_measurement": "%"}),
    ("cpu_usage", "%", {"state_class": "measurement", "unit_of_measurement": "%"}),
    ("power_factor", "", {"device_class": "power_factor", "state_class": "measurement"}),
    ("mode", "", {}),
    # Current Home Assistant (sensor/const.py DEVICE_CLASS_UNITS and DEVICE_CLASS_STATE_CLASSES):
    ("flow_temperature_delta", "K", {"device_class": "temperature_delta", "state_class": "measurement",
                                     "unit_of_measurement": "K"}),
    ("energy_reactive_import", "kvarh", {"device_class": "reactive_energy", "state_class": "total_increasing",
                                         "unit_of_measurement": "kvarh"}),
    ("volume", "m3", {"device_class": "volume", "state_class": "total_increasing", "unit_of_measurement": "m³"}),
    ("pulse_count", "count", {"state_class": "total_increasing"}),
    ("energy.s1", "kWh", {"unit_of_measurement": "kWh"}),  # a billing-date snapshot is not offered as energy
    ("volume.s1", "m3", {"device_class": "volume", "unit_of_measurement": "m³"}),
])
def test_sensor_classes(quantity: str, unit: str, expected: dict[str, str]) -> None:
    assert sensor_classes(quantity, unit) == expected


def test_device_config_document() -> None:
    topic, doc = device_config(T, "meter-1", {
        "power": PointSpec("power", "W", "Active power", 600),
        "l1/voltage": PointSpec("l1/voltage", "V"),
        "l1_voltage": PointSpec("l1_voltage", "V"),
    }, model="modbus", expire_after_s=120)
    assert topic == "homeassistant/device/zaas_site-a_gw-1_meter-1/config"
    assert doc["dev"]["ids"] == ["zaas_site-a_gw-1_meter-1"] and doc["dev"]["mdl"] == "modbus"
    assert doc["o"]["name"] == "zaas-edge" and doc["qos"] == 1
    assert doc["state_topic"] == T.device_state("meter-1") and doc["availability_mode"] == "all"
    assert set(doc["cmps"]) == {"power", "l1_voltage", "l1_voltage_"}  # no two entities share a key
    p = doc["cmps"]["power"]
    assert p == {"p": "sensor", "name": "Power", "unique_id": "zaas_site-a_gw-1_meter-1_power",
                 "default_entity_id": "sensor.zaas_site-a_gw-1_meter-1_power",
                 "value_template": "{{ value_json['points']['power'] }}", "device_class": "power",
                 "state_class": "measurement", "unit_of_measurement": "W", "expire_after": 600}
    assert doc["cmps"]["l1_voltage"]["value_template"] == "{{ value_json['points']['l1/voltage'] }}"
    assert doc["cmps"]["l1_voltage"]["expire_after"] == 120
    assert len({c["unique_id"] for c in doc["cmps"].values()}) == 3
    assert component_key("Temp.In") == "temp_in"
    with pytest.raises(ValueError):
        device_config(T, "empty", {})


def test_quote_in_quantity_stays_inside_the_template() -> None:
    _, doc = device_config(T, "d", {"it's": PointSpec("it's", "")})
    assert doc["cmps"]["it_s"]["value_template"] == "{{ value_json['points']['it\\'s'] }}"


# -- commands ------------------------------------------------------------------------------

class Drivers:
    def __init__(self) -> None:
        self.info = {"meter": DriverInfo("meter", "modbus", True, "running", (Point("m", "p", "W"),)),
                     "sys": DriverInfo("sys", "system", True, "running")}
        self.calls: list[tuple[str, object]] = []

    def drivers_info(self):
        return dict(self.info)

    async def poll_now(self, driver_id: str) -> None:
        if driver_id == "sys":
            raise PermanentError("driver 'sys' (system) cannot poll on demand")
        self.calls.append(("poll", driver_id))

    async def set_enabled(self, driver_id: str, enabled: bool) -> None:
        self.calls.append(("enabled", enabled))

    async def write(self, point: str, value: float) -> float:
        raise PermanentError("no")


NOW = 1_700_000_000.0


def handler(loads=(), burst: int = 100) -> CommandHandler:
    return CommandHandler(Drivers(), LoadOverrides(lambda: set(loads)), rate_per_s=1.0, burst=burst)


def body(**kw) -> bytes:
    doc = {"req_id": "r", "ts": NOW, "ttl_s": 10, **kw}
    return json.dumps(doc).encode()


async def run(h: CommandHandler, target: str, payload: bytes, *, retain: bool = False, wall: float = NOW,
              mono: float = 0.0, synced: bool = True):
    return await h.handle(target, payload, retain=retain, wall_s=wall, mono_s=mono, synced=synced)


async def test_command_validation_table() -> None:
    h = handler()
    cases = [
        ("driver/meter", body(action="poll"), {}, True, "ok"),
        ("driver/meter", body(action="poll"), {"retain": True}, False, "retained"),
        ("driver/meter", body(action="poll"), {"wall": NOW + 11}, False, "expired"),
        ("driver/meter", body(action="poll"), {"wall": NOW + 9}, True, "ok"),
        ("driver/meter", body(action="poll"), {"wall": NOW - 61}, False, "future"),
        ("driver/meter", body(action="poll"), {"wall": NOW + 999, "synced": False}, True, "ok"),
        ("driver/meter", body(action="fly"), {}, False, "invalid"),
        ("driver/meter", body(action="poll", extra=1), {}, False, "invalid"),
        ("driver/meter", body(action="poll", ttl_s=0), {}, False, "invalid"),
        ("driver/meter", body(action="poll", ttl_s="10"), {}, False, "invalid"),
        ("driver/meter", json.dumps({"req_id": "r", "ttl_s": 5, "action": "poll"}).encode(), {}, False, "invalid"),
        ("driver/meter", b"[1,2]", {}, False, "malformed"),
        ("driver/meter", b"\xff\xfe", {}, False, "malformed"),
        ("driver/meter", b"[" * 4000, {}, False, "malformed"),
        ("driver/meter", b" " * (MAX_PAYLOAD + 1), {}, False, "oversize"),
        ("driver/ghost", body(action="poll"), {}, False, "unknown_target"),
        ("driver/sys", body(action="poll"), {}, False, "refused"),
        ("heater/x", body(action="poll"), {}, False, "unknown_target"),
        ("driver", body(action="poll"), {}, False, "unknown_target"),
        ("loadshed/boiler", body(mode="shed"), {}, False, "not_configured"),
    ]
    for target, payload, kw, accepted, code in cases:
        ack = await run(h, target, payload, **kw)
        assert (ack.accepted, ack.code) == (accepted, code), (target, payload[:40], kw, ack)
    assert h.counters["accepted"] == 3
    assert sum(h.counters["refused"].values()) == len(cases) - 3
    ack = await run(h, "driver/sys", body(action="poll"))
    assert "cannot poll on demand" in ack.reason and ack.state == {"enabled": True, "state": "running"}
    assert json.loads(ack.payload())["req_id"] == "r"


async def test_loadshed_overrides_seam() -> None:
    h = handler(loads={"boiler"})
    ack = await run(h, "loadshed/boiler", body(mode="shed", ttl_s=60), mono=10.0)
    assert ack.accepted and ack.state == {"mode": "shed", "remaining_s": 60.0}
    assert h.overrides.effective("boiler", 69.0) == "shed"
    assert h.overrides.effective("boiler", 70.0) == "auto"  # the override lapses by itself
    assert (await run(h, "loadshed/pump", body(mode="shed"))).code == "unknown_target"
    await run(h, "loadshed/boiler", body(mode="restore", ttl_s=60), mono=100.0)
    await run(h, "loadshed/boiler", body(mode="auto", ttl_s=1), mono=101.0)
    assert h.overrides.effective("boiler", 102.0) == "auto" and h.overrides.snapshot(102.0) == {}


async def test_rate_limit_is_per_target() -> None:
    h = handler(burst=1)
    assert (await run(h, "driver/meter", body(action="poll"))).accepted
    assert (await run(h, "driver/meter", body(action="poll"))).code == "rate_limited"
    assert (await run(h, "driver/sys", body(action="enable"))).accepted


@settings(max_examples=300, deadline=None)
@given(payload=st.one_of(st.binary(max_size=600), st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(
        ["req_id", "ts", "ttl_s", "action", "mode", "x"]), c, max_size=5), max_leaves=12).map(
        lambda d: json.dumps(d).encode())),
    target=st.sampled_from(["driver/meter", "loadshed/boiler", "driver/../x", "a/b/c", ""]),
    retain=st.booleans())
def test_garbage_is_refused_with_a_reason_never_raised(payload: bytes, target: str, retain: bool) -> None:
    h = handler(loads={"boiler"})
    ack = asyncio.run(run(h, target, payload, retain=retain))
    assert isinstance(ack.accepted, bool) and ack.code and ack.reason
    assert json.loads(ack.payload())["accepted"] is ack.accepted
    if not ack.accepted:
        assert sum(h.counters["refused"].values()) == 1


async def test_a_limit_command_holds_a_configured_limit_and_null_hands_it_back() -> None:
    limits = LimitOverrides(lambda: {"main"})
    h = CommandHandler(Drivers(), LoadOverrides(lambda: {"boiler"}), rate_per_s=1.0, burst=100, limits=limits)
    ack = await run(h, "limit/main", body(limit_w=9000, ttl_s=60))
    assert ack.accepted and ack.state == {"limit_w": 9000.0, "remaining_s": 60.0}
    assert limits.in_force(30.0) == {"main": 9000.0} and limits.in_force(61.0) == {}
    assert h.known("limit/main") and not h.known("limit/other")
    ack = await run(h, "limit/main", body(limit_w=8000, ttl_s=60))
    assert (await run(h, "limit/main", body(limit_w=None, ttl_s=60))).accepted
    assert limits.in_force(0.0) == {}
    refused = [(await run(h, "limit/other", body(limit_w=9000))).code,
               (await run(h, "limit/main", body(limit_w=-5))).code,
               (await run(h, "limit/main", body(limit_w="9000"))).code,
               (await run(h, "limit/main", body())).code,
               (await run(CommandHandler(Drivers(), LoadOverrides(set), rate_per_s=1.0, burst=9),
                          "limit/main", body(limit_w=9000))).code]
    assert refused == ["unknown_target", "invalid", "invalid", "invalid", "not_configured"]


async def test_ack_says_when_the_time_could_not_be_checked() -> None:
    """Accepted while the clock is unsynchronised: ts and ttl_s were not judged, and the ack says it."""
    h = handler()
    late = await run(h, "driver/meter", body(action="poll"), wall=NOW + 999, synced=False)
    doc = json.loads(late.payload())
    assert (doc["accepted"], doc["code"], doc["time_checked"]) == (True, "ok", False)
    assert "time could not be checked" in doc["reason"] and "not synchronised" in doc["reason"]
    checked = json.loads((await run(h, "driver/meter", body(action="poll"), mono=100.0)).payload())
    assert checked["accepted"] and "time_checked" not in checked
    refused = json.loads((await run(h, "driver/meter", body(action="fly"), synced=False)).payload())
    assert not refused["accepted"] and "time_checked" not in refused  # a refusal is not about time


@pytest.mark.parametrize("quantity,name", [
    ("energy_import_l1", "Energy import L1"), ("pf_l2", "Power factor L2"), ("cpu_load_1m", "CPU load 1 min"),
    ("energy.s1", "Energy (billing date 1)"), ("volume.t2", "Volume tariff 2"), ("power.max", "Power maximum"),
    ("volume.min.s2", "Volume minimum (billing date 2)"), ("l1/voltage", "L1 voltage"), ("rssi", "RSSI"),
])
def test_entity_names_are_for_people(quantity: str, name: str) -> None:
    assert entity_name(quantity) == name
