"""``zaas-edge tic read|decode`` and ``zaas-edge scan tic``: the technician's Linky tools.

A thin layer over the codec (:mod:`.codec`, :mod:`.meaning`, :mod:`.tariff`)
and the port (:mod:`.port`). ``decode`` works offline on a captured byte
stream; with ``--json`` it prints one document::

    {"mode": "historic" | "standard",
     "frames": [{"complete": true, "groups": {"LABEL": {"data": "...", "horodate": "..." | null}},
                 "bad_groups": [{"label": "..." | null, "raw": "...", "reason": "..."}]}],
     "counters": {"bytes_in": ..., "groups_ok": ..., ...}}

Labels are exactly as sent and data byte-exact (padding spaces included).
Input with no valid group exits 2 with a one-line reason.
"""

from __future__ import annotations

__all__ = ["tic", "scan_tic", "frame_report", "decode_stream", "listen_frames"]

import asyncio
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
from zaas_edge.drivers.tic.codec import Counters, Frame, Mode, TicDecoder, detect_mode
from zaas_edge.drivers.tic.labels import MEASURES
from zaas_edge.drivers.tic.meaning import interpret
from zaas_edge.drivers.tic.tariff import tariff_state

from zaas_edge.cli import cli
from zaas_edge.cli.output import emit, json_option, table
from zaas_edge.cli.scan_cmd import scan

MODE_CHOICES = click.Choice(["auto", "historic", "standard"])
_MODES = {"historic": Mode.HISTORIC, "standard": Mode.STANDARD}


class NoValidGroup(click.ClickException):
    """Input that holds no valid TIC group: exit status 2."""

    exit_code = 2


# -- the pure part: bytes to a report ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decoded:
    mode: Mode | None
    frames: list[Frame]
    counters: Counters


def decode_stream(data: bytes, mode: str = "auto") -> Decoded:
    """Every frame of a captured stream (the last one cut short included) in ``mode`` or the detected one.

    ``auto`` takes the mode whose groups pass their checksums (:func:`detect_mode`), and when the
    stream is too short to tell, each group's own separator.
    """
    fixed = _MODES.get(mode)
    if fixed is None:
        fixed = detect_mode(data, min_groups=1)
    decoder = TicDecoder(fixed)
    frames = decoder.feed(data)
    last = decoder.flush()
    if last is not None:
        frames.append(last)
    found = fixed
    if found is None:
        modes = [f.mode for f in frames if f.groups and f.mode is not None]
        found = max(dict.fromkeys(modes), key=modes.count) if modes else None
    return Decoded(found, frames, decoder.counters)


def frame_report(frame: Frame) -> dict[str, Any]:
    """One frame in the ``decode --json`` shape."""
    return {
        "complete": frame.complete,
        "groups": {label: {"data": g.data, "horodate": None if g.horodate is None else g.horodate.raw}
                   for label, g in frame.groups.items()},
        "bad_groups": [{"label": b.label, "raw": b.raw.decode("ascii", "backslashreplace"), "reason": b.reason}
                       for b in frame.bad_groups],
    }


def _meaning(label: str, data: str) -> str:
    m = MEASURES.get(label)
    if m is None:
        return ""
    text = data.strip()
    if not (text.isascii() and text.isdigit()):
        return f"{m.quantity}: unreadable"
    value = int(text) * m.scale
    return f"{m.quantity} = {value:.0f} {m.unit}" if value.is_integer() else f"{m.quantity} = {value:g} {m.unit}"


def _print_frame(n: int, report: dict[str, Any]) -> None:
    state = "complete" if report["complete"] else "cut short"
    click.echo(f"frame {n} ({state}): {len(report['groups'])} groups, {len(report['bad_groups'])} rejected")
    rows = [(label, repr(g["data"])[1:-1], g["horodate"] or "", _meaning(label, g["data"]))
            for label, g in report["groups"].items()]
    rows += [(b["label"] or "?", b["raw"], "", f"rejected: {b['reason']}") for b in report["bad_groups"]]
    if rows:
        click.echo(table(["label", "data", "horodate", "meaning"], rows))
    click.echo()


def _emit_in_order(doc: dict[str, Any], as_json: bool, human: Callable[[dict[str, Any]], None] | None) -> None:
    """Like ``emit``, but JSON keeps the frames' labels in the order the meter sent them."""
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    elif human is not None:
        human(doc)


def _read_input(arg: str) -> bytes:
    if arg == "-":
        return sys.stdin.buffer.read()
    path = Path(arg)
    if not path.is_file():
        raise click.BadParameter(f"{arg}: no such file", param_hint="FILE")
    return path.read_bytes()


# -- tic decode --------------------------------------------------------------------------------------


@cli.group("tic")
def tic() -> None:
    """Linky TIC tools: read a meter's customer port, decode a captured stream."""


@tic.command("decode")
@click.argument("source", metavar="FILE|-")
@click.option("--mode", type=MODE_CHOICES, default="auto", show_default=True,
              help="historic (SP separators) or standard (HT); auto: the one whose checksums pass.")
@json_option
def decode_cmd(source: str, mode: str, as_json: bool) -> None:
    """Decode a captured TIC byte stream (a file, or - for stdin), offline.

    Prints every frame with its groups and the groups rejected (bad
    checksum, bad shape, cut short). With --json: one document with the mode,
    the frames (labels exactly as sent, data byte-exact) and the decoder's
    counters. Exits 2 when the input holds no valid group.
    """
    data = _read_input(source)
    decoded = decode_stream(data, mode)
    if decoded.counters.groups_ok == 0 or decoded.mode is None:
        where = "stdin" if source == "-" else source
        raise NoValidGroup(f"no valid TIC group in {where} ({len(data)} bytes, "
                           f"{decoded.counters.groups_bad} rejected groups"
                           f"{'' if mode == 'auto' else ', ' + mode + ' mode'})")
    doc = {"mode": decoded.mode.name.lower(), "frames": [frame_report(f) for f in decoded.frames],
           "counters": asdict(decoded.counters)}

    def human(d: dict[str, Any]) -> None:
        for n, f in enumerate(d["frames"], 1):
            _print_frame(n, f)
        c = d["counters"]
        click.echo(f"{d['mode']} mode: {c['frames_complete']} complete frames, {c['groups_ok']} groups, "
                   f"{c['groups_bad']} rejected, {c['noise_bytes']} bytes outside frames")

    _emit_in_order(doc, as_json, human)


# -- tic read and scan tic: over the port -----------------------------------------------------------


async def listen_frames(port_path: str, mode: str, count: int, timeout: float, detect_s: float,
                  on_frame: Callable[[int, Frame], None] | None = None) -> tuple[Mode, int, list[Frame], Counters]:
    """Open the port (detecting the mode when asked) and collect ``count`` complete frames (0: forever)."""
    from zaas_edge.drivers.tic.port import detect_speed, open_tic_port

    fixed = _MODES.get(mode)
    port = await open_tic_port(port_path, (fixed or Mode.STANDARD).value)
    try:
        heard = b""
        if fixed is None:
            found = await detect_speed(port, detect_s)
            if found is None:
                raise click.ClickException(f"no TIC frames on {port_path} at 9600 or 1200 Bd (7E1): check the "
                                           "wiring (I1, I2) and that the meter's TIC output is on")
            fixed, heard = found
        decoder = TicDecoder(fixed)
        frames: list[Frame] = []
        complete = 0
        deadline = time.monotonic() + timeout
        data = heard
        while True:
            for frame in decoder.feed(data):
                if not frame.groups:
                    continue
                frames.append(frame)
                complete += frame.complete
                deadline = time.monotonic() + timeout
                if on_frame is not None:
                    on_frame(len(frames), frame)
                if count and complete >= count:
                    return fixed, port.baudrate, frames, decoder.counters
            left = deadline - time.monotonic()
            if left <= 0:
                raise click.ClickException(f"no TIC frame on {port_path} for {timeout:g} s "
                                           f"({fixed.name.lower()} mode, {port.baudrate} Bd)")
            data = await port.read(min(left, 1.0))
    finally:
        await port.close()


@tic.command("read")
@click.option("--port", required=True, help="Serial device of the TIC dongle, e.g. /dev/ttyUSB0.")
@click.option("--mode", type=MODE_CHOICES, default="auto", show_default=True,
              help="historic (1200 Bd), standard (9600 Bd) or auto: 9600 then 1200, whichever passes.")
@click.option("--count", type=click.IntRange(0), default=1, show_default=True,
              help="Complete frames to read; 0 reads until Ctrl-C.")
@click.option("--timeout", type=click.FloatRange(0.5, 600), default=10.0, show_default=True,
              help="Seconds without a frame before giving up.")
@json_option
def read_cmd(port: str, mode: str, count: int, timeout: float, as_json: bool) -> None:
    """Read a meter's TIC output live and print each decoded frame as a table.

    Each group with its data, horodate and meaning (point and value), and
    the groups rejected. With --json: the mode, the speed and the frames in
    the shape of ``tic decode --json``, once COUNT frames are read.
    """
    if as_json and count == 0:
        raise click.BadParameter("--json needs a --count of 1 or more", param_hint="--count")

    def show(n: int, frame: Frame) -> None:
        if not as_json:
            _print_frame(n, frame_report(frame))

    found, baud, frames, counters = asyncio.run(listen_frames(port, mode, count, timeout, 4.0, show))
    if as_json:
        _emit_in_order({"port": port, "mode": found.name.lower(), "baudrate": baud,
                        "frames": [frame_report(f) for f in frames], "counters": asdict(counters)}, True, None)


@scan.command("tic")
@click.option("--port", required=True, help="Serial device of the TIC dongle, e.g. /dev/ttyUSB0.")
@click.option("--timeout", type=click.FloatRange(0.5, 600), default=10.0, show_default=True,
              help="Seconds without a frame before giving up.")
@json_option
def scan_tic(port: str, timeout: float, as_json: bool) -> None:
    """Identify the Linky on a TIC port: mode, speed, meter id, contract, phases.

    Listens at 9600 then 1200 Bd, reads two complete frames and prints what
    the meter says, with a ready-to-paste [[drivers]] block.
    """
    found, baud, frames, _ = asyncio.run(listen_frames(port, "auto", 2, timeout, 4.0))
    complete = [f for f in frames if f.complete] or frames
    state = None
    meter_id = None
    labels: set[str] = set()
    for frame in complete:
        interp = interpret(frame, found)
        state = tariff_state(interp, datetime.now(ZoneInfo("Europe/Paris")), state)
        meter_id = interp.meter_id or meter_id
        labels |= interp.labels
    three = bool(labels & {"IINST2", "IINST3", "IMAX2", "SINSTS2", "URMS2", "IRMS2"})
    last = interpret(complete[-1], found)
    power = last.value("reference_power")
    subscribed = last.value("subscribed_current")
    snippet = "\n".join(["[[drivers]]", 'id = "linky"', 'type = "tic"', f'port = "{port}"',
                         f'mode = "{found.name.lower()}"'] + ([f'meter_id = "{meter_id}"'] if meter_id else []))
    data = {
        "port": port, "mode": found.name.lower(), "baudrate": baud, "meter_id": meter_id,
        "contract": None if state is None else state.contract.value,
        "contract_name": None if state is None else state.contract_name,
        "period": None if state is None else state.period.value,
        "phases": 3 if three else 1,
        "reference_power_kva": power, "subscribed_current_a": subscribed,
        "config": snippet,
    }

    def human(d: dict[str, Any]) -> None:
        rows = [("mode", f"{d['mode']} ({d['baudrate']} Bd, 7E1)"), ("meter id", d["meter_id"] or "-"),
                ("contract", f"{d['contract']} ({(d['contract_name'] or '').strip() or '-'})"),
                ("period", d["period"]), ("phases", d["phases"])]
        if d["reference_power_kva"] is not None:
            rows.append(("reference power", f"{d['reference_power_kva']:g} kVA"))
        if d["subscribed_current_a"] is not None:
            rows.append(("subscribed current", f"{d['subscribed_current_a']:g} A"))
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            click.echo(f"{key.ljust(width)}  {value}")
        click.echo("\nSuggested configuration:\n")
        click.echo(d["config"])

    emit(data, as_json, human)
