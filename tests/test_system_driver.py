"""The system driver turns the box's own health into readings through the real context."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from zaas_edge.drivers.system import SystemDriver, SystemOptions
from zaas_edge.drivers.system.driver import cpu_temperature, read_system

from hil.driver_run import DriverRun
from zaas_edge.clock import FakeClock
from zaas_edge.driver import driver_class


async def test_first_sample_reaches_the_hub_with_plausible_values(tmp_path: Path) -> None:
    beats = []
    driver = SystemDriver(SystemOptions(id="system", type="system", interval_s=60))
    async with DriverRun(driver, clock=FakeClock(), heartbeat=lambda: beats.append(1), state_dir=tmp_path,
                         backlog=lambda: {"reading": 42, "event": 3, "alarm": 0}) as run:
        await run.until(lambda: run.batches, "the first sample", timeout=10)
    batches, counters, hub = run.batches, run.counters, run.hub

    values = {r.point: r for r in batches[0]}
    assert values["system/backlog_reading"].value == 42
    assert values["system/backlog_event"].value == 3
    assert 0 < values["system/mem_used"].value < 100
    assert values["system/mem_used"].unit == "%"
    free = shutil.disk_usage(tmp_path).free
    assert abs(values["system/disk_free"].value - free) < 512 * 1024 * 1024
    assert values["system/process_rss"].value > 10 * 1024 * 1024
    assert values["system/cpu_load_1m"].value >= 0
    assert all(r.wall_ns == FakeClock().wall_ns for r in batches[0])
    assert counters["readings"] == len(batches[0])
    assert beats, "emitting must count as a heartbeat"
    assert hub.latest["system/backlog_reading"].value == 42


def test_cpu_usage_is_a_share_between_two_samples(tmp_path: Path) -> None:
    _, first = read_system(tmp_path, None)
    assert first is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # work until the kernel's jiffies have moved on
        sum(i * i for i in range(50_000))
        values, now = read_system(tmp_path, first)
        if now is not None and now[1] > first[1]:
            break
    assert 0.0 <= values["cpu_usage"] <= 100.0


def test_cpu_usage_is_left_out_when_no_time_has_passed(tmp_path: Path) -> None:
    _, first = read_system(tmp_path, None)
    assert first is not None
    values, _ = read_system(tmp_path, (first[0], first[1] + 10**9))
    assert "cpu_usage" not in values


def test_cpu_temperature_prefers_the_cpu_zone(tmp_path: Path) -> None:
    for i, (kind, milli) in enumerate([("acpitz", "27800"), ("cpu-thermal", "51234")]):
        zone = tmp_path / f"thermal_zone{i}"
        zone.mkdir()
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(milli + "\n")
    assert cpu_temperature(tmp_path) == 51.234
    assert cpu_temperature(tmp_path / "absent") is None


def test_system_driver_is_registered_as_an_entry_point() -> None:
    assert driver_class("system") is SystemDriver
    assert [p.key for p in SystemDriver(SystemOptions(id="gw", type="system")).points()][:2] == [
        "gw/cpu_load_1m", "gw/cpu_usage"]
