"""A scenario file read into plain values (pure: text in, :class:`ScenarioSpec` out).

A field team writes what happens to a building and what must still hold, in
scenario time; nothing here starts a process. The format (the README's
*Scenario files* section has an example of each event)::

    name = "uplink-2h"
    description = "the uplink is down for two hours"
    building = "demo"                # a building of hil.buildings
    without = ["ble"]                # buses of it left out (ids: switchboard, rs485, loads, mbus, lora, linky, ble)
    scale = 240                      # scenario seconds per real second (--scale overrides)
    duration = "3h"                  # scenario time played before the end checks
    seed = 7                         # for random moments and garbage bytes

    [config]                         # merged into the daemon's generated configuration
    store = { max_size_mb = 8 }

    [[timeline]]
    at = "30m"
    event = "uplink_down"            # see EVENTS

    [expect]
    lost = 0                         # the default: every committed reading at the central exactly once
    duplicated = 0
    linky_trips = 0
    alarms_raised = ["modbus.device.hvac"]
    alarms_cleared = ["modbus.device.hvac"]
    shed_at_least = 1
    restore_at_least = 1
    retained = [{ topic = "zaas/demo-park/gw-demo/status", contains = "online" }]

Bad input is refused with :class:`SpecError` naming the file, the entry and
what is expected: a typo in an event's name must not become a scenario that
silently tests nothing.
"""

from __future__ import annotations

__all__ = ["EVENTS", "Event", "Expect", "Retained", "ScenarioSpec", "SpecError", "duration_s", "load_spec",
           "parse_spec"]

import math
import random
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# event name -> (required parameters, optional parameters)
EVENTS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "load_step": (frozenset({"base_w"}), frozenset()),  # the plant's base load from now on
    "uplink_down": (frozenset(), frozenset({"mode"})),  # fault proxy: drop (refused) or blackhole (dead route)
    "uplink_up": (frozenset(), frozenset()),
    "meter_unplugged": (frozenset({"device"}), frozenset()),  # a Modbus unit or an M-Bus meter stops answering
    "meter_back": (frozenset({"device"}), frozenset()),
    "broker_restart": (frozenset(), frozenset({"down"})),  # mosquitto stopped, started again on its port
    "kill_daemon": (frozenset(), frozenset({"restart_after"})),  # SIGKILL, then started again as systemd would
    "garbage": (frozenset(), frozenset({"bus", "bytes"})),  # random bytes on a bus (default: every bus)
    "ntp_sync": (frozenset(), frozenset()),  # the wall clock jumps to the true time and is synchronised
    "tempo": (frozenset({"colour"}), frozenset()),  # the Linky's Tempo colour of today
}

_DURATION = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*(ms|[smhd]?)\s*$")
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|[smhd])")
_PARTS = re.compile(r"^(?:\s*\d+(?:\.\d+)?\s*(?:ms|[smhd]))+\s*$")
_UNIT_S = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_TOP = {"name", "description", "building", "without", "scale", "duration", "seed", "config", "base_config",
        "timeline", "expect", "clock", "drain", "kill_daemon_random", "report", "prefill_mb"}
_EXPECT = {"lost", "duplicated", "linky_trips", "alarms_raised", "alarms_cleared", "alarms_not_raised",
           "shed_at_least", "restore_at_least", "retained", "delivered_at_least", "daemon_restarts",
           "cap_reached"}


class SpecError(ValueError):
    """The scenario file is not one the runner can play (the message says where and why)."""


def duration_s(value: object, what: str = "duration") -> float:
    """``90s``, ``15m``, ``2h30m``, ``1d``, ``250ms`` or a number of seconds, to seconds (>= 0)."""
    if isinstance(value, bool):
        raise SpecError(f"{what}: expected a duration such as 90s, 15m or 2h, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    elif isinstance(value, str) and _PARTS.match(value):
        seconds = sum(float(n) * _UNIT_S[u] for n, u in _PART.findall(value))
    else:
        raise SpecError(f"{what}: expected a duration such as 90s, 15m or 2h, got {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise SpecError(f"{what}: a duration must be a finite number of seconds, at least 0, got {value!r}")
    return seconds


@dataclass(frozen=True, slots=True)
class Event:
    """One timeline entry: ``kind`` at scenario second ``at_s`` with its parameters."""

    at_s: float
    kind: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Retained:
    """A retained MQTT message expected at the end: on ``topic``, its payload containing ``contains``."""

    topic: str
    contains: str = ""


@dataclass(frozen=True, slots=True)
class Expect:
    lost: int = 0
    duplicated: int = 0
    linky_trips: int | None = 0  # None: not judged (a building without a Linky)
    alarms_raised: tuple[str, ...] = ()
    alarms_cleared: tuple[str, ...] = ()
    alarms_not_raised: tuple[str, ...] = ()
    shed_at_least: int = 0
    restore_at_least: int = 0
    retained: tuple[Retained, ...] = ()
    delivered_at_least: int = 1  # a run that delivered nothing proves nothing
    daemon_restarts: int | None = None  # None: as many as the timeline's kills
    cap_reached: bool = False  # the store's size cap dropped rows (acknowledged ones, if nothing is lost)


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    name: str
    description: str
    building: str
    duration_s: float
    scale: float = 1.0
    seed: int = 0
    without: tuple[str, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)
    base_config: str = "config/demo.toml"  # relative to the repository
    timeline: tuple[Event, ...] = ()
    expect: Expect = Expect()
    clock_behind_s: float = 0.0  # the wall clock starts this far behind, unsynchronised, until ntp_sync
    drain_s: float = 60.0  # real seconds allowed at the end for the backlog to reach the central
    power_point: str = "board/power"  # the chart's main meter
    prefill_mb: float = 0.0  # the store holds this much history before the first start (to meet its cap soon)
    path: str = ""

    def kills(self) -> int:
        return sum(1 for e in self.timeline if e.kind == "kill_daemon")


def _strings(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise SpecError(f"{what}: expected a list of strings, got {value!r}")
    return tuple(value)


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SpecError(f"{what}: expected a whole number at least 0, got {value!r}")
    return value


def _event(i: int, entry: object, duration: float) -> Event:
    where = f"timeline entry {i + 1}"
    if not isinstance(entry, dict):
        raise SpecError(f"{where}: expected a table, got {entry!r}")
    kind = entry.get("event")
    if kind not in EVENTS:
        raise SpecError(f"{where}: event {kind!r} is not one of {', '.join(sorted(EVENTS))}")
    if "at" not in entry:
        raise SpecError(f"{where} ({kind}): 'at' (the scenario time it happens) is required")
    at = duration_s(entry["at"], f"{where} ({kind}) at")
    if at > duration:
        raise SpecError(f"{where} ({kind}): at {at:g} s is after the scenario's end ({duration:g} s)")
    required, optional = EVENTS[kind]
    params = {k: v for k, v in entry.items() if k not in ("at", "event")}
    if missing := required - params.keys():
        raise SpecError(f"{where} ({kind}): missing {', '.join(sorted(missing))}")
    if unknown := params.keys() - required - optional:
        raise SpecError(f"{where} ({kind}): unknown parameter {', '.join(sorted(unknown))} "
                        f"(takes {', '.join(sorted(required | optional)) or 'none'})")
    for k in ("down", "restart_after"):
        if k in params:
            params[k] = duration_s(params[k], f"{where} ({kind}) {k}")
    if kind == "load_step" and (isinstance(params["base_w"], bool) or not isinstance(params["base_w"], int | float)
                                or not 0 <= params["base_w"] < 1e6):
        raise SpecError(f"{where} (load_step): base_w must be a number of watts, got {params['base_w']!r}")
    if kind == "uplink_down" and params.get("mode", "drop") not in ("drop", "blackhole"):
        raise SpecError(f"{where} (uplink_down): mode is drop or blackhole, got {params['mode']!r}")
    if kind == "garbage" and "bytes" in params:
        params["bytes"] = _count(params["bytes"], f"{where} (garbage) bytes")
    if kind == "tempo" and params["colour"] not in ("blue", "white", "red"):
        raise SpecError(f"{where} (tempo): colour is blue, white or red, got {params['colour']!r}")
    return Event(at, kind, params)


def _random_kills(doc: object, duration: float, seed: int) -> list[Event]:
    """``[kill_daemon_random] count = 100, from = "5m", until = "23h"``: kills at seeded random moments."""
    if not isinstance(doc, dict):
        raise SpecError(f"kill_daemon_random: expected a table, got {doc!r}")
    if unknown := doc.keys() - {"count", "from", "until", "restart_after"}:
        raise SpecError(f"kill_daemon_random: unknown key {', '.join(sorted(unknown))}")
    count = _count(doc.get("count", 1), "kill_daemon_random count")
    lo = duration_s(doc.get("from", 0), "kill_daemon_random from")
    hi = duration_s(doc.get("until", duration), "kill_daemon_random until")
    if not lo <= hi <= duration:
        raise SpecError(f"kill_daemon_random: from {lo:g} s to until {hi:g} s must lie within the scenario")
    params = {"restart_after": duration_s(doc["restart_after"], "kill_daemon_random restart_after")} \
        if "restart_after" in doc else {}
    rng = random.Random(seed)
    return [Event(round(rng.uniform(lo, hi), 3), "kill_daemon", dict(params)) for _ in range(count)]


def _expect(doc: object) -> Expect:
    if not isinstance(doc, dict):
        raise SpecError(f"expect: expected a table, got {doc!r}")
    if unknown := doc.keys() - _EXPECT:
        raise SpecError(f"expect: unknown key {', '.join(sorted(unknown))} (known: {', '.join(sorted(_EXPECT))})")
    kw: dict[str, Any] = {}
    for k in ("lost", "duplicated", "shed_at_least", "restore_at_least", "delivered_at_least"):
        if k in doc:
            kw[k] = _count(doc[k], f"expect.{k}")
    for k in ("linky_trips", "daemon_restarts"):
        if k in doc:
            kw[k] = None if doc[k] is False else _count(doc[k], f"expect.{k}")
    if "cap_reached" in doc:
        if not isinstance(doc["cap_reached"], bool):
            raise SpecError(f"expect.cap_reached: true or false, got {doc['cap_reached']!r}")
        kw["cap_reached"] = doc["cap_reached"]
    for k in ("alarms_raised", "alarms_cleared", "alarms_not_raised"):
        if k in doc:
            kw[k] = _strings(doc[k], f"expect.{k}")
    if "retained" in doc:
        items = doc["retained"]
        if not isinstance(items, list):
            raise SpecError("expect.retained: expected a list of { topic = ..., contains = ... }")
        out = []
        for r in items:
            if not isinstance(r, dict) or not isinstance(r.get("topic"), str) or r.keys() - {"topic", "contains"}:
                raise SpecError(f"expect.retained: expected {{ topic = \"...\", contains = \"...\" }}, got {r!r}")
            out.append(Retained(r["topic"], str(r.get("contains", ""))))
        kw["retained"] = tuple(out)
    return Expect(**kw)


def parse_spec(text: str, path: str = "<scenario>") -> ScenarioSpec:
    """The scenario in ``text`` (TOML); SpecError with the file and the reason when it is not one."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not TOML: {exc}") from None
    try:
        return _spec(doc, path)
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from None


def _spec(doc: dict[str, Any], path: str) -> ScenarioSpec:
    if unknown := doc.keys() - _TOP:
        raise SpecError(f"unknown key {', '.join(sorted(unknown))} (known: {', '.join(sorted(_TOP))})")
    for k in ("name", "duration"):
        if k not in doc:
            raise SpecError(f"'{k}' is required")
    name = doc["name"]
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
        raise SpecError(f"name: letters, digits, '.', '_' and '-' (a directory name), got {name!r}")
    duration = duration_s(doc["duration"], "duration")
    if duration <= 0:
        raise SpecError("duration: must be above zero")
    scale = doc.get("scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not (0 < scale <= 100_000):
        raise SpecError(f"scale: scenario seconds per real second, above 0 and at most 100000, got {scale!r}")
    seed = _count(doc.get("seed", 0), "seed")
    config = doc.get("config", {})
    if not isinstance(config, dict):
        raise SpecError("config: expected a table (merged into the daemon's configuration)")
    timeline = [_event(i, e, duration) for i, e in enumerate(doc.get("timeline", []))]
    if "kill_daemon_random" in doc:
        timeline += _random_kills(doc["kill_daemon_random"], duration, seed)
    clock = doc.get("clock", {})
    if not isinstance(clock, dict) or clock.keys() - {"behind"}:
        raise SpecError(f"clock: expected {{ behind = \"30d\" }}, got {clock!r}")
    behind = duration_s(clock.get("behind", 0), "clock.behind")
    if any(e.kind == "ntp_sync" for e in timeline) and behind <= 0:
        raise SpecError("an ntp_sync event needs [clock] behind = ... (how far off the clock starts)")
    report = doc.get("report", {})
    if not isinstance(report, dict) or report.keys() - {"power_point"}:
        raise SpecError(f"report: expected {{ power_point = \"board/power\" }}, got {report!r}")
    prefill = doc.get("prefill_mb", 0.0)
    if isinstance(prefill, bool) or not isinstance(prefill, int | float) or not 0 <= prefill <= 1024:
        raise SpecError(f"prefill_mb: megabytes of history in the store before the start (0 to 1024), "
                        f"got {prefill!r}")
    return ScenarioSpec(
        prefill_mb=float(prefill), name=name, description=str(doc.get("description", "")),
        building=str(doc.get("building", "demo")),
        duration_s=duration, scale=float(scale), seed=seed,
        without=_strings(doc.get("without", []), "without"), config=config,
        base_config=str(doc.get("base_config", "config/demo.toml")),
        timeline=tuple(sorted(timeline, key=lambda e: e.at_s)), expect=_expect(doc.get("expect", {})),
        clock_behind_s=behind, drain_s=duration_s(doc.get("drain", 60), "drain"),
        power_point=str(report.get("power_point", "board/power")), path=path)


def load_spec(path: Path) -> ScenarioSpec:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_spec(text, str(path))
