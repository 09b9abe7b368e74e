"""The simulated building: the meter's power follows the relays and the charger, through the real driver."""

from __future__ import annotations

import pytest

from hil.evcharger_sim import VOLTAGE
from hil.modbus_harness import DriverRun, bus_options
from hil.shed_plant import Plant, PlantLoad

DEVICES = [{"id": "main", "unit": 1, "profile": "eastron-sdm630"},
           {"id": "rm", "unit": 2, "profile": "waveshare-relay-8ch"},
           {"id": "ev", "unit": 3, "profile": "heidelberg-energy-control"}]


async def test_the_meter_follows_the_relays_and_the_charger() -> None:
    plant = Plant(base_w=3000, on=["water-heater", "dryer"])
    plant.charger.plug(phases=1)
    async with await plant.serve_tcp() as srv:
        async with DriverRun(bus_options(srv, DEVICES)) as run:
            await run.driver.poll_now()
            ev_w = 16 * VOLTAGE
            assert run.latest("main/power").value == pytest.approx(3000 + 3000 + 2500 + ev_w)
            assert run.latest("main/power_l1").value == pytest.approx(1000 + 3000 + 2500 / 3 + ev_w)
            assert run.latest("rm/relay_1").value == 1.0 and run.latest("rm/relay_2").value == 0.0

            assert await run.driver.write("rm/relay_1", 0) == 0.0  # shed the water heater
            await run.driver.poll_now()
            assert run.latest("main/power").value == pytest.approx(3000 + 2500 + ev_w)
            assert run.latest("main/power_l1").value == pytest.approx(1000 + 2500 / 3 + ev_w)

            assert await run.driver.write("ev/current_limit", 6) == pytest.approx(6)  # throttle the car
            await run.driver.poll_now()
            assert run.latest("main/power").value == pytest.approx(3000 + 2500 + 6 * VOLTAGE)
            assert run.latest("ev/power").value == pytest.approx(6 * VOLTAGE)

            assert await run.driver.write("rm/relay_2", 1) == 1.0  # restore a heater
            await run.driver.poll_now()
            assert run.latest("main/power_l2").value == pytest.approx(1000 + 2000 + 2500 / 3)
    # what the benchmark times: each reading of the total power, when it left
    powers = [r.power_w for r in plant.meter_reads]
    assert powers[0] == pytest.approx(3000 + 3000 + 2500 + 16 * VOLTAGE)
    assert powers[-1] == pytest.approx(3000 + 2000 + 2500 + 6 * VOLTAGE)
    times = [r.t for r in plant.meter_reads]
    assert times == sorted(times)


def test_a_load_follows_its_relay_after_its_latency() -> None:
    now = [100.0]
    plant = Plant(base_w=0, loads=[PlantLoad("slow", 1, 1000.0, latency_s=2.0)], on=["slow"],
                  charger_unit=None, clock=lambda: now[0])
    assert plant.power_w() == pytest.approx(1000)
    plant.relays.write(plant.relays.profile.table_of(plant.relays.profile.point("relay_1")), 0, [0])
    now[0] += 1.9
    assert plant.power_w() == pytest.approx(1000)
    now[0] += 0.2
    assert plant.power_w() == 0


def test_a_disobedient_relay_keeps_its_load_on() -> None:
    plant = Plant(base_w=0, on=["dryer"], charger_unit=None)
    plant.relays.disobey.add(4)
    plant.relays.write(plant.relays.profile.table_of(plant.relays.profile.point("relay_4")), 3, [0])
    assert plant.power_w() == pytest.approx(2500)
