"""What an alarm says, for people: one line made from the rule, its subject and the figures that decided it.

A rule's own ``text`` replaces the opening words; the figures always follow,
so an incident opened from the line alone still says how far off it was.
"""

from __future__ import annotations

__all__ = ["raise_text", "clear_text", "summary_text", "duration"]

from zaas_edge.rules.alarms.conditions import Track, Verdict
from zaas_edge.rules.alarms.config import AlarmRule

_LIST = 8  # subjects named in a summary's text (the data carries them all)


def duration(seconds: float) -> str:
    s = max(0.0, seconds)
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def _fig(v: float | None, unit: str = "") -> str:
    if v is None:
        return "?"
    return f"{v:.6g}{' ' + unit if unit else ''}"


def _what(rule: AlarmRule, subject: str) -> str:
    return subject or " - ".join(rule.points) if rule.derive == "difference" else (subject or " + ".join(rule.points))


def raise_text(rule: AlarmRule, subject: str, v: Verdict, t: Track | None) -> str:
    unit = t.unit if t else ""
    who = _what(rule, subject)
    head = f"{rule.text}: {who}" if rule.text else who
    k = rule.kind
    if k in ("threshold", "battery"):
        per = "/h" if rule.derive == "rate" else ""
        side = "above" if rule.above is not None and v.threshold == rule.above else "below"
        word = "battery low, " if k == "battery" else ""
        return f"{head}: {word}{_fig(v.value, unit + per)} {side} {_fig(v.threshold, unit + per)}"
    if k == "stale":
        return f"{head}: no fresh reading for {duration(v.value or 0)} (limit {duration(rule.after_s)})"
    if k == "silent":
        return (f"{head}: not heard for {duration(v.value or 0)}, expected every {duration(rule.interval_s)}")
    if k == "leak":
        if rule.mode == "detector":
            return f"{head}: leak detected"
        return f"{head}: water flowing without a stop, {v.detail} (possible hidden leak)"
    if k == "consumption":
        usual = f", {v.detail}" if v.detail else ""
        return f"{head}: {_fig(v.value, unit)} used this hour, above {_fig(v.threshold, unit)}{usual}"
    if k == "fault":
        if rule.mode == "quality":
            return f"{head}: the meter reports an error in its readings"
        if rule.mode == "alarm":
            return f"{head}: reported by the meter"
        return f"{head}: fault flag set ({_fig(v.value)})"
    return head


def clear_text(rule: AlarmRule, subject: str, v: Verdict | None) -> str:
    who = "all back to normal" if subject == "summary" else _what(rule, subject) + ": back to normal"
    head = f"{rule.text}: " if rule.text else ""
    fig = f" ({_fig(v.value)})" if v is not None and v.value is not None and rule.kind in ("threshold", "battery",
                                                                                          "consumption") else ""
    return f"{head}{who}{fig}"


def summary_text(rule: AlarmRule, members: tuple[str, ...]) -> str:
    names = ", ".join(members[:_LIST]) + (f" and {len(members) - _LIST} more" if len(members) > _LIST else "")
    head = rule.text or f"rule {rule.id} ({rule.kind})"
    return f"{head}: {len(members)} at once: {names}"
