"""``zaas-edge lora``: provision ABP devices and see how each one is heard.

``lora devices`` joins two sources: the keys file (which devices exist; keys
shown as fingerprints only) and the running daemon's ``status`` (the latest
``<id>/rssi``, ``<id>/snr``, ``<id>/fcnt`` readings and the driver's
per-device counters ``<id>.uplinks``, ``<id>.bad_mic``, ``<id>.replayed``,
``<id>.payload_errors``). Drivers register no control commands, so this is
all the CLI needs; with no daemon running it lists the keys file alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from zaas_edge.cli import cli
from zaas_edge.cli.output import emit, format_duration, json_option, table
from zaas_edge.errors import ConfigError


@cli.group("lora")
def lora() -> None:
    """LoRaWAN devices heard through packet forwarders (ABP keys, signal, counters)."""


def _driver_options(ctx: click.Context, driver_id: str | None) -> tuple[Any, Any]:
    from zaas_edge.config import load_config

    loaded = load_config(ctx.obj.get("config_path"))
    found = [d for d in loaded.drivers if d.type == "lora" and (driver_id is None or d.id == driver_id)]
    if not found:
        which = f"with id {driver_id!r} " if driver_id else ""
        raise click.ClickException(f"no lora driver {which}in the configuration: add a [[drivers]] section "
                                   'with type = "lora" and keys_file, or pass --keys-file')
    if len(found) > 1:
        raise click.ClickException(f"several lora drivers ({', '.join(d.id for d in found)}): choose one with --driver")
    return loaded, found[0]


def _keys_path(ctx: click.Context, keys_file: str | None, driver_id: str | None) -> tuple[Path, Any, Any]:
    if keys_file:
        return Path(keys_file), None, None
    loaded, opts = _driver_options(ctx, driver_id)
    return opts.keys_file, loaded, opts


_common = [
    click.option("--driver", "driver_id", default=None, help="Id of the lora driver (when several are configured)."),
    click.option("--keys-file", default=None, type=click.Path(dir_okay=False),
                 help="Keys file to use instead of the configured one."),
]


def _options(f: Any) -> Any:
    for opt in reversed(_common):
        f = opt(f)
    return f


@lora.command("add-device")
@click.option("--dev-addr", required=True, help="DevAddr, 8 hex digits as printed (e.g. 26011BDA).")
@click.option("--nwk-skey", prompt="NwkSKey (32 hex digits)", hide_input=True,
              help="Network session key, 32 hex digits (prompted, hidden, when omitted).")
@click.option("--app-skey", prompt="AppSKey (32 hex digits)", hide_input=True,
              help="Application session key, 32 hex digits (prompted, hidden, when omitted).")
@click.option("--profile", required=True, help="Payload profile (see drivers/profiles/lora), e.g. milesight-am103.")
@click.option("--id", "device_id", required=True, help="Device id: the device part of its point keys.")
@click.option("--replace", is_flag=True, help="Replace a device with the same id or DevAddr.")
@_options
@json_option
@click.pass_context
def add_device(ctx: click.Context, dev_addr: str, nwk_skey: str, app_skey: str, profile: str, device_id: str,
               replace: bool, driver_id: str | None, keys_file: str | None, as_json: bool) -> None:
    """Add an ABP device to the keys file (created with mode 0600); keys are never shown again."""
    import re

    from zaas_edge.drivers.lora.keys import DeviceKeys, load_keys, parse_dev_addr, parse_key, save_keys
    from zaas_edge.drivers.lora.payloads import load_profile

    from zaas_edge.driver import ID_PATTERN

    path, _, _ = _keys_path(ctx, keys_file, driver_id)
    try:
        addr = parse_dev_addr(dev_addr)
        nwk, app = parse_key(nwk_skey, "--nwk-skey"), parse_key(app_skey, "--app-skey")
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if not re.match(ID_PATTERN, device_id):
        raise click.BadParameter("--id: lowercase letters, digits, '_', '.' or '-', 63 characters at most")
    load_profile(profile)  # ConfigError lists the available profiles
    current = list(load_keys(path, missing_ok=True).devices)
    clash = [d for d in current if d.id == device_id or d.dev_addr == addr]
    if clash and not replace:
        names = ", ".join(f"{d.id} ({d.dev_addr_hex})" for d in clash)
        raise click.ClickException(f"{names} already in {path}: pass --replace to replace it")
    new = DeviceKeys(device_id, addr, nwk, app, profile)
    save_keys(path, [d for d in current if d not in clash] + [new])
    emit({"added": new.public(), "keys_file": str(path), "replaced": [d.id for d in clash]}, as_json,
         lambda data: click.echo(
             f"added {device_id} (DevAddr {new.dev_addr_hex}, profile {profile}, NwkSKey {data['added']['nwk_skey']}, "
             f"AppSKey {data['added']['app_skey']}) to {path}; a running daemon picks it up within a few seconds"))


def _age(point: dict[str, Any] | None) -> float | None:
    return None if point is None else point.get("age_s")


@lora.command("devices")
@_options
@json_option
@click.pass_context
def devices_cmd(ctx: click.Context, driver_id: str | None, keys_file: str | None, as_json: bool) -> None:
    """The provisioned devices with last seen, RSSI, SNR, frame counter and error counters."""
    from zaas_edge.drivers.lora.keys import load_keys

    from zaas_edge.control import ControlClient, DaemonNotRunning

    path, loaded, opts = _keys_path(ctx, keys_file, driver_id)
    keys = load_keys(path, missing_ok=True)
    status: dict[str, Any] | None = None
    note = None
    if loaded is None:
        try:
            loaded, opts = _driver_options(ctx, driver_id)
        except (click.ClickException, ConfigError):
            note = "no usable lora driver configuration: keys file only"
    if loaded is not None:
        try:
            status = ControlClient(loaded.config.control_socket).call("status", points=True)
        except DaemonNotRunning:
            note = "the daemon is not running: keys file only"
    points = (status or {}).get("points") or {}
    counters = ((status or {}).get("drivers", {}).get(opts.id, {}) if opts else {}).get("counters", {})
    rows = []
    for d in keys.devices:
        get = lambda q, d=d: points.get(f"{d.id}/{q}")  # noqa: E731
        rows.append({
            **d.public(),
            "last_seen_age_s": _age(get("fcnt")),
            "rssi": (get("rssi") or {}).get("value"), "snr": (get("snr") or {}).get("value"),
            "fcnt": (get("fcnt") or {}).get("value"),
            "uplinks": counters.get(f"{d.id}.uplinks", 0), "bad_mic": counters.get(f"{d.id}.bad_mic", 0),
            "replayed": counters.get(f"{d.id}.replayed", 0),
            "payload_errors": counters.get(f"{d.id}.payload_errors", 0),
        })
    data = {"keys_file": str(path), "devices": rows, "note": note,
            "driver": {k: counters.get(k, 0) for k in ("unknown_devaddr", "bad_mic", "replayed", "duplicates",
                                                       "datagrams_dropped", "frames_invalid")} if counters else None}

    def human(data: dict[str, Any]) -> None:
        if not rows:
            click.echo(f"no device in {path}: add one with 'zaas-edge lora add-device'")
        else:
            click.echo(table(
                ["ID", "DEVADDR", "PROFILE", "LAST SEEN", "RSSI", "SNR", "FCNT", "UPLINKS", "BAD MIC", "REPLAYED",
                 "PAYLOAD ERR"],
                [[r["id"], r["dev_addr"], r["profile"],
                  "never" if r["last_seen_age_s"] is None else format_duration(r["last_seen_age_s"]) + " ago",
                  _num(r["rssi"]), _num(r["snr"]), _num(r["fcnt"]), r["uplinks"], r["bad_mic"], r["replayed"],
                  r["payload_errors"]] for r in rows]))
        if data["driver"]:
            click.echo("driver: " + ", ".join(f"{k} {v}" for k, v in data["driver"].items()))
        if note:
            click.echo(f"({note})")

    emit(data, as_json, human)


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:g}"
