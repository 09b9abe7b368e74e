"""The supervisor restarts crashed tasks with backoff and never lets one take the others down."""

from __future__ import annotations

import asyncio

import pytest

from zaas_edge.clock import FakeClock
from zaas_edge.model import Alarm, Event
from zaas_edge.runtime import FAILING_AFTER, Supervisor, TaskSpec, TaskState


def make(notices: list, **kw) -> Supervisor:
    return Supervisor(now=FakeClock().now, notice=notices.append,
                      backoff_initial_s=kw.pop("initial", 0.01), backoff_max_s=kw.pop("max", 0.04), **kw)


async def test_crashing_task_restarts_and_others_keep_running() -> None:
    notices: list = []
    sup = make(notices)
    crashes = 0
    ticks = 0
    restarted = asyncio.Event()
    steady = asyncio.Event()

    async def bad() -> None:
        nonlocal crashes
        crashes += 1
        if crashes >= 3:
            restarted.set()
            await asyncio.Event().wait()
        raise RuntimeError(f"boom {crashes}")

    async def good() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            if ticks == 20:
                steady.set()
            await asyncio.sleep(0.001)

    sup.start(TaskSpec("bad", bad))
    sup.start(TaskSpec("good", good))
    await asyncio.wait_for(asyncio.gather(restarted.wait(), steady.wait()), 5)
    snap = sup.snapshot()
    assert snap["bad"]["restarts"] == 2
    assert snap["bad"]["state"] == "running"
    assert snap["bad"]["last_error"] == "RuntimeError: boom 2"
    assert snap["good"]["restarts"] == 0 and snap["good"]["state"] == "running"
    crashed = [n for n in notices if isinstance(n, Event) and n.kind == "task.crashed"]
    assert [n.data["error"] for n in crashed] == ["RuntimeError: boom 1", "RuntimeError: boom 2"]
    await sup.stop_all()
    assert sup.running() == []
    assert sup.health["good"].state == TaskState.STOPPED


async def test_backoff_grows_exponentially_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float) -> None:
        waits.append(delay)
        await real_sleep(0)

    monkeypatch.setattr("zaas_edge.backoff.random.random", lambda: 1.0)  # no jitter
    notices: list = []
    sup = make(notices, initial=1.0, max=8.0)
    done = asyncio.Event()
    runs = 0

    async def always_fails() -> None:
        nonlocal runs
        runs += 1
        if runs > 6:
            done.set()
            await asyncio.Event().wait()
        raise ValueError("no bus")

    monkeypatch.setattr("zaas_edge.runtime.asyncio.sleep", fake_sleep)
    sup.start(TaskSpec("drv", always_fails))
    await asyncio.wait_for(done.wait(), 5)
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    alarms = [n for n in notices if isinstance(n, Alarm)]
    assert len(alarms) == 1 and alarms[0].active and alarms[0].alarm_id == "task.drv.failing"
    assert sup.health["drv"].consecutive_failures == 6 >= FAILING_AFTER
    await sup.stop_all()


async def test_task_that_returns_is_restarted_unless_finite() -> None:
    sup = make([])
    runs = {"loop": 0, "once": 0}
    again = asyncio.Event()

    async def loop_returns() -> None:
        runs["loop"] += 1
        if runs["loop"] == 2:
            again.set()
            await asyncio.Event().wait()

    async def once() -> None:
        runs["once"] += 1

    sup.start(TaskSpec("loop", loop_returns))
    sup.start(TaskSpec("once", once, restart_on_return=False))
    await asyncio.wait_for(again.wait(), 5)
    assert runs == {"loop": 2, "once": 1}
    assert sup.health["once"].state == TaskState.FINISHED
    assert sup.health["loop"].last_error == "returned unexpectedly"
    await sup.stop_all()


async def test_watchdog_gate_follows_critical_heartbeats(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("zaas_edge.runtime.time.monotonic", lambda: now[0])
    sup = make([], heartbeat_timeout_s=10.0)
    sup.start(TaskSpec("writer", lambda: asyncio.Event().wait(), critical=True))
    sup.start(TaskSpec("driver", lambda: asyncio.Event().wait(), critical=False))
    await asyncio.sleep(0)
    assert sup.stale_critical() == []
    now[0] += 11
    assert sup.stale_critical() == ["writer"]  # a silent non-critical task does not matter
    sup.heartbeat("writer")
    assert sup.stale_critical() == []
    await sup.stop_all()
    now[0] += 100
    assert sup.stale_critical() == []  # stopped tasks are not expected to heartbeat


async def test_stop_cancels_within_timeout_even_if_task_ignores_cancel_slowly() -> None:
    sup = make([])
    cleaned = asyncio.Event()

    async def slow_cleanup() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.set()

    sup.start(TaskSpec("t", slow_cleanup))
    await asyncio.sleep(0)
    await sup.stop("t", timeout=1)
    assert cleaned.is_set()
    assert sup.health["t"].state == TaskState.STOPPED


async def test_failing_alarm_clears_once_the_task_runs_stable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("zaas_edge.runtime.STABLE_AFTER_S", 0.05)
    notices: list = []
    sup = make(notices, initial=0.001, max=0.002)
    runs = 0
    cleared = asyncio.Event()

    def notice(item) -> None:
        notices.append(item)
        if isinstance(item, Alarm) and not item.active:
            cleared.set()

    sup._notice = notice

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= FAILING_AFTER:
            raise OSError("port busy")
        await asyncio.Event().wait()

    sup.start(TaskSpec("drv", flaky))
    await asyncio.wait_for(cleared.wait(), 5)
    states = [(a.alarm_id, a.active) for a in notices if isinstance(a, Alarm)]
    assert states == [("task.drv.failing", True), ("task.drv.failing", False)]
    assert sup.health["drv"].consecutive_failures == 0
    await sup.stop_all()


async def test_checkpoint_stops_a_loop_whose_cancellation_a_library_swallowed() -> None:
    from zaas_edge.aio import checkpoint

    turns = 0
    swallowed = asyncio.Event()

    async def loop_with_a_leaky_library() -> None:
        nonlocal turns
        while True:
            checkpoint()
            turns += 1
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                swallowed.set()  # what a library with the 3.11 wait_for race does

    task = asyncio.create_task(loop_with_a_leaky_library())
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.wait_for(swallowed.wait(), 5)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert turns == 1
