"""``step(state, inputs, now) -> (state, actions)``: the load-shedding engine, pure and deterministic.

One step, in order:

1. the new samples feed every node's accumulators (the Linky filter runs on each);
2. actuators that failed their read-back: the load is taken back to where it
   was, an alarm is raised, and the shed list moves on to the next load;
3. switches that have settled teach the load's power;
4. overrides (force shed, force restore, auto) with their expiry;
5. a node with a stale or missing meter sends each load under it to its safe state;
6. every other node is assessed; loads are shed from one coordinated list
   (modulating first, then on/off; lower priority first; the least-shed first
   among equals) until every need is covered;
7. with nothing to shed: a load past ``max_off`` comes back (comfort), else
   one load is restored if its learned power fits, else two equals swap.

No I/O and no clock: ``now`` is monotonic seconds, the wall time comes in the inputs.
"""

from __future__ import annotations

__all__ = ["EngineState", "initial_state", "step"]

from collections.abc import Mapping
from dataclasses import dataclass, replace

from zaas_edge.rules import limits as lim
from zaas_edge.rules import loads as ld
from zaas_edge.rules.config import LimitConfig, LoadConfig, SheddingConfig
from zaas_edge.rules.model import Action, Alarm, Inputs, Modulate, Reason, Restore, Sample, Shed, Stage

_LEARN_SETTLE_S = 2.0
_CALM_S = 60.0


@dataclass(frozen=True, slots=True)
class _Topology:
    """What follows from the configuration alone, worked out once rather than on every step."""

    config: SheddingConfig
    children: Mapping[str, list[str]]
    chain: Mapping[str, list[str]]
    latency: Mapping[str, float]
    lcfg: Mapping[str, LoadConfig]
    ncfg: Mapping[str, LimitConfig]
    full: Mapping[str, float]
    under: Mapping[str, list[LoadConfig]]


def _topology(cfg: SheddingConfig) -> _Topology:
    chain = {c.id: cfg.ancestors(c.circuit) for c in cfg.loads}
    return _Topology(config=cfg, children={c.id: [k.id for k in cfg.limits if k.parent == c.id] for c in cfg.limits},
                     chain=chain,
                     latency={c.id: cfg.actuator_latency_s(c) for c in cfg.loads},
                     lcfg={c.id: c for c in cfg.loads}, ncfg={c.id: c for c in cfg.limits},
                     full={c.id: ld.full_level(c) for c in cfg.loads},
                     under={n.id: [c for c in cfg.loads if n.id in chain[c.id]] for n in cfg.limits})


@dataclass(frozen=True, slots=True)
class EngineState:
    """The configuration and everything the engine remembers between steps."""

    config: SheddingConfig
    loads: Mapping[str, ld.LoadState]
    limits: Mapping[str, lim.LimitState]
    latest: Mapping[str, Sample]
    last_restore_s: float | None = None
    commands: int = 0
    last_now: float | None = None
    topology: _Topology | None = None


def initial_state(config: SheddingConfig) -> EngineState:
    return EngineState(config=config, loads={c.id: ld.initial(c) for c in config.loads},
                       limits={c.id: lim.initial(c) for c in config.limits}, latest={},
                       topology=_topology(config))


class _Step:
    """The working copy of one step (private): dictionaries rebuilt once, frozen again at the end."""

    def __init__(self, state: EngineState, inputs: Inputs, now: float) -> None:
        self.s, self.inp, self.now = state, inputs, now
        self.cfg = state.config
        self.loads = dict(state.loads)
        self.limits = dict(state.limits)
        self.latest = dict(state.latest)
        self.actions: list[Action] = []
        self.commands = state.commands
        self.last_restore_s = state.last_restore_s
        # a state carried over a reload (replace(state, config=...)) works its topology out afresh
        topo = state.topology if state.topology is not None and state.topology.config is self.cfg \
            else _topology(self.cfg)
        self.topology = topo
        self.lcfg, self.ncfg, self.children = topo.lcfg, topo.ncfg, topo.children
        self.chain, self.latency = topo.chain, topo.latency
        self.clock_offset = (inputs.wall_s - now) if inputs.wall_s is not None else 0.0
        self.moved: set[str] = set()

    # ---- measurement -------------------------------------------------------------------------

    def values(self, node: LimitConfig, latest: Mapping[str, Sample]) -> tuple[float, ...] | None:
        """The node's channels from the latest samples; ``None`` while one is missing."""
        if node.points:
            got = [latest.get(p) for p in node.points]
            if any(g is None for g in got):
                return None
            ws = [g.watts for g in got if g is not None]
            return tuple(ws) if node.per_phase else (sum(ws),)
        total = 0.0
        for c in self.children[node.id]:
            v = self.values(self.ncfg[c], latest)
            if v is None:
                return None
            total += sum(v)
        return (total,)

    def blind(self, node: LimitConfig) -> bool:
        if node.points:
            return any(p not in self.latest or self.now - self.latest[p].mono_s > self.cfg.stale_after_s
                       for p in node.points)
        return any(self.blind(self.ncfg[c]) for c in self.children[node.id])

    def feed_samples(self) -> None:
        for sample in sorted(self.inp.samples, key=lambda s: (s.mono_s, s.point)):
            old = self.latest.get(sample.point)
            if old is not None and old.mono_s > sample.mono_s:
                continue
            self.latest[sample.point] = sample
            for node in self.cfg.limits:
                if sample.point in node.points:
                    v = self.values(node, self.latest)
                    if v is not None:
                        self.limits[node.id] = lim.feed(node, self.limits[node.id], sample.mono_s,
                                                        sample.mono_s + self.clock_offset, v,
                                                        node.id in self.inp.overpower)
        for node in self.cfg.limits:
            if not node.points and node.kind in ("block", "sliding"):
                v = self.values(node, self.latest)
                if v is not None:
                    self.limits[node.id] = lim.feed(node, self.limits[node.id], self.now,
                                                    self.now + self.clock_offset, v, False)

    def relief(self, node: LimitConfig, load: LoadConfig, watts: float) -> tuple[float, ...]:
        """What ``watts`` of ``load`` weigh on each channel of ``node``."""
        n = lim.channel_count(node)
        if n == 1:
            return (watts,)
        if load.phase is None:
            return (watts / n,) * n
        return tuple(watts if i == load.phase - 1 else 0.0 for i in range(n))

    def under(self, node_id: str) -> list[LoadConfig]:
        return self.topology.under[node_id]

    def delta(self, c: LoadConfig, st: ld.LoadState, frm: float, to: float) -> float:
        return ld.power_at(c, st.learned_w, to) - ld.power_at(c, st.learned_w, frm)

    def projection(self, node: LimitConfig, measured: tuple[float, ...]) -> tuple[tuple[float, ...], float]:
        """``measured`` with every in-flight command under ``node`` counted as landed, and when the last lands."""
        proj = list(measured)
        flight = 0.0
        for c in self.under(node.id):
            st = self.loads[c.id]
            if ld.in_flight(st, self.now, self.latency[c.id]) and st.changed_s is not None:
                for i, r in enumerate(self.relief(node, c, self.delta(c, st, st.from_level, st.level))):
                    proj[i] += r
                flight = max(flight, st.changed_s + self.latency[c.id] - self.now)
        return tuple(proj), flight

    # ---- commands ----------------------------------------------------------------------------

    def command(self, c: LoadConfig, level: float, reason: Reason, learn: bool = True) -> None:
        st = self.loads[c.id]
        if level == st.level:
            return
        dry = self.cfg.dry_run
        before = self.meter_total(c)
        new = ld.moved(c, st, level, self.now)
        self.commands += 1
        # The meter's step teaches a load's power only when it switched alone: another switch in the same
        # settle window adds its own step, so neither learns (two heaters shed together do not both learn 2×).
        crowd = [o for o in self.loads.values()
                 if o.id != c.id and (o.learning is not None or ld.in_flight(o, self.now, self.latency[o.id]))]
        if crowd:
            learn = False
            for o in crowd:
                if o.learning is not None:
                    self.loads[o.id] = replace(o, learning=None)
        if learn and self.cfg.learn and not dry and before is not None and c.kind != "hvac":
            new = replace(new, learning=ld.Learning(before, st.level, level,
                                                    self.now + self.latency[c.id] + _LEARN_SETTLE_S, self.commands))
        self.loads[c.id] = new
        self.moved.add(c.id)
        if c.kind in ("ev", "hvac") and level > 0 and st.level > 0:
            self.actions.append(Modulate(c.id, ld.setpoint(c, level), level, reason, dry))
        elif level < st.level:
            self.actions.append(Shed(c.id, level, reason, dry))
        else:
            self.actions.append(Restore(c.id, level, reason, dry))

    def meter_total(self, c: LoadConfig) -> float | None:
        for nid in self.chain[c.id]:
            node = self.ncfg[nid]
            if node.points:
                v = self.values(node, self.latest)
                return None if v is None else sum(v)
        return None

    def alarm(self, code: str, subject: str, active: bool, text: str, reason: Reason) -> None:
        self.actions.append(Alarm(code, subject, active, text, reason))

    # ---- the phases of a step ----------------------------------------------------------------

    def faults(self) -> None:
        for c in self.cfg.loads:
            st = self.loads[c.id]
            failing = c.id in self.inp.actuator_faults
            if failing and not st.fault:
                self.loads[c.id] = replace(ld.reverted(c, st, self.now), fault=True)
                self.alarm("actuator_failed", c.id, True,
                           f"load {c.id}: the actuator did not carry out level {st.level:g}; shedding the next load",
                           Reason("actuator read-back", None, {"commanded": st.level, "kept": st.from_level}))
            elif not failing and st.fault:
                self.loads[c.id] = replace(st, fault=False)
                self.alarm("actuator_failed", c.id, False, f"load {c.id}: the actuator answers again",
                           Reason("actuator read-back"))

    def learning(self) -> None:
        for c in self.cfg.loads:
            st = self.loads[c.id]
            lg = st.learning
            if lg is None or self.now < lg.due_s:
                continue
            after = self.meter_total(c)
            learned = st.learned_w
            if lg.command == self.commands and after is not None and not st.fault:
                learned = ld.learn_from(c, st, after)
            self.loads[c.id] = replace(st, learned_w=learned, learning=None)

    def overrides(self) -> None:
        for c in self.cfg.loads:
            st = self.loads[c.id]
            ov = self.inp.overrides.get(c.id)
            mode = ov.mode if ov is not None and ov.until_s > self.now else "auto"
            if mode == st.forced:
                continue
            self.loads[c.id] = replace(st, forced=mode)
            values = {"until_s": ov.until_s} if ov is not None and mode != "auto" else {}
            if mode == "shed":
                self.command(c, 0.0, Reason("override: shed", None, values), learn=False)
            elif mode == "restore":
                self.command(c, ld.full_level(c), Reason("override: restore", None, values), learn=False)

    def safe_states(self) -> set[str]:
        """Send loads under a blind node to their safe state; return the blind nodes."""
        blind = {n.id for n in self.cfg.limits if self.blind(n)}
        for n in self.cfg.limits:
            st = self.limits[n.id]
            was = "meter_stale" in st.alarmed
            if (n.id in blind) != was:
                self.limits[n.id] = replace(st, alarmed=st.alarmed ^ {"meter_stale"})
                text = (f"limit {n.id}: meter stale or missing, loads go to their safe state" if not was
                        else f"limit {n.id}: meter fresh again")
                self.alarm("meter_stale", n.id, not was, text,
                           Reason("stale meter", n.id, {"stale_after_s": self.cfg.stale_after_s}))
        for c in self.cfg.loads:
            st = self.loads[c.id]
            hit = next((nid for nid in self.chain[c.id] if nid in blind), None)
            if hit is None:
                if st.safe:
                    self.loads[c.id] = replace(st, safe=False)
                continue
            if st.forced != "auto" or st.safe:
                continue
            safe = {"on": 1.0, "off": 0.0, "keep": -1.0}[c.safe_state]
            reason = Reason("stale meter: safe state", hit, {"safe": safe})
            if c.safe_state == "off":
                self.command(c, 0.0, reason, learn=False)
            elif c.safe_state == "on":
                if not ld.guard_allows_up(c, st, self.now):
                    continue
                self.command(c, ld.full_level(c), reason, learn=False)
            self.loads[c.id] = replace(self.loads[c.id], safe=True)
        return blind

    def auto(self, c: LoadConfig) -> bool:
        st = self.loads[c.id]
        return st.forced == "auto" and not st.fault and not st.safe

    def assess_all(self, blind: set[str]) -> dict[str, lim.Assessment]:
        out: dict[str, lim.Assessment] = {}
        for node in self.cfg.limits:
            if node.id in blind:
                self.limits[node.id] = replace(self.limits[node.id], stage=Stage.BLIND)
                continue
            measured = self.values(node, self.latest)
            if measured is None:
                continue
            proj, flight = self.projection(node, measured)
            sheddable = [0.0] * lim.channel_count(node)
            for c in self.under(node.id):
                st = self.loads[c.id]
                if self.auto(c):
                    for i, r in enumerate(self.relief(node, c, ld.power_at(c, st.learned_w, st.level))):
                        sheddable[i] += r
            a = lim.assess(node, self.limits[node.id], self.inp, self.now, self.now + self.clock_offset,
                           measured, proj, flight, tuple(sheddable), self.cfg.reaction_s, self.cfg.linky_slack_s)
            out[node.id] = a
            self.track_stage(node, a)
        return out

    def track_stage(self, node: LimitConfig, a: lim.Assessment) -> None:
        st = self.limits[node.id]
        over = any(n > 0 for n in a.needs)
        over_since = (st.over_since if st.over_since is not None else self.now) if over else None
        calm = a.stage == Stage.OK
        calm_since = (st.calm_since if st.calm_since is not None else self.now) if calm else None
        alarmed = st.alarmed
        reason = Reason(f"{node.kind} stage", node.id, dict(a.values), a.forecast)
        for code, hot in (("limit_warn", a.stage != Stage.OK), ("limit_emergency", a.stage == Stage.EMERGENCY)):
            if hot and code not in alarmed:
                alarmed = alarmed | {code}
                self.alarm(code, node.id, True, f"limit {node.id}: {a.stage.value} ({a.source} limit {a.limit_w:g})",
                           reason)
            elif not hot and code in alarmed and (code == "limit_emergency" or
                                                  (calm_since is not None and self.now - calm_since >= _CALM_S)):
                alarmed = alarmed - {code}
                self.alarm(code, node.id, False, f"limit {node.id}: back under its limit", reason)
        if (over_since, a.stage, calm_since, alarmed) != (st.over_since, st.stage, st.calm_since, st.alarmed):
            self.limits[node.id] = replace(st, over_since=over_since, stage=a.stage, calm_since=calm_since,
                                           alarmed=alarmed)

    def shed(self, found: dict[str, lim.Assessment]) -> bool:
        """Cover every need from the one shed list; True if any need was present."""
        needs = {nid: list(a.needs) for nid, a in found.items() if any(x > 0 for x in a.needs)}
        if not needs:
            return False
        emergency = {nid for nid in needs if found[nid].stage == Stage.EMERGENCY}
        moves: list[tuple[int, int, float, str]] = []
        for c in self.cfg.loads:
            if not self.auto(c) or not any(nid in needs for nid in self.chain[c.id]):
                continue
            st = self.loads[c.id]
            if ld.in_flight(st, self.now, self.latency[c.id]) or st.level <= 0:
                continue
            rank = ld.shed_time(st, self.now)
            if c.kind != "onoff" and st.level > ld.modulating_floor(c):
                moves.append((0, c.priority, rank, c.id))
            if c.kind in ("onoff", "ev"):
                moves.append((1, c.priority, rank, c.id))
        for klass, _prio, _rank, lid in sorted(moves):
            c, st = self.lcfg[lid], self.loads[lid]
            hot = [nid for nid in self.chain[lid] if nid in needs]
            relieves = [(nid, i) for nid in hot
                        for i, r in enumerate(self.relief(self.ncfg[nid], c, 1.0)) if r > 0 and needs[nid][i] > 0]
            if not relieves:
                continue
            urgent = any(nid in emergency for nid, _ in relieves)
            if not urgent and not ld.guard_allows_down(c, st, self.now):
                continue
            if not urgent and lid not in self.moved:
                waited = [self.limits[nid].over_since for nid, _ in relieves if found[nid].dwell]
                if waited and all(w is not None and self.now - w < c.dwell_s for w in waited):
                    continue
            floor = ld.modulating_floor(c) if klass == 0 else 0.0
            # the cut that covers the largest share of need it relieves
            share = max(needs[nid][i] / self.relief(self.ncfg[nid], c, 1.0)[i] for nid, i in relieves)
            level = ld.cut_level(c, st, floor, share)
            if level >= st.level:
                continue
            cut = ld.power_at(c, st.learned_w, st.level) - ld.power_at(c, st.learned_w, level)
            top_nid = max(relieves, key=lambda k: needs[k[0]][k[1]])[0]
            a = found[top_nid]
            values = {**a.values, "cut_w": cut, "learned_w": st.learned_w}
            rule = f"{self.ncfg[top_nid].kind}: {a.stage.value}"
            self.command(c, level, Reason(rule, top_nid, values, a.forecast))
            for nid in hot:
                for i, r in enumerate(self.relief(self.ncfg[nid], c, cut)):
                    needs[nid][i] -= r
            if all(x <= 0 for v in needs.values() for x in v):
                break
        return True

    def fits(self, c: LoadConfig, level: float, found: dict[str, lim.Assessment]) -> bool:
        st = self.loads[c.id]
        add = self.delta(c, st, st.level, level)
        for nid in self.chain[c.id]:
            a = found.get(nid)
            if a is None:
                return False
            node = self.ncfg[nid]
            n = lim.channel_count(node)
            for i, r in enumerate(self.relief(node, c, add)):
                if r > 0 and a.projected[i] + r + self.cfg.restore_margin_w / n > a.capacity[i]:
                    return False
                # a block already heavy must end under its limit too: the load back for the rest of the block
                fc_w, left = a.values.get(f"forecast_w.{i}"), a.values.get(f"remaining_s.{i}")
                if (r > 0 and fc_w is not None and left is not None
                        and fc_w + (r + self.cfg.restore_margin_w / n) * left / node.block_s > a.capacity[i]):
                    return False
        return True

    def best_fit(self, c: LoadConfig, found: dict[str, lim.Assessment]) -> float | None:
        """The highest level above the present one that fits, or None.

        A higher level never draws less, so whether a level fits is monotone: a binary search, which keeps a
        charger's 27 levels from costing 27 checks on every step of a long shed.
        """
        st = self.loads[c.id]
        cands = [lv for lv in ld.levels(c) if lv > st.level and (c.kind != "ev" or lv >= c.min_a)]
        lo, hi = 0, len(cands) - 1
        best: float | None = None
        while lo <= hi:
            mid = (lo + hi) // 2
            if self.fits(c, cands[mid], found):
                best, lo = cands[mid], mid + 1
            else:
                hi = mid - 1
        return best

    def comfort(self, found: dict[str, lim.Assessment]) -> bool:
        """``max_off``: a load off that long comes back unless a node above it is in emergency.

        Off means level 0: a modulated load still runs. It comes back at the highest level that fits,
        else its lowest running level (a charger at ``min_a``), so the guard does not itself overload.
        """
        done = False
        for c in self.cfg.loads:
            st = self.loads[c.id]
            if (not self.auto(c) or st.zero_since is None or st.level > 0 or self.now - st.zero_since < c.max_off_s
                    or not ld.guard_allows_up(c, st, self.now) or ld.in_flight(st, self.now, self.latency[c.id])):
                continue
            if any(nid not in found or found[nid].stage == Stage.EMERGENCY for nid in self.chain[c.id]):
                continue
            lowest = min(lv for lv in ld.levels(c) if lv > 0 and (c.kind != "ev" or lv >= c.min_a))
            level = self.best_fit(c, found) or lowest
            self.command(c, level, Reason("max_off: comfort", c.circuit,
                                          {"off_s": self.now - st.zero_since, "max_off_s": c.max_off_s}))
            done = True
        return done

    def restore(self, found: dict[str, lim.Assessment]) -> None:
        now = self.now
        waiting: list[LoadConfig] = []
        for c in self.cfg.loads:
            st = self.loads[c.id]
            if not self.auto(c) or st.level >= ld.full_level(c):
                continue
            if any(nid not in found for nid in self.chain[c.id]):
                continue
            fit = self.best_fit(c, found)
            fits_since = (st.fits_since if st.fits_since is not None else now) if fit is not None else None
            if fits_since != st.fits_since:
                self.loads[c.id] = st = replace(st, fits_since=fits_since)
            if not ld.guard_allows_up(c, st, now) or ld.in_flight(st, now, self.latency[c.id]):
                continue
            waiting.append(c)
        if any(ld.in_flight(self.loads[c.id], now, self.latency[c.id]) for c in self.cfg.loads):
            return
        if self.last_restore_s is not None and now - self.last_restore_s < self.cfg.restore_spacing_s:
            return
        ready = [c for c in waiting if self.loads[c.id].fits_since is not None
                 and now - (self.loads[c.id].fits_since or now) >= c.restore_delay_s]
        if ready:
            def order(c: LoadConfig) -> tuple[int, int, float, str]:
                st = self.loads[c.id]
                return (0 if st.level < ld.modulating_floor(c) else 1, -c.priority, -ld.shed_time(st, now), c.id)

            c = min(ready, key=order)
            lv = self.best_fit(c, found)
            if lv is not None:
                a = found[c.circuit]
                self.command(c, lv, Reason("restore: headroom", c.circuit,
                                           {**a.values, "learned_w": self.loads[c.id].learned_w,
                                            "margin_w": self.cfg.restore_margin_w}, a.forecast))
                self.last_restore_s = now
                return
        self.rotate(waiting)

    def rotate(self, waiting: list[LoadConfig]) -> None:
        """Délestage tournant: a load shed ``rotation_s`` longer than an equal that runs swaps with it."""
        now = self.now
        for c in sorted(waiting, key=lambda c: (-ld.shed_time(self.loads[c.id], now), c.id)):
            st = self.loads[c.id]
            for p in sorted(self.cfg.loads, key=lambda p: (ld.shed_time(self.loads[p.id], now), p.id)):
                ps = self.loads[p.id]
                if (p.id == c.id or p.priority != c.priority or p.kind != c.kind or p.circuit != c.circuit
                        or not self.auto(p) or ps.level < ld.full_level(p)
                        or ld.in_flight(ps, now, self.latency[p.id]) or not ld.guard_allows_down(p, ps, now)):
                    continue
                if ld.shed_time(st, now) < ld.shed_time(ps, now) + self.cfg.rotation_s:
                    continue
                if (ld.power_at(p, ps.learned_w, ps.level) - ld.power_at(p, ps.learned_w, st.level)
                        < self.delta(c, st, st.level, ld.full_level(c)) - self.cfg.restore_margin_w):
                    continue
                values = {"shed_s": ld.shed_time(st, now), "peer_shed_s": ld.shed_time(ps, now),
                          "rotation_s": self.cfg.rotation_s}
                self.command(p, st.level, Reason("rotation: take a turn", c.circuit, values))
                self.command(c, ld.full_level(c), Reason("rotation: turn over", c.circuit, values))
                return


def step(state: EngineState, inputs: Inputs, now: float) -> tuple[EngineState, tuple[Action, ...]]:
    """Advance the engine to ``now`` (monotonic seconds) with ``inputs``; return the new state and the actions."""
    if not state.config.enabled:
        return replace(state, last_now=now), ()
    w = _Step(state, inputs, now)
    w.feed_samples()
    w.faults()
    w.learning()
    w.overrides()
    blind = w.safe_states()
    found = w.assess_all(blind)
    if w.comfort(found):
        found = w.assess_all(blind)
    if not w.shed(found):
        w.restore(found)
    new = EngineState(config=state.config, loads=w.loads, limits=w.limits, latest=w.latest,
                      last_restore_s=w.last_restore_s, commands=w.commands, last_now=now, topology=w.topology)
    return new, tuple(w.actions)
