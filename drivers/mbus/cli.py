"""``zaas-edge scan mbus`` and ``zaas-edge mbus read|decode``: the technician's M-Bus tools.

A thin layer over :mod:`.scan`, :mod:`.link` and the codec. ``decode`` works
offline on a telegram captured elsewhere (a sniffer, a handheld reader); a
malformed telegram exits 2 with a one-line reason.
"""

from __future__ import annotations

__all__ = ["mbus", "scan_mbus", "telegram_report", "record_dict"]

import asyncio
import sys
from pathlib import Path
from typing import Any

import click

from zaas_edge.cli import cli
from zaas_edge.cli.output import emit, found_line, json_option, table
from zaas_edge.cli.scan_cmd import scan

BAUDS = ("300", "600", "1200", "2400", "4800", "9600", "19200", "38400")


class MalformedTelegram(click.ClickException):
    """Bytes that are not a valid M-Bus telegram: exit status 2."""

    exit_code = 2


def _link_options(f: Any) -> Any:
    f = click.option("--extra-timeout", type=click.FloatRange(0, 10), default=0.0, show_default=True,
                     help="Seconds added to the answer window (slow meters).")(f)
    f = click.option("--retries", type=click.IntRange(0, 10), default=1, show_default=True,
                     help="Repeats of a request that got no or a bad answer.")(f)
    f = click.option("--baud", type=click.Choice(BAUDS), default="2400", show_default=True,
                     help="Line speed (8E1).")(f)
    return click.option("--port", required=True, help="Serial device of the M-Bus master, e.g. /dev/ttyUSB0.")(f)


# -- scan ------------------------------------------------------------------------------------


@scan.command("mbus")
@_link_options
@click.option("--primary", "mode", flag_value="primary", default=True, help="Probe primary addresses (default).")
@click.option("--secondary", "mode", flag_value="secondary", help="Wildcard search over secondary addresses.")
@click.option("--first", type=click.IntRange(0, 250), default=0, show_default=True,
              help="First primary address probed.")
@click.option("--last", type=click.IntRange(0, 250), default=250, show_default=True,
              help="Last primary address probed.")
@json_option
def scan_mbus(port: str, baud: str, retries: int, extra_timeout: float, mode: str, first: int, last: int,
              as_json: bool) -> None:
    """List the meters on an M-Bus segment with a suggested configuration.

    Primary search probes addresses FIRST to LAST with SND_NKE; secondary
    search walks the identification digits with wildcards, resolving
    collisions digit by digit, and finds meters whatever their primary address.
    """
    from zaas_edge.drivers.mbus.identity import manufacturer_name
    from zaas_edge.drivers.mbus.link import MBusLink
    from zaas_edge.drivers.mbus.scan import ScanResult, scan_primary, scan_secondary

    if first > last:
        raise click.BadParameter(f"--first {first} is above --last {last}")
    steps = 1000
    result = ScanResult()  # filled as meters answer: what Ctrl-C leaves is still shown
    shown = [0]

    def show_found() -> None:
        for m in result.meters[shown[0]:]:
            if not as_json:
                where = "secondary search" if m.address is None else f"address {m.address}"
                maker = manufacturer_name(m.manufacturer)
                maker = f"{maker}, " if maker != m.manufacturer else ""
                found_line(f"{m.identification} {m.manufacturer} {m.medium_name} version {m.version} "
                           f"({maker}{where}, secondary {m.secondary})")
        shown[0] = len(result.meters)

    async def run(bar: Any) -> None:
        done = [0]

        def progress(fraction: float) -> None:
            show_found()
            target = int(fraction * steps)
            if target > done[0]:
                bar.update(target - done[0])
                done[0] = target

        link = await MBusLink.open_serial(port, int(baud), retries=retries, extra_timeout_s=extra_timeout)
        try:
            if mode == "secondary":
                await scan_secondary(link, progress, result=result)
            else:
                await scan_primary(link, range(first, last + 1), progress, result=result)
        finally:
            await link.close()

    label = f"M-Bus {mode} search on {port} at {baud} baud"
    interrupted = False
    with click.progressbar(length=steps, label=label, file=sys.stderr, show_eta=False) as bar:
        try:
            asyncio.run(run(bar))
        except KeyboardInterrupt:
            interrupted = True
    show_found()
    for problem in result.problems:
        click.echo(f"warning: {problem}", err=True)
    snippet = _config_snippet(port, int(baud), result.meters)
    data = {"port": port, "baudrate": int(baud), "mode": mode, "probes": result.probes,
            "meters": [m.as_dict() for m in result.meters], "problems": result.problems, "config": snippet,
            "interrupted": interrupted}

    def human(d: dict[str, Any]) -> None:
        stop = " (interrupted)" if interrupted else ""
        if not result.meters:
            click.echo(f"no meter answered ({result.probes} probes{stop})")
            return
        click.echo(f"\n{len(result.meters)} meter(s), {result.probes} probes{stop}. Suggested configuration:\n")
        click.echo(snippet)

    emit(data, as_json, human)
    if interrupted:
        sys.exit(130)


def _config_snippet(port: str, baudrate: int, meters: list[Any]) -> str:
    lines = ["[[drivers]]", 'id = "mbus-1"', 'type = "mbus"', f'port = "{port}"', f"baudrate = {baudrate}",
             "meters = ["]
    lines += [f"  {m.config_snippet()}," for m in meters]
    lines.append("]")
    return "\n".join(lines)


# -- read and decode ---------------------------------------------------------------------------


@cli.group("mbus")
def mbus() -> None:
    """Wired M-Bus tools: read one meter, decode a captured telegram."""


def _target(text: str) -> int | str:
    s = text.strip()
    if s.isdigit() and len(s) <= 3:
        address = int(s)
        if address > 250:
            raise click.BadParameter(f"primary address must be 0 to 250, got {address}", param_hint="--address")
        return address
    if len(s) in (8, 16) and all(ch in "0123456789abcdefABCDEF" for ch in s):
        return s.upper()
    raise click.BadParameter(f"{text!r} is neither a primary address (0 to 250) nor a secondary address "
                             "(8 or 16 hex digits)", param_hint="--address")


@mbus.command("read")
@_link_options
@click.option("--address", "address", required=True,
              help="Primary address (0 to 250) or secondary address (16 hex digits; 8 for the id alone).")
@click.option("--reset/--no-reset", default=True, show_default=True, help="Send SND_NKE before reading.")
@click.option("--raw", is_flag=True, help="Print the telegrams as hex, one frame per line.")
@json_option
def read_cmd(port: str, baud: str, retries: int, extra_timeout: float, address: str, reset: bool, raw: bool,
             as_json: bool) -> None:
    """Read one meter and print every decoded record (all telegrams of a multi-telegram readout)."""
    from zaas_edge.drivers.mbus.link import MBusLink

    target = _target(address)

    async def run() -> Any:
        link = await MBusLink.open_serial(port, int(baud), retries=retries, extra_timeout_s=extra_timeout)
        try:
            return await link.read(target, reset=reset)
        finally:
            await link.close()

    readout = asyncio.run(run())
    if raw:
        for frame in readout.frames:
            click.echo(frame.hex())
        return
    report = telegram_report(readout.telegram)
    report["telegrams"] = len(readout.telegrams)
    report["complete"] = readout.complete
    emit(report, as_json, _print_report)


@mbus.command("decode")
@click.argument("telegram", metavar="HEX|FILE|-")
@json_option
def decode_cmd(telegram: str, as_json: bool) -> None:
    """Decode a telegram captured elsewhere: hex on the command line, a file (hex or binary) or - for stdin.

    With --json: the header, then one object per record with value, unit,
    quantity, function, storage, tariff, subunit and the raw dif/vif bytes.
    A malformed telegram exits 2 with a one-line reason.
    """
    from zaas_edge.drivers.mbus import MBusError, decode_telegram

    raw = _input_bytes(telegram)
    try:
        decoded = decode_telegram(raw)
    except MBusError as exc:
        raise MalformedTelegram(f"malformed M-Bus telegram: {exc}") from None
    emit(telegram_report(decoded), as_json, _print_report)


def _input_bytes(arg: str) -> bytes:
    if arg == "-":
        data: bytes = sys.stdin.buffer.read()
    elif Path(arg).is_file():
        data = Path(arg).read_bytes()
    else:
        data = arg.encode()
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return data  # a binary capture
    cleaned = "".join(text.replace("0x", " ").replace("0X", " ").replace(":", " ").replace(",", " ").split())
    if not cleaned:
        raise MalformedTelegram("malformed M-Bus telegram: no bytes given")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        if Path(arg).is_file():
            return data  # binary that happens to be ASCII
        raise MalformedTelegram(f"malformed M-Bus telegram: not hexadecimal: {cleaned[:40]!r}") from None


# -- shared presentation -----------------------------------------------------------------------


def record_dict(record: Any) -> dict[str, Any]:
    value = record.value
    if isinstance(value, bytes):
        value = value.hex()
    vif = b"" if record.vif is None else bytes((record.vif,)) + record.vife
    return {
        "key": record.key,
        "value": value,
        "unit": record.unit,
        "quantity": record.quantity,
        "function": str(record.function),
        "storage": record.storage,
        "tariff": record.tariff,
        "subunit": record.subunit,
        "dif": (bytes((record.dif,)) + record.dife).hex() if record.vif is not None or record.dif else "",
        "vif": vif.hex(),
        "data": record.data.hex(),
        "error": record.error,
    }


def telegram_report(telegram: Any) -> dict[str, Any]:
    """Header and records of any decoded telegram, as plain data."""
    from zaas_edge.drivers.mbus import (
        AlarmStatus,
        ApplicationError,
        FixedDataTelegram,
        LongHeader,
        SecondarySelection,
        ShortHeader,
    )
    from zaas_edge.drivers.mbus.identity import manufacturer_name

    header: dict[str, Any] = {"ci": f"0x{telegram.ci:02X}"}
    records: list[dict[str, Any]] = []
    if isinstance(telegram, FixedDataTelegram):
        header.update(type="fixed", identification=telegram.identification, access_no=telegram.access_no,
                      status=telegram.status, medium=telegram.medium, medium_name=telegram.medium_name)
        records = [record_dict(r) for r in telegram.records]
    elif isinstance(telegram, ApplicationError):
        header.update(type="application_error", code=telegram.code, message=telegram.message)
    elif isinstance(telegram, AlarmStatus):
        header.update(type="alarm_status", status=telegram.status.hex())
    elif isinstance(telegram, SecondarySelection):
        header.update(type="selection", identification=telegram.identification,
                      manufacturer=telegram.manufacturer, version=telegram.version, medium=telegram.medium)
    else:
        h = telegram.header
        header["type"] = "variable"
        if isinstance(h, LongHeader):
            header.update(identification=h.identification, manufacturer=h.manufacturer,
                          maker=manufacturer_name(h.manufacturer), version=h.version,
                          medium=h.medium, medium_name=h.medium_name, secondary=h.secondary_address)
        if isinstance(h, ShortHeader):
            header.update(access_no=h.access_no, status=h.status, flags=list(h.flags), signature=h.signature)
        header["more_records_follow"] = telegram.more_records_follow
        records = [record_dict(r) for r in telegram.records]
    return {"header": header, "records": records}


def _print_report(report: dict[str, Any]) -> None:
    h = report["header"]
    click.echo("  ".join(f"{k} {v}" for k, v in h.items() if v not in (None, [], "")))
    if report.get("telegrams", 1) > 1:
        click.echo(f"{report['telegrams']} telegrams" + ("" if report.get("complete", True) else
                                                         " (stopped: more records announced)"))
    if not report["records"]:
        return
    click.echo()
    rows = []
    for r in report["records"]:
        value = r["value"] if r["error"] is None else f"{r['value']} ({r['error']})"
        rows.append((r["key"], value, r["unit"], r["function"], r["storage"], r["tariff"], r["subunit"],
                     r["dif"], r["vif"]))
    click.echo(table(["key", "value", "unit", "function", "storage", "tariff", "subunit", "dif", "vif"], rows))
