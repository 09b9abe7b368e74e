"""``zaas-edge read DEVICE`` and ``zaas-edge read --all``: a configured device read once, whatever its bus.

The one entry point for the technician's "what does this meter say now":
the device id from the configuration names a Modbus device, an M-Bus meter
or a Linky (a ``tic`` driver's id), and the command finds its bus there.

* When the running daemon holds the port, it asks the daemon's driver
  (``driver.control``, command ``read``): the driver reads the device between
  its own polls and sends the readings back. Nothing is refused for a busy port.
* With no daemon (or a daemon not running that driver), it opens the port itself.

``read --all`` is the run-once mode (Telegraf's ``--once``): every device of
every enabled polling driver read once, the readings printed, the exit status
1 when any device gave nothing. The store is never touched either way.

The bus-level commands (``modbus read``, ``mbus read``, ``tic read``) stay for
commissioning a bus that is not configured yet.
"""

from __future__ import annotations

__all__ = ["read", "Target", "targets", "read_target"]

import asyncio
import importlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import click

from zaas_edge.cli import cli
from zaas_edge.cli.output import emit, format_number, json_option, table
from zaas_edge.driver import DriverOptions
from zaas_edge.errors import PermanentError, ZaasError
from zaas_edge.readout import DeviceReadout

if TYPE_CHECKING:
    from zaas_edge.control import ControlClient

# Drivers that poll their devices, and the module that reads one of them (device_ids, read_alone).
READERS = {
    "modbus": "zaas_edge.drivers.modbus.readout",
    "mbus": "zaas_edge.drivers.mbus.readout",
    "tic": "zaas_edge.drivers.tic.readout",
}
DAEMON_READ_S = 300.0  # the longest read asked of the daemon (an M-Bus readout at 300 baud, with retries)


@dataclass(frozen=True, slots=True)
class Target:
    """One readable device: its driver's configuration and its id."""

    options: DriverOptions
    device: str

    @property
    def reader(self) -> ModuleType:
        return importlib.import_module(READERS[self.options.type])


def targets(drivers: Sequence[DriverOptions], *, enabled_only: bool = False) -> list[Target]:
    """Every device of the configuration's polling drivers, in configuration order."""
    out = []
    for opt in drivers:
        if opt.type not in READERS or (enabled_only and not opt.enabled):
            continue
        out += [Target(opt, d) for d in importlib.import_module(READERS[opt.type]).device_ids(opt)]
    return out


class _NotThere(Exception):
    """The daemon runs, but not this driver: its port is free to open."""


def _via_daemon(client: ControlClient, target: Target) -> DeviceReadout:
    args: dict[str, str | bool] = {"device": target.device}
    deadline = time.monotonic() + DAEMON_READ_S
    while True:
        try:
            answer = client.call("driver.control", driver=target.options.id, command="read", args=args)
        except PermanentError as exc:
            if "no running driver" in str(exc):
                raise _NotThere() from None
            raise
        if not isinstance(answer, dict):
            raise PermanentError("the daemon answered read with something else than a readout")
        if not answer.get("pending"):
            return DeviceReadout.from_json(answer.get("readout"))
        if time.monotonic() > deadline:
            raise PermanentError(f"{target.device}: the daemon's driver did not finish the read "
                                 f"within {DAEMON_READ_S:.0f} s")
        args = {"device": target.device, "again": True}


def read_target(target: Target, client: ControlClient | None) -> DeviceReadout:
    """Read one device: through the daemon when ``client`` reaches one that runs its driver, else alone."""
    from zaas_edge.control import DaemonNotRunning

    if client is not None and target.options.enabled:
        try:
            return _via_daemon(client, target)
        except (DaemonNotRunning, _NotThere):
            pass
    return asyncio.run(target.reader.read_alone(target.options, target.device))


def _find(all_targets: list[Target], device: str) -> Target | None:
    for t in all_targets:
        if t.device == device:
            return t
    return None


def _unknown(all_targets: list[Target], device: str, daemon: bool) -> PermanentError:
    known = ", ".join(t.device for t in all_targets) or "none"
    heard = ("" if daemon else "; a device that is listened to (LoRa, BLE) is read from the running daemon's "
             "latest values, and no daemon runs")
    return PermanentError(f"no device {device!r} in the configuration of a polling driver (modbus, mbus, tic); "
                          f"devices: {known}{heard}")


def _latest(client: ControlClient, device: str) -> DeviceReadout | None:
    """A device the daemon hears rather than polls (LoRa, BLE, the gateway's own): its latest values.

    Such a device cannot be asked: it talks when it wants. What the daemon heard
    last is its reading, with the age of the newest value. None when the daemon
    knows no point of that device.
    """
    from zaas_edge.readout import PointReading

    status = client.call("status", points=True)
    points = {k: v for k, v in ((status or {}).get("points") or {}).items() if k.startswith(f"{device}/")}
    if not points:
        return None
    driver = next((d for d, info in ((status or {}).get("drivers") or {}).items()
                   if device in ((info or {}).get("devices") or {}) or d == device), "")
    ages = [float(v.get("age_s") or 0.0) for v in points.values()]
    readings = tuple(PointReading(k.partition("/")[2], v.get("value"), str(v.get("unit") or ""),
                                  str(v.get("quality") or "ok")) for k, v in points.items())
    return DeviceReadout(driver, device, "latest values heard by the daemon", readings,
                         {"newest": f"{min(ages):.1f} s ago", "oldest": f"{max(ages):.1f} s ago"}, via="daemon")


def _about(r: DeviceReadout) -> str:
    parts = [f"{k} {v}" for k, v in r.about.items()]
    return ", ".join(parts)


def _title(r: DeviceReadout) -> str:
    via = "through the daemon" if r.via == "daemon" else "port opened by this command"
    if r.bus.startswith("latest values"):
        return f"{r.device}: {r.bus}" + (f" (driver {r.driver})" if r.driver else "") + f", {_about(r)}"
    about = _about(r)
    return f"{r.device}: driver {r.driver}, {r.bus}" + (f" ({about})" if about else "") + f"; {via}"


def _rows(r: DeviceReadout) -> list[tuple[Any, ...]]:
    return [(p.quantity, format_number(p.value) if not isinstance(p.value, str) else p.value, p.unit, p.quality)
            for p in r.points]


def _failure(r: DeviceReadout) -> str:
    about = _about(r)
    return f"{r.device} ({about + ' on ' if about else ''}{r.bus}): {r.error}"


@cli.command("read")
@click.argument("device", required=False)
@click.option("--all", "read_all", is_flag=True,
              help="Run once: read every device of every enabled polling driver, print, exit.")
@json_option
@click.pass_context
def read(ctx: click.Context, device: str | None, read_all: bool, as_json: bool) -> None:
    """Read a configured device once (Modbus device, M-Bus meter, or a Linky by its tic driver's id).

    Goes through the running daemon when it holds the port (its driver reads
    between its own polls), else opens the port itself. A device the daemon
    listens to (LoRa, BLE, the system driver) shows the latest values it heard. With --all: every
    device once (a run-once check of the whole configuration); exits 1 if any
    device gave nothing. Nothing is stored.
    """
    from zaas_edge.config import load_config
    from zaas_edge.control import ControlClient

    if bool(device) == read_all:
        raise click.UsageError("give a DEVICE id, or --all")
    loaded = load_config(ctx.obj.get("config_path"))
    client = ControlClient(loaded.config.control_socket)
    if not read_all:
        assert device is not None
        all_targets = targets(loaded.drivers)
        target = _find(all_targets, device)
        if target is not None:
            readout = read_target(target, client)
        else:
            from zaas_edge.control import DaemonNotRunning

            try:
                heard = _latest(client, device)
            except DaemonNotRunning:
                raise _unknown(all_targets, device, daemon=False) from None
            if heard is None:
                raise _unknown(all_targets, device, daemon=True)
            readout = heard
        if not readout.ok:
            raise PermanentError(_failure(readout))

        def human(_: Any) -> None:
            click.echo(_title(readout))
            click.echo(table(["point", "value", "unit", "quality"], _rows(readout)))

        emit(readout.to_json(), as_json, human)
        return

    found = targets(loaded.drivers, enabled_only=True)
    if not found:
        raise PermanentError("no enabled modbus, mbus or tic driver in the configuration: nothing to read")
    readouts: list[DeviceReadout] = []
    for t in found:
        try:
            readouts.append(read_target(t, client))
        except (ZaasError, OSError, click.ClickException) as exc:  # a missing port: that device's failure
            reason = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
            readouts.append(DeviceReadout(t.options.id, t.device, t.options.type, (), {}, reason))
        if not as_json:
            r = readouts[-1]
            if r.ok:
                click.echo(_title(r))
                click.echo(table(["point", "value", "unit", "quality"], _rows(r)))
                click.echo()
            else:
                click.echo(f"zaas-edge: error: {_failure(r)}", err=True)
    failed = [r for r in readouts if not r.ok]
    if as_json:
        emit({"devices": [r.to_json() for r in readouts], "failed": len(failed)}, True, lambda d: None)
    else:
        click.echo(f"{len(readouts) - len(failed)} of {len(readouts)} device(s) read")
    if failed:
        ctx.exit(1)
