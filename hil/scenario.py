"""Boot a whole simulated building around the real daemon.

``python -m hil.scenario --config config/demo.toml`` (what ``make demo`` runs):

1. starts a simulator for every bus of the building (``hil.buildings``):
   Modbus TCP and RTU servers and the M-Bus segment run in this process
   (several profiles share one endpoint, ptys stand for serial lines), the
   LoRa packet forwarder, the reference central API and mosquitto run as
   child processes;
2. writes ``<run dir>/config.toml``: the base configuration (gateway id,
   site, log level, its drivers such as ``system``) plus one ``[[drivers]]``
   section per simulated bus, ``[mqtt]`` pointing at the local broker and
   ``[sync]`` at the central API, with the store and control socket inside
   the run directory;
3. enrolls the gateway with the central API (``zaas-edge identity init`` and
   ``zaas-edge enroll``, as a technician would);
4. runs the real daemon (``python -m zaas_edge -c <run dir>/config.toml run``)
   as a child whose log goes to this terminal, and prints what runs and the
   commands to try in another terminal.

Everything listens on 127.0.0.1. Ctrl-C or SIGTERM stops the daemon first
(so it flushes its store and says goodbye on MQTT), then every simulator;
children run in their own sessions so only this process gets the terminal's
signals and the order holds. A simulator that cannot start costs one line
and the building runs without it. Each run starts from an empty store: the
run directory's ``state/``, ``run/``, ``central/`` and ``broker/`` are
recreated (a run directory in use by a live daemon is refused).
"""

from __future__ import annotations

__all__ = ["Scenario", "ScenarioError", "building_config", "to_toml", "merge", "main", "stop_on_signals",
           "start_unless_stopped"]

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from hil.buildings import BUILDINGS, Building, ModbusLine, get_building
from hil.timescale import TimeScale
from zaas_edge.tomlw import toml_key, toml_value

if TYPE_CHECKING:
    from hil.linky_sim import LinkyMeter, LinkySimulator
    from hil.modbus_sim import SimBus

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RUN_DIR = ROOT / ".demo"
DAEMON_STOP_S = 4.5  # the daemon's own stop budget is 4 s (runtime.stop_timeout_s)
FRESH = ("state", "run", "central", "broker")


class ScenarioError(Exception):
    """The scenario cannot run at all (the message says why and what to do)."""


# --- configuration ------------------------------------------------------------------------

def to_toml(doc: dict[str, Any]) -> str:
    """A configuration document as TOML: top-level tables, ``[[drivers]]`` entries, inline values below."""
    out: list[str] = []

    def table(prefix: str, body: dict[str, Any]) -> None:
        plain = {k: v for k, v in body.items() if not isinstance(v, dict) and v is not None}
        tables = {k: v for k, v in body.items() if isinstance(v, dict)}
        if plain or not tables:
            out.append(f"\n[{prefix}]")
            out.extend(f"{toml_key(k)} = {toml_value(v)}" for k, v in plain.items())
        for k, v in tables.items():
            table(f"{prefix}.{toml_key(k)}", v)

    for name, body in doc.items():
        if isinstance(body, dict):
            table(toml_key(name), body)
        elif isinstance(body, list) and all(isinstance(x, dict) for x in body):
            for entry in body:
                out.append(f"\n[[{toml_key(name)}]]")
                for k, v in entry.items():
                    if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
                        # one device per line: a long inline array is unreadable
                        out.append(f"{toml_key(k)} = [\n" + "".join(f"  {toml_value(x)},\n" for x in v) + "]")
                    elif v is not None:
                        out.append(f"{toml_key(k)} = {toml_value(v)}")
        else:
            out.insert(0, f"{toml_key(name)} = {toml_value(body)}")
    return "\n".join(out).lstrip("\n") + "\n"


def base_document(base: Path) -> dict[str, Any]:
    """The base configuration as set in its files, paths resolved, validated by the real loader."""
    from zaas_edge.config import load_config
    from zaas_edge.errors import ConfigError

    try:
        loaded = load_config(base)
    except ConfigError as exc:
        raise ScenarioError(f"the base configuration is not valid:\n{exc}") from None
    doc = loaded.config.model_dump(mode="json", exclude_unset=True, exclude={"drivers"})
    doc["drivers"] = [d.model_dump(mode="json", exclude_unset=True) for d in loaded.drivers]
    return doc


def building_config(base: dict[str, Any], run_dir: Path, building: Building, endpoints: dict[str, dict[str, Any]],
                    *, mqtt: dict[str, Any] | None = None, sync: dict[str, Any] | None = None,
                    lora: dict[str, Any] | None = None) -> dict[str, Any]:
    """The daemon's configuration: ``base`` plus a driver per bus reached in ``endpoints`` (by line id)."""
    doc = json.loads(json.dumps(base))  # a deep copy
    gw = doc.setdefault("gateway", {})
    gw["state_dir"] = str(run_dir / "state")
    gw["runtime_dir"] = str(run_dir / "run")
    drivers = doc.setdefault("drivers", [])
    for line in building.modbus:
        if line.id not in endpoints:
            continue
        d: dict[str, Any] = {"id": line.id, "type": "modbus", "transport": line.transport, "timeout_s": 0.5,
                             "retry_initial_s": 2.0, **endpoints[line.id]}
        d["devices"] = [{"id": m.id, "unit": m.unit, "profile": m.profile, "interval_fast_s": line.interval_fast_s,
                         "interval_slow_s": line.interval_slow_s} for m in line.meters]
        drivers.append(d)
    for seg in building.mbus:
        if seg.id not in endpoints:
            continue
        addresses = endpoints[seg.id].pop("addresses")
        d = {"id": seg.id, "type": "mbus", "baudrate": 9600, **endpoints[seg.id]}
        d["meters"] = [{"id": m.id, "address": addresses[m.sim], "interval_s": seg.interval_s,
                        "energy_unit": m.energy_unit} for m in seg.meters]
        drivers.append(d)
    if lora is not None and building.lora is not None:
        drivers.append({"id": building.lora.id, "type": "lora", "bind": "127.0.0.1", **lora})
    linky = building.linky
    if linky is not None and linky.id in endpoints:
        drivers.append({"id": linky.id, "type": "tic", "mode": linky.mode, "meter_id": linky.meter_id,
                        "points": {"apparent_power*": {"store_interval_s": 10, "deadband_abs": 100}},
                        **endpoints[linky.id]})
    elif linky is not None:
        _drop_limits_on(doc, f"{linky.device}/")  # no meter: its limit would send every load to its safe state
    ble = building.ble
    if ble is not None and ble.id in endpoints:
        drivers.append({"id": ble.id, "type": "ble", "min_interval_s": ble.interval_s,
                        "offline_after_s": max(60.0, 6 * ble.interval_s),
                        "devices": [{"mac": x.mac, "id": x.id} for x in ble.sensors], **endpoints[ble.id]})
    doc["mqtt"] = {**doc.get("mqtt", {}), **(mqtt or {"enabled": False})}
    doc["sync"] = {**doc.get("sync", {}), **(sync or {"enabled": False})}
    return doc


def _drop_limits_on(doc: dict[str, Any], prefix: str) -> None:
    """Remove the shedding limits that read only points under ``prefix``; their children take their parent."""
    limits = doc.get("shedding", {}).get("limits", [])
    gone = {lim["id"]: lim.get("parent") for lim in limits
            if lim.get("points") and all(p.startswith(prefix) for p in lim["points"])}
    if not gone:
        return
    kept = [lim for lim in limits if lim["id"] not in gone]
    for lim in kept:
        while lim.get("parent") in gone:
            lim["parent"] = gone[lim["parent"]]
        if lim.get("parent") is None:
            lim.pop("parent", None)
    doc["shedding"]["limits"] = kept
    for load in doc["shedding"].get("loads", []):
        while load.get("circuit") in gone and gone[load["circuit"]] is not None:
            load["circuit"] = gone[load["circuit"]]


def merge(doc: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with ``extra`` merged in: tables key by key, any other value replaced (``doc`` is changed)."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            merge(doc[key], value)
        else:
            doc[key] = json.loads(json.dumps(value))
    return doc


# --- the runner ------------------------------------------------------------------------------


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Under systemd, the daemon must not talk to our supervisor's notify socket.
    for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID"):
        env.pop(k, None)
    pp = env.get("PYTHONPATH")
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{pp}" if pp else str(ROOT)  # hil and tests import from the tree
    return env


def _short(path: str) -> str:
    """``path`` relative to the current directory when it lies below it (what a user types)."""
    if not os.path.isabs(path):
        return path
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


class Scenario:
    """A simulated building and the daemon, started with ``await start()``, stopped with ``await stop()``.

    ``scale`` (``hil.timescale``) runs the building faster than real time:
    the simulators take their time from it and the daemon's configuration is
    put on it (``hil.scaled``) for ``horizon_s`` real seconds of daily
    windows. ``extra`` is merged into the generated configuration (before
    scaling): ``{"clock": {"assume_synced": True}}``, a rule's window.
    ``central_test_mode`` serves the central's loopback ``/test/...``
    endpoints (rows held, fault injection), for tests and scenario files.
    """

    def __init__(self, base_config: Path, building: Building, run_dir: Path = DEFAULT_RUN_DIR, *,
                 mqtt: bool = True, sync: bool = True, out: TextIO = sys.stdout, scale: TimeScale | None = None,
                 extra: dict[str, Any] | None = None, central_test_mode: bool = False,
                 horizon_s: float = 3600.0) -> None:
        self.scale = scale
        self.extra = extra or {}
        self.central_test_mode = central_test_mode
        self.horizon_s = horizon_s
        self.linky: LinkyMeter | None = None  # the simulated Linky, once started (hil.linky_sim)
        self.linky_sim: LinkySimulator | None = None
        self.broker: Any = None  # hil.mosquitto.Mosquitto, once started (a test subscribes to it)
        self.central_url = ""
        self.central_ca = ""
        self._env: dict[str, str] = {}  # added to the daemon's environment (the BLE replay seam)
        self.base_config = Path(base_config).resolve()
        self.building = building
        self.run_dir = Path(run_dir).resolve()
        self.want_mqtt = mqtt and building.mqtt
        self.want_sync = sync and building.sync
        self.out = out
        self.config_path = self.run_dir / "config.toml"
        self.running: list[str] = []  # one line per running part, for people
        self.skipped: list[str] = []
        self.daemon: asyncio.subprocess.Process | None = None
        self.children: dict[str, int] = {}  # name -> pid, written to scenario.json
        self._closers: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        self._endpoints: dict[str, dict[str, Any]] = {}
        self._mqtt: dict[str, Any] | None = None
        self._sync: dict[str, Any] | None = None
        self._central_token = ""
        self._central_ca = ""
        self._lora: dict[str, Any] | None = None
        self._logs: list[TextIO] = []
        self.plant: Any = None  # hil.shed_plant.Plant of a line with plant=True, once started
        self.buses: dict[str, Any] = {}  # bus id -> its running simulator (SimServer, MBusSimulator), for faults
        self.daemon_command: tuple[str, ...] = ("-m", "zaas_edge")

    def say(self, line: str) -> None:
        print(f"scenario: {line}", file=self.out, flush=True)

    def _skip(self, what: str, exc: BaseException | str) -> None:
        msg = f"{what} did not start, the building runs without it: {exc}"
        self.skipped.append(msg)
        self.say(msg)

    # -- run directory --------------------------------------------------------------------

    def _prepare_run_dir(self) -> None:
        sock = self.run_dir / "run" / "control.sock"
        if sock.exists():
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                try:
                    s.connect(str(sock))
                except OSError:
                    pass
                else:
                    raise ScenarioError(f"a daemon already runs in {self.run_dir} (its control socket answers): "
                                        "stop that demo first, or pass another --run-dir")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for name in FRESH:
            shutil.rmtree(self.run_dir / name, ignore_errors=True)
        for name in ("state", "run"):
            (self.run_dir / name).mkdir(mode=0o750)

    def _log(self, name: str) -> TextIO:
        f = open(self.run_dir / f"{name}.log", "w")  # noqa: SIM115  (closed in stop())
        self._logs.append(f)
        return f

    # -- simulators -----------------------------------------------------------------------

    async def _start_modbus(self) -> None:
        from zaas_edge.drivers.modbus.profile import get_profile

        from hil.modbus_sim import SimBus, SimMeter, serve_rtu_pty, serve_tcp

        for line in self.building.modbus:
            try:
                if line.plant:
                    bus = self._plant(line)
                else:
                    bus = SimBus([SimMeter(get_profile(m.profile), m.unit) for m in line.meters], log_size=1000)
                if line.transport == "rtu":
                    srv = await serve_rtu_pty(bus)
                    self._endpoints[line.id] = {"port": srv.pty_path, "baudrate": 115200}
                    where = f"RTU on {srv.pty_path}"
                else:
                    srv = await serve_tcp(bus, "127.0.0.1", 0)
                    self._endpoints[line.id] = {"host": srv.host, "port": srv.port}
                    where = f"Modbus TCP on {srv.host}:{srv.port}"
                srv.start_moving(1.0)  # a real second: counters and the charger's watchdog (the plant: on its clock)
            except Exception as exc:  # noqa: BLE001  (any failure: one line, go on)
                self._skip(f"Modbus line {line.id}", exc)
                continue
            self._closers.append((line.id, srv.close))
            self.buses[line.id] = srv
            units = ", ".join(f"{m.id}={m.unit}" for m in line.meters)
            self.running.append(f"{line.id:12s} {where}: {len(line.meters)} meters ({units})")

    def _plant(self, line: ModbusLine) -> SimBus:
        """The sheddable loads' bus: a meter that sees what the relays switch and the wallbox draws."""
        from hil.shed_plant import DEFAULT_LOADS, Plant, office_base_load

        unit = {m.profile: m.unit for m in line.meters}
        plant = Plant(meter_unit=unit["eastron-sdm630"], relay_unit=unit["waveshare-relay-8ch"],
                      charger_unit=unit.get("heidelberg-energy-control"), on=[ld.id for ld in DEFAULT_LOADS])
        if self.scale is None:
            plant.base_fn = office_base_load(plant.clock())
        else:  # an office day in scenario time
            from hil.shed_plant import office_day_load

            plant.base_fn = office_day_load(self.scale.on_clock(time.time(), plant.clock()))
        if plant.charger is not None:
            plant.charger.plug(phases=3)  # a car charging at full current
        self.plant = plant
        return plant.bus

    async def _start_mbus(self) -> None:
        from hil.mbus_sim import MBusSimulator, default_meters

        for seg in self.building.mbus:
            try:
                by_name = {m.name: m for m in default_meters()}
                # The simulated meters' values run 100 times faster than their clock (so they move in a
                # test); on a time scale, slowed back so indexes integrate their flow over scenario time.
                speed = 1.0 if self.scale is None else self.scale.factor / 100.0
                sim = MBusSimulator([by_name[m.sim] for m in seg.meters], speed=speed).start()
            except Exception as exc:  # noqa: BLE001
                self._skip(f"M-Bus segment {seg.id}", exc)
                continue
            self._endpoints[seg.id] = {"port": sim.path, "addresses": {m.name: m.address for m in sim.bus.meters}}
            self.buses[seg.id] = sim

            async def close(sim: MBusSimulator = sim) -> None:
                await asyncio.to_thread(sim.close)

            self._closers.append((seg.id, close))
            meters = ", ".join(f"{m.id}@{by_name[m.sim].address}" for m in seg.meters)
            self.running.append(f"{seg.id:12s} M-Bus on {sim.path}: {len(seg.meters)} meters ({meters})")

    async def _start_linky(self) -> None:
        """The Linky on a pty, fed by the plant when there is one; its control socket in the run directory."""
        spec = self.building.linky
        if spec is None:
            return
        from zaas_edge.drivers.tic import Mode

        from hil.linky_meter import MeterConfig
        from hil.linky_sim import Colour, Contract, LinkyMeter, LinkySimulator, Tariff, constant

        try:
            factor = 1.0 if self.scale is None else self.scale.factor
            config = MeterConfig(mode=Mode.STANDARD if spec.mode == "standard" else Mode.HISTORIC,
                                 phases=spec.phases, contract=Contract(spec.contract), pref_kva=spec.pref_kva,
                                 adco=spec.meter_id, breaker_stride=max(1, round(factor)))
            clock = time.time if self.scale is None else self.scale.clock(time.time)
            meter = LinkyMeter(config, tariff=Tariff(tempo_today=Colour[spec.tempo_today.upper()]),
                               curve=constant(3000.0), clock=clock)
            if spec.tempo_calendar:
                from datetime import date

                meter.set_tempo_calendar({date.fromisoformat(d): Colour[c.upper()] for d, c in spec.tempo_calendar})
            if self.plant is not None:
                self.plant.feed_linky(meter, self.scale)
            control = self.run_dir / "linky.sock"
            sim = LinkySimulator(meter, control=control).start()
        except Exception as exc:  # noqa: BLE001
            self._skip(f"the Linky {spec.id}", exc)
            return
        self.linky, self.linky_sim = meter, sim
        self._endpoints[spec.id] = {"port": sim.path}

        async def close() -> None:
            await asyncio.to_thread(sim.close)

        self._closers.append((spec.id, close))
        fed = "measuring the loads line" if self.plant is not None else "a flat 3 kVA"
        self.running.append(f"{spec.id:12s} Linky TIC ({spec.mode}, {spec.phases} phases, {spec.contract}, "
                            f"{spec.pref_kva} kVA) on {sim.path}, {fed}; control socket {_short(str(control))}")

    def _prepare_ble(self) -> None:
        """The BLE sensors' adverts as a replay file the daemon's driver reads (``ZAAS_EDGE_BLE_REPLAY``)."""
        radio = self.building.ble
        if radio is None:
            return
        from zaas_edge.drivers.ble.replay import REPLAY_ENV

        from hil.ble_replay import write_adverts

        path = self.run_dir / "state" / "ble-adverts.jsonl"
        try:
            n = write_adverts(path, radio.sensors, interval_s=radio.interval_s, hours=radio.hours)
        except Exception as exc:  # noqa: BLE001
            self._skip("the BLE sensors", exc)
            return
        self._env[REPLAY_ENV] = str(path)
        self._endpoints[radio.id] = {}
        self.running.append(f"{radio.id:12s} {len(radio.sensors)} BLE sensors, {n} adverts replayed at the "
                            f"driver's boundary ({REPLAY_ENV}={_short(str(path))})")

    async def _start_mosquitto(self) -> None:
        if not self.want_mqtt:
            return
        from hil.mosquitto import MOSQUITTO, Mosquitto, available

        if not available():
            self.skipped.append(f"MQTT publishing is disabled: no mosquitto at {MOSQUITTO} "
                                "(sudo apt-get install mosquitto, then run the demo again)")
            self.say(self.skipped[-1])
            return
        try:
            # In a session of its own, so Ctrl-C in the terminal does not stop the broker
            # before the daemon has said goodbye on it.
            broker = Mosquitto(self.run_dir / "broker", new_session=True)
            await asyncio.to_thread(broker.start)
        except Exception as exc:  # noqa: BLE001
            self._skip("mosquitto", exc)
            return
        self.broker = broker
        self.children["mosquitto"] = broker.proc.pid if broker.proc else 0
        self._closers.append(("mosquitto", lambda: asyncio.to_thread(broker.stop)))
        self._mqtt = {"enabled": True, "host": broker.host, "port": broker.port}
        self.running.append(f"{'mqtt':12s} mosquitto on {broker.host}:{broker.port} (log {broker.log_path})")

    async def _spawn(self, name: str, *args: str, stdout: Any) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *args, stdout=stdout, stderr=subprocess.STDOUT if stdout is not subprocess.PIPE
            else self._log(name), stdin=subprocess.DEVNULL, cwd=ROOT, env=_child_env(), start_new_session=True)
        self.children[name] = proc.pid
        return proc

    async def _stop_child(self, proc: asyncio.subprocess.Process, timeout: float = 3.0) -> None:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()

    async def _start_central(self, gateway: str) -> None:
        if not self.want_sync:
            return
        proc = None
        try:
            test_mode = ("--test-mode",) if self.central_test_mode else ()
            proc = await self._spawn("central", "-m", "hil.central", "--dir", str(self.run_dir / "central"),
                                     "--port", "0", "--gateway", gateway, *test_mode, stdout=subprocess.PIPE)
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            info = json.loads(line)
            url, self._central_ca, self._central_token = info["url"], info["ca"], info["tokens"][0]
        except Exception as exc:  # noqa: BLE001
            if proc is not None:
                await self._stop_child(proc)
            self._skip("the central API (hil.central)", f"{type(exc).__name__}: {exc} "
                       f"(see {self.run_dir / 'central.log'})")
            return
        self._closers.append(("central", lambda: self._stop_child(proc)))
        self.central_url, self.central_ca = url, self._central_ca
        self._sync = {"enabled": True, "url": url, "idle_interval_s": 2.0, "config_pull_interval_s": 0}
        self.running.append(f"{'central':12s} reference central API at {url} (data in {self.run_dir / 'central'})")

    async def _enroll(self) -> None:
        """``identity init`` and ``enroll`` with the central's one-time token, as on a real install."""
        for args in (("identity", "init"), ("enroll", "--token", self._central_token, "--ca", self._central_ca)):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "zaas_edge", "-c", str(self.config_path), *args, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT, env=_child_env())
            text = (await proc.communicate())[0].decode(errors="replace").strip()
            if proc.returncode != 0:
                raise ScenarioError(f"zaas-edge {args[0]} failed: {text.splitlines()[-1] if text else proc.returncode}")

    def _prepare_lora(self) -> None:
        if self.building.lora is None:
            return
        from zaas_edge.drivers.lora.keys import save_keys

        from hil.lora_forwarder import DEMO_DEVICES

        try:
            by_id = {k.id: k for k in DEMO_DEVICES}
            keys = self.run_dir / "state" / "lora-keys.toml"
            save_keys(keys, [by_id[d] for d in self.building.lora.devices])
            self._lora = {"port": _free_udp_port(), "keys_file": str(keys)}
        except Exception as exc:  # noqa: BLE001
            self._skip("LoRa network", exc)

    async def _start_forwarder(self) -> None:
        assert self._lora is not None and self.building.lora is not None
        interval = self.building.lora.interval_s
        if self.scale is not None:
            interval = self.scale.real_duration(interval, 1.0)
        try:
            proc = await self._spawn("lora-forwarder", "-m", "hil.lora_forwarder", "--port", str(self._lora["port"]),
                                     "--keys-file", self._lora["keys_file"],
                                     "--interval", str(interval),
                                     stdout=self._log("lora-forwarder"))
        except Exception as exc:  # noqa: BLE001
            self._skip("LoRa packet forwarder", exc)
            return
        self._closers.append(("lora-forwarder", lambda: self._stop_child(proc)))
        self.running.append(f"{self.building.lora.id:12s} 2 packet forwarders -> GWMP 127.0.0.1:{self._lora['port']} "
                            f"(log {self.run_dir / 'lora-forwarder.log'})")

    # -- the daemon -----------------------------------------------------------------------

    def write_config(self) -> Path:
        doc = building_config(self._base, self.run_dir, self.building,
                              json.loads(json.dumps(self._endpoints)), mqtt=self._mqtt, sync=self._sync,
                              lora=self._lora)
        merge(doc, self.extra)
        header = (f"# Written by hil.scenario for the simulated building {self.building.name!r}\n"
                  f"# from {self.base_config}: regenerated at every start, edits are lost.\n")
        if self.scale is not None and not self.scale.real_time:
            from hil.scaled import scale_config

            doc = scale_config(doc, self.scale, until=time.time() + self.horizon_s)
            header += (f"# On a time scale: {self.scale.factor:g} scenario seconds per real second "
                       f"(durations divided, daily windows moved to real minutes; hil/scaled.py).\n")
        header += "\n"
        self.config_path.write_text(header + to_toml(doc))
        return self.config_path

    async def _wait_ready(self, timeout: float = 30.0) -> dict[str, Any]:
        """The daemon's status once every driver runs (or ``timeout``): the control socket, not a sleep."""
        from zaas_edge.control import ControlClient

        client = ControlClient(self.run_dir / "run" / "control.sock", timeout=5)
        deadline = time.monotonic() + timeout
        st: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if self.daemon is not None and self.daemon.returncode is not None:
                raise ScenarioError(f"the daemon exited with status {self.daemon.returncode} while starting "
                                    "(its log is above)")
            try:
                st = await asyncio.to_thread(client.call, "status")
            except Exception:  # noqa: BLE001  (not listening yet)
                st = {}
            drivers = st.get("drivers", {})
            if drivers and all(d.get("state") == "running" for d in drivers.values()):
                return st
            await asyncio.sleep(0.2)
        return st

    async def start(self) -> None:
        """Everything up and the daemon ready; raises ScenarioError when nothing useful can run."""
        self._base = base_document(self.base_config)
        self._prepare_run_dir()
        self.say(f"building {self.building.name!r}: {self.building.description}")
        await self._start_modbus()
        await self._start_linky()
        await self._start_mbus()
        self._prepare_lora()
        self._prepare_ble()
        wanted = (len(self.building.modbus) + len(self.building.mbus) + (self.building.lora is not None)
                  + (self.building.linky is not None) + (self.building.ble is not None))
        reached = len(self._endpoints) + (self._lora is not None)
        if wanted and not reached:
            raise ScenarioError("no simulated bus could start (see the lines above): nothing to demonstrate")
        await self._start_mosquitto()
        gateway = self._base.get("gateway", {}).get("id", "gw-demo")
        await self._start_central(gateway)
        self.write_config()
        if self._sync is not None:
            try:
                await self._enroll()
            except ScenarioError as exc:
                self._skip("sync to the central API", exc)
                self._sync = None
                self.write_config()
        await self.spawn_daemon()
        st = await self._wait_ready()
        if self._lora is not None:
            await self._start_forwarder()
            self._write_pids()
        self._banner(st)

    async def spawn_daemon(self) -> asyncio.subprocess.Process:
        """Start the daemon on the written configuration (again after a crash: what systemd does).

        ``daemon_command`` is what follows the interpreter (a scenario file's
        runner puts a launcher before the daemon there, ``hil.run.clockshim``).
        """
        self.daemon = await asyncio.create_subprocess_exec(
            sys.executable, *self.daemon_command, "-c", str(self.config_path), "run", stdin=subprocess.DEVNULL,
            cwd=ROOT, env={**_child_env(), **self._env}, start_new_session=True, stderr=subprocess.STDOUT,
            stdout=self.out if hasattr(self.out, "fileno") else None)
        self.children["daemon"] = self.daemon.pid
        self._write_pids()
        return self.daemon

    def _write_pids(self) -> None:
        doc = {"scenario": os.getpid(), "children": self.children, "config": str(self.config_path)}
        (self.run_dir / "scenario.json").write_text(json.dumps(doc, indent=1) + "\n")

    def _banner(self, st: dict[str, Any]) -> None:
        """What runs, and where to look next: the live view, shedding, alarms, MQTT, the central."""
        zaas = _short(shutil.which("zaas-edge", path=str(Path(sys.executable).parent)) or "zaas-edge")
        cfg = _short(str(self.config_path))
        gateway = self._base.get("gateway", {})
        lines = ["", "=" * 72, f"zaas-edge demo: building {self.building.name!r}, gateway "
                 f"{gateway.get('id', '?')}, {len(self.building.devices())} simulated devices", "running:",
                 f"  {'daemon':12s} pid {self.children.get('daemon')}, config {cfg}, "
                 f"{len(st.get('drivers', {}))} drivers"]
        lines += [f"  {r}" for r in self.running]
        if self.scale is not None and not self.scale.real_time:
            lines.append(f"  {'time scale':12s} {self.scale.factor:g} scenario seconds per real second "
                         f"(a scenario day in {86400 / self.scale.factor / 60:.1f} min)")
        if self.skipped:
            lines += ["not running:"] + [f"  {s}" for s in self.skipped]
        look: list[tuple[str, str]] = [
            (f"{zaas} -c {cfg} status --watch", "the live view: drivers, devices, readings/s"),
            (f"{zaas} -c {cfg} status --points", "the latest reading of every point")]
        if self.plant is not None and self._base.get("shedding", {}).get("enabled"):
            look.append((f"{zaas} -c {cfg} shed status", "the loads shed to stay under the limits"))
        if self._base.get("alarms", {}).get("enabled"):
            look.append((f"{zaas} -c {cfg} alarms list", "the incidents open (a hidden leak within minutes)"))
        if self._mqtt:
            from zaas_edge.mqtt.topics import Topics

            base = Topics(str(gateway.get("site", "site")), str(gateway.get("id", "gw"))).base
            sub = f"mosquitto_sub -h 127.0.0.1 -p {self._mqtt['port']}"
            look.append((f"{sub} -t '{base}/#' -v", "everything published (package mosquitto-clients)"))
            look.append((f"{sub} -t '{base}/alarm/#' -v", "the alarms, retained"))
        if self._sync:
            look.append((f"{zaas} -c {cfg} sync status", f"the uplink to the central API at {self.central_url}"))
        if self.linky_sim is not None and self.linky_sim.control_path is not None:
            sock = _short(str(self.linky_sim.control_path))
            look.append((f"{_short(sys.executable)} -m hil.linky_sim --send {sock} 'tempo red'",
                         "a Tempo red day on the Linky"))
        width = max(len(c) for c, _ in look)
        lines += ["where to look next, in another terminal:"] + [f"  {c:{width}s}   {why}" for c, why in look]
        lines += ["Ctrl-C stops everything.", "=" * 72, ""]
        print("\n".join(lines), file=self.out, flush=True)

    async def wait(self, duration: float | None = None, stop: asyncio.Event | None = None) -> int:
        """Until ``stop`` is set, ``duration`` seconds pass or the daemon exits; the exit status to report."""
        assert self.daemon is not None
        waiters = [asyncio.ensure_future(self.daemon.wait())]
        if stop is not None:
            waiters.append(asyncio.ensure_future(stop.wait()))
        done, pending = await asyncio.wait(waiters, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
        for w in pending:
            w.cancel()
        if self.daemon.returncode is not None:
            self.say(f"the daemon exited on its own with status {self.daemon.returncode}")
            return 1
        return 0

    async def stop(self) -> None:
        """The daemon first (it flushes and tells MQTT it goes offline), then the simulators, newest first."""
        if self.daemon is not None:
            await self._stop_child(self.daemon, DAEMON_STOP_S)
        results = await asyncio.gather(*(close() for _, close in reversed(self._closers)), return_exceptions=True)
        for (name, _), r in zip(reversed(self._closers), results, strict=True):
            if isinstance(r, BaseException):
                self.say(f"{name} did not stop cleanly: {r}")
        self._closers.clear()
        for f in self._logs:
            f.close()
        self._logs.clear()


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (Ctrl-C stops everything, children included)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def start_unless_stopped(start: Any, stop: asyncio.Event) -> None:
    """Await ``start`` (a coroutine) unless ``stop`` is set first; then it is cancelled and
    ScenarioError("interrupted while starting") raised."""
    starting = asyncio.ensure_future(start)
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait([starting, stopper], return_when=asyncio.FIRST_COMPLETED)
    if starting.done():
        stopper.cancel()
        starting.result()
        return
    starting.cancel()
    with contextlib.suppress(asyncio.CancelledError, ScenarioError):
        await starting
    raise ScenarioError("interrupted while starting")


def _scenario_start(hhmm: str | None) -> float | None:
    """Today at ``HH:MM`` local time (the scenario's first moment), or None for now."""
    if not hhmm:
        return None
    h, m = (int(x) for x in hhmm.split(":"))
    tm = time.localtime()
    return time.mktime((tm.tm_year, tm.tm_mon, tm.tm_mday, h, m, 0, 0, 0, -1))


def _hhmm(text: str) -> str:
    try:
        h, m = (int(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not HH:MM") from None
    if not (0 <= h < 24 and 0 <= m < 60):
        raise argparse.ArgumentTypeError(f"{text!r} is not a time of day (00:00 to 23:59)")
    return text


def _factor(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 1.0 <= value <= 10_000:
        raise argparse.ArgumentTypeError(f"a time scale is 1 (real time) to 10000, got {text}")
    return value


async def _run(args: argparse.Namespace) -> int:
    scale = None
    if args.time_scale != 1.0:
        scale = TimeScale.starting_now(args.time_scale, epoch=_scenario_start(args.start))
    scenario = Scenario(Path(args.config), get_building(args.building), Path(args.run_dir),
                        mqtt=not args.no_mqtt, sync=not args.no_sync, scale=scale,
                        horizon_s=args.duration or 3600.0)
    stop = stop_on_signals()
    status = 0
    try:
        try:
            await start_unless_stopped(scenario.start(), stop)
        except ScenarioError:
            if stop.is_set():
                return status  # Ctrl-C while starting: a clean stop, not an error
            raise
        status = await scenario.wait(args.duration, stop)
    except ScenarioError as exc:
        print(f"scenario: {exc}", file=sys.stderr, flush=True)
        status = 2
    finally:
        started = scenario.daemon is not None or bool(scenario.children)
        if started:
            scenario.say("stopping")
        await scenario.stop()
        if started:
            scenario.say("stopped")
    return status


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hil.scenario", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(ROOT / "config" / "demo.toml"),
                    help="base configuration: gateway id, site, log level, drivers such as system")
    ap.add_argument("--building", default="demo", choices=sorted(BUILDINGS), help="which simulated building")
    ap.add_argument("--run-dir", default=str(DEFAULT_RUN_DIR),
                    help="where the generated config.toml, the store, sockets and logs go (recreated each run)")
    ap.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: Ctrl-C)")
    ap.add_argument("--no-mqtt", action="store_true", help="do not start mosquitto; MQTT publishing is disabled")
    ap.add_argument("--no-sync", action="store_true", help="do not start the central API; sync is disabled")
    ap.add_argument("--time-scale", type=_factor, default=1.0, metavar="FACTOR",
                    help="scenario seconds per real second: 144 runs a building's day in 10 minutes "
                         "(simulators and the daemon's configuration follow; default 1, real time)")
    ap.add_argument("--start", type=_hhmm, default=None, metavar="HH:MM",
                    help="with --time-scale: the scenario's time of day at start (default: now)")
    args = ap.parse_args(argv)
    return asyncio.run(_run(args))


if __name__ == "__main__":
    sys.exit(main())
