"""A scaled night: an hour of scenario time in 30 real seconds raises the continuous-flow leak alarm.

The real daemon (a subprocess) reads a simulated M-Bus water meter whose
index integrates its flow over scenario time (``hil.timescale`` at 120
scenario seconds per real second); the leak rule is written for the
scenario (flow never stopping for an hour, judged on five-minute samples),
and the generated configuration puts it on the scale. No test hook in the
daemon: only its configuration changed.
"""

from __future__ import annotations

import asyncio
import time
import tomllib
from pathlib import Path

from hil.buildings import Building, MBusLine, MBusMeter
from hil.scenario import Scenario
from hil.timescale import TimeScale
from zaas_edge.model import Lane
from zaas_edge.store import Store

AID = "rule.night-leak.water-main.volume"

BASE = """
[gateway]
id = "gw-night"
site = "night"

[log]
level = "info"

[alarms]
enabled = true

[[alarms.rules]]
id = "night-leak"
kind = "leak"
mode = "flow"
points = ["water-main/volume"]
window_s = 3600           # an hour of scenario time: water never stopped
sample_s = 300
severity = "error"
action = "Water has flowed all night: look for a leak"
"""

NIGHT = Building("night", "a water meter on M-Bus, read every minute of scenario time",
                 mbus=(MBusLine("mbus", (MBusMeter("water-main", "water"),), interval_s=60.0),),
                 mqtt=False, sync=False)


def _raised(state: Path) -> list[tuple[int, dict]]:
    if not (state / "store.sqlite").exists():
        return []
    with Store(state / "store.sqlite", readonly=True) as store:
        return [(s.item.stamp.wall_ns, s.item.data) for s in store.read(Lane.ALARM, 0, 10_000)
                if s.item.alarm_id == AID and s.item.active]


def _first_volume_ns(state: Path) -> int:
    with Store(state / "store.sqlite", readonly=True) as store:
        return min(s.item.wall_ns for s in store.read(Lane.READING, 0, 100_000)
                   if s.item.point == "water-main/volume")


async def test_an_hour_of_scenario_night_in_thirty_seconds_raises_the_continuous_flow_leak(tmp_path: Path) -> None:
    base = tmp_path / "base.toml"
    base.write_text(BASE)
    night = time.mktime((2026, 1, 14, 23, 0, 0, 0, 0, -1))
    scale = TimeScale.starting_now(120.0, epoch=night)
    out = open(tmp_path / "scenario.out", "w+")  # noqa: SIM115  (the daemon writes its log there too)
    sc = Scenario(base, NIGHT, tmp_path / "run", out=out, scale=scale, extra={"clock": {"assume_synced": True}})
    try:
        await sc.start()
        generated = tomllib.loads(sc.config_path.read_text())
        rule = generated["alarms"]["rules"][0]
        assert (rule["window_s"], rule["sample_s"]) == (30.0, 2.5)  # an hour and five minutes, scaled
        assert generated["drivers"][-1]["meters"][0]["interval_s"] == 1.0  # a minute: 0.5 s, the driver's floor
        state = tmp_path / "run" / "state"
        deadline = time.monotonic() + 60
        while not (raised := _raised(state)) and time.monotonic() < deadline and sc.daemon.returncode is None:
            await asyncio.sleep(0.5)
        assert raised, f"no leak alarm; the scenario said:\n{(tmp_path / 'scenario.out').read_text()[-3000:]}"
    finally:
        await sc.stop()
        out.close()
    assert len(raised) == 1  # raised once
    wall_ns, data = raised[0]
    # The flow never stopped for the scaled window: the raise comes a window (less a sample) after the
    # first reading, an hour of scenario time.
    assert (wall_ns - _first_volume_ns(state)) / 1e9 >= 30.0 - 2.5
    assert scale.scenario_s((wall_ns - _first_volume_ns(state)) / 1e9) >= 3600 - 300
    assert data["point"] == "water-main/volume" and data["action"].startswith("Water has flowed all night")
