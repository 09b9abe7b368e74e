"""The Modbus driver against simulated meters on real transports: TCP sockets on
127.0.0.1, pseudo-terminal pairs for RTU, RTU frames over TCP."""

from __future__ import annotations

import asyncio
import logging
import math
import os
from pathlib import Path

import pytest
from zaas_edge.drivers.modbus import get_profile, load_profiles
from zaas_edge.drivers.modbus.plan import Table

from hil.modbus_harness import DriverRun, bus_options
from hil.modbus_sim import SimBus, SimMeter, serve_rtu_over_tcp, serve_rtu_pty, serve_tcp
from tests.example_config import driver_block
from zaas_edge.errors import PermanentError
from zaas_edge.model import Quality

SERVE = {"tcp": serve_tcp, "rtu": serve_rtu_pty, "rtu-over-tcp": serve_rtu_over_tcp}
PROFILES = sorted(load_profiles())


def test_the_library_has_fourteen_profiles() -> None:
    # twelve meters and inverters, a relay module and an EV charger
    assert len(PROFILES) == 14


@pytest.mark.parametrize("kind", list(SERVE))
async def test_reads_every_profile_exactly_as_served(kind: str) -> None:
    # One bus, a device of each profile (units 1..14), as on a mixed RS-485 line.
    bus = SimBus([SimMeter(get_profile(name), unit) for unit, name in enumerate(PROFILES, start=1)])
    devices = [{"id": f"m{unit}", "unit": unit, "profile": name} for unit, name in enumerate(PROFILES, start=1)]
    async with await SERVE[kind](bus) as srv:
        async with DriverRun(bus_options(srv, devices)) as run:
            await run.driver.poll_now()
            checked = 0
            for unit, name in enumerate(PROFILES, start=1):
                meter = bus.meters[unit]
                numeric = [p for p in get_profile(name).points if p.type.value != "string"]
                assert numeric
                for p in numeric:
                    served = meter.served[p.quantity]
                    r = run.latest(f"m{unit}/{p.quantity}")
                    assert served is not None and r is not None, (name, p.quantity)
                    assert r.value == pytest.approx(served, abs=max(p.resolution, 1e-9) / 2), (name, p.quantity)
                    assert r.unit == p.unit and r.quality is Quality.OK
                    checked += 1
            assert checked == sum(len([p for p in get_profile(n).points if p.type.value != "string"])
                                  for n in PROFILES)
            health = run.driver.health()
            assert all(h.online is True and h.counters["timeouts"] == 0 for h in health.values())
            # Coalescing: far fewer requests than points (on a serial line the planner takes a second
            # request where that costs less bus time than bridging a wide hole).
            assert run.counters["requests"] < checked / 3


async def test_points_declares_every_numeric_point_of_every_device() -> None:
    from zaas_edge.drivers.modbus import ModbusDriver, ModbusOptions

    opts = ModbusOptions.model_validate({
        "id": "bus", "type": "modbus", "transport": "tcp", "host": "127.0.0.1",
        "devices": [{"id": "a", "unit": 1, "profile": "eastron-sdm630"},
                    {"id": "b", "unit": 2, "profile": "sunspec-inverter",
                     "points": {"dc_power": {"enabled": False}}}]})
    pts = ModbusDriver(opts).points()
    keys = {p.key for p in pts}
    assert len([k for k in keys if k.startswith("a/")]) == 34
    assert "b/power" in keys and "b/dc_power" not in keys and "b/serial_number" not in keys
    assert len([k for k in keys if k.startswith("b/")]) == 19 - 3 - 1


async def test_values_move_and_readings_follow_on_schedule() -> None:
    bus = SimBus.of_profile("eastron-sdm630", [1])
    async with await serve_tcp(bus) as srv:
        devices = [{"id": "m1", "unit": 1, "profile": "eastron-sdm630", "interval_fast_s": 0.05}]
        async with DriverRun(bus_options(srv, devices)) as run:
            await run.until(lambda: run.latest("m1/voltage_l1") is not None, what="a first reading")
            first = run.latest("m1/voltage_l1")
            bus.meters[1].update(7.5)  # the meter's values change
            want = bus.meters[1].served["voltage_l1"]
            assert want != first.value
            await run.until(lambda: run.latest("m1/voltage_l1").value == want, what="the new value")
            assert run.latest("m1/voltage_l1").mono_ns > first.mono_ns
            # energy is on the slow interval (60 s): read once, at start
            assert len([r for r in run.readings if r.point == "m1/energy_import"]) == 1


# --- faults: offline and back ------------------------------------------------------------

FAST = {"offline_after": 2, "retry_initial_s": 0.1, "retry_max_s": 0.2, "timeout_s": 0.15}


def _dev(unit: int, **kw: object) -> dict[str, object]:
    return {"id": f"m{unit}", "unit": unit, "profile": "eastron-sdm630", "interval_fast_s": 0.05, **kw}


@pytest.mark.parametrize("kind,fault", [("tcp", "silent"), ("rtu", "silent"), ("rtu", "crc"),
                                        ("rtu-over-tcp", "crc"), ("tcp", "slow")])
async def test_offline_then_online_under_a_fault(kind: str, fault: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="zaas_edge")
    bus = SimBus.of_profile("eastron-sdm630", [1, 2])
    async with await SERVE[kind](bus) as srv:
        async with DriverRun(bus_options(srv, [_dev(1), _dev(2)], **FAST)) as run:
            await run.until(lambda: run.latest("m1/power") is not None and run.latest("m2/power") is not None)
            if fault == "slow":
                bus.faults.unit_delay_s[2] = 1.0  # answers, but long after the 0.15 s timeout
            else:
                (bus.faults.silent_units if fault == "silent" else bus.faults.crc_units).add(2)
            await run.until(lambda: run.alarms("device.m2.offline") == [True], what="the offline alarm")
            offline = [e for e in run.events("device.availability") if e.data["state"] == "offline"]
            assert [e.data["device"] for e in offline] == ["m2"]
            h = run.driver.health()["m2"]
            assert h.online is False
            if fault in ("silent", "slow"):
                assert h.counters["timeouts"] >= 2 and h.counters["checksum_errors"] == 0
            else:
                assert h.counters["checksum_errors"] >= 2
            # The other meter keeps answering meanwhile.
            n1 = len([r for r in run.readings if r.point == "m1/power"])
            await run.until(lambda: len([r for r in run.readings if r.point == "m1/power"]) >= n1 + 3)
            assert run.driver.health()["m1"].online is True

            bus.faults.clear()
            await run.until(lambda: run.alarms("device.m2.offline") == [True, False], what="the alarm to clear")
            assert run.driver.health()["m2"].online is True
            n2 = len([r for r in run.readings if r.point == "m2/power"])
            await run.until(lambda: len([r for r in run.readings if r.point == "m2/power"]) > n2)
    # Logged once per change of state, not once per poll.
    offline_lines = [r for r in caplog.records if "m2 (unit 2) offline" in r.getMessage()]
    online_lines = [r for r in caplog.records if "m2 (unit 2) back online" in r.getMessage()]
    assert len(offline_lines) == 1 and len(online_lines) == 1


async def test_exception_02_splits_the_block_and_remembers() -> None:
    bus = SimBus.of_profile("eastron-sdm630", [1])
    # The meter refuses the unmapped gap between the phase values and the totals (0x24..0x34).
    bus.faults.illegal_ranges.append((Table.INPUT, 0x24, 0x34))
    async with await serve_tcp(bus) as srv:
        async with DriverRun(bus_options(srv, [_dev(1)], **FAST)) as run:
            await run.driver.poll_now()
            served = bus.meters[1].served
            for q in ("pf_l3", "power", "frequency"):
                assert run.latest(f"m1/{q}").value == served[q]
            assert run.counters["exceptions"] >= 1 and run.counters["splits"] >= 1
            dev = run.driver.devices["m1"]
            assert (Table.INPUT, 0x34) in dev.plan.barriers and not dev.plan.unreadable
            # Remembered: later polls send no request across the range.
            n = len(bus.log)
            await run.driver.poll_now()
            later = list(bus.log)[n:]
            assert later and all(r.outcome == "ok" for r in later)
            assert all(not (r.address < 0x34 and 0x24 < r.address + r.count) for r in later)
            # ... and saved for the next start.
            doc = run.state.docs[("bus", "plan.m1")]
            assert [int(Table.INPUT), 0x34] in doc["barriers"]
            assert run.driver.health()["m1"].online is True
            assert run.alarms("device.m1.offline") == []


async def test_a_point_the_device_refuses_is_reported_once_and_skipped() -> None:
    bus = SimBus.of_profile("eastron-sdm630", [1])
    bus.faults.illegal_ranges.append((Table.INPUT, 0x46, 0x48))  # frequency
    async with await serve_tcp(bus) as srv:
        async with DriverRun(bus_options(srv, [_dev(1)], **FAST)) as run:
            await run.driver.poll_now()
            await run.driver.poll_now()
            assert run.latest("m1/frequency") is None
            assert run.latest("m1/power").value == bus.meters[1].served["power"]
            unreadable = run.events("modbus.point_unreadable")
            assert len(unreadable) == 1 and unreadable[0].data["points"] == ["frequency"]
            assert "frequency" in run.driver.devices["m1"].plan.unreadable


async def test_sentinels_give_no_reading_and_are_counted(caplog: pytest.LogCaptureFixture) -> None:
    bus = SimBus.of_profile("sunspec-inverter", [1])
    meter = bus.meters[1]
    addr = get_profile("sunspec-inverter").point("current_l3").address
    meter.write(Table.HOLDING, addr, [0xFFFF])  # uint16 "not implemented"
    async with await serve_tcp(bus) as srv:
        async with DriverRun(bus_options(srv, [{"id": "inv", "unit": 1, "profile": "sunspec-inverter"}])) as run:
            await run.driver.poll_now()
            assert run.latest("inv/current_l3") is None
            assert run.latest("inv/current_l1").value == meter.served["current_l1"]
            await run.driver.poll_now()
            polls = run.driver.health()["inv"].polls
            assert polls >= 2
            assert run.counters["missing_values"] == polls  # once per poll, current_l3 only
            assert run.driver.health()["inv"].counters["missing_values"] == polls
            assert all(math.isfinite(r.value) for r in run.readings)
    lines = [r for r in caplog.records if "current_l3 has no value" in r.getMessage()]
    assert len(lines) == 1  # logged when it went missing, not at every poll


async def test_sunspec_device_is_found_at_another_base_address() -> None:
    bus = SimBus.of_profile("sunspec-inverter", [3], shift=-40000)  # marker at 0, not 40000
    async with await serve_rtu_over_tcp(bus) as srv:
        async with DriverRun(bus_options(srv, [{"id": "inv", "unit": 3, "profile": "sunspec-inverter"}])) as run:
            await run.driver.poll_now()
            assert run.driver.devices["inv"].shift == -40000
            assert run.latest("inv/power").value == bus.meters[3].served["power"]
            assert run.latest("inv/voltage_l2").value == bus.meters[3].served["voltage_l2"]


# --- bus discipline ------------------------------------------------------------------------


async def test_requests_on_a_serial_line_never_overlap() -> None:
    bus = SimBus.of_profile("eastron-sdm120", range(1, 7))
    bus.faults.silent_units.add(6)  # a dead meter on the line, too
    bus.faults.unit_delay_s[3] = 0.01
    async with await serve_rtu_pty(bus) as srv:
        devs = [{"id": f"m{u}", "unit": u, "profile": "eastron-sdm120", "interval_fast_s": 0.02} for u in range(1, 7)]
        async with DriverRun(bus_options(srv, devs, timeout_s=0.1, offline_after=50)) as run:
            await run.until(lambda: len([r for r in bus.log if r.outcome == "ok"]) >= 60, what="60 answers")
            assert run.driver.bus.max_in_flight == 1
    log = sorted(bus.log, key=lambda r: r.t_rx)
    units = {r.unit for r in log}
    assert units == {1, 2, 3, 4, 5, 6}
    last_tx = 0.0
    for r in log:
        assert r.t_rx >= last_tx, "a request arrived before the previous answer was sent"
        if r.t_tx is not None:
            last_tx = r.t_tx


async def test_tcp_requests_run_in_parallel_up_to_the_limit() -> None:
    bus = SimBus.of_profile("eastron-sdm120", range(1, 9))
    bus.faults.delay_s = 0.02
    async with await serve_tcp(bus) as srv:
        devs = [{"id": f"m{u}", "unit": u, "profile": "eastron-sdm120"} for u in range(1, 9)]
        async with DriverRun(bus_options(srv, devs, max_concurrency=3)) as run:
            await run.driver.poll_now()
            assert run.driver.bus.max_in_flight == 3
    answered = [r for r in bus.log if r.t_tx is not None]
    peak = max(sum(1 for o in answered if o.t_rx <= r.t_rx < o.t_tx) for r in answered)
    assert peak == 3


# --- writes --------------------------------------------------------------------------------

RELAY = """
name = "test-relay"
manufacturer = "Test"
model = "Relay with setpoint"
sources = ["test"]
points = [
  { quantity = "relay", address = 0, type = "uint16", table = "coils", writable = true, source = "coil 1" },
  { quantity = "setpoint", address = 100, type = "int16", scale = 0.1, unit = "C", writable = true, source = "h101" },
  { quantity = "limit", address = 102, type = "float32", unit = "W", resolution = 1, source = "hr 103" },
  { quantity = "power", address = 110, type = "float32", unit = "W", resolution = 1, source = "hr 111" },
]
[doc]
title = "Test relay"
version = "1"
[defaults]
table = "holding"
"""


@pytest.fixture
def relay_profile(tmp_path: Path) -> Path:
    p = tmp_path / "test-relay.toml"
    p.write_text(RELAY)
    return p


async def test_writes_read_back_and_a_mismatch_is_permanent(relay_profile: Path) -> None:
    from zaas_edge.drivers.modbus import load_profile

    bus = SimBus([SimMeter(load_profile(relay_profile), 5)])
    async with await serve_rtu_pty(bus) as srv:
        dev = {"id": "r", "unit": 5, "profile_file": str(relay_profile),
               "points": {"limit": {"writable": True}}}
        async with DriverRun(bus_options(srv, [dev])) as run:
            assert await run.driver.write("r/relay", 0) == 0.0
            assert bus.meters[5].tables[Table.COILS][0] == 0
            assert await run.driver.write("r/relay", 1) == 1.0
            assert bus.meters[5].tables[Table.COILS][0] == 1
            assert await run.driver.write("r/setpoint", 21.5) == pytest.approx(21.5)
            assert bus.meters[5].served["setpoint"] == pytest.approx(21.5)
            assert await run.driver.write("r/limit", 4200) == 4200.0
            assert run.latest("r/limit").value == 4200.0  # the read-back is a reading
            with pytest.raises(PermanentError, match="not writable"):
                await run.driver.write("r/power", 1)
            bus.faults.ignore_writes.add(5)
            with pytest.raises(PermanentError, match="wrote 22, read back 21.5"):
                await run.driver.write("r/setpoint", 22)
            writes = [r for r in bus.log if r.function == 6 and r.unit == 5]
            assert len(writes) == 1 + 3  # 21.5, then 22 tried 1 + write_retries (2) times
            assert run.counters["write_failures"] == 1


# --- the port itself -------------------------------------------------------------------------


async def test_missing_serial_port_is_reported_and_recovered_from(tmp_path: Path) -> None:
    bus = SimBus.of_profile("eastron-sdm630", [1])
    async with await serve_rtu_pty(bus) as srv:
        link = tmp_path / "ttyUSB-meters"
        opts = bus_options(srv, [_dev(1)], **FAST)
        opts["port"] = str(link)
        async with DriverRun(opts) as run:
            await run.until(lambda: run.alarms("device.m1.offline") == [True], what="offline")
            down = run.events("modbus.bus_down")
            assert len(down) == 1 and "does not exist" in down[0].text
            assert run.counters["link_down"] == 1 and run.counters["link_errors"] >= 2
            os.symlink(srv.pty_path, link)  # the adapter is plugged in
            await run.until(lambda: run.alarms("device.m1.offline") == [True, False], timeout=15, what="recovery")
            assert len(run.events("modbus.bus_up")) == 1
            await run.until(lambda: run.latest("m1/power") is not None)
            assert run.latest("m1/power").value == bus.meters[1].served["power"]


async def test_busy_serial_port_is_named_busy() -> None:
    import serial

    bus = SimBus.of_profile("eastron-sdm630", [1])
    async with await serve_rtu_pty(bus) as srv:
        holder = serial.Serial(srv.pty_path, exclusive=True)
        try:
            async with DriverRun(bus_options(srv, [_dev(1)], **FAST)) as run:
                await run.until(lambda: bool(run.events("modbus.bus_down")), what="bus down")
                assert "busy" in run.events("modbus.bus_down")[0].text
        finally:
            holder.close()


async def test_refused_tcp_endpoint_is_a_clear_error() -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    opts = {"id": "bus", "type": "modbus", "transport": "tcp", "host": "127.0.0.1", "port": port,
            "devices": [_dev(1)], **FAST}
    async with DriverRun(opts) as run:
        await run.until(lambda: run.alarms("device.m1.offline") == [True], what="offline")
        assert f"cannot connect to 127.0.0.1:{port}" in run.events("modbus.bus_down")[0].text
        assert run.driver.health()["m1"].counters["link_errors"] >= 2


async def test_poll_now_while_stopped_is_a_clear_error() -> None:
    from zaas_edge.drivers.modbus import ModbusDriver, ModbusOptions

    opts = ModbusOptions.model_validate({"id": "bus", "type": "modbus", "transport": "tcp", "host": "127.0.0.1",
                                         "devices": [_dev(1)]})
    drv = ModbusDriver(opts)
    drv.READY_TIMEOUT_S = 0.05
    with pytest.raises(PermanentError, match="not running"):
        await asyncio.wait_for(drv.poll_now(), 10)


# --- the documented configuration -------------------------------------------------------------


def test_example_configuration_documents_every_key_and_loads() -> None:
    import tomllib

    from zaas_edge.drivers.modbus import DeviceOptions, ModbusOptions
    from zaas_edge.drivers.modbus.options import PointOverride

    block = driver_block("modbus")
    # Commented settings ("# key = value") are documentation of the default: switch them on.
    switched = "\n".join(line[2:] if line.startswith("# ") and " = " in line and not line.startswith("#  ")
                         else line for line in block.splitlines())
    doc = tomllib.loads(switched)
    [section] = doc["drivers"]
    section.pop("host")  # documented for the TCP transports; an RTU bus has none
    documented = set(section) | {"host"}
    assert documented == set(ModbusOptions.model_fields)
    device_keys = {k for d in section["devices"] for k in d}
    assert device_keys == set(DeviceOptions.model_fields)
    override_keys = {k for d in section["devices"] for o in d.get("points", {}).values() for k in o}
    assert override_keys == set(PointOverride.model_fields)
    section["devices"] = [d for d in section["devices"] if "profile_file" not in d]
    opts = ModbusOptions.model_validate(section)
    assert opts.describe() == "rtu /dev/ttyUSB0 9600 8N1" and opts.frame_gap_s == 0.004
    defaults = ModbusOptions.model_fields
    for key in ("timeout_s", "max_concurrency", "offline_after", "retry_initial_s", "retry_max_s", "write_retries",
                "baudrate", "parity", "stopbits", "bytesize"):
        assert section[key] == defaults[key].default, key
