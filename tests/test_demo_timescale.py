"""The shared time scale (hil.timescale) and the daemon configuration put on it (hil.scaled)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hil.scaled import scale_config
from hil.timescale import TimeScale, hhmm
from zaas_edge.rules.config import DailyWindow, minute_of_day

factors = st.floats(0.01, 10_000, allow_nan=False, allow_infinity=False)
instants = st.floats(1e9, 4e9, allow_nan=False, allow_infinity=False)


@given(factors, instants, instants, st.floats(-1e7, 1e7, allow_nan=False))
def test_scenario_and_real_instants_round_trip(factor: float, epoch: float, origin: float, dt: float) -> None:
    s = TimeScale(factor, epoch, origin)
    real = origin + dt
    assert s.real_at(s.scenario_at(real)) == pytest.approx(real, abs=1e-3)
    assert s.scenario_at(origin) == epoch and s.real_at(epoch) == origin
    assert s.scenario_s(s.real_s(dt)) == pytest.approx(dt, rel=1e-9, abs=1e-6)


@pytest.mark.parametrize("bad", [0.0, -2.0, float("nan"), float("inf")])
def test_a_factor_that_is_not_a_positive_number_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        TimeScale(bad)


def test_a_scale_moved_to_another_clock_names_the_same_instants() -> None:
    wall = TimeScale(120.0, epoch=1_700_000_000.0, origin=1_800_000_000.0)
    mono = wall.on_clock(now_here=1_800_000_010.0, now_there=55.0)  # read both clocks at one instant
    assert mono.scenario_at(55.0) == wall.scenario_at(1_800_000_010.0) == 1_700_000_000.0 + 1200.0
    ticks = iter([100.0, 101.0])
    clock = wall.on_clock(1_800_000_000.0, 100.0).clock(lambda: next(ticks))
    assert clock() == 1_700_000_000.0 and clock() == 1_700_000_120.0


def test_durations_are_divided_and_kept_above_a_floor() -> None:
    s = TimeScale(120.0)
    assert s.real_s(3600) == 30.0 and s.real_duration(60, 1.0) == 1.0 and s.real_duration(600, 1.0) == 5.0
    assert s.minute_error_s == 7200.0  # a real minute is two scenario hours


def _local(y: int, mo: int, d: int, h: int, mi: int = 0) -> float:
    return time.mktime((y, mo, d, h, mi, 0, 0, 0, -1))


def test_a_scenario_night_maps_to_the_real_minutes_at_which_it_occurs() -> None:
    # Scenario 2026-01-14 20:00 local at real 10:00:00; factor 120: a scenario hour is 30 real seconds.
    origin = _local(2026, 3, 2, 10, 0)
    s = TimeScale(120.0, _local(2026, 1, 14, 20, 0), origin)
    # 22:00-06:00 is 2 h to 10 h after the start: real 10:01:00 to 10:05:00.
    assert s.real_windows("22:00", "06:00", until=origin + 600) == [{"start": "10:01", "end": "10:05"}]
    # The next scenario night (10:13:00 to 10:17:00) is inside a longer run too.
    assert s.real_windows("22:00", "06:00", until=origin + 1200) == [
        {"start": "10:01", "end": "10:05"}, {"start": "10:13", "end": "10:17"}]
    # Widened outward to whole minutes when the scenario window does not fall on one.
    assert s.real_windows("22:10", "23:00", until=origin + 600) == [{"start": "10:01", "end": "10:02"}]
    # Whole days stay whole days; at factor 1 a window is itself.
    assert s.real_windows("00:00", "00:00", until=origin + 600) == [{"start": "00:00", "end": "00:00"}]
    assert TimeScale(1.0, origin, origin).real_windows("22:00", "06:00", origin + 60) == [
        {"start": "22:00", "end": "06:00"}]


def test_a_scenario_weekend_window_applies_on_its_scenario_days_only() -> None:
    origin = _local(2026, 3, 2, 10, 0)
    friday = _local(2026, 1, 16, 0, 0)  # 2026-01-16 is a Friday
    s = TimeScale(1440.0, friday, origin)  # a scenario day per real minute
    # Saturday (5) all day long: scenario 24 h to 48 h after the start, real 10:01 to 10:02.
    assert s.real_windows("08:00", "20:00", until=origin + 240, days=(5,)) == [{"start": "10:01", "end": "10:02"}]


@given(st.floats(2, 3000), st.integers(0, 1439), st.integers(0, 1439), st.floats(0, 86400))
def test_every_mapped_window_is_one_the_daemon_accepts_and_contains_the_scenario_window(
        factor: float, a: int, b: int, offset: float) -> None:
    origin = _local(2026, 3, 2, 9, 0) + offset
    s = TimeScale(factor, _local(2026, 1, 14, 0, 0), origin)
    until = origin + 900
    out = s.real_windows(hhmm(a), hhmm(b), until)
    for w in out:
        DailyWindow(**w)  # valid HH:MM
    if a == b:
        return
    # every real instant at which the scenario is inside its window is inside a mapped window
    for k in range(0, 900, 7):
        real = origin + k
        tm = time.localtime(s.scenario_at(real))
        minute = tm.tm_hour * 60 + tm.tm_min
        inside = (a <= minute < b) if a < b else (minute >= a or minute < b)
        if inside:
            rt = time.localtime(real)
            assert any(DailyWindow(**w).covers(rt.tm_wday, rt.tm_hour * 60 + rt.tm_min) for w in out), (w, k)


def _doc() -> dict:
    return {
        "gateway": {"id": "gw"},
        "drivers": [
            {"id": "sb", "type": "modbus", "devices": [{"id": "m", "unit": 1, "interval_fast_s": 2.0,
                                                        "interval_slow_s": 600.0}]},
            {"id": "mbus", "type": "mbus", "meters": [{"id": "w", "address": 6, "interval_s": 900.0}, {"id": "h"}]},
            {"id": "system", "type": "system", "interval_s": 2},
        ],
        "alarms": {"enabled": True, "rules": [
            {"id": "leak", "kind": "leak", "mode": "flow", "points": ["w/volume"], "window_s": 14400.0,
             "min_flow": 0.01},
            {"id": "surge", "kind": "threshold", "derive": "rate", "points": ["w/volume"], "above": 2.0},
            {"id": "idle", "kind": "consumption", "points": ["e/energy"], "idle_max": 5.0,
             "idle": [{"start": "22:00", "end": "06:00"}, {"start": "00:00", "end": "00:00", "days": [5, 6]}]},
        ]},
        "sync": {"enabled": True, "window_s": 60, "policies": [{"points": ["*"], "window_s": 900}]},
        "shedding": {"enabled": True, "limits": [{"id": "site", "points": ["b/power"], "limit_w": 9000,
                                                  "schedule": [{"start": "22:00", "end": "06:00", "limit_w": 6000}]}],
                     "loads": [{"id": "x", "circuit": "site", "power_w": 1000, "dwell_s": 5, "actuator": "a"}]},
    }


def test_the_generated_configuration_is_on_the_scale_and_real_time_control_is_left_alone() -> None:
    origin = _local(2026, 3, 2, 10, 0)
    s = TimeScale(120.0, _local(2026, 1, 14, 20, 0), origin)
    doc = _doc()
    out = scale_config(doc, s, until=origin + 600)
    dev = out["drivers"][0]["devices"][0]
    assert (dev["interval_fast_s"], dev["interval_slow_s"]) == (1.0, 5.0)  # 2 s floored to the daemon's 1 s
    assert [m["interval_s"] for m in out["drivers"][1]["meters"]] == [7.5, 7.5]  # the unset one: 900 s default
    assert out["drivers"][2] == doc["drivers"][2]
    leak, surge, idle = out["alarms"]["rules"]
    # rates from an index are per real hour: 120 scenario hours
    assert leak["min_flow"] == pytest.approx(1.2) and surge["above"] == 240.0 and idle["idle_max"] == 5.0
    assert leak["window_s"] == 120.0 and leak["sample_s"] == 2.5 and leak["delay_s"] == 0.0  # 4 h, 300 s defaults
    assert leak["after_s"] == 7.5 and idle["interval_s"] == 5.0  # 900 s and 600 s defaults
    assert out["alarms"]["flap_interval_s"] == 5.0  # 600 s default
    # the scenario weekend (whole days, Saturday and Sunday) does not occur in ten real minutes from a Wednesday
    assert idle["idle"] == [{"start": "10:01", "end": "10:05"}]
    assert out["sync"]["window_s"] == 1 and out["sync"]["policies"][0]["window_s"] == 8
    assert out["shedding"]["limits"][0]["schedule"] == [{"start": "10:01", "end": "10:05", "limit_w": 6000}]
    assert out["shedding"]["loads"] == doc["shedding"]["loads"]  # dwell stays real: the physical loop
    assert doc["alarms"]["rules"][0]["window_s"] == 14400.0  # the input is not changed
    assert scale_config(doc, TimeScale(1.0), until=origin) == doc
    # Weekend-only idle windows never occur in a ten-minute run from a scenario Wednesday: the rule keeps
    # one window (it needs one), the real minute before the run, which does not come back for a day.
    doc["alarms"]["rules"][2]["idle"] = [{"start": "00:00", "end": "00:00", "days": [5, 6]}]
    assert scale_config(doc, s, until=origin + 600)["alarms"]["rules"][2]["idle"] == [
        {"start": "09:59", "end": "10:00", "days": [0]}]  # 2026-03-02 is a Monday


def test_the_scaled_demo_configuration_is_valid_for_the_daemon(tmp_path) -> None:
    from hil.daemon_harness import ROOT
    from hil.scenario import base_document, to_toml
    from zaas_edge.config import load_config

    base = base_document(ROOT / "config" / "demo.toml")
    now = time.time()
    out = scale_config(base, TimeScale(240.0, now, now), until=now + 300)
    path = tmp_path / "c.toml"
    path.write_text(to_toml(out))
    loaded = load_config(path)
    rules = {r.id: r for r in loaded.config.alarms.rules}
    assert (rules["hidden-leak"].window_s, rules["hidden-leak"].sample_s) == (1.0, 1.0)  # 120 s, 20 s: floored
    assert minute_of_day(rules["idle-consumption"].idle[0].start) == 0
