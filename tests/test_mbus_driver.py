"""The mbus driver against the simulated bus: in-process with a real context, and inside the daemon."""

from __future__ import annotations

import json
import sqlite3
import tempfile
from pathlib import Path

import pytest
from pydantic import ValidationError
from zaas_edge.drivers.mbus import MBusDriver, MBusOptions

from hil.daemon_harness import SYSTEM_DRIVER, DaemonProcess, write_config
from hil.driver_run import DriverRun
from hil.mbus_sim import MBusSimulator
from tests.example_config import load_driver_block
from zaas_edge.driver import driver_class
from zaas_edge.model import Alarm, Event, Quality


def c_requests(h: DriverRun) -> int:
    """Requests on the bus: with one meter configured, all of them are that meter's."""
    return h.counters["requests"]


def options(port: str, **kw) -> MBusOptions:
    base = {
        "id": "mbus-1", "type": "mbus", "port": port, "baudrate": 9600,
        "meters": [
            {"id": "heat-1", "address": 5, "interval_s": 3600, "energy_unit": "kWh"},
            {"id": "water-1", "secondary": "12345699FFFFFFFF", "interval_s": 3600, "points": ["volume", "volume.s1"]},
            {"id": "gas-1", "address": 7, "interval_s": 3600},
        ],
    }
    base.update(kw)
    return MBusOptions.model_validate(base)


def test_entry_point_and_options_validation() -> None:
    assert driver_class("mbus") is MBusDriver
    with pytest.raises(ValidationError, match="exactly one of address"):
        MBusOptions.model_validate({"id": "m", "type": "mbus", "port": "/dev/x", "meters": [{"id": "a"}]})
    with pytest.raises(ValidationError, match="meters share the same address: 5"):
        MBusOptions.model_validate({"id": "m", "type": "mbus", "port": "/dev/x", "meters": [
            {"id": "a", "address": 5}, {"id": "b", "address": 5}]})
    with pytest.raises(ValidationError, match="baudrate"):
        MBusOptions.model_validate({"id": "m", "type": "mbus", "port": "/dev/x", "baudrate": 1234,
                                    "meters": [{"id": "a", "address": 5}]})


async def test_polls_every_meter_with_point_keys_units_and_filters() -> None:
    with MBusSimulator() as sim:
        async with DriverRun(MBusDriver(options(sim.path))) as h:
            await h.until(lambda: {p.split("/")[0] for p in h.hub.latest} >= {"heat-1", "water-1", "gas-1"},
                             "a readout of every meter")
            latest = h.hub.latest
            heat = sim.bus.meter("heat")
    # energy converted to kWh on request; the other quantities keep the codec's units
    assert latest["heat-1/energy"].unit == "kWh" and 8000 < latest["heat-1/energy"].value < 9000
    assert latest["heat-1/energy.s1"].value == pytest.approx(8000.0)
    assert latest["heat-1/volume"].unit == "m3" and latest["heat-1/flow_temperature"].unit == "degC"
    assert latest["heat-1/power.max"].value == 21000 and latest["heat-1/power.max"].unit == "W"
    assert "heat-1/date_time" not in latest  # dates are not numeric readings
    # the filter keeps only the listed record keys; the secondary address reached the water meter
    assert {p for p in latest if p.startswith("water-1/")} == {"water-1/volume", "water-1/volume.s1"}
    assert latest["gas-1/volume"].unit == "m3" and latest["gas-1/volume"].quality is Quality.OK
    assert heat.answers >= 2  # two telegrams
    assert h.counters["polls"] >= 3 and h.counters["requests"] >= 8
    assert "timeouts" not in h.counters
    keys = {p.key for p in h.driver.points()}
    assert {"heat-1/energy", "water-1/volume", "water-1/volume.s1", "gas-1/volume"} <= keys
    saved = await h.state.load("mbus-1", "points")
    assert saved is not None and saved["heat-1"]["energy"] == "kWh"


def availability(h: DriverRun) -> list[str]:
    """The device.availability events so far (the only events of these runs), by state."""
    events = [n for n in h.notices if isinstance(n, Event)]
    assert {e.kind for e in events} <= {"device.availability"}
    return [e.data["state"] for e in events]


async def test_offline_alarm_after_failures_and_recovery_with_counters() -> None:
    with MBusSimulator() as sim:
        opts = options(sim.path, retries=1, offline_after=2, meters=[{"id": "gas-1", "address": 7, "interval_s": 3600}])
        async with DriverRun(MBusDriver(opts)) as h:
            await h.until(lambda: "gas-1/volume" in h.hub.latest, "the first readout")
            sim.inject("gas", "no_answer", times=2)
            await h.driver.poll_now()  # timeout, retry, timeout: failure 1
            assert not any(isinstance(n, Alarm) for n in h.notices)
            sim.inject("gas", "bad_checksum")
            sim.inject("gas", "truncated")
            await h.driver.poll_now()  # failure 2: offline
            alarms = [n for n in h.notices if isinstance(n, Alarm)]
            assert [(a.alarm_id, a.active) for a in alarms] == [("device.gas-1.offline", True)]
            assert "M-Bus meter gas-1 offline: 2 failed in a row" in alarms[0].text
            assert availability(h) == ["online", "offline"]  # the first readout, then the failures
            gas = h.driver.health()["gas-1"]
            assert (gas.online, gas.consecutive_failures, gas.failed_polls) == (False, 2, 2)
            assert [gas.counters[c] for c in ("timeouts", "checksum_errors", "truncated", "retries")] == [2, 1, 1, 2]
            assert gas.polls == 3 and gas.details["address"] == "7" and gas.last_error
            before = len(h.readings)
            await h.driver.poll_now()  # answers again
            assert len(h.readings) > before
            alarms = [n for n in h.notices if isinstance(n, Alarm)]
            assert [(a.alarm_id, a.active) for a in alarms] == [("device.gas-1.offline", True),
                                                                ("device.gas-1.offline", False)]
            assert availability(h) == ["online", "offline", "online"]
            gas = h.driver.health()["gas-1"]
            assert (gas.online, gas.consecutive_failures, gas.failed_polls, gas.polls) == (True, 0, 2, 4)
            assert gas.counters["requests"] == c_requests(h) and gas.latency_last_ms and gas.latency_avg_ms
            c = h.counters
    assert c["timeouts"] == 2 and c["checksum_errors"] == 1 and c["truncated"] == 1
    assert c["retries"] == 2 and c["failed_polls"] == 2


async def test_records_the_meter_never_had_are_refused_until_they_persist_or_the_meter_is_replaced() -> None:
    """Checksum-valid garbage (here: a telegram with made-up records) creates no point; a layout
    that keeps coming back is a reconfigured meter, and a new identity a replaced one."""
    from zaas_edge.drivers.mbus import RecordSpec
    from zaas_edge.drivers.mbus.layout import CONFIRM
    from zaas_edge.drivers.mbus.records import Coding

    from hil.mbus_sim import gas_telegrams

    def garbage(t: float) -> list[list[RecordSpec]]:
        return [[*gas_telegrams(t)[0], RecordSpec(b"\x07", 10**9, Coding.INT32)]]  # energy x 10^4 Wh: 1e13 Wh

    with MBusSimulator() as sim:
        opts = options(sim.path, meters=[{"id": "gas-1", "address": 7, "interval_s": 3600}])
        async with DriverRun(MBusDriver(opts)) as h:
            await h.until(lambda: "gas-1/volume" in h.hub.latest, "the first readout")
            known = {p.key for p in h.driver.points()}
            gas = sim.bus.meter("gas")
            gas.telegrams = garbage
            before = len(h.readings)
            for _ in range(CONFIRM - 1):
                await h.driver.poll_now()
            assert len(h.readings) == before, "a refused readout gives no reading at all"
            assert {p.key for p in h.driver.points()} == known
            assert h.counters["layout_mismatches"] == CONFIRM - 1
            assert h.driver.health()["gas-1"].counters["bad_responses"] == CONFIRM - 1
            assert h.driver.health()["gas-1"].online is True  # the meter answers; its records are the problem
            await h.driver.poll_now()  # the same new layout a third time in a row: the meter was reconfigured
            [changed] = h.events("mbus.layout_changed")
            assert changed.data["new"] == ["energy"]
            new_points = {p.key for p in h.driver.points()} - known
            assert new_points == {"gas-1/energy"} and len(h.readings) > before
            await h.until(lambda: h.driver._background == set(), "the layout saved")
            saved = await h.state.load("mbus-1", "points")
            assert "energy" in saved["gas-1"]

            gas.telegrams = gas_telegrams  # the old layout once more: refused now...
            gas.identification = "30112299"  # ...unless the meter was replaced: then its layout is learned at once
            n = h.counters["layout_mismatches"]
            await h.driver.poll_now()
            assert h.counters["layout_mismatches"] == n
            assert h.events("mbus.meter_changed")
            assert "energy" not in h.driver._meters["gas-1"].units


async def test_missing_port_fails_the_run_for_the_supervisor_to_retry(tmp_path: Path) -> None:
    h = DriverRun(MBusDriver(options(str(tmp_path / "ttyUSB7"))))
    with pytest.raises(Exception, match="cannot open M-Bus port"):
        await h.driver.run(h.ctx)
    with pytest.raises(Exception, match="not running"):
        await h.driver.poll_now()


@pytest.fixture
def base() -> Path:
    with tempfile.TemporaryDirectory(prefix="zaas-mb-", dir="/tmp") as d:
        yield Path(d)


def test_daemon_polls_the_simulated_bus(base: Path) -> None:
    with MBusSimulator() as sim:
        drivers = SYSTEM_DRIVER + f'''

[[drivers]]
id = "mbus-1"
type = "mbus"
port = "{sim.path}"
baudrate = 9600
meters = [
  {{ id = "heat-1", address = 5, interval_s = 1, energy_unit = "kWh" }},
  {{ id = "elec-1", secondary = "{sim.bus.meter('electricity').secondary}", interval_s = 2 }},
]
'''
        cfg = write_config(base / "config.toml", base, drivers=drivers)
        d = DaemonProcess(cfg)
        try:
            d.wait_notify("READY=1")
            st = d.wait_status(lambda s: s["drivers"].get("mbus-1", {}).get("readings", 0) >= 30)
            assert st["drivers"]["mbus-1"]["state"] == "running"
            assert st["drivers"]["mbus-1"]["counters"]["requests"] >= 3
            out = d.cli("status", "--json", "--points").stdout
            points = json.loads(out)["points"]
            assert points["heat-1/energy"]["unit"] == "kWh" and points["heat-1/energy"]["value"] > 8000
            assert points["elec-1/energy.t2"]["unit"] == "Wh"
            assert points["elec-1/voltage"]["unit"] == "V" and 200 < points["elec-1/voltage"]["value"] < 260
            devices = json.loads(out)["drivers"]["mbus-1"]["devices"]
            assert set(devices) == {"heat-1", "elec-1"}
            assert all(m["online"] is True and m["requests"] >= 1 and m["timeouts"] == 0 for m in devices.values())
            assert devices["heat-1"]["address"] == "5"
            text = d.cli("status").stdout
            assert any(line.split()[:3] == ["mbus-1", "heat-1", "online"] for line in text.splitlines())
        finally:
            d.close()
    db = sqlite3.connect(base / "state" / "store.sqlite")
    try:
        rows = db.execute("select p.key, p.unit, count(*) from reading r join point p on p.id = r.point_id "
                          "where p.key like 'heat-1/%' or p.key like 'elec-1/%' group by p.key").fetchall()
    finally:
        db.close()
    stored = {k: (unit, n) for k, unit, n in rows}
    assert stored["heat-1/energy"][0] == "kWh" and stored["heat-1/energy"][1] >= 2
    assert stored["elec-1/power"][0] == "W"


def test_the_example_configuration_block_is_valid(tmp_path: Path) -> None:
    opts = load_driver_block(tmp_path, "mbus")
    assert isinstance(opts, MBusOptions)
    assert (opts.port, opts.baudrate, opts.retries, opts.offline_after) == ("/dev/ttyUSB0", 2400, 2, 3)
    assert [m.target for m in opts.meters] == [5, "12345699FFFFFFFF"]
    assert opts.meters[0].energy_unit == "kWh" and opts.meters[1].points == ["volume", "volume.s1"]
    # the shown values are the defaults
    defaults = MBusOptions.model_validate({"id": "x", "type": "mbus", "port": "p",
                                           "meters": [{"id": "a", "address": 1}]})
    for key in ("baudrate", "retries", "extra_timeout_s", "max_telegrams", "offline_after", "reset_at_start"):
        assert getattr(opts, key) == getattr(defaults, key), key
