"""The simulated Linky: its frames decode, its energy integrates, its breaker trips as ENERGY.md §3.1 says.

The pure parts (the breaking filter, the frame content from a state and a
time, the line faults) are tested with explicit times, so nothing depends on
the wall clock; the pty and the control socket are tested once each for real.
Trip times are the ones shared/ENERGY.md §3.1 computes from the spec's filter
``Y[n] = 0.008·X² + 0.992·Y[n−1]``, trip at ``Y ≥ 1.69``.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st
from zaas_edge.drivers.tic import Frame, Group, Mode, TicDecoder, Variant

from hil import linky_breaker as breaker
from hil.linky_faults import DEFAULT_NOISE, Fault, FaultKind
from hil.linky_meter import SHORT_FRAMES
from hil.linky_sim import (
    Colour,
    Contract,
    LinkyMeter,
    LinkySimProcess,
    LinkySimulator,
    MeterConfig,
    Tariff,
    constant,
    send,
)

ROOT = Path(__file__).resolve().parents[1]

# 2026-01-15 is a Thursday in winter (+01:00): 20:00 UTC is 21:00 local, an hour before HC.
T0 = datetime(2026, 1, 15, 20, 0, tzinfo=UTC).timestamp()

MODES = [Mode.HISTORIC, Mode.STANDARD]
CONTRACTS = list(Contract)


def _meter(mode: Mode = Mode.HISTORIC, phases: int = 1, contract: Contract = Contract.BASE, va: float = 0.0,
           **config: object) -> LinkyMeter:
    return LinkyMeter(MeterConfig(mode=mode, phases=phases, contract=contract, **config),  # type: ignore[arg-type]
                      curve=constant(va), start=T0, clock=lambda: T0)


def _decode(data: bytes, mode: Mode | None = None) -> tuple[list[Frame], TicDecoder]:
    decoder = TicDecoder(mode)
    return decoder.feed(data), decoder


def _one(meter: LinkyMeter, now: float) -> Frame:
    frames, decoder = _decode(meter.frame(now), meter.config.mode)
    assert len(frames) == 1 and frames[0].complete
    assert frames[0].bad_groups == [] and decoder.counters.groups_bad == 0
    return frames[0]


def _stge(frame: Frame) -> int:
    return int(frame.groups["STGE"].data, 16)


# --- every mode and contract decodes clean ---------------------------------------------------


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name.lower())
@pytest.mark.parametrize("phases", [1, 3])
@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.value)
def test_frames_decode_with_zero_bad_groups(mode: Mode, phases: int, contract: Contract) -> None:
    meter = _meter(mode, phases, contract, va=2500)
    meter.set_ejp_day(date(2026, 1, 15))
    meter.set_ejp_notice(True)
    meter.set_tempo(Colour.RED, Colour.WHITE)
    decoder = TicDecoder(mode)
    frames: list[Frame] = []
    for dt in range(0, 4 * 3600, 600):  # across 22:00, the HC start
        frames += decoder.feed(meter.frame(T0 + dt))
    assert len(frames) == 24 and all(f.complete and f.mode is mode and not f.bad_groups for f in frames)
    assert decoder.counters.groups_bad == 0 and decoder.counters.noise_bytes == 0
    labels = set(frames[-1].groups)
    if mode is Mode.HISTORIC:
        assert {"ADCO", "OPTARIF", "ISOUSC", "PTEC", "PAPP", "HHPHC", "MOTDETAT"} <= labels
        assert ({"IINST", "IMAX"} if phases == 1 else {"IINST1", "IINST2", "IINST3", "PMAX", "PPOT"}) <= labels
    else:
        assert {"ADSC", "VTIC", "DATE", "NGTF", "LTARF", "EAST", "EASF01", "EASF10", "EASD01", "EASD04", "PREF",
                "PCOUP", "SINSTS", "CCASN", "CCASN-1", "STGE", "MSG1", "PRM", "RELAIS", "NTARF", "NJOURF",
                "NJOURF+1", "PJOURF+1"} <= labels
        assert frames[-1].groups["DATE"].horodate is not None
        if phases == 3:
            assert {"SINSTS1", "SINSTS3", "IRMS3", "URMS3", "SMAXSN3", "SMAXSN1-1"} <= labels
        else:
            assert {"SMAXSN", "SMAXSN-1", "IRMS1", "URMS1", "UMOY1"} <= labels
        assert _stge(frames[-1]) >> 17 & 1 == 1  # TIC mode: standard


def test_the_register_labels_of_each_contract() -> None:
    expected = {
        Contract.BASE: ({"BASE"}, "BASE"),
        Contract.HC: ({"HCHC", "HCHP"}, "HC.."),
        Contract.TEMPO: ({"BBRHCJB", "BBRHPJB", "BBRHCJW", "BBRHPJW", "BBRHCJR", "BBRHPJR", "DEMAIN"}, "BBR("),
        Contract.EJP: ({"EJPHN", "EJPHPM"}, "EJP."),
    }
    for contract, (labels, optarif) in expected.items():
        frame = _one(_meter(contract=contract), T0)
        assert labels <= set(frame.groups) and frame.groups["OPTARIF"].data == optarif


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name.lower())
def test_the_older_meters_checksum_decodes_and_is_counted(mode: Mode) -> None:
    meter = _meter(mode, variant=Variant.MODE2 if mode is Mode.HISTORIC else Variant.MODE1)
    frames, decoder = _decode(meter.frame(T0) + meter.frame(T0 + 1))
    assert len(frames) == 2 and not any(f.bad_groups for f in frames)
    off_spec = decoder.counters.checksum_mode2 if mode is Mode.HISTORIC else decoder.counters.checksum_mode1
    assert off_spec == decoder.counters.groups_ok > 0


def test_the_checksum_rule_switches_live() -> None:
    meter = _meter()
    assert meter.command("checksum old")["ok"] is True
    _, decoder = _decode(meter.frame(T0))
    assert decoder.counters.checksum_mode2 == decoder.counters.groups_ok > 0 and decoder.counters.groups_bad == 0
    meter.command("checksum spec")
    _, decoder = _decode(meter.frame(T0 + 1))
    assert decoder.counters.checksum_mode1 == decoder.counters.groups_ok > 0


def test_a_clock_a_horodate_cannot_show_is_refused_up_front() -> None:
    with pytest.raises(ValueError, match="2000..2099"):
        LinkyMeter(start=0)  # 1970: a box whose clock was never set


@settings(max_examples=40, deadline=None)
@given(
    mode=st.sampled_from(MODES),
    phases=st.sampled_from([1, 3]),
    contract=st.sampled_from(CONTRACTS),
    va=st.floats(0, 60_000),
    offset=st.integers(0, 400 * 86400),
    today=st.sampled_from(list(Colour)),
    tomorrow=st.sampled_from(list(Colour)),
)
def test_any_state_encodes_to_clean_frames(mode: Mode, phases: int, contract: Contract, va: float, offset: int,
                                           today: Colour, tomorrow: Colour) -> None:
    start = T0 + offset
    meter = LinkyMeter(MeterConfig(mode=mode, phases=phases, contract=contract, initial_wh=999_999_000),
                       curve=constant(va), start=start, clock=lambda: start)
    meter.set_tempo(today, tomorrow)
    meter.set_ejp_day(datetime.fromtimestamp(start, UTC).date())
    frames, decoder = _decode(meter.frame(start) + meter.frame(start + 7))
    assert len(frames) == 2 and decoder.counters.groups_bad == 0 and decoder.counters.groups_ok > 0


# --- energy -----------------------------------------------------------------------------------


def test_energy_integrates_the_delivered_power() -> None:
    meter = _meter(Mode.STANDARD, va=3600, initial_wh=1_000_000)
    frame = _one(meter, T0 + 3600)  # 3600 VA for one hour
    assert frame.groups["EAST"].data == frame.groups["EASF01"].data == "001003600"
    assert frame.groups["EASD01"].data == "001003600"
    assert frame.groups["SINSTS"].data == "03600" and frame.groups["IRMS1"].data == "016"


def test_energy_goes_to_the_period_in_force() -> None:
    meter = _meter(contract=Contract.HC, va=1800)  # 21:00 local: HP until 22:00, then HC
    frame = _one(meter, T0 + 2 * 3600)
    assert (frame.groups["HCHP"].data, frame.groups["HCHC"].data) == ("000001800", "000001800")
    assert frame.groups["PTEC"].data == "HC.."


def test_three_phase_energy_sums_the_phases() -> None:
    meter = _meter(Mode.STANDARD, 3, va=0, pref_kva=12)
    meter.set_power([1000, 2000, 600])
    frame = _one(meter, T0 + 3600)
    assert frame.groups["EAST"].data == "000003600"
    assert [frame.groups[f"SINSTS{i}"].data for i in (1, 2, 3)] == ["01000", "02000", "00600"]
    assert frame.groups["SINSTS"].data == "03600"


def test_historic_papp_is_rounded_to_ten_va() -> None:
    meter = _meter(va=1234)
    assert _one(meter, T0 + 1).groups["PAPP"].data == "01230"


# --- the breaking filter (pure) -----------------------------------------------------------------

# shared/ENERGY.md §3.1: step to k × PCOUP, seconds to trip from Y=0 and from Y=1
TRIP_TABLE = [(1.4, 247, 158), (1.5, 174, 100), (2.0, 69, 33), (2.5, 40, 18), (5.0, 9, 4)]


def _seconds_to_trip(state: breaker.BreakerState, s_va: list[int], pcoup: int, limit: int) -> int | None:
    for n in range(1, limit + 1):
        state = breaker.step(state, s_va, pcoup)
        if state.open:
            return n
    return None


@pytest.mark.parametrize(("k", "from_idle", "from_running"), TRIP_TABLE)
def test_breaker_trips_when_the_spec_says_and_not_before(k: float, from_idle: int, from_running: int) -> None:
    pcoup = 6000
    s = [round(k * pcoup)]
    assert _seconds_to_trip(breaker.closed_breaker(1, 0.0, pcoup), s, pcoup, 2000) == from_idle
    assert _seconds_to_trip(breaker.closed_breaker(1, 1.0, pcoup), s, pcoup, 2000) == from_running


@pytest.mark.parametrize("k", [1.0, 1.1, 1.2, 1.3])
def test_breaker_never_trips_at_or_below_one_point_three(k: float) -> None:
    pcoup = 6000
    for y0 in (0.0, 1.0):
        assert _seconds_to_trip(breaker.closed_breaker(1, y0, pcoup), [round(k * pcoup)], pcoup, 6 * 3600) is None


def test_spec_table_one_point_four_and_two_point_five() -> None:
    # the spec's own rounded figures: 1.4 × PCOUP about 250 s, 2.5 × about 40 s, from zero
    pcoup = 9000
    assert _seconds_to_trip(breaker.closed_breaker(1), [12600], pcoup, 1000) == 247
    assert _seconds_to_trip(breaker.closed_breaker(1), [22500], pcoup, 1000) == 40


def test_three_phase_trips_phase_by_phase() -> None:
    pcoup = 12000  # 4000 VA per phase
    one_phase = [round(1.4 * 4000), 0, 0]
    assert _seconds_to_trip(breaker.closed_breaker(3), one_phase, pcoup, 1000) == 247
    balanced = [round(1.3 * 4000)] * 3  # 1.3 × PCOUP in all: never
    assert _seconds_to_trip(breaker.closed_breaker(3), balanced, pcoup, 4 * 3600) is None


@settings(max_examples=50, deadline=None)
@given(k=st.floats(1.32, 6.0), y0=st.sampled_from([0.0, 1.0]))
def test_trip_time_follows_the_closed_form_of_the_filter(k: float, y0: float) -> None:
    # Y[n] = k² + (y0 − k²)·0.992ⁿ reaches 1.69 at n = ln((k² − 1.69)/(k² − y0)) / ln(0.992)
    pcoup = 6000
    s = round(k * pcoup)
    k2 = (s / pcoup) ** 2
    exact = math.log((k2 - 1.69) / (k2 - y0)) / math.log(0.992)
    n = _seconds_to_trip(breaker.closed_breaker(1, y0, pcoup), [s], pcoup, 5000)
    assert n is not None and abs(n - math.ceil(exact)) <= 1


def test_an_open_breaker_stays_open_until_rearmed_and_keeps_its_filter() -> None:
    state = breaker.closed_breaker(1)
    for _ in range(40):
        state = breaker.step(state, [15000], 6000)
    assert state.open and state.trips == 1
    for _ in range(600):
        state = breaker.step(state, [0], 6000)
    assert state.open and breaker.filtered(state, 6000)[0] < 1.69
    state = breaker.rearm(state)
    assert not state.open and state.trips == 1


# --- the meter trips like a Linky -------------------------------------------------------------------


def test_over_power_is_flagged_first_then_the_breaker_opens_and_stays_open() -> None:
    meter = _meter(Mode.STANDARD, va=0)  # PREF = PCOUP = 6 kVA
    meter.set_power(round(1.4 * 6000))
    first = _one(meter, T0 + 1)
    assert _stge(first) >> 7 & 1 == 1 and _stge(first) >> 1 & 7 == 0 and first.groups["SINSTS"].data == "08400"
    before = _one(meter, T0 + 246)
    assert _stge(before) >> 1 & 7 == 0 and before.groups["SINSTS"].data == "08400"
    tripped = _one(meter, T0 + 247)
    assert _stge(tripped) >> 1 & 7 == 1  # open on over-power
    assert _stge(tripped) >> 7 & 1 == 0 and tripped.groups["SINSTS"].data == "00000"
    energy = tripped.groups["EAST"].data
    later = _one(meter, T0 + 3600)
    assert _stge(later) >> 1 & 7 == 1 and later.groups["SINSTS"].data == "00000" and later.groups["EAST"].data == energy
    assert meter.snapshot()["breaker_open"] is True and meter.snapshot()["demand_va"] == [8400]
    meter.set_power(2000)
    meter.rearm()
    back = _one(meter, T0 + 3601)
    assert _stge(back) >> 1 & 7 == 0 and back.groups["SINSTS"].data == "02000"


def test_three_phase_meter_trips_on_one_phase() -> None:
    meter = _meter(Mode.STANDARD, 3, pref_kva=12, va=0)  # 4 kVA a phase
    meter.set_power([round(1.4 * 4000), 500, 500])
    assert _stge(_one(meter, T0 + 1)) >> 7 & 1 == 1
    assert _stge(_one(meter, T0 + 246)) >> 1 & 7 == 0
    tripped = _one(meter, T0 + 247)
    assert _stge(tripped) >> 1 & 7 == 1
    assert [tripped.groups[f"SINSTS{i}"].data for i in (1, 2, 3)] == ["00000"] * 3


def test_historic_adps_while_over_the_subscribed_current_and_power_zero_after_the_trip() -> None:
    meter = _meter(va=0)  # ISOUSC 30 A
    meter.set_power(6900)  # 30 A at 230 V: not over
    assert "ADPS" not in _one(meter, T0 + 1).groups
    meter.set_power(8400)  # 37 A
    over = _one(meter, T0 + 2)
    assert over.groups["ADPS"].data == "037" and over.groups["IINST"].data == "037"
    assert "ADPS" in _one(meter, T0 + 240).groups
    tripped = _one(meter, T0 + 400)
    assert "ADPS" not in tripped.groups and tripped.groups["PAPP"].data == "00000"
    assert tripped.groups["IINST"].data == "000"


def test_three_phase_historic_short_frames_while_a_phase_is_over() -> None:
    meter = _meter(phases=3, pref_kva=12, va=0)  # ISOUSC 20 A per phase
    meter.set_power([5520, 1000, 1000])  # 24 A on phase 1
    frames = [_one(meter, T0 + 1 + i) for i in range(SHORT_FRAMES + 1)]
    assert all(f.short for f in frames[:SHORT_FRAMES]) and not frames[SHORT_FRAMES].short
    assert list(frames[0].groups) == ["ADIR1", "ADIR2", "ADIR3", "ADCO", "IINST1", "IINST2", "IINST3"]
    assert [frames[0].groups[f"ADIR{i}"].data for i in (1, 2, 3)] == ["024", "000", "000"]
    meter.set_power([1000, 1000, 1000])
    assert _one(meter, T0 + 30).short  # a minute after the last over-current second
    meter.groups(T0 + 100)
    assert not _one(meter, T0 + 101).short


# --- tariff signals ------------------------------------------------------------------------------------


def test_tempo_colours_in_demain_ptec_and_stge() -> None:
    hist = _meter(contract=Contract.TEMPO)
    hist.set_tempo(Colour.RED, Colour.WHITE)
    frame = _one(hist, T0)  # 21:00: HP
    assert (frame.groups["PTEC"].data, frame.groups["DEMAIN"].data) == ("HPJR", "BLAN")
    std = _meter(Mode.STANDARD, contract=Contract.TEMPO)
    std.set_tempo(Colour.RED, Colour.WHITE)
    frame = _one(std, T0)
    value = _stge(frame)
    assert (value >> 24 & 3, value >> 26 & 3) == (3, 2)
    assert frame.groups["NTARF"].data == "06" and value >> 10 & 0xF == 5
    assert frame.groups["LTARF"].data.strip() == "HP  ROUGE"
    hc = _one(std, T0 + 3600)
    assert hc.groups["LTARF"].data.strip() == "HC  ROUGE" and hc.groups["RELAIS"].data == "001"
    std.set_tempo(Colour.WHITE)
    assert _stge(_one(std, T0 + 3601)) >> 24 & 0xF == 2


def test_hc_schedule_is_settable() -> None:
    meter = _meter(contract=Contract.HC)
    assert _one(meter, T0).groups["PTEC"].data == "HP.."
    meter.set_hc_schedule([(20 * 60, 23 * 60)])
    assert _one(meter, T0 + 1).groups["PTEC"].data == "HC.."


def test_ejp_notice_then_peak() -> None:
    start = datetime(2026, 1, 15, 5, 0, tzinfo=UTC).timestamp()  # 06:00 local
    meter = LinkyMeter(MeterConfig(contract=Contract.EJP), start=start, clock=lambda: start)
    meter.set_ejp_day(date(2026, 1, 15))
    quiet = _one(meter, start)
    assert "PEJP" not in quiet.groups and quiet.groups["PTEC"].data == "HN.."
    notice = _one(meter, start + 40 * 60)  # 06:40
    assert notice.groups["PEJP"].data == "30" and notice.groups["PTEC"].data == "HN.."
    peak = _one(meter, start + 3600)  # 07:00
    assert peak.groups["PTEC"].data == "PM.." and "PEJP" not in peak.groups
    assert _one(meter, start + 19 * 3600).groups["PTEC"].data == "HN.."  # 01:00 next day
    std = LinkyMeter(MeterConfig(Mode.STANDARD, contract=Contract.EJP), start=start, clock=lambda: start)
    std.set_ejp_day(date(2026, 1, 15))
    frame = _one(std, start + 40 * 60)
    assert _stge(frame) >> 28 & 3 == 1 and frame.groups["DPM1"].horodate.raw == "H260115070000"  # type: ignore[union-attr]
    assert frame.groups["FPM1"].horodate.raw == "H260116010000"  # type: ignore[union-attr]
    # tomorrow as a peak day: still today's peak until 01:00, then its own from 07:00
    assert frame.groups["PPOINTE"].data.startswith("00008002 01008001 07008002 NONUTILE")
    assert _stge(_one(std, start + 2 * 3600)) >> 30 & 3 == 1


def test_summer_time_horodates() -> None:
    start = datetime(2026, 7, 1, 10, 0, tzinfo=UTC).timestamp()
    meter = LinkyMeter(MeterConfig(Mode.STANDARD, clock_degraded=True), start=start, clock=lambda: start)
    frame = _one(meter, start)
    assert frame.groups["DATE"].horodate.raw == "e260701120000"  # type: ignore[union-attr]
    assert _stge(frame) >> 16 & 1 == 1


# --- faults: exactly what was asked -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name.lower())
def test_noise_between_frames_costs_no_group(mode: Mode) -> None:
    meter = _meter(mode)
    clean = meter.frame(T0)
    meter.inject(Fault(FaultKind.NOISE))
    frames, decoder = _decode(clean + meter.frame(T0 + 1), mode)
    assert len(frames) == 2 and not any(f.bad_groups for f in frames)
    assert decoder.counters.noise_bytes == len(DEFAULT_NOISE)


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name.lower())
def test_bad_checksum_rejects_exactly_that_group(mode: Mode) -> None:
    meter = _meter(mode)
    label = "PAPP" if mode is Mode.HISTORIC else "SINSTS"
    meter.inject(Fault(FaultKind.BAD_CHECKSUM, label=label))
    frames, decoder = _decode(meter.frame(T0) + meter.frame(T0 + 1), mode)
    assert [(b.label, b.reason) for b in frames[0].bad_groups] == [(label, "checksum")]
    assert label not in frames[0].groups and label in frames[1].groups and not frames[1].bad_groups
    assert decoder.counters.groups_bad == 1


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name.lower())
def test_eot_interrupts_the_frame_after_the_requested_groups(mode: Mode) -> None:
    meter = _meter(mode)
    meter.inject(Fault(FaultKind.EOT, at=4))
    frames, decoder = _decode(meter.frame(T0) + meter.frame(T0 + 1), mode)
    assert not frames[0].complete and len(frames[0].groups) == 4 and not frames[0].bad_groups
    assert frames[1].complete and decoder.counters.frames_interrupted == 1 and decoder.counters.groups_bad == 0


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name.lower())
def test_partial_frame_loses_only_its_cut_group(mode: Mode) -> None:
    meter = _meter(mode)
    meter.inject(Fault(FaultKind.PARTIAL, at=3))
    frames, decoder = _decode(meter.frame(T0) + meter.frame(T0 + 1), mode)
    assert not frames[0].complete and len(frames[0].groups) == 3
    assert [b.reason for b in frames[0].bad_groups] == ["unterminated"]
    assert frames[1].complete and not frames[1].bad_groups and decoder.counters.frames_truncated == 1


@settings(max_examples=60, deadline=None)
@given(mode=st.sampled_from(MODES), phases=st.sampled_from([1, 3]),
       kind=st.sampled_from([FaultKind.NOISE, FaultKind.BAD_CHECKSUM, FaultKind.EOT, FaultKind.PARTIAL]),
       at=st.integers(0, 100))
def test_a_fault_costs_exactly_what_it_says(mode: Mode, phases: int, kind: FaultKind, at: int) -> None:
    n = len(_meter(mode, phases, va=1000).groups(T0))
    at %= n
    meter = _meter(mode, phases, va=1000)
    meter.inject(Fault(kind, at=at))
    frames, decoder = _decode(meter.frame(T0) + meter.frame(T0 + 1), mode)
    assert len(frames) == 2
    faulted, after = frames
    assert after.complete and not after.bad_groups and len(after.groups) == n
    kept, bad = {FaultKind.NOISE: (n, 0), FaultKind.BAD_CHECKSUM: (n - 1, 1), FaultKind.EOT: (at, 0),
                 FaultKind.PARTIAL: (at, 1)}[kind]
    assert (len(faulted.groups), len(faulted.bad_groups)) == (kept, bad)
    assert decoder.counters.groups_bad == bad


def test_a_reader_joining_mid_frame_drops_the_tail() -> None:
    meter = _meter()
    meter.inject(Fault(FaultKind.TAIL))
    tail = meter.frame(T0)
    frames, decoder = _decode(tail + meter.frame(T0 + 1))
    assert len(frames) == 1 and frames[0].complete and not frames[0].bad_groups
    assert decoder.counters.noise_bytes == len(tail)


def test_faults_apply_once_each_then_frames_are_clean_again() -> None:
    meter = _meter()
    meter.inject(Fault(FaultKind.BAD_CHECKSUM), times=2)
    frames, _ = _decode(b"".join(meter.frame(T0 + i) for i in range(4)))
    assert [len(f.bad_groups) for f in frames] == [1, 1, 0, 0]


# --- the control protocol ------------------------------------------------------------------------------------


def test_control_commands() -> None:
    meter = _meter(contract=Contract.TEMPO, va=500)
    assert meter.command("power 7000")["ok"] is True
    assert meter.snapshot()["demand_va"] == [7000]
    reply = meter.command("tempo red white")
    assert reply["ok"] is True and reply["state"]["tempo_today"] == "red"  # type: ignore[index]
    assert meter.command("fault bad_checksum label=PAPP times=2")["ok"] is True
    assert meter.snapshot()["faults_waiting"] == 2
    assert meter.command("curve")["ok"] is True and meter.snapshot()["demand_va"] == [500]
    for bad in ("", "power -5", "power x", "tempo purple", "hc 25:00-06:00", "fault lightning", "fly",
                "fault eot when=now", "ejp day maybe"):
        reply = meter.command(bad)
        assert reply["ok"] is False and reply["error"], bad
    assert meter.command("hc 12:00-14:00,23:00-05:00")["ok"] is True
    assert meter.tariff.hc_schedule == ((720, 840), (1380, 300))


def test_a_fault_naming_a_missing_group_sends_the_frame_clean() -> None:
    meter = _meter()
    meter.inject(Fault(FaultKind.BAD_CHECKSUM, label="SINSTS"))  # a standard label on a historic meter
    frames, decoder = _decode(meter.frame(T0))
    assert frames[0].complete and decoder.counters.groups_bad == 0


# --- over a real pty and a real socket ---------------------------------------------------------------------------


def _read_frames(port: serial.Serial, decoder: TicDecoder, count: int, timeout: float = 10.0) -> list[Frame]:
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    while len([f for f in frames if f.complete]) < count and time.monotonic() < deadline:
        frames += decoder.feed(port.read(512))
    return frames


@pytest.mark.timeout(30)
def test_frames_over_a_pty_decode(tmp_path: Path) -> None:
    ticks = iter(range(10**9))
    meter = LinkyMeter(MeterConfig(Mode.STANDARD), curve=constant(1500), start=T0, clock=lambda: T0 + next(ticks))
    control = tmp_path / "linky.sock"
    with LinkySimulator(meter, fast=True, interval=0.01, control=control) as sim:
        with serial.Serial(sim.path, 9600, bytesize=serial.SEVENBITS, parity=serial.PARITY_EVEN, timeout=0.2) as port:
            decoder = TicDecoder()
            frames = [f for f in _read_frames(port, decoder, 3) if f.complete]
            assert len(frames) >= 3 and all(not f.bad_groups and f.mode is Mode.STANDARD for f in frames)
            assert frames[-1].groups["SINSTS"].data == "01500" and frames[-1].groups["ADSC"].data == "031762120855"
            reply = send(control, "power 4200")
            assert reply["ok"] is True
            deadline = time.monotonic() + 10
            seen = ""
            while seen != "04200" and time.monotonic() < deadline:
                for f in decoder.feed(port.read(512)):
                    if "SINSTS" in f.groups:
                        seen = f.groups["SINSTS"].data
            assert seen == "04200"
            assert decoder.counters.groups_bad <= 1  # at most the first partial frame's cut group


@pytest.mark.timeout(30)
def test_the_command_line_simulator(tmp_path: Path) -> None:
    help_text = subprocess.run([sys.executable, "-m", "hil.linky_sim", "--help"], cwd=ROOT, capture_output=True,
                               text=True, timeout=20)
    assert help_text.returncode == 0 and "--control" in help_text.stdout and "rearm" in help_text.stdout
    with LinkySimProcess("--fast", "--interval", "0.02", "--power", "900", "--contract", "hc",
                         control=tmp_path / "ctl.sock") as proc:
        with serial.Serial(proc.path, 1200, bytesize=serial.SEVENBITS, parity=serial.PARITY_EVEN, timeout=0.2) as port:
            decoder, papp = TicDecoder(), ""
            deadline = time.monotonic() + 10
            while papp != "00900" and time.monotonic() < deadline:  # the first second measures no load yet
                for f in decoder.feed(port.read(512)):
                    assert f.groups.get("OPTARIF") in (None, Group("OPTARIF", "HC.."))
                    papp = f.groups["PAPP"].data if "PAPP" in f.groups else papp
            assert papp == "00900" and decoder.counters.frames_complete >= 1
        answer = subprocess.run([sys.executable, "-m", "hil.linky_sim", "--send", str(proc.control), "rearm"],
                                cwd=ROOT, capture_output=True, text=True, timeout=20)
        assert answer.returncode == 0 and '"ok": true' in answer.stdout
        assert proc.send("power 100 200")["ok"] is False  # one phase: one value
    assert not (tmp_path / "ctl.sock").exists()  # removed on SIGTERM


def test_tariff_defaults() -> None:
    assert Tariff().hc_schedule == ((22 * 60, 6 * 60),) and Tariff().tempo_tomorrow is Colour.NONE


def test_the_dry_contact_bit_reads_as_the_spec_says_closed_in_off_peak_hours_on_hc() -> None:
    """STGE bit 0 is 0 when the dry contact is closed, 1 when open (Enedis-NOI-CPT_54E), and the
    gateway's decoder reads the simulator's register that way."""
    from zaas_edge.drivers.tic import decode_status

    meter = _meter(Mode.STANDARD, contract=Contract.HC, va=1800)  # 21:00 local: HP, then HC from 22:00
    peak = _one(meter, T0 + 1)
    off_peak = _one(meter, T0 + 2 * 3600)
    assert _stge(peak) & 1 == 1 and decode_status(peak.groups["STGE"].data).dry_contact_open is True
    assert _stge(off_peak) & 1 == 0 and decode_status(off_peak.groups["STGE"].data).dry_contact_open is False
