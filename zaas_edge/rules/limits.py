"""Limit kinds: what each node of the circuits tree allows now, and how far it is from it.

Four kinds, one question (how much must go, on which phase, how soon):

- ``instant``: the power now against the limit; an over-limit must outlast
  each load's dwell unless it reaches the emergency stage.
- ``sliding``: the mean over ``window_s``.
- ``block``: the forecast of the meter's fixed block average (forecast.py),
  shed as late as is safe.
- ``linky``: the meter's own breaking filter (linky_filter.py), shed only when
  it would trip before the next action could take effect.

The limit itself may change: an override from outside wins, else the lowest
of the matching tariff and schedule rules, else the configured value.
"""

from __future__ import annotations

__all__ = [
    "ChannelState", "LimitState", "Assessment", "initial", "channel_count", "effective_limit",
    "capacity_w", "feed", "assess",
]

from collections.abc import Mapping
from dataclasses import dataclass, replace

from zaas_edge.rules import forecast as fc
from zaas_edge.rules import linky_filter as lf
from zaas_edge.rules.config import LimitConfig
from zaas_edge.rules.model import Inputs, Stage

_SAMPLE_GAP_S = 1.0
_EMERGENCY_TRIP = 0.98


@dataclass(frozen=True, slots=True)
class ChannelState:
    """What one phase (or the sum) remembers: the Linky filter, the block so far, the sliding window."""

    filter: lf.FilterState = lf.FilterState()
    block: fc.BlockState = fc.BlockState()
    window: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class LimitState:
    id: str
    channels: tuple[ChannelState, ...]
    over_since: float | None = None
    stage: Stage = Stage.OK
    calm_since: float | None = None
    alarmed: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Assessment:
    """One node now: its stage, the cut needed per channel, what a restore may fill up to, and the figures."""

    limit: str
    stage: Stage
    limit_w: float
    source: str
    measured: tuple[float, ...]
    projected: tuple[float, ...]
    needs: tuple[float, ...]
    capacity: tuple[float, ...]
    dwell: bool
    values: Mapping[str, float]
    forecast: float | None = None


def channel_count(cfg: LimitConfig) -> int:
    return len(cfg.points) if cfg.per_phase else 1


def initial(cfg: LimitConfig) -> LimitState:
    return LimitState(id=cfg.id, channels=(ChannelState(),) * channel_count(cfg))


def effective_limit(cfg: LimitConfig, inputs: Inputs) -> tuple[float, str]:
    """The limit in force and where it comes from (``override``, ``tariff``, ``schedule``, ``config``)."""
    if cfg.id in inputs.limit_overrides:
        return inputs.limit_overrides[cfg.id], "override"
    found: list[tuple[float, str]] = []
    t = inputs.tariff
    for rule in cfg.tariff:
        if ((rule.tempo is None or rule.tempo == t.tempo) and (rule.period is None or rule.period == t.period)
                and (rule.peak is None or rule.peak == t.peak)):
            found.append((rule.limit_w, "tariff"))
    if inputs.local is not None:
        found += [(r.limit_w, "schedule") for r in cfg.schedule if r.covers(inputs.local.weekday, inputs.local.minute)]
    return min(found) if found else (cfg.limit_w, "config")


def capacity_w(cfg: LimitConfig, limit_w: float) -> float:
    """Per channel, the power a restore may fill up to and stay there forever."""
    per = limit_w / channel_count(cfg)
    return cfg.hold_ratio * per if cfg.kind == "linky" else per


def feed(cfg: LimitConfig, st: LimitState, t: float, clock_s: float, values: tuple[float, ...],
         overpower: bool) -> LimitState:
    """One sample of the node's channels at ``t`` (``clock_s`` on the meter's clock) into its accumulators.

    The Linky filter runs on every sample; a raised over-power flag means the
    meter sees more than PCOUP, so the filter is fed at least 1.0 then.
    """
    per = cfg.limit_w / channel_count(cfg)
    chans = []
    for ch, v in zip(st.channels, values, strict=True):
        if cfg.kind == "linky":
            x = max(v / per, 1.0) if overpower else v / per
            ch = replace(ch, filter=lf.advance(ch.filter, x, t))
        elif cfg.kind == "block":
            ch = replace(ch, block=fc.accumulate(ch.block, clock_s, v, cfg.block_s))
        elif cfg.kind == "sliding":
            keep = tuple(p for p in ch.window if p[0] > t - cfg.window_s)
            ch = replace(ch, window=(*keep, (t, v)))
        chans.append(ch)
    return replace(st, channels=tuple(chans))


def assess(cfg: LimitConfig, st: LimitState, inputs: Inputs, now: float, clock_s: float,
           measured: tuple[float, ...], projected: tuple[float, ...], flight_s: float,
           sheddable: tuple[float, ...], reaction_s: float, slack_s: float) -> Assessment:
    """The node's stage and the cut it needs now.

    ``projected`` is ``measured`` with the commands still in flight counted
    as done, ``flight_s`` how long until the last of them lands; ``sheddable``
    what the engine could take off each channel.
    """
    limit_w, source = effective_limit(cfg, inputs)
    n = channel_count(cfg)
    per = limit_w / n
    cap = capacity_w(cfg, limit_w)
    needs: list[float] = []
    stage = Stage.OK
    values: dict[str, float] = {"limit_w": limit_w}
    fcast: float | None = None
    dwell = cfg.kind in ("instant", "sliding")

    def worse(a: Stage, b: Stage) -> Stage:
        order = [Stage.OK, Stage.WARN, Stage.SHED, Stage.EMERGENCY]
        return a if order.index(a) >= order.index(b) else b

    for i, ch in enumerate(st.channels):
        p, pp = measured[i], projected[i]
        need, s = 0.0, Stage.OK
        if cfg.kind == "instant":
            if pp > cfg.emergency_ratio * per:
                s = Stage.EMERGENCY
            elif pp > per:
                s = Stage.SHED
            elif pp > cfg.warn_ratio * per:
                s = Stage.WARN
            need = max(0.0, pp - per)
        elif cfg.kind == "sliding":
            mean = sum(v for _, v in ch.window) / len(ch.window) if ch.window else p
            values[f"mean_w.{i}"] = mean
            fcast = mean if fcast is None else max(fcast, mean)
            if mean > per:
                need = max(0.0, pp + mean - 2 * per)
                s = Stage.EMERGENCY if mean > cfg.emergency_ratio * per else (Stage.SHED if need > 0 else Stage.WARN)
            elif pp > cfg.warn_ratio * per:
                s = Stage.WARN
        elif cfg.kind == "block":
            f = fc.forecast(ch.block, clock_s, pp, per, cfg.block_s, reaction_s, sheddable[i], cfg.block_act_fraction)
            values[f"forecast_w.{i}"] = f.average_w
            values[f"remaining_s.{i}"] = f.remaining_s
            fcast = f.average_w if fcast is None else max(fcast, f.average_w)
            if f.cut_w > 0:
                if f.act:
                    need = f.cut_w
                    s = Stage.EMERGENCY if f.cut_w >= 0.95 * sheddable[i] else Stage.SHED
                else:
                    s = Stage.WARN
            elif f.average_w > cfg.warn_ratio * per:
                s = Stage.WARN
        else:  # linky
            y = ch.filter.y
            x, xp = p / per, pp / per
            lead = min(flight_s, reaction_s + slack_s + _SAMPLE_GAP_S)
            shed_path = lf.predict_path(y, ((x, lead), (xp, reaction_s + slack_s + _SAMPLE_GAP_S - lead)))
            urgent_path = lf.predict_path(y, ((x, min(lead, reaction_s + _SAMPLE_GAP_S)),
                                              (xp, max(0.0, reaction_s + _SAMPLE_GAP_S - lead))))
            values[f"y.{i}"] = y
            values[f"x.{i}"] = x
            fcast = shed_path if fcast is None else max(fcast, shed_path)
            if shed_path >= lf.CUTOFF:
                need = max(0.0, pp - cap)
                s = Stage.EMERGENCY if urgent_path >= _EMERGENCY_TRIP * lf.TRIP_LEVEL else Stage.SHED
            elif xp > 1.0 or y > 1.0:
                s = Stage.WARN
        values[f"power_w.{i}"] = p
        values[f"projected_w.{i}"] = pp
        if need > 0:
            values[f"need_w.{i}"] = need
        needs.append(need)
        stage = worse(s, stage)
    return Assessment(limit=cfg.id, stage=stage, limit_w=limit_w, source=source, measured=measured,
                      projected=projected, needs=tuple(needs), capacity=(cap,) * n, dwell=dwell,
                      values=values, forecast=fcast)
