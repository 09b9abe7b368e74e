"""``run``, ``status``, ``drivers`` and ``diagnostics``: the daemon and its health."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from zaas_edge.cli import cli
from zaas_edge.cli.output import emit, format_bytes, format_duration, json_option, table
from zaas_edge.cli.watch import mqtt_line as _mqtt_line
from zaas_edge.config import load_config
from zaas_edge.control import ControlClient, DaemonNotRunning
from zaas_edge.errors import ConfigError
from zaas_edge.model import Lane

EXIT_NOT_RUNNING = 3  # as systemctl status: the service is not running
EXIT_CRITICAL = 4  # the daemon runs with an alarm of severity error or critical active (for monitoring)


def _loaded(ctx: click.Context):
    return load_config(ctx.obj.get("config_path"))


def _control_socket(ctx: click.Context):
    """The daemon's control socket, even when the configuration on disk is broken.

    A technician who just broke the file still needs to see whether the daemon
    (running on the previous configuration) is alive: read the two keys that
    place the socket straight from the TOML, without validating the rest.
    """
    import tomllib
    from pathlib import Path

    from zaas_edge.config import DEFAULT_CONFIG_PATH, ENV_VAR
    from zaas_edge.config_model import Config

    try:
        return _loaded(ctx).config.control_socket
    except ConfigError as exc:
        click.echo(f"zaas-edge: warning: the configuration has {len(exc.issues)} error(s) "
                   "(run 'zaas-edge config check'); looking for the daemon anyway", err=True)
    import os

    path = Path(ctx.obj.get("config_path") or os.environ.get(ENV_VAR) or DEFAULT_CONFIG_PATH)
    default = Config().control_socket
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, ValueError, RecursionError):  # RecursionError: TOML nested too deeply
        return default
    sock = (raw.get("control") or {}).get("socket")
    run_dir = (raw.get("gateway") or {}).get("runtime_dir")
    if isinstance(sock, str):
        return path.parent / sock
    if isinstance(run_dir, str):
        return path.parent / run_dir / "control.sock"
    return default


@cli.command("run")
@click.pass_context
def run_cmd(ctx: click.Context) -> None:
    """Run the daemon in the foreground (what systemd starts)."""
    from zaas_edge.daemon import run_daemon

    sys.exit(run_daemon(ctx.obj.get("config_path")))


def daemon_status(loaded, *, points: bool = False) -> dict[str, Any]:
    """The running daemon's status, or what the store alone can tell when none runs."""
    try:
        return ControlClient(loaded.config.control_socket).call("status", points=points)
    except DaemonNotRunning as exc:
        return {"running": False, "reason": str(exc), "store": _offline_store(loaded.config.store_path)}


def _offline_store(path) -> dict[str, Any]:
    """What the store file alone tells, read-only, while no daemon runs."""
    from zaas_edge.errors import ZaasError
    from zaas_edge.store import Store

    if not path.exists():
        return {"path": str(path), "error": "no store file yet (the daemon has not run here)"}
    try:
        with Store(path, readonly=True) as store:
            return store.stats().as_dict()
    except ZaasError as exc:
        return {"path": str(path), "error": str(exc)}


def _print_services(tasks: dict[str, Any]) -> None:
    """One line per service (mqtt, aggregate, sync): a crashing one shows here as restarting."""
    rows = []
    for name, t in tasks.items():
        if t.get("kind") != "service":
            continue
        state = t["state"]
        if t.get("next_start_in_s") is not None:
            state = f"{state}, next start in {t['next_start_in_s']:.0f}s"
        rows.append((name.removeprefix("service."), state, t["restarts"], t["consecutive_failures"],
                     t["last_error"] or ""))
    if rows:
        click.echo()
        click.echo(table(["service", "state", "restarts", "failures in a row", "last error"], rows))


def _print_status(st: dict[str, Any]) -> None:
    if not st.get("running"):
        click.echo(f"daemon: not running ({st.get('reason')})")
        _print_store(st.get("store") or {})
        return
    d = st["daemon"]
    click.echo(f"daemon: running  pid {d['pid']}  version {d['version']}  up {format_duration(d['uptime_s'])}")
    clock = "synchronised" if d["clock_synced"] else "NOT synchronised"
    click.echo(f"gateway: {d['gateway']}  site: {d['site']}  clock: {clock}")
    sources = ", ".join(d["config"]) or "embedded defaults"
    click.echo(f"config: {sources}  reloads: {d['reloads']} (refused {d['reload_failures']})")
    click.echo()

    def ago(age: float | None) -> str:
        return "-" if age is None else f"{format_duration(age)} ago"

    rows = [(i, v["type"], _driver_state(v), v["readings"], ago(v["last_reading_age_s"]), v["restarts"],
             v["last_error"] or "") for i, v in st["drivers"].items()]
    click.echo(table(["driver", "type", "state", "readings", "last reading", "restarts", "last error"], rows))
    _print_devices(st["drivers"])
    _print_services(st.get("tasks") or {})
    click.echo()
    _print_store(st.get("store") or {}, st.get("backlog"))
    click.echo(_mqtt_line(st.get("mqtt")))
    sync = st.get("sync")
    if not sync:
        click.echo("sync: not configured")
    else:
        from zaas_edge.cli.sync_cmd import print_sync

        click.echo()
        print_sync({"running": True, **sync})
    hold = ((st.get("services") or {}).get("aggregate") or {}).get("aggregate_hold")
    if hold:
        release = hold.get("release_in_s")
        when = (f"released in {format_duration(release)} unless the clock synchronises first"
                if release is not None else "released once the clock synchronises")
        click.echo(f"readings held: {hold['reason']}; {when}")
    alarms = st.get("alarms") or {}
    if alarms:
        click.echo()
        click.echo(table(["alarm", "severity", "since", "text"],
                         [(k, a["severity"], time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(a["since"])), a["text"])
                          for k, a in sorted(alarms.items())]))
    if st.get("points"):
        click.echo()
        click.echo(table(["point", "value", "unit", "quality", "age"],
                         [(k, f"{p['value']:.6g}", p["unit"], p["quality"], format_duration(p["age_s"]))
                          for k, p in st["points"].items()]))


def _driver_state(v: dict[str, Any]) -> str:
    """The driver's task state, and BUS DOWN with the reason when its bus itself is unreachable."""
    down = next((h.get("bus_down") for h in (v.get("devices") or {}).values()
                 if isinstance(h, dict) and h.get("bus_down")), None)
    return f"{v['state']}, BUS DOWN: {str(down).splitlines()[0][:60]}" if down else v["state"]


def critical_alarms(st: dict[str, Any]) -> list[str]:
    """The active alarms someone must act on (severity error or critical: the store degraded, the broker
    or the platform refusing the gateway, a Linky's breaker open): ``status`` exits 4 while there is one."""
    return sorted(k for k, a in (st.get("alarms") or {}).items() if a.get("severity") in ("error", "critical"))


def _device_cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _print_devices(drivers: dict[str, Any]) -> None:
    """One line per device of the drivers that report per-device health (``Driver.health``)."""
    rows = []
    for driver_id, v in drivers.items():
        for device_id, h in sorted((v.get("devices") or {}).items()):
            if not isinstance(h, dict):
                continue
            online = h.get("online")
            state = "online" if online is True else "OFFLINE" if online is False else "?"
            latency = f"{_device_cell(h.get('latency_last_ms'))}/{_device_cell(h.get('latency_avg_ms'))}"
            rows.append((driver_id, device_id, state, _device_cell(h.get("requests")),
                         _device_cell(h.get("timeouts")), _device_cell(h.get("checksum_errors")),
                         _device_cell(h.get("exceptions")), latency, _device_cell(h.get("consecutive_failures")),
                         "-" if h.get("last_seen_s") is None else f"{format_duration(h['last_seen_s'])} ago",
                         (str(h.get("last_error") or "").splitlines() or [""])[0][:80]))  # --json has it whole
    if rows:
        click.echo()
        click.echo(table(["driver", "device", "state", "requests", "timeouts", "checksum", "exceptions",
                          "latency ms last/avg", "fails in a row", "last seen", "last error"], rows))


def _print_store(store: dict[str, Any], backlog: dict[str, int] | None = None) -> None:
    if not store:
        return
    if store.get("error"):
        click.echo(f"store: {store.get('path', '')}: {store['error']}")
    lanes = store.get("lanes") or {}
    backlog = backlog or {lane: v.get("backlog", 0) for lane, v in lanes.items()}
    state = "DEGRADED (in-memory ring)" if store.get("degraded") else "ok"
    click.echo(f"store: {state}  {store.get('path', '')}  size {format_bytes(store.get('file_bytes'))}")
    # Raw readings wait for the aggregator; upload records for the platform.
    lanes = [str(lane) for lane in Lane]
    click.echo("backlog: " + ", ".join(f"{lane} {backlog.get(lane, 0)}" for lane in lanes))


@cli.command("status")
@click.option("--points", is_flag=True, help="Also list the latest value of every point.")
@click.option("--watch", is_flag=True,
              help="A live view, redrawn every --interval seconds until Ctrl-C; waits for a daemon that is "
                   "not answering. With --json: one JSON object per line.")
@click.option("--interval", type=click.FloatRange(min=0.2), default=None, metavar="S",
              help="Seconds between two redraws of --watch [default: 2].")
@json_option
@click.pass_context
def status_cmd(ctx: click.Context, points: bool, watch: bool, interval: float | None, as_json: bool) -> None:
    """Whether the daemon runs, its drivers' health, the backlog and the last sync.

    Exits 3 when no daemon is running (the store is still read and shown), 4 while an alarm of
    severity error or critical is active, 0 otherwise: monitoring scripts can run it as it is.

    With --watch, one screen redrawn in place on a terminal (drivers and devices, readings/s,
    backlog, MQTT, sync, load shedding, alarms), one block per interval into a pipe or a file;
    while the daemon does not answer (restarting) it says since when and keeps waiting; Ctrl-C
    exits 0.
    """
    if interval is not None and not watch:
        raise click.UsageError("--interval goes with --watch")
    if watch:
        sys.exit(_watch(ctx, 2.0 if interval is None else interval, points, as_json))
    try:
        st = ControlClient(_control_socket(ctx)).call("status", points=points)
    except DaemonNotRunning as exc:
        st = {"running": False, "reason": str(exc), "store": _offline_store(_loaded(ctx).config.store_path)}
    emit(st, as_json, _print_status)
    if not st.get("running"):
        sys.exit(EXIT_NOT_RUNNING)
    if critical_alarms(st):
        sys.exit(EXIT_CRITICAL)


def _watch_status(client: ControlClient, points: bool) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The status and, when the daemon sheds loads, ``shed.status`` (None if it has none or refuses it)."""
    from zaas_edge.errors import ZaasError

    st = client.call("status", points=points)
    if not isinstance(st, dict):
        raise TypeError(f"the daemon's status is not an object: {type(st).__name__}")
    shed = None
    if "shed" in (st.get("services") or {}):
        try:
            answer = client.call("shed.status")
            shed = answer if isinstance(answer, dict) else None
        except ZaasError:
            shed = None  # shedding is being reloaded away: the summary in status stands in
    return st, shed


def _watch(ctx: click.Context, interval: float, points: bool, as_json: bool) -> int:
    """``status --watch``: ask, draw, sleep, until Ctrl-C (exit 0). Never gives up on the daemon."""
    import json
    import shutil

    from zaas_edge.cli import watch as view
    from zaas_edge.errors import ZaasError

    sock = _control_socket(ctx)
    client = ControlClient(sock)
    tty = sys.stdout.isatty() and not as_json
    meter = view.RateMeter()
    down_since: float | None = None
    last_seen: float | None = None
    out = sys.stdout
    try:
        while True:
            now = time.time()
            try:
                st, shed = _watch_status(client, points)
            except (ZaasError, OSError, TypeError, ValueError) as exc:
                reason = str(exc) or type(exc).__name__
                down_since = down_since or now
                if as_json:
                    frame = [json.dumps({"running": False, "reason": reason,
                                         "watch": {"time": now, "not_answering_since": down_since,
                                                   "last_answered": last_seen}}, sort_keys=True, default=str)]
                else:
                    frame = view.down_screen(down_since, reason, now, last_seen)
            else:
                down_since, last_seen = None, now
                rates = meter.update(time.monotonic(), st)
                if as_json:
                    st = {**st, "watch": {"time": now, "readings_per_s": rates.total,
                                          "driver_readings_per_s": dict(rates.drivers), "shed": shed}}
                    frame = [json.dumps(st, sort_keys=True, default=str)]
                else:
                    frame = view.screen(st, shed, rates, now)
            if tty:
                size = shutil.get_terminal_size()
                lines = view.fit(frame, size.columns, size.lines)
                out.write(view.HOME + "".join(f"{line}{view.ERASE_LINE}\n" for line in lines) + view.ERASE_BELOW)
            else:
                out.write("\n".join(frame) + ("\n" if as_json else "\n\n"))
            out.flush()
            time.sleep(max(0.0, interval - (time.time() - now)))
    except KeyboardInterrupt:
        if tty:
            out.write("\n")
        return 0
    except BrokenPipeError:  # `status --watch | head`: the reader has had enough
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0


@cli.group("drivers")
def drivers_group() -> None:
    """Installed drivers (built-in and third-party)."""


@drivers_group.command("list")
@json_option
def drivers_list(as_json: bool) -> None:
    """List the drivers registered in the zaas_edge.drivers entry-point group."""
    from zaas_edge.driver import available_drivers

    found = available_drivers()
    emit(found, as_json, lambda d: click.echo(table(["driver", "provided by"], sorted(d.items()))))


@cli.command("reload")
@click.pass_context
def reload_cmd(ctx: click.Context) -> None:
    """Ask the running daemon to reload its configuration; returns once it is in force.

    What the systemd unit's ExecReload runs, so `systemctl reload zaas-edge` reports a
    refused configuration as a failed reload.
    """
    from zaas_edge.control import RELOAD_TIMEOUT_S

    result = ControlClient(_loaded(ctx).config.control_socket, timeout=RELOAD_TIMEOUT_S + 1).call("reload")
    if not result.get("reloaded"):
        raise click.ClickException("the daemon refused the new configuration and keeps the old one; "
                                   "run 'zaas-edge config check' to see why")
    click.echo("configuration reloaded")


@cli.command("diagnostics")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Bundle path [default: ./zaas-edge-diagnostics-<gateway>-<time>.tar.gz].")
@click.pass_context
def diagnostics_cmd(ctx: click.Context, output: str | None) -> None:
    """Write a redacted support bundle: config, status, store, versions, system, journal."""
    from pathlib import Path

    from zaas_edge.diagnostics import build_bundle

    loaded = _loaded(ctx)
    path = Path(output or f"zaas-edge-diagnostics-{loaded.config.gateway.id}-{time.strftime('%Y%m%dT%H%M%S')}.tar.gz")
    build_bundle(loaded, path, lambda: daemon_status(loaded, points=True))
    click.echo(f"wrote {path} (secrets redacted; send it to support)")
