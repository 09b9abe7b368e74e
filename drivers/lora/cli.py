"""``zaas-edge lora``: provision ABP and OTAA devices and see how each one is heard.

``lora devices`` joins two sources: the keys file (which devices exist; keys
shown as fingerprints only) and the running daemon's ``status`` (the latest
``<id>/rssi``, ``<id>/snr``, ``<id>/fcnt`` readings and the driver's
per-device counters ``<id>.uplinks``, ``<id>.bad_mic``, ``<id>.replayed``,
``<id>.payload_errors``, ``<id>.joins``); with no daemon running it lists the
keys file alone.

``lora decode`` explains one frame offline (``describe.py``); ``lora frames``
follows what the running driver hears through the control socket
(``driver.control``, command ``frames``: the driver's ring of recent
verdicts, ``framelog.py``), or, with no daemon, listens on the port itself
(``listen.py``); ``lora remove-device`` takes a device out of the keys file.

Keys given on a command line are visible to every user in ``ps``: every
command that takes one also reads it from the environment, from the keys
file, or (``add-device`` without a terminal) from standard input or a file.
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


def _driver_options(ctx: click.Context, driver_id: str | None, *, or_else: str = ", or pass --keys-file"
                    ) -> tuple[Any, Any]:
    from zaas_edge.config import load_config

    loaded = load_config(ctx.obj.get("config_path"))
    found = [d for d in loaded.drivers if d.type == "lora" and (driver_id is None or d.id == driver_id)]
    if not found:
        which = f"with id {driver_id!r} " if driver_id else ""
        raise click.ClickException(f"no lora driver {which}in the configuration: add a [[drivers]] section "
                                   f'with type = "lora" and keys_file{or_else}')
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


class _KeySource:
    """Where the keys not given as options come from: a hidden prompt on a terminal; else, silently, one key a
    line from ``--keys-from`` or standard input (``getpass`` would warn that input may be echoed)."""

    def __init__(self, path: str | None) -> None:
        self._path = path
        self._lines: list[str] | None = None

    def get(self, name: str, option: str) -> str:
        import sys

        if self._path is None and sys.stdin.isatty():
            return str(click.prompt(f"{name} (32 hex digits)", hide_input=True))
        if self._lines is None:
            if self._path in (None, "-"):
                text = sys.stdin.read()
            else:
                from zaas_edge.secrets import read_secret

                text = read_secret(self._path)  # mode 0600 like every file holding a key
            self._lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if not self._lines:
            where = "standard input" if self._path in (None, "-") else self._path
            raise click.UsageError(f"{name} missing: give {option}, or one key a line in {where}")
        return self._lines.pop(0)


@lora.command("add-device")
@click.option("--otaa", is_flag=True, help="An OTAA device (DevEUI, AppEUI, AppKey): it joins by itself.")
@click.option("--dev-addr", default=None, help="ABP: DevAddr, 8 hex digits as printed (e.g. 26011BDA).")
@click.option("--nwk-skey", default=None,
              help="ABP: network session key, 32 hex digits (if omitted: prompted, hidden, or see --keys-from).")
@click.option("--app-skey", default=None,
              help="ABP: application session key, 32 hex digits (if omitted: as --nwk-skey).")
@click.option("--dev-eui", default=None,
              help="DevEUI, 16 hex digits as on the label: OTAA joins with it; for ABP it is the serial shown.")
@click.option("--app-eui", default=None, help="OTAA: AppEUI (JoinEUI), 16 hex digits.")
@click.option("--app-key", default=None, help="OTAA: AppKey, 32 hex digits (if omitted: as --nwk-skey).")
@click.option("--keys-from", "keys_from", default=None, type=click.Path(dir_okay=False, allow_dash=True),
              help="Read the keys not given as options from this file (mode 0600; '-': standard input), one a "
                   "line in the order NwkSKey, AppSKey (ABP) or AppKey (OTAA). Without a terminal, standard input "
                   "is read so, silently. Keys on the command line show in ps: prefer this or the prompt.")
@click.option("--profile", required=True, help="Payload profile (see drivers/profiles/lora), e.g. milesight-am103.")
@click.option("--id", "device_id", required=True, help="Device id: the device part of its point keys.")
@click.option("--replace", is_flag=True, help="Replace a device with the same id, DevAddr or DevEUI.")
@_options
@json_option
@click.pass_context
def add_device(ctx: click.Context, otaa: bool, dev_addr: str | None, nwk_skey: str | None, app_skey: str | None,
               dev_eui: str | None, app_eui: str | None, app_key: str | None, profile: str, device_id: str,
               keys_from: str | None, replace: bool, driver_id: str | None, keys_file: str | None,
               as_json: bool) -> None:
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
            secrets = _KeySource(keys_from)
            key = app_key or secrets.get("AppKey", "--app-key")
            new = DeviceKeys(device_id, None, None, None, profile, parse_eui(dev_eui, "--dev-eui"),
                             parse_eui(app_eui, "--app-eui"), parse_key(key, "--app-key"))
        else:
            if app_eui or app_key:
                raise click.UsageError("--app-eui and --app-key are for --otaa devices")
            if not dev_addr:
                raise click.UsageError("an ABP device needs --dev-addr (or pass --otaa for an OTAA device)")
            addr = parse_dev_addr(dev_addr)
            secrets = _KeySource(keys_from)
            nwk = parse_key(nwk_skey or secrets.get("NwkSKey", "--nwk-skey"), "--nwk-skey")
            app = parse_key(app_skey or secrets.get("AppSKey", "--app-skey"), "--app-skey")
            new = DeviceKeys(device_id, addr, nwk, app, profile,
                             None if dev_eui is None else parse_eui(dev_eui, "--dev-eui"))
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
        if new.dev_eui is not None:
            what += f", DevEUI {shown['dev_eui']}"
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


@lora.command("remove-device")
@click.argument("device_id", metavar="ID")
@_options
@json_option
@click.pass_context
def remove_device(ctx: click.Context, device_id: str, driver_id: str | None, keys_file: str | None,
                  as_json: bool) -> None:
    """Remove a device (its keys and session) from the keys file, rewritten atomically with mode 0600.

    A running daemon notices the changed file within a few seconds (it rereads it when it changes, no reload
    needed) and from then on counts the device's uplinks as from an unknown DevAddr.
    """
    from zaas_edge.drivers.lora.keys import DeviceKeys, load_keys, update_keys

    path, _, _ = _keys_path(ctx, keys_file, driver_id)
    if not path.exists():
        raise click.ClickException(f"{path} does not exist: no device to remove")
    load_keys(path)  # a loose mode or a broken file: refused before the lock is taken
    removed: list[DeviceKeys] = []

    def change(current: list[DeviceKeys]) -> list[DeviceKeys]:
        gone = [d for d in current if d.id == device_id]
        if not gone:
            known = ", ".join(d.id for d in current) or "none"
            raise click.ClickException(f"no device {device_id!r} in {path} (devices: {known})")
        removed.extend(gone)
        return [d for d in current if d.id != device_id]

    left = update_keys(path, change)
    shown = removed[0].public()
    emit({"removed": shown, "keys_file": str(path), "devices_left": len(left)}, as_json,
         lambda data: click.echo(f"removed {device_id} (DevAddr {shown['dev_addr'] or '-'}) from {path}, "
                                 f"{len(left)} devices left; a running daemon drops it within a few seconds"))


# ---------------------------------------------------------------------------------------------- decode


class FrameRefused(click.ClickException):
    """A frame that is not LoRaWAN, or whose MIC the given keys refuse: exit 2, as a configuration error."""

    exit_code = 2


def _frame_bytes(text: str) -> bytes:
    """Hex as logged by most tools (spaces, colons allowed), or base64 as in a forwarder's rxpk 'data'."""
    import base64
    import binascii

    compact = "".join(text.split()).replace(":", "")
    try:
        return bytes.fromhex(compact)
    except ValueError:
        pass
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise FrameRefused(f"{text[:40]!r} is neither hex nor base64") from None


def _hex_key(value: str | None, option: str) -> bytes | None:
    from zaas_edge.drivers.lora.keys import parse_key

    if not value:
        return None
    try:
        return parse_key(value, option)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


_KEY_HELP = "32 hex digits; [env {env}] (a key on the command line shows in ps: prefer the environment or --device)"


@lora.command("decode")
@click.argument("frame", metavar="HEX")
@click.option("--nwkskey", envvar="ZAAS_EDGE_LORA_NWKSKEY", default=None, show_envvar=False,
              help="NwkSKey to check the MIC with, " + _KEY_HELP.format(env="ZAAS_EDGE_LORA_NWKSKEY"))
@click.option("--appskey", envvar="ZAAS_EDGE_LORA_APPSKEY", default=None, show_envvar=False,
              help="AppSKey to decrypt the payload with, " + _KEY_HELP.format(env="ZAAS_EDGE_LORA_APPSKEY"))
@click.option("--appkey", envvar="ZAAS_EDGE_LORA_APPKEY", default=None, show_envvar=False,
              help="OTAA AppKey, for join requests and accepts, " + _KEY_HELP.format(env="ZAAS_EDGE_LORA_APPKEY"))
@click.option("--device", "device", default=None,
              help="Take the keys and the payload profile of this device from the keys file (--keys-file, or the "
                   "configured one). With --keys-file alone, the device is found by the frame's DevAddr or DevEUI.")
@click.option("--profile", default=None, help="Payload profile to decode the values with (default: the device's).")
@_options
@json_option
@click.pass_context
def decode_cmd(ctx: click.Context, frame: str, nwkskey: str | None, appskey: str | None, appkey: str | None,
               device: str | None, profile: str | None, driver_id: str | None, keys_file: str | None,
               as_json: bool) -> None:
    """Explain one LoRaWAN PHYPayload (hex or base64): MHDR, DevAddr, FCtrl, FCnt, FPort, FOpts, MIC and its
    check, the decrypted FRMPayload and its values; join requests and accepts too.

    Exits 2 with the reason when the frame is malformed or its MIC does not match the keys (the fields are
    printed first). Keys given as options or in the environment win over the keys file's.
    """
    from zaas_edge.drivers.lora import lorawan
    from zaas_edge.drivers.lora.describe import FrameKeys, MicStatus, describe_frame
    from zaas_edge.drivers.lora.payloads import load_profile

    from zaas_edge.errors import ProtocolError

    phy = _frame_bytes(frame)
    try:
        parsed = lorawan.parse_phy_payload(phy)
    except ProtocolError as exc:
        raise FrameRefused(f"not a LoRaWAN frame: {exc}") from None
    found = None
    if device or keys_file:
        from zaas_edge.drivers.lora.keys import load_keys

        path, _, _ = _keys_path(ctx, keys_file, driver_id)
        devices = load_keys(path).devices
        if device:
            found = next((d for d in devices if d.id == device), None)
            if found is None:
                known = ", ".join(d.id for d in devices) or "none"
                raise click.ClickException(f"no device {device!r} in {path} (devices: {known})")
        elif isinstance(parsed, lorawan.DataFrame):
            found = next((d for d in devices if d.dev_addr == parsed.dev_addr), None)
        elif isinstance(parsed, lorawan.JoinRequest):
            found = next((d for d in devices if d.dev_eui == parsed.dev_eui), None)
    keys = FrameKeys(
        nwk_skey=_hex_key(nwkskey, "--nwkskey") or (found.nwk_skey if found else None),
        app_skey=_hex_key(appskey, "--appskey") or (found.app_skey if found else None),
        app_key=_hex_key(appkey, "--appkey") or (found.app_key if found else None),
        profile=load_profile(profile or found.profile) if (profile or found) else None,  # type: ignore[union-attr]
        device_id=found.id if found else None,
    )
    report = describe_frame(phy, keys)
    emit(report.as_dict(), as_json, _print_report)
    if report.mic is MicStatus.BAD:
        what = "AppKey" if report.kind.startswith("join") else "NwkSKey"
        raise FrameRefused(f"MIC mismatch: wrong {what}, a counter beyond its next 16 rollovers, "
                           "or a corrupted frame")


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(f"{k}={_show(v)}" for k, v in value.items())
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_show(v) for v in value)
    return "-" if value in (None, "") else str(value)


def _print_report(data: dict[str, Any]) -> None:
    skip = {"values", "notes"}
    rows = [[k.upper().replace("_", " "), _show(v)] for k, v in data.items() if k not in skip]
    click.echo(table(["FIELD", "VALUE"], rows))
    if data.get("values"):
        click.echo("")
        click.echo(table(["QUANTITY", "VALUE", "UNIT"], [[v["quantity"], f"{v['value']:g}", v["unit"]]
                                                        for v in data["values"]]))
    for note in data.get("notes", []):
        click.echo(f"({note})")


# ---------------------------------------------------------------------------------------------- frames

_FRAME_HEADERS = ["TIME", "GATEWAY", "RSSI", "SNR", "DEVADDR", "DEVICE", "FCNT", "FPORT", "VERDICT", "DETAIL"]


def _frame_row(f: dict[str, Any]) -> list[str]:
    import datetime

    at = datetime.datetime.fromtimestamp(f["time"]).strftime("%H:%M:%S.%f")[:-3]
    verdict = f["verdict"] + (f" ({f['copies']} gateways)" if f.get("copies", 0) and f["copies"] > 1 else "")
    return [at, f.get("gateway") or "-", _num(f.get("rssi")), _num(f.get("snr")), f.get("dev_addr") or "-",
            f.get("device") or "-", "-" if f.get("fcnt") is None else str(f["fcnt"]),
            "-" if f.get("fport") is None else str(f["fport"]), verdict, f.get("detail") or ""]


class _FramePrinter:
    """Frames as they come: an aligned line each for people (fixed widths, so a live log needs no redraw),
    one JSON object a line for scripts."""

    WIDTHS = (12, 16, 6, 5, 16, 14, 8, 5, 26)

    def __init__(self, as_json: bool, max_frames: int | None) -> None:
        self.as_json = as_json
        self.max_frames = max_frames
        self.shown = 0
        if not as_json:
            click.echo(self._line(_FRAME_HEADERS))

    NUMBERS = (2, 3, 6, 7)  # RSSI, SNR, FCNT, FPORT: right-aligned, as in every table

    def _line(self, cells: list[str]) -> str:
        fitted = [c.rjust(w) if i in self.NUMBERS else c.ljust(w)
                  for i, (c, w) in enumerate(zip(cells, self.WIDTHS, strict=False))]
        return "  ".join([*fitted, cells[-1]]).rstrip()

    @property
    def full(self) -> bool:
        return self.max_frames is not None and self.shown >= self.max_frames

    def show(self, frames: list[dict[str, Any]]) -> None:
        import json

        if self.max_frames is not None:
            frames = frames[: max(0, self.max_frames - self.shown)]
        for f in frames:
            click.echo(json.dumps(f, sort_keys=True) if self.as_json else self._line(_frame_row(f)))
            self.shown += 1


@lora.command("frames")
@click.option("--last", default=20, show_default=True, type=click.IntRange(0, 1000),
              help="Start with the last N frames the daemon's driver remembers.")
@click.option("--duration", default=None, type=click.FloatRange(0.1, None),
              help="Stop after this many seconds (default: until Ctrl-C).")
@click.option("--count", "max_frames", default=None, type=click.IntRange(1, None),
              help="Stop after this many frames.")
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(0.1, 60),
              help="How often to ask the daemon for new frames.")
@click.option("--driver", "driver_id", default=None, help="Id of the lora driver (when several are configured).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line, one line a frame.")
@click.pass_context
def frames_cmd(ctx: click.Context, last: int, duration: float | None, max_frames: int | None, interval: float,
               driver_id: str | None, as_json: bool) -> None:
    """A live log of the frames heard: time, forwarder, RSSI, SNR, DevAddr, device, counter and the verdict
    (accepted, duplicate, replay, bad MIC, unknown device, invalid, join request).

    With the daemon running, its lora driver's recent frames are read through the control socket (the daemon
    keeps the UDP port). With no daemon, this listens on the configured port itself, listening only: join
    requests are not answered and frame counters start from what it hears.
    """
    import time

    from zaas_edge.control import ControlClient, DaemonNotRunning

    loaded, opts = _driver_options(ctx, driver_id, or_else=" (or name the file with -c)")
    client = ControlClient(loaded.config.control_socket)
    deadline = None if duration is None else time.monotonic() + duration
    printer = _FramePrinter(as_json, max_frames)

    def done() -> bool:
        return printer.full or (deadline is not None and time.monotonic() >= deadline)

    try:
        answer = client.call("driver.control", driver=opts.id, command="frames", args={"after": 0})
    except DaemonNotRunning:
        _listen_alone(opts, printer, done)
        return
    printer.show(answer["frames"][-last:] if last else [])
    seq, log_id = answer["last_seq"], answer.get("log_id")
    while not done():
        time.sleep(interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic())))
        if done():
            break
        answer = client.call("driver.control", driver=opts.id, command="frames", args={"after": seq})
        if answer.get("log_id") != log_id:  # the driver restarted (a reload): its numbering starts again
            answer = client.call("driver.control", driver=opts.id, command="frames", args={"after": 0})
            log_id = answer.get("log_id")
        if answer.get("missed"):
            click.echo(f"({answer['missed']} frames not shown: they came faster than --interval)", err=True)
        printer.show(answer["frames"])
        seq = answer["last_seq"]


def _listen_alone(opts: Any, printer: _FramePrinter, done: Any) -> None:
    import asyncio

    from zaas_edge.drivers.lora.listen import listening

    async def listen() -> None:
        async with listening(opts) as driver:
            assert driver.address is not None
            click.echo(f"(no daemon running: listening on {driver.address[0]}:{driver.address[1]} myself, "
                       "listen only: join requests are not answered)", err=True)
            seq = 0
            while not done():
                await asyncio.sleep(0.1)
                answer = driver.frames.answer(seq)
                printer.show(answer["frames"])  # type: ignore[arg-type]
                seq = driver.frames.last_seq

    try:
        asyncio.run(listen())
    except KeyboardInterrupt:
        pass
