"""The load-shedding service on a real hub: readings in, commands out through a fake DriverControl.

The clock is a FakeClock so staleness and guards move when the test says;
the service's 1 s tick is real, and the tests wait for what it does (a
write, an event), never for a time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from zaas_edge.clock import FakeClock
from zaas_edge.config_model import Config
from zaas_edge.errors import PermanentError
from zaas_edge.hub import Hub
from zaas_edge.model import Alarm, Event, Point, Quality, Reading, Severity
from zaas_edge.rules.config import SheddingConfig
from zaas_edge.rules.model import TariffState
from zaas_edge.service import DriverInfo, MessagePort, ServiceContext
from zaas_edge.shed.inputs import InputGatherer
from zaas_edge.shed.overrides import LimitOverrides, LoadOverrides
from zaas_edge.shed.service import ShedService

METER = "meter/power"
STAMP = FakeClock().now()


def shedding(load_extra: dict[str, dict[str, Any]] | None = None, **over: Any) -> SheddingConfig:
    base: dict[str, Any] = {
        "enabled": True, "stale_after_s": 10, "restore_spacing_s": 0,
        "limits": [{"id": "main", "points": [METER], "limit_w": 3000}],
        "loads": [
            {"id": "boiler", "circuit": "main", "priority": 0, "power_w": 1000, "dwell_s": 0, "min_on_s": 0,
             "actuator": "relay1"},
            {"id": "heater", "circuit": "main", "priority": 1, "power_w": 1500, "dwell_s": 0, "min_on_s": 0,
             "actuator": "relay2"},
        ],
        "actuators": [
            {"id": "relay1", "kind": "modbus_coil", "driver": "rm", "point": "relay_1", "latency_s": 0.5},
            {"id": "relay2", "kind": "modbus_coil", "driver": "rm", "point": "rm/relay_2", "latency_s": 0.5},
        ],
    }
    base.update(over)
    for ld in base["loads"]:
        ld.update((load_extra or {}).get(ld["id"], {}))
    return SheddingConfig.model_validate(base)


class FakeDrivers:
    """DriverControl: records each write; a point in ``refuse`` raises as a disobedient relay does."""

    def __init__(self, points: tuple[Point, ...] = ()) -> None:
        self.writes: list[tuple[str, float]] = []
        self.refuse: set[str] = set()
        self.points = points
        self.changed = asyncio.Event()

    def drivers_info(self) -> dict[str, DriverInfo]:
        return {"tic": DriverInfo("tic", "tic", True, "running", self.points)}

    async def poll_now(self, driver_id: str) -> None:
        return None

    async def set_enabled(self, driver_id: str, enabled: bool) -> None:
        return None

    async def write(self, point: str, value: float) -> float:
        await asyncio.sleep(0)
        self.writes.append((point, value))
        self.changed.set()
        if point in self.refuse:
            raise PermanentError(f"{point}: wrote {value:g}, read back {1 - value:g}")
        return value


class Harness:
    def __init__(self, cfg: SheddingConfig, *, points: tuple[Point, ...] = (),
                 messages: Callable[[], MessagePort | None] = lambda: None) -> None:
        self.config = Config(shedding=cfg)
        self.hub = Hub()
        self.clock = FakeClock()
        self.drivers = FakeDrivers(points)
        self.notices: list[Event | Alarm] = []
        self.commands: dict[str, Callable[[dict[str, Any]], Any]] = {}
        self.overrides = LoadOverrides(lambda: [ld.id for ld in cfg.loads])
        self.limit_overrides = LimitOverrides(lambda: [lim.id for lim in cfg.limits])
        self.ctx = ServiceContext(
            name="shed", config=lambda: self.config, hub=self.hub, clock=self.clock, outbox=None,  # type: ignore[arg-type]
            drivers=self.drivers, notice=self._notice, heartbeat=lambda: None,
            add_command=lambda name, handler: self.commands.__setitem__(name, handler), overrides=self.overrides,
            limit_overrides=self.limit_overrides, messages=messages,
        )
        self.service = ShedService(self.ctx)
        self.task: asyncio.Task[None] | None = None

    def _notice(self, item: Event | Alarm) -> None:
        self.notices.append(item)
        self.hub.notice(item)

    async def __aenter__(self) -> Harness:
        self.task = asyncio.create_task(self.service.run())
        await self.until(lambda: "shed.status" in self.commands, "the service to start")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    def power(self, watts: float, point: str = METER, unit: str = "W", quality: Quality = Quality.OK) -> None:
        self.hub.readings([Reading.at(self.clock.now(), point, watts, unit, quality)])

    async def until(self, predicate: Callable[[], Any], what: str, timeout: float = 10.0) -> None:
        async def loop() -> None:
            while not predicate():
                self.drivers.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.drivers.changed.wait(), 0.05)

        try:
            await asyncio.wait_for(loop(), timeout)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}; writes={self.drivers.writes}; "
                                 f"notices={[self.name(n) for n in self.notices]}") from None

    @staticmethod
    def name(n: Event | Alarm) -> str:
        return n.kind if isinstance(n, Event) else f"{n.alarm_id}:{'on' if n.active else 'off'}"

    def events(self, kind: str) -> list[Event]:
        return [n for n in self.notices if isinstance(n, Event) and n.kind == kind]

    def alarms(self, alarm_id: str) -> list[bool]:
        return [n.active for n in self.notices if isinstance(n, Alarm) and n.alarm_id == alarm_id]

    async def call(self, cmd: str, **args: Any) -> Any:
        return await self.commands[cmd]({"cmd": cmd, **args})


async def test_power_over_the_limit_sheds_the_lowest_priority_load_with_its_reason() -> None:
    async with Harness(shedding()) as h:
        h.power(2000)
        h.clock.advance(1)
        h.power(3600)  # 600 W over: the boiler (priority 0, 1000 W) covers it
        await h.until(lambda: h.drivers.writes, "the shed write")
        assert h.drivers.writes == [("rm/relay_1", 0.0)]
        [ev] = h.events("shed.shed")
        assert ev.data["load"] == "boiler" and ev.data["level"] == 0.0
        assert ev.data["rule"] == "instant: shed" and ev.data["limit"] == "main"
        assert ev.data["values"]["power_w.0"] == 3600 and ev.data["dry_run"] is False
        assert ev.severity is Severity.NOTICE
        assert h.alarms("shed.limit_warn.main") == [True]
        st = await h.call("shed.status")
        assert st["loads"]["boiler"]["state"] == "off" and st["loads"]["heater"]["state"] == "on"
        assert st["limits"]["main"]["value_w"] == 3600 and st["limits"]["main"]["limit_w"] == 3000
        assert st["limits"]["main"]["stage"] == "shed"
        await h.until(lambda: h.service.counters["confirmed"] == 1, "the read-back")
        h.service._refresh_status()
        assert h.ctx.status["shed"] == ["boiler"] and h.ctx.status["state"] == "running"


async def test_an_actuator_that_fails_raises_an_alarm_and_the_next_load_is_shed() -> None:
    async with Harness(shedding()) as h:
        h.drivers.refuse.add("rm/relay_1")
        h.power(3600)
        await h.until(lambda: ("rm/relay_2", 0.0) in h.drivers.writes, "the next load to be shed")
        assert h.drivers.writes == [("rm/relay_1", 0.0), ("rm/relay_2", 0.0)]
        assert h.alarms("shed.actuator_failed.boiler") == [True]
        [fail] = h.events("shed.actuator_failed")
        assert fail.data["load"] == "boiler" and "read back" in fail.data["error"]
        assert [e.data["load"] for e in h.events("shed.shed")] == ["boiler", "heater"]
        st = await h.call("shed.status")
        assert st["loads"]["boiler"]["fault"] is True and st["loads"]["boiler"]["state"] == "on"
        assert st["loads"]["boiler"]["next"]["action"] == "retry"


async def test_dry_run_reports_what_it_would_do_and_switches_nothing() -> None:
    async with Harness(shedding(dry_run=True)) as h:
        h.power(3600)
        await h.until(lambda: h.events("shed.shed"), "the dry-run event")
        [ev] = h.events("shed.shed")
        assert ev.data["dry_run"] is True and ev.text.startswith("[dry run] shed boiler")
        assert h.service.counters["commands"] == 0 and h.drivers.writes == []


async def test_a_stale_meter_sends_every_load_to_its_safe_state_and_raises_one_alarm() -> None:
    async with Harness(shedding({"heater": {"safe_state": "keep"}})) as h:  # the heater stays as it is
        h.power(2000)
        await h.until(lambda: h.service._armed, "the service to hear the meter")
        h.clock.advance(11)  # past stale_after_s with no reading: the next tick finds it stale
        await h.until(lambda: h.drivers.writes, "the safe-state write")
        assert h.drivers.writes == [("rm/relay_1", 0.0)]
        assert h.alarms("shed.meter_stale.main") == [True]
        [ev] = h.events("shed.shed")
        assert ev.data["rule"] == "stale meter: safe state"
        h.power(2000)
        await h.until(lambda: h.alarms("shed.meter_stale.main") == [True, False], "the meter back")


async def test_nothing_is_switched_before_the_meter_is_heard_and_readings_that_are_not_fresh_do_not_count() -> None:
    async with Harness(shedding()) as h:
        h.power(9000, quality=Quality.STALE)
        h.power(9000, unit="A")
        await h.until(lambda: h.service.gather.rejected == 2, "the rejections")
        h.service._refresh_status()
        assert h.ctx.status["state"] == "waiting for the meter"
        assert h.service.gather.last_rejection == f"{METER}: unit 'A' is not a power (W, VA, kW, kVA)"
        st = await h.call("shed.status")
        assert st["state"] == "waiting for the meter" and st["limits"]["main"]["value_w"] is None
        assert h.drivers.writes == [] and h.events("shed.shed") == []
        h.power(3.6, unit="kW")
        await h.until(lambda: h.drivers.writes, "the shed once the meter is heard")
        assert h.drivers.writes == [("rm/relay_1", 0.0)]


async def test_an_override_from_the_control_socket_applies_at_once_and_unknown_loads_are_refused() -> None:
    async with Harness(shedding()) as h:
        h.power(2000)
        r = await h.call("shed.override", load="heater", mode="off", for_s=7200)
        assert r["mode"] == "shed" and r["override"]["remaining_s"] == 7200 and r["state"]["state"] == "off"
        await h.until(lambda: h.drivers.writes, "the override's write")
        assert h.drivers.writes == [("rm/relay_2", 0.0)]
        [ev] = h.events("shed.shed")
        assert ev.data["rule"] == "override: shed"
        assert [e.data["mode"] for e in h.events("shed.override")] == ["shed"]
        st = await h.call("shed.status")
        assert st["loads"]["heater"]["override"] == {"mode": "shed", "remaining_s": 7200}
        assert st["loads"]["heater"]["next"]["action"] == "auto"
        with pytest.raises(PermanentError, match=r"unknown load 'pump' \(known: boiler, heater\)"):
            await h.call("shed.override", load="pump", mode="on", for_s=60)
        with pytest.raises(PermanentError, match="mode must be one of on, off, auto"):
            await h.call("shed.override", load="heater", mode="maybe", for_s=60)
        for bad in (0, -5, float("nan"), "2h", True, 8 * 86400):
            with pytest.raises(PermanentError, match="for_s must be a duration"):
                await h.call("shed.override", load="heater", mode="on", for_s=bad)
        r = await h.call("shed.override", load="heater", mode="auto")
        assert r["override"]["mode"] == "auto"


async def test_an_override_written_by_mqtt_into_the_table_is_applied_on_the_next_tick() -> None:
    async with Harness(shedding({"boiler": {"restore_delay_s": 0}})) as h:
        h.power(1000)
        h.overrides.set("boiler", "shed", 60, h.clock.monotonic_ns() / 1e9)  # what cmd/loadshed/boiler/set does
        await h.until(lambda: h.drivers.writes, "the override's write")
        assert h.drivers.writes == [("rm/relay_1", 0.0)]
        h.clock.advance(61)
        h.power(1000)
        await h.until(lambda: len(h.drivers.writes) == 2, "the load back once the override expired")
        assert h.drivers.writes[1] == ("rm/relay_1", 1.0)


async def test_a_limit_set_over_mqtt_holds_the_building_lower_until_it_expires() -> None:
    """cmd/limit/<id>/set (a demand response): the same 2500 W that fits under 3000 W sheds under 2000 W."""
    async with Harness(shedding({"boiler": {"restore_delay_s": 0, "min_off_s": 0}})) as h:
        h.power(2500)
        h.clock.advance(1)
        h.power(2500)
        await asyncio.sleep(0.05)
        assert h.drivers.writes == []
        h.limit_overrides.set("main", 2000, 60, h.clock.monotonic_ns() / 1e9)  # what the MQTT command does
        h.clock.advance(1)
        h.power(2500)
        await h.until(lambda: h.drivers.writes, "the shed under the lower limit")
        assert h.drivers.writes == [("rm/relay_1", 0.0)]
        st = await h.call("shed.status")
        assert st["limits"]["main"]["limit_w"] == 2000 and st["limits"]["main"]["limit_source"] == "override"
        h.clock.advance(61)  # expired: the configured 3000 W again, the boiler fits back
        h.power(1500)
        await h.until(lambda: len(h.drivers.writes) == 2, "the load back under the configured limit")
        assert h.drivers.writes[1] == ("rm/relay_1", 1.0)


async def test_a_load_found_off_at_start_is_known_off_and_comes_back_when_the_headroom_allows() -> None:
    quick = {"min_off_s": 0, "restore_delay_s": 0}
    async with Harness(shedding({"boiler": quick, "heater": quick})) as h:
        h.hub.readings([Reading.at(h.clock.now(), "rm/relay_1", 0.0, "")])  # the driver's poll of the coil
        h.power(1000)
        await h.until(lambda: h.drivers.writes, "the restore")
        assert h.drivers.writes == [("rm/relay_1", 1.0)]
        [ev] = h.events("shed.restore")
        assert ev.data["rule"] == "restore: headroom"


async def test_stopping_leaves_the_loads_and_the_hub_alone() -> None:
    h = Harness(shedding())
    async with h:
        h.power(2000)
    writes = list(h.drivers.writes)
    h.power(9000)
    await asyncio.sleep(0)
    assert h.drivers.writes == writes == []
    with pytest.raises(PermanentError, match="not running"):
        await h.call("shed.status")


async def test_a_charger_is_modulated_through_its_current_register() -> None:
    cfg = shedding(
        loads=[{"id": "car", "circuit": "main", "kind": "ev", "power_w": 3680, "min_a": 6, "max_a": 16,
                "dwell_s": 0, "min_on_s": 0, "actuator": "wallbox"}],
        actuators=[{"id": "wallbox", "kind": "modbus_register", "driver": "wb", "point": "current_limit",
                               "latency_s": 0.5}])
    async with Harness(cfg) as h:
        h.power(3600)  # 600 W over: 3 A of the charger's 16 (230 W/A)
        await h.until(lambda: h.drivers.writes, "the setpoint write")
        [(point, amps)] = h.drivers.writes
        assert point == "wb/current_limit" and 6 <= amps < 16
        [ev] = h.events("shed.modulate")
        assert ev.data["setpoint"] == amps


async def test_the_linky_tariff_state_lowers_the_limit_and_its_over_power_alarm_reaches_the_engine() -> None:
    linky = "linky-1/apparent_power"
    states = (Point("linky-1", "tariff_period", "", states=("base", "hp", "hc", "peak", "normal", "unknown")),
              Point("linky-1", "tempo_today", "", states=("blue", "white", "red", "unknown")),
              Point("linky-1", "peak_active", "", states=("off", "on")))
    cfg = shedding(limits=[{"id": "main", "points": [linky], "limit_w": 9000,
                            "tariff": [{"tempo": "red", "period": "HP", "limit_w": 3000}]}])
    async with Harness(cfg) as h:  # the driver declares its points once it has read the meter
        now = h.clock.now()
        tariff = [Reading.at(now, "linky-1/tariff_period", 1, ""), Reading.at(now, "linky-1/tempo_today", 2, ""),
                  Reading.at(now, "linky-1/peak_active", 1, "")]
        h.hub.readings(tariff)
        assert h.service.gather.tariff() == TariffState()
        h.drivers.points = states
        await h.until(lambda: h.service.gather.states, "the states asked again")
        h.hub.readings([*tariff, Reading.at(now, linky, 3600, "VA")])
        await h.until(lambda: h.drivers.writes, "the shed under the red-day limit")
        st = await h.call("shed.status")
        assert st["tariff"] == {"period": "HP", "tempo": "red", "peak": True}
        assert st["limits"]["main"]["limit_w"] == 3000 and st["limits"]["main"]["limit_source"] == "tariff"
        h.hub.notice(Alarm("device.linky-1.over_power", True, "over", "tic", now))
        assert h.service.gather.overpower() == frozenset({"main"})


class TellingPort:
    """A MessagePort whose relay has told its state (a retained message) before anything was asked."""

    connected = True

    def __init__(self, told: dict[str, bytes]) -> None:
        self.told = told
        self.published: list[tuple[str, bytes]] = []

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.published.append((topic, payload))

    def watch(self, topic: str, callback: Callable[[str, bytes], None]) -> Callable[[], None]:
        if topic in self.told:
            callback(topic, self.told[topic])
        return lambda: None


async def test_a_relay_that_told_it_is_off_starts_off_and_a_load_without_actuator_is_a_fault() -> None:
    port = TellingPort({"shellies/boiler/relay/0": b"off"})
    cfg = shedding(actuators=[{"id": "relay1", "kind": "mqtt", "topic": "shellies/boiler/relay/0/command"}],
                   load_extra={"heater": {"actuator": None}})
    async with Harness(cfg, messages=lambda: port) as h:
        h.power(2000)
        await h.until(lambda: h.service._armed, "the service to hear the meter")
        st = await h.call("shed.status")
        assert st["loads"]["boiler"]["state"] == "off" and st["loads"]["boiler"]["next"]["action"] == "restore"
        h.power(3600)  # the boiler is already off: the heater is next, and it cannot be switched
        await h.until(lambda: h.alarms("shed.actuator_failed.heater") == [True], "the fault")
        [fail] = h.events("shed.actuator_failed")
        assert fail.data["error"] == "load heater has no actuator configured; it cannot be switched"
        assert port.published == []


READINGS = st.builds(
    Reading, point=st.sampled_from([METER, "linky-1/tariff_period", "x/y", ""]) | st.text(max_size=20),
    value=st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10**20, 10**20),
    unit=st.sampled_from(["W", "kW", "VA", "A", ""]) | st.text(max_size=5), wall_ns=st.integers(0, 2**63),
    mono_ns=st.integers(0, 2**63), boot_id=st.just("b"), synced=st.booleans(), quality=st.sampled_from(list(Quality)))


@settings(max_examples=300, deadline=None)
@given(st.lists(READINGS, max_size=30))
def test_garbage_readings_never_raise_and_only_finite_fresh_power_becomes_a_sample(batch: list[Reading]) -> None:
    g = InputGatherer(shedding(), states={"linky-1/tariff_period": ("base", "hp")})
    g.readings(batch)
    for r in batch:
        g.alarm(Alarm(r.point, r.synced, "x", "y", r.stamp))
    g.alarm(Alarm("device.meter.over_power", True, "x", "y", batch[0].stamp if batch else STAMP))
    assert g.overpower() == frozenset({"main"})
    for s in g.take():
        assert s.point == METER and s.watts == s.watts and abs(s.watts) != float("inf")
    g.tariff()


JUNK = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10) | st.lists(st.integers())


@settings(max_examples=150, deadline=None)
@example(load="boiler", mode="auto", for_s="2h").via("a duration as text with auto")
@example(load="boiler", mode="auto", for_s=[1]).via("a list with auto")
@given(load=JUNK | st.sampled_from(["boiler", "heater"]), mode=JUNK | st.sampled_from(["on", "off", "auto"]),
       for_s=JUNK)
def test_any_override_request_is_applied_or_refused_in_one_sentence(load: object, mode: object,
                                                                    for_s: object) -> None:
    async def go() -> None:
        async with Harness(shedding()) as h:
            h.power(2000)
            try:
                r = await h.call("shed.override", load=load, mode=mode, for_s=for_s)
            except PermanentError as exc:
                assert "\n" not in str(exc)
            else:
                assert r["load"] == load and r["mode"] in ("shed", "restore", "auto")

    asyncio.run(go())
