"""The tic driver over real pseudo-terminals: the simulated Linky (hil/linky_sim.py) or frames we write.

Readings, the tariff state and its events, the two alarms raised and cleared
once, a silent meter going offline and coming back, a dongle unplugged and
plugged back (its device path removed and recreated), and what the store
keeps of one frame a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zaas_edge.drivers.tic import Group, Horodate, Mode, TicDecoder, TicDriver, TicOptions, encode_frame
from zaas_edge.drivers.tic.state_points import STATE_POINTS
from zaas_edge.drivers.tic.throttle import Policy, StoreThrottle, policy_table

from hil.driver_run import DriverRun
from hil.linky_sim import LinkyMeter, LinkySimulator, MeterConfig, Tariff, constant, ticking
from hil.linky_tariff import Colour, Contract
from tests.example_config import load_driver_block
from zaas_edge.context import MemoryState
from zaas_edge.model import Alarm, Reading

T0 = 1_767_261_600  # 2026-01-01 11:00 +01:00: a winter weekday, HP on Tempo
ADSC = "031762120855"
DEVICE = f"linky-{ADSC}"


class Rig(DriverRun):
    """What the store would get (``stored``) and what every other consumer gets (``seen``), by quantity."""

    def __init__(self, driver: TicDriver, state: MemoryState | None = None) -> None:
        super().__init__(driver, "linky", state=state, state_dir=Path("/tmp"))

    async def frames(self, n: int) -> None:
        """Wait for ``n`` more batches (one per frame)."""
        target = len(self.readings) + n
        await self.until(lambda: len(self.readings) >= target, f"{n} more readings")

    def values(self, quantity: str, readings: Sequence[Reading] | None = None) -> list[float]:
        return [r.value for r in (self.readings if readings is None else readings) if r.point == f"{DEVICE}/{quantity}"]


def options(port: str, **extra: Any) -> TicOptions:
    return TicOptions.model_validate({"id": "linky", "type": "tic", "port": port, "offline_after_s": 1.5,
                                      "retry_initial_s": 0.05, "retry_max_s": 0.2, "detect_s": 2.0, **extra})


@contextlib.asynccontextmanager
async def running(driver: TicDriver, state: MemoryState | None = None) -> AsyncIterator[Rig]:
    driver.SILENCE_CHECK_S = 0.1
    async with Rig(driver, state) as rig:
        yield rig


def simulator(mode: Mode = Mode.STANDARD, contract: Contract = Contract.BASE, va: float = 1500, *,
              clock: Callable[[], float] | None = None, tariff: Tariff | None = None) -> LinkySimulator:
    meter = LinkyMeter(MeterConfig(mode, contract=contract), tariff=tariff, curve=constant(va), start=T0,
                       clock=clock or ticking(T0))
    return LinkySimulator(meter, fast=True, interval=0.02)


# --- readings, mode detection, throttling ------------------------------------------------------------------------


async def test_standard_frames_become_readings_tariff_state_and_throttled_storage() -> None:
    with simulator(Mode.STANDARD, va=1500) as sim:
        driver = TicDriver(options(sim.path, mode="standard", store_interval_s=3600))
        async with running(driver) as rig:
            await rig.until(lambda: len(rig.values("apparent_power")) >= 20, "20 frames")
            assert set(rig.values("apparent_power")) == {1500.0}
            assert rig.values("reference_power")[-1] == 6.0 and rig.values("voltage_l1")[-1] == 230.0
            # one frame a second is heard; a flat power is stored once, every frame still reaches the rules
            assert rig.values("apparent_power", rig.stored) == [1500.0]
            energy = rig.values("energy_import")
            assert energy == sorted(energy) and energy[-1] > energy[0]
            stored_energy = rig.values("energy_import", rig.stored)
            assert stored_energy == sorted(set(energy))  # an index is stored at every change, only then
            states = {p.quantity: p.states for p in STATE_POINTS}
            assert states["tariff_contract"][int(rig.values("tariff_contract")[-1])] == "base"
            assert states["breaker"][int(rig.values("breaker")[-1])] == "closed"
            assert len(rig.values("tariff_contract", rig.stored)) == 1
            # a dated value carries the meter's horodate: today's maximum at the meter's time
            smax = [r for r in rig.stored if r.point == f"{DEVICE}/apparent_power_max_today"]
            assert smax and smax[0].wall_ns // 10**9 > T0 and smax[0].synced
            assert rig.counters["frames"] >= 20 and rig.counters.get("checksum_errors", 0) <= 1
            health = driver.health()[DEVICE]
            assert health.online is True and health.details["mode"] == "standard"
            assert health.details["meter_id"] == ADSC
            assert {p.quantity for p in driver.points()} >= {"apparent_power", "energy_import", "tariff_period"}
            assert rig.events("device.availability")[0].data["state"] == "online"


async def test_auto_mode_finds_a_historic_meter_at_1200_bd() -> None:
    with simulator(Mode.HISTORIC, Contract.HC, va=2300) as sim:
        driver = TicDriver(options(sim.path, mode="auto"))
        async with running(driver) as rig:
            await rig.until(lambda: len(rig.values("apparent_power")) >= 3, "historic frames")
            assert driver.mode is Mode.HISTORIC
            assert rig.values("apparent_power")[-1] == 2300.0 and rig.values("current_l1")[-1] == 10.0
            states = {p.quantity: p.states for p in STATE_POINTS}
            assert states["tariff_contract"][int(rig.values("tariff_contract")[-1])] == "hc"
            assert "breaker" not in {r.point.partition("/")[2] for r in rig.readings}  # historic frames do not say


async def test_auto_mode_finds_a_standard_meter_at_9600_bd() -> None:
    with simulator(Mode.STANDARD) as sim:
        driver = TicDriver(options(sim.path, mode="auto"))
        async with running(driver) as rig:
            await rig.until(lambda: rig.values("apparent_power"), "standard frames")
            assert driver.mode is Mode.STANDARD


def test_throttle_stores_indexes_on_change_and_measurements_beyond_their_deadband() -> None:
    from zaas_edge.drivers.tic.options import StorePolicy

    table = policy_table(Policy(interval_s=60, deadband_pct=5, deadband_abs=0),
                         {"apparent_*": StorePolicy(deadband_abs=100)})
    throttle = StoreThrottle(table)

    def keep(q: str, v: float, t: float, exact: bool = False, quality: str = "ok") -> bool:
        return throttle.keep(f"m/{q}", q, v, quality, t, exact=exact)

    assert keep("apparent_power", 1000, 0)
    assert not keep("apparent_power", 1090, 1)  # within 100 VA
    assert keep("apparent_power", 1101, 2)  # beyond 100 VA and 5 %
    assert not keep("apparent_power", 1101, 61)  # the interval counts from the last stored value
    assert keep("apparent_power", 1101, 62.5)
    assert keep("apparent_power", 1101, 63, quality="error")  # a change of quality is stored at once
    assert keep("energy_base", 5000, 0, exact=True)
    assert not keep("energy_base", 5000, 1, exact=True)
    assert keep("energy_base", 5001, 2, exact=True)
    assert keep("voltage_l1", 230, 0) and not keep("voltage_l1", 240, 1) and keep("voltage_l1", 242.0, 2)
    assert throttle.kept == 8 and throttle.skipped == 4


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.integers(0, 20000), min_size=1, max_size=300), interval=st.integers(1, 60),
       exact=st.booleans())
def test_a_stored_series_follows_every_move_beyond_the_deadband_and_never_stays_silent_past_the_interval(
        values: list[int], interval: int, exact: bool) -> None:
    throttle = StoreThrottle(policy_table(Policy(interval_s=interval, deadband_pct=5, deadband_abs=50), {}))
    kept = [(t, v) for t, v in enumerate(values) if throttle.keep("m/q", "q", float(v), "ok", float(t), exact=exact)]
    assert kept[0] == (0, values[0])
    for (t0, _), (t1, _) in zip(kept, kept[1:], strict=False):
        assert t1 - t0 <= interval
    last_t, last_v = 0, values[0]
    for t, v in enumerate(values):
        if (t, v) in kept:
            last_t, last_v = t, v
            continue
        moved = v != last_v if exact else abs(v - last_v) > 50 and abs(v - last_v) > last_v * 0.05
        assert not moved and t - last_t < interval


def test_every_frame_is_stored_when_the_interval_is_zero() -> None:
    throttle = StoreThrottle(policy_table(Policy(interval_s=0), {}))
    assert all(throttle.keep("m/p", "p", 1.0, "ok", t, exact=False) for t in range(5))


# --- tariff state and alarms ----------------------------------------------------------------------------------------


async def test_tempo_colours_are_state_and_their_changes_events() -> None:
    tariff = Tariff(tempo_today=Colour.BLUE, tempo_tomorrow=Colour.NONE)
    with simulator(Mode.STANDARD, Contract.TEMPO, tariff=tariff) as sim:
        async with running(TicDriver(options(sim.path, mode="standard"))) as rig:
            states = {p.quantity: p.states for p in STATE_POINTS}
            await rig.until(lambda: rig.values("tempo_today"), "the tariff state")
            assert states["tempo_today"][int(rig.values("tempo_today")[-1])] == "blue"
            assert states["tariff_contract"][int(rig.values("tariff_contract")[-1])] == "tempo"
            sim.meter.set_tempo(Colour.BLUE, Colour.RED)
            await rig.until(lambda: rig.events("tariff.tempo_tomorrow"), "the tariff.tempo_tomorrow event")
            event = rig.events("tariff.tempo_tomorrow")[0]
            assert (event.data["old"], event.data["new"], event.data["device"]) == ("unknown", "red", DEVICE)
            await rig.until(lambda: states["tempo_tomorrow"][int(rig.values("tempo_tomorrow")[-1])] == "red",
                            "tomorrow red as a reading")
            assert len(rig.events("tariff.tempo_tomorrow")) == 1


async def test_over_power_then_a_trip_raise_and_clear_each_alarm_once() -> None:
    with simulator(Mode.STANDARD, va=1000) as sim:
        async with running(TicDriver(options(sim.path, mode="standard"))) as rig:
            over, breaker = f"device.{DEVICE}.over_power", f"device.{DEVICE}.breaker_open"
            await rig.until(lambda: rig.values("apparent_power"), "frames")
            sim.meter.set_power(30000)  # 5 x PCOUP: the meter's filter trips it in about 9 of its seconds
            await rig.until(lambda: rig.alarms(breaker) == [True], "the breaker opens")
            assert rig.alarms(over)[0] is True
            trip = [n for n in rig.notices if isinstance(n, Alarm) and n.alarm_id == breaker][0]
            assert "over-power" in trip.text and trip.data["breaker"] == "open_over_power"
            states = {p.quantity: p.states for p in STATE_POINTS}
            await rig.until(lambda: states["breaker"][int(rig.values("breaker")[-1])] == "open_over_power",
                            "the breaker state as a reading")
            await rig.until(lambda: rig.values("apparent_power")[-1] == 0.0, "no power while open")
            sim.meter.set_power(1000)
            # re-armed while its filter is still over 1.69 the meter trips again at once, like a real one
            await rig.until(lambda: sim.meter.snapshot()["filter"][0] < 1.5, "the meter's filter decays")
            sim.meter.rearm()
            await rig.until(lambda: rig.alarms(breaker) == [True, False] and rig.alarms(over) == [True, False],
                            "both alarms cleared")
            await rig.frames(200)  # more frames change nothing: each alarm was raised once and cleared once
            assert rig.alarms(breaker) == [True, False] and rig.alarms(over) == [True, False]


async def test_an_alarm_active_before_a_restart_is_cleared_once_the_meter_says_it_ended() -> None:
    state = MemoryState()
    await state.save("linky", "alarms", {ADSC: ["breaker_open"]})
    with simulator(Mode.STANDARD, va=1000) as sim:
        async with running(TicDriver(options(sim.path, mode="standard")), state) as rig:
            breaker = f"device.{DEVICE}.breaker_open"
            await rig.until(lambda: rig.alarms(breaker) == [False], "the stale alarm cleared")
            await rig.frames(200)
            assert rig.alarms(breaker) == [False]


# --- silence, unplugging ---------------------------------------------------------------------------------------------


class FrameWriter:
    """A meter we drive by hand on a pty: frames while ``talking`` is set, nothing otherwise."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self.talking = asyncio.Event()
        self.talking.set()
        self.sent = 0

    def frame(self, papp: int) -> bytes:
        groups = [Group("ADCO", ADSC), Group("OPTARIF", "BASE"), Group("ISOUSC", "30"), Group("BASE", "001234567"),
                  Group("PTEC", "TH.."), Group("IINST", "005"), Group("IMAX", "090"), Group("PAPP", f"{papp:05d}"),
                  Group("HHPHC", "A"), Group("MOTDETAT", "000000")]
        return encode_frame(groups, Mode.HISTORIC)

    async def run(self) -> None:
        while True:
            await self.talking.wait()
            with contextlib.suppress(BlockingIOError):
                os.write(self.master, self.frame(1000 + self.sent % 5 * 10))
                self.sent += 1
            await asyncio.sleep(0.05)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


async def test_a_silent_meter_goes_offline_and_comes_back_with_its_next_frame() -> None:
    line = FrameWriter()
    writer = asyncio.create_task(line.run())
    try:
        async with running(TicDriver(options(line.path, mode="historic", meter_id=ADSC))) as rig:
            offline = f"device.{DEVICE}.offline"
            await rig.until(lambda: rig.values("apparent_power"), "frames")
            line.talking.clear()
            await rig.until(lambda: rig.alarms(offline) == [True], "offline after the silence")
            states = [e.data["state"] for e in rig.events("device.availability")]
            assert states == ["online", "offline"]
            line.talking.set()
            await rig.until(lambda: rig.alarms(offline) == [True, False], "back online")
            assert [e.data["state"] for e in rig.events("device.availability")] == ["online", "offline", "online"]
    finally:
        writer.cancel()
        line.close()


async def test_characters_with_a_parity_error_are_counted_and_lose_only_their_group() -> None:
    """With 7E1 (INPCK, no PARMRK) Linux hands a character with a parity or framing error over as NUL."""
    line = FrameWriter()
    good = line.frame(1230)
    bad = good.replace(b"PAPP", b"PA\x00P")  # one character of the PAPP group arrived with a parity error
    try:
        driver = TicDriver(options(line.path, mode="historic"))
        async with running(driver) as rig:
            await rig.until(lambda: driver.port_state == "open", "the port open")  # opening flushes the input
            for _ in range(3):
                os.write(line.master, bad)
            os.write(line.master, good)
            await rig.until(lambda: rig.values("apparent_power"), "the clean frame's power")
            assert rig.counters["parity_errors"] == 3
            assert rig.counters["decode_errors"] + rig.counters.get("checksum_errors", 0) >= 2
            assert rig.values("energy_base")[0] == 1234567.0  # the rest of a damaged frame is kept
            assert rig.values("apparent_power") == [1230.0]
    finally:
        line.close()


async def test_a_meter_never_heard_goes_offline_when_its_id_is_configured(tmp_path: Path) -> None:
    master, slave = os.openpty()
    try:
        async with running(TicDriver(options(os.ttyname(slave), mode="historic", meter_id=ADSC))) as rig:
            await rig.until(lambda: rig.alarms(f"device.{DEVICE}.offline") == [True], "offline, never heard")
            assert [e.data["state"] for e in rig.events("device.availability")] == ["offline"]
    finally:
        os.close(master)
        os.close(slave)


async def test_a_dongle_unplugged_and_plugged_back_recovers_by_itself(tmp_path: Path) -> None:
    link = tmp_path / "ttyUSB0"
    first = simulator(Mode.HISTORIC).start()
    link.symlink_to(first.path)
    second: LinkySimulator | None = None
    try:
        async with running(TicDriver(options(str(link), mode="historic"))) as rig:
            offline = f"device.{DEVICE}.offline"
            await rig.until(lambda: rig.values("apparent_power"), "frames")
            first.close()  # unplugged: the tty fails (EIO) and its path disappears
            link.unlink()
            await rig.until(lambda: rig.counters.get("link_errors", 0) >= 2, "reopen attempts while gone")
            await rig.until(lambda: rig.alarms(offline) == [True], "offline while unplugged")
            heard = len(rig.values("apparent_power"))
            second = simulator(Mode.HISTORIC).start()  # plugged back: the same path, a new tty
            link.symlink_to(second.path)
            await rig.until(lambda: rig.alarms(offline) == [True, False], "back online")
            await rig.until(lambda: len(rig.values("apparent_power")) > heard, "readings again")
    finally:
        first.close()
        if second is not None:
            second.close()


# --- the meter's clock ------------------------------------------------------------------------------------------------


def test_a_dated_value_takes_the_meters_time_unless_its_clock_is_degraded() -> None:
    from zaas_edge.drivers.tic.driver import horodate_stamp

    from zaas_edge.model import Stamp

    stamp = Stamp(2_000_000_000 * 10**9, 5, "boot", False)
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    good = horodate_stamp(stamp, Horodate.build(at))
    assert good.wall_ns == int(at.timestamp()) * 10**9 and good.synced and good.mono_ns == 5
    assert horodate_stamp(stamp, Horodate.build(at, degraded=True)) == stamp
    assert horodate_stamp(stamp, None) == stamp


@pytest.mark.parametrize("meter_id,device", [("031762120855", "linky-031762120855"), ("AB-12", "linky-ab12"),
                                             ("--", None)])
def test_the_device_id_is_made_of_the_driver_id_and_the_meter_id(meter_id: str, device: str | None) -> None:
    from zaas_edge.drivers.tic.driver import meter_device_id

    assert meter_device_id("linky", meter_id) == device


def test_the_example_configuration_block_is_valid_and_shows_the_defaults(tmp_path: Path) -> None:
    opts = load_driver_block(tmp_path, "tic")
    assert isinstance(opts, TicOptions) and opts.port == "/dev/ttyUSB0"
    defaults = TicOptions.model_validate({"id": "linky", "type": "tic", "port": "/dev/ttyUSB0"})
    assert opts.model_dump(exclude={"points"}) == defaults.model_dump(exclude={"points"})
    assert opts.points["apparent_power"].deadband_abs == 100


# --- bad input never crashes the driver ------------------------------------------------------------------------------

_CLEAN = {mode: b"".join(LinkyMeter(MeterConfig(mode, contract=c), curve=constant(900), start=T0,
                                    clock=ticking(T0)).frame() for c in Contract)
          for mode in (Mode.HISTORIC, Mode.STANDARD)}


@settings(max_examples=150, deadline=None)
@given(mode=st.sampled_from([Mode.HISTORIC, Mode.STANDARD]),
       edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=12),
       noise=st.binary(max_size=200))
def test_mutated_frames_and_noise_never_raise_out_of_the_frame_handler(mode: Mode, edits: list[tuple[int, int]],
                                                                      noise: bytes) -> None:
    data = bytearray(_CLEAN[mode])
    for at, value in edits:
        data[at % len(data)] = value
    stream = noise + bytes(data) + noise

    async def feed() -> Rig:
        driver = TicDriver(options("/dev/null", mode=mode.name.lower()))
        rig = Rig(driver)
        decoder = TicDecoder(mode)
        for i in range(0, len(stream), 97):
            for frame in decoder.feed(stream[i : i + 97]):
                driver._on_frame(rig.ctx, frame, mode)
        await asyncio.sleep(0)  # let the alarm-state saves run
        return rig

    rig = asyncio.run(feed())
    assert all(r.point.startswith("linky-") for r in rig.readings)
    assert all(r.value == r.value for r in rig.readings)  # no NaN made up from bad data


def test_points_md_lists_the_state_points_with_their_states_in_order() -> None:
    import re

    page = (Path(__file__).resolve().parents[1] / "drivers" / "tic" / "POINTS.md").read_text()
    section = page[page.index("## Tariff state points"):]
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| index \| ([^|(]+)", section, re.M))
    for p in STATE_POINTS:
        if p.states:
            assert [s.strip() for s in rows[p.quantity].split(",")] == list(p.states), p.quantity
        else:
            assert f"`{p.quantity}`" in section
