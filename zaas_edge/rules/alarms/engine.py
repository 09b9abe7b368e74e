"""``evaluate(state, inputs, now) -> (state, transitions)``: the alarm rules, pure and deterministic.

One call, in order:

1. the new readings (and the drivers' alarm transitions) feed the tracks of
   the subjects they speak about (:mod:`zaas_edge.rules.alarms.conditions`);
2. every subject is judged: an inactive one whose condition has held for the
   rule's ``delay_s`` becomes a candidate, an active one whose clear
   condition holds (past the hysteresis) clears;
3. flood control: a candidate raised less than ``flap_interval_s`` ago waits
   (so a flapping condition raises at most once per interval); a rule's
   candidates wait ``summary_hold_s`` for others to join them, then, when
   they are ``summary_after`` or more, raise one summary alarm that names
   them all instead of one alarm each; while the summary is active, more
   subjects join it silently, and it clears once the last one has cleared.

Each alarm id is raised once and cleared once: transitions of one id
alternate, and a restart hands the active ones back (:func:`restore`) so they
are neither raised again nor forgotten. No I/O and no clock: ``now`` is
monotonic seconds, the wall and local time come in the inputs.
"""

from __future__ import annotations

__all__ = ["AlarmState", "Lifecycle", "Summary", "initial_state", "evaluate", "restore", "snapshot",
           "alarm_id", "summary_id"]

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from zaas_edge.rules.alarms.conditions import Track, Verdict, feed, fresh_track, judge, subject_of, unit_of
from zaas_edge.rules.alarms.config import AlarmRule, AlarmsSection, is_pattern
from zaas_edge.rules.alarms.model import AlarmInputs, AlarmTransition
from zaas_edge.rules.alarms.text import clear_text, raise_text, summary_text

SUMMARY = "summary"


@lru_cache(maxsize=65536)
def alarm_id(rule: str, subject: str) -> str:
    """The stable id of a rule's alarm for one subject: ``rule.<rule>.<subject>`` (``/`` becomes ``.``)."""
    return f"rule.{rule}.{subject.replace('/', '.')}" if subject else f"rule.{rule}"


def summary_id(rule: str) -> str:
    return f"rule.{rule}.{SUMMARY}"


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """Where one alarm id stands: active or not, since when its condition holds, when it was last raised."""

    rule: str
    subject: str
    active: bool = False
    cond_since: float | None = None
    last_raise_s: float | None = None
    in_summary: bool = False  # active as a member of its rule's summary, not on its own


@dataclass(frozen=True, slots=True)
class Summary:
    rule: str
    active: bool = False
    members: tuple[str, ...] = ()  # subjects
    since_s: float = 0.0
    last_raise_s: float | None = None


@dataclass(frozen=True, slots=True)
class AlarmState:
    config: AlarmsSection
    tracks: Mapping[tuple[str, str], Track] = field(default_factory=dict)
    alarms: Mapping[str, Lifecycle] = field(default_factory=dict)
    summaries: Mapping[str, Summary] = field(default_factory=dict)
    holding: Mapping[str, float] = field(default_factory=dict)  # rule -> since when its candidates wait
    started_s: float | None = None


def initial_state(config: AlarmsSection) -> AlarmState:
    return AlarmState(config=config)


@lru_cache(maxsize=65536)
def _matches(patterns: tuple[str, ...], key: str) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


@lru_cache(maxsize=65536)
def _route(patterns: tuple[tuple[str, ...], ...], point: str) -> tuple[int, ...]:
    """The rules (by index) whose patterns take ``point``: computed once per configuration and point."""
    return tuple(i for i, pats in enumerate(patterns) if pats and _matches(pats, point))


def _timed(rule: AlarmRule) -> bool:
    """Whether the rule's verdicts change with time alone (silence, a flow that never stops, the hour)."""
    return rule.kind in ("stale", "silent", "consumption") or (rule.kind == "leak" and rule.mode == "flow")


def _may_summarise(rule: AlarmRule) -> bool:
    """Whether the rule can ever have ``summary_after`` subjects at once (else its raises never wait)."""
    if rule.summary_after == 0 or rule.derive in ("difference", "sum"):
        return False
    return any(is_pattern(p) for p in _watches(rule)) or len(_watches(rule)) >= rule.summary_after


def _still_watched(rule: AlarmRule, subject: str) -> bool:
    """Whether ``subject`` (restored from before a restart) is one the rule, as configured now, watches."""
    pats = _watches(rule)
    if rule.derive in ("difference", "sum"):
        return subject == ""
    if "/" in subject or (rule.kind == "fault" and rule.mode == "alarm"):
        return _matches(pats, subject)
    return any(fnmatch.fnmatchcase(subject, p.partition("/")[0]) for p in pats)  # a device


def _watches(rule: AlarmRule) -> tuple[str, ...]:
    return tuple(rule.alarms) if rule.kind == "fault" and rule.mode == "alarm" else tuple(rule.points)


class _Eval:
    """The working copy of one call (private): dictionaries copied once, frozen again at the end."""

    def __init__(self, state: AlarmState, inputs: AlarmInputs, now: float) -> None:
        self.cfg = state.config
        self.inp, self.now = inputs, now
        self.tracks = dict(state.tracks)
        self.alarms = dict(state.alarms)
        self.summaries = dict(state.summaries)
        self.holding = dict(state.holding)
        self.started = state.started_s
        self.out: list[AlarmTransition] = []
        self.rules = {r.id: r for r in self.cfg.rules}
        self.touched: set[tuple[str, str]] = set()  # the subjects fed in this call

    def start(self) -> None:
        if self.started is not None:
            return
        self.started = self.now
        for rule in self.cfg.rules:
            if rule.kind == "fault" and rule.mode == "alarm":
                continue
            for p in rule.points:
                if not is_pattern(p):
                    self.tracks.setdefault((rule.id, subject_of(rule, p)), fresh_track(rule, self.now))
        known = {r.id for r in self.cfg.rules}
        for aid, lc in list(self.alarms.items()):  # restored, of a rule since removed or changed
            rule = self.rules.get(lc.rule)
            if not lc.active or lc.in_summary or (rule is not None and _still_watched(rule, lc.subject)):
                continue
            why = (f"alarm rule {lc.rule} removed from the configuration" if rule is None
                   else f"{lc.subject or lc.rule}: no longer watched by alarm rule {lc.rule}")
            self._transition(rule, lc.rule, lc.subject, False, Verdict(False, True), self.now, text=why)
            del self.alarms[aid]
        for rid, s in list(self.summaries.items()):
            rule = self.rules.get(rid)
            if rule is not None and s.active:  # members no longer watched leave it (it clears once empty)
                gone = [m for m in s.members if not _still_watched(rule, m)]
                for m in gone:
                    self.alarms.pop(alarm_id(rid, m), None)
                if gone:
                    self.summaries[rid] = replace(s, members=tuple(m for m in s.members if m not in gone))
            if rid not in known and s.active:
                self.out.append(AlarmTransition(summary_id(rid), rid, "", SUMMARY, False, "info",
                                                f"alarm rule {rid} removed from the configuration", "", s.since_s,
                                                members=s.members))
                del self.summaries[rid]

    def intake(self) -> None:
        rules = self.cfg.rules
        patterns = tuple(() if r.kind == "fault" and r.mode == "alarm" else tuple(r.points) for r in rules)
        tracks, now, touched = self.tracks, self.now, self.touched
        readings = self.inp.readings
        if len(readings) > 1:
            readings = tuple(sorted(readings, key=lambda x: (x.wall_ns, x.point)))
        for r in readings:
            for i in _route(patterns, r.point):
                rule = rules[i]
                key = (rule.id, subject_of(rule, r.point))
                tracks[key] = feed(rule, tracks.get(key) or fresh_track(rule, now), r, now)
                touched.add(key)
        for aid, active in sorted(self.inp.device_alarms.items()):
            for rule in rules:
                if rule.kind == "fault" and rule.mode == "alarm" and _matches(tuple(rule.alarms), aid):
                    key = (rule.id, aid)
                    self.tracks[key] = (self.tracks.get(key) or Track())._replace(heard=True, flag=bool(active))
                    self.touched.add(key)

    def judge_all(self) -> None:
        by_rule: dict[str, list[tuple[str, Verdict]]] = {}
        timed = {r.id for r in self.cfg.rules if _timed(r)}
        touched, alarms = self.touched, self.alarms
        for key, t in list(self.tracks.items()):
            rid, subject = key
            rule = self.rules.get(rid)
            if rule is None:
                del self.tracks[key]
                continue
            if rid not in timed and key not in touched:
                lc = alarms.get(alarm_id(rid, subject))
                if lc is None or lc.cond_since is None:
                    continue  # its verdict depends on its track alone, unchanged since the last call
            verdict, t2 = judge(rule, subject, t, self.now, self.inp)
            if t2 is not t:
                self.tracks[(rid, subject)] = t2
            by_rule.setdefault(rid, []).append((subject, verdict))
        for rule in self.cfg.rules:
            self._rule(rule, by_rule.get(rule.id, []))

    def _rule(self, rule: AlarmRule, verdicts: list[tuple[str, Verdict]]) -> None:
        now = self.now
        candidates: list[tuple[str, Verdict]] = []
        summary = self.summaries.get(rule.id)
        alarms = self.alarms
        for subject, v in verdicts:
            aid = alarm_id(rule.id, subject)
            lc = alarms.get(aid)
            if lc is None:
                if not v.trips:
                    continue  # the common case, every tick for every quiet subject: nothing to remember
                lc = Lifecycle(rule.id, subject)
            elif lc.cond_since is None and not lc.active and not v.trips:
                continue  # quiet, remembered only for its last raise (flap control)
            if lc.active:
                if v.clears:
                    if lc.in_summary and summary is not None:
                        summary = replace(summary, members=tuple(m for m in summary.members if m != subject))
                    else:
                        self._transition(rule, rule.id, subject, False, v, lc.cond_since or now)
                    lc = replace(lc, active=False, in_summary=False, cond_since=None)
            elif v.trips:
                lc = replace(lc, cond_since=lc.cond_since if lc.cond_since is not None else now)
                if now - lc.cond_since >= rule.delay_s and self._may_raise(lc.last_raise_s):  # type: ignore[operator]
                    candidates.append((subject, v))
            elif lc.cond_since is not None:
                lc = replace(lc, cond_since=None)
            if lc.active or lc.cond_since is not None or lc.last_raise_s is not None:
                self.alarms[aid] = lc  # the last raise is kept for flap control
            else:
                self.alarms.pop(aid, None)
        if summary is not None and summary.active and not candidates and not summary.members:
            self.out.append(AlarmTransition(summary_id(rule.id), rule.id, rule.kind, SUMMARY, False, "info",
                                            clear_text(rule, SUMMARY, None), rule.action, summary.since_s))
            summary = replace(summary, active=False, members=())
        if candidates:
            summary = self._raise(rule, candidates, summary)
        else:
            self.holding.pop(rule.id, None)
        if summary is not None:
            self.summaries[rule.id] = summary

    def _may_raise(self, last_raise_s: float | None) -> bool:
        return last_raise_s is None or self.now - last_raise_s >= self.cfg.flap_interval_s

    def _raise(self, rule: AlarmRule, candidates: list[tuple[str, Verdict]], summary: Summary | None) -> Summary | None:
        now = self.now
        if summary is not None and summary.active:  # joining an active summary is no new raise
            for subject, _v in candidates:
                self._activate(rule, subject, now, in_summary=True)
            return replace(summary, members=tuple(sorted({*summary.members, *(s for s, _ in candidates)})))
        if _may_summarise(rule):
            since = self.holding.setdefault(rule.id, now)
            if now - since < self.cfg.summary_hold_s:
                return summary  # wait for others to join
        self.holding.pop(rule.id, None)
        last = summary.last_raise_s if summary is not None else None
        if _may_summarise(rule) and rule.summary_after <= len(candidates):
            if not self._may_raise(last):
                self.holding[rule.id] = self.holding.get(rule.id, now)
                return summary  # the summary flaps: it waits for its interval, its members with it
            members = tuple(sorted(s for s, _ in candidates))
            for subject in members:
                self._activate(rule, subject, now, in_summary=True)
            began = {s: v.since_s for s, v in candidates}
            since = min(began[s] if began[s] is not None else (self.alarms[alarm_id(rule.id, s)].cond_since or now)
                        for s in members)
            self.out.append(AlarmTransition(summary_id(rule.id), rule.id, rule.kind, SUMMARY, True, rule.severity,
                                            summary_text(rule, members), rule.action, since, members=members))
            return Summary(rule.id, True, members, since, now)
        for subject, v in candidates:
            lc = self._activate(rule, subject, now, in_summary=False)
            self._transition(rule, rule.id, subject, True, v, v.since_s if v.since_s is not None
                             else lc.cond_since or now)
        return summary

    def _activate(self, rule: AlarmRule, subject: str, now: float, *, in_summary: bool) -> Lifecycle:
        aid = alarm_id(rule.id, subject)
        lc = replace(self.alarms.get(aid) or Lifecycle(rule.id, subject), active=True, in_summary=in_summary,
                     last_raise_s=now if not in_summary else (self.alarms[aid].last_raise_s if aid in self.alarms
                                                              else None))
        self.alarms[aid] = lc
        return lc

    def _transition(self, rule: AlarmRule | None, rid: str, subject: str, active: bool, v: Verdict,
                    since_s: float, text: str | None = None) -> None:
        t = self.tracks.get((rid, subject))
        if text is None and rule is not None:
            text = raise_text(rule, subject, v, t) if active else clear_text(rule, subject, v)
        point = subject if "/" in subject else None
        device = subject.partition("/")[0] if point else (subject if rule is not None and rule.kind in
                                                           ("silent", "fault") and rule.mode != "alarm" else None)
        if rule is not None and rule.derive in ("difference", "sum"):
            point, device = None, None
        if rule is not None and rule.kind == "fault" and rule.mode == "alarm" and subject.startswith("device."):
            device = subject[len("device."):].rpartition(".")[0] or None  # device.<id>.<what>
        self.out.append(AlarmTransition(
            alarm_id(rid, subject), rid, rule.kind if rule else "", subject, active,
            rule.severity if rule and active else "info", text or "", rule.action if rule else "", since_s,
            v.value, v.threshold, unit_of(rule, t) if rule is not None else "", device, point))

    def freeze(self, state: AlarmState) -> AlarmState:
        return replace(state, tracks=self.tracks, alarms=self.alarms, summaries=self.summaries,
                       holding=self.holding, started_s=self.started)


def evaluate(state: AlarmState, inputs: AlarmInputs, now: float) -> tuple[AlarmState, list[AlarmTransition]]:
    """One evaluation: the new state and the transitions to turn into alarms, in order."""
    ev = _Eval(state, inputs, now)
    ev.start()
    ev.intake()
    ev.judge_all()
    return ev.freeze(state), ev.out


def active_ids(state: AlarmState) -> set[str]:
    """Every alarm id the rules hold raised now (a summary's members count under the summary)."""
    out = {aid for aid, lc in state.alarms.items() if lc.active and not lc.in_summary}
    out |= {summary_id(r) for r, s in state.summaries.items() if s.active}
    return out


def snapshot(state: AlarmState) -> dict[str, Any]:
    """What must survive a restart: the active alarms and summaries (small, JSON)."""
    return {
        "v": 1,
        "alarms": {aid: {"rule": lc.rule, "subject": lc.subject, "in_summary": lc.in_summary}
                   for aid, lc in sorted(state.alarms.items()) if lc.active},
        "summaries": {r: list(s.members) for r, s in sorted(state.summaries.items()) if s.active},
    }


def restore(state: AlarmState, doc: Mapping[str, Any] | None, now: float) -> AlarmState:
    """The state with the alarms active before a restart active again, counted as raised at ``now``.

    Each is then judged on what comes: it clears once its clear condition is
    seen (a fresh reading of a stale point, a value back under its threshold),
    and at once when its rule is no longer configured. A damaged document
    restores nothing rather than failing the start.
    """
    if not isinstance(doc, Mapping) or doc.get("v") != 1:
        return state
    alarms = dict(state.alarms)
    summaries = dict(state.summaries)
    try:
        for aid, a in dict(doc.get("alarms") or {}).items():
            alarms[str(aid)] = Lifecycle(str(a["rule"]), str(a["subject"]), True, None, now, bool(a["in_summary"]))
        for rid, members in dict(doc.get("summaries") or {}).items():
            summaries[str(rid)] = Summary(str(rid), True, tuple(str(m) for m in members), now, now)
    except (KeyError, TypeError, ValueError):
        return state
    return replace(state, alarms=alarms, summaries=summaries)


def subjects_of(rule: AlarmRule, keys: Iterable[str]) -> set[str]:
    """The subjects ``rule`` has among ``keys`` (point keys), for tools that list what a rule watches."""
    pats = _watches(rule)
    return {subject_of(rule, k) for k in keys if _matches(pats, k)}
