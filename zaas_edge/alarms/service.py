"""The alarm service: the alarm rules fed by the hub, each transition an alarm that opens an incident.

The evaluator (:func:`zaas_edge.rules.alarms.evaluate`) decides; this service
gathers its inputs and hands its transitions on:

- **Inputs.** Readings from the hub, buffered between two evaluations (at
  most ``MAX_PENDING``; past that the oldest are dropped and counted); the
  drivers' own alarm transitions (for ``fault`` rules by alarm); the wall and
  local time while the clock is synchronised; and, for consumption rules
  with a baseline, the same hour of the previous weeks read from the store
  (:mod:`zaas_edge.alarms.baseline`) at start and at every new hour.
- **When.** Every ``TICK_S`` on the monotonic clock, so a silent meter goes
  stale on time even when nothing arrives.
- **Out.** Each transition is a :class:`~zaas_edge.model.Alarm` through
  ``ctx.notice`` (:mod:`zaas_edge.alarms.incident`): stored in the alarm lane
  that sync sends ahead of readings, retained on MQTT ``alarm/<id>``, logged.
- **Across restarts.** The active alarms are saved in the store
  (``driver_state``, under ``service:alarms``) after every change. At start
  they are handed back to the evaluator, counted as raised already (never
  raised again), put back among the hub's active alarms (``status``, MQTT),
  and each clears once its condition is seen to have ended, or at once when
  its rule was removed from the configuration.

``zaas-edge status`` shows a summary under ``services.alarms``; the control
command ``alarms.list`` serves ``zaas-edge alarms list``.
"""

from __future__ import annotations

__all__ = ["AlarmService", "TICK_S", "MAX_PENDING", "STATE_OWNER", "STATE_KEY", "StateStore"]

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from zaas_edge.alarms.baseline import HOUR_S, WEEK_H, HistoryReader, StoreHistory, baseline, hourly_use
from zaas_edge.alarms.incident import SOURCE, Where, to_alarm
from zaas_edge.model import Alarm, Event, Lane, Reading, Severity, Stamp
from zaas_edge.rules.alarms import (
    AlarmInputs,
    AlarmsSection,
    AlarmState,
    alarm_id,
    evaluate,
    initial_state,
    restore,
    snapshot,
)
from zaas_edge.rules.alarms.engine import SUMMARY
from zaas_edge.rules.model import LocalTime
from zaas_edge.service import Service, ServiceContext

TICK_S = 1.0
MAX_PENDING = 200_000
THREAD_ABOVE = 2000  # readings plus tracked subjects past which an evaluation runs on a thread
RECONCILE_ROWS = 5000  # the alarm lane's latest rows read at start
STATE_OWNER = "service:alarms"  # a driver id never has a colon: no clash in driver_state
STATE_KEY = "active"
SINK = "alarms"
_NS = 1_000_000_000


@runtime_checkable
class StateStore(Protocol):
    """The store's small-document table (``driver_state``), which the daemon's writer offers."""

    async def load_state(self, driver: str, key: str) -> dict[str, Any] | None: ...

    async def save_state(self, driver: str, key: str, value: Mapping[str, Any], now_ns: int) -> None: ...


def _table(value: object) -> dict[str, Any]:
    """A table of the saved document, or an empty one when damaged (a start never fails on it)."""
    return dict(value) if isinstance(value, dict) else {}


class AlarmService(Service):
    name = "alarms"
    tick_s: float = TICK_S  # tests step a fake clock faster

    def __init__(self, ctx: ServiceContext, *, history: HistoryReader | None = None) -> None:
        super().__init__(ctx)
        config = ctx.config()
        self.cfg: AlarmsSection = config.alarms
        self.where = Where(config.gateway.site, config.gateway.id)
        self.state: AlarmState = initial_state(self.cfg)
        self.history: HistoryReader = history or StoreHistory(config.store_path)
        self.raised: dict[str, Alarm] = {}  # the alarms this service holds active, as raised
        self.baselines: dict[str, float] = {}
        self._baseline_set = frozenset(self._baseline_points())
        # Each baseline point's last index in each hour, as heard live (kept in the saved document): the
        # baseline still has its weeks when sync has let the raw readings of the store expire.
        self.learned: dict[str, dict[int, tuple[int, float]]] = {}
        self._baseline_hour: int | None = None
        self._baseline_task: asyncio.Task[None] | None = None
        self._pending: deque[Reading] = deque()
        self._device_alarms: dict[str, bool] = {}
        self.counters = {"evaluations": 0, "raised": 0, "cleared": 0, "dropped_readings": 0, "errors": 0,
                         "save_failures": 0}
        self.last_error: str | None = None
        self._dirty = False

    def _now(self) -> float:
        return self.ctx.clock.monotonic_ns() / _NS

    # -- the service ------------------------------------------------------------------------

    async def run(self) -> None:
        ctx = self.ctx
        await self._restore()
        for a in ctx.hub.active_alarms.values():
            if a.source != SOURCE and not a.alarm_id.startswith("rule."):
                self._device_alarms[a.alarm_id] = True
        ctx.hub.on_readings(SINK, self._on_readings)
        ctx.hub.on_notice(SINK, self._on_notice)
        ctx.add_command("alarms.list", self._list_command)
        ctx.log.info("alarm rules running: %d rules, %d alarms active from before", len(self.cfg.rules),
                     len(self.raised))
        try:
            while True:
                self._refresh_baselines()
                await self._evaluate()
                if self._dirty:
                    await self._save()
                self._refresh_status()
                ctx.heartbeat()
                await asyncio.sleep(self.tick_s)
        finally:
            ctx.hub.off(self._on_readings)
            ctx.hub.off(self._on_notice)
            if self._baseline_task is not None:
                self._baseline_task.cancel()
            if self._dirty:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._save())

    # -- the hub's callbacks ----------------------------------------------------------------

    def _on_readings(self, batch: Sequence[Reading]) -> None:
        self._pending.extend(batch)
        if self._baseline_set:
            self._learn(batch)
        over = len(self._pending) - MAX_PENDING
        if over > 0:
            for _ in range(over):
                self._pending.popleft()
            self.counters["dropped_readings"] += over

    def _learn(self, batch: Sequence[Reading]) -> None:
        keep = self.cfg.baseline_weeks * WEEK_H + 2
        for r in batch:
            if r.point not in self._baseline_set or not r.synced or r.quality.value not in ("ok", "estimated"):
                continue
            if not isinstance(r.value, float | int) or not math.isfinite(r.value):
                continue
            hours = self.learned.setdefault(r.point, {})
            h = r.wall_ns // _NS // HOUR_S
            if h not in hours:
                self._dirty = True  # a new hour to remember: saved with the next tick
                for old in [k for k in hours if k < h - keep]:
                    del hours[old]
            got = hours.get(h)
            if got is None or r.wall_ns >= got[0]:
                hours[h] = (r.wall_ns, float(r.value))

    def _on_notice(self, item: Event | Alarm) -> None:
        if isinstance(item, Alarm) and item.source != SOURCE and not item.alarm_id.startswith("rule."):
            self._device_alarms[item.alarm_id] = item.active

    # -- one evaluation ----------------------------------------------------------------------

    def _inputs(self, stamp: Stamp) -> AlarmInputs:
        readings = tuple(self._pending)
        self._pending.clear()
        device, self._device_alarms = self._device_alarms, {}
        wall_s = stamp.wall_ns / _NS if stamp.synced else None
        local = None
        if wall_s is not None:
            tm = time.localtime(wall_s)
            local = LocalTime(tm.tm_wday, tm.tm_hour * 60 + tm.tm_min)
        return AlarmInputs(readings, device, dict(self.baselines), wall_s, local)

    async def _evaluate(self) -> None:
        now = self._now()
        stamp = self.ctx.clock.now()
        try:
            inputs = self._inputs(stamp)
            if len(inputs.readings) + len(self.state.tracks) > THREAD_ABOVE:
                # A large building: off the event loop, so the load-shedding step that runs inside the
                # hub's callbacks is never held up by a pass over thousands of points.
                self.state, transitions = await asyncio.to_thread(evaluate, self.state, inputs, now)
            else:
                self.state, transitions = evaluate(self.state, inputs, now)
        except Exception as exc:  # noqa: BLE001  (one bad evaluation must not stop the service)
            self.counters["errors"] += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            n = self.counters["errors"]
            if n & (n - 1) == 0:
                self.ctx.log.exception("alarm evaluation failed (%d times so far)", n)
            return
        self.counters["evaluations"] += 1
        for t in transitions:
            before = self.raised.get(t.alarm_id)
            alarm = to_alarm(t, stamp, now, self.where, before.data if before is not None else None)
            if t.active:
                self.raised[t.alarm_id] = alarm
                self.counters["raised"] += 1
            else:
                self.raised.pop(t.alarm_id, None)
                self.counters["cleared"] += 1
            self._dirty = True
            self.ctx.notice(alarm)

    # -- persistence ------------------------------------------------------------------------

    def _store(self) -> StateStore | None:
        box = self.ctx.outbox
        return box if isinstance(box, StateStore) else None

    async def _restore(self) -> None:
        store = self._store()
        if store is None:
            return
        try:
            doc = await store.load_state(STATE_OWNER, STATE_KEY)
        except Exception as exc:  # noqa: BLE001  (a degraded store: start with nothing active)
            self.ctx.log.warning("active alarms from before the restart not read: %s", exc)
            return
        doc = doc if isinstance(doc, dict) else {}
        engine = {"v": 1, "alarms": _table(_table(doc.get("engine")).get("alarms")),
                  "summaries": _table(_table(doc.get("engine")).get("summaries"))}
        for aid, a in _table(doc.get("alarms")).items():
            try:
                stamp = Stamp(int(a["wall_ns"]), int(a["mono_ns"]), str(a["boot_id"]), bool(a["synced"]))
                alarm = Alarm(str(aid), True, str(a["text"]), SOURCE, stamp, Severity(a["severity"]),
                              dict(a.get("data") or {}))
            except (KeyError, TypeError, ValueError):
                continue
            self.raised[alarm.alarm_id] = alarm
        for point, hours in _table(doc.get("learned")).items():
            if point in self._baseline_set and isinstance(hours, dict):
                with contextlib.suppress(TypeError, ValueError, IndexError):
                    self.learned[point] = {int(h): (int(v[0]), float(v[1])) for h, v in hours.items()}
        await self._reconcile(engine)
        self.state = restore(self.state, engine, self._now())
        for alarm in self.raised.values():
            self.ctx.hub.active_alarms.setdefault(alarm.alarm_id, alarm)  # status and MQTT see it; not raised again

    async def _reconcile(self, engine: dict[str, Any]) -> None:
        """Trust the alarm lane over the saved document where they differ.

        The document is saved just after the transitions are handed to the
        store: a stop between the two (a power cut) leaves the lane with a
        raise or a clear the document does not know. The last transition of
        each of this service's alarms among the lane's latest rows decides.
        """
        box = self.ctx.outbox
        try:
            last = (await box.position(SINK, Lane.ALARM)).last_seq
            rows = await box.read(Lane.ALARM, max(0, last - RECONCILE_ROWS), RECONCILE_ROWS)
        except Exception as exc:  # noqa: BLE001  (a degraded store: the document alone decides)
            self.ctx.log.debug("alarm lane not read at start: %s", exc)
            return
        latest: dict[str, Alarm] = {}
        for row in rows:
            item = row.item
            if isinstance(item, Alarm) and item.source == SOURCE:
                latest[item.alarm_id] = item
        for aid, a in latest.items():
            rule, subject = a.data.get("rule"), a.data.get("subject")
            if a.active and aid not in self.raised and isinstance(rule, str) and isinstance(subject, str):
                self.raised[aid] = a
                if subject == SUMMARY:
                    members = [str(m) for m in a.data.get("members") or []]
                    engine["summaries"][rule] = members
                    for m in members:
                        engine["alarms"][alarm_id(rule, m)] = {"rule": rule, "subject": m, "in_summary": True}
                else:
                    engine["alarms"][aid] = {"rule": rule, "subject": subject, "in_summary": False}
            elif not a.active and aid in self.raised:
                del self.raised[aid]
                engine["alarms"].pop(aid, None)
                if subject == SUMMARY and isinstance(rule, str):
                    for m in engine["summaries"].pop(rule, []):
                        engine["alarms"].pop(alarm_id(rule, str(m)), None)

    async def _save(self) -> None:
        store = self._store()
        self._dirty = False
        if store is None:
            return
        doc = {"v": 1, "engine": snapshot(self.state),
               "alarms": {aid: {"text": a.text, "severity": a.severity.value, "wall_ns": a.stamp.wall_ns,
                                "mono_ns": a.stamp.mono_ns, "boot_id": a.stamp.boot_id, "synced": a.stamp.synced,
                                "data": dict(a.data)}
                          for aid, a in sorted(self.raised.items())},
               "learned": {p: {str(h): [w, v] for h, (w, v) in sorted(hours.items())}
                           for p, hours in sorted(self.learned.items())}}
        try:
            await store.save_state(STATE_OWNER, STATE_KEY, doc, self.ctx.clock.now().wall_ns)
        except Exception as exc:  # noqa: BLE001  (retried with the next change or the next tick)
            self._dirty = True
            self.counters["save_failures"] += 1
            self.last_error = f"saving the active alarms: {exc}"

    # -- baselines --------------------------------------------------------------------------

    def _baseline_points(self) -> list[str]:
        return sorted({p for r in self.cfg.rules if r.kind == "consumption" and r.baseline_ratio is not None
                       for p in r.points if not any(c in p for c in "*?[")})

    def _refresh_baselines(self) -> None:
        stamp = self.ctx.clock.now()
        points = self._baseline_points()
        if not points or not stamp.synced:
            return
        hour = stamp.wall_ns // _NS // HOUR_S
        if hour == self._baseline_hour or (self._baseline_task is not None and not self._baseline_task.done()):
            return
        self._baseline_hour = hour
        self._baseline_task = asyncio.get_running_loop().create_task(self._load_baselines(points, hour),
                                                                     name="alarms.baseline")

    async def _load_baselines(self, points: list[str], hour: int) -> None:
        weeks = self.cfg.baseline_weeks
        since = (hour - WEEK_H * weeks - 1) * HOUR_S * _NS
        until = (hour - WEEK_H + 1) * HOUR_S * _NS
        found: dict[str, float] = {}
        for p in points:
            try:
                use = await self.history.hourly(p, since, until)
            except Exception as exc:  # noqa: BLE001  (no baseline this hour; tried again the next)
                self.last_error = f"baseline of {p}: {exc}"
                continue
            use.update(hourly_use(self.learned.get(p, {}).values()))  # heard live: the store may have expired it
            b = baseline(use, hour, weeks)
            if b is not None and math.isfinite(b):
                found[p] = b
        self.baselines = found

    # -- status and control -----------------------------------------------------------------

    def _refresh_status(self) -> None:
        self.ctx.status.clear()
        self.ctx.status.update({
            "state": "running", "rules": len(self.cfg.rules), "active": sorted(self.raised),
            "baselines": dict(self.baselines), "last_error": self.last_error, **self.counters})

    def active(self) -> list[dict[str, Any]]:
        """Every active alarm the daemon holds (the rules' and the drivers'), oldest first, with age and value."""
        wall = self.ctx.clock.now().wall_ns / _NS
        out = []
        for a in sorted(self.ctx.hub.active_alarms.values(), key=lambda x: (x.stamp.wall_ns, x.alarm_id)):
            data = dict(a.data)
            since = data.get("since") if isinstance(data.get("since"), int | float) else a.stamp.wall_ns / _NS
            out.append({"id": a.alarm_id, "severity": a.severity.value, "text": a.text, "source": a.source,
                        "since": since, "age_s": round(max(0.0, wall - since), 1), "value": data.get("value"),
                        "threshold": data.get("threshold"), "unit": data.get("unit", ""),
                        "action": data.get("action", ""), "data": data})
        return out

    async def _list_command(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"alarms": self.active(), "rules": [r.id for r in self.cfg.rules]}
