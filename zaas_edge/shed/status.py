"""What ``zaas-edge shed status`` shows: the limits, each load and the next thing that may happen.

Pure: built from the engine's state, the inputs of its last step and the
overrides table, at ``now`` (monotonic s). The figures are the engine's own
(its latest samples, its limit rules, its forecast), so the status says what
the engine sees, not a second opinion.
"""

from __future__ import annotations

__all__ = ["shed_status", "limit_rows", "load_rows", "ShedToday"]

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zaas_edge.rules import limits as lim
from zaas_edge.rules import loads as ld
from zaas_edge.rules.config import LimitConfig, SheddingConfig
from zaas_edge.rules.engine import EngineState
from zaas_edge.rules.model import Inputs, Stage
from zaas_edge.shed.overrides import LoadOverrides


def _r(v: float | None, nd: int = 1) -> float | None:
    return None if v is None or not math.isfinite(v) else round(v, nd)


@dataclass
class ShedToday:
    """Time shed per load since local midnight: the engine's running total minus where it stood then."""

    day: tuple[int, int, int] | None = None
    baseline: dict[str, float] = field(default_factory=dict)

    def roll(self, day: tuple[int, int, int], state: EngineState, now: float) -> None:
        if day != self.day:
            self.day = day
            self.baseline = {k: ld.shed_time(st, now) for k, st in state.loads.items()}

    def today(self, load: str, state: EngineState, now: float) -> float:
        st = state.loads.get(load)
        return 0.0 if st is None else max(0.0, ld.shed_time(st, now) - self.baseline.get(load, 0.0))


def _channels(cfg: SheddingConfig, node: LimitConfig, state: EngineState) -> tuple[float, ...] | None:
    if node.points:
        got = [state.latest.get(p) for p in node.points]
        if any(g is None for g in got):
            return None
        ws = [g.watts for g in got if g is not None]
        return tuple(ws) if node.per_phase else (sum(ws),)
    total = 0.0
    for child in cfg.limits:
        if child.parent == node.id:
            v = _channels(cfg, child, state)
            if v is None:
                return None
            total += sum(v)
    return (total,)


def limit_rows(state: EngineState, inputs: Inputs, now: float) -> dict[str, dict[str, Any]]:
    cfg = state.config
    out: dict[str, dict[str, Any]] = {}
    for node in cfg.limits:
        st = state.limits[node.id]
        limit_w, source = lim.effective_limit(node, inputs)
        measured = _channels(cfg, node, state)
        row: dict[str, Any] = {"kind": node.kind, "limit_w": _r(limit_w), "limit_source": source,
                               "stage": st.stage.value, "value_w": None, "headroom_w": None, "forecast": None,
                               "points": list(node.points), "parent": node.parent, "alarms": sorted(st.alarmed)}
        if measured is not None:
            n = len(measured)
            under = [c for c in cfg.loads if node.id in cfg.ancestors(c.circuit)]
            sheddable = [0.0] * n
            for c in under:
                ls = state.loads[c.id]
                w = ld.power_at(c, ls.learned_w, ls.level)
                for i in range(n):
                    sheddable[i] += w if n == 1 else (w / n if c.phase is None else (w if c.phase - 1 == i else 0))
            a = lim.assess(node, st, inputs, now, now + ((inputs.wall_s - now) if inputs.wall_s is not None else 0.0),
                           measured, measured, 0.0, tuple(sheddable), cfg.reaction_s, cfg.linky_slack_s)
            row["value_w"] = _r(sum(measured))
            row["headroom_w"] = _r(min(a.capacity[i] - measured[i] for i in range(n)) if node.kind == "linky"
                                   else min(limit_w / n - measured[i] for i in range(n)))
            row["forecast"] = _r(a.forecast, 3)
            if n > 1:
                row["phases_w"] = [_r(v) for v in measured]
        if st.stage is Stage.BLIND:
            row["headroom_w"] = None
        out[node.id] = row
    return out


def _next_action(state: EngineState, load_id: str, now: float, overrides: LoadOverrides,
                 faults_until: Mapping[str, float]) -> dict[str, Any]:
    cfg = state.config
    c = cfg.load(load_id)
    st = state.loads[load_id]
    full = ld.full_level(c)
    mode = overrides.effective(load_id, now)
    if mode != "auto":
        left = overrides.state(load_id, now)["remaining_s"]
        return {"action": "auto", "in_s": left, "why": f"override {mode} until it expires"}
    if st.fault:
        left = faults_until.get(load_id)
        return {"action": "retry", "in_s": _r(None if left is None else max(0.0, left - now)),
                "why": "the actuator failed; the engine leaves the load alone until the fault is released"}
    if st.level < full:
        if not ld.guard_allows_up(c, st, now):
            return {"action": "restore", "in_s": _r((st.last_down_s or now) + c.min_off_s - now),
                    "why": "min_off"}
        if st.fits_since is not None:
            return {"action": "restore", "in_s": _r(max(0.0, st.fits_since + c.restore_delay_s - now)),
                    "why": "headroom fits; waiting out restore_delay"}
        gain = ld.power_at(c, st.learned_w, full) - ld.power_at(c, st.learned_w, st.level)
        return {"action": "restore", "in_s": None,
                "why": f"when the headroom fits {gain:.0f} W + {cfg.restore_margin_w:.0f} W margin"}
    if not ld.guard_allows_down(c, st, now):
        return {"action": "shed", "in_s": _r((st.last_up_s or now) + c.min_on_s - now), "why": "min_on"}
    return {"action": "shed", "in_s": 0.0, "why": "possible as soon as a limit needs it"}


def load_rows(state: EngineState, now: float, overrides: LoadOverrides, today: ShedToday,
              faults_until: Mapping[str, float]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for c in state.config.loads:
        st = state.loads[c.id]
        full = ld.full_level(c)
        word = "on" if st.level >= full else "off" if st.level <= 0 else "reduced"
        out[c.id] = {
            "state": word, "kind": c.kind, "priority": c.priority, "circuit": c.circuit,
            "level": st.level, "full_level": full, "setpoint": ld.setpoint(c, st.level),
            "power_w": _r(ld.power_at(c, st.learned_w, st.level)), "learned_w": _r(st.learned_w),
            "override": overrides.state(c.id, now), "fault": st.fault, "safe_state": st.safe,
            "shed_today_s": _r(today.today(c.id, state, now)),
            "off_for_s": _r(None if st.off_since is None else now - st.off_since),
            "actuator": c.actuator,
            "next": _next_action(state, c.id, now, overrides, faults_until),
        }
    return out


def shed_status(state: EngineState, inputs: Inputs, now: float, overrides: LoadOverrides, today: ShedToday,
                faults_until: Mapping[str, float], extra: Mapping[str, Any]) -> dict[str, Any]:
    return {"enabled": state.config.enabled, "dry_run": state.config.dry_run,
            "tariff": {"period": inputs.tariff.period, "tempo": inputs.tariff.tempo, "peak": inputs.tariff.peak},
            "limits": limit_rows(state, inputs, now), "loads": load_rows(state, now, overrides, today, faults_until),
            **extra}
