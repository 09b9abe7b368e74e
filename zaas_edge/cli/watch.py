"""What ``zaas-edge status --watch`` draws: one screen for a technician, from the daemon's status.

Pure: statuses in, lines out (``daemon_cmd.status_cmd`` asks the daemon, times
the redraws and writes them). One screen answers what a technician standing at
the cabinet asks: is every driver and device up, how many readings per second
come in, does the backlog drain, are MQTT and the platform reached, what does
load shedding do (each limit's measured power against it, the loads shed),
and which alarms are active. The status comes from a daemon that may be older
or newer than this command: a figure missing or of the wrong type shows as
``-``, never as a crash.
"""

from __future__ import annotations

__all__ = ["Rates", "RateMeter", "screen", "down_screen", "fit", "mqtt_line", "ERASE_LINE", "HOME",
           "ERASE_BELOW"]

import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from zaas_edge.cli.output import format_bytes, format_duration, table

HOME = "\033[H"  # cursor to the top left: the next frame overwrites the last, without flicker
ERASE_LINE = "\033[K"  # the rest of a line the new frame's line is shorter than
ERASE_BELOW = "\033[J"  # the lines a shorter frame leaves below it

MAX_LISTED = 6  # offline devices, shed loads or alarms listed before "and N more"
LANES = ("reading", "upload", "event", "alarm")
_SEVERITY_RANK = {"critical": 0, "error": 1, "warning": 2, "notice": 3, "info": 4, "debug": 5}

Status = Mapping[str, object]


def _map(v: object) -> Mapping[str, object]:
    return v if isinstance(v, Mapping) else {}


def _num(v: object) -> float | None:
    """A finite number, or None (a daemon's figure missing, of another type, infinite or too large)."""
    if not isinstance(v, int | float) or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def _text(v: object, width: int = 60) -> str:
    lines = str(v).splitlines() if v is not None else []
    return lines[0][:width] if lines else ""


def _clock(wall: float | None) -> str:
    if wall is None:
        return "-"
    try:
        return time.strftime("%H:%M:%S", time.localtime(wall))
    except (OverflowError, OSError, ValueError):  # a time no calendar holds
        return "?"


def _ago(seconds: float | None) -> str:
    return "-" if seconds is None or seconds < 0 else f"{format_duration(seconds)} ago"


@dataclass(frozen=True, slots=True)
class Rates:
    """Readings per second, in all and per driver; None before there is anything to divide."""

    total: float | None = None
    drivers: Mapping[str, float] = field(default_factory=dict)


class RateMeter:
    """Readings per second over the last ``window_s`` seconds of statuses (the daemon counts, the view
    divides). A bus read every few seconds would read 0 and then 10 per second between two redraws
    2 s apart; over 10 s it reads what it delivers.

    The first status (or the first after the daemon restarted: another pid, or counters that went
    down) gives the average since the daemon started.
    """

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self._seen: deque[tuple[float, object, float, dict[str, float]]] = deque()

    def update(self, mono: float, st: Status) -> Rates:
        daemon = _map(st.get("daemon"))
        pid = daemon.get("pid")
        total = _num(st.get("readings_total"))
        drivers = {str(d): n for d, v in _map(st.get("drivers")).items()
                   if (n := _num(_map(v).get("readings"))) is not None}
        seen = self._seen
        if seen and (seen[-1][1] != pid or total is None or total < seen[-1][2] or mono <= seen[-1][0]):
            seen.clear()  # another daemon (or a clock that went back): start over
        seen.append((mono, pid, total if total is not None else 0.0, drivers))
        while len(seen) > 2 and mono - seen[1][0] >= self.window_s:
            seen.popleft()
        if len(seen) >= 2 and total is not None:
            t0, _, total0, drivers0 = seen[0]
            dt = mono - t0
            return Rates((total - total0) / dt, {d: (n - drivers0.get(d, n)) / dt for d, n in drivers.items()
                                                 if n >= drivers0.get(d, n)})
        uptime = _num(daemon.get("uptime_s"))
        if uptime is None or uptime <= 0:
            return Rates(None, {})
        return Rates(None if total is None else total / uptime, {d: n / uptime for d, n in drivers.items()})


def _rate(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def mqtt_line(mqtt: object) -> str:
    """MQTT in one line: connected to whom, or why not and when it tries again."""
    m = _map(mqtt)
    if not m:
        return "mqtt: not configured"
    if m.get("connected"):
        return f"mqtt: connected to {m.get('broker')}  published {m.get('published', 0)}"
    retry = _num(m.get("retry_in_s"))
    parts = [f"mqtt: NOT connected ({m.get('broker') or 'no broker yet'})"]
    if m.get("last_error"):
        parts.append(_text(m["last_error"], 100))
    if retry is not None:
        parts.append(f"next try in {format_duration(retry)}")
    return "; ".join(parts)


def _sync_line(sync: object, now: float) -> str:
    s = _map(sync)
    if not s:
        return "sync: not configured"
    lanes = [_map(v) for v in _map(s.get("lanes")).values()]
    successes = [w for v in lanes if (w := _num(v.get("last_success"))) is not None]
    errors = sorted(((_num(v.get("last_error_at")) or 0.0, v.get("last_error")) for v in lanes if v.get("last_error")),
                    key=lambda e: e[0])
    last = _ago(now - max(successes)) if successes else "never"
    line = f"sync: {s.get('state', '?')}  {s.get('url') or ''}  last success {last}"
    if errors:
        line += f"; last error: {_text(errors[-1][1], 80)}"
    if isinstance(s.get("alarms"), list) and s["alarms"]:
        line += "; " + ", ".join(str(a) for a in s["alarms"])
    return line


def _devices(drivers: Mapping[str, object]) -> tuple[int, int, list[str]]:
    """(online, known, a line per offline device)."""
    online = known = 0
    offline: list[str] = []
    for driver_id, v in drivers.items():
        for device_id, h in sorted(_map(_map(v).get("devices")).items()):
            h = _map(h)
            if h.get("online") is None:
                continue
            known += 1
            if h.get("online") is True:
                online += 1
                continue
            why = _text(h.get("bus_down") or h.get("last_error"), 60)
            seen = _num(h.get("last_seen_s"))
            offline.append(f"  OFFLINE {driver_id}/{device_id}: last seen {_ago(seen) if seen is not None else 'never'}"
                           + (f", {why}" if why else ""))
    return online, known, offline


def _listed(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_LISTED:
        return lines
    return lines[:MAX_LISTED - 1] + [f"  ... and {len(lines) - MAX_LISTED + 1} more"]


def _w(v: object) -> str:
    n = _num(v)
    return "-" if n is None else f"{n:.0f} W"


def _shedding(st: Status, shed: Status | None) -> list[str]:
    """Each limit's measured power against it and the loads shed: from ``shed.status`` when the daemon
    answered it, else from the summary inside ``status``."""
    summary = _map(_map(st.get("services")).get("shed"))
    if shed is None and not summary:
        return ["shedding: not configured"]
    src = shed if shed is not None else summary
    head = f"shedding: {src.get('state', '?')}" + ("  (dry run: nothing is switched)" if src.get("dry_run") else "")
    lines = [head]
    if shed is not None:
        for lid, r in _map(shed.get("limits")).items():
            r = _map(r)
            lines.append(f"  limit {lid}: {_w(r.get('value_w'))} of {_w(r.get('limit_w'))} ({r.get('stage', '?')}), "
                         f"headroom {_w(r.get('headroom_w'))}")
        shed_loads = []
        for load, r in _map(shed.get("loads")).items():
            r = _map(r)
            if r.get("state") in (None, "on") and not r.get("fault"):
                continue
            level, full = _num(r.get("level")), _num(r.get("full_level"))
            lvl = f" {level:g}/{full:g}" if level is not None and full is not None else ""
            shed_loads.append(f"{load} {r.get('state')}{lvl}" + (" FAULT" if r.get("fault") else ""))
        lines.append("  shed: " + (", ".join(shed_loads) if shed_loads else "none"))
    else:
        for lid, stage in _map(summary.get("stages")).items():
            lines.append(f"  limit {lid}: {stage}")
        loads = summary.get("shed")
        lines.append("  shed: " + (", ".join(map(str, loads)) if isinstance(loads, list) and loads else "none"))
    if src.get("last_error"):
        lines.append(f"  last error: {_text(src['last_error'], 100)}")
    return lines


def _alarms(st: Status) -> list[str]:
    alarms = {str(k): _map(a) for k, a in _map(st.get("alarms")).items()}
    if not alarms:
        return ["alarms: none active"]
    ordered = sorted(alarms.items(), key=lambda kv: (_SEVERITY_RANK.get(str(kv[1].get("severity")), 9), kv[0]))
    rows = [f"  {str(a.get('severity', '?')).upper():8s} {k}  since {_clock(_num(a.get('since')))}  "
            f"{_text(a.get('text'), 100)}" for k, a in ordered]
    return [f"alarms: {len(alarms)} active", *_listed(rows)]


def screen(st: Status, shed: Status | None, rates: Rates, now: float) -> list[str]:
    """The whole view of a running daemon at wall time ``now``: status, ``shed.status`` (None when the
    daemon has no load shedding or did not answer it) and the rates from a :class:`RateMeter`."""
    d = _map(st.get("daemon"))
    drivers = {str(k): _map(v) for k, v in _map(st.get("drivers")).items()}
    running = sum(1 for v in drivers.values() if v.get("state") == "running")
    online, known, offline = _devices(drivers)
    clock = "synchronised" if d.get("clock_synced") else "NOT synchronised"
    lines = [f"zaas-edge {d.get('gateway', '?')} at {d.get('site', '?')}   {_clock(now)}   "
             f"daemon pid {d.get('pid', '?')}, up {format_duration(_num(d.get('uptime_s')))}, "
             f"version {d.get('version', '?')}",
             f"clock {clock}   drivers {running}/{len(drivers)} running   devices {online}/{known} online   "
             f"{_rate(rates.total)} readings/s", ""]
    rows = []
    for driver_id, v in drivers.items():
        devs = [_map(h) for h in _map(v.get("devices")).values()]
        devs = [h for h in devs if h.get("online") is not None]
        up = sum(1 for h in devs if h.get("online") is True)
        rows.append((driver_id, v.get("type", "?"), v.get("state", "?"), f"{up}/{len(devs)}" if devs else "-",
                     _rate(rates.drivers.get(driver_id)), _ago(_num(v.get("last_reading_age_s"))),
                     _text(v.get("last_error"), 50)))
    if rows:
        lines += table(["driver", "type", "state", "online", "readings/s", "last reading", "last error"],
                       rows).splitlines()
    lines += _listed(offline)
    lines.append("")
    store = _map(st.get("store"))
    backlog = _map(st.get("backlog")) or {k: _map(v).get("backlog") for k, v in _map(store.get("lanes")).items()}
    state = "DEGRADED (in-memory ring)" if store.get("degraded") else "ok"
    size = _num(store.get("file_bytes"))
    cap = _num(store.get("cap_bytes"))
    lines.append("backlog: " + "  ".join(f"{lane} {_num(backlog.get(lane)) or 0:.0f}" for lane in LANES)
                 + f"   store {state}, {format_bytes(size)}" + (f" of {format_bytes(cap)}" if cap else ""))
    lines.append(mqtt_line(st.get("mqtt")))
    lines.append(_sync_line(st.get("sync"), now))
    lines.append("")
    lines += _shedding(st, shed)
    lines.append("")
    lines += _alarms(st)
    return lines


def down_screen(since: float, reason: str, now: float, last_seen: float | None = None) -> list[str]:
    """The view while no daemon answers: since when, why, and that it keeps waiting for one."""
    seen = f"; last answered at {_clock(last_seen)}" if last_seen is not None else ""
    return [f"zaas-edge   {_clock(now)}   daemon not answering since {_clock(since)} "
            f"({format_duration(max(0.0, now - since))}): {_text(reason, 120)}{seen}",
            "waiting for it to answer (Ctrl-C quits)"]


def fit(lines: Sequence[str], columns: int, rows: int) -> list[str]:
    """``lines`` cut to a terminal of ``columns`` x ``rows``: a wrapped line would push the top off the screen."""
    columns, rows = max(columns, 20), max(rows, 3)
    out = [line if len(line) <= columns else line[:columns - 1] + "…" for line in lines]
    if len(out) > rows - 1:
        more = len(out) - (rows - 2)
        out = out[:rows - 2] + [f"... {more} more lines (a taller terminal shows them)"[:columns]]
    return out
