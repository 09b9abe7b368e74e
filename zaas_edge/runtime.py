"""The supervisor: one asyncio task per driver and per core service.

A task that crashes is logged, reported as an event and restarted with
exponential backoff; it never takes the others down. Critical tasks (the
store writer, and drivers marked critical) heartbeat; the systemd watchdog is
petted only while every critical task has heartbeated recently, so a stuck
writer gets the daemon restarted while a lost uplink does not.
"""

from __future__ import annotations

__all__ = ["Supervisor", "TaskSpec", "TaskHealth", "TaskState"]

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from zaas_edge.aio import wait_for
from zaas_edge.backoff import Backoff
from zaas_edge.model import Alarm, Event, Severity, Stamp

log = logging.getLogger("zaas_edge.runtime")

# A task that ran this long before failing is considered to have been healthy:
# its backoff starts over instead of growing.
STABLE_AFTER_S = 60.0
# Consecutive crashes after which an alarm is raised (cleared once stable again).
FAILING_AFTER = 5


class TaskState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    STOPPED = "stopped"
    FINISHED = "finished"


@dataclass(frozen=True)
class TaskSpec:
    """What to run. ``factory`` is called anew for every (re)start."""

    name: str
    factory: Callable[[], Awaitable[None]]
    critical: bool = False
    # A task whose coroutine returns normally is finished, unless it must run for ever.
    restart_on_return: bool = True
    kind: str = "service"  # "driver" or "service", for status output


@dataclass
class TaskHealth:
    name: str
    kind: str
    critical: bool
    state: TaskState = TaskState.STARTING
    starts: int = 0
    restarts: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None
    last_error_mono: float | None = None
    started_mono: float | None = None
    last_heartbeat_mono: float | None = None
    next_start_mono: float | None = None
    counters: dict[str, int] = field(default_factory=dict)

    def as_dict(self, now: float) -> dict[str, Any]:
        age = lambda t: None if t is None else round(now - t, 3)  # noqa: E731
        return {
            "kind": self.kind,
            "critical": self.critical,
            "state": self.state.value,
            "restarts": self.restarts,
            "consecutive_failures": self.consecutive_failures,
            "last_error": self.last_error,
            "last_error_age_s": age(self.last_error_mono),
            "uptime_s": age(self.started_mono) if self.state == TaskState.RUNNING else None,
            "heartbeat_age_s": age(self.last_heartbeat_mono),
            "next_start_in_s": None if self.next_start_mono is None else round(max(0.0, self.next_start_mono - now), 3),
            "counters": dict(self.counters),
        }


class Supervisor:
    def __init__(
        self,
        *,
        now: Callable[[], Stamp],
        notice: Callable[[Event | Alarm], None],
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        heartbeat_timeout_s: float = 30.0,
    ) -> None:
        self._now = now
        self._notice = notice
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.health: dict[str, TaskHealth] = {}

    # -- lifecycle -----------------------------------------------------------

    def start(self, spec: TaskSpec) -> None:
        if spec.name in self._tasks and not self._tasks[spec.name].done():
            raise RuntimeError(f"task {spec.name!r} is already running")
        health = TaskHealth(spec.name, spec.kind, spec.critical)
        # Keep counters across a reconfiguration-driven restart of the same task.
        old = self.health.get(spec.name)
        if old is not None:
            health.counters = old.counters
        self.health[spec.name] = health
        self._tasks[spec.name] = asyncio.create_task(self._supervise(spec, health), name=spec.name)

    async def stop(self, name: str, timeout: float = 5.0) -> None:
        task = self._tasks.pop(name, None)
        if task is None:
            return
        task.cancel()
        try:
            await wait_for(asyncio.shield(task), timeout)
        except (TimeoutError, asyncio.CancelledError):
            pass
        except Exception:  # already reported by _supervise
            pass
        h = self.health.get(name)
        if h is not None:
            h.state = TaskState.STOPPED

    async def stop_all(self, timeout: float = 5.0, *, names: list[str] | None = None) -> None:
        targets = [n for n in (names if names is not None else list(self._tasks))]
        await asyncio.gather(*(self.stop(n, timeout) for n in targets))

    def forget(self, name: str) -> None:
        self.health.pop(name, None)

    def running(self) -> list[str]:
        return [n for n, t in self._tasks.items() if not t.done()]

    # -- heartbeats and the watchdog -----------------------------------------

    def heartbeat(self, name: str) -> None:
        h = self.health.get(name)
        if h is not None:
            h.last_heartbeat_mono = time.monotonic()

    def stale_critical(self) -> list[str]:
        """Critical tasks that have not heartbeated within the timeout."""
        now = time.monotonic()
        stale = []
        for h in self.health.values():
            if not h.critical or h.state == TaskState.STOPPED:
                continue
            ref = h.last_heartbeat_mono or h.started_mono
            if ref is None or now - ref > self.heartbeat_timeout_s:
                stale.append(h.name)
        return stale

    def snapshot(self) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        return {name: h.as_dict(now) for name, h in sorted(self.health.items())}

    # -- the supervision loop ------------------------------------------------

    async def _supervise(self, spec: TaskSpec, h: TaskHealth) -> None:
        backoff = Backoff(self.backoff_initial_s, self.backoff_max_s)
        while True:
            h.state = TaskState.RUNNING
            h.starts += 1
            h.started_mono = time.monotonic()
            h.next_start_mono = None
            h.last_heartbeat_mono = h.started_mono
            stable = None
            if h.consecutive_failures:
                stable = asyncio.get_running_loop().call_later(STABLE_AFTER_S, self._stable, spec, h, h.starts)
            error: Exception | None = None
            try:
                await spec.factory()
            except asyncio.CancelledError:
                h.state = TaskState.STOPPED
                raise
            except Exception as exc:
                error = exc
            finally:
                if stable is not None:
                    stable.cancel()
            if error is None and not spec.restart_on_return:
                h.state = TaskState.FINISHED
                return
            self._crashed(spec, h, error)
            if time.monotonic() - h.started_mono >= STABLE_AFTER_S:
                backoff.reset()
            wait = backoff.next()
            h.state = TaskState.BACKOFF
            h.next_start_mono = time.monotonic() + wait
            try:
                await asyncio.sleep(wait)
            except asyncio.CancelledError:
                h.state = TaskState.STOPPED
                raise
            h.restarts += 1

    def _stable(self, spec: TaskSpec, h: TaskHealth, starts: int) -> None:
        """The task has run long enough since its last restart to count as recovered."""
        if h.starts != starts or h.state != TaskState.RUNNING:
            return
        if h.consecutive_failures >= FAILING_AFTER:
            log.info("%s runs again after %d failures", spec.name, h.consecutive_failures,
                     extra={"fields": {"task": spec.name}})
            self._notice(Alarm(f"task.{spec.name}.failing", False, f"{spec.name} runs again",
                               "runtime", self._now(), Severity.WARNING, {"task": spec.name}))
        h.consecutive_failures = 0

    def _crashed(self, spec: TaskSpec, h: TaskHealth, exc: BaseException | None) -> None:
        h.consecutive_failures += 1
        h.last_error = "returned unexpectedly" if exc is None else f"{type(exc).__name__}: {exc}"
        h.last_error_mono = time.monotonic()
        fields = {"task": spec.name, "restarts": h.restarts, "failures": h.consecutive_failures}
        if exc is None:
            log.error("%s stopped on its own; restarting", spec.name, extra={"fields": fields})
        else:
            log.error("%s crashed: %s; restarting with backoff", spec.name, h.last_error,
                      exc_info=exc, extra={"fields": fields})
        self._notice(Event("task.crashed", f"{spec.name} crashed: {h.last_error}", "runtime", self._now(),
                           Severity.ERROR, {"task": spec.name, "error": h.last_error,
                                            "consecutive_failures": h.consecutive_failures}))
        if h.consecutive_failures == FAILING_AFTER:
            self._notice(Alarm(f"task.{spec.name}.failing", True,
                               f"{spec.name} crashed {FAILING_AFTER} times in a row: {h.last_error}",
                               "runtime", self._now(), Severity.ERROR, {"task": spec.name}))
