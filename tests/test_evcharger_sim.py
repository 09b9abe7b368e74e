"""The simulated Heidelberg charger: its model, and the real Modbus driver throttling it through the profile."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from zaas_edge.drivers.modbus.plan import Table

from hil.evcharger_sim import VOLTAGE, ChargerModel, EvCharger, accepted_current, state_code
from hil.modbus_harness import DriverRun, bus_options
from hil.modbus_sim import SimBus, serve_rtu_pty, serve_tcp
from zaas_edge.errors import PermanentError

SERVE = {"tcp": serve_tcp, "rtu": serve_rtu_pty}
CHARGER = {"id": "ev", "unit": 3, "profile": "heidelberg-energy-control"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("kind", list(SERVE))
async def test_the_driver_sets_the_current_and_the_power_follows(kind: str) -> None:
    ev = EvCharger(3)
    ev.plug(phases=3)
    async with await SERVE[kind](SimBus([ev])) as srv:
        async with DriverRun(bus_options(srv, [CHARGER])) as run:
            await run.driver.poll_now()
            assert run.latest("ev/charging_state").value == 7  # C2: charging
            assert run.latest("ev/power").value == 16 * VOLTAGE * 3
            assert await run.driver.write("ev/current_limit", 10.0) == pytest.approx(10.0)
            await run.driver.poll_now()
            assert run.latest("ev/power").value == 10 * VOLTAGE * 3
            assert run.latest("ev/current_l1").value == pytest.approx(10.0)
            assert await run.driver.write("ev/current_limit", 0) == 0.0  # pause
            await run.driver.poll_now()
            assert run.latest("ev/charging_state").value == 6 and run.latest("ev/power").value == 0
            assert [(c.quantity, c.asked, c.kept) for c in ev.commands] == [("current_limit", 100, 100),
                                                                            ("current_limit", 0, 0)]


async def test_a_current_outside_the_hardware_range_does_not_read_back() -> None:
    ev = EvCharger(3)
    async with await serve_tcp(SimBus([ev])) as srv:
        async with DriverRun(bus_options(srv, [CHARGER], write_retries=0)) as run:
            with pytest.raises(PermanentError, match="wrote 20, read back 16"):
                await run.driver.write("ev/current_limit", 20)
            with pytest.raises(PermanentError, match="wrote 3, read back 0"):
                await run.driver.write("ev/current_limit", 3)
            with pytest.raises(PermanentError, match="not writable"):
                await run.driver.write("ev/power", 1000)


async def test_the_remote_lock_stops_charging() -> None:
    ev = EvCharger(3)
    ev.plug(phases=1)
    async with await serve_tcp(SimBus([ev])) as srv:
        async with DriverRun(bus_options(srv, [CHARGER])) as run:
            await run.driver.poll_now()
            assert run.latest("ev/power").value == 16 * VOLTAGE
            assert await run.driver.write("ev/remote_lock", 0) == 0.0
            await run.driver.poll_now()
            assert run.latest("ev/charging_state").value == 10 and run.latest("ev/power").value == 0


def test_the_watchdog_falls_back_to_the_failsafe_current_and_recovers() -> None:
    clock = FakeClock()
    ev = EvCharger(3, clock=clock)
    ev.plug(phases=3)
    ev.write(Table.HOLDING, 262, [60])  # fail-safe 6 A
    ev.write(Table.HOLDING, 257, [5000])  # watchdog 5 s
    assert ev.power_w == 16 * VOLTAGE * 3
    clock.now += 4.9
    ev.update(0)
    assert not ev.model.failsafe and ev.power_w == 16 * VOLTAGE * 3
    clock.now += 0.2  # 5.1 s since the last transaction
    ev.update(0)
    assert ev.model.failsafe and ev.power_w == 6 * VOLTAGE * 3
    assert ev.served["power"] == 6 * VOLTAGE * 3
    ev.read(Table.INPUT, 5, 1)  # the gateway is back
    assert not ev.model.failsafe and ev.power_w == 16 * VOLTAGE * 3
    ev.write(Table.HOLDING, 257, [0])  # watchdog off
    clock.now += 3600
    ev.update(0)
    assert not ev.model.failsafe


def test_energy_grows_with_the_power() -> None:
    clock = FakeClock()
    ev = EvCharger(3, clock=clock)
    ev.plug(phases=3)
    ev.write(Table.HOLDING, 257, [0])
    clock.now += 3600
    ev.update(0)
    assert ev.served["energy_import"] == pytest.approx(16 * VOLTAGE * 3 / 1000, abs=0.001)
    ev.unplug()
    assert ev.served["energy_since_power_on"] == 0 and ev.served["charging_state"] == 3


@given(st.integers(-10, 70_000), st.integers(6, 16), st.integers(6, 32))
def test_the_box_keeps_zero_or_a_current_within_its_hardware_limits(raw: int, lo: int, hi: int) -> None:
    kept = accepted_current(raw, lo, min(max(lo, hi), 32))
    assert kept == 0 or lo * 10 <= kept <= max(lo, hi) * 10
    assert kept <= max(raw, 0)


@given(st.booleans(), st.booleans(), st.floats(0, 32), st.booleans())
def test_state_codes_follow_iec_61851(plugged: bool, requesting: bool, allowed: float, locked: bool) -> None:
    code = state_code(plugged, requesting, allowed, locked)
    if locked:
        assert code == 10
    else:
        assert code in range(2, 8)
        assert (code % 2 == 1) == (allowed > 0)
        assert (code >= 4) == plugged


@given(st.lists(st.tuples(st.sampled_from([257, 258, 259, 260, 261, 262, 300]), st.integers(0, 0xFFFF)),
                max_size=30))
def test_any_register_writes_leave_a_consistent_box(writes: list[tuple[int, int]]) -> None:
    ev = EvCharger(1, model=ChargerModel(plugged=True, requesting=True))
    for address, raw in writes:
        ev.write(Table.HOLDING, address, [raw])
    m = ev.model
    assert m.power_w() == pytest.approx(m.amps() * VOLTAGE * m.car_phases)
    assert m.amps() == 0 or 6 <= m.amps() <= 16
    assert ev.served["power"] == round(m.power_w())
