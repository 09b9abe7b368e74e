"""The alarm rules over recorded history: a leak and a stale meter found in a replayed night,
and a consumption spike found against the baseline the replay learns from its own earlier weeks."""

from __future__ import annotations

from zaas_edge.alarms.replay import replay
from zaas_edge.model import Reading
from zaas_edge.rules.alarms import AlarmsSection

T0 = 1_800_000_000 - 1_800_000_000 % 3600


def _r(point: str, value: float, t: float) -> Reading:
    return Reading(point, value, "m3", int((T0 + t) * 1e9), 0, "b", True)


def test_a_replayed_night_finds_the_hidden_leak_and_the_meter_that_stopped() -> None:
    section = AlarmsSection.model_validate({"rules": [
        {"id": "night-flow", "kind": "leak", "mode": "flow", "points": ["water/volume"], "window_s": 3 * 3600,
         "sample_s": 900},
        {"id": "dark", "kind": "stale", "points": ["water/volume"], "after_s": 1800}]})
    history = [_r("water/volume", 10 + 0.01 * i, i * 300) for i in range(5 * 12)]  # 5 h, never stopping
    out = [(t - T0, x.alarm_id, x.active) for t, x in replay(section, history, until_s=T0 + 7 * 3600)]
    assert [(a, up) for _, a, up in out] == [("rule.night-flow.water.volume", True),
                                             ("rule.dark.water.volume", True)]
    assert 3 * 3600 <= out[0][0] <= 3 * 3600 + 900
    assert out[1][0] == 59 * 300 + 1800 + 60  # the first tick past the last reading plus 30 min


def test_a_consumption_spike_against_the_weeks_the_replay_has_seen() -> None:
    section = AlarmsSection.model_validate({"baseline_weeks": 2, "rules": [
        {"id": "spike", "kind": "consumption", "points": ["main/energy"], "baseline_ratio": 2.0}]})
    history, index = [], 0.0
    for h in range(3 * 168):
        for k in range(4):
            index += (40 if h == 2 * 168 + 100 else 10) / 4  # one hour of the third week at 4x
            history.append(Reading("main/energy", index, "kWh", int((T0 + h * 3600 + k * 900) * 1e9), 0, "b", True))
    out = [(int((t - T0) // 3600), x.active) for t, x in replay(section, history, tick_s=900)]
    assert out == [(2 * 168 + 100, True), (2 * 168 + 102, False)]
