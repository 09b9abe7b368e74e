"""Upload policies and the aggregation core: raw, deadband with heartbeat, window aggregates, counters."""

from __future__ import annotations

import math

import pytest

from zaas_edge.config import load_config  # noqa: F401  (the config model imports the sync section)
from zaas_edge.model import Lane, Quality, Reading, Stamp
from zaas_edge.store import Stored
from zaas_edge.sync.aggregate import Aggregation
from zaas_edge.sync.config import PolicyRule, SyncSection
from zaas_edge.sync.policy import COUNTER_UNITS, PolicySet, UploadPolicy, window_start

S = 1_000_000_000
T0 = 1_700_000_040 * S  # a minute boundary
BOOT = "boot"


def rd(point: str, value: float, t_ns: int, unit: str = "W", quality: Quality = Quality.OK) -> Reading:
    return Reading(point, value, unit, t_ns, t_ns - T0 + S, BOOT, True, quality)


def stream(readings):
    return [Stored(Lane.READING, i + 1, r) for i, r in enumerate(readings)]


def now(t_ns: int) -> Stamp:
    return Stamp(t_ns, t_ns - T0 + S, BOOT, True)


def test_defaults_aggregate_fast_points_and_send_the_last_counter_value():
    pol = PolicySet()
    assert pol.for_point("m1/power", "W") == UploadPolicy("aggregate", 60)
    assert pol.for_point("m1/energy", "kWh") == UploadPolicy("last", 60)
    assert {"kWh", "Wh", "m3"} <= COUNTER_UNITS
    assert T0 % (60 * S) == 0 and window_start(T0 + 59 * S, 60) == T0


def test_rules_match_by_glob_and_unit_first_match_wins():
    rules = [PolicyRule(match="pump-*/*", units=["W"], policy="deadband", deadband=5.0, heartbeat_s=60),
             PolicyRule(match="pump-*/*", policy="raw"),
             PolicyRule(match="*/temp", policy="aggregate", window_s=300)]
    pol = PolicySet(rules)
    assert pol.for_point("pump-1/power", "W") == UploadPolicy("deadband", 60, 5.0, 60)
    assert pol.for_point("pump-1/energy", "kWh") == UploadPolicy("raw", 60)
    assert pol.for_point("room/temp", "degC") == UploadPolicy("aggregate", 300)
    assert pol.for_point("room/hum", "%") == UploadPolicy("aggregate", 60)
    with pytest.raises(ValueError):
        UploadPolicy("sometimes")


def test_sync_section_takes_policy_rules():
    sec = SyncSection(policies=[{"match": "m/*", "policy": "deadband", "deadband": 0.5}], window_s=30)
    assert sec.policies[0].policy == "deadband" and sec.local_window_h == 4.0
    with pytest.raises(ValueError):
        SyncSection(policies=[{"match": "m/*", "policy": "often"}])


def test_window_aggregate_has_avg_min_max_last_count():
    agg = Aggregation(PolicySet(), grace_s=10, resolution={"m/p": 1.0}.get)
    vals = [10.0, 30.0, 20.0, 40.0]
    records, taken = agg.feed(stream([rd("m/p", v, T0 + i * 15 * S) for i, v in enumerate(vals)]))
    assert (records, taken) == ([], 4)
    assert agg.close(now(T0 + 65 * S)) == []  # inside the grace
    assert agg.ack_seq() == 0
    (r,) = agg.close(now(T0 + 70 * S))
    assert (r.kind, r.wall_ns, r.window_s, r.count) == ("agg", T0, 60, 4)
    assert (r.value, r.min, r.max, r.last, r.last_ns) == (25.0, 10.0, 40.0, 40.0, T0 + 45 * S)
    assert r.resolution == 1.0 and r.quality is Quality.OK
    assert agg.ack_seq() == 4


def test_a_window_with_one_reading_goes_up_raw_and_counters_as_their_last_value():
    agg = Aggregation(PolicySet(), grace_s=0)
    agg.feed(stream([rd("slow/t", 21.5, T0 + 3 * S, "degC"),
                     rd("m/e", 100.0, T0 + S, "kWh"), rd("m/e", 100.5, T0 + 31 * S, "kWh")]))
    out = agg.close(now(T0 + 60 * S))
    by = {r.point: r for r in out}
    assert by["slow/t"].kind == "raw" and by["slow/t"].wall_ns == T0 + 3 * S and by["slow/t"].value == 21.5
    assert by["m/e"].kind == "raw" and (by["m/e"].value, by["m/e"].wall_ns) == (100.5, T0 + 31 * S)


def test_mixed_quality_makes_an_estimated_aggregate():
    agg = Aggregation(PolicySet(), grace_s=0)
    agg.feed(stream([rd("m/p", 1.0, T0), rd("m/p", 2.0, T0 + S, quality=Quality.STALE)]))
    (r,) = agg.close(now(T0 + 60 * S))
    assert r.quality is Quality.ESTIMATED


def test_deadband_sends_on_change_quality_change_and_heartbeat():
    rules = [PolicyRule(match="*", policy="deadband", deadband=1.0, heartbeat_s=60)]
    agg = Aggregation(PolicySet(rules))
    values = [(0, 10.0), (1, 10.5), (2, 11.6), (3, 11.0), (70, 11.0), (71, 11.0)]
    recs, _ = agg.feed(stream([rd("m/p", v, T0 + t * S) for t, v in values]
                              + [rd("m/p", 11.0, T0 + 72 * S, quality=Quality.ERROR)]))
    assert [(r.wall_ns - T0) // S for r in recs] == [0, 2, 70, 72]
    assert all(r.kind == "raw" for r in recs)
    assert agg.ack_seq() == 7  # nothing open


def test_raw_policy_sends_everything_at_once():
    agg = Aggregation(PolicySet(default_policy="raw"))
    recs, _ = agg.feed(stream([rd("m/p", float(i), T0 + i * S) for i in range(5)]))
    assert [r.value for r in recs] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_late_reading_makes_a_further_partial_aggregate():
    agg = Aggregation(PolicySet(), grace_s=5)
    agg.feed(stream([rd("m/p", 1.0, T0), rd("m/p", 3.0, T0 + 10 * S)]))
    (first,) = agg.close(now(T0 + 65 * S))
    recs, _ = agg.feed([Stored(Lane.READING, 3, rd("m/p", 8.0, T0 + 20 * S)),
                        Stored(Lane.READING, 4, rd("m/p", 9.0, T0 + 30 * S))])
    (late,) = agg.close(now(T0 + 66 * S))
    assert (first.wall_ns, first.count, first.value) == (T0, 2, 2.0)
    assert (late.wall_ns, late.count, late.value, late.min, late.last) == (T0, 2, 8.5, 8.0, 9.0)
    # Merged as the docs say: count adds, avg weighted, extremes, latest last.
    count = first.count + late.count
    avg = (first.value * first.count + late.value * late.count) / count
    assert (count, avg, min(first.min, late.min), max(first.max, late.max)) == (4, 5.25, 1.0, 9.0)


def test_restart_replays_open_windows_and_skips_what_was_sent():
    rules = [PolicyRule(match="db/*", policy="deadband", deadband=0.5)]
    pol = PolicySet(rules)
    readings = [rd("a/p", 1.0, T0), rd("db/x", 5.0, T0 + S), rd("b/p", 2.0, T0 + 61 * S),
                rd("a/p", 3.0, T0 + 62 * S)]
    agg = Aggregation(pol, grace_s=0)
    sent, _ = agg.feed(stream(readings))
    sent += agg.close(now(T0 + 60 * S))
    assert sorted((r.point, (r.wall_ns - T0) // S) for r in sent) == [("a/p", 0), ("db/x", 1)]
    cursor, state = agg.ack_seq(), agg.snapshot()
    assert cursor == 2  # b/p (seq 3) is still in an open window
    # Restart: the rows after the cursor come again.
    again = Aggregation(pol, grace_s=0, state=state)
    recs, taken = again.feed(stream(readings)[cursor:])
    assert (recs, taken) == ([], 2)
    out = again.close(now(T0 + 121 * S))
    assert sorted((r.point, r.value) for r in out) == [("a/p", 3.0), ("b/p", 2.0)]
    # The deadband memory survived: an unchanged value is not sent again.
    recs, _ = again.feed([Stored(Lane.READING, 5, rd("db/x", 5.2, T0 + 122 * S))])
    assert recs == []


def test_nan_values_do_not_poison_the_state():
    agg = Aggregation(PolicySet(default_policy="deadband"))
    recs, _ = agg.feed(stream([rd("m/p", math.nan, T0, quality=Quality.ERROR), rd("m/p", 1.0, T0 + S)]))
    assert len(recs) == 2
    snap = agg.snapshot()
    assert snap["deadband"]["m/p"][0] == 1.0


def test_a_point_keeps_its_previous_window_open_through_the_grace_and_a_new_unit_apart():
    agg = Aggregation(PolicySet(), grace_s=10)
    rows = stream([rd("m/p", 1.0, T0 + 58 * S), rd("m/p", 3.0, T0 + 59 * S),
                   rd("m/p", 10.0, T0 + 61 * S),  # the next window opens while the first waits out the grace
                   rd("m/p", 5.0, T0 + 62 * S, unit="kW"),  # another unit: a window of its own
                   rd("m/p", 20.0, T0 + 63 * S)])
    assert agg.feed(rows, now(T0 + 64 * S)) == ([], 5)
    assert agg.open_windows == 3 and agg.ack_seq() == 0
    first = agg.close(now(T0 + 70 * S))
    assert [(r.wall_ns, r.value, r.count, r.unit) for r in first] == [(T0, 2.0, 2, "W")]
    assert agg.open_windows == 2 and agg.ack_seq() == 2
    rest = agg.close(now(T0 + 130 * S))
    assert [(r.wall_ns, r.value, r.count, r.unit) for r in rest] == [(T0 + 60 * S, 15.0, 2, "W"),
                                                                    (T0 + 62 * S, 5.0, 1, "kW")]
    assert agg.open_windows == 0 and agg.windows == {} and agg.ack_seq() == 5


def test_resolutions_are_the_drivers_declared_steps_looked_up_by_the_callers_key():
    from types import SimpleNamespace

    from zaas_edge.model import Point
    from zaas_edge.sync.aggregate import _resolutions

    calls = []

    def drivers_info():
        calls.append(1)
        return {"d": SimpleNamespace(points=(Point("m", "v", "V", 0.1), Point("m", "e", "kWh")))}

    lookup = _resolutions(SimpleNamespace(drivers=SimpleNamespace(drivers_info=drivers_info)))
    key = "/".join(["m", "v"])  # a key of the caller's own
    assert lookup(key) == 0.1 and lookup("m/e") is None and len(calls) == 1
    assert lookup(key) == 0.1 and len(calls) == 1
    assert [lookup("x/y") for _ in range(5)] == [None] * 5 and len(calls) == 2  # a miss is remembered
    assert [lookup(f"x/{i}") for i in range(5)] == [None] * 5 and len(calls) == 3  # at most three reads
