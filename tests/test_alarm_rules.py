"""The alarm evaluator, rule kind by rule kind: simulated readings in, each alarm raised once and cleared once.

Time is simulated: ``now`` is the monotonic second of the step, and each
reading carries the same second as its wall time (plus an epoch), so an
hour of the simulation is an hour of the wall clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest
from pydantic import ValidationError

from zaas_edge.model import Quality, Reading
from zaas_edge.rules.alarms import (
    AlarmInputs,
    AlarmsSection,
    AlarmState,
    AlarmTransition,
    active_ids,
    evaluate,
    initial_state,
    restore,
    snapshot,
)
from zaas_edge.rules.model import LocalTime

EPOCH = 1_800_000_000  # a Thursday, 08:00 UTC; whole hours from here
T0 = EPOCH - EPOCH % 3600


def cfg(*rules: dict[str, Any], **section: Any) -> AlarmsSection:
    return AlarmsSection.model_validate({"enabled": True, "flap_interval_s": 0, "summary_hold_s": 0,
                                         **section, "rules": list(rules)})


def reading(point: str, value: float, t: float, unit: str = "", quality: Quality = Quality.OK) -> Reading:
    return Reading(point, value, unit, int((T0 + t) * 1e9), int(t * 1e9), "boot", True, quality)


class Sim:
    """Steps the evaluator through simulated time and keeps every transition."""

    def __init__(self, section: AlarmsSection, state: AlarmState | None = None) -> None:
        self.state = state or initial_state(section)
        self.log: list[tuple[float, AlarmTransition]] = []

    def step(self, t: float, readings: Iterable[Reading] = (), *, baselines: Mapping[str, float] | None = None,
             device_alarms: Mapping[str, bool] | None = None, local: LocalTime | None = None
             ) -> list[AlarmTransition]:
        inputs = AlarmInputs(tuple(readings), dict(device_alarms or {}), dict(baselines or {}), T0 + t, local)
        self.state, out = evaluate(self.state, inputs, t)
        self.log += [(t, x) for x in out]
        return out

    def ids(self, active: bool | None = None) -> list[str]:
        return [x.alarm_id for _, x in self.log if active is None or x.active is active]

    def flips(self, alarm: str) -> list[bool]:
        return [x.active for _, x in self.log if x.alarm_id == alarm]


def test_threshold_with_delay_and_hysteresis_raises_once_and_clears_once() -> None:
    sim = Sim(cfg({"id": "freezer", "kind": "threshold", "points": ["room-3/temperature"], "above": -15.0,
                   "hysteresis": 2.0, "delay_s": 60, "severity": "error", "action": "Check the freezer door"}))
    temps = [-20, -14, -13, -12, -12, -12, -14, -16.5, -12, -17.5, -18]
    for i, v in enumerate(temps):
        sim.step(i * 30, [reading("room-3/temperature", v, i * 30, "degC")])
    aid = "rule.freezer.room-3.temperature"
    assert sim.flips(aid) == [True, False]
    (t_up, up), (t_down, down) = sim.log
    assert t_up == 90 and up.value == -12 and up.threshold == -15.0 and up.severity == "error"
    assert up.action == "Check the freezer door" and up.point == "room-3/temperature" and up.device == "room-3"
    assert up.since_s == 30 and "above" in up.text
    assert t_down == 270 and down.value == -17.5  # -16.5 is inside the band: still active


def test_threshold_below_a_delay_long_enough_is_a_dip_that_raises_nothing() -> None:
    sim = Sim(cfg({"id": "p", "kind": "threshold", "points": ["boiler/pressure"], "below": 1.0, "delay_s": 120}))
    for i, v in enumerate([1.5, 0.8, 0.7, 1.4, 0.9, 0.9, 0.9, 0.9, 0.9, 1.2]):
        sim.step(i * 60, [reading("boiler/pressure", v, i * 60, "bar")])
    assert sim.flips("rule.p.boiler.pressure") == [True, False]
    assert sim.log[0][0] == 360  # held from 240 for 120 s; the dip at 60..120 never lasted


def test_rate_difference_and_sum() -> None:
    sim = Sim(cfg({"id": "rise", "kind": "threshold", "derive": "rate", "points": ["tank/level"], "above": 10},
                  {"id": "dt", "kind": "threshold", "derive": "difference",
                   "points": ["heat/flow_temp", "heat/return_temp"], "below": 5, "hysteresis": 1},
                  {"id": "total", "kind": "threshold", "derive": "sum", "points": ["a/power", "b/power"],
                   "above": 1000}))
    sim.step(0, [reading("tank/level", 100, 0), reading("heat/flow_temp", 70, 0), reading("heat/return_temp", 50, 0),
                 reading("a/power", 400, 0), reading("b/power", 500, 0)])
    sim.step(360, [reading("tank/level", 102, 360)])  # 20 per hour
    sim.step(720, [reading("tank/level", 102.5, 720)])  # 5 per hour
    sim.step(800, [reading("heat/return_temp", 66, 800), reading("b/power", 700, 800)])
    sim.step(900, [reading("heat/return_temp", 64.5, 900)])  # 5.5: inside the band
    sim.step(1000, [reading("heat/return_temp", 63, 1000), reading("a/power", 200, 1000)])
    assert sim.flips("rule.rise.tank.level") == [True, False]
    assert sim.flips("rule.dt") == [True, False]
    assert sim.flips("rule.total") == [True, False]
    dt_up = next(x for _, x in sim.log if x.alarm_id == "rule.dt")
    assert dt_up.value == 4 and dt_up.threshold == 5 and dt_up.point is None
    assert [t for t, x in sim.log if x.alarm_id == "rule.dt"] == [800, 1000]


def test_stale_point_raises_when_silent_and_clears_on_a_fresh_reading() -> None:
    sim = Sim(cfg({"id": "st", "kind": "stale", "points": ["meter-1/energy"], "after_s": 300}))
    sim.step(0)  # never heard: counted from the start
    sim.step(200, [reading("meter-1/energy", 1, 200)])
    sim.step(450)
    sim.step(501, [reading("meter-1/energy", 1, 501, quality=Quality.STALE)])  # a repeat is not fresh
    sim.step(502)
    sim.step(700, [reading("meter-1/energy", 2, 700)])
    sim.step(701)
    assert sim.flips("rule.st.meter-1.energy") == [True, False]
    assert [t for t, _ in sim.log] == [501, 700]
    up = sim.log[0][1]
    assert up.since_s == 200 and up.unit == "s" and up.value == 301 and up.threshold == 300  # since last heard


def test_radio_sensor_missing_its_interval() -> None:
    sim = Sim(cfg({"id": "radio", "kind": "silent", "points": ["lora-*/*"], "interval_s": 600, "missed": 2}))
    sim.step(0, [reading("lora-7/temperature", 21, 0), reading("lora-7/battery", 90, 0)])
    sim.step(600, [reading("lora-7/temperature", 21, 600)])
    sim.step(1800)
    sim.step(1801)
    sim.step(2400, [reading("lora-7/battery", 89, 2400)])
    assert sim.flips("rule.radio.lora-7") == [True, False]
    up = sim.log[0][1]
    assert up.device == "lora-7" and up.point is None and up.threshold == 1200


def test_battery_low_defaults() -> None:
    sim = Sim(cfg({"id": "bat", "kind": "battery", "summary_after": 0}))
    for i, v in enumerate([40, 19, 18, 22, 26]):
        sim.step(i, [reading("lora-2/battery", v, i, "%")])
    assert sim.flips("rule.bat.lora-2.battery") == [True, False]
    assert sim.log[0][1].threshold == 20 and sim.log[1][0] == 4


def test_leak_detector() -> None:
    sim = Sim(cfg({"id": "leak", "kind": "leak", "points": ["*/leak"], "severity": "critical",
                   "action": "Close the water valve of the plant room"}))
    for i, v in enumerate([0, 0, 1, 1, 0, 0]):
        sim.step(i * 10, [reading("lora-9/leak", v, i * 10, "bool")])
    assert sim.flips("rule.leak.lora-9.leak") == [True, False]
    assert sim.log[0][1].severity == "critical" and "leak detected" in sim.log[0][1].text


def test_leak_from_a_water_index_that_never_stops_over_the_night() -> None:
    sim = Sim(cfg({"id": "night-flow", "kind": "leak", "mode": "flow", "points": ["water-1/volume"],
                   "window_s": 4 * 3600, "sample_s": 900, "min_flow": 0.001}))
    volume = 100.0
    for minute in range(0, 12 * 60, 5):  # 12 h, a reading every 5 min
        t = minute * 60
        if minute < 60 or minute >= 9 * 60:
            volume += 0.0  # no draw: the first hour, and once the leak is fixed
        else:
            volume += 0.002  # a dripping cistern: 24 L/h, never zero
        sim.step(t, [reading("water-1/volume", volume, t, "m3")])
    assert sim.flips("rule.night-flow.water-1.volume") == [True, False]
    (t_up, up), (t_down, _) = sim.log
    assert 4.5 * 3600 <= t_up <= 5 * 3600  # the last zero flow was seen before 1 h; 4 h later
    assert up.value == pytest.approx(0.024) and up.unit == "m3/h" and "possible hidden leak" in up.text
    assert up.since_s == 2700  # the last time the flow was seen at zero
    assert 9 * 3600 <= t_down <= 9 * 3600 + 1800


def test_abnormal_consumption_against_the_baseline_raises_within_the_hour_and_clears_after_a_normal_hour() -> None:
    sim = Sim(cfg({"id": "spike", "kind": "consumption", "points": ["main/energy"], "baseline_ratio": 2.0,
                   "min_excess": 1.0}))
    energy = 1000.0
    base = {"main/energy": 10.0}  # kWh usually used in this hour: the threshold is 21
    per_hour = [10, 12, 30, 30, 9]
    for hour, use in enumerate(per_hour):
        for k in range(12):  # every 5 min
            t = hour * 3600 + k * 300
            energy += use / 12
            sim.step(t, [reading("main/energy", energy, t, "kWh")], baselines=base)
    sim.step(5 * 3600, [reading("main/energy", energy, 5 * 3600, "kWh")], baselines=base)
    flips = sim.flips("rule.spike.main.energy")
    assert flips == [True, False]
    (t_up, up), (t_down, _down) = sim.log
    assert 2 * 3600 < t_up < 3 * 3600 and up.value > 21 and up.threshold == 21
    assert "usual 10" in up.text
    assert t_down == 5 * 3600  # hour 3 was still high; cleared once hour 4 closed normal


def test_consumption_at_idle_times_from_a_schedule() -> None:
    sim = Sim(cfg({"id": "night", "kind": "consumption", "points": ["main/energy"], "idle_max": 2.0,
                   "idle": [{"start": "22:00", "end": "06:00"}], "summary_after": 0}))
    energy = 0.0
    for hour in range(20, 30):  # 20:00 to 06:00 the next day, 5 kWh an hour all night
        for k in range(4):
            t = (hour - 20) * 3600 + k * 900
            energy += 5 / 4
            local = LocalTime(3 if hour < 24 else 4, (hour % 24) * 60 + k * 15)
            sim.step(t, [reading("main/energy", energy, t, "kWh")], local=local)
    sim.step(10 * 3600, local=LocalTime(4, 6 * 60))
    flips = sim.flips("rule.night.main.energy")
    assert flips == [True, False]
    t_up = sim.log[0][0]
    assert 2 * 3600 <= t_up < 3 * 3600  # within 22:00-23:00
    assert sim.log[1][0] == 10 * 3600  # 06:00: the idle window is over


def test_meter_faults_by_quality_flag_and_driver_alarm() -> None:
    sim = Sim(cfg({"id": "mbus", "kind": "fault", "mode": "quality", "points": ["heat-*/*"]},
                  {"id": "lora-alarm", "kind": "fault", "mode": "flag", "points": ["*/water_flow_alarm"]},
                  {"id": "linky", "kind": "fault", "mode": "alarm", "alarms": ["device.*.breaker_open"],
                   "severity": "critical", "action": "Call the electrician: the meter opened its breaker"}))
    ok, err = Quality.OK, Quality.ERROR
    sim.step(0, [reading("heat-1/energy", 5, 0, quality=ok), reading("heat-1/volume", 1, 0, quality=ok),
                 reading("lora-4/water_flow_alarm", 0, 0)])
    sim.step(10, [reading("heat-1/energy", 5, 10, quality=err), reading("heat-1/volume", 1, 10, quality=err),
                  reading("lora-4/water_flow_alarm", 1, 10)], device_alarms={"device.linky-1.breaker_open": True})
    sim.step(20, [reading("heat-1/energy", 5, 20, quality=err)])
    sim.step(30, [reading("heat-1/energy", 6, 30, quality=ok), reading("lora-4/water_flow_alarm", 0, 30)],
             device_alarms={"device.linky-1.breaker_open": False})
    assert sim.flips("rule.mbus.heat-1") == [True, False]
    assert sim.flips("rule.lora-alarm.lora-4.water_flow_alarm") == [True, False]
    assert sim.flips("rule.linky.device.linky-1.breaker_open") == [True, False]
    assert len(sim.log) == 6


def test_twenty_meters_going_dark_raise_one_summary_alarm() -> None:
    sim = Sim(cfg({"id": "bus", "kind": "stale", "points": ["mbus-*/energy"], "after_s": 60, "summary_after": 5},
                  summary_hold_s=30))
    meters = [f"mbus-{i:02d}/energy" for i in range(20)]
    for t in range(0, 100, 10):
        sim.step(t, [reading(p, 1, t) for p in meters])
    for t in range(100, 300, 5):  # the bus goes dark; each meter's last reading was at 90
        sim.step(t)
    assert sim.ids() == ["rule.bus.summary"]
    up = sim.log[0][1]
    assert up.members == tuple(sorted(meters)) and "20 at once" in up.text
    for t in range(300, 330, 10):  # the bus comes back, meter by meter
        sim.step(t, [reading(p, 2, t) for p in meters[: (t - 290) // 10 * 7]])
    assert sim.ids() == ["rule.bus.summary", "rule.bus.summary"] and sim.flips("rule.bus.summary") == [True, False]
    assert sim.log[-1][0] == 320
    assert active_ids(sim.state) == set()


def test_a_few_points_raise_on_their_own_and_a_late_one_joins_an_active_summary() -> None:
    sim = Sim(cfg({"id": "bus", "kind": "stale", "points": ["m-*/e"], "after_s": 60, "summary_after": 3},
                  summary_hold_s=10))
    sim.step(0, [reading("m-1/e", 1, 0), reading("m-2/e", 1, 0)])
    sim.step(100)
    assert sim.ids() == []  # held 10 s for others
    sim.step(111)
    assert sorted(sim.ids()) == ["rule.bus.m-1.e", "rule.bus.m-2.e"]


def test_flapping_condition_raises_at_most_once_per_interval() -> None:
    sim = Sim(cfg({"id": "f", "kind": "threshold", "points": ["x/v"], "above": 10, "summary_after": 0},
                  flap_interval_s=600))
    for i in range(120):  # flips every 10 s for 20 minutes
        sim.step(i * 10, [reading("x/v", 20 if i % 2 == 0 else 0, i * 10)])
    raises = [t for t, x in sim.log if x.active]
    assert raises == [0, 600]
    assert sim.flips("rule.f.x.v") == [True, False, True, False]


def test_restart_hands_active_alarms_back_without_raising_them_again() -> None:
    section = cfg({"id": "st", "kind": "stale", "points": ["meter-1/energy"], "after_s": 60},
                  {"id": "hot", "kind": "threshold", "points": ["t/v"], "above": 50})
    sim = Sim(section)
    sim.step(0, [reading("t/v", 60, 0)])
    sim.step(100)
    assert sorted(sim.ids(True)) == ["rule.hot.t.v", "rule.st.meter-1.energy"]
    doc = snapshot(sim.state)
    # the daemon restarts: a new state, the active alarms handed back, nothing heard yet
    again = Sim(section, restore(initial_state(section), doc, 5000.0))
    again.step(5000)
    again.step(5100)
    assert again.log == []  # neither raised again nor cleared for want of news
    again.step(5101, [reading("t/v", 20, 5101)])  # the condition ended while down
    again.step(5102, [reading("meter-1/energy", 3, 5102)])
    assert again.ids() == ["rule.hot.t.v", "rule.st.meter-1.energy"] and again.ids(True) == []


def test_restart_clears_the_alarm_of_a_rule_removed_meanwhile() -> None:
    sim = Sim(cfg({"id": "hot", "kind": "threshold", "points": ["t/v"], "above": 50}))
    sim.step(0, [reading("t/v", 60, 0)])
    other = cfg({"id": "cold", "kind": "threshold", "points": ["t/v"], "below": 0})
    again = Sim(other, restore(initial_state(other), snapshot(sim.state), 10.0))
    again.step(10)
    assert [(x.alarm_id, x.active) for _, x in again.log] == [("rule.hot.t.v", False)]
    assert "removed" in again.log[0][1].text


def test_restart_clears_an_alarm_whose_point_the_rule_no_longer_watches() -> None:
    before = cfg({"id": "hot", "kind": "threshold", "points": ["t/v", "t/w"], "above": 50},
                 {"id": "radio", "kind": "silent", "points": ["lora-*/*"], "interval_s": 10})
    sim = Sim(before)
    sim.step(0, [reading("t/v", 60, 0), reading("t/w", 60, 0), reading("lora-1/x", 1, 0)])
    sim.step(100, [reading("t/v", 60, 100), reading("t/w", 60, 100)])
    assert len(sim.ids(True)) == 3
    after = cfg({"id": "hot", "kind": "threshold", "points": ["t/w"], "above": 50},
                {"id": "radio", "kind": "silent", "points": ["ble-*/*"], "interval_s": 10})
    again = Sim(after, restore(initial_state(after), snapshot(sim.state), 200.0))
    again.step(200)
    assert sorted((x.alarm_id, x.active) for _, x in again.log) == [("rule.hot.t.v", False),
                                                                      ("rule.radio.lora-1", False)]
    assert "no longer watched" in again.log[0][1].text


def test_restart_clears_a_summary_whose_members_the_rule_no_longer_watches() -> None:
    before = cfg({"id": "bus", "kind": "stale", "points": ["m-*/e"], "after_s": 10, "summary_after": 2})
    sim = Sim(before)
    sim.step(0, [reading("m-1/e", 1, 0), reading("m-2/e", 1, 0)])
    sim.step(20)
    assert sim.ids(True) == ["rule.bus.summary"]
    after = cfg({"id": "bus", "kind": "stale", "points": ["n-*/e"], "after_s": 10, "summary_after": 2})
    again = Sim(after, restore(initial_state(after), snapshot(sim.state), 100.0))
    again.step(100)
    assert [(x.alarm_id, x.active) for _, x in again.log] == [("rule.bus.summary", False)]


def test_garbage_readings_teach_nothing() -> None:
    sim = Sim(cfg({"id": "hot", "kind": "threshold", "points": ["t/*"], "above": 50}))
    sim.step(0, [reading("t/v", float("nan"), 0), reading("t/v", float("inf"), 0), reading("t/w", 1e308, 0)])
    assert sim.ids() == ["rule.hot.t.w"]
    assert restore(sim.state, {"v": 1, "alarms": {"x": {"rule": 3}}}, 1.0) == sim.state
    assert restore(sim.state, "garbage", 1.0) == sim.state  # type: ignore[arg-type]


@pytest.mark.parametrize("rule, message", [
    ({"id": "a", "kind": "threshold", "points": ["x/y"]}, "needs above, below or both"),
    ({"id": "a", "kind": "threshold", "points": ["x/*", "y/z"], "derive": "sum", "above": 1}, "point keys"),
    ({"id": "a", "kind": "leak", "points": ["x/y"], "mode": "sniff"}, "mode is one of detector, flow"),
    ({"id": "a", "kind": "fault", "mode": "alarm"}, "needs alarms"),
    ({"id": "a", "kind": "consumption", "points": ["x/y"]}, "baseline_ratio"),
    ({"id": "a", "kind": "stale"}, "needs points"),
    ({"id": "a b", "kind": "stale", "points": ["x/y"]}, "pattern"),
])
def test_bad_rules_are_refused_with_the_reason(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        cfg(rule)
