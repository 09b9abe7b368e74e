"""``zaas-edge shed simulate``: the plant's meter models, the scenario file's errors, the figures, the targets
check, --plot, and the replay of a day recorded in a real store by the real Writer."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from hil import linky_breaker
from zaas_edge.cli import main
from zaas_edge.cli.group import register
from zaas_edge.clock import FakeClock
from zaas_edge.config_model import StoreSection
from zaas_edge.errors import ConfigError
from zaas_edge.model import Reading
from zaas_edge.rules import plant
from zaas_edge.rules.scenario import parse_scenario
from zaas_edge.rules.simulate import percentile, simulate
from zaas_edge.store import Writer

ROOT = Path(__file__).resolve().parent.parent
STEP = ROOT / "hil" / "scenarios" / "shed" / "step.toml"
register()


def run(*args: str) -> tuple[int, str, str]:
    """The command as ``zaas-edge`` runs it: through ``main``, which renders every error as one line."""
    r = CliRunner().invoke(_main, list(args))
    return r.exit_code, r.stdout, r.stderr


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def _main(ctx: click.Context) -> None:
    main(list(ctx.args))


# ---- the plant ----------------------------------------------------------------------------------------------


@given(st.integers(1000, 36000), st.lists(st.integers(0, 200_000), min_size=1, max_size=400))
def test_plant_filter_is_the_simulated_meters_to_the_unit(pcoup: int, powers: list[int]) -> None:
    ms, b = plant.initial_meter(), linky_breaker.closed_breaker(1, 0.0, pcoup)
    for i, va in enumerate(powers):
        ms = plant.meter_step(ms, "linky", float(i), float(i), float(va), pcoup, 600, 10**9)
        b = linky_breaker.step(b, [0 if b.open else va], pcoup)
        assert (ms.open_until is not None) == b.open
        assert ms.trips == b.trips


def test_a_step_to_1_4_pcoup_from_idle_trips_after_the_specs_250_s() -> None:
    ms = plant.initial_meter()
    t = 0
    while ms.trips == 0:
        ms = plant.meter_step(ms, "linky", float(t), float(t), 1.4 * 6000, 6000, 600, 60)
        t += 1
    assert 240 <= t <= 250  # Enedis-NOI-CPT_54E §7 table: 1.4 x -> 250 s; ENERGY.md: 247 s


def test_block_meter_counts_each_block_over_its_average_once() -> None:
    ms = plant.initial_meter()
    wall0 = 1_800_000_000.0  # on a 10-minute boundary
    for t in range(1800):
        # block 1: 300 s at 55 kW then 30 kW, average 42.5 kW (over); block 2: 30 kW; block 3: 40 kW exactly
        w = 55_000 if t < 300 else (30_000 if t < 1200 else 40_000)
        ms = plant.meter_step(ms, "block", float(t), wall0 + t, w, 40_000, 600, 60)
    ms = plant.close_meter(ms, "block", 40_000, 600)
    assert ms.overrun_blocks == 1 and ms.overrun_list == (3_000_000,)


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.95) == 0.0
    assert percentile([float(i) for i in range(1, 101)], 0.95) == 95.0


# ---- scenario files -----------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_garbage_scenario_text_is_a_config_error_never_a_crash(text: str) -> None:
    try:
        parse_scenario(text, "x.toml")
    except ConfigError as exc:
        assert exc.issues and all(i.file == "x.toml" for i in exc.issues)


def test_a_load_without_its_truth_in_the_plant_is_named(tmp_path: Path) -> None:
    text = STEP.read_text().replace('[[plant.loads]]\nid = "towel_rail"\npower_w = 500\n', "")
    with pytest.raises(ConfigError, match="plant.loads has no truth for towel_rail"):
        parse_scenario(text, "s.toml")


def test_bad_scenario_exits_2_with_the_config_error_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(STEP.read_text().replace("limit_w = 12000\n\n[plant.base]", "limit_w = -5\n\n[plant.base]"))
    code, out, err = run("shed", "simulate", "--scenario", str(bad))
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        f"zaas-edge: config error: {bad}: plant.meter.limit_w: Input should be greater than 0"]


def test_a_csv_trace_with_a_bad_row_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "base.csv").write_text("time,watts\n0,1000\n10,lots\n")
    sc = tmp_path / "s.toml"
    sc.write_text(STEP.read_text().replace(
        "[plant.base]\npoints = [[0, 6000], [600, 6000], [601, 9000], [1800, 9000], [1801, 6000], [3600, 6000]]",
        '[plant.base]\ncsv = "base.csv"'))
    with pytest.raises(ConfigError, match="line 3: expected time,watts"):
        from zaas_edge.rules.scenario import load_scenario
        load_scenario(sc)


# ---- figures, targets, output -------------------------------------------------------------------------------


def test_simulation_is_deterministic() -> None:
    from zaas_edge.rules.scenario import load_scenario

    sc, base = load_scenario(STEP)
    a, b = simulate(sc, base), simulate(sc, base)
    assert a.figures == b.figures and a.actions == b.actions


def test_step_figures_and_the_table_for_people() -> None:
    code, out, _ = run("shed", "simulate", "--scenario", str(STEP))
    assert code == 0
    rows = {line[:34].strip(): line[34:].strip() for line in out.splitlines()[3:12]}
    assert rows["trips"] == "0" and rows["overrun blocks"] == "0" and rows["sheds / restores"] == "3 / 3"
    assert "rotation: take a turn" in out and "restore: headroom" in out


def test_a_missed_target_is_named_and_exits_1(tmp_path: Path) -> None:
    sc = tmp_path / "s.toml"
    sc.write_text(STEP.read_text().replace("[targets]\nmin_sheds = 1", "[targets]\nmax_sheds = 0\nalarms = ['x']"))
    code, out, err = run("shed", "simulate", "--scenario", str(sc), "--json")
    assert code == 1
    missed = json.loads(out)["targets_missed"]
    assert missed == ["sheds 3 > 0", "alarms not raised: x"]
    assert "zaas-edge: target missed: sheds 3 > 0" in err


def test_without_a_targets_table_nothing_is_checked(tmp_path: Path) -> None:
    sc = tmp_path / "s.toml"
    sc.write_text(STEP.read_text().replace("[targets]\nmin_sheds = 1", ""))
    code, out, _ = run("shed", "simulate", "--scenario", str(sc), "--json")
    assert code == 0 and json.loads(out)["targets_missed"] == []


def test_scenario_or_history_not_both() -> None:
    code, _, err = run("shed", "simulate")
    assert code == 2 and "either --scenario FILE or --from TIME" in err


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="--plot needs matplotlib (pip install matplotlib)")
    png = tmp_path / "step.png"
    code, _, err = run("shed", "simulate", "--scenario", str(STEP), "--plot", str(png))
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- history replay -----------------------------------------------------------------------------------------

DAY0 = datetime(2026, 1, 14, tzinfo=UTC)
NS = 1_000_000_000


def _recorded_w(t: int) -> float:
    """A house recorded with its loads running: 5 kW, 10 kW from 18:00 to 20:00 (over a 9 kW limit)."""
    return 10_000.0 if 18 * 3600 <= t < 20 * 3600 else 5_000.0


async def _fill(path: Path) -> None:
    w0 = int(DAY0.timestamp()) * NS
    async with Writer(StoreSection(flush_interval_ms=20), path, FakeClock()) as writer:
        for hour in range(24):
            if hour == 3:  # the meter was unplugged from 03:00 to 04:00
                continue
            writer.submit([Reading("house/power", _recorded_w(t), "W", w0 + t * NS, t * NS, "boot-1", True)
                           for t in range(hour * 3600, (hour + 1) * 3600, 5)])
            await writer.drain()


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"""
[gateway]
state_dir = "{tmp_path}"

[shedding]

[[shedding.limits]]
id = "house"
points = ["house/power"]
limit_w = 9000

[[shedding.loads]]
id = "water_heater"
circuit = "house"
power_w = 3000

[[shedding.loads]]
id = "heater"
circuit = "house"
power_w = 2000
priority = 5
""")
    return cfg


def test_a_recorded_day_replays_with_the_shed_loads_taken_off(tmp_path: Path) -> None:
    asyncio.run(_fill(tmp_path / "store.sqlite"))
    cfg = _config(tmp_path)
    code, out, err = run("-c", str(cfg), "shed", "simulate", "--from", "2026-01-14T00:00:00",
                         "--to", "2026-01-15T00:00:00", "--json")
    assert code == 0, err
    got = json.loads(out)
    assert got["scenario"] == "history 2026-01-14T00:00:00Z to 2026-01-15T00:00:00Z"
    sheds = [a for a in got["actions"] if a["kind"] == "shed" and a["rule"].startswith("instant")]
    # the evening peak: the water heater (priority 0) goes within its dwell; after its max_off (1 h) the
    # comfort guard brings it back and the heater takes its place for the second hour
    assert [a["load"] for a in sheds] == ["water_heater", "heater"]
    assert 18 * 3600 <= sheds[0]["t"] <= 18 * 3600 + 15
    assert 19 * 3600 <= sheds[1]["t"] <= 19 * 3600 + 30
    assert got["comfort_violations"] == 0
    assert got["trips"] == 0 and got["sheds"] >= 1
    # the meter's hour off: both loads to their safe state (off), the alarm raised and cleared
    stale = [a for a in got["actions"] if a["kind"] == "alarm" and a["code"] == "meter_stale"]
    assert [a["active"] for a in stale] == [True, False]
    # shed energy: the two peak hours of the water heater, plus the loads off while the meter was out
    assert got["shed_energy_wh"] >= 3000 * 2 * 0.9


def test_a_recorded_day_also_reports_what_the_alarm_rules_would_have_raised(tmp_path: Path) -> None:
    """Issue: tune a rule on last month's data before it goes live: [alarms] rules (not even enabled)
    over the same window, beside the shedding figures."""
    asyncio.run(_fill(tmp_path / "store.sqlite"))
    cfg = _config(tmp_path)
    cfg.write_text(cfg.read_text() + """
[alarms]
enabled = false

[[alarms.rules]]
id = "peak"
kind = "threshold"
points = ["house/*"]
above = 9000
delay_s = 60

[[alarms.rules]]
id = "dark"
kind = "stale"
points = ["house/power"]
after_s = 600
""")
    code, out, err = run("-c", str(cfg), "shed", "simulate", "--from", "2026-01-14T00:00:00",
                         "--to", "2026-01-15T00:00:00", "--json")
    assert code == 0, err
    got = [(a["alarm"], a["active"], a["t"]) for a in json.loads(out)["rule_alarms"]]
    # the meter unplugged 03:00-04:00, then the recorded evening peak of 10 kW from 18:00 to 20:00
    assert [(a, up) for a, up, _ in got] == [("rule.dark.house.power", True), ("rule.dark.house.power", False),
                                             ("rule.peak.house.power", True), ("rule.peak.house.power", False)]
    assert 3 * 3600 + 600 <= got[0][2] <= 3 * 3600 + 700 and 18 * 3600 + 60 <= got[2][2] <= 18 * 3600 + 130
    code, text, err = run("-c", str(cfg), "shed", "simulate", "--from", "2026-01-14T00:00:00",
                          "--to", "2026-01-15T00:00:00")
    assert code == 0 and "alarm rules: 2 raised, 2 cleared" in text


def test_history_needs_readings_in_the_window(tmp_path: Path) -> None:
    asyncio.run(_fill(tmp_path / "store.sqlite"))
    code, _, err = run("-c", str(_config(tmp_path)), "shed", "simulate", "--from", "2020-01-01", "--to",
                       "2020-01-02")
    assert code == 2 and "house/power: no readings of this point in the window" in err


# ---- any plant ----------------------------------------------------------------------------------------------

_load = st.fixed_dictionaries({
    "power_w": st.integers(100, 8000), "priority": st.integers(0, 3), "latency_s": st.integers(0, 6),
    "obeys": st.booleans(), "kind": st.sampled_from(["onoff", "onoff", "stages", "ev"]),
    "wants": st.one_of(st.just([]), st.tuples(st.integers(0, 200), st.integers(1, 400)).map(
        lambda ab: [[ab[0], ab[0] + ab[1]]]))})


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["linky", "block", "instant"]), st.integers(3000, 40000), st.integers(0, 30000),
       st.lists(_load, min_size=1, max_size=4), st.booleans())
def test_any_small_plant_runs_to_the_end_with_sane_figures(model: str, limit: int, base: int,
                                                           loads: list[dict[str, object]], outage: bool) -> None:
    lines = [f'name = "any"\nduration_s = 400\n[plant.meter]\nmodel = "{model}"\npoint = "m/p"\n'
             f"limit_w = {limit}\nblock_s = 120\n" + ("outages = [[100, 160]]\n" if outage else ""),
             f"[plant.base]\nwatts = {base}\n"]
    for i, ld_ in enumerate(loads):
        lines.append(f'[[plant.loads]]\nid = "l{i}"\npower_w = {ld_["power_w"]}\nlatency_s = {ld_["latency_s"]}\n'
                     f'obeys = {str(ld_["obeys"]).lower()}\nwants = {ld_["wants"]}\n')
    kind = {"linky": "linky", "block": "block"}.get(model, "instant")
    lines.append(f'[[shedding.limits]]\nid = "main"\npoints = ["m/p"]\nkind = "{kind}"\nlimit_w = {limit}\n'
                 "block_s = 120\n")
    for i, ld_ in enumerate(loads):
        lines.append(f'[[shedding.loads]]\nid = "l{i}"\ncircuit = "main"\nkind = "{ld_["kind"]}"\n'
                     f'power_w = {ld_["power_w"]}\npriority = {ld_["priority"]}\nmin_on_s = 20\nmin_off_s = 20\n'
                     "restore_delay_s = 10\n")
    sc, trace = parse_scenario("\n".join(lines), "any.toml")
    r = simulate(sc, trace)
    f = r.figures
    assert f.trips >= 0 and f.overrun_blocks >= 0 and f.shed_energy_wh >= 0 and f.restore_p95_s >= 0
    assert sum(f.switchings.values()) == sum(1 for a in r.actions if a.action.kind in ("shed", "restore"))
    assert all(0 <= s <= 400 for s in f.shed_s.values())
    assert len(r.series.t) == 400
    if outage:
        assert "meter_stale" in f.alarms


def test_history_takes_relative_times_as_buffer_export_does(tmp_path: Path) -> None:
    asyncio.run(_fill(tmp_path / "store.sqlite"))
    code, _, err = run("-c", str(_config(tmp_path)), "shed", "simulate", "--from", "-2h")
    assert code == 2 and "no readings of this point in the window" in err  # the fixture's day is long past
    code, _, err = run("-c", str(_config(tmp_path)), "shed", "simulate", "--from", "yesterday")
    assert code == 2 and "is not a time" in err


def test_a_heavy_block_keeps_its_load_off_until_the_block_can_take_it() -> None:
    """12 kW for the first half of a 10 kW block, then 6.5 kW: the heater's 3 kW fits the instant limit again
    at once, but back at 360 s the block would end at 10.45 kW; it comes back only once the block can take it."""
    text = """
name = "heavy block"
duration_s = 900
[plant.meter]
model = "block"
point = "m/p"
limit_w = 10000
[plant.base]
points = [[0, 12000], [300, 12000], [301, 6500], [900, 6500]]
[[plant.loads]]
id = "heater"
power_w = 3000
[[shedding.limits]]
id = "main"
points = ["m/p"]
kind = "block"
limit_w = 10000
[[shedding.loads]]
id = "heater"
circuit = "main"
power_w = 3000
"""
    sc, trace = parse_scenario(text, "heavy.toml")
    r = simulate(sc, trace)
    assert r.figures.overrun_blocks == 0
    moves = [(a.t, a.action.kind) for a in r.actions if a.action.kind in ("shed", "restore")]
    assert moves[0][1] == "shed" and moves[0][0] < 10
    assert moves[1][1] == "restore" and 455 <= moves[1][0] <= 600


@given(st.integers(3000, 36000), st.lists(st.tuples(st.integers(0, 30000), st.integers(0, 30000),
                                                    st.integers(0, 30000)), min_size=1, max_size=300))
def test_three_phase_plant_filter_is_the_simulated_meters(pcoup: int, powers: list[tuple[int, int, int]]) -> None:
    ms, b = plant.initial_meter(), linky_breaker.closed_breaker(3, 0.0, pcoup)
    for i, ph in enumerate(powers):
        ms = plant.meter_step(ms, "linky", float(i), float(i), float(sum(ph)), pcoup, 600, 10**9,
                              tuple(float(w) for w in ph))
        b = linky_breaker.step(b, [0, 0, 0] if b.open else list(ph), pcoup)
        assert (ms.open_until is not None) == b.open and ms.trips == b.trips


def test_a_meter_takes_one_point_or_three_phase_points() -> None:
    for meter in ('point = "a"\nphase_points = ["a", "b", "c"]', "", 'phase_points = ["a", "b"]'):
        text = STEP.read_text().replace('point = "main/power"\nlimit_w = 12000\n\n[plant.base]',
                                        f"{meter}\nlimit_w = 12000\n\n[plant.base]")
        with pytest.raises(ConfigError, match="plant.meter"):
            parse_scenario(text, "s.toml")


def test_a_scenario_with_alarm_rules_reports_what_they_raise_and_clear_over_its_meter(tmp_path: Path) -> None:
    text = """
name = "overload alarm"
duration_s = 1200
[plant.meter]
model = "instant"
point = "m/p"
limit_w = 9000
[plant.base]
points = [[0, 5000], [300, 5000], [301, 12000], [900, 12000], [901, 5000], [1200, 5000]]
[[shedding.limits]]
id = "main"
points = ["m/p"]
limit_w = 9000
[alarms]
[[alarms.rules]]
id = "over"
kind = "threshold"
points = ["m/p"]
above = 11000
delay_s = 60
"""
    path = tmp_path / "alarm.toml"
    path.write_text(text)
    code, out, err = run("shed", "simulate", "--scenario", str(path), "--json")
    assert code == 0, err
    got = [(a["alarm"], a["active"], a["t"], a["value"]) for a in json.loads(out)["rule_alarms"]]
    assert [(a, up) for a, up, _, _ in got] == [("rule.over.m.p", True), ("rule.over.m.p", False)]
    assert 361 <= got[0][2] <= 362 and got[0][3] == 12000 and 901 <= got[1][2] <= 902
