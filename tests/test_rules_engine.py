"""The engine's properties (hypothesis) and its rules case by case, driven by a tiny closed loop:
the meter reads the base load plus every load at the level last commanded, after a latency."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zaas_edge.rules import (
    Alarm,
    Inputs,
    Modulate,
    Override,
    Restore,
    Sample,
    Shed,
    SheddingConfig,
    Stage,
    TariffState,
    initial_state,
    step,
)
from zaas_edge.rules import loads as ld


def _config(kind: str = "instant", limit_w: float = 6000, **extra: object) -> SheddingConfig:
    loads = extra.pop("loads", [
        {"id": "a", "circuit": "main", "power_w": 2000, "priority": 0},
        {"id": "b", "circuit": "main", "power_w": 2000, "priority": 0},
        {"id": "c", "circuit": "main", "power_w": 1000, "priority": 5},
    ])
    limit = {"id": "main", "points": ["m/p"], "kind": kind, "limit_w": limit_w, **extra.pop("limit", {})}
    return SheddingConfig.model_validate({"enabled": True, "limits": [limit], "loads": loads, **extra})


@dataclass
class Loop:
    """The closed loop of the tests: commands land after ``latency`` s unless the load disobeys."""

    cfg: SheddingConfig
    latency: float = 1.0
    true_w: dict[str, float] = field(default_factory=dict)
    disobey: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self.state = initial_state(self.cfg)
        self.level = {c.id: ld.full_level(c) for c in self.cfg.loads}
        self.pending: list[tuple[float, str, float]] = []
        self.faults: set[str] = set()
        self.log: list[tuple[float, object]] = []
        self.history: list[tuple[float, object]] = []

    def power(self, load_id: str) -> float:
        c = self.cfg.load(load_id)
        return ld.power_at(c, self.true_w.get(load_id, c.power_w), self.level[load_id])

    def run(self, base, t0: float, t1: float, meter_ok=lambda t: True, **inputs: object) -> None:  # noqa: ANN001
        t = t0
        while t < t1:
            for due, lid, lv in [p for p in self.pending if p[0] <= t]:
                self.pending.remove((due, lid, lv))
                if lid in self.disobey:
                    self.faults.add(lid)
                else:
                    self.level[lid] = lv
            total = base(t) + sum(self.power(c.id) for c in self.cfg.loads)
            samples = (Sample("m/p", total, t),) if meter_ok(t) else ()
            self.state, actions = step(self.state, Inputs(samples=samples, actuator_faults=frozenset(self.faults),
                                                          **inputs), t)
            self.history.append((t, self.state))
            for a in actions:
                self.log.append((t, a))
                if isinstance(a, (Shed, Restore, Modulate)):
                    self.pending.append((t + self.latency, a.load, a.level))
            t += 1.0

    def of(self, kind: type) -> list[tuple[float, object]]:
        return [(t, a) for t, a in self.log if isinstance(a, kind)]


def test_an_over_limit_step_sheds_the_lowest_priority_after_its_dwell() -> None:
    loop = Loop(_config())
    loop.run(lambda t: 500 if t < 20 else 2000, 0, 60)  # 2000 + 5000 of loads > 6000
    sheds = loop.of(Shed)
    assert [a.load for _, a in sheds] == ["a"]
    assert sheds[0][0] == 20 + 10  # dwell_s 10
    assert sheds[0][1].reason.rule == "instant: shed"
    assert sheds[0][1].reason.values["power_w.0"] == 7000


def test_a_spike_shorter_than_the_dwell_flips_nothing() -> None:
    loop = Loop(_config())
    loop.run(lambda t: 2200 if 20 <= t < 25 else 500, 0, 120)
    assert loop.of(Shed) == []


def test_emergency_sheds_at_once_past_the_dwell() -> None:
    loop = Loop(_config())
    loop.run(lambda t: 500 if t < 20 else 4000, 0, 30)  # 9000 > 1.25 × 6000
    assert loop.of(Shed)[0][0] == 20


def test_restore_waits_for_headroom_its_delay_and_comes_one_at_a_time() -> None:
    cfg = _config(loads=[{"id": "a", "circuit": "main", "power_w": 2000, "min_off_s": 30},
                         {"id": "b", "circuit": "main", "power_w": 2000, "min_off_s": 30}])
    loop = Loop(cfg)
    loop.run(lambda t: 6000 if t < 100 else 500, 0, 400)
    restores = loop.of(Restore)
    assert len(restores) == 2
    first, second = restores[0][0], restores[1][0]
    assert first >= 100 + 60  # restore_delay_s
    assert second - first >= cfg.restore_spacing_s


def test_learns_the_true_power_from_the_meter_step() -> None:
    loop = Loop(_config(), true_w={"a": 2600})
    loop.run(lambda t: 1500 if t < 20 else 3000, 0, 60)
    assert abs(loop.state.loads["a"].learned_w - 2300) < 1  # half way from 2000 to the 2600 seen


def test_stale_meter_sends_loads_to_their_safe_state_and_raises_an_alarm() -> None:
    cfg = _config(loads=[{"id": "a", "circuit": "main", "power_w": 2000, "safe_state": "off"},
                         {"id": "b", "circuit": "main", "power_w": 2000, "safe_state": "keep"}])
    loop = Loop(cfg)
    loop.run(lambda t: 500, 0, 100, meter_ok=lambda t: t < 50)
    alarms = [a for _, a in loop.of(Alarm) if a.code == "meter_stale"]
    assert alarms and alarms[0].active
    assert [(a.load, a.level) for _, a in loop.of(Shed)] == [("a", 0.0)]
    assert loop.of(Shed)[0][0] == 50 + cfg.stale_after_s
    assert loop.state.limits["main"].stage == Stage.BLIND


def test_an_actuator_that_does_not_obey_moves_the_engine_to_the_next_load() -> None:
    loop = Loop(_config(), disobey=frozenset({"a"}))
    loop.run(lambda t: 500 if t < 10 else 3000, 0, 60)
    assert [a.load for _, a in loop.of(Shed)][:2] == ["a", "b"]
    assert any(a.code == "actuator_failed" and a.subject == "a" and a.active for _, a in loop.of(Alarm))
    assert loop.state.loads["a"].fault and loop.state.loads["a"].level == 1.0


def test_dry_run_is_carried_into_every_action() -> None:
    loop = Loop(_config(dry_run=True))
    loop.run(lambda t: 4000, 0, 30)
    assert loop.of(Shed) and all(a.dry_run for _, a in loop.of(Shed))


def test_override_forces_and_expires() -> None:
    loop = Loop(_config())
    loop.run(lambda t: 500, 0, 20, overrides={"c": Override("shed", until_s=10)})
    assert [(t, a.load, a.reason.rule) for t, a in loop.of(Shed)] == [(0, "c", "override: shed")]
    assert loop.state.loads["c"].forced == "auto"  # expired at 10 s: the engine restores it on headroom
    loop.run(lambda t: 500, 20, 200)
    assert any(a.load == "c" for _, a in loop.of(Restore))


def test_tempo_red_lowers_the_limit() -> None:
    cfg = _config(limit={"tariff": [{"tempo": "red", "period": "HP", "limit_w": 4000}]})
    loop = Loop(cfg)
    loop.run(lambda t: 500, 0, 30, tariff=TariffState(period="HP", tempo="red"))
    sheds = loop.of(Shed)
    assert sheds and sheds[0][1].reason.values["limit_w"] == 4000
    blue = Loop(cfg)
    blue.run(lambda t: 500, 0, 30, tariff=TariffState(period="HP", tempo="blue"))
    assert blue.of(Shed) == []


def test_modulating_loads_go_first_then_on_off() -> None:
    cfg = _config(loads=[
        {"id": "relay", "circuit": "main", "power_w": 2000, "priority": 0},
        {"id": "ev", "circuit": "main", "kind": "ev", "power_w": 3680, "min_a": 6, "max_a": 16, "priority": 9},
    ])
    loop = Loop(cfg)
    loop.run(lambda t: 1000 if t < 10 else 1500, 0, 40)  # 7180 > 6000: 1180 W to cut
    acts = loop.of(Shed) + loop.of(Modulate)
    assert len(acts) == 1 and isinstance(acts[0][1], Modulate) and acts[0][1].load == "ev"
    assert acts[0][1].setpoint == 10  # 6 A less × 230 V = 1380 W ≥ 1180 W


def test_per_phase_sheds_a_load_on_the_phase_over() -> None:
    cfg = SheddingConfig.model_validate({"enabled": True,
        "limits": [{"id": "main", "points": ["m/l1", "m/l2", "m/l3"], "per_phase": True, "limit_w": 9000}],
        "loads": [{"id": "on1", "circuit": "main", "power_w": 2000, "phase": 1},
                  {"id": "on2", "circuit": "main", "power_w": 2000, "phase": 2, "priority": -1}]})
    s = initial_state(cfg)
    for t in range(40):
        s, acts = step(s, Inputs(samples=(Sample("m/l1", 3500, t), Sample("m/l2", 1000, t),
                                          Sample("m/l3", 1000, t))), t)
        sheds = [a.load for a in acts if isinstance(a, Shed)]
        if sheds:
            assert sheds == ["on1"]
            return
    raise AssertionError("nothing shed")


# ---- properties -------------------------------------------------------------------------------

_powers = st.lists(st.floats(min_value=0, max_value=12_000, allow_nan=False), min_size=20, max_size=300)
_guards = st.fixed_dictionaries({
    "min_on_s": st.sampled_from([0, 10, 60]), "min_off_s": st.sampled_from([0, 20, 90]),
    "max_off_s": st.sampled_from([120, 300]), "restore_delay_s": st.sampled_from([0, 15]),
    "dwell_s": st.sampled_from([0, 5, 30]),
})


def _loop(guards: dict[str, float], kind: str) -> Loop:
    loads = [{"id": i, "circuit": "main", "power_w": 1500, "priority": p, **guards} for i, p in
             (("a", 0), ("b", 0), ("c", 1))]
    return Loop(_config(kind=kind, loads=loads, limit={"block_s": 120}))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_powers, _guards, st.sampled_from(["instant", "sliding", "block", "linky"]))
def test_never_restores_within_min_off(powers: list[float], guards: dict[str, float], kind: str) -> None:
    loop = _loop(guards, kind)
    loop.run(lambda t: powers[int(t) % len(powers)], 0, 2 * len(powers))
    last_down: dict[str, float] = {}
    for t, a in loop.log:
        if isinstance(a, (Shed, Restore, Modulate)):
            before = loop.history[int(t) - 1][1].loads[a.load].level if t > 0 else None
            if isinstance(a, Restore) or (before is not None and a.level > before):
                assert a.load not in last_down or t - last_down[a.load] >= guards["min_off_s"], (t, a)
            else:
                last_down[a.load] = t


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_powers, _guards, st.sampled_from(["instant", "sliding", "block", "linky"]))
def test_never_exceeds_max_off_unless_emergency(powers: list[float], guards: dict[str, float], kind: str) -> None:
    loop = _loop(guards, kind)
    loop.run(lambda t: powers[int(t) % len(powers)], 0, 3 * len(powers))
    slack = loop.latency + 1
    for t, s in loop.history:
        emergency = s.limits["main"].stage == Stage.EMERGENCY
        for lid, lst in s.loads.items():
            c = loop.cfg.load(lid)
            if lst.off_since is not None and not emergency:
                assert t - lst.off_since <= c.max_off_s + max(c.min_off_s, slack), (t, lid, lst)


@settings(max_examples=30, deadline=None)
@given(_powers, st.sampled_from(["instant", "sliding", "block", "linky"]))
def test_deterministic(powers: list[float], kind: str) -> None:
    runs = []
    for _ in range(2):
        loop = _loop({}, kind)
        loop.run(lambda t: powers[int(t) % len(powers)], 0, len(powers))
        runs.append((loop.log, loop.state))
    assert runs[0] == runs[1]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1.3), min_size=10, max_size=400),
       st.floats(min_value=0, max_value=1.69))
def test_a_step_the_meter_tolerates_sheds_nothing(ratios: list[float], y0: float) -> None:
    cfg = _config(kind="linky", loads=[{"id": "a", "circuit": "main", "power_w": 2000}])
    s = initial_state(cfg)
    for t, x in enumerate(ratios * 3):
        s, acts = step(s, Inputs(samples=(Sample("m/p", x * 6000, float(t)),)), float(t))
        assert not [a for a in acts if isinstance(a, (Shed, Modulate))], (t, x)


def test_a_short_burst_at_twice_pcoup_sheds_nothing_a_long_one_sheds_in_time() -> None:
    cfg = _config(kind="linky", loads=[{"id": "a", "circuit": "main", "power_w": 3000}])
    short = Loop(cfg)
    short.run(lambda t: 9000 if 100 <= t < 120 else 1000, 0, 400)  # 4000 VA, then 12000 = 2 × PCOUP
    assert short.of(Shed) == []
    long = Loop(cfg)
    long.run(lambda t: 9000 if t >= 100 else 1000, 0, 400)
    (t, shed), = long.of(Shed)
    # from Y ≈ 0.44 a held 2 × trips after 54 s: shed late, but before it, with the slack
    assert 100 + 30 < t < 100 + 54 - cfg.reaction_s
