"""Scenario files (hil.run.spec), the exactly-once ledger (hil.run.ledger) and the verdict (hil.run.report.judge)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hil.run.ledger import account
from hil.run.report import judge
from hil.run.spec import EVENTS, Expect, Retained, SpecError, duration_s, load_spec, parse_spec

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted((ROOT / "hil" / "scenarios" / "building").glob("*.toml"))
MS = 1_000_000


def test_every_scenario_file_of_the_repository_reads() -> None:
    names = {load_spec(f).name for f in FILES}
    # the targets of issue 17: the day, the outage, the kills, the broker, the meter, the cap, the garbage
    assert {"building-24h", "uplink-2h", "kill-100", "broker-restart", "meter-unplugged", "disk-cap",
            "garbage"} <= names
    kills = load_spec(ROOT / "hil/scenarios/building/kill-100.toml")
    assert kills.kills() == 100 and all(60 <= e.at_s <= 3480 for e in kills.timeline)
    assert [e.at_s for e in kills.timeline] == sorted(e.at_s for e in kills.timeline)


def test_a_scenario_reads_into_values() -> None:
    spec = parse_spec('''
        name = "x"
        duration = "2h"
        scale = 60
        without = ["ble"]
        [clock]
        behind = "1d"
        [[timeline]]
        at = "90m"
        event = "broker_restart"
        down = "5m"
        [[timeline]]
        at = 10
        event = "ntp_sync"
        [expect]
        alarms_raised = ["a"]
        linky_trips = false
        retained = [{ topic = "t", contains = "online" }]
    ''')
    assert spec.duration_s == 7200 and spec.scale == 60 and spec.without == ("ble",) and spec.clock_behind_s == 86400
    assert [(e.at_s, e.kind) for e in spec.timeline] == [(10, "ntp_sync"), (5400, "broker_restart")]
    assert spec.timeline[1].params == {"down": 300.0}
    assert spec.expect == Expect(alarms_raised=("a",), linky_trips=None, retained=(Retained("t", "online"),))


def test_random_kills_are_the_same_for_a_seed_and_differ_across_seeds() -> None:
    text = 'name = "k"\nduration = "1h"\nseed = {}\n[kill_daemon_random]\ncount = 5\n'
    a, b, c = (parse_spec(text.format(s)).timeline for s in (1, 1, 2))
    assert a == b and a != c and len(a) == 5


@pytest.mark.parametrize(("text", "says"), [
    ('name = "x"', "'duration' is required"),
    ('name = "x"\nduration = "1h"\n[[timeline]]\nat = "5m"\nevent = "explode"', "event 'explode' is not one of"),
    ('name = "x"\nduration = "1h"\n[[timeline]]\nat = "2h"\nevent = "uplink_up"', "after the scenario's end"),
    ('name = "x"\nduration = "1h"\n[[timeline]]\nat = "5m"\nevent = "meter_back"', "missing device"),
    ('name = "x"\nduration = "1h"\n[[timeline]]\nat = "5m"\nevent = "uplink_up"\nhow = 1', "unknown parameter how"),
    ('name = "x"\nduration = "1h"\n[[timeline]]\nat = "5m"\nevent = "ntp_sync"', "needs [clock] behind"),
    ('name = "x"\nduration = "1h"\n[expect]\nlots = 0', "expect: unknown key lots"),
    ('name = "x"\nduration = "1h"\nscale = 0', "scale"),
    ('name = "../x"\nduration = "1h"', "a directory name"),
    ('name = "x"\nduration = "soon"', "expected a duration"),
    ("name = ", "not TOML"),
])
def test_a_bad_scenario_file_is_refused_with_the_reason(text: str, says: str) -> None:
    with pytest.raises(SpecError, match="^f.toml: ") as err:
        parse_spec(text, "f.toml")
    assert says in str(err.value)


@given(st.text(max_size=200))
def test_garbage_text_is_a_spec_error_or_a_scenario(text: str) -> None:
    try:
        parse_spec(text)
    except SpecError:
        pass


def test_every_event_has_a_player() -> None:
    import inspect

    from hil.run.runner import RunScenario

    source = inspect.getsource(RunScenario.play)
    assert all(f'"{kind}"' in source for kind in EVENTS)


def test_durations() -> None:
    assert [duration_s(x) for x in ("90s", "15m", "2h", "1d", "250ms", 3, "0")] == [90, 900, 7200, 86400, 0.25, 3, 0]
    assert duration_s("2h30m") == 9000 and duration_s("1m 30s") == 90
    for bad in ("-1s", "1y", "2h-30m", "h", True, None, float("nan")):
        with pytest.raises(SpecError):
            duration_s(bad)


# --- the ledger ------------------------------------------------------------------------------

def _reading(seq: int, point: str, wall_ms: int, synced: bool = True, mono_ms: int = 0) -> dict:
    return {"seq": seq, "point": point, "value": 1.0, "wall_ns": wall_ms * MS + 123, "mono_ns": mono_ms * MS + 7,
            "boot_id": "b1", "synced": synced}


def _record(r: dict, *, corrected_by_ms: int | None = None) -> dict:
    """The central's decoded raw record of a stored reading (times to the millisecond, mono while unsynced)."""
    out = {"point": r["point"], "wall_ns": r["wall_ns"] // MS * MS, "synced": r["synced"], "kind": "raw",
           "corrected": corrected_by_ms is not None}
    if corrected_by_ms is not None:
        out["wall_ns"] += corrected_by_ms * MS
    elif not r["synced"]:
        out["mono_ns"], out["boot_id"] = r["mono_ns"] // MS * MS, r["boot_id"]
    return out


readings = st.lists(st.tuples(st.sampled_from(["m/p", "m/e", "w/v"]), st.integers(1, 10**6)), min_size=1,
                    max_size=40, unique=True).map(lambda xs: [_reading(i + 1, p, t) for i, (p, t) in enumerate(xs)])


@given(readings, st.randoms())
def test_every_reading_delivered_once_in_any_order_is_neither_lost_nor_duplicated(rows: list[dict], rnd) -> None:
    records = [_record(r) for r in rows]
    rnd.shuffle(records)
    ledger = account(rows, records, produced=len(rows))
    assert (ledger.lost, ledger.duplicated, ledger.delivered, ledger.in_store) == (0, 0, len(rows), len(rows))


@given(readings, st.data())
def test_missing_and_doubled_records_are_counted_exactly(rows: list[dict], data: st.DataObject) -> None:
    gone = data.draw(st.sets(st.integers(0, len(rows) - 1)))
    twice = data.draw(st.sets(st.integers(0, len(rows) - 1)))
    records = [_record(r) for i, r in enumerate(rows) if i not in gone]
    records += [_record(rows[i]) for i in twice if i not in gone]
    ledger = account(rows, records, produced=len(rows), dropped=3)
    assert ledger.lost == len(gone) + 3 and ledger.dropped == 3
    assert ledger.duplicated == len(twice - gone)
    assert len(ledger.missing) == min(5, len(gone))


def test_a_reading_committed_twice_at_one_instant_is_expected_twice() -> None:
    # a meter stamping its own values (the Linky's daily maximum) across a restart
    rows = [_reading(1, "linky/max", 5000), _reading(2, "linky/max", 5000)]
    once, twice = [_record(rows[0])], [_record(rows[0]), _record(rows[1])]
    assert (account(rows, twice, produced=2).duplicated, account(rows, twice, produced=2).lost) == (0, 0)
    assert account(rows, once, produced=2).lost == 1
    assert account(rows, twice + [_record(rows[0])], produced=2).duplicated == 1


def test_readings_after_the_end_or_before_the_start_are_not_judged() -> None:
    rows = [_reading(i, "m/p", i) for i in range(1, 11)]
    records = [_record(r) for r in rows[3:7]]  # 1-3: history sent before; 8-10: on their way at the end
    ledger = account(rows, records, produced=10, through=7, after=3)
    assert (ledger.lost, ledger.duplicated) == (0, 0)
    assert account(rows, records, produced=10, through=8, after=3).lost == 1
    assert account(rows, records, produced=10, through=7, after=2).lost == 1


def test_readings_before_synchronisation_match_by_boot_and_monotonic_time_or_by_count_once_corrected() -> None:
    rows = [_reading(1, "m/p", 100, synced=False, mono_ms=1), _reading(2, "m/p", 101, synced=False, mono_ms=2),
            _reading(3, "m/p", 900)]
    exact = [_record(r) for r in rows]
    assert account(rows, exact, produced=3).lost == 0
    corrected = [_record(rows[0], corrected_by_ms=10**9), _record(rows[1], corrected_by_ms=10**9),
                 _record(rows[2])]
    assert account(rows, corrected, produced=3).lost == 0
    assert account(rows, corrected[1:], produced=3).lost == 1


# --- the verdict -----------------------------------------------------------------------------

REPORT = {
    "readings": {"lost": 0, "duplicated": 0, "delivered": 10, "missing": []},
    "drained": True, "linky_trips": 0,
    "alarms": {"raised": ["device.hvac.offline"], "cleared": ["device.hvac.offline"], "active_at_end": []},
    "shed": {"shed": 1, "restore": 1, "modulate": 0},
    "retained": {"t/status": "online"},
    "store": {"cap_reached": False, "counters": {}},
    "daemon": {"restarts": 2, "unexpected_exits": []},
    "timeline": [{"event": "kill_daemon", "at_s": 1.0}, {"event": "kill_daemon", "at_s": 2.0}],
}


def test_a_report_that_holds_its_expectations_passes() -> None:
    expect = Expect(alarms_raised=("device.hvac.offline",), alarms_cleared=("device.hvac.offline",),
                    shed_at_least=1, restore_at_least=1, retained=(Retained("t/status", "online"),))
    assert judge(REPORT, expect, kills=2) == []


@pytest.mark.parametrize(("change", "says"), [
    (lambda r: r["readings"].update(lost=2, missing=["m/p at 5 ms"]), "lost: 2 committed readings"),
    (lambda r: r["readings"].update(duplicated=1), "duplicated: the central holds 1"),
    (lambda r: r["readings"].update(delivered=0), "delivered: 0 readings"),
    (lambda r: r.update(drained=False), "drain: the backlog"),
    (lambda r: r.update(linky_trips=1), "linky: tripped 1 times"),
    (lambda r: r["alarms"].update(raised=[]), "alarm device.hvac.offline was never raised"),
    (lambda r: r["alarms"].update(active_at_end=["device.hvac.offline"]), "was not cleared"),
    (lambda r: r["shed"].update(restore=0), "restore: 0 restores"),
    (lambda r: r.update(retained={}), "nothing retained on t/status"),
    (lambda r: r.update(retained={"t/status": "offline"}), "not containing 'online'"),
    (lambda r: r["daemon"].update(restarts=3, unexpected_exits=[1]), "exited on its own 1 times"),
    (lambda r: r["daemon"].update(restarts=1), "restarted 1 times, expected 2"),
    (lambda r: r["timeline"].append({"event": "garbage", "at_s": 3.0, "error": "no bus"}), "could not be played"),
])
def test_each_missed_expectation_is_named(change, says: str) -> None:
    report = copy.deepcopy(REPORT)
    change(report)
    expect = Expect(alarms_raised=("device.hvac.offline",), alarms_cleared=("device.hvac.offline",),
                    restore_at_least=1, retained=(Retained("t/status", "online"),))
    failed = judge(report, expect, kills=2)
    assert len(failed) == 1 and says in failed[0], failed


# --- the clock launcher and the building's buses ------------------------------------------------

def test_the_clock_state_file_sets_the_offset_and_the_flag_and_its_absence_is_the_true_clock(tmp_path: Path) -> None:
    from hil.run.clockshim import RECHECK_NS, ClockState, write_state

    path = tmp_path / "clock.json"
    state = ClockState(path)
    state.refresh()
    assert (state.offset_ns, state.synced) == (0, True)
    write_state(path, -86400.5, False)
    state._checked -= RECHECK_NS  # noqa: SLF001  (the re-read is rate-limited)
    state.refresh()
    assert (state.offset_ns, state.synced) == (-86_400_500_000_000, False)
    path.write_text("{not json")
    state._checked -= RECHECK_NS  # noqa: SLF001
    state.refresh()
    assert (state.offset_ns, state.synced) == (0, True)


def test_buses_left_out_of_a_building_are_named_and_an_unknown_one_refused() -> None:
    from hil.buildings import DEMO
    from hil.run.runner import without

    small = without(DEMO, ("ble", "lora", "rs485"))
    assert small.ble is None and small.lora is None and [x.id for x in small.modbus] == ["switchboard", "loads"]
    assert small.linky == DEMO.linky and small.mbus == DEMO.mbus
    with pytest.raises(ValueError, match="no bus wifi in building 'demo'"):
        without(DEMO, ("wifi",))
