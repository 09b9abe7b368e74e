"""``zaas-edge shed``: load shedding, live and simulated.

``status`` and ``override`` ask the running daemon over the control socket;
``simulate`` (``zaas_edge.cli.shed_simulate_cmd``) runs the same engine in a
closed loop against a scenario file or the store's history, with no daemon.
"""

from __future__ import annotations

__all__ = ["shed_group", "parse_duration", "Duration"]

import re
import sys
from typing import Any

import click

from zaas_edge.cli import cli
from zaas_edge.cli.output import emit, format_duration, json_option, table

EXIT_NOT_RUNNING = 3  # as `zaas-edge status`: no daemon answers
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """``90s``, ``15m``, ``2h``, ``1d`` (or plain seconds) to seconds; ValueError otherwise."""
    m = _DURATION.match(text)
    if m is None:
        raise ValueError(f"expected a duration such as 90s, 15m, 2h or 1d, got {text!r}")
    seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    if seconds <= 0:
        raise ValueError(f"a duration must be above zero, got {text!r}")
    return seconds


class Duration(click.ParamType):
    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@cli.group("shed")
def shed_group() -> None:
    """Load shedding: what the engine does now, overrides, and simulations."""


def _call(ctx: click.Context, cmd: str, **args: Any) -> Any:
    """Ask the daemon; one line and exit 3 when none runs, one line when it runs without shedding."""
    from zaas_edge.cli.daemon_cmd import _control_socket
    from zaas_edge.control import ControlClient, DaemonNotRunning
    from zaas_edge.errors import PermanentError

    try:
        return ControlClient(_control_socket(ctx)).call(cmd, **args)
    except DaemonNotRunning as exc:
        click.echo(f"zaas-edge: error: {exc} (is the daemon running?)", err=True)
        sys.exit(EXIT_NOT_RUNNING)
    except PermanentError as exc:
        if "unknown command" in str(exc):
            raise click.ClickException("the daemon runs without load shedding (set shedding.enabled = true "
                                       "and reload)") from None
        raise click.ClickException(str(exc).replace(f"the daemon refused {cmd!r}: ", "")) from None


def _w(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def _print_status(st: dict[str, Any]) -> None:
    mode = " (dry run: nothing is switched)" if st.get("dry_run") else ""
    click.echo(f"load shedding: {st.get('state', '?')}{mode}")
    tariff = st.get("tariff") or {}
    if any(v for v in tariff.values()):
        click.echo("tariff: " + ", ".join(f"{k} {v}" for k, v in tariff.items() if v))
    click.echo()
    rows = [(lid, r["kind"], r["stage"], _w(r["value_w"]), f"{_w(r['limit_w'])} ({r['limit_source']})",
             _w(r["headroom_w"]), "-" if r["forecast"] is None else f"{r['forecast']:.3g}")
            for lid, r in (st.get("limits") or {}).items()]
    click.echo(table(["limit", "kind", "stage", "value W", "limit W", "headroom W", "forecast"], rows))
    click.echo()
    lrows = []
    for lid, r in (st.get("loads") or {}).items():
        ov = r["override"]
        override = "auto" if ov["mode"] == "auto" else f"{ov['mode']} ({format_duration(ov['remaining_s'])} left)"
        nxt = r["next"]
        when = "" if nxt["in_s"] is None or nxt["in_s"] <= 0 else f" in {format_duration(nxt['in_s'])}"
        state = r["state"] + (" FAULT" if r["fault"] else "") + (" (safe state)" if r["safe_state"] else "")
        level = f"{r['level']:g}/{r['full_level']:g}"
        lrows.append((lid, state, level, r["priority"], _w(r["learned_w"]), override,
                      format_duration(r["shed_today_s"]), f"{nxt['action']}{when}: {nxt['why']}"))
    click.echo(table(["load", "state", "level", "priority", "learned W", "override", "shed today", "next"], lrows))
    if st.get("last_action"):
        click.echo()
        click.echo(f"last action: {st['last_action']}")
    if st.get("last_error"):
        click.echo(f"last error: {st['last_error']}")


@shed_group.command("status")
@json_option
@click.pass_context
def status_cmd(ctx: click.Context, as_json: bool) -> None:
    """What load shedding does now: each limit and each load.

    Limits with their value, limit in force, stage, headroom and forecast;
    each load's state, override, time shed today and next possible action.

    Exits 3 when no daemon is running.
    """
    emit(_call(ctx, "shed.status"), as_json, _print_status)


@shed_group.command("override")
@click.argument("load")
@click.argument("mode", type=click.Choice(["on", "off", "auto"]))
@click.option("--for", "for_s", type=Duration(), default="1h", show_default=True,
              help="How long the override holds: 90s, 15m, 2h, 1d (at most 7d).")
@json_option
@click.pass_context
def override_cmd(ctx: click.Context, load: str, mode: str, for_s: float, as_json: bool) -> None:
    """Force LOAD on or off for a while, or hand it back (auto).

    "on" keeps the load running whatever the limits say, "off" keeps it shed;
    the MQTT command cmd/loadshed/<load>/set does the same.
    """
    result = _call(ctx, "shed.override", load=load, mode=mode, for_s=for_s)

    def human(r: dict[str, Any]) -> None:
        ov = r["override"]
        if ov["mode"] == "auto":
            click.echo(f"{r['load']}: back to automatic (now {r['state']['state']})")
        else:
            click.echo(f"{r['load']}: forced {'on' if ov['mode'] == 'restore' else 'off'} for "
                       f"{format_duration(ov['remaining_s'])} (now {r['state']['state']})")

    emit(result, as_json, human)
