"""The alarm service in-process: a real hub, a real store (SQLite through the writer), a fake clock.

Readings go in through the hub as drivers send them; the alarms come out
through the hub (status, MQTT) and into the store's alarm lane, each with
its incident payload; the active ones survive a restart of the service.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from zaas_edge.alarms.baseline import HOUR_S, WEEK_H
from zaas_edge.alarms.service import STATE_KEY, STATE_OWNER, AlarmService
from zaas_edge.clock import FakeClock
from zaas_edge.config_model import Config
from zaas_edge.hub import Hub
from zaas_edge.model import Alarm, Event, Lane, Reading
from zaas_edge.service import ServiceContext
from zaas_edge.store import Store, Writer

WALL0 = 1_800_000_000 * 10**9 - (1_800_000_000 * 10**9) % (3600 * 10**9)  # on an hour


class Rig:
    """One gateway's worth of parts around the service."""

    def __init__(self, tmp: Path, rules: list[dict[str, Any]], **alarms: Any) -> None:
        self.config = Config.model_validate({
            "gateway": {"id": "gw-7", "site": "bldg-a", "state_dir": str(tmp), "runtime_dir": str(tmp)},
            "alarms": {"enabled": True, "flap_interval_s": 0, "summary_hold_s": 0, **alarms, "rules": rules}})
        self.clock = FakeClock(wall_ns=WALL0, mono_ns=10**9)
        self.hub = Hub()
        self.writer = Writer(self.config.store, self.config.store_path, self.clock)
        self.hub.on_readings("store", self.writer.submit)
        self.hub.on_notice("store", lambda a: self.writer.alarm(a) if isinstance(a, Alarm) else self.writer.event(a))
        self.alarms: list[Alarm] = []
        self._changed = asyncio.Event()
        self.hub.on_notice("test", self._seen)
        self.commands: dict[str, Callable[[dict[str, Any]], Any]] = {}
        self.service: AlarmService | None = None
        self.task: asyncio.Task[None] | None = None

    def _seen(self, item: Event | Alarm) -> None:
        if isinstance(item, Alarm) and item.source == "alarms":
            self.alarms.append(item)
            self._changed.set()

    async def start(self, history: Any = None) -> AlarmService:
        ctx = ServiceContext(name="alarms", config=lambda: self.config, hub=self.hub, clock=self.clock,
                             outbox=self.writer, drivers=None, notice=self.hub.notice,  # type: ignore[arg-type]
                             heartbeat=lambda: None,
                             add_command=lambda name, handler: self.commands.__setitem__(name, handler))
        self.service = AlarmService(ctx, history=history)
        self.service.tick_s = 0.01
        self.task = asyncio.create_task(self.service.run())
        await self.evaluated()
        return self.service

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.writer.flush()

    async def evaluated(self, n: int = 2) -> None:
        """Until the service has evaluated ``n`` more times (it evaluates on its tick)."""
        assert self.service is not None
        target = self.service.counters["evaluations"] + n
        async with asyncio.timeout(10):
            while self.service.counters["evaluations"] < target:
                await asyncio.sleep(0.005)

    def send(self, point: str, value: float, unit: str = "") -> None:
        self.hub.readings([Reading.at(self.clock.now(), point, value, unit)])

    async def step(self, seconds: float, *readings: tuple[str, float, str]) -> None:
        self.clock.advance(seconds)
        for p, v, u in readings:
            self.send(p, v, u)
        await self.evaluated()

    def stored_alarms(self) -> list[Alarm]:
        with Store(self.config.store_path, readonly=True) as store:
            return [s.item for s in store.read(Lane.ALARM, 0, 10_000)]


@pytest.fixture
async def rig_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    rigs: list[Rig] = []

    async def make(rules: list[dict[str, Any]], **alarms: Any) -> Rig:
        rig = Rig(tmp_path, rules, **alarms)
        await rig.writer.start()
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        if rig.task is not None and not rig.task.done():
            await rig.stop()
        await rig.writer.close()


class _NoHistory:
    """The store after its raw readings expired (sync keeps only a few hours of them)."""

    async def hourly(self, point: str, since_ns: int, until_ns: int) -> dict[int, float]:
        return {}


FREEZER = {"id": "freezer", "kind": "threshold", "points": ["room-3/temperature"], "above": -15.0,
           "hysteresis": 2.0, "delay_s": 60, "severity": "error",
           "action": "Check the cold room's door and compressor"}


@pytest.mark.parametrize("on_a_thread", [False, True], ids=["inline", "thread"])
async def test_an_alarm_carries_the_incident_and_reaches_the_alarm_lane(rig_factory: Any, on_a_thread: bool,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    if on_a_thread:
        monkeypatch.setattr("zaas_edge.alarms.service.THREAD_ABOVE", -1)  # as a building of thousands of points
    rig = await rig_factory([FREEZER])
    await rig.start()
    await rig.step(0, ("room-3/temperature", -20.0, "degC"))
    await rig.step(30, ("room-3/temperature", -12.0, "degC"))
    await rig.step(70, ("room-3/temperature", -11.5, "degC"))
    [up] = rig.alarms
    assert up.alarm_id == "rule.freezer.room-3.temperature" and up.active
    d = up.data
    assert (d["site"], d["gateway"], d["device"], d["point"]) == ("bldg-a", "gw-7", "room-3", "room-3/temperature")
    assert (d["value"], d["threshold"], d["unit"], d["severity"]) == (-11.5, -15.0, "degC", "error")
    assert d["action"] == "Check the cold room's door and compressor" and d["rule"] == "freezer"
    assert d["since"] == pytest.approx(WALL0 / 1e9 + 30)  # when the condition started, not when the delay ran out
    assert d["since_iso"].endswith("Z")
    assert rig.hub.active_alarms[up.alarm_id] is up
    listed = await rig.commands["alarms.list"]({})
    [row] = listed["alarms"]
    assert row["id"] == up.alarm_id and row["value"] == -11.5 and row["age_s"] == pytest.approx(70)
    await rig.step(10, ("room-3/temperature", -18.0, "degC"))
    assert [a.active for a in rig.alarms] == [True, False]
    down = rig.alarms[1]
    assert down.data["since"] == d["since"] and down.data["raised_value"] == -11.5 and down.data["value"] == -18.0
    assert down.severity.value == "error" and down.data["duration_s"] == pytest.approx(80)
    await rig.stop()
    assert [(a.alarm_id, a.active) for a in rig.stored_alarms()] == [(up.alarm_id, True), (up.alarm_id, False)]


async def test_active_alarms_survive_a_restart_and_one_that_ended_meanwhile_clears(rig_factory: Any) -> None:
    rules = [FREEZER | {"delay_s": 0},
             {"id": "dark", "kind": "stale", "points": ["meter-1/energy"], "after_s": 60}]
    rig = await rig_factory(rules)
    await rig.start()
    await rig.step(0, ("room-3/temperature", -10.0, "degC"), ("meter-1/energy", 5.0, "kWh"))
    await rig.step(61)
    assert sorted(a.alarm_id for a in rig.alarms if a.active) == ["rule.dark.meter-1.energy",
                                                                 "rule.freezer.room-3.temperature"]
    await rig.stop()
    # the daemon restarts: a new hub (nothing active in memory), the same store
    rig.hub.active_alarms.clear()
    rig.alarms.clear()
    await rig.start()
    await rig.step(120)
    assert rig.alarms == []  # not raised again
    assert set(rig.hub.active_alarms) == {"rule.dark.meter-1.energy", "rule.freezer.room-3.temperature"}
    await rig.step(5, ("room-3/temperature", -20.0, "degC"))  # the cold room recovered while the daemon was down
    assert [(a.alarm_id, a.active) for a in rig.alarms] == [("rule.freezer.room-3.temperature", False)]
    assert rig.alarms[0].data["since"] == pytest.approx(WALL0 / 1e9)  # the raise's, from before the restart
    assert set(rig.hub.active_alarms) == {"rule.dark.meter-1.energy"}
    await rig.stop()
    stored = [(a.alarm_id, a.active) for a in rig.stored_alarms()]
    assert stored.count(("rule.freezer.room-3.temperature", True)) == 1
    assert stored.count(("rule.freezer.room-3.temperature", False)) == 1
    assert stored.count(("rule.dark.meter-1.energy", True)) == 1
    doc = await rig.writer.load_state(STATE_OWNER, STATE_KEY)
    assert set(doc["alarms"]) == {"rule.dark.meter-1.energy"}


async def test_abnormal_consumption_against_the_stores_history(rig_factory: Any) -> None:
    rule = {"id": "spike", "kind": "consumption", "points": ["main/energy"], "baseline_ratio": 2.0,
            "min_excess": 1.0, "summary_after": 0}
    rig = await rig_factory([rule], baseline_weeks=2)
    # Two weeks of history in the store, up to the hour now beginning: 10 kWh in every hour.
    index = 0.0
    hours = 2 * WEEK_H + 2
    start = WALL0 - hours * HOUR_S * 10**9
    batch = []
    for h in range(hours):
        for k in range(4):
            wall = start + (h * HOUR_S + k * 900) * 10**9
            index += 2.5
            batch.append(Reading("main/energy", index, "kWh", wall, 0, "old-boot", True))
    rig.writer.submit(batch)
    await rig.writer.flush()
    svc = await rig.start()
    async with asyncio.timeout(10):
        while "main/energy" not in svc.baselines:
            await asyncio.sleep(0.01)
    assert svc.baselines["main/energy"] == pytest.approx(10.0)
    # the hour is counted from the first reading the service hears in it
    await rig.step(60, ("main/energy", index, "kWh"))
    await rig.step(600, ("main/energy", index + 15, "kWh"))
    assert rig.alarms == []  # 15 is under 2 x 10 + 1
    await rig.step(600, ("main/energy", index + 22, "kWh"))
    [up] = rig.alarms
    assert up.alarm_id == "rule.spike.main.energy" and up.data["threshold"] == pytest.approx(21.0)
    assert up.data["value"] == pytest.approx(22.0) and "usual 10" in up.text


async def test_twenty_meters_going_dark_raise_one_summary_alarm(rig_factory: Any) -> None:
    rule = {"id": "bus", "kind": "stale", "points": ["mbus-*/energy"], "after_s": 60, "summary_after": 5,
            "severity": "error", "action": "Check the M-Bus master and its line"}
    rig = await rig_factory([rule], summary_hold_s=20)
    await rig.start()
    meters = [f"mbus-{i:02d}/energy" for i in range(20)]
    await rig.step(0, *((m, 1.0, "kWh") for m in meters))
    for _ in range(10):
        await rig.step(10)
    [up] = rig.alarms
    assert up.alarm_id == "rule.bus.summary" and up.data["members"] == sorted(meters)
    assert up.data["action"] == "Check the M-Bus master and its line"


async def test_the_alarm_lane_decides_when_the_saved_document_missed_a_transition(rig_factory: Any) -> None:
    rules = [FREEZER | {"delay_s": 0},
             {"id": "bus", "kind": "stale", "points": ["m-*/e"], "after_s": 60, "summary_after": 2}]
    rig = await rig_factory(rules)
    await rig.start()
    await rig.step(0, ("room-3/temperature", -10.0, "degC"), ("m-1/e", 1.0, ""), ("m-2/e", 1.0, ""))
    await rig.step(61)
    assert sorted(a.alarm_id for a in rig.alarms) == ["rule.bus.summary", "rule.freezer.room-3.temperature"]
    await rig.stop()
    # a power cut after the store took the raises but before the document was saved
    await rig.writer.save_state(STATE_OWNER, STATE_KEY, {"v": 1}, 0)
    rig.hub.active_alarms.clear()
    rig.alarms.clear()
    await rig.start()
    await rig.step(1)
    assert rig.alarms == []
    assert set(rig.hub.active_alarms) == {"rule.bus.summary", "rule.freezer.room-3.temperature"}
    await rig.step(1, ("room-3/temperature", -20.0, "degC"), ("m-1/e", 2.0, ""), ("m-2/e", 2.0, ""))
    assert sorted((a.alarm_id, a.active) for a in rig.alarms) == [("rule.bus.summary", False),
                                                                   ("rule.freezer.room-3.temperature", False)]


async def test_baselines_learned_live_survive_a_restart_when_the_store_kept_no_history(rig_factory: Any) -> None:
    rule = {"id": "spike", "kind": "consumption", "points": ["main/energy"], "baseline_ratio": 2.0,
            "summary_after": 0}
    rig = await rig_factory([rule], baseline_weeks=1)
    svc = await rig.start()
    await rig.step(0, ("main/energy", 100.0, "kWh"))
    await rig.step(1800, ("main/energy", 104.0, "kWh"))
    await rig.step(1800, ("main/energy", 110.0, "kWh"))  # the next hour
    hour = WALL0 // 10**9 // HOUR_S
    assert svc.learned["main/energy"] == {hour: (WALL0 + 1800 * 10**9, 104.0), hour + 1: (WALL0 + 3600 * 10**9, 110.0)}
    await rig.stop()
    # A week later (the store's raw readings long expired), the same hour of the week comes round again.
    rig.clock.advance(WEEK_H * HOUR_S)
    svc = await rig.start(history=_NoHistory())
    async with asyncio.timeout(10):
        while "main/energy" not in svc.baselines:
            await asyncio.sleep(0.01)
    assert svc.baselines["main/energy"] == pytest.approx(6.0)  # hour + 1 of last week: 110 - 104


@pytest.mark.parametrize("doc", [{"v": 1, "alarms": ["x"], "engine": "y", "learned": 3},
                                 {"alarms": {"rule.a": "x", "rule.b": {"wall_ns": "z"}}}, {"v": 99}])
async def test_a_damaged_saved_document_starts_with_nothing_active(rig_factory: Any, doc: Any) -> None:
    rig = await rig_factory([FREEZER | {"delay_s": 0}])
    await rig.writer.save_state(STATE_OWNER, STATE_KEY, doc, 0)
    await rig.start()
    await rig.step(1, ("room-3/temperature", -10.0, "degC"))
    assert [(a.alarm_id, a.active) for a in rig.alarms] == [("rule.freezer.room-3.temperature", True)]


async def test_a_drivers_own_alarm_opens_an_incident_with_the_rules_action(rig_factory: Any) -> None:
    rule = {"id": "breaker", "kind": "fault", "mode": "alarm", "alarms": ["device.*.breaker_open"],
            "severity": "critical", "action": "Call the electrician: the meter opened its breaker"}
    rig = await rig_factory([rule])
    # raised by the Linky driver before the service started: taken from the hub's active alarms
    rig.hub.notice(Alarm("device.linky-1.breaker_open", True, "Linky 0312: breaker open", "tic", rig.clock.now()))
    await rig.start()
    await rig.step(1)
    [up] = rig.alarms
    assert up.alarm_id == "rule.breaker.device.linky-1.breaker_open" and up.severity.value == "critical"
    assert up.data["action"].startswith("Call the electrician") and up.data["device"] == "linky-1"
    rig.hub.notice(Alarm("device.linky-1.breaker_open", False, "Linky 0312: closed", "tic", rig.clock.now()))
    await rig.step(1)
    assert [a.active for a in rig.alarms] == [True, False]
