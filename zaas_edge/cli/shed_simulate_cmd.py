"""``zaas-edge shed simulate``: the engine in a closed loop, against a scenario file or the store's history.

With ``--scenario FILE`` the plant is the file's (see
:mod:`zaas_edge.rules.scenario`); with ``--from``/``--to`` it is the
recorded meter, with each shed load's power taken off from the moment the
engine would have shed it (:mod:`zaas_edge.rules.history`). Both print the
same figures. A scenario with a ``[targets]`` table is checked: every missed
target is printed and the exit status is 1.
"""

from __future__ import annotations

__all__ = ["simulate_cmd"]

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from zaas_edge.cli.buffer_cmd import TimeParam
from zaas_edge.cli.output import emit, format_duration, json_option, table
from zaas_edge.cli.shed_cmd import shed_group

if TYPE_CHECKING:
    from zaas_edge.model import Reading
    from zaas_edge.rules.scenario import Scenario
    from zaas_edge.rules.simulate import SimResult

EXIT_TARGETS = 1


@shed_group.command("simulate")
@click.option("--scenario", "scenario_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A scenario file (TOML): the plant, the [shedding] section and optional [targets].")
@click.option("--from", "since", type=TimeParam(), default=None,
              help="Replay the store's history from this time: ISO 8601 or relative (-24h).")
@click.option("--to", "until", type=TimeParam(), default=None, help="... up to this time (default now).")
@click.option("--db", "db", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --from: read this database file instead of the configured store.")
@click.option("--plot", "plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Draw power, limit and the meter's filter with shed and restore marks to this PNG "
                   "(needs matplotlib).")
@json_option
@click.pass_context
def simulate_cmd(ctx: click.Context, scenario_path: Path | None, since: int | None, until: int | None, db: Path | None,
                 plot: Path | None, as_json: bool) -> None:
    """Run the load-shedding engine in a closed loop and print its figures.

    --scenario FILE simulates the file's plant: the meter trips (linky) or
    counts over-run blocks (block), shed loads leave the meter after their
    latency. --from T [--to T] replays the store's history with the
    configuration's [shedding] section instead. A scenario with a [targets]
    table exits 1 naming each target missed.
    """
    if (scenario_path is None) == (since is None):
        raise click.UsageError("give either --scenario FILE or --from TIME [--to TIME]")
    rule_alarms: list[dict[str, object]] | None = None
    if scenario_path is not None:
        from zaas_edge.rules.scenario import load_scenario
        from zaas_edge.rules.simulate import check_targets, simulate

        sc, base = load_scenario(scenario_path)
        result = simulate(sc, base)
        failed = check_targets(result.figures, sc.targets) if "targets" in sc.model_fields_set else []
        name = sc.name
        if sc.alarms is not None and sc.alarms.rules:
            rule_alarms = _scenario_alarms(sc, result)
    else:
        import time

        from zaas_edge.config import load_config
        from zaas_edge.rules.history import history_scenario
        from zaas_edge.rules.simulate import simulate

        assert since is not None
        until_ns = until if until is not None else time.time_ns()
        config = load_config((ctx.find_root().obj or {}).get("config_path")).config
        rows = _read_history(db or config.store_path, config.shedding, since, until_ns)
        sc, base = history_scenario(config.shedding, rows, since, until_ns)
        result = simulate(sc, base)
        failed = []
        name = sc.name
        if config.alarms.rules:  # enabled or not: a rule is tuned on history before it goes live
            rule_alarms = _rule_alarms(db or config.store_path, config.alarms, since, until_ns)
    if plot is not None:
        _plot(result, name, plot)
    doc = _document(name, result, failed)
    if rule_alarms is not None:
        doc["rule_alarms"] = rule_alarms
    emit(doc, as_json, lambda d: _print(d, result))
    if failed:
        for line in failed:
            click.echo(f"zaas-edge: target missed: {line}", err=True)
        sys.exit(EXIT_TARGETS)


def _read_history(db: Path, shedding: object, since_ns: int, until_ns: int) -> dict[str, list[tuple[int, float]]]:
    """``point -> [(wall_ns, value)]`` for every point a limit of ``[shedding]`` reads, from a read-only store."""
    from zaas_edge.errors import ZaasError
    from zaas_edge.model import Lane
    from zaas_edge.rules.config import SheddingConfig
    from zaas_edge.store import Store

    assert isinstance(shedding, SheddingConfig)
    points = sorted({p for lim in shedding.limits for p in lim.points})
    if not points:
        raise click.ClickException("the configuration's [shedding] section has no limit reading a point")
    out: dict[str, list[tuple[int, float]]] = {p: [] for p in points}
    try:
        with Store(db, readonly=True) as store:
            for p in points:
                for row in store.export(Lane.READING, since_ns=since_ns, until_ns=until_ns, point=p):
                    if row["quality"] in ("ok", "estimated"):
                        out[p].append((int(row["wall_ns"]), float(row["value"])))
    except ZaasError as exc:
        raise click.ClickException(str(exc)) from None
    return out


def _rule_alarms(db: Path, section: object, since_ns: int, until_ns: int) -> list[dict[str, object]]:
    """What the configuration's alarm rules would have raised and cleared over the window's readings."""
    from zaas_edge.errors import ZaasError
    from zaas_edge.model import Lane, Quality, Reading
    from zaas_edge.rules.alarms import AlarmsSection
    from zaas_edge.store import Store

    assert isinstance(section, AlarmsSection)
    patterns = sorted({p for rule in section.rules for p in rule.points})
    readings: dict[tuple[str, int], Reading] = {}
    try:
        with Store(db, readonly=True) as store:
            for pattern in patterns:
                for row in store.export(Lane.READING, since_ns=since_ns, until_ns=until_ns, point=pattern):
                    r = Reading(str(row["point"]), float(row["value"]), str(row.get("unit") or ""),
                                int(row["wall_ns"]), 0, "", True, Quality(str(row["quality"])))
                    readings[(r.point, r.wall_ns)] = r
    except ZaasError as exc:
        raise click.ClickException(str(exc)) from None
    return _alarm_rows(section, sorted(readings.values(), key=lambda r: r.wall_ns), since_ns / 1e9, until_ns / 1e9)


def _scenario_alarms(sc: Scenario, result: SimResult) -> list[dict[str, object]]:
    """The scenario's alarm rules over what its meter measured, second by second."""
    from zaas_edge.model import Reading

    assert sc.alarms is not None
    t0 = sc.start.timestamp()
    point = sc.plant.meter.point
    readings = [Reading(point, w, "W", int((t0 + t) * 1e9), int(t * 1e9), "sim", True)
                for t, w in zip(result.series.t, result.series.metered_w, strict=True)]
    return _alarm_rows(sc.alarms, readings, t0, t0 + sc.duration_s)


def _alarm_rows(section: object, readings: list[Reading], t0_s: float, until_s: float) -> list[dict[str, object]]:
    from zaas_edge.alarms.replay import replay
    from zaas_edge.rules.alarms import AlarmsSection

    assert isinstance(section, AlarmsSection)
    return [{"t": round(wall_s - t0_s, 1), "alarm": x.alarm_id, "active": x.active, "severity": str(x.severity),
             "text": x.text, "value": x.value, "threshold": x.threshold}
            for wall_s, x in replay(section, readings, until_s=until_s)]


def _document(name: str, result: SimResult, failed: list[str]) -> dict[str, object]:
    from zaas_edge.rules.simulate import action_dict

    return {"scenario": name, **result.figures.as_dict(), "targets_missed": failed,
            "actions": [action_dict(a) for a in result.actions]}


def _print(doc: dict[str, object], result: SimResult) -> None:
    f = result.figures
    click.echo(f"scenario: {doc['scenario']}")
    rows = [("trips", f.trips), ("overrun blocks", f.overrun_blocks),
            ("max switchings per load per hour", f.max_switchings_per_load_hour),
            ("shed spread (equal priorities)", f"{f.shed_spread:.3f}"),
            ("restore p95", format_duration(f.restore_p95_s)), ("energy shed", f"{f.shed_energy_wh:.0f} Wh"),
            ("comfort violations (max_off)", f.comfort_violations), ("sheds / restores", f"{f.sheds} / {f.restores}"),
            ("alarms raised", ", ".join(f.alarms) or "none")]
    click.echo(table(["figure", "value"], rows))
    click.echo()
    click.echo(table(["load", "shed for", "switchings"],
                     [(lid, format_duration(s), f.switchings[lid]) for lid, s in f.shed_s.items()]))
    moves = [a for a in result.actions if a.action.kind != "alarm"]
    if moves:
        click.echo()
        click.echo(table(["t", "action", "load", "level", "why"],
                         [(format_duration(a.t), a.action.kind, getattr(a.action, "load", ""),
                           f"{getattr(a.action, 'level', 0):g}", a.action.reason.rule) for a in moves]))
    rule_alarms = doc.get("rule_alarms")
    if isinstance(rule_alarms, list):
        click.echo()
        click.echo(f"alarm rules: {sum(1 for a in rule_alarms if a['active'])} raised, "
                   f"{sum(1 for a in rule_alarms if not a['active'])} cleared")
        if rule_alarms:
            click.echo(table(["t", "alarm", "", "value", "threshold", "text"],
                             [(format_duration(a["t"]), a["alarm"], "raised" if a["active"] else "cleared",
                               "-" if a["value"] is None else f"{a['value']:g}",
                               "-" if a["threshold"] is None else f"{a['threshold']:g}", a["text"])
                              for a in rule_alarms]))
    missed = doc["targets_missed"]
    if isinstance(missed, list) and missed:
        click.echo()
        click.echo("targets missed: " + "; ".join(str(m) for m in missed))


def _plot(result: SimResult, name: str, path: Path) -> None:
    """Power and limit (W) above, the meter's filter below, shed (v) and restore (^) marks; Agg, no display."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise click.ClickException("--plot needs matplotlib: .venv/bin/pip install matplotlib") from None
    s = result.series
    fig, (ax1, ax2) = plt.subplots(2, 1, sharex=True, figsize=(11, 6), height_ratios=[3, 1])
    ax1.plot(s.t, s.metered_w, lw=0.8, label="metered W")
    ax1.plot(s.t, s.limit_w, lw=1.0, ls="--", color="red", label="limit W")
    top = max(s.metered_w, default=0.0)
    for kind, marker, color in (("shed", "v", "tab:orange"), ("restore", "^", "tab:green"),
                                ("modulate", "d", "tab:purple")):
        ts = [a.t for a in result.actions if a.action.kind == kind]
        if ts:
            ax1.scatter(ts, [top * 1.02] * len(ts), marker=marker, color=color, label=kind, zorder=3)
    ax1.set_ylabel("W")
    ax1.legend(loc="upper right", fontsize="small")
    ax1.set_title(name)
    ax2.plot(s.t, s.filter, lw=0.8, color="tab:gray")
    if s.filter_name.startswith("Y"):
        ax2.axhline(1.69, color="red", ls="--", lw=0.8)
    ax2.set_ylabel(s.filter_name or "-")
    ax2.set_xlabel("s")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror}") from None
    finally:
        plt.close(fig)
