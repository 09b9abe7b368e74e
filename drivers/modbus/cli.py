"""Technician commands for Modbus: profiles, scanning a bus, one-shot reads, raw register access.

* ``zaas-edge profiles list`` / ``profiles show NAME``: the built-in library
  (Modbus register maps and LoRaWAN payload profiles);
* ``zaas-edge scan modbus``: which unit ids answer on a bus, which profile
  fits each (SunSpec marker, else a register signature), printed as each is
  found, and a configuration snippet to paste (Ctrl-C keeps what was found);
* ``zaas-edge modbus read|write``: raw registers and coils, for commissioning
  (``read DEVICE``, in :mod:`zaas_edge.cli.read_cmd`, reads a configured device);
* ``zaas-edge modbus plan DEVICE``: the requests a configured device's polls
  send and their bus time against the least any plan could take (``explain``).

Every command fails with one line (port missing or busy, no answer, an
exception response); pymodbus is imported only when a command runs.
"""

from __future__ import annotations

__all__ = ["profiles_group", "scan_modbus", "modbus_group", "modbus_plan"]

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import click

from zaas_edge.cli import cli
from zaas_edge.cli.output import emit, format_number, found_line, json_option, table
from zaas_edge.cli.scan_cmd import scan as scan_group
from zaas_edge.errors import ConfigError, PermanentError

from .decode import (
    DataType,
    RegisterSpec,
    WordOrder,
    decode_string,
    decode_value,
    encode_value,
    exact_raw,
    register_count,
)
from .identify import identify
from .options import parse_units
from .plan import Table
from .profile import get_profile, load_profiles

# --- profiles ---------------------------------------------------------------------------


@cli.group("profiles")
def profiles_group() -> None:
    """Device profiles of the built-in library: Modbus register maps and LoRaWAN payload profiles."""


def _lora_profiles() -> list[Any]:
    from zaas_edge.drivers.lora.payloads import load_profile as load_lora
    from zaas_edge.drivers.lora.payloads import profile_names

    return [load_lora(n) for n in profile_names()]


@profiles_group.command("list")
@json_option
def profiles_list(as_json: bool) -> None:
    """List the built-in profiles: Modbus register maps, then LoRaWAN payload profiles."""
    lib = load_profiles()
    data = [{"name": p.name, "bus": "modbus", "manufacturer": p.manufacturer, "model": p.model, "kind": p.kind,
             "phases": p.phases, "points": len(p.points), "detection": p.detection is not None}
            for p in lib.values()]
    data += [{"name": p.name, "bus": "lora", "manufacturer": p.vendor, "model": p.model, "kind": p.kind,
              "phases": None, "points": len(p.points), "detection": False, "codec": p.codec}
             for p in _lora_profiles()]

    def kind(x: dict[str, Any]) -> str:
        return f"{x['kind']} {x['phases']}-phase" if x["phases"] else x["kind"]

    emit(data, as_json, lambda d: click.echo(table(
        ["name", "bus", "manufacturer", "model", "kind", "points"],
        [(x["name"], x["bus"], x["manufacturer"], x["model"], kind(x), x["points"]) for x in d])))


def _address_text(address: int) -> str:
    return f"{address} (0x{address:04X})"


@profiles_group.command("show")
@click.argument("name")
@json_option
def profiles_show(name: str, as_json: bool) -> None:
    """Show one profile: a Modbus profile's document, defaults and registers, or a LoRaWAN profile's points."""
    from zaas_edge.drivers.lora.payloads import profile_names

    if name not in load_profiles() and name in profile_names():
        _show_lora(name, as_json)
        return
    try:
        prof = get_profile(name)
    except ConfigError:
        known = sorted(load_profiles()) + profile_names()
        raise PermanentError(f"no Modbus or LoRaWAN profile named {name!r} (known: {', '.join(known)})") from None
    if as_json:
        emit({"bus": "modbus", **prof.model_dump(mode="json")}, True, lambda d: None)
        return
    click.echo(f"{prof.name}: {prof.manufacturer} {prof.model} ({prof.kind}, {prof.phases}-phase)")
    click.echo(f"document: {prof.doc.title}, {prof.doc.version}" + (f" <{prof.doc.url}>" if prof.doc.url else ""))
    d = prof.defaults
    gap = "none (the bus cost decides)" if d.max_gap is None else d.max_gap
    click.echo(f"defaults: table {d.table}, word order {d.word_order.value}, max gap {gap}, "
               f"sentinel {d.sentinel.value}, intervals {d.fast_interval_s:g} s / {d.slow_interval_s:g} s")
    if prof.detection:
        click.echo(f"detection: marker {prof.detection.marker!r} at {', '.join(map(str, prof.detection.candidates))}")
    if prof.unsupported:
        click.echo("unsupported: " + ", ".join(sorted(prof.unsupported)))
    click.echo()
    rows = []
    for p in prof.points:
        scale = f"{p.scale:g}" + (f" x10^sf@{p.scale_factor}" if p.scale_factor is not None else "")
        rows.append((p.quantity, prof.table_of(p).name.lower(), _address_text(p.address), p.type.value,
                     (p.word_order or d.word_order).value, scale, p.unit, f"{prof.interval_s(p):g}",
                     "w" if p.writable else ""))
    click.echo(table(["quantity", "table", "address", "type", "order", "scale", "unit", "every s", "rw"], rows))


def _show_lora(name: str, as_json: bool) -> None:
    from zaas_edge.drivers.lora.payloads import load_profile as load_lora

    p = load_lora(name)
    data = {"name": p.name, "bus": "lora", "manufacturer": p.vendor, "model": p.model, "kind": p.kind,
            "codec": p.codec, "codec_options": dict(p.codec_options), "source": list(p.source),
            "points": [{"quantity": q, "unit": u, "resolution": r, "description": desc}
                       for q, u, r, desc in p.points]}

    def human(d: dict[str, Any]) -> None:
        click.echo(f"{d['name']}: {d['manufacturer']} {d['model']} ({d['kind']}), LoRaWAN payload codec {d['codec']}")
        for src in d["source"]:
            click.echo(f"source: {src}")
        if d["codec_options"]:
            click.echo("codec options: " + ", ".join(f"{k} = {v}" for k, v in sorted(d["codec_options"].items())))
        click.echo()
        click.echo(table(["quantity", "unit", "resolution", "description"],
                         [(x["quantity"], x["unit"], x["resolution"] or None, x["description"]) for x in d["points"]]))

    emit(data, as_json, human)


# --- connection options ---------------------------------------------------------------------


def _connection_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option("--port", "serial_port", help="Serial device of the RS-485 adapter (RTU)."),
        click.option("--host", help="Modbus TCP host, or serial device server with --rtu-over-tcp."),
        click.option("--tcp-port", type=click.IntRange(1, 65535), default=None, help="TCP port [502]."),
        click.option("--rtu-over-tcp", is_flag=True, help="RTU frames over TCP (Moxa, USR serial servers)."),
        click.option("--baud", type=click.Choice(["1200", "2400", "4800", "9600", "19200", "38400", "57600",
                                                  "115200"]), default="9600", show_default=True,
                     help="Serial speed (RTU)."),
        click.option("--parity", type=click.Choice(["N", "E", "O"]), default="N", show_default=True),
        click.option("--stopbits", type=click.Choice(["1", "2"]), default="1", show_default=True),
        click.option("--timeout", type=click.FloatRange(0.01, 30), default=0.5, show_default=True,
                     help="Answer timeout per request, seconds."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _bus_section(serial_port: str | None, host: str | None, tcp_port: int | None, rtu_over_tcp: bool,
                 baud: str, parity: str, stopbits: str, timeout: float) -> dict[str, Any]:
    if bool(serial_port) == bool(host):
        raise click.UsageError("give --port (a serial device) or --host (a TCP endpoint), one of them")
    d: dict[str, Any] = {"id": "cli", "type": "modbus", "timeout_s": timeout,
                         "baudrate": int(baud), "parity": parity, "stopbits": int(stopbits),
                         "offline_after": 1, "max_concurrency": 1}
    if serial_port:
        d.update(transport="rtu", port=serial_port)
    else:
        d.update(transport="rtu-over-tcp" if rtu_over_tcp else "tcp", host=host,
                 port=tcp_port or (None if not rtu_over_tcp else 4001))
    return d


def _make_bus(section: dict[str, Any], devices: list[dict[str, Any]] | None = None):  # noqa: ANN202
    from .bus import make_bus
    from .options import ModbusOptions

    section = {**section, "devices": devices or [{"id": "probe", "unit": 1, "profile": "eastron-sdm630"}]}
    try:
        opts = ModbusOptions.model_validate(section)
    except Exception as exc:
        raise click.UsageError(str(exc).splitlines()[-1] if str(exc) else "bad connection options") from None
    return opts, make_bus(opts)


def _run(coro):  # noqa: ANN001, ANN202
    return asyncio.run(coro)


# --- scan -----------------------------------------------------------------------------------


async def _probe_unit(bus, unit: int, timeout: float, gap: float) -> str | None:  # noqa: ANN001
    """'data' or 'exception NN' when the unit answers a cheap read, None when silent."""
    from .transport import ExceptionResponse, NoResponse

    for tbl in (Table.HOLDING, Table.INPUT):
        try:
            await bus.read(unit, tbl, 0, 1, timeout=timeout, gap_s=gap)
            return "data"
        except ExceptionResponse as exc:
            if exc.code == 1 and tbl is Table.HOLDING:
                continue  # function 3 not supported: try input registers
            return f"exception {exc.code:02d}"
        except NoResponse:
            return None
    return "exception 01"


def _reader(bus, unit: int, timeout: float, gap: float):  # noqa: ANN001, ANN202
    """The scan's ``ReadRegisters`` for one unit: the bus itself, nothing counted."""
    async def read(table: Table, start: int, count: int) -> list[int]:
        return await bus.read(unit, table, start, count, timeout=timeout, gap_s=gap)
    return read


@scan_group.command("modbus")
@_connection_options
@click.option("--units", default="1-247", show_default=True, help="Unit ids to probe, e.g. 1-10,20.")
@json_option
def scan_modbus(serial_port: str | None, host: str | None, tcp_port: int | None, rtu_over_tcp: bool, baud: str,
                parity: str, stopbits: str, timeout: float, units: str, as_json: bool) -> None:
    """Probe unit ids on a Modbus bus, identify the devices and suggest a configuration."""
    _scan(serial_port, host, tcp_port, rtu_over_tcp, baud, parity, stopbits, timeout, units, as_json)


def _parse_units(text: str) -> list[int]:
    try:
        return parse_units(text)
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected unit ids within 1..247 like 1-10,20",
                                 param_hint="--units") from None


def _scan(serial_port: str | None, host: str | None, tcp_port: int | None, rtu_over_tcp: bool, baud: str,
          parity: str, stopbits: str, timeout: float, units: str, as_json: bool) -> None:
    unit_ids = _parse_units(units)
    section = _bus_section(serial_port, host, tcp_port, rtu_over_tcp, baud, parity, stopbits, timeout)
    opts, bus = _make_bus(section)
    found: list[dict[str, Any]] = []  # filled as units answer: what Ctrl-C leaves is still shown
    probed = [0]

    async def go(bar) -> None:  # noqa: ANN001
        try:
            for unit in unit_ids:
                answer = await _probe_unit(bus, unit, timeout, opts.frame_gap_s)
                if answer is not None:
                    ident = await identify(_reader(bus, unit, timeout, opts.frame_gap_s), load_profiles().values())
                    f = {"unit": unit, "answer": answer, "profiles": list(ident.profiles), "how": ident.how}
                    found.append(f)
                    if not as_json:
                        found_line(f"unit {unit}: {' or '.join(f['profiles']) or '?'} ({answer}; {f['how']})")
                probed[0] += 1
                bar.update(1)
        finally:
            bus.close()

    # 247 silent units at 9600 baud take minutes: show where the scan is. On stderr, so that
    # stdout stays clean JSON with --json (click draws only the label when stderr is not a terminal).
    interrupted = False
    with click.progressbar(length=len(unit_ids), label=f"scanning {opts.describe()}", file=sys.stderr,
                           show_eta=False) as bar:
        try:
            _run(go(bar))
        except KeyboardInterrupt:
            interrupted = True
    snippet = _snippet(section, found)
    data = {"bus": opts.describe(), "probed": probed[0], "found": found, "config": snippet,
            "interrupted": interrupted}

    def human(d: dict[str, Any]) -> None:
        stop = " (interrupted)" if d["interrupted"] else ""
        click.echo(f"{d['bus']}: probed {d['probed']} unit id(s){stop}, {len(d['found'])} answered")
        if not d["found"]:
            return
        click.echo()
        click.echo("# configuration snippet:")
        click.echo(d["config"])

    emit(data, as_json, human)
    if interrupted:
        sys.exit(130)


def _snippet(section: dict[str, Any], found: list[dict[str, Any]]) -> str:
    lines = ["[[drivers]]", 'id = "modbus-1"', 'type = "modbus"', f'transport = "{section["transport"]}"']
    if section["transport"] == "rtu":
        lines += [f'port = "{section["port"]}"', f'baudrate = {section["baudrate"]}']
        if section["parity"] != "N":
            lines.append(f'parity = "{section["parity"]}"')
        if section["stopbits"] != 1:
            lines.append(f'stopbits = {section["stopbits"]}')
    else:
        lines.append(f'host = "{section["host"]}"')
        if section.get("port"):
            lines.append(f'port = {section["port"]}')
    lines.append("devices = [")
    for f in found:
        prof = f["profiles"][0] if f["profiles"] else "CHOOSE-A-PROFILE"
        note = f"  # or {', '.join(f['profiles'][1:])}" if len(f["profiles"]) > 1 else ""
        lines.append(f'  {{ id = "meter-{f["unit"]}", unit = {f["unit"]}, profile = "{prof}" }},{note}')
    lines.append("]")
    return "\n".join(lines)


# --- values ---------------------------------------------------------------------------------


def _fmt(v: Any) -> str:
    return format_number(v) if v is None or isinstance(v, (int, float)) else str(v)


# --- raw access --------------------------------------------------------------------------------


@cli.group("modbus")
def modbus_group() -> None:
    """Raw Modbus register and coil access, and a configured device's read plan, for commissioning."""


_TYPES = [t.value for t in DataType] + ["raw"]
_READ_FC = {"1": Table.COILS, "2": Table.DISCRETE_INPUTS, "3": Table.HOLDING, "4": Table.INPUT}


def _raw_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for o in reversed([
        click.option("--unit", type=click.IntRange(0, 255), default=1, show_default=True, help="Unit id."),
        click.option("--address", type=click.IntRange(0, 65535), required=True,
                     help="0-based protocol address (register 40001 is address 0)."),
        click.option("--type", "dtype", type=click.Choice(_TYPES), default="raw", show_default=True,
                     help="How to decode (or encode) the registers."),
        click.option("--word-order", type=click.Choice([w.value for w in WordOrder]), default="ABCD",
                     show_default=True, help="Register order of multi-register values."),
    ]):
        f = o(f)
    return f


@modbus_group.command("read")
@_connection_options
@_raw_options
@click.option("--function", type=click.Choice(list(_READ_FC)), default="3", show_default=True,
              help="1 coils, 2 discrete inputs, 3 holding registers, 4 input registers.")
@click.option("--count", type=click.IntRange(1, 125), default=1, show_default=True,
              help="Values of --type to read (registers for raw, characters/2 for string).")
@json_option
def modbus_read(serial_port: str | None, host: str | None, tcp_port: int | None, rtu_over_tcp: bool, baud: str,
                parity: str, stopbits: str, timeout: float, unit: int, address: int, dtype: str, word_order: str,
                function: str, count: int, as_json: bool) -> None:
    """Read registers or coils and show them raw and decoded."""
    section = _bus_section(serial_port, host, tcp_port, rtu_over_tcp, baud, parity, stopbits, timeout)
    table_ = _READ_FC[function]
    width = 1 if dtype in ("raw", "string") or table_.is_bits else register_count(DataType(dtype))
    n_regs = count * width
    if n_regs > table_.limit:
        raise click.BadParameter(f"{count} x {dtype} is {n_regs} registers, more than one request carries",
                                 param_hint="--count")
    opts, bus = _make_bus(section)

    async def go() -> list[int]:
        try:
            return await bus.read(unit, table_, address, n_regs, timeout=timeout, gap_s=opts.frame_gap_s)
        finally:
            bus.close()

    regs = _run(go())
    order = WordOrder(word_order)
    rows: list[dict[str, Any]] = []
    if dtype == "string" and not table_.is_bits:
        rows.append({"address": address, "registers": regs, "value": decode_string(regs, order)})
    else:
        for i in range(count):
            chunk = regs[i * width:(i + 1) * width]
            value: Any = chunk[0] if dtype == "raw" or table_.is_bits else \
                decode_value(chunk, RegisterSpec(DataType(dtype), order)).value
            rows.append({"address": address + i * width, "registers": chunk, "value": value})
    data = {"unit": unit, "function": int(function), "type": dtype, "values": rows}
    emit(data, as_json, lambda d: click.echo(table(
        ["address", "registers", "value"],
        [(r["address"], " ".join(f"{x:04X}" if not table_.is_bits else str(x) for x in r["registers"]),
          _fmt(r["value"])) for r in d["values"]])))


@modbus_group.command("write")
@_connection_options
@_raw_options
@click.option("--function", type=click.Choice(["5", "6", "16"]), default=None,
              help="5 coil, 6 one register, 16 several registers [6 or 16 by --type].")
@click.option("--value", required=True, help="Value to write (a number; 0/1 for a coil).")
@json_option
def modbus_write(serial_port: str | None, host: str | None, tcp_port: int | None, rtu_over_tcp: bool, baud: str,
                 parity: str, stopbits: str, timeout: float, unit: int, address: int, dtype: str, word_order: str,
                 function: str | None, value: str, as_json: bool) -> None:
    """Write a coil or holding registers, then read back what the device holds."""
    from zaas_edge.errors import ProtocolError

    section = _bus_section(serial_port, host, tcp_port, rtu_over_tcp, baud, parity, stopbits, timeout)
    try:
        number = float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number", param_hint="--value") from None
    coil = function == "5"
    if coil:
        regs: tuple[int, ...] = (1 if number else 0,)
    elif dtype == "string":
        raise click.BadParameter("writing text is not supported; write registers with --type raw",
                                 param_hint="--type")
    else:
        spec = RegisterSpec(DataType("uint16" if dtype == "raw" else dtype), WordOrder(word_order))
        try:
            exact_raw(number, spec)  # 21.5 into an int16 is refused, not rounded to 22
            regs = encode_value(number, spec)
        except ProtocolError as exc:
            raise click.BadParameter(str(exc), param_hint="--value") from None
        if function == "6" and len(regs) != 1:
            raise click.BadParameter(f"{dtype} needs {len(regs)} registers: use --function 16",
                                     param_hint="--function")
    opts, bus = _make_bus(section)

    async def go() -> list[int]:
        gap = opts.frame_gap_s
        try:
            if coil:
                await bus.write_coil(unit, address, bool(regs[0]), timeout=timeout, gap_s=gap)
                return await bus.read(unit, Table.COILS, address, 1, timeout=timeout, gap_s=gap)
            if function == "16" and len(regs) == 1:
                await bus.request(unit, lambda link: link._execute(  # noqa: SLF001 (function 16 on purpose)
                    lambda c: c.write_registers(address, list(regs), device_id=unit), unit, 16, timeout),
                    gap_s=gap)
            else:
                await bus.write_registers(unit, address, regs, timeout=timeout, gap_s=gap)
            return await bus.read(unit, Table.HOLDING, address, len(regs), timeout=timeout, gap_s=gap)
        finally:
            bus.close()

    back = _run(go())
    if coil or dtype == "raw":
        shown: Any = back[0]
    else:
        shown = decode_value(back, RegisterSpec(DataType(dtype), WordOrder(word_order))).value
    data = {"unit": unit, "address": address, "written": [int(r) for r in regs], "read_back": back,
            "value": shown}
    emit(data, as_json, lambda d: click.echo(
        f"unit {d['unit']} address {d['address']}: wrote {' '.join(f'{x:04X}' for x in d['written'])}, "
        f"reads back {' '.join(f'{x:04X}' for x in d['read_back'])} ({_fmt(d['value'])})"))


# --- read plans --------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


@modbus_group.command("plan")
@click.argument("device")
@json_option
@click.pass_context
def modbus_plan(ctx: click.Context, device: str, as_json: bool) -> None:
    """Show the requests a configured device's polls send, and their time on the bus.

    Planned from the configuration alone, nothing is sent: each request's
    table, start, count, the unused registers it bridges and its bus time at
    the line's speed (RTU framing, turnaround and inter-frame gaps; a round
    trip on TCP); then the total when every point is due and at the fastest
    poll, against the least any plan could take (each point's own registers,
    only the requests the 125-register limit forces). Addresses are the
    profile's: a SunSpec device relocates them once it has found its base.
    """
    from zaas_edge.config import load_config

    from .bus import make_bus
    from .device import Device
    from .explain import explain_plan
    from .options import ModbusOptions

    loaded = load_config(ctx.obj.get("config_path"))
    buses = [d for d in loaded.drivers if isinstance(d, ModbusOptions)]
    found = [(b, d) for b in buses for d in b.devices if d.id == device]
    if not found:
        known = ", ".join(sorted(d.id for b in buses for d in b.devices)) or "none configured"
        raise PermanentError(f"no Modbus device {device!r} in the configuration (Modbus devices: {known})")
    bus_opts, dev_opts = found[0]
    bus = make_bus(bus_opts)  # never opened: the device is built for its plan only
    try:
        dev = Device(dev_opts, bus_opts, bus, None)
    finally:
        bus.close()
    report = explain_plan(dev.plan, dev.intervals, dev.profile.with_dependencies)
    data = {"driver": bus_opts.id, "device": dev.id, "unit": dev.unit, "profile": dev.profile.name,
            "bus": bus_opts.describe(), **report.to_json()}

    def human(_: Any) -> None:
        bound = "none" if report.max_gap is None else f"{report.max_gap} registers (the profile's)"
        click.echo(f"{dev.id}: {dev.profile.name}, unit {dev.unit} on {bus_opts.describe()}")
        click.echo(f"cost model {report.cost_label}: {_ms(report.fixed_s)} ms a request, "
                   f"{report.per_register_s * 1000:.3f} ms a register; widest hole allowed: {bound}")
        click.echo(table(["table", "start", "count", "bridged", "points", "bus ms"],
                         [(r.table, r.start, r.count, r.bridged, len(r.points), _ms(r.bus_time_s))
                          for r in report.requests]))
        polls = [("every point", report.every_point)]
        if report.fastest is not None:
            polls.append((f"every {report.fastest.interval_s:g} s", report.fastest))
        click.echo()
        click.echo(table(["poll", "points", "requests", "bus ms", "lower bound ms", "over bound"],
                         [(name, p.points, p.requests, _ms(p.bus_time_s), _ms(p.lower_bound_s),
                           f"{p.over_bound * 100:.0f} %") for name, p in polls]))
        if report.unreadable:
            click.echo("unreadable (skipped): " + ", ".join(report.unreadable))

    emit(data, as_json, human)
