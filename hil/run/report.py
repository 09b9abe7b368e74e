"""A run's report: the figures (``report.json``), the verdict, and the main meter's chart (``power.png``).

:func:`build` reads the daemon's store (read-only, once the daemon has
stopped) and the central's rows from the :class:`~hil.run.runner.Outcome`,
accounts for the readings (:mod:`hil.run.ledger`) and gathers alarms, shed
actions and trips; :func:`judge` is pure (a report and the expectations in,
the failed checks out, each a sentence); :func:`write` writes both files.
matplotlib is imported by :func:`plot_power` alone: a run without it still
reports and judges.
"""

from __future__ import annotations

__all__ = ["build", "judge", "plot_power", "write"]

import json
from pathlib import Path
from typing import Any

from hil.run.ledger import account
from hil.run.runner import Outcome
from hil.run.spec import Expect
from zaas_edge.model import Lane
from zaas_edge.store import Store

GAP_KIND = "store.gap"
SHED_KINDS = ("shed.shed", "shed.restore", "shed.modulate")


def _limit_of(doc: dict[str, Any], point: str) -> float | None:
    for lim in doc.get("shedding", {}).get("limits", []):
        if point in lim.get("points", []):
            return float(lim["limit_w"])
    return None


def build(outcome: Outcome, config_doc: dict[str, Any]) -> dict[str, Any]:
    """The report of a finished run (the daemon stopped)."""
    spec = outcome.spec
    stored: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    alarms: list[dict[str, Any]] = []
    produced = 0
    counters: dict[str, int] = {}
    store_bytes = 0
    if outcome.store_path.exists():
        with Store(outcome.store_path, readonly=True) as store:
            stored = list(store.export(Lane.READING))
            events = list(store.export(Lane.EVENT))
            alarms = list(store.export(Lane.ALARM))
            row = store.connection.execute("SELECT last_seq FROM lane_seq WHERE lane = 'reading'").fetchone()
            produced = int(row[0]) if row else 0
            counters = store.counters()
            store_bytes = store.used_bytes()
    dropped = sum(int(e["data"].get("count") or 0) for e in events
                  if e["kind"] == GAP_KIND and e["data"].get("lane") in ("reading", "upload"))
    raw_records = [r for r in outcome.central_rows.get("reading", []) if r.get("kind", "raw") == "raw"]
    # readings committed after the end's snapshot were still on their way when the daemon stopped: not judged
    ledger = account(stored, raw_records, produced=produced - outcome.prefilled, dropped=dropped,
                     through=outcome.judged_through, after=outcome.prefilled)
    raised = sorted({a["alarm_id"] for a in alarms if a["active"]})
    cleared = sorted({a["alarm_id"] for a in alarms if not a["active"]})
    active: dict[str, bool] = {}
    for a in alarms:
        active[a["alarm_id"]] = bool(a["active"])
    shed = [{"wall_ns": e["wall_ns"], "mono_ns": e["mono_ns"], "kind": e["kind"].removeprefix("shed."),
             "load": e["data"].get("load"), "level": e["data"].get("level")} for e in events if e["kind"] in SHED_KINDS]
    # on the monotonic clock: a wall clock stepped by NTP would tear the chart apart (one boot: one clock)
    power = [(r["mono_ns"], r["value"]) for r in stored if r["point"] == spec.power_point]
    return {
        "scenario": spec.name, "description": spec.description, "file": spec.path,
        "scale": outcome.factor,
        "duration_s": spec.duration_s, "wall_s": outcome.wall_s,
        "readings": {**ledger.as_dict(), "judged_through_seq": outcome.judged_through,
                     "in_flight_at_end": max(0, produced - outcome.judged_through),
                     "history_before_start": outcome.prefilled},
        "drained": outcome.drained,
        "alarms": {"raised": raised, "cleared": cleared, "active_at_end": sorted(k for k, v in active.items() if v),
                   "transitions": len(alarms)},
        "shed": {"shed": sum(1 for s in shed if s["kind"] == "shed"),
                 "restore": sum(1 for s in shed if s["kind"] == "restore"),
                 "modulate": sum(1 for s in shed if s["kind"] == "modulate"), "actions": shed},
        "linky_trips": outcome.linky_trips,
        "store": {"used_bytes": store_bytes, "counters": counters,
                  "cap_reached": any(k.startswith("dropped") for k in counters)},
        "daemon": {"peak_rss_bytes": outcome.peak_rss_bytes, "cpu_s": outcome.cpu_s,
                   "cpu_share": round(outcome.cpu_s / outcome.wall_s, 4) if outcome.wall_s else None,
                   "restarts": outcome.restarts, "unexpected_exits": outcome.unexpected_exits},
        "timeline": outcome.played,
        "retained": outcome.retained,
        "skipped": outcome.skipped,
        "power": {"point": spec.power_point, "limit_w": _limit_of(config_doc, spec.power_point),
                  "samples": len(power)},
        "_power_series": power,  # for the chart; not written
    }


def judge(report: dict[str, Any], expect: Expect, kills: int) -> list[str]:
    """The expectations ``report`` misses, one sentence each (empty: the scenario passed)."""
    failed: list[str] = []
    r = report["readings"]
    if r["lost"] > expect.lost:
        failed.append(f"lost: {r['lost']} committed readings never reached the central (at most {expect.lost}); "
                      f"e.g. {', '.join(r['missing']) or 'dropped by the store'}")
    if r["duplicated"] > expect.duplicated:
        failed.append(f"duplicated: the central holds {r['duplicated']} readings more than once "
                      f"(at most {expect.duplicated})")
    if r["delivered"] < expect.delivered_at_least:
        failed.append(f"delivered: {r['delivered']} readings at the central, expected at least "
                      f"{expect.delivered_at_least}")
    if not report["drained"]:
        failed.append("drain: the backlog did not reach the central before the end")
    if expect.linky_trips is not None and report["linky_trips"] is not None \
            and report["linky_trips"] > expect.linky_trips:
        failed.append(f"linky: tripped {report['linky_trips']} times (at most {expect.linky_trips})")
    alarms = report["alarms"]
    for a in expect.alarms_raised:
        if a not in alarms["raised"]:
            failed.append(f"alarm {a} was never raised (raised: {', '.join(alarms['raised']) or 'none'})")
    for a in expect.alarms_cleared:
        if a not in alarms["cleared"] or a in alarms["active_at_end"]:
            failed.append(f"alarm {a} was not cleared by the end")
    for a in expect.alarms_not_raised:
        if a in alarms["raised"]:
            failed.append(f"alarm {a} was raised")
    if report["shed"]["shed"] + report["shed"]["modulate"] < expect.shed_at_least:
        failed.append(f"shed: {report['shed']['shed']} sheds and {report['shed']['modulate']} modulations, "
                      f"expected at least {expect.shed_at_least}")
    if report["shed"]["restore"] < expect.restore_at_least:
        failed.append(f"restore: {report['shed']['restore']} restores, expected at least {expect.restore_at_least}")
    for want in expect.retained:
        got = report["retained"].get(want.topic)
        if got is None:
            failed.append(f"retained: nothing retained on {want.topic}")
        elif want.contains not in got:
            failed.append(f"retained: {want.topic} holds {got[:120]!r}, not containing {want.contains!r}")
    if expect.cap_reached and not report["store"]["cap_reached"]:
        failed.append(f"store: its size cap was never reached (counters {report['store']['counters']})")
    restarts = kills if expect.daemon_restarts is None else expect.daemon_restarts
    d = report["daemon"]
    if d["unexpected_exits"]:
        failed.append(f"daemon: exited on its own {len(d['unexpected_exits'])} times "
                      f"(statuses {', '.join(map(str, d['unexpected_exits']))})")
    if d["restarts"] - len(d["unexpected_exits"]) != restarts:
        failed.append(f"daemon: restarted {d['restarts']} times, expected {restarts}")
    for entry in report["timeline"]:
        if "error" in entry:
            failed.append(f"event {entry['event']} at {entry['at_s']:g} s could not be played: {entry['error']}")
    return failed


def plot_power(report: dict[str, Any], path: Path) -> bool:
    """The main meter's power against its limit, shed (down) and restore (up) marks; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    series = report["_power_series"]
    fig, ax = plt.subplots(figsize=(10, 4), dpi=100)
    t0 = series[0][0] if series else 0
    hours = report["duration_s"] > 7200
    per = (3600.0 if hours else 60.0) / report["scale"]  # real seconds per scenario hour (minute)

    def x(mono_ns: int) -> float:
        return (mono_ns - t0) / 1e9 / per

    ax.plot([x(t) for t, _ in series], [v / 1000 for _, v in series], lw=1, label=report["power"]["point"])
    if report["power"]["limit_w"] is not None:
        ax.axhline(report["power"]["limit_w"] / 1000, color="red", ls="--", lw=1, label="limit")
    for a in report["shed"]["actions"]:
        colour = {"shed": "tab:orange", "restore": "tab:green"}.get(a["kind"], "tab:purple")
        ax.axvline(x(a["mono_ns"]), color=colour, lw=0.6, alpha=0.7)
    ax.set_xlabel(f"scenario {'hours' if hours else 'minutes'} since the first reading")
    ax.set_ylabel("kW")
    ax.set_title(f"{report['scenario']}: shed (orange), restore (green), modulate (purple)")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def write(report: dict[str, Any], failed: list[str], directory: Path) -> Path:
    """``report.json`` (with the verdict) and ``power.png`` in ``directory``; the JSON's path."""
    directory.mkdir(parents=True, exist_ok=True)
    doc = {k: v for k, v in report.items() if not k.startswith("_")}
    doc["passed"], doc["failed"] = not failed, failed
    doc["chart"] = "power.png" if plot_power(report, directory / "power.png") else None
    path = directory / "report.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path
