"""``zaas-edge alarms``: the alarms active now (from the running daemon) and their history (from the store).

``list`` asks the daemon's alarm service (``alarms.list``) for every active
alarm with its age, value and suggested action; a daemon running without
alarm rules still answers through ``status`` (id, severity, text, since).
``history`` reads the store's alarm lane through a read-only connection, as
``zaas-edge buffer export`` does, so it works with the daemon stopped too.
"""

from __future__ import annotations

__all__ = ["alarms_group"]

import sys
import time
from pathlib import Path
from typing import Any

import click

from zaas_edge.cli import cli
from zaas_edge.cli.buffer_cmd import TimeParam, _db_option, _iso, _open
from zaas_edge.cli.output import emit, format_duration, json_option, table

EXIT_NOT_RUNNING = 3  # as `zaas-edge status`: no daemon answers


@cli.group("alarms")
def alarms_group() -> None:
    """Alarms: those active now, and every raise and clear kept in the store."""


def _fig(v: Any, unit: str = "") -> str:
    if not isinstance(v, int | float) or isinstance(v, bool):
        return "-"
    return f"{v:.6g}{' ' + unit if unit else ''}"


def _active(ctx: click.Context) -> list[dict[str, Any]]:
    from zaas_edge.cli.daemon_cmd import _control_socket
    from zaas_edge.control import ControlClient, DaemonNotRunning
    from zaas_edge.errors import PermanentError

    client = ControlClient(_control_socket(ctx))
    try:
        try:
            return list(client.call("alarms.list")["alarms"])
        except PermanentError as exc:
            if "unknown command" not in str(exc):
                raise click.ClickException(str(exc)) from None
        st = client.call("status")  # the daemon runs without alarm rules: what status knows
    except DaemonNotRunning as exc:
        click.echo(f"zaas-edge: error: {exc} (is the daemon running?)", err=True)
        sys.exit(EXIT_NOT_RUNNING)
    now = time.time()
    rows = []
    for aid, a in sorted((st.get("alarms") or {}).items(), key=lambda kv: (kv[1].get("since") or 0, kv[0])):
        since = a.get("since")
        rows.append({"id": aid, "severity": a.get("severity"), "text": a.get("text"), "source": None,
                     "since": since, "age_s": None if since is None else round(max(0.0, now - since), 1),
                     "value": None, "threshold": None, "unit": "", "action": "", "data": {}})
    return rows


def _print_active(rows: list[dict[str, Any]]) -> None:
    if not rows:
        click.echo("no active alarms")
        return
    click.echo(table(["alarm", "severity", "age", "value", "threshold", "text"],
                     [(r["id"], r["severity"], format_duration(r["age_s"]), _fig(r["value"], r.get("unit") or ""),
                       _fig(r["threshold"], r.get("unit") or ""), r["text"]) for r in rows]))
    actions = [(r["id"], r["action"]) for r in rows if r.get("action")]
    if actions:
        click.echo()
        for aid, action in actions:
            click.echo(f"{aid}: {action}")


@alarms_group.command("list")
@json_option
@click.pass_context
def list_cmd(ctx: click.Context, as_json: bool) -> None:
    """The alarms active now, oldest first: age, value, threshold and suggested action.

    Every alarm the daemon holds is listed: the alarm rules' ([alarms]) and
    the drivers' own (a device offline, a Linky over power). Exits 3 when no
    daemon is running.
    """
    emit(_active(ctx), as_json, _print_active)


def _history(since: int | None, until: int | None, db: Path | None) -> list[dict[str, Any]]:
    from zaas_edge.errors import ZaasError
    from zaas_edge.model import Lane

    store, _cap = _open(db)
    with store:
        try:
            rows = list(store.export(Lane.ALARM, since_ns=since, until_ns=until))
        except ZaasError as exc:
            raise click.ClickException(str(exc)) from None
    out = []
    for r in rows:
        data = r.get("data") or {}
        out.append({"seq": r["seq"], "time": _iso(r["wall_ns"]), "wall_ns": r["wall_ns"], "id": r["alarm_id"],
                    "active": bool(r["active"]), "severity": r["severity"], "source": r["source"],
                    "text": r["text"], "value": data.get("value"), "threshold": data.get("threshold"),
                    "unit": data.get("unit", ""), "data": data})
    return out


def _print_history(rows: list[dict[str, Any]]) -> None:
    if not rows:
        click.echo("no alarm transitions in that time")
        return
    click.echo(table(["time", "alarm", "", "severity", "value", "text"],
                     [(r["time"], r["id"], "raised" if r["active"] else "cleared", r["severity"],
                       _fig(r["value"], r.get("unit") or ""), r["text"]) for r in rows]))


@alarms_group.command("history")
@click.option("--since", type=TimeParam(), default="-7d", show_default=True,
              help="From this time: ISO 8601 (UTC unless offset) or -1h, -2d.")
@click.option("--until", type=TimeParam(), default=None, help="Before this time, same forms as --since.")
@_db_option
@json_option
def history_cmd(since: int | None, until: int | None, db: Path | None, as_json: bool) -> None:
    """Every alarm raised and cleared, from the store, oldest first.

    Read from the store's alarm lane (the daemon may run or not); transitions
    the retention has dropped after the platform acknowledged them are gone.
    """
    emit(_history(since, until, db), as_json, _print_history)
