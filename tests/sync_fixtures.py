"""Shared pieces of the sync tests: a reference central on loopback, an enrolled gateway, a running service."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hil.central import Central
from hil.central.process import CentralProcess as _CentralProcess
from hil.daemon_harness import write_config
from zaas_edge.clock import SystemClock
from zaas_edge.config_model import Config
from zaas_edge.hub import Hub
from zaas_edge.model import Alarm, Event, Reading, Severity, Stamp
from zaas_edge.service import ServiceContext
from zaas_edge.store import Writer
from zaas_edge.sync.enroll import enroll
from zaas_edge.sync.identity import Identity
from zaas_edge.sync.service import SyncService
from zaas_edge.wire.codec import WIRE_LANES

GATEWAY = "gw-test"
ROOT = Path(__file__).resolve().parent.parent


class CentralProcess(_CentralProcess):
    """The reference central in its own process, its tokens bound to the test gateway."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, gateway=GATEWAY)


def daemon_sync_config(base: Path, central: CentralProcess, *, window_s: float = 1, aggregate_grace_s: float = 0.2,
                       drivers: str = "", extra: str = "") -> Path:
    """The configuration file of a real daemon syncing to ``central``: fast retries, short windows
    (upload records are made within a short run, not once a minute), no configuration pulls."""
    sync = f"""
[sync]
enabled = true
url = "{central.url}"
idle_interval_s = 0.1
backoff_initial_s = 0.05
backoff_max_s = 0.5
batch_initial_bytes = 512
config_pull_interval_s = 0
window_s = {window_s}
aggregate_grace_s = {aggregate_grace_s}
aggregate_interval_s = 0.2
{extra}"""
    return write_config(base / "config.toml", base, drivers=drivers, extra=sync)


def make_config(state: Path, url: str, **sync: Any) -> Config:
    return Config.model_validate({
        "gateway": {"id": GATEWAY, "site": "test-site", "state_dir": str(state), "runtime_dir": str(state / "run")},
        "sync": {"enabled": True, "url": url, "idle_interval_s": 0.2, "backoff_initial_s": 0.05,
                 "backoff_max_s": 0.5, "request_timeout_s": 5, "connect_timeout_s": 2, **sync},
    })


async def enrolled_identity(central: Central, state: Path, gateway: str = GATEWAY) -> Identity:
    ident = Identity(state / "identity")
    ident.init(gateway, "test-site")
    await enroll(ident, central.url, central.new_token(gateway), gateway, central.ca.ca_path)
    return ident


def readings(n: int, start: int = 0, point: str = "meter-1/power") -> list[Reading]:
    now = time.time_ns()
    return [Reading(point, float(start + i), "W", now + i * 1000, i, "boot-1", True) for i in range(n)]


@dataclass
class Gateway:
    """A store writer and a sync service, in this process, against a central."""

    state: Path
    config: Config
    writer: Writer
    notices: list[Any] = field(default_factory=list)
    commands: dict[str, Any] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    task: asyncio.Task | None = None
    service: SyncService | None = None
    clock: Any = None

    def alarms(self, alarm_id: str) -> list[Alarm]:
        return [n for n in self.notices if isinstance(n, Alarm) and n.alarm_id == alarm_id]

    def active(self, alarm_id: str) -> bool:
        got = self.alarms(alarm_id)
        return bool(got) and got[-1].active

    def start(self, **kw: Any) -> SyncService:
        # Transport tests: the reading wire lane straight from the reading store lane, no aggregation.
        kw.setdefault("source_lanes", {lane: lane for lane in WIRE_LANES})
        ctx = ServiceContext(
            name="sync", config=lambda: self.config, hub=Hub(), clock=self.clock or SystemClock(assume_synced=True),
            outbox=self.writer, drivers=None, notice=self.notices.append, heartbeat=lambda: None,  # type: ignore[arg-type]
            add_command=self.commands.__setitem__, log=logging.getLogger("zaas_edge.sync"), status=self.status)
        self.service = SyncService(ctx, **kw)
        self.task = asyncio.create_task(self.service.run())
        return self.service

    async def stop(self, timeout: float = 20.0) -> None:
        """Cancel the service and wait for it; a service that does not stop fails with where it hangs."""
        if self.task is not None:
            self.task.cancel()
            done, _ = await asyncio.wait([self.task], timeout=timeout)
            if not done:
                where = io.StringIO()
                self.task.print_stack(file=where)
                raise AssertionError(f"the sync service did not stop {timeout:g} s after its cancellation; "
                                     f"status {self.status}; suspended at:\n{where.getvalue()}")
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    async def cursor(self, lane: str) -> int:
        return (await self.writer.position("sync", lane)).cursor

    async def wait_cursor(self, lane: str, seq: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while await self.cursor(lane) < seq:
            if self.task is not None and self.task.done():
                self.task.result()
            if time.monotonic() > deadline:
                raise AssertionError(f"{lane} cursor {await self.cursor(lane)} never reached {seq}; "
                                     f"status {self.status}")
            await asyncio.sleep(0.05)

    async def wait_for(self, predicate, timeout: float = 30.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.task is not None and self.task.done():
                self.task.result()
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} never happened; status {self.status}; notices {self.notices[-5:]}")
            await asyncio.sleep(0.05)


async def open_writer(state: Path, config: Config) -> Writer:
    state.mkdir(parents=True, exist_ok=True)
    w = Writer(config.store, config.store_path, SystemClock(assume_synced=True))
    await w.start()
    return w


def event(kind: str = "test.event") -> Event:
    return Event(kind, "something happened", "test", Stamp(time.time_ns(), 1, "boot-1", True), Severity.INFO, {"k": 1})


def alarm(alarm_id: str = "test.alarm") -> Alarm:
    return Alarm(alarm_id, True, "raised", "test", Stamp(time.time_ns(), 1, "boot-1", True), Severity.WARNING, {})
