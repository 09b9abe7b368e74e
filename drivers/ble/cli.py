"""``zaas-edge ble scan``: what the radio hears, for commissioning; ``ble decode``: one advert explained.

It scans with bleak directly (stop the daemon's ble driver first if the
adapter refuses two scanners) and shows every RuuviTag and BTHome device with
its latest values. For tests and demos, ``ZAAS_EDGE_BLE_REPLAY=FILE`` (or the
hidden ``--replay FILE``) plays recorded adverts instead (``replay.py``), as
the daemon's ble driver does.

``ble decode`` runs one advert payload (hex, as a scanner or a log shows it)
through the driver's own decoders (``bthome.py``, ``ruuvi.py``); the bindkey
comes from a 0600 file or the environment rather than the command line,
which ``ps`` shows to every user.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import click

from zaas_edge.aio import wait_for
from zaas_edge.cli import cli
from zaas_edge.cli.output import emit, json_option, table

REPLAY_ENV = "ZAAS_EDGE_BLE_REPLAY"  # the same name as zaas_edge.drivers.ble.replay.REPLAY_ENV


@cli.group("ble")
def ble() -> None:
    """Bluetooth Low Energy sensors (RuuviTag, BTHome)."""


def _summary(readings: tuple[tuple[str, float, str], ...]) -> str:
    return " ".join(f"{q}={v:g}{u if u not in ('', 'count', 'bool') else ''}" for q, v, u in readings[:4])


async def _scan(source: Any, duration: float, live: bool) -> dict[str, dict[str, Any]]:
    from zaas_edge.drivers.ble.bthome import BTHomeDevice
    from zaas_edge.drivers.ble.driver import decode_advert
    from zaas_edge.drivers.ble.ruuvi import RUUVI_COMPANY_ID

    from zaas_edge.errors import ProtocolError

    seen: dict[str, dict[str, Any]] = {}
    parsers: dict[str, BTHomeDevice] = {}
    last_draw = 0.0

    async def consume() -> None:
        nonlocal last_draw
        async for advert in source.stream():
            row = seen.setdefault(advert.mac, {"mac": advert.mac, "kind": "other", "name": advert.name,
                                               "rssi": None, "adverts": 0, "values": {}, "error": None})
            row["adverts"] += 1
            row["rssi"] = advert.rssi
            row["name"] = advert.name or row["name"]
            try:
                decoded = decode_advert(advert, parsers.setdefault(advert.mac, BTHomeDevice(advert.mac)))
            except ProtocolError as exc:
                row["error"] = str(exc)
                row["kind"] = "ruuvi" if RUUVI_COMPANY_ID in advert.manufacturer_data else "bthome"
                continue
            if decoded is not None:
                row["kind"] = decoded.kind
                if decoded.readings:
                    row["values"] = {q: v for q, v, _ in decoded.readings}
                    row["summary"] = _summary(decoded.readings)
            if live and time.monotonic() - last_draw > 1.0:
                last_draw = time.monotonic()
                click.echo(f"\r{len(seen)} devices heard", nl=False, err=True)

    try:
        await wait_for(consume(), duration)
    except TimeoutError:
        pass
    if live:
        click.echo("", err=True)
    return seen


def _replay_source(path: str) -> Any:
    from zaas_edge.drivers.ble.replay import ReplaySource

    click.echo(f"replaying recorded adverts from {path} ({REPLAY_ENV} or --replay), not the radio", err=True)
    return ReplaySource(path, then="end")


@ble.command("scan")
@click.option("--duration", default=10.0, show_default=True, type=click.FloatRange(0.5, 600),
              help="Seconds to listen.")
@click.option("--adapter", default="hci0", show_default=True, help="Bluetooth adapter.")
@click.option("--active", is_flag=True, help="Active scan (asks devices for scan responses); passive by default.")
@click.option("--all", "show_all", is_flag=True, help="Also list devices that are neither RuuviTag nor BTHome.")
@click.option("--replay", default=None, hidden=True, envvar=REPLAY_ENV, help="Recorded adverts (JSON lines).")
@json_option
def scan_cmd(duration: float, adapter: str, active: bool, show_all: bool, replay: str | None, as_json: bool) -> None:
    """Listen for BLE adverts and list the sensors heard with their latest values."""
    if replay:
        source: Any = _replay_source(replay)
    else:
        from zaas_edge.drivers.ble.scanner import BleakSource

        source = BleakSource(adapter, "active" if active else "passive")
    seen = asyncio.run(_scan(source, duration, live=not as_json and sys.stderr.isatty()))
    rows = sorted((r for r in seen.values() if show_all or r["kind"] != "other"),
                  key=lambda r: (r["rssi"] is None, -(r["rssi"] or 0)))

    def human(rows: list[dict[str, Any]]) -> None:
        if not rows:
            click.echo(f"no RuuviTag or BTHome device heard in {duration:g} s"
                       + ("" if show_all else f" ({len(seen)} other devices; --all lists them)"))
            return
        click.echo(table(["MAC", "KIND", "RSSI", "ADVERTS", "VALUES"],
                         [[r["mac"], r["kind"], r["rssi"], r["adverts"], r.get("summary") or r["error"] or ""]
                          for r in rows]))

    emit(rows, as_json, human)


class AdvertRefused(click.ClickException):
    """An advert that does not decode, or that the bindkey does not open: exit 2, with the reason."""

    exit_code = 2


def _hex(text: str) -> bytes:
    try:
        return bytes.fromhex("".join(text.split()).replace(":", ""))
    except ValueError:
        raise AdvertRefused(f"{text[:40]!r} is not hex") from None


@ble.command("decode")
@click.argument("advert", metavar="HEX")
@click.option("--format", "fmt", type=click.Choice(["bthome", "ruuvi"]), required=True,
              help="bthome: the service data of UUID 0xFCD2 after the UUID; ruuvi: the manufacturer data of "
                   "company 0x0499 after the company id (data format 5).")
@click.option("--bindkey", envvar="ZAAS_EDGE_BLE_BINDKEY", default=None,
              help="BTHome bindkey, 32 hex digits, for encrypted adverts [env ZAAS_EDGE_BLE_BINDKEY] (a key on the "
                   "command line shows in ps: prefer the environment or --bindkey-file).")
@click.option("--bindkey-file", default=None, type=click.Path(dir_okay=False),
              help="File (mode 0600) holding the bindkey, as the driver's bindkey_file.")
@click.option("--mac", default=None, help="The advertiser's address AA:BB:CC:DD:EE:FF: part of the BTHome "
                                          "decryption nonce, so needed for encrypted adverts.")
@json_option
def decode_cmd(advert: str, fmt: str, bindkey: str | None, bindkey_file: str | None, mac: str | None,
               as_json: bool) -> None:
    """Decode one BLE advert payload (BTHome v2, encrypted too, or RuuviTag data format 5).

    Exits 2 with the reason when the advert is malformed or the bindkey does not open it.
    """
    from zaas_edge.drivers.ble.options import normalize_mac

    from zaas_edge.errors import ConfigError, ProtocolError

    data = _hex(advert)
    try:
        address = normalize_mac(mac) if mac else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--mac") from None
    out: dict[str, Any]
    try:
        if fmt == "ruuvi":
            out = _ruuvi(data, address)
        else:
            if bindkey_file and not bindkey:
                from zaas_edge.secrets import read_secret

                bindkey = read_secret(bindkey_file)
            out = _bthome(data, address, bindkey)
    except ConfigError as exc:  # a malformed bindkey
        raise click.BadParameter(str(exc), param_hint="--bindkey") from None
    except ProtocolError as exc:
        raise AdvertRefused(str(exc)) from None

    def human(out: dict[str, Any]) -> None:
        def shown(v: Any) -> Any:
            return "-" if v is None else ("yes" if v else "no") if isinstance(v, bool) else v

        click.echo(table(["FIELD", "VALUE"], [[k.upper().replace("_", " "), shown(v)]
                                              for k, v in out.items() if k not in ("values", "events")]))
        if out["values"]:
            click.echo("")
            click.echo(table(["QUANTITY", "VALUE", "UNIT"],
                             [[r["quantity"], f"{r['value']:g}", r["unit"]] for r in out["values"]]))
        for e in out.get("events", []):
            click.echo(f"event {e['name']}: {e['type']}")

    emit(out, as_json, human)


def _values(readings: Any) -> list[dict[str, Any]]:
    return [{"quantity": q, "value": v, "unit": u} for q, v, u in readings]


def _ruuvi(data: bytes, mac: str | None) -> dict[str, Any]:
    import dataclasses

    from zaas_edge.drivers.ble.ruuvi import decode_df5

    df5 = decode_df5(data)
    fields = dataclasses.asdict(df5)
    return {"format": "ruuvi", "data_format": 5, **fields, "values": _values(df5.readings())}


def _bthome(data: bytes, mac: str | None, bindkey: str | None) -> dict[str, Any]:
    from zaas_edge.drivers.ble.bthome import decode_bthome

    from zaas_edge.errors import ProtocolError

    encrypted = bool(data) and bool(data[0] & 0x01)
    if encrypted and mac is None:
        raise ProtocolError("this BTHome advert is encrypted: its decryption needs the advertiser's --mac "
                            "(and the --bindkey)")
    advert = decode_bthome(data, mac or "00:00:00:00:00:00", bindkey)
    return {"format": "bthome", "version": 2, "mac": mac, "encrypted": advert.encrypted,
            "packet_id": advert.packet_id, **dict(advert.attributes), "values": _values(advert.readings),
            "events": [{"name": e.key, "type": e.event_type} for e in advert.events]}
