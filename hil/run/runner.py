"""Play a scenario file against the real daemon in a simulated building, and gather what happened.

:class:`RunScenario` is ``hil.scenario.Scenario`` with what a timeline needs:
the uplink behind ``hil.faultproxy`` (sync and enrollment go through it), the
daemon's wall clock under ``hil.run.clockshim`` when the file says it starts
wrong, every point uploaded raw (so each committed reading can be found at
the central), the central's test endpoints, and a sampler of the daemon's
memory and CPU from /proc across its restarts. :func:`run` plays the
timeline at its scenario times on the scale, waits for the backlog to reach
the central, reads the retained MQTT state, stops the daemon cleanly and
returns the :class:`Outcome` the report is made from.
"""

from __future__ import annotations

__all__ = ["EventError", "Outcome", "RunScenario", "run"]

import asyncio
import contextlib
import dataclasses
import json
import os
import random
import signal
import socket
import sqlite3
import ssl
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from hil.buildings import Building, get_building
from hil.faultproxy import FaultProxy
from hil.run import clockshim
from hil.run.spec import Event, ScenarioSpec
from hil.scenario import ROOT, Scenario, merge
from hil.soak import process_cpu_s, sample_process
from hil.timescale import TimeScale
from zaas_edge.sync.aggregate import CONSUMER as AGGREGATE_CONSUMER  # turns raw readings into upload records

SAMPLE_EVERY_S = 0.5
DEFAULT_RESTART_AFTER_S = 1.0  # real seconds; systemd's RestartSec is 5 s, shorter here so 100 kills fit a run
RUNNER_CONFIG: dict[str, Any] = {
    "clock": {"assume_synced": True},
    # every reading travels as itself: the ledger finds each committed one at the central
    "sync": {"default_policy": "raw", "counter_policy": "raw", "idle_interval_s": 1.0},
}


class EventError(Exception):
    """An event the building cannot play (no such device, no plant): named in the report, the run goes on."""


@dataclass
class Outcome:
    """What a run leaves for the ledger and the report."""

    spec: ScenarioSpec
    run_dir: Path
    store_path: Path
    factor: float = 1.0  # scenario seconds per real second
    central_rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # lane -> decoded rows
    played: list[dict[str, Any]] = field(default_factory=list)  # each event with its real time and result
    restarts: int = 0
    unexpected_exits: list[int] = field(default_factory=list)  # exit statuses of the daemon's own exits
    peak_rss_bytes: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    linky_trips: int | None = None
    retained: dict[str, str] = field(default_factory=dict)
    drained: bool = False
    judged_through: int = 0  # reading seqs up to this one must be at the central
    prefilled: int = 0  # and above this one (the history written before the start was sent long ago)
    skipped: list[str] = field(default_factory=list)


def without(building: Building, ids: tuple[str, ...]) -> Building:
    """``building`` with the buses named in ``ids`` left out."""
    known = {x.id for x in building.modbus} | {x.id for x in building.mbus}
    known |= {x.id for x in (building.lora, building.linky, building.ble) if x is not None}
    if unknown := set(ids) - known:
        raise ValueError(f"without: no bus {', '.join(sorted(unknown))} in building {building.name!r} "
                         f"(its buses: {', '.join(sorted(known))})")
    return dataclasses.replace(
        building, modbus=tuple(x for x in building.modbus if x.id not in ids),
        mbus=tuple(x for x in building.mbus if x.id not in ids),
        lora=None if building.lora is None or building.lora.id in ids else building.lora,
        linky=None if building.linky is None or building.linky.id in ids else building.linky,
        ble=None if building.ble is None or building.ble.id in ids else building.ble)


class RunScenario(Scenario):
    """The building of a scenario file, with the seams its events act on."""

    def __init__(self, spec: ScenarioSpec, run_dir: Path, *, factor: float, out: TextIO) -> None:
        extra = merge(json.loads(json.dumps(RUNNER_CONFIG)), spec.config)
        if spec.clock_behind_s:
            extra["clock"].pop("assume_synced", None)  # the (shimmed) kernel says when the clock is synchronised
        scale = TimeScale.starting_now(factor) if factor != 1.0 else None
        super().__init__(ROOT / spec.base_config, without(get_building(spec.building), spec.without), run_dir,
                         out=out, scale=scale, extra=extra, central_test_mode=True,
                         horizon_s=spec.duration_s / factor + spec.drain_s + 600)
        self.spec = spec
        self.factor = factor
        self.proxy: FaultProxy | None = None
        self.central_ctx: ssl.SSLContext | None = None
        self.clock_file = self.run_dir / "clock.json"
        self.restarts = 0
        self.prefilled = 0  # reading seqs of the history written before the start (not judged)
        self.killed: set[int] = set()
        self.unexpected_exits: list[int] = []
        self.rng = random.Random(spec.seed)
        if spec.clock_behind_s:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            clockshim.write_state(self.clock_file, -spec.clock_behind_s, False)
            self.daemon_command = ("-m", "hil.run.clockshim", str(self.clock_file), )

    async def _start_central(self, gateway: str) -> None:
        """The central as the base starts it, reached through the fault proxy."""
        await super()._start_central(gateway)
        if self._sync is None:
            return
        target = urlsplit(self._sync["url"])
        proxy = FaultProxy(target.hostname or "127.0.0.1", target.port or 443)
        await proxy.start()
        self.proxy = proxy
        self._closers.append(("faultproxy", proxy.stop))
        self.central_ctx = ssl.create_default_context(cafile=self.central_ca)
        self.central_direct = self._sync["url"]
        self._sync["url"] = f"https://{target.hostname}:{proxy.port}"
        self.running.append(f"{'faultproxy':12s} the uplink: {proxy.address} -> {target.netloc}")

    @property
    def store_path(self) -> Path:
        return self.run_dir / "state" / "store.sqlite"

    def central_get(self, path: str) -> dict[str, Any]:
        """A test endpoint of the central, straight (not through the proxy: the runner's view is not the uplink)."""
        with urllib.request.urlopen(self.central_direct + path, context=self.central_ctx, timeout=30) as r:
            return json.loads(r.read())

    # -- the daemon's life ------------------------------------------------------------------

    async def spawn_daemon(self) -> asyncio.subprocess.Process:
        if self.spec.prefill_mb and not self.store_path.exists():
            self.prefilled = await asyncio.to_thread(prefill, self.store_path, self.spec.prefill_mb)
        return await super().spawn_daemon()

    async def kill_daemon(self, restart_after_s: float) -> None:
        assert self.daemon is not None
        if self.daemon.returncode is None:
            self.killed.add(self.daemon.pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.daemon.pid, signal.SIGKILL)
            await self.daemon.wait()
        await asyncio.sleep(restart_after_s)
        await self.spawn_daemon()
        self.restarts += 1

    async def keep_alive(self) -> None:
        """Restart the daemon when it exits on its own (systemd's Restart=always); each exit is a failure."""
        while True:
            assert self.daemon is not None
            proc = self.daemon
            code = await proc.wait()
            if proc.pid in self.killed or proc is not self.daemon:
                await asyncio.sleep(0.05)
                continue
            self.unexpected_exits.append(code)
            self.say(f"the daemon exited on its own with status {code}: restarted, as systemd would")
            await asyncio.sleep(DEFAULT_RESTART_AFTER_S)
            if proc is self.daemon:
                await self.spawn_daemon()
                self.restarts += 1

    # -- events -----------------------------------------------------------------------------

    def _real(self, scenario_s: float) -> float:
        return scenario_s / self.factor

    def _device(self, device: str) -> tuple[str, Any, Any]:
        for line in self.building.modbus:
            for m in line.meters:
                if m.id == device and line.id in self.buses:
                    return "modbus", self.buses[line.id], m
        for seg in self.building.mbus:
            for m in seg.meters:
                if m.id == device and seg.id in self.buses:
                    return "mbus", self.buses[seg.id], m
        raise EventError(f"no running Modbus or M-Bus device {device!r} in this building")

    async def play(self, event: Event) -> str:
        """Apply ``event`` now; a line saying what was done."""
        p = event.params
        kind = event.kind
        if kind == "load_step":
            if self.plant is None:
                raise EventError("no plant (a Modbus line with plant=True) to step the load of")
            self.plant.base_fn = None
            self.plant.base_w = float(p["base_w"])
            return f"base load {p['base_w']:g} W"
        if kind in ("uplink_down", "uplink_up"):
            if self.proxy is None:
                raise EventError("no uplink (the central did not start)")
            if kind == "uplink_up":
                self.proxy.set(mode="pass")
                return "uplink restored"
            self.proxy.set(mode=p.get("mode", "drop"))
            self.proxy.reset_all()
            return f"uplink down ({self.proxy.mode})"
        if kind in ("meter_unplugged", "meter_back"):
            return self._meter(p["device"], kind == "meter_unplugged")
        if kind == "broker_restart":
            broker = getattr(self, "broker", None)
            if broker is None:
                raise EventError("no broker running")
            await asyncio.to_thread(broker.stop)
            await asyncio.sleep(self._real(p.get("down", 0.0)))
            await asyncio.to_thread(broker.start)
            return f"mosquitto restarted on port {broker.port}"
        if kind == "kill_daemon":
            after = p.get("restart_after", DEFAULT_RESTART_AFTER_S)
            await self.kill_daemon(after)
            return f"daemon killed (SIGKILL), restarted after {after:g} s"
        if kind == "garbage":
            return await self._garbage(p.get("bus"), int(p.get("bytes", 256)))
        if kind == "ntp_sync":
            clockshim.write_state(self.clock_file, 0.0, True)
            return f"clock stepped {self.spec.clock_behind_s:g} s forward, synchronised"
        if kind == "tempo":
            from hil.linky_sim import Colour

            if self.linky is None:
                raise EventError("no Linky in this building")
            self.linky.set_tempo(Colour[str(p["colour"]).upper()])
            return f"Tempo {p['colour']} today"
        raise EventError(f"no player for event {kind!r}")

    def _meter(self, device: str, unplug: bool) -> str:
        bus_kind, sim, meter = self._device(device)
        if bus_kind == "modbus":
            if unplug:
                sim.bus.faults.silent_units.add(meter.unit)
            else:
                sim.bus.faults.silent_units.discard(meter.unit)
            return f"Modbus unit {meter.unit} ({device}) {'silent' if unplug else 'answers again'}"
        target = sim.bus.meter(meter.sim)
        with sim.bus.lock:
            target.faults.clear()
            if unplug:
                target.faults.extend(["no_answer"] * 1_000_000)
        return f"M-Bus meter {device} {'silent' if unplug else 'answers again'}"

    async def _garbage(self, only: str | None, n: int) -> str:
        """Random bytes on every bus (or ``only``): what a loose wire, a reflection or a stray client does."""
        from hil.modbus_sim import SimServer

        done: list[str] = []
        rng = self.rng
        for bus_id, sim in self.buses.items():
            if only not in (None, "all", bus_id):
                continue
            if isinstance(sim, SimServer) and sim.kind == "rtu":
                # the line's answers arrive broken for a moment: every unit's CRC is wrong
                sim.bus.faults.crc_units.update(sim.bus.meters)
                await asyncio.sleep(min(2.0, max(0.5, self._real(10))))
                sim.bus.faults.crc_units.clear()
                done.append(f"{bus_id}: broken CRCs")
            elif isinstance(sim, SimServer):
                # a stray client on the meter's port sends a bogus frame; the daemon's own link must not mind
                with contextlib.suppress(OSError):
                    _r, w = await asyncio.open_connection(sim.host, sim.port)
                    w.write(rng.randbytes(n))
                    await w.drain()
                    w.close()
                done.append(f"{bus_id}: a bogus TCP client frame of {n} bytes")
            else:  # M-Bus: bytes straight onto the daemon's end of the line
                os.write(sim._master, rng.randbytes(n))  # noqa: SLF001  (the simulator's bus end)
                done.append(f"{bus_id}: {n} random bytes")
        if self.linky is not None and only in (None, "all", self.building.linky.id if self.building.linky else ""):
            from zaas_edge.drivers.tic import STX

            from hil.linky_faults import Fault, FaultKind

            noise = bytes(b for b in rng.randbytes(n) if b != STX) or b"\x00"  # an STX would start a frame
            self.linky.inject(Fault(FaultKind.NOISE, noise=noise), times=3)
            done.append("linky: noise between frames")
        if self._lora is not None and only in (None, "all", "lora"):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for _ in range(5):
                    s.sendto(rng.randbytes(max(1, min(n, 1400))), ("127.0.0.1", int(self._lora["port"])))
            done.append("lora: 5 random datagrams")
        if not done:
            raise EventError(f"no bus {only!r} to put garbage on")
        return "; ".join(done)

    # -- the end ----------------------------------------------------------------------------

    def positions(self) -> tuple[dict[str, int], dict[str, int], dict[str, int]] | None:
        """(the store's last seq per lane, the lowest consumer cursor per lane, the central's acked seq per
        wire lane), read now; None while the store or the central cannot be read."""
        try:
            conn = sqlite3.connect(f"{self.store_path.absolute().as_uri()}?mode=ro", uri=True, timeout=5)
            try:
                last = dict(conn.execute("SELECT lane, last_seq FROM lane_seq"))
                epoch = conn.execute("SELECT value FROM meta WHERE key = 'stream_epoch'").fetchone()[0]
                cursors = dict(conn.execute("SELECT lane, min(seq) FROM cursor GROUP BY lane"))
            finally:
                conn.close()
            streams = self.central_get("/test/streams")["streams"]
        except (sqlite3.Error, OSError, ValueError, KeyError, TypeError):
            return None
        return last, cursors, {s["lane"]: s["acked_through"] for s in streams if s["epoch"] == epoch}

    async def drain(self, timeout_s: float) -> int | None:
        """Until what the store held at this moment has reached the central; the reading seq judged up to.

        The drivers keep reading meanwhile, so "an empty backlog" never comes:
        the readings committed up to now (seq ``R``) must first be made upload
        records (every reading-lane cursor past ``R``), then the central must
        acknowledge the upload lane as far as it went then, and the event and
        alarm lanes as far as they went at the start. None when that did not
        happen within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        first = None
        while first is None and time.monotonic() < deadline:
            first = await asyncio.to_thread(self.positions)
            if first is None:
                await asyncio.sleep(0.5)
        if first is None:
            return None
        last0 = first[0]
        upload_target: int | None = None
        while time.monotonic() < deadline:
            pos = await asyncio.to_thread(self.positions)
            if pos is not None:
                last, cursors, acked = pos
                if upload_target is None and cursors.get("reading", 0) >= last0.get("reading", 0):
                    upload_target = last.get("upload", 0)
                if upload_target is not None and acked.get("reading", 0) >= upload_target and all(
                        acked.get(lane, 0) >= last0.get(lane, 0) for lane in ("event", "alarm")):
                    return last0.get("reading", 0)
            await asyncio.sleep(0.5)
        return None

    async def retained_state(self, timeout_s: float = 3.0) -> dict[str, str]:
        """Every retained message on the broker now, topic -> payload (a fresh subscriber gets them at once)."""
        broker = getattr(self, "broker", None)
        if broker is None:
            return {}
        import aiomqtt

        got: dict[str, str] = {}
        async with aiomqtt.Client(broker.host, broker.port, identifier=f"hil-run-{os.getpid()}") as client:
            await client.subscribe("#", qos=0)
            # the broker sends the retained set first; a quiet moment after the last one ends it
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    async for m in client.messages:
                        if m.retain:
                            got[m.topic.value] = m.payload.decode(errors="replace") if isinstance(
                                m.payload, bytes) else str(m.payload)
        return got


def prefill(path: Path, mb: float, point: str = "history/energy") -> int:
    """A store holding ``mb`` MB of a meter's readings of the last days, as a gateway that ran for months does.

    They were uploaded long ago: the aggregator's cursor is past them, so
    the size cap may drop them (acknowledged rows go first) and the ledger
    does not judge them (seqs up to the returned count).
    """
    from zaas_edge.clock import read_boot_id
    from zaas_edge.model import Lane, Reading
    from zaas_edge.store import Store

    boot = read_boot_id()
    # a reading every 20 ms over the last hours: within the local raw window, so expiry leaves them to the cap
    step = 20_000_000
    start = time.time_ns() - int(mb * 41_000) * step
    n = 0
    with Store(path) as store:
        while store.used_bytes() < mb * 1024 * 1024:
            batch = [Reading(point, float(n + i), "kWh", start + (n + i) * step, 0, boot, True)
                     for i in range(20_000)]
            with store.transaction("prefilling"):
                store.insert_readings(batch)
            n += len(batch)
        store.register(AGGREGATE_CONSUMER, [Lane.READING])
        store.ack(AGGREGATE_CONSUMER, Lane.READING, n)
    return n


class _Sampler:
    """Peak RSS and CPU seconds of the daemon across its restarts, from /proc."""

    def __init__(self, scenario: RunScenario) -> None:
        self.scenario = scenario
        self.peak_rss = 0
        self.cpu: dict[int, float] = {}

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE_EVERY_S)

    def sample(self) -> None:
        d = self.scenario.daemon
        if d is None or d.returncode is not None:
            return
        rss, _fds = sample_process(d.pid)
        cpu = process_cpu_s(d.pid)
        if rss is not None:
            self.peak_rss = max(self.peak_rss, rss)
        if cpu is not None:
            self.cpu[d.pid] = cpu


async def _sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


async def run(spec: ScenarioSpec, run_dir: Path, *, factor: float | None = None, out: TextIO) -> Outcome:
    """Play ``spec`` in ``run_dir`` (recreated); the outcome whatever happens (start failures raise ScenarioError)."""
    factor = factor or spec.scale
    sc = RunScenario(spec, run_dir, factor=factor, out=out)
    outcome = Outcome(spec, sc.run_dir, sc.store_path, factor)
    sampler = _Sampler(sc)
    tasks: list[asyncio.Task[None]] = []
    started = time.monotonic()
    try:
        await sc.start()
        outcome.skipped = list(sc.skipped)
        tasks = [asyncio.create_task(sampler.run()), asyncio.create_task(sc.keep_alive())]
        t0 = time.monotonic()
        for ev in spec.timeline:
            await _sleep_until(t0 + ev.at_s / factor)
            entry: dict[str, Any] = {"at_s": ev.at_s, "event": ev.kind, **ev.params,
                                     "real_s": round(time.monotonic() - t0, 3)}
            try:
                entry["done"] = await sc.play(ev)
            except EventError as exc:
                entry["error"] = str(exc)
                sc.say(f"{ev.kind} at {ev.at_s:g} s: {exc}")
            outcome.played.append(entry)
        await _sleep_until(t0 + spec.duration_s / factor)
        judged = await sc.drain(spec.drain_s)
        outcome.drained = judged is not None
        outcome.judged_through = judged or 0
        outcome.retained = await sc.retained_state() if spec.expect.retained else {}
        sampler.sample()
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        outcome.restarts, outcome.unexpected_exits = sc.restarts, list(sc.unexpected_exits)
        outcome.prefilled = sc.prefilled
        outcome.linky_trips = sc.linky.state.breaker.trips if sc.linky is not None else None
        if sc.daemon is not None:
            await sc._stop_child(sc.daemon, 4.5)  # noqa: SLF001  (a clean stop before the central is read)
        if sc.central_ctx is not None:
            with contextlib.suppress(OSError, ValueError):
                for lane in ("reading", "event", "alarm"):
                    outcome.central_rows[lane] = [r["row"] for r in sc.central_get(f"/test/rows?lane={lane}")["rows"]]
        await sc.stop()
        outcome.peak_rss_bytes = sampler.peak_rss
        outcome.cpu_s = round(sum(sampler.cpu.values()), 3)
        outcome.wall_s = round(time.monotonic() - started, 3)
    return outcome
