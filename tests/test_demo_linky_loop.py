"""The closed loop through the Linky: what the relays and the charger switch is what the TIC reports.

In process with fake clocks: the plant (``hil.shed_plant``) feeds a three-phase
standard-mode Linky (``hil.linky_sim.LinkyMeter``); a shed written to the relay
module as the Modbus driver writes it lowers the TIC's ``SINSTS`` and
``SINSTS1..3``; a shed that comes too late lets the meter's breaking filter
trip, and then the building's own meter reads nothing until the breaker is
re-armed. On a time scale the meter's clock runs fast but the filter keeps
real seconds.
"""

from __future__ import annotations

import pytest
from zaas_edge.drivers.modbus.decode import decode_raw
from zaas_edge.drivers.modbus.plan import Table
from zaas_edge.drivers.tic import Mode

from hil.linky_meter import MeterConfig
from hil.linky_sim import LinkyMeter
from hil.linky_tariff import Contract
from hil.shed_plant import DEFAULT_LOADS, Plant, office_day_load
from hil.timescale import TimeScale

WALL0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC


class Clocks:
    """The plant's monotonic clock and the wall clock, moved together by the test."""

    def __init__(self) -> None:
        self.mono, self.wall = 1000.0, WALL0

    def step(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


def building(clocks: Clocks, scale: TimeScale | None = None, *, stride: int = 1) -> tuple[Plant, LinkyMeter]:
    plant = Plant(base_w=9000.0, on=[ld.id for ld in DEFAULT_LOADS], charger_unit=None, clock=lambda: clocks.mono)
    meter_clock = (scale or TimeScale(1.0, WALL0, WALL0)).clock(lambda: clocks.wall)
    linky = LinkyMeter(MeterConfig(mode=Mode.STANDARD, phases=3, contract=Contract.TEMPO, pref_kva=12,
                                   breaker_stride=stride), clock=meter_clock)
    plant.feed_linky(linky, scale, wall=lambda: clocks.wall)
    return plant, linky


def tic(linky: LinkyMeter) -> dict[str, str]:
    return {g.label: g.data for g in linky.groups()}


def shed(plant: Plant, channel: int) -> None:
    plant.relays.write(Table.COILS, channel - 1, [0])  # what the driver's modbus_coil actuator writes


def board_power(plant: Plant) -> float:
    pt = plant.meter.profile.point("power")
    spec = plant.meter.profile.register_spec(pt)
    regs = plant.meter.read(Table.INPUT, pt.address, 2)
    return float(decode_raw(regs, spec.dtype, spec.order)) * spec.scale


def test_the_linky_reports_the_plant_phase_by_phase_and_a_shed_lowers_it() -> None:
    clocks = Clocks()
    plant, linky = building(clocks)
    clocks.step(5)
    # base 3000 VA per phase; water heater 3000 on L1, heaters 2000 on L2 and L3, dryer 2500 over all three
    groups = tic(linky)
    assert [int(groups[f"SINSTS{i}"]) for i in (1, 2, 3)] == [6833, 5833, 5833]
    assert round(board_power(plant)) == 18500
    assert int(groups["SINSTS"]) == 18499  # the sum of the phases, each rounded to a VA as the meter does
    shed(plant, 1)  # the water heater
    shed(plant, 4)  # the dryer
    clocks.step(2)
    groups = tic(linky)
    assert [int(groups[f"SINSTS{i}"]) for i in (1, 2, 3)] == [3000, 5000, 5000]
    assert int(groups["SINSTS"]) == 13000 == round(board_power(plant))


def test_an_early_shed_keeps_the_breaker_closed_and_a_late_one_lets_it_trip() -> None:
    early, late = Clocks(), Clocks()
    (p1, l1), (p2, l2) = building(early), building(late)
    for clocks in (early, late):
        clocks.step(30)  # L1 at 1.7 x PCOUP/3 for 30 s: the filter climbs but stays under its trip level
    assert not l1.state.breaker.open and not l2.state.breaker.open
    shed(p1, 1)
    shed(p1, 4)  # L1 back to 0.75 x, L2 and L3 at 1.25 x: tolerated for ever
    for _ in range(60):
        early.step(10)
        late.step(10)
        tic(l1)
        tic(l2)
    assert not l1.state.breaker.open and l1.state.breaker.trips == 0 and board_power(p1) == pytest.approx(13000)
    # No shed: the meter opened its breaker (about 108 s at 1.7 x) and the building went dark.
    assert l2.state.breaker.open and l2.state.breaker.trips == 1
    groups = tic(l2)
    assert int(groups["SINSTS"]) == 0 and int(groups["STGE"], 16) >> 1 & 0b111 == 1  # open on over-power
    assert board_power(p2) == 0.0 and not p2.supply_on()
    # The shed arrives, someone re-arms the breaker: the supply is back at what is left on.
    for ch in (1, 4):
        shed(p2, ch)
    l2.rearm()
    late.step(3)
    assert p2.supply_on() and int(tic(l2)["SINSTS"]) == 13000 and board_power(p2) == pytest.approx(13000)


def test_on_a_time_scale_the_meter_clock_runs_fast_and_its_breaking_filter_keeps_real_seconds() -> None:
    fast = Clocks()
    scale = TimeScale(120.0, WALL0, WALL0)
    plant, linky = building(fast, scale, stride=120)
    fast.step(30)  # 30 real seconds: an hour on the meter's clock
    state = linky.state
    assert state.t == int(WALL0 + 3600)
    assert not state.breaker.open  # the filter stepped 30 times, not 3600
    # the energy registers integrate scenario time: 18.5 kVA for an hour
    assert sum(state.energy_vas) // 3600 == pytest.approx(18500, rel=0.01)
    fast.step(120)
    assert linky.state.breaker.open and linky.state.breaker.trips == 1  # ~108 real seconds at 1.7 x


def test_the_office_day_follows_scenario_hours() -> None:
    import time

    day = time.mktime((2026, 1, 14, 0, 0, 0, 0, 0, -1))  # a Wednesday, local midnight
    scale = TimeScale(3600.0, day, 0.0)  # an hour a second, origin on the plant's clock
    base = office_day_load(scale)
    assert [base(h) for h in (3, 9, 12, 15, 20)] == [2500.0, 6500.0, 8500.0, 6500.0, 2500.0]
    assert base(24 * 3 + 12) == 2500.0  # Saturday noon: the office is closed


def test_a_tempo_calendar_turns_a_scaled_meter_red_at_six_and_tells_tomorrow_at_eleven() -> None:
    from datetime import date

    from hil.linky_tariff import Colour

    # 2026-01-15 00:00 Paris (23:00 UTC the day before); 1440 scenario seconds a real second.
    start = 1_768_431_600.0
    wall = [start]
    scale = TimeScale(1440.0, start, start)
    linky = LinkyMeter(MeterConfig(mode=Mode.STANDARD, phases=1, contract=Contract.TEMPO, pref_kva=9,
                                   breaker_stride=1440), clock=scale.clock(lambda: wall[0]))
    linky.set_power(3000)
    linky.set_tempo_calendar({date(2026, 1, 15): Colour.WHITE, date(2026, 1, 16): Colour.RED})

    def at(hour: float) -> dict[str, object]:
        wall[0] = start + hour * 3600 / 1440  # real seconds for that many scenario hours
        return linky.snapshot()

    # Before 06:00 the Tempo day is still the 14th's (blue, not in the calendar); tomorrow (the 15th) is known.
    assert (at(5.9)["tempo_today"], at(5.9)["tempo_tomorrow"], at(5.9)["period"]) == ("blue", "white", "BBRHCJB")
    assert (at(6.5)["tempo_today"], at(6.5)["tempo_tomorrow"], at(6.5)["period"]) == ("white", "none", "BBRHPJW")
    assert at(11.5)["tempo_tomorrow"] == "red"
    red = at(24 + 7)  # the 16th, 07:00: a red day's peak hours, 25 scenario hours in 62.5 real seconds
    assert (red["tempo_today"], red["period"]) == ("red", "BBRHPJR")
    energy = red["energy_wh"]
    assert energy["BBRHPJR"] == 3000  # the hour 06:00-07:00 of the red day, at 3 kVA, to the second
    # the white Tempo day runs from the 15th 06:00 to the 16th 06:00: 16 h peak, 8 h off-peak; before, blue
    assert (energy["BBRHPJW"], energy["BBRHCJW"], energy["BBRHCJB"]) == (3000 * 16, 3000 * 8, 3000 * 6)
    tm = tic(linky)
    assert int(tm["STGE"], 16) >> 24 & 0b11 == Colour.RED.value  # the TIC says red too
