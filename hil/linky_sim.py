"""A simulated Linky meter on a pseudo-terminal: its TIC customer port, its tariff signals and its breaker.

The meter writes frames to the master side of a pty; the driver, ``zaas-edge
tic read`` or any TIC tool opens the slave (``path``, printed at start) as if
it were a USB dongle's ``/dev/ttyUSB0``. Historic (1200 Bd) or standard
(9600 Bd) mode, one or three phases, BASE, HC, Tempo or EJP.

The demanded power comes from a load curve (a function of time) or is set
live. The meter runs its own breaking filter (shared/ENERGY.md §3.1): a load
over PREF raises ``ADPS`` / ``STGE`` bit 7 at once, a load sustained over
1.3 × PCOUP opens the breaker after the filter's delay; then ``STGE`` says
open and the delivered power is zero until ``rearm``.

Driving it from another process (the closed-loop building simulator): a UNIX
stream socket (``--control PATH``), one command per line, one JSON reply per
line (``{"ok": true, "state": {...}}`` or ``{"ok": false, "error": "..."}``)::

    power 5200            demanded power, VA (or three values, one per phase)
    curve                 back to the load curve
    rearm                 the customer presses the button
    tempo red [white]     Tempo colour today [and tomorrow]: blue, white, red, none
    ejp day on|off        today is an EJP day (peak 07:00 → 01:00) or not
    ejp notice on|off|auto
    hc 22:00-06:00[,12:00-14:00]
    checksum old|spec     the older meters' checksum rule, or the spec's
    fault KIND [label=L] [at=N] [times=N]   noise, bad_checksum, eot, partial, tail
    state                 the meter's state

A socket rather than a file: commands other than the power (rearm, faults)
are events, not values, and each gets its answer; a client is
``echo power 5200 | socat - UNIX-CONNECT:PATH`` or :func:`send`.

In-process: :class:`LinkyMeter` (``set_power``, ``rearm``, ``set_tempo``,
``inject``, ``frame``) with an injectable clock, and :class:`LinkySimulator`
which paces its frames on the pty like a real meter (bytes at the line rate,
25 ms between frames) or, with ``fast=True``, one whole frame every
``interval`` seconds.

Run ``python -m hil.linky_sim --help``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import select
import signal
import socket
import socketserver
import subprocess
import sys
import termios
import threading
import time
import tty
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path

from zaas_edge.drivers.tic import Group, Mode, Variant

from hil import linky_breaker
from hil.linky_faults import Fault, FaultKind, render
from hil.linky_meter import MeterConfig, MeterState, advance, initial_state, next_frame, over_power, rearm
from hil.linky_tariff import (
    REGISTERS,
    Colour,
    Contract,
    Tariff,
    ejp_notice,
    local_time,
    next_tempo_change,
    period_index,
    tempo_colours,
)
from hil.procs import kill_process, stop_process
from zaas_edge.errors import ProtocolError

__all__ = [
    "LoadCurve",
    "PhaseDemand",
    "constant",
    "daily_curve",
    "ticking",
    "LinkyMeter",
    "LinkySimulator",
    "LinkySimProcess",
    "CommandError",
    "send",
    "main",
    "MeterConfig",
    "Tariff",
    "Contract",
    "Colour",
    "Fault",
    "FaultKind",
]

#: Total demanded apparent power (VA) at an epoch time; split evenly over the phases.
LoadCurve = Callable[[float], float]
#: Demanded apparent power of each phase (VA) at an epoch second of the meter's clock.
PhaseDemand = Callable[[int], Sequence[float]]

FRAME_GAP_S = 0.025  # the spec's 16.7–33.4 ms of silence between frames
_FULL_FLUSH_S = 1.0  # the pty full this long with no byte taken: nobody reads, drop what waits
_MAX_LINE = 4096  # control protocol: longest command line


def constant(va: float) -> LoadCurve:
    """A flat load."""
    return lambda t: va


def ticking(start: float) -> Callable[[], float]:
    """A meter clock for tests: one second per call, so every frame is the meter's next second."""
    t = [start]

    def clock() -> float:
        t[0] += 1
        return float(t[0])

    return clock


def daily_curve(base_va: float = 400, peak_va: float = 3500) -> LoadCurve:
    """A household-like day: base load, a morning bump and an evening peak around 19:30, local time."""

    def curve(t: float) -> float:
        local = local_time(t)
        h = local.hour + local.minute / 60 + local.second / 3600
        morning = math.exp(-(((h - 7.5) / 1.2) ** 2)) * 0.5
        evening = math.exp(-(((h - 19.5) / 1.8) ** 2))
        return base_va + (peak_va - base_va) * max(morning, evening)

    return curve


class CommandError(ValueError):
    """A control command the meter cannot carry out; the reply says why."""


class LinkyMeter:
    """The meter's behaviour, in-process and thread-safe: the pure model plus what is set live.

    ``clock`` returns epoch seconds (``time.time`` by default; a test passes
    its own so frames are deterministic). Every call that takes ``now``
    defaults to ``clock()``.
    """

    def __init__(self, config: MeterConfig | None = None, *, tariff: Tariff | None = None,
                 curve: LoadCurve | None = None, clock: Callable[[], float] = time.time,
                 start: float | None = None) -> None:
        self.config = config or MeterConfig()
        self._tariff = tariff or Tariff()
        self._curve = curve or constant(0)
        self._power: tuple[float, ...] | None = None
        self._demand_fn: PhaseDemand | None = None
        self._calendar: dict[date, Colour] = {}
        self.clock = clock
        self._lock = threading.RLock()
        self._state = initial_state(self.config, clock() if start is None else start)
        self._faults: deque[Fault] = deque()
        self._variant = self.config.variant

    # -- what is set live ---------------------------------------------------------------

    def set_power(self, va: float | Sequence[float] | None) -> None:
        """Demand ``va`` from now on (total, or one value per phase); ``None`` goes back to the curve."""
        with self._lock:
            self._catch_up()
            if va is None:
                self._power = None
                return
            values = (float(va),) if isinstance(va, int | float) else tuple(float(v) for v in va)
            if len(values) == 1:
                values = (values[0] / self.config.phases,) * self.config.phases
            if len(values) != self.config.phases or any(not math.isfinite(v) or v < 0 for v in values):
                raise CommandError(f"power needs 1 or {self.config.phases} non-negative values, got {list(values)}")
            self._power = values

    def set_curve(self, curve: LoadCurve) -> None:
        with self._lock:
            self._catch_up()
            self._curve, self._power, self._demand_fn = curve, None, None

    def set_demand(self, demand: PhaseDemand | None) -> None:
        """Take each phase's demand from ``demand`` (a building: ``hil.shed_plant.Plant.feed_linky``);
        ``None`` goes back to the load curve. A power set live (``set_power``) still wins while set."""
        with self._lock:
            self._catch_up()
            self._demand_fn = demand

    def rearm(self) -> None:
        """Close the breaker (the customer's button)."""
        with self._lock:
            self._catch_up()
            self._state = rearm(self._state)

    @property
    def tariff(self) -> Tariff:
        return self._tariff

    def set_tariff(self, tariff: Tariff) -> None:
        with self._lock:
            self._catch_up()
            self._tariff = tariff

    def set_tempo(self, today: Colour, tomorrow: Colour = Colour.NONE) -> None:
        self.set_tariff(replace(self._tariff, tempo_today=today, tempo_tomorrow=tomorrow))

    def set_tempo_calendar(self, calendar: dict[date, Colour] | None) -> None:
        """Tempo colours by day: the meter changes colour at 06:00 and learns tomorrow's at 11:00 on its own
        clock (a scenario's, on a time scale), so a red day comes without anyone setting it; ``None`` or
        ``{}`` stops (the colours stay as they are, settable with ``set_tempo``)."""
        with self._lock:
            self._catch_up()
            self._calendar = dict(calendar or {})
            if self._calendar:
                self._apply_calendar(self._state.t)

    def _apply_calendar(self, t: float) -> None:
        today, tomorrow = tempo_colours(self._calendar, local_time(t))
        self._tariff = replace(self._tariff, tempo_today=today, tempo_tomorrow=tomorrow)

    def set_hc_schedule(self, ranges: Sequence[tuple[int, int]]) -> None:
        """Off-peak ranges in minutes of the local day, e.g. ``[(22 * 60, 6 * 60)]``."""
        if not ranges or any(not (0 <= a < 1440 and 0 <= b < 1440) for a, b in ranges):
            raise CommandError(f"HC ranges must be minutes 0..1439, got {list(ranges)}")
        self.set_tariff(replace(self._tariff, hc_schedule=tuple(ranges)))

    def set_ejp_day(self, day: date, on: bool = True) -> None:
        days = self._tariff.ejp_days | {day} if on else self._tariff.ejp_days - {day}
        self.set_tariff(replace(self._tariff, ejp_days=frozenset(days)))

    def set_ejp_notice(self, notice: bool | None) -> None:
        """Force the EJP notice on or off; ``None`` gives it in the 30 minutes before an EJP peak."""
        self.set_tariff(replace(self._tariff, ejp_notice=notice))

    def set_checksum(self, old: bool) -> None:
        """Switch to the older meters' checksum rule (the other zone than the spec's), or back."""
        spec = Variant.spec(self.config.mode)
        with self._lock:
            self._variant = (Variant.MODE1 if spec is Variant.MODE2 else Variant.MODE2) if old else None

    def inject(self, fault: Fault, times: int = 1) -> None:
        """Put ``fault`` on each of the next ``times`` frames."""
        with self._lock:
            self._faults.extend([fault] * times)

    # -- the meter running --------------------------------------------------------------

    def _demand(self, t: int) -> Sequence[float]:
        if self._power is not None:
            return self._power
        if self._demand_fn is not None:
            values = tuple(max(0.0, float(v)) for v in self._demand_fn(t))
            if len(values) == self.config.phases:
                return values
            total = sum(values)  # a three-phase building on a single-phase meter, or the other way round
            return (total / self.config.phases,) * self.config.phases
        va = max(0.0, float(self._curve(t)))
        return (va / self.config.phases,) * self.config.phases

    def _catch_up(self, now: float | None = None) -> MeterState:
        end = self.clock() if now is None else now
        while self._calendar and (change := next_tempo_change(self._state.t)) <= end:
            self._state = advance(self._state, self.config, self._tariff, self._demand, change)
            self._apply_calendar(change)  # the colours change on the very second, however far the catch-up
        self._state = advance(self._state, self.config, self._tariff, self._demand, end)
        return self._state

    @property
    def state(self) -> MeterState:
        with self._lock:
            return self._catch_up()

    def groups(self, now: float | None = None) -> list[Group]:
        """The groups of the next frame (and move to the one after), without line faults."""
        with self._lock:
            self._catch_up(now)
            self._state, groups = next_frame(self._state, self.config, self._tariff)
            return groups

    def frame(self, now: float | None = None) -> bytes:
        """The bytes of the next frame, with the next injected fault if one is waiting."""
        with self._lock:
            groups = self.groups(now)
            faults = [self._faults.popleft()] if self._faults else []
            variant = self._variant
        try:
            return render(groups, self.config.mode, variant, faults)
        except ValueError as exc:  # a fault naming a group this frame lacks: send the frame clean, say so
            print(f"linky_sim: fault {faults[0].kind.value} not applied: {exc}", file=sys.stderr, flush=True)
            return render(groups, self.config.mode, variant)

    def snapshot(self) -> dict[str, object]:
        """The state as JSON-ready values: what the control socket's ``state`` returns."""
        with self._lock:
            s = self._catch_up()
            cfg, tariff = self.config, self._tariff
            local = local_time(s.t)
            regs = REGISTERS[cfg.contract]
            return {
                "time": local.isoformat(),
                "mode": cfg.mode.name.lower(),
                "phases": cfg.phases,
                "contract": cfg.contract.value,
                "period": regs[period_index(cfg.contract, tariff, local)].label,
                "demand_va": [round(v) for v in self._demand(s.t + 1)],  # asked from now on
                "power_va": list(s.s_va),
                "over_power": over_power(cfg, s.s_va),
                "breaker_open": s.breaker.open,
                "trips": s.breaker.trips,
                "filter": [round(y, 4) for y in linky_breaker.filtered(s.breaker, cfg.pcoup_va)],
                "energy_wh": {r.label: e // 3600 for r, e in zip(regs, s.energy_vas, strict=True)},
                "tempo_today": tariff.tempo_today.name.lower(),
                "tempo_tomorrow": tariff.tempo_tomorrow.name.lower(),
                "ejp_days": sorted(d.isoformat() for d in tariff.ejp_days),
                "ejp_notice": ejp_notice(tariff, local),
                "frames": s.frames,
                "faults_waiting": len(self._faults),
            }

    # -- the control protocol -----------------------------------------------------------

    def command(self, line: str) -> dict[str, object]:
        """Carry out one control line; the reply is JSON-ready and never raises."""
        try:
            self._command(line.split())
        except (CommandError, ValueError) as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True, "state": self.snapshot()}

    def _command(self, words: list[str]) -> None:
        if not words:
            raise CommandError("empty command")
        verb, args = words[0].lower(), words[1:]
        if verb == "power":
            self.set_power([_number(a) for a in args] if args else None)
        elif verb == "curve":
            self.set_power(None)
        elif verb == "rearm":
            self.rearm()
        elif verb == "tempo" and 1 <= len(args) <= 2:
            self.set_tempo(*[_colour(a) for a in args])
        elif verb == "ejp" and len(args) == 2 and args[0] == "day":
            self.set_ejp_day(local_time(self.clock()).date(), _switch(args[1]))
        elif verb == "ejp" and len(args) == 2 and args[0] == "notice":
            self.set_ejp_notice(None if args[1] == "auto" else _switch(args[1]))
        elif verb == "hc" and len(args) == 1:
            self.set_hc_schedule([_range(r) for r in args[0].split(",")])
        elif verb == "checksum" and args in (["old"], ["spec"]):
            self.set_checksum(args[0] == "old")
        elif verb == "fault" and args:
            self._fault(args)
        elif verb == "state":
            pass
        else:
            raise CommandError(f"unknown command {' '.join(words)!r}: "
                               "power, curve, rearm, tempo, ejp, hc, checksum, fault, state")

    def _fault(self, args: list[str]) -> None:
        try:
            kind = FaultKind(args[0])
        except ValueError:
            raise CommandError(f"fault {args[0]!r}: one of {', '.join(k.value for k in FaultKind)}") from None
        opts = dict(a.partition("=")[::2] for a in args[1:])
        unknown = set(opts) - {"label", "at", "times"}
        if unknown:
            raise CommandError(f"fault options are label=, at=, times=; got {sorted(unknown)}")
        at = int(opts["at"]) if "at" in opts else None
        self.inject(Fault(kind, label=opts.get("label"), at=at), times=int(opts.get("times", "1")))


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise CommandError(f"{text!r} is not a number") from None


def _colour(text: str) -> Colour:
    try:
        return Colour[text.upper()]
    except KeyError:
        raise CommandError(f"colour {text!r}: blue, white, red or none") from None


def _switch(text: str) -> bool:
    if text not in ("on", "off"):
        raise CommandError(f"{text!r}: on or off")
    return text == "on"


def _range(text: str) -> tuple[int, int]:
    def minute(hhmm: str) -> int:
        h, m = hhmm.split(":")
        return int(h) * 60 + int(m)

    try:
        start, end = text.split("-")
        return minute(start), minute(end)
    except ValueError:
        raise CommandError(f"HC range {text!r} is not HH:MM-HH:MM") from None


# -- the pseudo-terminal ------------------------------------------------------------------


class LinkySimulator:
    """Sends a :class:`LinkyMeter`'s frames on the master side of a pty, in a thread.

    ``path`` is the slave a reader opens. Real pacing writes each frame at the
    mode's line rate (1200 Bd: about 1.3 s for a single-phase historic frame;
    9600 Bd: about 1 s for a standard one) with 25 ms between frames; ``fast``
    writes a whole frame every ``interval`` seconds. While no one reads, what
    the pty cannot hold is discarded, so a reader that opens the port late
    starts mid-frame, as on a real line. ``control`` serves the command
    protocol on a UNIX socket.
    """

    def __init__(self, meter: LinkyMeter | None = None, *, fast: bool = False, interval: float = 0.05,
                 control: str | Path | None = None) -> None:
        self.meter = meter or LinkyMeter()
        self.fast = fast
        self.interval = interval
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no CR/LF translation: bytes through as they are
        tty.setraw(self._master)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self.control_path = None if control is None else Path(control)
        self._server: socketserver.ThreadingUnixStreamServer | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.frames_sent = 0
        self.flushes = 0  # times the pty was full (no reader) and its backlog dropped

    def __enter__(self) -> LinkySimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> LinkySimulator:
        if self.control_path is not None:
            self._server = _control_server(self.meter, self.control_path)
            self._threads.append(threading.Thread(target=self._server.serve_forever, name="linky-sim.control",
                                                  daemon=True))
        self._threads.append(threading.Thread(target=self._run, name="linky-sim", daemon=True))
        for t in self._threads:
            t.start()
        return self

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        full_since: float | None = None
        while view and not self._stop.is_set():
            try:
                n = os.write(self._master, view)
            except BlockingIOError:
                # The pty is full. A reader that is merely slow (a loaded machine) catches up: wait for it.
                # Nobody has read for a second: drop what waits, like a line no one listens to (flushing
                # under a reader's feet would make its select say "readable" and its read find nothing).
                now = time.monotonic()
                if full_since is None:
                    full_since = now
                elif now - full_since >= _FULL_FLUSH_S:
                    termios.tcflush(self._slave, termios.TCIFLUSH)
                    self.flushes += 1
                    full_since = None
                select.select([], [self._master], [], 0.05)
                continue
            except OSError:
                return
            full_since = None
            view = view[n:]

    def _run(self) -> None:
        rate = self.meter.config.mode.value / 10  # 7E1: start + 7 data + parity + stop bits per character
        said: set[str] = set()
        while not self._stop.is_set():
            try:
                frame = self.meter.frame()
            except (ValueError, ProtocolError) as exc:  # a clock the meter cannot show: say it once, keep going
                if str(exc) not in said:
                    said.add(str(exc))
                    print(f"linky_sim: no frame: {exc}", file=sys.stderr, flush=True)
                self._stop.wait(1.0)
                continue
            if self.fast:
                self._write(frame)
                self.frames_sent += 1
                self._stop.wait(self.interval)
                continue
            begun = time.monotonic()
            for i in range(0, len(frame), 64):
                self._write(frame[i : i + 64])
                due = begun + min(i + 64, len(frame)) / rate
                self._stop.wait(max(0.0, due - time.monotonic()))
            self.frames_sent += 1
            self._stop.wait(FRAME_GAP_S)

    def close(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self.control_path is not None:
                self.control_path.unlink(missing_ok=True)
        for t in self._threads:
            t.join(timeout=5)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


def _control_server(meter: LinkyMeter, path: Path) -> socketserver.ThreadingUnixStreamServer:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            while raw := self.rfile.readline(_MAX_LINE + 1):
                if len(raw) > _MAX_LINE:
                    self.wfile.write(b'{"ok": false, "error": "line too long"}\n')
                    return
                line = raw.decode("utf-8", "replace").strip()
                if not line:
                    continue
                reply = meter.command(line)
                self.wfile.write(json.dumps(reply).encode() + b"\n")
                self.wfile.flush()

    path.unlink(missing_ok=True)
    server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
    server.daemon_threads = True
    return server


def send(path: str | Path, line: str, timeout: float = 5.0) -> dict[str, object]:
    """Send one command to a running simulator's control socket; its JSON reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(line.strip().encode() + b"\n")
        with sock.makefile("rb") as f:
            answer = f.readline()
    if not answer:
        raise ConnectionError(f"no answer from {path}")
    return json.loads(answer)


class LinkySimProcess:
    """``python -m hil.linky_sim`` in a process of its own (daemon end-to-end tests, the demo).

    ``args`` are the command-line options; the control socket is always on,
    at ``control``. ``path`` is the pty to open once the constructor returns;
    :meth:`send` drives the meter (``power 15000`` then ``rearm``).
    """

    def __init__(self, *args: str, control: str | Path, cwd: Path | None = None) -> None:
        root = Path(__file__).resolve().parent.parent
        self.control = Path(control)
        self.proc = subprocess.Popen([sys.executable, "-m", "hil.linky_sim", "--control", str(self.control), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd or root)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("pty="):
            err = self.proc.stderr.read() if self.proc.stderr and kill_process(self.proc) is not None else ""
            raise RuntimeError(f"linky simulator did not start: {line!r} {err.strip()}")
        self.path = line.split()[0].removeprefix("pty=")

    def send(self, line: str) -> dict[str, object]:
        return send(self.control, line)

    def close(self) -> int:
        return stop_process(self.proc)

    def __enter__(self) -> LinkySimProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- command line -------------------------------------------------------------------------


def _sped_up(speed: float) -> Callable[[], float]:
    wall0, mono0 = time.time(), time.monotonic()
    return lambda: wall0 + (time.monotonic() - mono0) * speed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hil.linky_sim", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 3)[3].split("\n\nIn-process")[0])
    ap.add_argument("--mode", choices=["historic", "standard"], default="historic")
    ap.add_argument("--phases", type=int, choices=[1, 3], default=1)
    ap.add_argument("--contract", choices=[c.value for c in Contract], default="base")
    ap.add_argument("--pref", type=int, default=6, metavar="KVA", help="subscribed (reference) power, kVA")
    ap.add_argument("--pcoup", type=int, default=None, metavar="KVA", help="breaking threshold, kVA (default PREF)")
    ap.add_argument("--power", type=float, default=None, metavar="VA", help="a flat load instead of the daily curve")
    ap.add_argument("--old-checksum", action="store_true",
                    help="historic: the older meters' checksum (trailing separator included)")
    ap.add_argument("--tempo", default=None, metavar="TODAY[,TOMORROW]", help="Tempo colours, e.g. red,white")
    ap.add_argument("--control", default=None, metavar="PATH", help="serve the command protocol on this UNIX socket")
    ap.add_argument("--fast", action="store_true", help="a whole frame every --interval seconds, not at line rate")
    ap.add_argument("--interval", type=float, default=0.05, help="seconds between frames with --fast")
    ap.add_argument("--speed", type=float, default=1.0, help="the meter's clock runs this many times faster")
    ap.add_argument("--send", nargs=2, metavar=("PATH", "COMMAND"),
                    help="send COMMAND to a running simulator's control socket and print its reply")
    args = ap.parse_args(argv)
    if args.send:
        try:
            print(json.dumps(send(args.send[0], args.send[1])), flush=True)
        except (OSError, ValueError) as exc:
            print(f"linky_sim: {args.send[0]}: {exc}", file=sys.stderr)
            return 1
        return 0
    mode = Mode.HISTORIC if args.mode == "historic" else Mode.STANDARD
    variant = Variant.MODE2 if args.old_checksum else None
    try:
        config = MeterConfig(mode=mode, phases=args.phases, contract=Contract(args.contract), pref_kva=args.pref,
                             pcoup_kva=args.pcoup, variant=variant)
        tariff = Tariff()
        if args.tempo:
            colours = [_colour(c) for c in args.tempo.split(",")]
            tariff = replace(tariff, tempo_today=colours[0], tempo_tomorrow=colours[1] if len(colours) > 1
                             else Colour.NONE)
    except ValueError as exc:
        print(f"linky_sim: {exc}", file=sys.stderr)
        return 2
    clock = time.time if args.speed == 1.0 else _sped_up(args.speed)
    curve = daily_curve() if args.power is None else constant(args.power)
    meter = LinkyMeter(config, tariff=tariff, curve=curve, clock=clock)
    sim = LinkySimulator(meter, fast=args.fast, interval=args.interval, control=args.control).start()
    print(f"pty={sim.path}" + (f" control={sim.control_path}" if sim.control_path else ""), flush=True)
    print(f"  {args.mode} {mode.value} Bd 7E1, {args.phases} phase(s), {args.contract}, PREF {args.pref} kVA",
          flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop cleanly: the socket file goes too
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sim.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
