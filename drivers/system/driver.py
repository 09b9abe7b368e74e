"""The ``system`` driver: the gateway's own health, as ordinary readings.

It proves the whole path from a driver to the store and lets the platform
watch the boxes themselves (an SD card filling up, a Pi throttling on heat, a
backlog growing while the uplink is down) with the same dashboards as meters.
"""

from __future__ import annotations

__all__ = ["SystemDriver", "SystemOptions", "read_system"]

import asyncio
import os
import resource
import time
from pathlib import Path

from pydantic import Field

from zaas_edge.aio import wait_for
from zaas_edge.driver import Driver, DriverContext, DriverOptions
from zaas_edge.errors import TransientError
from zaas_edge.model import Point

THERMAL = Path("/sys/class/thermal")
# Zones that describe the SoC or CPU package, in order of preference.
_CPU_ZONE_TYPES = ("cpu-thermal", "cpu_thermal", "soc_thermal", "x86_pkg_temp", "cpu", "soc")


class SystemOptions(DriverOptions):
    interval_s: float = Field(default=10.0, ge=1.0, le=3600.0, description="Seconds between two samples")
    disk_path: Path | None = Field(
        default=None, description="File system to watch for free space (default: the state directory)"
    )


POINTS = (
    ("cpu_load_1m", "", 0.01, "Load average over one minute"),
    ("cpu_usage", "%", 0.1, "CPU busy share since the previous sample, all cores"),
    ("cpu_temp", "degC", 0.1, "SoC temperature, where the kernel exposes it"),
    ("mem_used", "%", 0.1, "Memory in use (total minus available)"),
    ("mem_available", "B", 1, "Memory available to new processes"),
    ("disk_free", "B", 1, "Free space on the state directory's file system"),
    ("disk_used", "%", 0.1, "Used share of the state directory's file system"),
    ("process_rss", "B", 1, "Resident memory of the daemon"),
    ("uptime", "s", 1, "Seconds since the box booted"),
    ("backlog_reading", "", 1, "Readings stored but not yet acknowledged by the platform"),
    ("backlog_event", "", 1, "Events stored but not yet acknowledged"),
    ("backlog_alarm", "", 1, "Alarm transitions stored but not yet acknowledged"),
    ("backlog_upload", "", 1, "Upload records (aggregates) waiting for the platform"),
)


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies over all CPUs from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])
    return total - idle, total


def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts:
                    out[key] = int(parts[0]) * 1024
    except (OSError, ValueError):
        pass
    return out


def cpu_temperature(root: Path = THERMAL) -> float | None:
    """The CPU temperature in degC, or None where no thermal zone says."""
    try:
        zones = sorted(root.glob("thermal_zone*"))
    except OSError:
        return None
    found: dict[str, Path] = {}
    for zone in zones:
        try:
            found.setdefault(zone.joinpath("type").read_text().strip(), zone)
        except OSError:
            continue
    order = [found[t] for t in _CPU_ZONE_TYPES if t in found] + zones
    for zone in order:
        try:
            return int(zone.joinpath("temp").read_text().strip()) / 1000.0
        except (OSError, ValueError):
            continue
    return None


def read_system(disk_path: Path, prev_cpu: tuple[int, int] | None) -> tuple[dict[str, float], tuple[int, int] | None]:
    """One sample of every quantity the box can tell about itself."""
    values: dict[str, float] = {}
    values["cpu_load_1m"] = os.getloadavg()[0]
    cpu = _cpu_times()
    if cpu and prev_cpu and cpu[1] > prev_cpu[1]:
        values["cpu_usage"] = 100.0 * (cpu[0] - prev_cpu[0]) / (cpu[1] - prev_cpu[1])
    temp = cpu_temperature()
    if temp is not None:
        values["cpu_temp"] = temp
    mem = _meminfo()
    if "MemTotal" in mem and "MemAvailable" in mem:
        values["mem_available"] = mem["MemAvailable"]
        values["mem_used"] = 100.0 * (mem["MemTotal"] - mem["MemAvailable"]) / mem["MemTotal"]
    try:
        st = os.statvfs(disk_path)
        values["disk_free"] = st.f_bavail * st.f_frsize
        if st.f_blocks:
            values["disk_used"] = 100.0 * (st.f_blocks - st.f_bfree) / st.f_blocks
    except OSError:
        pass
    try:
        with open("/proc/self/statm") as f:
            values["process_rss"] = int(f.read().split()[1]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/proc/uptime") as f:
            values["uptime"] = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return values, cpu


class SystemDriver(Driver):
    Options = SystemOptions
    options: SystemOptions

    def points(self) -> list[Point]:
        return [Point(self.id, q, unit, res, desc) for q, unit, res, desc in POINTS]

    _wake: asyncio.Event | None = None

    async def poll_now(self) -> None:
        """Take a sample at once (a technician's or integrator's request) by waking the loop."""
        if self._wake is None:
            raise TransientError(f"driver {self.id!r} is not running yet")
        self._wake.set()

    async def run(self, ctx: DriverContext) -> None:
        self._wake = asyncio.Event()
        units = {q: unit for q, unit, _, _ in POINTS}
        disk_path = self.options.disk_path or ctx.state_dir
        prev_cpu = _cpu_times()
        period_ns = int(self.options.interval_s * 1e9)
        # Deadlines advance from the previous deadline, not from "now", so the
        # sampling does not drift; a missed deadline is skipped, not caught up.
        deadline = time.monotonic_ns()
        extra = False
        while True:
            values, prev_cpu = await asyncio.to_thread(read_system, disk_path, prev_cpu)
            for lane, n in ctx.backlog().items():
                values[f"backlog_{lane}"] = n
            stamp = ctx.now()
            ctx.emit([ctx.reading(q, v, units.get(q, ""), stamp=stamp) for q, v in values.items()])
            if not extra:
                deadline += period_ns
            now = time.monotonic_ns()
            if deadline <= now:
                ctx.count("overruns")
                deadline = now + period_ns
            try:
                await wait_for(self._wake.wait(), (deadline - now) / 1e9)
                self._wake.clear()
                extra = True  # a sample on request; the schedule itself does not move
            except TimeoutError:
                extra = False
