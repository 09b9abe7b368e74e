"""A simulated Linky's state and the frames it sends, as pure functions of the state and a time.

:func:`advance` runs the meter second by second up to a time: the demanded
power of each phase goes through the breaking filter (:mod:`hil.linky_breaker`);
what is delivered (0 VA once the breaker is open) is integrated into the
register of the tariff period in force (Wh, power factor 1). :func:`next_frame`
lists the groups of the next frame, historic or standard, for the state's
second. Nothing here reads a clock or opens a file: the simulator
(:mod:`hil.linky_sim`) owns time and I/O.

Over-power comes before a trip, as on a real meter: historic ``ADPS`` (the
current when ``IINST`` exceeds ``ISOUSC``, PREF/200 V; three-phase: short
frames with ``ADIR1..3`` while a phase exceeds PREF/200 V/3 and for a minute
after, 20 short frames then one long) and standard ``STGE`` bit 7 while S
exceeds PREF. The breaker trips only when the filter says so (1.3 × PCOUP
sustained); then ``STGE`` bits 1–3 say "open on over-power" until re-armed.
Historic mode has no breaker flag: the power simply drops to zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta

from zaas_edge.drivers.tic import Group, Horodate, Mode, Variant

from hil import linky_breaker
from hil.linky_tariff import (
    REGISTERS,
    Contract,
    Tariff,
    day_profile,
    ejp_notice,
    ejp_peak,
    local_time,
    period_index,
)

__all__ = [
    "MeterConfig",
    "MeterState",
    "Demand",
    "initial_state",
    "advance",
    "next_frame",
    "over_power",
    "rearm",
    "stge",
    "SHORT_FRAMES",
    "SHORT_FRAME_HOLD_S",
]

#: Three-phase historic: short frames in a row before one long frame.
SHORT_FRAMES = 20
#: Three-phase historic: short frames go on this long after the last over-current second.
SHORT_FRAME_HOLD_S = 60

# bits 17 (standard TIC), 19-20 (Euridis) and 21 (CPL status) as in the real capture's 003A0001
_STGE_BASE = 0x003A0000

#: Demanded apparent power of each phase (VA) at an epoch second.
Demand = Callable[[int], Sequence[float]]


@dataclass(frozen=True, slots=True)
class MeterConfig:
    """What is fixed when the meter is installed: mode, phases, contract and powers.

    ``variant`` is the checksum rule; ``None`` is the spec's, ``Variant.MODE2``
    in historic mode is what some older meters do.
    """

    mode: Mode = Mode.HISTORIC
    phases: int = 1
    contract: Contract = Contract.BASE
    pref_kva: int = 6
    pcoup_kva: int | None = None
    voltage: int = 230
    adco: str = "031762120855"
    prm: str = "09876543210987"
    imax_a: int = 90
    initial_wh: int = 0
    message: str = "PAS DE          MESSAGE         "
    clock_degraded: bool = False
    variant: Variant | None = None
    # The breaking filter steps once every this many meter seconds: a meter whose clock runs faster than
    # real time (hil.timescale) keeps the filter on real seconds, the time a shedding controller has.
    breaker_stride: int = 1

    def __post_init__(self) -> None:
        if self.phases not in (1, 3):
            raise ValueError(f"phases must be 1 or 3, got {self.phases}")
        if self.breaker_stride < 1:
            raise ValueError(f"breaker_stride is 1 or more meter seconds, got {self.breaker_stride}")
        if not 1 <= self.pref_kva <= 99 or not 1 <= (self.pcoup_kva or self.pref_kva) <= 99:
            raise ValueError("PREF and PCOUP are 1..99 kVA")
        if len(self.adco) != 12 or len(self.prm) != 14:
            raise ValueError("ADCO/ADSC is 12 characters, PRM 14")

    @property
    def pref_va(self) -> int:
        return self.pref_kva * 1000

    @property
    def pcoup_va(self) -> int:
        return (self.pcoup_kva or self.pref_kva) * 1000

    @property
    def isousc(self) -> int:
        """Subscribed current per phase (A): PREF/200 V, divided by three on three-phase."""
        return round(self.pref_va / 200 / self.phases)


@dataclass(frozen=True, slots=True)
class MeterState:
    """Everything the meter remembers, at epoch second ``t``.

    ``energy_vas`` holds one counter per register of the contract, ``distributor_vas``
    the four distributor registers, in VA·s (integers, so a frame's Wh never
    drifts; at power factor 1 a VA·s is a joule); ``s_va`` is the power delivered per phase in
    the last second and ``demand_va`` what the load asked for (they differ only
    while the breaker is open).
    """

    t: int
    energy_vas: tuple[int, ...]
    distributor_vas: tuple[int, ...]
    breaker: linky_breaker.BreakerState
    s_va: tuple[int, ...]
    demand_va: tuple[int, ...]
    smax: tuple[tuple[int, int], ...]  # today's max per phase (or total on one phase): (VA, epoch)
    smax_prev: tuple[tuple[int, int], ...]
    day: str
    cc_vas: int = 0  # energy of the load-curve half-hour in progress
    cc_last: tuple[int, int] = (0, 0)  # (end epoch, average W) of the last complete half-hour
    cc_prev: tuple[int, int] = (0, 0)
    over_until: int = -1  # three-phase historic: short frames until this second
    shorts: int = 0  # short frames sent since the last long one
    frames: int = 0
    pmax: int = 0


def initial_state(config: MeterConfig, now: float) -> MeterState:
    """A meter just installed at ``now``: indexes at ``initial_wh``, breaker closed, no load."""
    t = int(now)
    if not 2000 <= local_time(t).year <= 2099:
        raise ValueError(f"the meter's clock must be in 2000..2099 (a horodate has two year digits), got {t}")
    n = len(REGISTERS[config.contract])
    zero = tuple((0, t) for _ in range(config.phases))
    half = t - t % 1800
    return MeterState(
        t=t,
        energy_vas=(config.initial_wh * 3600,) * n,
        distributor_vas=(config.initial_wh * 3600,) + (0,) * 3,
        breaker=linky_breaker.closed_breaker(config.phases),
        s_va=(0,) * config.phases,
        demand_va=(0,) * config.phases,
        smax=zero,
        smax_prev=zero,
        day=local_time(t).date().isoformat(),
        cc_last=(half, 0),
        cc_prev=(half - 1800, 0),
    )


def over_power(config: MeterConfig, s_va: Sequence[int]) -> bool:
    """``STGE`` bit 7: S above PREF (on three-phase, a phase above PREF/3)."""
    return any(s * config.phases > config.pref_va for s in s_va)


def _second(state: MeterState, config: MeterConfig, tariff: Tariff, demand: Sequence[float]) -> MeterState:
    t = state.t + 1
    if len(demand) != config.phases:
        raise ValueError(f"{len(demand)} phase powers for a {config.phases}-phase meter")
    asked = tuple(max(0, round(v)) for v in demand)
    brk = state.breaker
    delivered = (0,) * config.phases if brk.open else asked
    if t % config.breaker_stride == 0:
        brk = linky_breaker.step(brk, delivered, config.pcoup_va)
    if brk.open:
        delivered = (0,) * config.phases
    index = period_index(config.contract, tariff, local_time(state.t))  # the period the second started in
    total = sum(delivered)
    energy = list(state.energy_vas)
    energy[index] += total
    dist = list(state.distributor_vas)
    dist[0 if REGISTERS[config.contract][index].off_peak or config.contract is Contract.BASE else 1] += total
    day = local_time(t).date().isoformat()
    smax, smax_prev = state.smax, state.smax_prev
    if day != state.day:
        smax_prev, smax = smax, tuple((0, t) for _ in smax)
    per = delivered if config.phases > 1 else (total,)
    smax = tuple((s, t) if s > m[0] else m for s, m in zip(per, smax, strict=True))
    cc_vas, cc_last, cc_prev = state.cc_vas + total, state.cc_last, state.cc_prev
    if t % 1800 == 0:
        cc_prev, cc_last, cc_vas = cc_last, (t, round(cc_vas / 1800)), 0  # average W of the half-hour
    over_until = state.over_until
    if config.phases > 1 and any(round(s / config.voltage) > config.isousc for s in delivered):
        over_until = t + SHORT_FRAME_HOLD_S
    return replace(state, t=t, energy_vas=tuple(energy), distributor_vas=tuple(dist), breaker=brk, s_va=delivered,
                   demand_va=asked, smax=smax, smax_prev=smax_prev, day=day, cc_vas=cc_vas, cc_last=cc_last,
                   cc_prev=cc_prev, over_until=over_until, pmax=max(state.pmax, total))


def advance(state: MeterState, config: MeterConfig, tariff: Tariff, demand: Demand, now: float) -> MeterState:
    """Run the meter every whole second from ``state.t`` up to ``now`` (a time before it changes nothing)."""
    end = int(now)
    while state.t < end:
        state = _second(state, config, tariff, demand(state.t + 1))
    return state


def rearm(state: MeterState) -> MeterState:
    """The customer presses the meter's button: the breaker closes, load returns at the next second."""
    return replace(state, breaker=linky_breaker.rearm(state.breaker))


def stge(state: MeterState, config: MeterConfig, tariff: Tariff) -> int:
    """The standard-mode status register for this state (bit layout in shared/ENERGY.md §3.1)."""
    local = local_time(state.t)
    index = period_index(config.contract, tariff, local)
    reg = REGISTERS[config.contract][index]
    value = _STGE_BASE
    value |= int(not _relay_closed(config, reg.off_peak))  # dry contact: 0 = closed, 1 = open (NOI-CPT_54E)
    value |= (1 if state.breaker.open else 0) << 1  # breaking device: 1 = open on over-power
    value |= int(over_power(config, state.s_va)) << 7
    value |= index << 10  # supplier index in use, value + 1
    value |= (0 if reg.off_peak or config.contract is Contract.BASE else 1) << 14
    value |= int(config.clock_degraded) << 16
    if config.contract is Contract.TEMPO:
        value |= tariff.tempo_today.value << 24 | tariff.tempo_tomorrow.value << 26
    if config.contract is Contract.EJP:
        value |= int(ejp_notice(tariff, local)) << 28 | int(ejp_peak(tariff, local)) << 30
    return value


def _relay_closed(config: MeterConfig, off_peak: bool) -> bool:
    """The dry contact: closed in off-peak hours on HC and Tempo (the water heater), open otherwise."""
    return off_peak and config.contract in (Contract.HC, Contract.TEMPO)


def _wh(vas: int) -> str:
    return f"{vas // 3600 % 1_000_000_000:09d}"


def _amps(config: MeterConfig, s: int) -> int:
    return min(999, round(s / config.voltage))


def next_frame(state: MeterState, config: MeterConfig, tariff: Tariff) -> tuple[MeterState, list[Group]]:
    """The groups of the frame the meter sends now, and the state after sending it."""
    if config.mode is Mode.STANDARD:
        return replace(state, frames=state.frames + 1), _standard(state, config, tariff)
    if config.phases > 1 and state.t <= state.over_until and state.shorts < SHORT_FRAMES:
        return replace(state, frames=state.frames + 1, shorts=state.shorts + 1), _short(state, config)
    return replace(state, frames=state.frames + 1, shorts=0), _historic(state, config, tariff)


def _short(state: MeterState, config: MeterConfig) -> list[Group]:
    """Three-phase short frame: ``ADIRn`` the current of a phase over its setting (``000`` if it is not)."""
    amps = [_amps(config, s) for s in state.s_va]
    groups = [Group(f"ADIR{i}", f"{a if a > config.isousc else 0:03d}") for i, a in enumerate(amps, 1)]
    groups.append(Group("ADCO", config.adco))
    groups += [Group(f"IINST{i}", f"{a:03d}") for i, a in enumerate(amps, 1)]
    return groups


def _historic(state: MeterState, config: MeterConfig, tariff: Tariff) -> list[Group]:
    local = local_time(state.t)
    regs = REGISTERS[config.contract]
    index = period_index(config.contract, tariff, local)
    g = [Group("ADCO", config.adco), Group("OPTARIF", config.contract.optarif), Group("ISOUSC", f"{config.isousc:02d}")]
    g += [Group(r.label, _wh(e)) for r, e in zip(regs, state.energy_vas, strict=True)]
    if config.contract is Contract.EJP and ejp_notice(tariff, local):
        g.append(Group("PEJP", "30"))
    g.append(Group("PTEC", regs[index].ptec))
    if config.contract is Contract.TEMPO:
        g.append(Group("DEMAIN", tariff.tempo_tomorrow.demain))
    total = sum(state.s_va)
    if config.phases == 1:
        amps = _amps(config, total)
        g.append(Group("IINST", f"{amps:03d}"))
        if amps > config.isousc:
            g.append(Group("ADPS", f"{amps:03d}"))
        g.append(Group("IMAX", f"{config.imax_a:03d}"))
    else:
        g += [Group(f"IINST{i}", f"{_amps(config, s):03d}") for i, s in enumerate(state.s_va, 1)]
        g += [Group(f"IMAX{i}", f"{config.imax_a:03d}") for i in range(1, 4)]
        g.append(Group("PMAX", f"{min(state.pmax, 99999):05d}"))
    g.append(Group("PAPP", f"{min(round(total / 10) * 10, 99990):05d}"))
    g.append(Group("HHPHC", "A"))
    g.append(Group("MOTDETAT", "000000"))
    if config.phases > 1:
        g.append(Group("PPOT", "00"))
    return g


def _hd(config: MeterConfig, t: int) -> Horodate:
    return Horodate.build(local_time(t), degraded=config.clock_degraded)


def _standard(state: MeterState, config: MeterConfig, tariff: Tariff) -> list[Group]:
    local = local_time(state.t)
    regs = REGISTERS[config.contract]
    index = period_index(config.contract, tariff, local)
    phases = range(1, config.phases + 1)
    total = sum(state.s_va)
    g = [
        Group("ADSC", config.adco),
        Group("VTIC", "02"),
        Group("DATE", "", _hd(config, state.t)),
        Group("NGTF", config.contract.ngtf),
        Group("LTARF", regs[index].ltarf.center(16)),
        Group("EAST", _wh(sum(state.energy_vas))),
    ]
    g += [Group(f"EASF{i:02d}", _wh(state.energy_vas[i - 1] if i <= len(regs) else 0)) for i in range(1, 11)]
    g += [Group(f"EASD{i:02d}", _wh(v)) for i, v in enumerate(state.distributor_vas, 1)]
    g += [Group(f"IRMS{i}", f"{_amps(config, s):03d}") for i, s in zip(phases, state.s_va, strict=True)]
    g += [Group(f"URMS{i}", f"{config.voltage:03d}") for i in phases]
    g += [Group("PREF", f"{config.pref_kva:02d}"), Group("PCOUP", f"{config.pcoup_va // 1000:02d}")]
    g.append(Group("SINSTS", f"{min(total, 99999):05d}"))
    if config.phases > 1:
        g += [Group(f"SINSTS{i}", f"{min(s, 99999):05d}") for i, s in zip(phases, state.s_va, strict=True)]
        names = [f"SMAXSN{i}" for i in phases]
    else:
        names = ["SMAXSN"]
    g += [Group(n, f"{min(v, 99999):05d}", _hd(config, t)) for n, (v, t) in zip(names, state.smax, strict=True)]
    g += [Group(f"{n}-1", f"{min(v, 99999):05d}", _hd(config, t)) for n, (v, t) in
          zip(names, state.smax_prev, strict=True)]
    g.append(Group("CCASN", f"{min(state.cc_last[1], 99999):05d}", _hd(config, state.cc_last[0])))
    g.append(Group("CCASN-1", f"{min(state.cc_prev[1], 99999):05d}", _hd(config, state.cc_prev[0])))
    ten = state.t - state.t % 600
    g += [Group(f"UMOY{i}", f"{config.voltage:03d}", _hd(config, ten)) for i in phases]
    g.append(Group("STGE", f"{stge(state, config, tariff):08X}"))
    notice, peak = ejp_notice(tariff, local), ejp_peak(tariff, local)
    if config.contract is Contract.EJP and (notice or peak):
        start = local.replace(hour=7, minute=0, second=0)
        if local.hour < 1:
            start -= timedelta(days=1)
        elif local.hour >= 7 and not peak:
            start += timedelta(days=1)
        g.append(Group("DPM1", "00", Horodate.build(start, config.clock_degraded)))
        end = local_time(start.timestamp() + 18 * 3600)  # 01:00 the next day
        g.append(Group("FPM1", "00", Horodate.build(end, config.clock_degraded)))
    g.append(Group("MSG1", config.message))
    g.append(Group("PRM", config.prm))
    g.append(Group("RELAIS", f"{int(_relay_closed(config, regs[index].off_peak)):03d}"))
    g.append(Group("NTARF", f"{index + 1:02d}"))
    g += [Group("NJOURF", "00"), Group("NJOURF+1", "00")]
    tomorrow = local.date() + timedelta(days=1)
    g.append(Group("PJOURF+1", day_profile(config.contract, tariff, tomorrow)))
    if config.contract is Contract.EJP and notice:
        g.append(Group("PPOINTE", day_profile(config.contract, _with_peak(tariff, tomorrow), tomorrow)))
    return g


def _with_peak(tariff: Tariff, day: date) -> Tariff:
    """The tariff with ``day`` an EJP day: the profile the meter announces for a peak day."""
    return replace(tariff, ejp_days=tariff.ejp_days | {day})
