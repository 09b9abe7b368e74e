"""The daemon: wires configuration, store writer, drivers, control socket and systemd.

It owns the process-level concerns: signals (SIGTERM flushes and exits within
the stop budget, SIGHUP reloads the configuration and keeps the old one when
the new one is bad), the systemd notifications and the watchdog gate.
"""

from __future__ import annotations

__all__ = ["Daemon", "run_daemon"]

import asyncio
import dataclasses
import importlib
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from zaas_edge import __version__, heap
from zaas_edge.clock import Clock, SystemClock
from zaas_edge.config import LoadedConfig, load_config
from zaas_edge.context import GatewayDriverContext
from zaas_edge.control import RELOAD_TIMEOUT_S, ControlServer
from zaas_edge.driver import Driver, DriverOptions, driver_class
from zaas_edge.errors import ConfigError, ConfigIssue, PermanentError, ZaasError
from zaas_edge.hub import Hub
from zaas_edge.logsetup import log_notice, setup_logging
from zaas_edge.model import Alarm, Event, Severity
from zaas_edge.runtime import Supervisor, TaskSpec
from zaas_edge.service import SERVICES, DriverInfo, MessagePort, Service, ServiceContext
from zaas_edge.shed.overrides import LimitOverrides, LoadOverrides
from zaas_edge.store import Writer
from zaas_edge.systemd import Notifier

log = logging.getLogger("zaas_edge.daemon")

WRITER_TASK = "store.writer"
CONTROL_TASK = "control"
BACKLOG_EVERY_S = 5.0


def _driver_task(driver_id: str) -> str:
    return f"driver.{driver_id}"


class Daemon:
    def __init__(self, loaded: LoadedConfig, config_path: str | Path | None = None,
                 *, clock: Clock | None = None) -> None:
        self.loaded = loaded
        self.config_path = config_path
        cfg = loaded.config
        self.clock: Clock = clock or SystemClock(assume_synced=cfg.clock.assume_synced)
        self.hub = Hub()
        self.notifier = Notifier()
        self.supervisor = Supervisor(
            now=self.clock.now,
            notice=self.hub.notice,
            backoff_initial_s=cfg.runtime.restart_backoff_initial_s,
            backoff_max_s=cfg.runtime.restart_backoff_max_s,
            heartbeat_timeout_s=cfg.runtime.heartbeat_timeout_s,
        )
        # The writer stores what it raises itself (store.degraded, store.gap):
        # the hub hands those to every consumer but the store.
        from_store = lambda item: self.hub.notice(item, exclude=("store",))  # noqa: E731
        self.writer = Writer(
            cfg.store, cfg.store_path, self.clock,
            on_alarm=from_store, on_event=from_store, spill_dirs=(cfg.gateway.runtime_dir,),
            heartbeat=lambda: self.supervisor.heartbeat(WRITER_TASK),
        )
        self.hub.on_readings("store", self.writer.submit)
        self.hub.on_notice("store", self._store_notice)
        self.hub.on_notice("log", log_notice)
        self.driver_options: dict[str, DriverOptions] = {}
        self.disabled: set[str] = set()  # disabled at run time by a command
        self.service_status: dict[str, dict[str, Any]] = {}
        self.services: dict[str, Service] = {}  # the running instances, by name
        # One table of manual load overrides, written by MQTT and the CLI, read by load shedding.
        self.overrides = LoadOverrides(lambda: [ld.id for ld in self.loaded.config.shedding.loads])
        self.limit_overrides = LimitOverrides(lambda: [lim.id for lim in self.loaded.config.shedding.limits])
        self._backlog: dict[str, int] = {}  # refreshed by the watchdog loop, read by drivers
        self._state = StoredDriverState(self.writer, self.clock)
        self.drivers: dict[str, Driver] = {}
        self.driver_contexts: dict[str, GatewayDriverContext] = {}
        self.started_mono = time.monotonic()
        self._settle: asyncio.TimerHandle | None = None  # heap.settle, a few seconds after start and reload
        self.started_wall = time.time()
        self.reloads = 0
        self.reload_failures = 0
        # Reloads run one at a time; requests made while one runs are served by a single next one.
        self._reload_lock = asyncio.Lock()
        self._reload_requests = 0  # tickets handed out
        self._reload_served = 0  # tickets covered by a reload that had not yet read the file
        self._reload_ok = True
        self._reload_tasks: set[asyncio.Task[bool]] = set()
        self._stop = asyncio.Event()
        self._control = ControlServer(cfg.control_socket, {
            "status": self._status,
            "ping": self._ping,
            "reload": self._reload_request,
            "driver.control": self._driver_control,
        }, mode=cfg.control.mode, timeouts={"reload": RELOAD_TIMEOUT_S})

    # -- lifecycle -------------------------------------------------------------

    async def run(self) -> int:
        cfg = self.loaded.config
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        for d in (cfg.gateway.state_dir, cfg.gateway.runtime_dir):
            d.mkdir(parents=True, exist_ok=True, mode=0o750)
        await self._control.start()  # before anything else: refuses a second daemon
        log.info("starting zaas-edge %s", __version__, extra={"fields": {
            "gateway": cfg.gateway.id, "site": cfg.gateway.site, "pid": os.getpid(),
            "config": ",".join(str(p) for p in self.loaded.sources) or "embedded defaults"}})
        if self.loaded.defaults_only:
            log.warning("no configuration file found; running on embedded defaults (system driver only)")
        # Open the store before anything that reads it (driver state, sync) starts;
        # a store that cannot be opened leaves the writer degraded, not the daemon down.
        await self.writer.open()
        self.supervisor.start(TaskSpec(WRITER_TASK, self.writer.run, critical=True))
        self.supervisor.start(TaskSpec(CONTROL_TASK, self._control.serve_forever))
        for opt in self.loaded.drivers:
            self._start_driver(opt)
        self._start_services()
        self.notifier.ready(self._status_line())
        self._notice(Event("daemon.started", f"zaas-edge {__version__} started", "daemon", self.clock.now(),
                           Severity.NOTICE, {"version": __version__, "drivers": sorted(self.driver_options)}))
        watchdog = asyncio.create_task(self._watchdog_loop(), name="watchdog")
        self._settle = loop.call_later(heap.SETTLE_S, heap.settle)  # the long-lived heap out of the collector's way
        try:
            await self._stop.wait()
        finally:
            if self._settle is not None:
                self._settle.cancel()
            heap.unsettle()  # a daemon run inside another program (tests, tools) leaves it its collector
            watchdog.cancel()
            await self._shutdown()
        return 0

    def request_stop(self) -> None:
        if not self._stop.is_set():
            log.info("stop requested; flushing the store")
            self._stop.set()

    async def _shutdown(self) -> None:
        budget = self.loaded.config.runtime.stop_timeout_s
        deadline = time.monotonic() + budget
        self.notifier.stopping()
        self._notice(Event("daemon.stopping", "zaas-edge stopping", "daemon", self.clock.now(), Severity.NOTICE))
        # Drivers first, so their last readings reach the writer before its final flush.
        await self.supervisor.stop_all(timeout=budget / 3,
                                       names=[n for n in self.supervisor.running() if n != WRITER_TASK])
        await self.supervisor.stop(WRITER_TASK, timeout=max(0.1, deadline - time.monotonic()))
        await self.writer.close()
        log.info("stopped", extra={"fields": {"uptime_s": round(time.monotonic() - self.started_mono, 1)}})

    # -- drivers ---------------------------------------------------------------

    def _start_driver(self, opt: DriverOptions) -> None:
        self.driver_options[opt.id] = opt
        if not opt.enabled:
            log.info("driver %s is disabled in the configuration", opt.id, extra={"fields": {"driver": opt.id}})
            return
        name = _driver_task(opt.id)
        counters: dict[str, int] = {}
        self.supervisor.start(TaskSpec(name, lambda: self._run_driver(opt, counters), critical=opt.critical,
                                       kind="driver"))
        # The supervisor keeps counters across restarts of the same task.
        counters.update(self.supervisor.health[name].counters)
        self.supervisor.health[name].counters = counters

    async def _run_driver(self, opt: DriverOptions, counters: dict[str, int]) -> None:
        name = _driver_task(opt.id)
        driver = driver_class(opt.type)(opt)
        ctx = GatewayDriverContext(
            opt.id, hub=self.hub, clock=self.clock,
            heartbeat=lambda: self.supervisor.heartbeat(name),
            counters=counters, backlog=lambda: self._backlog,
            state_dir=self.loaded.config.gateway.state_dir,
            state=self._state,
        )
        self.drivers[opt.id] = driver
        self.driver_contexts[opt.id] = ctx
        log.info("driver %s (%s) running", opt.id, opt.type, extra={"fields": {"driver": opt.id, "type": opt.type}})
        await driver.run(ctx)

    async def _stop_driver(self, driver_id: str) -> None:
        await self.supervisor.stop(_driver_task(driver_id), timeout=self.loaded.config.runtime.stop_timeout_s / 2)
        self.supervisor.forget(_driver_task(driver_id))
        self.driver_options.pop(driver_id, None)
        self.drivers.pop(driver_id, None)
        self.driver_contexts.pop(driver_id, None)

    # -- services --------------------------------------------------------------

    def _start_services(self) -> None:
        for name, spec in SERVICES.items():
            section = getattr(self.loaded.config, spec.section, None)
            if section is not None and getattr(section, "enabled", False):
                self._start_service(name)
            else:
                log.debug("%s: not enabled", name)

    def _start_service(self, name: str) -> None:
        module, _, attr = SERVICES[name].target.partition(":")
        try:
            cls: type[Service] = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            log.error("service %s cannot be loaded: %s", name, exc, extra={"fields": {"service": name}})
            self._notice(Event("service.unavailable", f"{name} cannot be loaded: {exc}", "daemon",
                               self.clock.now(), Severity.ERROR, {"service": name}))
            return
        task = f"service.{name}"
        ctx = ServiceContext(
            name=name, config=lambda: self.loaded.config, hub=self.hub, clock=self.clock, outbox=self.writer,
            drivers=self, notice=self.hub.notice, heartbeat=lambda: self.supervisor.heartbeat(task),
            add_command=self._add_command, log=logging.getLogger(f"zaas_edge.{name}"),
            overrides=self.overrides, limit_overrides=self.limit_overrides, messages=self._messages,
        )
        self.service_status[name] = ctx.status

        async def run() -> None:
            service = cls(ctx)
            self.services[name] = service
            try:
                await service.run()
            finally:
                if self.services.get(name) is service:
                    del self.services[name]

        self.supervisor.start(TaskSpec(task, run, critical=cls.critical, kind="service"))

    async def _stop_service(self, name: str) -> None:
        await self.supervisor.stop(f"service.{name}", timeout=self.loaded.config.runtime.stop_timeout_s / 2)
        self.supervisor.forget(f"service.{name}")
        self.service_status.pop(name, None)

    def _messages(self) -> MessagePort | None:
        """The running MQTT service, as the port other services publish and watch through."""
        service = self.services.get("mqtt")
        return service if isinstance(service, MessagePort) else None

    def _add_command(self, name: str, handler: Any) -> None:
        self._control.handlers[name] = handler

    # -- DriverControl, for services ---------------------------------------------

    def drivers_info(self) -> dict[str, DriverInfo]:
        tasks = self.supervisor.snapshot()
        out = {}
        for driver_id, opt in self.driver_options.items():
            inst = self.drivers.get(driver_id)
            state = tasks.get(_driver_task(driver_id), {}).get("state", "disabled")
            out[driver_id] = DriverInfo(driver_id, opt.type, driver_id not in self.disabled and opt.enabled,
                                        state, tuple(inst.points()) if inst else (),
                                        inst.device_identities() if inst else {})
        return out

    def _driver(self, driver_id: str) -> Driver:
        inst = self.drivers.get(driver_id)
        if inst is None:
            running = ", ".join(sorted(self.drivers)) or "none"
            raise PermanentError(f"no running driver {driver_id!r} (running: {running})")
        return inst

    async def _driver_control(self, req: dict[str, Any]) -> Any:
        """A driver's own command (``driver``, ``command``, ``args``): how its CLI reaches it inside the daemon."""
        driver_id, command, args = req.get("driver"), req.get("command"), req.get("args", {})
        if not isinstance(driver_id, str) or not isinstance(command, str) or not isinstance(args, dict):
            raise PermanentError("driver.control needs a 'driver' id, a 'command' name and an 'args' object")
        return await self._driver(driver_id).control(command, args)

    async def poll_now(self, driver_id: str) -> None:
        await self._driver(driver_id).poll_now()

    async def set_enabled(self, driver_id: str, enabled: bool) -> None:
        """Enable or disable a configured driver until the next restart or reload."""
        opt = self.driver_options.get(driver_id)
        if opt is None:
            raise PermanentError(f"no driver {driver_id!r} in the configuration")
        running = _driver_task(driver_id) in self.supervisor.running()
        if enabled and not running:
            self.disabled.discard(driver_id)
            self._start_driver(opt.model_copy(update={"enabled": True}))
        elif not enabled and running:
            self.disabled.add(driver_id)
            await self.supervisor.stop(_driver_task(driver_id))
            self.drivers.pop(driver_id, None)
        log.notice("driver %s %s on request", driver_id, "enabled" if enabled else "disabled",  # type: ignore[attr-defined]
                   extra={"fields": {"driver": driver_id}})

    async def write(self, point: str, value: float) -> float:
        device = point.partition("/")[0]
        for inst in self.drivers.values():
            if inst.id == device or any(p.key == point for p in inst.points()):
                return await inst.write(point, value)
        raise PermanentError(f"no running driver owns point {point!r}")

    # -- reload ----------------------------------------------------------------

    def request_reload(self) -> None:
        """SIGHUP: a reload, coalesced with any others asked for while one runs."""
        task = asyncio.get_running_loop().create_task(self.reload(), name="reload")
        self._reload_tasks.add(task)
        task.add_done_callback(self._reload_tasks.discard)

    async def reload(self) -> bool:
        """Load the configuration again; keep the old one in force if the new one is bad.

        Reloads never overlap: two at once would stop and start the same
        drivers twice. A request made while a reload runs is served by the
        next one, which reads the file after every request before it, so
        400 SIGHUPs cost two reloads and the last file written is the one
        in force. Whatever happens, systemd is told READY again.
        """
        self._reload_requests += 1
        ticket = self._reload_requests
        async with self._reload_lock:
            if self._reload_served >= ticket:
                return self._reload_ok  # a reload that started after this request has run
            self._reload_served = self._reload_requests
            self.notifier.reloading()
            if self._settle is not None:
                self._settle.cancel()
            heap.unsettle()  # what the old configuration held must be collectable once replaced
            try:
                self._reload_ok = await self._reload_once()
            except Exception:
                log.exception("reload failed half way; the daemon runs on with what it has")
                self.reload_failures += 1
                self._reload_ok = False
            finally:
                self.notifier.ready(self._status_line())
                self._settle = asyncio.get_running_loop().call_later(heap.SETTLE_S, heap.settle)
            return self._reload_ok

    async def _reload_once(self) -> bool:
        try:
            new = await asyncio.to_thread(load_config, self.config_path)
        except Exception as error:
            exc = error if isinstance(error, ConfigError) else None
            if exc is None:
                # A loader fault must refuse the reload, not end it silently
                # with systemd left in "reloading".
                log.exception("reload: loading the configuration failed")
                exc = ConfigError([ConfigIssue(str(self.config_path or "configuration"), "",
                                               f"cannot be loaded: {type(error).__name__}: {error}")])
            self.reload_failures += 1
            for issue in exc.issues:
                log.error("reload refused: %s", issue, extra={"fields": {"reload": "refused"}})
            self._notice(Event("config.reload_refused",
                               f"new configuration refused ({len(exc.issues)} errors); the previous one stays in force",
                               "daemon", self.clock.now(), Severity.ERROR,
                               {"errors": [str(i) for i in exc.issues][:20]}))
            return False
        old = self.loaded
        self.loaded = new
        self.reloads += 1
        setup_logging(new.config.log.level, new.config.log.format)
        for section in ("gateway", "store", "control", "clock", "runtime"):
            if getattr(old.config, section) != getattr(new.config, section):
                log.warning("changes to [%s] take effect at the next restart", section)
        new_by_id = {d.id: d for d in new.drivers}
        changed = [i for i in self.driver_options if i not in new_by_id or new_by_id[i] != self.driver_options[i]]
        for driver_id in changed:
            await self._stop_driver(driver_id)
        for opt in new.drivers:
            if opt.id not in self.driver_options:
                self._start_driver(opt)
        for name, spec in SERVICES.items():
            before, after = getattr(old.config, spec.section, None), getattr(new.config, spec.section, None)
            if before != after:
                await self._stop_service(name)
                if after is not None and getattr(after, "enabled", False):
                    self._start_service(name)
        added = [i for i in new_by_id if i not in {d.id for d in old.drivers}]
        log.info("configuration reloaded", extra={"fields": {
            "restarted": ",".join(sorted(set(changed) & set(new_by_id))) or "-",
            "removed": ",".join(sorted(set(changed) - set(new_by_id))) or "-",
            "added": ",".join(sorted(added)) or "-"}})
        self._notice(Event("config.reloaded", "configuration reloaded", "daemon", self.clock.now(), Severity.NOTICE,
                           {"changed": sorted(changed), "added": sorted(added)}))
        return True

    async def _reload_request(self, req: dict[str, Any]) -> dict[str, Any]:
        """``zaas-edge reload`` (the unit's ExecReload): answers once the new configuration is in force.

        Shielded: a client that gives up must not cancel a reload halfway through stopping drivers.
        """
        task = asyncio.get_running_loop().create_task(self.reload(), name="reload")
        self._reload_tasks.add(task)
        task.add_done_callback(self._reload_tasks.discard)
        return {"reloaded": await asyncio.shield(task)}

    # -- watchdog and status ---------------------------------------------------

    async def _watchdog_loop(self) -> None:
        interval = self.notifier.watchdog_interval_s
        tick = min(interval / 2, BACKLOG_EVERY_S) if interval else BACKLOG_EVERY_S
        last_status, last_trim = 0.0, time.monotonic()
        withheld = False
        while True:
            stale = self.supervisor.stale_critical()
            if stale:
                if not withheld:
                    log.error("watchdog withheld: critical tasks silent: %s", ", ".join(stale))
                    withheld = True
            else:
                if withheld:
                    log.notice("watchdog resumed")  # type: ignore[attr-defined]
                    withheld = False
                self.notifier.watchdog()
            self.hub.flush_summaries(self.clock.monotonic_ns())
            now = time.monotonic()
            if now - last_status >= BACKLOG_EVERY_S:
                await self._refresh_backlog()
                self.notifier.status(self._status_line())
                last_status = now
            if now - last_trim >= heap.TRIM_EVERY_S:
                heap.trim()  # what each minute's burst of upload records left free goes back
                last_trim = now
            await asyncio.sleep(tick)

    async def _refresh_backlog(self) -> dict[str, int]:
        try:
            self._backlog = {str(lane): n for lane, n in (await self.writer.backlog()).items()}
        except ZaasError:
            pass  # degraded store: keep the last known figures
        return self._backlog

    def _status_line(self) -> str:
        running = sum(1 for n in self.supervisor.running() if n.startswith("driver."))
        backlog = self._backlog
        return (f"{running}/{len(self.driver_options)} drivers running, {self.hub.readings_total} readings, "
                f"backlog {backlog.get('reading', 0)}")

    async def _ping(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"pid": os.getpid(), "version": __version__}

    async def _status(self, req: dict[str, Any]) -> dict[str, Any]:
        cfg = self.loaded.config
        now_mono = time.monotonic()
        tasks = self.supervisor.snapshot()
        drivers = {}
        for driver_id, opt in sorted(self.driver_options.items()):
            t = tasks.get(_driver_task(driver_id), {})
            ctx = self.driver_contexts.get(driver_id)
            last = ctx.last_emit_mono if ctx else None
            drivers[driver_id] = {
                "type": opt.type,
                "enabled": opt.enabled,
                "state": t.get("state", "disabled" if not opt.enabled else "stopped"),
                "restarts": t.get("restarts", 0),
                "last_error": t.get("last_error"),
                "readings": t.get("counters", {}).get("readings", 0),
                "last_reading_age_s": None if last is None else round(now_mono - last, 3),
                "counters": t.get("counters", {}),
                "devices": self._driver_health(driver_id),
            }
        points = None
        if req.get("points"):
            wall = time.time_ns()
            points = {k: {"value": r.value, "unit": r.unit, "quality": r.quality.value,
                          "age_s": round((wall - r.wall_ns) / 1e9, 3)}
                      for k, r in sorted(self.hub.latest.items())}
        return {
            "running": True,
            "daemon": {
                "pid": os.getpid(),
                "version": __version__,
                "gateway": cfg.gateway.id,
                "site": cfg.gateway.site,
                "uptime_s": round(now_mono - self.started_mono, 3),
                "started": self.started_wall,
                "config": [str(p) for p in self.loaded.sources],
                "reloads": self.reloads,
                "reload_failures": self.reload_failures,
                "reloading": self._reload_lock.locked(),
                "clock_synced": self.clock.now().synced,
            },
            "drivers": drivers,
            "tasks": tasks,
            "store": await self._store_status(),
            "backlog": await self._refresh_backlog(),
            "alarms": {a.alarm_id: {"severity": a.severity.value, "text": a.text, "since": a.stamp.wall_ns / 1e9}
                       for a in self.hub.active_alarms.values()},
            "readings_total": self.hub.readings_total,
            "events_suppressed": self.hub.gate.suppressed_total,
            "sync": self.service_status.get("sync"),
            "mqtt": self.service_status.get("mqtt"),
            "services": {k: v for k, v in self.service_status.items()},
            "points": points,
        }

    def _driver_health(self, driver_id: str) -> dict[str, Any]:
        """A running driver's per-device health; a driver's bug here must not break status."""
        inst = self.drivers.get(driver_id)
        if inst is None:
            return {}
        try:
            health = {str(device): status.as_dict() for device, status in inst.health().items()}
            json.dumps(health)  # the control socket speaks JSON: refuse what it cannot carry
        except Exception as exc:  # noqa: BLE001  (third-party drivers)
            log.warning("driver %s: health() failed: %s", driver_id, exc, extra={"fields": {"driver": driver_id}})
            return {}
        return health

    def _notice(self, item: Event | Alarm) -> None:
        self.hub.notice(item)

    async def _store_status(self) -> dict[str, Any]:
        out: dict[str, Any] = dataclasses.asdict(self.writer.stats())
        try:
            out.update((await self.writer.store_stats()).as_dict())
        except ZaasError as exc:
            out["error"] = str(exc)
        out["degraded"] = self.writer.degraded
        out.setdefault("path", str(self.writer.path))
        return out

    def _store_notice(self, item: Event | Alarm) -> None:
        if isinstance(item, Alarm):
            self.writer.alarm(item)
        else:
            self.writer.event(item)


class StoredDriverState:
    """Drivers' persistent documents, kept in the store (one transaction per save)."""

    def __init__(self, writer: Writer, clock: Clock) -> None:
        self._writer = writer
        self._clock = clock

    async def load(self, driver_id: str, key: str) -> dict[str, Any] | None:
        return await self._writer.load_state(driver_id, key)

    async def save(self, driver_id: str, key: str, value: dict[str, Any]) -> None:
        now = self._clock.now().wall_ns
        await self._writer.save_state(driver_id, key, value, now)


def run_daemon(config_path: str | Path | None) -> int:
    # Whatever the daemon writes (the store, driver state, keys, batches) is the site's data: owner
    # only, as the unit's UMask=0077 says, also when it runs outside systemd (a technician's shell,
    # a container). The control socket sets its own group mode explicitly.
    os.umask(0o077)
    loaded = load_config(config_path)
    setup_logging(loaded.config.log.level, loaded.config.log.format)
    return asyncio.run(Daemon(loaded, config_path).run())
