"""``zaas-edge lora``: provision ABP and OTAA devices and see how each one is heard.

``lora devices`` joins two sources: the keys file (which devices exist; keys
shown as fingerprints only) and the running daemon's ``status`` (the latest
``<id>/rssi``, ``<id>/snr``, ``<id>/fcnt`` readings and the driver's
per-device counters ``<id>.uplinks``, ``<id>.bad_mic``, ``<id>.replayed``,
``<id>.payload_errors``, ``<id>.joins``). Drivers register no control commands, so this is
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
    """LoRaWAN devices heard through packet forwarders (ABP and OTAA keys, signal, counters)."""


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
@click.option("--otaa", is_flag=True, help="An OTAA device (DevEUI, AppEUI, AppKey): it joins by itself.")
@click.option("--dev-addr", default=None, help="ABP: DevAddr, 8 hex digits as printed (e.g. 26011BDA).")
@click.option("--nwk-skey", default=None,
              help="ABP: network session key, 32 hex digits (prompted, hidden, if omitted).")
@click.option("--app-skey", default=None,
              help="ABP: application session key, 32 hex digits (prompted, hidden, if omitted).")
@click.option("--dev-eui", default=None, help="OTAA: DevEUI, 16 hex digits as on the label.")
@click.option("--app-eui", default=None, help="OTAA: AppEUI (JoinEUI), 16 hex digits.")
@click.option("--app-key", default=None, help="OTAA: AppKey, 32 hex digits (prompted, hidden, if omitted).")
@click.option("--profile", required=True, help="Payload profile (see drivers/profiles/lora), e.g. milesight-am103.")
@click.option("--id", "device_id", required=True, help="Device id: the device part of its point keys.")
@click.option("--replace", is_flag=True, help="Replace a device with the same id, DevAddr or DevEUI.")
@_options
@json_option
@click.pass_context
def add_device(ctx: click.Context, otaa: bool, dev_addr: str | None, nwk_skey: str | None, app_skey: str | None,
               dev_eui: str | None, app_eui: str | None, app_key: str | None, profile: str, device_id: str,
               replace: bool, driver_id: str | None, keys_file: str | None, as_json: bool) -> None:
    """Add an ABP or OTAA device to the keys file (created with mode 0600); keys are never shown again."""
    import re

    from zaas_edge.drivers.lora.keys import DeviceKeys, parse_dev_addr, parse_eui, parse_key, update_keys
    from zaas_edge.drivers.lora.payloads import load_profile

    from zaas_edge.driver import ID_PATTERN

    path, _, _ = _keys_path(ctx, keys_file, driver_id)
    if not re.match(ID_PATTERN, device_id):
        raise click.BadParameter("--id: lowercase letters, digits, '_', '.' or '-', 63 characters at most")
    try:
        if otaa:
            if dev_addr or nwk_skey or app_skey:
                raise click.UsageError("--otaa devices get their DevAddr and session keys by joining: "
                                       "leave out --dev-addr, --nwk-skey and --app-skey")
            if not dev_eui or not app_eui:
                raise click.UsageError("--otaa needs --dev-eui and --app-eui")
            key = app_key or click.prompt("AppKey (32 hex digits)", hide_input=True)
            new = DeviceKeys(device_id, None, None, None, profile, parse_eui(dev_eui, "--dev-eui"),
                             parse_eui(app_eui, "--app-eui"), parse_key(key, "--app-key"))
        else:
            if dev_eui or app_eui or app_key:
                raise click.UsageError("--dev-eui, --app-eui and --app-key are for --otaa devices")
            if not dev_addr:
                raise click.UsageError("an ABP device needs --dev-addr (or pass --otaa for an OTAA device)")
            addr = parse_dev_addr(dev_addr)
            nwk = parse_key(nwk_skey or click.prompt("NwkSKey (32 hex digits)", hide_input=True), "--nwk-skey")
            app = parse_key(app_skey or click.prompt("AppSKey (32 hex digits)", hide_input=True), "--app-skey")
            new = DeviceKeys(device_id, addr, nwk, app, profile)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    load_profile(profile)  # ConfigError lists the available profiles
    replaced: list[str] = []

    def change(current: list[DeviceKeys]) -> list[DeviceKeys]:
        clash = [d for d in current if d.id == device_id
                 or (new.dev_addr is not None and d.dev_addr == new.dev_addr)
                 or (new.dev_eui is not None and d.dev_eui == new.dev_eui)]
        if clash and not replace:
            names = ", ".join(f"{d.id} ({d.dev_addr_hex or d.dev_eui_hex})" for d in clash)
            raise click.ClickException(f"{names} already in {path}: pass --replace to replace it")
        replaced.extend(d.id for d in clash)
        return [d for d in current if d not in clash] + [new]

    update_keys(path, change)
    shown = new.public()
    if otaa:
        what = (f"DevEUI {shown['dev_eui']}, AppEUI {shown['app_eui']}, AppKey {shown['app_key']}, "
                "OTAA: it joins by itself")
    else:
        what = f"DevAddr {shown['dev_addr']}, NwkSKey {shown['nwk_skey']}, AppSKey {shown['app_skey']}"
    emit({"added": shown, "keys_file": str(path), "replaced": replaced}, as_json,
         lambda data: click.echo(f"added {device_id} ({what}, profile {profile}) to {path}; a running daemon picks "
                                 "it up within a few seconds"))


_DRIVER_COUNTERS = ("unknown_devaddr", "bad_mic", "replayed", "duplicates", "datagrams_dropped", "frames_invalid",
                    "joins_accepted", "unknown_dev_eui", "join_bad_mic", "join_replayed")


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
            "joins": counters.get(f"{d.id}.joins", 0),
        })
    data = {"keys_file": str(path), "devices": rows, "note": note,
            "driver": {k: counters.get(k, 0) for k in _DRIVER_COUNTERS} if counters else None}

    def human(data: dict[str, Any]) -> None:
        if not rows:
            click.echo(f"no device in {path}: add one with 'zaas-edge lora add-device'")
        else:
            click.echo(table(
                ["ID", "ACT", "DEVADDR", "PROFILE", "LAST SEEN", "RSSI", "SNR", "FCNT", "UPLINKS", "BAD MIC",
                 "REPLAYED", "PAYLOAD ERR"],
                [[r["id"], r["activation"], r["dev_addr"] or "(not joined)", r["profile"],
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
