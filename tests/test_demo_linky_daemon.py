"""The closed loop through the Linky, in the real daemon: its shedding lowers what the TIC reports, and
a building that does not shed trips the meter's breaker.

The scenario runner's plant (base load, four loads on a relay module, a car
charging on the wallbox) feeds a simulated three-phase Linky on a pty; the
daemon reads the Linky with its ``tic`` driver and the plant with its
``modbus`` driver. With a limit on the Linky's apparent power, the engine
sheds until the TIC says the building is under it. With shedding only
deciding (``dry_run``), the meter's breaking filter opens the breaker: the
driver raises ``breaker_open`` and the building's own meter reads nothing.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from hil.buildings import Building, ModbusLine, ModbusMeter, TicMeter
from hil.scenario import Scenario
from zaas_edge.control import ControlClient

LINKY = "linky-031762120855"

BASE = """
[gateway]
id = "gw-loop"
site = "loop"

[log]
level = "info"

[shedding]
enabled = true
dry_run = {dry_run}

[[shedding.limits]]
id = "head"
points = ["{linky}/apparent_power"]
kind = "instant"
limit_w = 12000

[[shedding.loads]]
id = "ev"
circuit = "head"
kind = "ev"
priority = 3
power_w = 11040
min_a = 6
max_a = 16
dwell_s = 1
actuator = "wallbox"
""" + "".join(f"""
[[shedding.loads]]
id = "{load}"
circuit = "head"
priority = {prio}
power_w = {power}
dwell_s = 1
actuator = "relay-{n}"

[[shedding.actuators]]
id = "relay-{n}"
kind = "modbus_coil"
driver = "loads"
point = "relays/relay_{n}"
""" for n, load, prio, power in ((1, "water-heater", 1, 3000), (2, "heater-office", 2, 2000),
                                 (3, "heater-hall", 2, 2000), (4, "dryer", 1, 2500))) + """
[[shedding.actuators]]
id = "wallbox"
kind = "modbus_register"
driver = "loads"
point = "wallbox/current_limit"
"""


def building(pref_kva: int) -> Building:
    return Building("linky-loop", "the sheddable plant behind a Linky",
                    modbus=(ModbusLine("loads", "tcp", (ModbusMeter("board", 1, "eastron-sdm630"),
                                                         ModbusMeter("relays", 2, "waveshare-relay-8ch"),
                                                         ModbusMeter("wallbox", 3, "heidelberg-energy-control")),
                                       interval_fast_s=1.0, plant=True),),
                    linky=TicMeter(pref_kva=pref_kva), mqtt=False, sync=False)


async def _run(tmp_path: Path, pref_kva: int, dry_run: bool, done, timeout: float = 60.0) -> dict[str, Any]:
    base = tmp_path / "base.toml"
    base.write_text(BASE.format(dry_run=str(dry_run).lower(), linky=LINKY))
    out = open(tmp_path / "scenario.out", "w+")  # noqa: SIM115  (the daemon writes its log there too)
    sc = Scenario(base, building(pref_kva), tmp_path / "run", out=out)
    try:
        await sc.start()
        client = ControlClient(tmp_path / "run" / "run" / "control.sock", timeout=5)
        deadline = time.monotonic() + timeout
        seen: list[float] = []
        while time.monotonic() < deadline:
            st = await asyncio.to_thread(lambda: client.call("status", points=True))
            power = st.get("points", {}).get(f"{LINKY}/apparent_power", {}).get("value")
            if power is not None:
                seen.append(power)
            if done(st, sc):
                return {"status": st, "seen": seen, "scenario": sc}
            await asyncio.sleep(0.5)
        raise AssertionError(f"not within {timeout} s; Linky apparent power seen {seen[-20:]}\n"
                             f"{(tmp_path / 'scenario.out').read_text()[-3000:]}")
    finally:
        await sc.stop()
        out.close()


def _points(st: dict[str, Any]) -> dict[str, float]:
    return {k: v["value"] for k, v in st.get("points", {}).items() if isinstance(v, dict) and "value" in v}


async def test_shedding_on_the_linky_lowers_what_its_tic_reports(tmp_path: Path) -> None:
    def settled(st: dict[str, Any], sc: Scenario) -> bool:
        p = _points(st)
        relays = [p.get(f"relays/relay_{n}") for n in (1, 4)]
        return p.get(f"{LINKY}/apparent_power", 1e9) <= 12000 and relays == [0, 0]

    got = await _run(tmp_path, pref_kva=36, dry_run=False, done=settled)
    seen, sc = got["seen"], got["scenario"]
    assert max(seen) > 20000  # everything on at first: base, four loads and a car at 16 A
    p = _points(got["status"])
    assert p[f"{LINKY}/apparent_power"] <= 12000 and p["wallbox/current_limit"] < 16
    # The TIC's total is the sum of its phases, one frame's values.
    phases = [p[f"{LINKY}/apparent_power_l{i}"] for i in (1, 2, 3)]
    assert abs(sum(phases) - p[f"{LINKY}/apparent_power"]) <= 3
    assert sc.linky is not None and sc.linky.state.breaker.trips == 0


async def test_a_building_that_does_not_shed_trips_the_linky_and_goes_dark(tmp_path: Path) -> None:
    def tripped(st: dict[str, Any], sc: Scenario) -> bool:
        p = _points(st)
        return (f"device.{LINKY}.breaker_open" in st.get("alarms", {})
                and p.get("board/power") == 0 and p.get(f"{LINKY}/apparent_power") == 0)

    # 6 kVA: 2 kVA a phase against 8.5 kVA on L1; the engine only decides (dry run), nothing is switched.
    got = await _run(tmp_path, pref_kva=6, dry_run=True, done=tripped)
    sc = got["scenario"]
    assert sc.linky is not None and sc.linky.state.breaker.open and sc.linky.state.breaker.trips == 1
    assert not sc.plant.supply_on()
    assert max(got["seen"]) > 20000  # it ran loaded before it tripped
