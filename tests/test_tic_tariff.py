"""Tariff state from TIC frames: contract, period, Tempo colours, peaks, next change.

Rules from shared/ENERGY.md §3.3 (Tempo HP 06-22 h, EJP peak 07:00 to 01:00)
and Enedis-NOI-CPT_54E §6.2.3.22 (day profile ``PJOURF+1``). ``now`` is an
aware time in the meter's zone.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from zaas_edge.drivers.tic import (
    BadGroup,
    Contract,
    Frame,
    Group,
    Mode,
    Period,
    TariffChange,
    TempoColour,
    TicDecoder,
    changes,
    interpret,
    tariff_state,
)

from tests.corpora import corpus_cases, corpus_dir

H, S = Mode.HISTORIC, Mode.STANDARD
PARIS_WINTER = timezone(timedelta(hours=1))


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=PARIS_WINTER)


def _interp(groups: dict[str, str], mode: Mode, complete: bool = True, bad: tuple[str, ...] = ()):
    return interpret(
        Frame(complete, {k: Group(k, v) for k, v in groups.items()}, [BadGroup(b"", "checksum", b) for b in bad], mode)
    )


def _stge(supplier: int = 0, today: int = 0, tomorrow: int = 0, notice: int = 0, peak: int = 0) -> str:
    return f"{(1 << 17) | supplier << 10 | today << 24 | tomorrow << 26 | notice << 28 | peak << 30:08X}"


# --- historic ------------------------------------------------------------------


def test_historic_hc_contract_has_no_known_change() -> None:
    s = tariff_state(_interp({"OPTARIF": "HC..", "PTEC": "HP..", "HHPHC": "A"}, H), _at(5, 12))
    assert (s.contract, s.period, s.period_label, s.contract_name) == (Contract.HC, Period.HP, "HP..", "HC..")
    assert s.next_change is None and "HHPHC" in s.next_change_source and "group A" in s.next_change_source
    assert s.tempo_today is s.tempo_tomorrow is TempoColour.UNKNOWN and not s.peak_notice and not s.peak_active


def test_historic_base() -> None:
    s = tariff_state(_interp({"OPTARIF": "BASE", "PTEC": "TH.."}, H), _at(5, 12))
    assert (s.contract, s.period, s.next_change) == (Contract.BASE, Period.BASE, None)
    assert s.next_change_source


@pytest.mark.parametrize(
    ("ptec", "period", "colour"),
    [
        ("HCJB", Period.HC, TempoColour.BLUE),
        ("HPJB", Period.HP, TempoColour.BLUE),
        ("HCJW", Period.HC, TempoColour.WHITE),
        ("HPJW", Period.HP, TempoColour.WHITE),
        ("HCJR", Period.HC, TempoColour.RED),
        ("HPJR", Period.HP, TempoColour.RED),
    ],
)
def test_historic_tempo_period_and_colours(ptec: str, period: Period, colour: TempoColour) -> None:
    s = tariff_state(_interp({"OPTARIF": "BBR(", "PTEC": ptec, "DEMAIN": "BLAN"}, H), _at(5, 12))
    assert (s.contract, s.period, s.tempo_today, s.tempo_tomorrow) == (
        Contract.TEMPO,
        period,
        colour,
        TempoColour.WHITE,
    )


@pytest.mark.parametrize(
    ("now", "expected"),
    [(_at(5, 12), _at(5, 22)), (_at(5, 23), _at(6, 6)), (_at(5, 3), _at(5, 6)), (_at(5, 22), _at(6, 6))],
)
def test_historic_tempo_next_change_at_06_and_22(now: datetime, expected: datetime) -> None:
    s = tariff_state(_interp({"OPTARIF": "BBR(", "PTEC": "HPJB", "DEMAIN": "----"}, H), now)
    assert s.next_change == expected and "Tempo" in s.next_change_source
    assert s.tempo_tomorrow is TempoColour.UNKNOWN


def test_historic_ejp_notice_then_peak() -> None:
    notice = tariff_state(_interp({"OPTARIF": "EJP.", "PTEC": "HN..", "PEJP": "30"}, H), _at(5, 6, 30))
    assert notice.contract is Contract.EJP and notice.period is Period.NORMAL
    assert notice.peak_notice and not notice.peak_active and notice.next_change == _at(5, 7)
    peak = tariff_state(_interp({"OPTARIF": "EJP.", "PTEC": "PM.."}, H), _at(5, 8), previous=notice)
    assert peak.period is Period.PEAK and peak.peak_active and not peak.peak_notice
    assert peak.next_change == _at(6, 1)
    quiet = tariff_state(_interp({"OPTARIF": "EJP.", "PTEC": "HN.."}, H), _at(6, 2), previous=peak)
    assert quiet.next_change is None and "PEJP" in quiet.next_change_source
    assert [c.field for c in changes(notice, peak)] == ["period", "peak_notice", "peak_active"]


def test_a_frame_without_tariff_labels_keeps_the_previous_state() -> None:
    full = tariff_state(_interp({"OPTARIF": "BBR(", "PTEC": "HCJR", "DEMAIN": "ROUG", "PEJP": "30"}, H), _at(5, 23))
    short = _interp({"ADIR1": "062", "ADCO": "0", "IINST1": "062", "IINST2": "0", "IINST3": "0"}, H)
    kept = tariff_state(short, _at(5, 23, 1), previous=full)
    assert changes(full, kept) == []
    assert kept.period is Period.HC and kept.tempo_tomorrow is TempoColour.RED and kept.peak_notice
    interrupted = tariff_state(_interp({"OPTARIF": "BBR("}, H, complete=False), _at(5, 23, 2), previous=kept)
    assert interrupted.peak_notice  # PEJP absent from a cut frame says nothing
    lost = tariff_state(_interp({"OPTARIF": "BBR(", "PTEC": "HCJR"}, H, bad=("PEJP",)), _at(5, 23, 3), previous=kept)
    assert lost.peak_notice  # PEJP rejected by its checksum says nothing either
    ended = tariff_state(_interp({"OPTARIF": "BBR(", "PTEC": "HCJR"}, H), _at(5, 23, 4), previous=kept)
    assert not ended.peak_notice and [c.field for c in changes(kept, ended)] == ["peak_notice"]


def test_an_empty_frame_keeps_everything() -> None:
    first = tariff_state(_interp({"OPTARIF": "HC..", "PTEC": "HC.."}, H), _at(5, 1))
    empty = interpret(Frame(False, {}, [], None))
    assert changes(first, tariff_state(empty, _at(5, 1), previous=first)) == []


# --- standard ------------------------------------------------------------------

_PV_PROFILE = "00008002 0050C001 06508002 1220C001 14208002 NONUTILE NONUTILE NONUTILE NONUTILE NONUTILE NONUTILE"


def _standard(ltarf: str, ntarf: str, stge: str, **extra: str) -> dict[str, str]:
    return {"NGTF": "  H PLEINE/CREUSE", "LTARF": ltarf, "NTARF": ntarf, "STGE": stge, **extra}


def test_standard_hc_with_same_day_profile_finds_todays_next_slot() -> None:
    groups = _standard(" HEURE  PLEINE  ", "02", _stge(supplier=1), NJOURF="01", **{"NJOURF+1": "01"})
    groups["PJOURF+1"] = _PV_PROFILE
    s = tariff_state(_interp(groups, S), _at(5, 9))
    assert (s.contract, s.contract_name, s.period, s.supplier_index) == (Contract.HC, "H PLEINE/CREUSE", Period.HP, 2)
    assert s.next_change == _at(5, 12, 20) and s.next_change_source.startswith("PJOURF+1")
    late = tariff_state(_interp(groups, S), _at(5, 15))
    assert late.next_change == _at(6, 0, 50)  # 00:00 tomorrow keeps index 2, 00:50 switches to 1


def test_standard_other_day_profile_gives_tomorrows_first_change() -> None:
    groups = _standard("HEURE CREUSE", "01", _stge(supplier=0), NJOURF="00", **{"NJOURF+1": "03"})
    groups["PJOURF+1"] = _PV_PROFILE
    s = tariff_state(_interp(groups, S), _at(5, 20))
    assert s.period is Period.HC and s.next_change == _at(6, 0) and "not sent" in s.next_change_source


def test_standard_without_profile_says_so_and_keeps_a_known_future_change() -> None:
    groups = _standard("HEURE CREUSE", "01", _stge(), NJOURF="00", **{"NJOURF+1": "00", "PJOURF+1": _PV_PROFILE})
    full = tariff_state(_interp(groups, S), _at(5, 3))
    assert full.next_change == _at(5, 6, 50)
    del groups["PJOURF+1"]
    assert tariff_state(_interp(groups, S), _at(5, 3, 1), previous=full).next_change == _at(5, 6, 50)
    alone = tariff_state(_interp(groups, S), _at(5, 3, 1))
    assert alone.next_change is None and "PJOURF+1" in alone.next_change_source


def test_standard_tempo_colours_and_mobile_peak_from_stge() -> None:
    s = tariff_state(
        _interp(
            {
                "NGTF": "     TEMPO      ",
                "LTARF": "    HP  BLEU    ",
                "NTARF": "02",
                "STGE": _stge(supplier=1, today=1, tomorrow=3, notice=2),
            },
            S,
        ),
        _at(5, 12),
    )
    assert (s.contract, s.period, s.tempo_today, s.tempo_tomorrow) == (
        Contract.TEMPO,
        Period.HP,
        TempoColour.BLUE,
        TempoColour.RED,
    )
    assert s.peak_notice and not s.peak_active and s.period_label == "HP BLEU"
    peak = tariff_state(
        _interp({"NGTF": "TEMPO", "LTARF": "HP BLEU", "STGE": _stge(supplier=1, today=1, peak=2)}, S),
        _at(5, 13),
        previous=s,
    )
    assert peak.peak_active and peak.period is Period.PEAK and not peak.peak_notice
    got = {c.field: (c.old, c.new) for c in changes(s, peak)}
    assert got == {
        "period": ("hp", "peak"),
        "tempo_tomorrow": ("red", "unknown"),
        "peak_notice": ("true", "false"),
        "peak_active": ("false", "true"),
    }
    assert all(isinstance(c, TariffChange) and c.kind == f"tariff.{c.field}" for c in changes(s, peak))


@pytest.mark.parametrize(
    ("name", "contract"),
    [
        ("BASE", Contract.BASE),
        ("TEMPO", Contract.TEMPO),
        ("HC SEM WE", Contract.HC),
        ("EJP", Contract.EJP),
        ("OFFRE VERTE", Contract.OTHER),
    ],
)
def test_standard_contract_names(name: str, contract: Contract) -> None:
    assert tariff_state(_interp({"NGTF": name}, S), _at(5, 12)).contract is contract


def test_first_state_has_no_changes_and_a_mode_switch_starts_afresh() -> None:
    historic = tariff_state(_interp({"OPTARIF": "HC..", "PTEC": "HC.."}, H), _at(5, 1))
    assert changes(None, historic) == []
    standard = tariff_state(_interp({"NGTF": "BASE"}, S), _at(5, 1), previous=historic)
    assert standard.period is Period.UNKNOWN and standard.contract is Contract.BASE


# --- the real captures -------------------------------------------------------------


@pytest.mark.parametrize("capture", corpus_cases("tic", "captures"))
def test_captures_give_one_steady_tariff_state(capture: dict) -> None:
    frames = TicDecoder().feed((corpus_dir("tic") / capture["file"]).read_bytes())
    state, seen = None, []
    for n, frame in enumerate(frames):
        new = tariff_state(interpret(frame), _at(5, 9, 20) + timedelta(seconds=n), previous=state)
        seen += changes(state, new)
        state = new
    assert seen == [] and state is not None
    if capture["mode"] == "standard":
        assert (state.contract, state.period, state.supplier_index) == (Contract.BASE, Period.BASE, 1)
        assert state.next_change is None and "no index change" in state.next_change_source
    else:
        assert (state.contract, state.period) == (Contract.HC, Period.HP)
