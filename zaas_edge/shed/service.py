"""The load-shedding service: the engine fed by the hub, its actions carried out on the actuators.

The engine (:func:`zaas_edge.rules.step`) decides; this service gathers its
inputs and carries its decisions out:

- **When it steps.** At once, inside the hub's callback, for every batch that
  carries a sample of a limit's point (the reading that crosses a limit is
  acted on before the callback returns: the shed command's task is already
  scheduled), and on a 1 s tick so a silent meter goes stale and guards and
  overrides expire on time. A failed command or a new override wakes a step
  at once. ``now`` is the monotonic clock; the wall time (10-minute blocks)
  and local time (schedules) are given only while the clock is synchronised,
  else blocks align to the monotonic clock and schedule rules do not apply
  (tariff rules still do: the meter says its own period).
- **Commands never block the engine.** Each runs as its own task, one at a
  time per load (a newer command for the same load supersedes one still
  waiting). A failure (the write raised, or the read-back did not confirm in
  time) goes into the next step's ``actuator_faults``, at once: the engine
  raises ``shed.actuator_failed.<load>`` and moves on to the next load. The
  fault is held for ``FAULT_HOLD_S``; then the engine may try the load again
  (the alarm clears and is raised again if it still fails).
- **Dry run** (``dry_run = true``): every action is logged and published as
  its event (``data.dry_run`` true); nothing is switched.
- **At start** nothing is known of the loads: the engine assumes each runs at
  full power, the pessimistic view for the limits, and nothing is switched
  until the meter has been heard (every limit's points) or ``stale_after_s``
  has passed (then a meter still missing sends the loads to their safe
  state). A load whose actuator is a Modbus point the driver has already
  read, or a relay whose state topic has told, starts from that state (a load
  left off by the previous run is known to be off, and is restored when the
  headroom allows).
- **At stop** the loads are left as they are (a restart must not switch the
  building); commands in flight are cancelled.

Every action is one event (:mod:`zaas_edge.shed.audit`), which is also its one journal line;
``zaas-edge status`` shows a summary under ``services.shed`` and the control
commands ``shed.status`` and ``shed.override`` serve ``zaas-edge shed``.
"""

from __future__ import annotations

__all__ = ["ShedService", "TICK_S", "FAULT_HOLD_S", "MAX_OVERRIDE_S", "OVERRIDE_MODES"]

import asyncio
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from zaas_edge.aio import wait_event
from zaas_edge.errors import PermanentError
from zaas_edge.model import Alarm, Event, Reading
from zaas_edge.rules import loads as ld
from zaas_edge.rules.config import LoadConfig, SheddingConfig
from zaas_edge.rules.engine import EngineState, initial_state, step
from zaas_edge.rules.model import Action, Inputs, LocalTime, Modulate, OverrideMode, Restore, Shed
from zaas_edge.rules.model import Alarm as EngineAlarm
from zaas_edge.service import Service, ServiceContext
from zaas_edge.shed.actuators import (
    Actuator,
    ActuatorCommand,
    ActuatorFailed,
    ModbusActuator,
    MqttActuator,
    SequenceActuator,
    build_actuators,
)
from zaas_edge.shed.audit import action_event, describe, engine_alarm, failure_event, override_event
from zaas_edge.shed.inputs import InputGatherer
from zaas_edge.shed.status import ShedToday, shed_status

TICK_S = 1.0
FAULT_HOLD_S = 60.0
MAX_OVERRIDE_S = 7 * 86400.0
#: The words an override takes: the CLI's on/off and the MQTT command's restore/shed.
OVERRIDE_MODES: Mapping[str, OverrideMode] = {"on": "restore", "off": "shed", "restore": "restore",
                                              "shed": "shed", "auto": "auto"}
SINK = "shed"


class ShedService(Service):
    name = "shed"

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx)
        self.log = ctx.log
        self.cfg: SheddingConfig = ctx.config().shedding
        self.state: EngineState = initial_state(self.cfg)
        self.gather = InputGatherer(self.cfg)
        self.actuators: Mapping[str, Actuator] = build_actuators(self.cfg, ctx.drivers, ctx.messages)
        self.inputs = Inputs()  # those of the last step
        self.today = ShedToday()
        self.faults: dict[str, float] = {}  # load -> monotonic s until which its fault is held
        self.counters = {"steps": 0, "actions": 0, "commands": 0, "confirmed": 0, "failures": 0,
                         "step_errors": 0, "superseded": 0}
        self.last_action: str | None = None
        self.last_error: str | None = None
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._latest_cmd: dict[str, int] = {}
        self._cmd_seq = 0
        self._started_s = 0.0
        self._armed = False
        self._running = False
        self._loads: dict[str, LoadConfig] = {c.id: c for c in self.cfg.loads}

    # -- the clock -------------------------------------------------------------------------

    def _now(self) -> float:
        return self.ctx.clock.monotonic_ns() / 1e9

    # -- the service ------------------------------------------------------------------------

    async def run(self) -> None:
        ctx = self.ctx
        self._started_s = self._now()
        self._running = True
        self.gather.states = self._enum_states()
        for act in self.actuators.values():
            if isinstance(act, MqttActuator):
                act.attach()  # a relay's retained state may tell where it stands
        ctx.hub.on_readings(SINK, self._on_readings)
        ctx.hub.on_notice(SINK, self._on_notice)
        ctx.add_command("shed.status", self._status_command)
        ctx.add_command("shed.override", self._override_command)
        self.log.info("load shedding running%s: %d limits, %d loads, %d actuators",
                      " in dry run (nothing is switched)" if self.cfg.dry_run else "",
                      len(self.cfg.limits), len(self.cfg.loads), len(self.actuators))
        try:
            while True:
                await wait_event(self._wake, TICK_S)
                self._wake.clear()
                if self.gather.unknown_states:
                    self.gather.unknown_states.clear()
                    self.gather.states = self._enum_states()
                for act in self.actuators.values():
                    if isinstance(act, MqttActuator):
                        act.attach()  # follow the MQTT service across its restarts
                self._step()
                self._refresh_status()
                ctx.heartbeat()
        finally:
            self._running = False
            ctx.hub.off(self._on_readings)
            ctx.hub.off(self._on_notice)
            for act in self.actuators.values():
                if isinstance(act, MqttActuator):
                    act.detach()
            tasks = list(self._tasks)
            for t in tasks:
                t.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    def _enum_states(self) -> dict[str, Sequence[str]]:
        """The declared states of every enumerated point (the TIC tariff points), by point key."""
        try:
            infos = self.ctx.drivers.drivers_info()
        except Exception:  # noqa: BLE001  (a status snapshot; without it tariff points are ignored)
            return {}
        return {p.key: p.states for info in infos.values() for p in info.points if p.states}

    # -- the hub's callbacks ---------------------------------------------------------------

    def _on_readings(self, batch: Sequence[Reading]) -> None:
        if self.gather.readings(batch):
            self._step()

    def _on_notice(self, item: Event | Alarm) -> None:
        if isinstance(item, Alarm) and item.source != SINK and self.gather.alarm(item):
            self._wake.set()

    # -- one step --------------------------------------------------------------------------

    def _arm(self, now: float) -> bool:
        if self._armed:
            return True
        heard = {s.point for s in self.state.latest.values()}
        waiting = self.gather.limit_points - heard
        if waiting and now - self._started_s < self.cfg.stale_after_s:
            return False
        self._armed = True
        self._seed(now)
        return True

    def _step(self) -> None:
        now = self._now()
        try:
            if not self._armed:
                # feed the samples into the latest values only: nothing is decided before the meter is heard
                pending = self.gather.take()
                latest = dict(self.state.latest)
                for s in pending:
                    if s.point not in latest or latest[s.point].mono_s <= s.mono_s:
                        latest[s.point] = s
                self.state = replace(self.state, latest=latest)
                if not self._arm(now):
                    return
                self.gather.put_back(pending)  # the first step feeds them into the limits properly
            self.inputs = self._inputs(now)
            self.state, actions = step(self.state, self.inputs, now)
            self.counters["steps"] += 1
            if actions:
                self._carry_out(actions, now)
        except Exception as exc:  # noqa: BLE001  (one bad step must not stop the service or the hub)
            self.counters["step_errors"] += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            n = self.counters["step_errors"]
            if n & (n - 1) == 0:
                self.log.exception("load-shedding step failed (%d times so far)", n)

    def _inputs(self, now: float) -> Inputs:
        stamp = self.ctx.clock.now()
        wall_s = stamp.wall_ns / 1e9 if stamp.synced else None
        local = None
        if wall_s is not None:
            tm = time.localtime(wall_s)
            local = LocalTime(tm.tm_wday, tm.tm_hour * 60 + tm.tm_min)
            self.today.roll((tm.tm_year, tm.tm_mon, tm.tm_mday), self.state, now)
        for load in [k for k, until in self.faults.items() if until <= now]:
            del self.faults[load]
        return Inputs(samples=self.gather.take(), wall_s=wall_s, local=local, tariff=self.gather.tariff(),
                      overpower=self.gather.overpower(), actuator_faults=frozenset(self.faults),
                      overrides=self.ctx.overrides.in_force(now),
                      limit_overrides=self.ctx.limit_overrides.in_force(now))

    def _carry_out(self, actions: Sequence[Action], now: float) -> None:
        stamp = self.ctx.clock.now()
        for a in actions:
            if isinstance(a, EngineAlarm):
                self.ctx.notice(engine_alarm(a, stamp))
                continue
            self.counters["actions"] += 1
            cfg = self._loads[a.load]
            setpoint = a.setpoint if isinstance(a, Modulate) else ld.setpoint(cfg, a.level)
            if not a.dry_run:
                self._launch(a, ActuatorCommand(a.load, a.level, setpoint))  # first: the command is what is late
            self.ctx.notice(action_event(a, setpoint, stamp))
            self.last_action = describe(a)  # the event is the journal's one line about it

    # -- commands ---------------------------------------------------------------------------

    def _launch(self, action: Shed | Restore | Modulate, cmd: ActuatorCommand) -> None:
        self._cmd_seq += 1
        self._latest_cmd[cmd.load] = self._cmd_seq
        task = asyncio.get_running_loop().create_task(self._command(cmd, self._cmd_seq),
                                                      name=f"shed.{action.kind}.{cmd.load}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _command(self, cmd: ActuatorCommand, seq: int) -> None:
        lock = self._locks.setdefault(cmd.load, asyncio.Lock())
        async with lock:
            if self._latest_cmd.get(cmd.load) != seq:
                self.counters["superseded"] += 1
                return
            cfg = self._loads[cmd.load]
            act = self.actuators.get(cfg.actuator) if cfg.actuator is not None else None
            self.counters["commands"] += 1
            try:
                if act is None:
                    raise ActuatorFailed(f"load {cmd.load} has no actuator configured; it cannot be switched")
                confirmed = await act.apply(cmd)
            except ActuatorFailed as exc:
                self._failed(cmd, cfg, str(exc))
                return
            except Exception as exc:  # noqa: BLE001  (an actuator bug is a failed command, not a dead service)
                self._failed(cmd, cfg, f"{type(exc).__name__}: {exc}")
                return
            self.counters["confirmed"] += 1
            self.log.debug("load %s: level %g confirmed (%s)", cmd.load, cmd.level, confirmed)

    def _failed(self, cmd: ActuatorCommand, cfg: LoadConfig, error: str) -> None:
        self.counters["failures"] += 1
        self.last_error = error
        self.faults[cmd.load] = self._now() + FAULT_HOLD_S
        self.ctx.notice(failure_event(cmd.load, cfg.actuator, cmd.level, error, self.ctx.clock.now()))
        self._wake.set()  # the engine hears of it now and moves on to the next load

    # -- what is known at start --------------------------------------------------------------

    def _known_level(self, c: LoadConfig) -> float | None:
        """The level the load's actuator says it is at, when a Modbus point has been read or a relay told."""
        act = self.actuators.get(c.actuator) if c.actuator is not None else None
        if isinstance(act, SequenceActuator):
            act = act.steps[0] if act.steps else None
        value: float | None = None
        if isinstance(act, ModbusActuator):
            r = self.ctx.hub.latest.get(act.point)
            if r is None or not math.isfinite(r.value):
                return None
            value = r.value
            if act.cfg.kind == "modbus_register" and c.kind != "onoff":
                if c.kind == "hvac":
                    return max(0.0, min(c.max_offset_k, c.max_offset_k - value))
                if c.kind == "ev":
                    return 0.0 if value < c.min_a else min(float(c.max_a), value)
                return max(0.0, min(float(c.stages), round(value)))
        elif isinstance(act, MqttActuator) and act.state is not None:
            value = 1.0 if act.state else 0.0
        if value is None or c.kind not in ("onoff", "stages", "ev"):
            return None
        return ld.full_level(c) if value > 0 else 0.0

    def _seed(self, now: float) -> None:
        """Start each load from what its actuator tells, where it tells; the rest are assumed at full."""
        loads = dict(self.state.loads)
        for c in self.cfg.loads:
            level = self._known_level(c)
            st = loads[c.id]
            if level is None or level == st.level:
                continue
            loads[c.id] = replace(ld.moved(c, st, level, now), changed_s=None, from_level=level)
            self.log.info("load %s found at level %g at start", c.id, level)
        self.state = replace(self.state, loads=loads)

    # -- status and control -------------------------------------------------------------------

    def _refresh_status(self) -> None:
        now = self._now()
        st = self.state
        summary = {
            "state": "running" if self._armed else "waiting for the meter",
            "dry_run": self.cfg.dry_run,
            "stages": {k: v.stage.value for k, v in st.limits.items()},
            "shed": sorted(k for k, v in st.loads.items() if v.level < ld.full_level(self._loads[k])),
            "faults": sorted(self.faults),
            "overrides": dict(self.ctx.overrides.snapshot(now)),
            "last_action": self.last_action,
            "last_error": self.last_error,
            "rejected_readings": self.gather.rejected,
            "in_flight": len(self._tasks),
            **self.counters,
        }
        self.ctx.status.clear()
        self.ctx.status.update(summary)

    def status(self) -> dict[str, Any]:
        """The whole picture (the ``shed.status`` command)."""
        now = self._now()
        extra = {"state": "running" if self._armed else "waiting for the meter", "counters": dict(self.counters),
                 "faults": sorted(self.faults), "last_action": self.last_action, "last_error": self.last_error,
                 "rejected_readings": self.gather.rejected, "last_rejection": self.gather.last_rejection,
                 "clock_synced": self.inputs.wall_s is not None}
        return shed_status(self.state, self.inputs, now, self.ctx.overrides, self.today, self.faults, extra)

    def _check_running(self) -> None:
        if not self._running:
            raise PermanentError("load shedding is not running (is shedding.enabled true?)")

    async def _status_command(self, req: dict[str, Any]) -> dict[str, Any]:
        self._check_running()
        return self.status()

    async def _override_command(self, req: dict[str, Any]) -> dict[str, Any]:
        self._check_running()
        load, word, for_s = req.get("load"), req.get("mode"), req.get("for_s")
        known = sorted(self._loads)
        if not isinstance(load, str) or load not in self._loads:
            raise PermanentError(f"unknown load {load!r} (known: {', '.join(known) or 'none configured'})")
        if not isinstance(word, str) or word not in OVERRIDE_MODES:
            raise PermanentError(f"mode must be one of on, off, auto; got {word!r}")
        mode = OVERRIDE_MODES[word]
        if mode != "auto":
            if (not isinstance(for_s, int | float) or isinstance(for_s, bool) or not math.isfinite(for_s)
                    or not 0 < for_s <= MAX_OVERRIDE_S):
                raise PermanentError(f"for_s must be a duration in seconds, above 0 and at most "
                                     f"{MAX_OVERRIDE_S:.0f} (7 days); got {for_s!r}")
        ttl_s = float(for_s) if mode != "auto" and isinstance(for_s, int | float) else 0.0
        now = self._now()
        self.ctx.overrides.set(load, mode, ttl_s, now)
        self.ctx.notice(override_event(load, mode, ttl_s if mode != "auto" else None, "control socket",
                                       self.ctx.clock.now()))
        self._step()  # applied now, not at the next tick
        self._refresh_status()
        return {"load": load, "mode": mode, "override": self.ctx.overrides.state(load, now),
                "state": self.status()["loads"][load]}
