"""TIC meaning: numeric labels become readings, state labels are decoded.

Expected values come from Enedis-NOI-CPT_54E v3 (the status register table
§6.2.3.14, the relay example §6.2.3.19, the day-profile action bits
§6.2.3.22) and from the first complete frame of each real capture in
``shared/corpora/tic``. The property test holds the one rule of
:func:`interpret`: no frame of any groups makes it raise.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zaas_edge.drivers.tic import (
    MEASURES,
    AlarmTracker,
    BadGroup,
    Breaker,
    ContactAction,
    CplStatus,
    Euridis,
    Frame,
    Group,
    Horodate,
    Mode,
    TempoColour,
    TicDecoder,
    TicError,
    decode_relays,
    decode_schedule,
    decode_status,
    interpret,
    points,
    tariff_state,
)

from tests.corpora import corpus_cases, corpus_dir

H, S = Mode.HISTORIC, Mode.STANDARD


def _frame(groups: dict[str, str], mode: Mode, bad: tuple[str, ...] = (), complete: bool = True) -> Frame:
    return Frame(
        complete=complete,
        groups={label: Group(label, data) for label, data in groups.items()},
        bad_groups=[BadGroup(b"x", "checksum", label) for label in bad],
        mode=mode,
    )


# --- STGE bit by bit ----------------------------------------------------------


def test_status_zero_is_all_quiet() -> None:
    s = decode_status("00000000")
    assert not s.dry_contact_open and s.breaker is Breaker.CLOSED and not s.breaker_open
    assert not (s.cover_open or s.over_voltage or s.over_reference_power or s.producer or s.active_energy_negative)
    assert s.supplier_index == 1 and s.distributor_index == 1
    assert not s.clock_degraded and not s.standard_mode
    assert s.euridis is Euridis.DISABLED and s.cpl is CplStatus.NEW_UNLOCKED and not s.cpl_synchronised
    assert s.tempo_today is s.tempo_tomorrow is TempoColour.UNKNOWN
    assert s.mobile_peak_notice == s.mobile_peak == 0


@pytest.mark.parametrize(
    ("bit", "field"),
    [
        (0, "dry_contact_open"),
        (4, "cover_open"),
        (6, "over_voltage"),
        (7, "over_reference_power"),
        (8, "producer"),
        (9, "active_energy_negative"),
        (16, "clock_degraded"),
        (17, "standard_mode"),
        (23, "cpl_synchronised"),
    ],
)
def test_each_single_status_bit(bit: int, field: str) -> None:
    s = decode_status(f"{1 << bit:08X}")
    assert getattr(s, field) is True
    flags = [
        "dry_contact_open",
        "cover_open",
        "over_voltage",
        "over_reference_power",
        "producer",
        "active_energy_negative",
        "clock_degraded",
        "standard_mode",
        "cpl_synchronised",
    ]
    assert [f for f in flags if getattr(s, f)] == [field]


@pytest.mark.parametrize("code", range(8))
def test_breaker_codes_bits_1_to_3(code: int) -> None:
    want = [
        Breaker.CLOSED,
        Breaker.OPEN_OVER_POWER,
        Breaker.OPEN_OVER_VOLTAGE,
        Breaker.OPEN_LOAD_SHEDDING,
        Breaker.OPEN_REMOTE_ORDER,
        Breaker.OPEN_OVERHEAT_HIGH_CURRENT,
        Breaker.OPEN_OVERHEAT_LOW_CURRENT,
        Breaker.UNKNOWN,
    ][code]
    s = decode_status(f"{code << 1:08X}")
    assert s.breaker is want and s.breaker_open is (code != 0)
    assert not s.dry_contact_open and not s.cover_open


@pytest.mark.parametrize("value", range(16))
def test_supplier_index_bits_10_to_13(value: int) -> None:
    assert decode_status(f"{value << 10:08X}").supplier_index == value + 1


@pytest.mark.parametrize("value", range(4))
def test_two_bit_fields(value: int) -> None:
    colours = [TempoColour.UNKNOWN, TempoColour.BLUE, TempoColour.WHITE, TempoColour.RED]
    assert decode_status(f"{value << 14:08X}").distributor_index == value + 1
    assert (
        decode_status(f"{value << 19:08X}").euridis
        is [Euridis.DISABLED, Euridis.ENABLED, Euridis.UNKNOWN, Euridis.ENABLED_SECURED][value]
    )
    assert (
        decode_status(f"{value << 21:08X}").cpl
        is [CplStatus.NEW_UNLOCKED, CplStatus.NEW_LOCKED, CplStatus.REGISTERED, CplStatus.UNKNOWN][value]
    )
    assert decode_status(f"{value << 24:08X}").tempo_today is colours[value]
    assert decode_status(f"{value << 26:08X}").tempo_tomorrow is colours[value]
    assert decode_status(f"{value << 28:08X}").mobile_peak_notice == value
    assert decode_status(f"{value << 30:08X}").mobile_peak == value


def test_status_of_a_three_phase_tempo_producer() -> None:
    """ENERGY.md §3.1's example ``013A0501``: producer, index 2 (NTARF 02), standard TIC, blue today."""
    s = decode_status("013A0501")
    assert s.producer and s.supplier_index == 2 and s.standard_mode
    assert s.tempo_today is TempoColour.BLUE and s.tempo_tomorrow is TempoColour.UNKNOWN
    assert s.dry_contact_open  # bit 0 = 1: "ouvert" in the spec's table
    assert s.breaker is Breaker.CLOSED and s.euridis is Euridis.ENABLED_SECURED and s.cpl is CplStatus.NEW_LOCKED


def test_status_everything_set() -> None:
    s = decode_status("FFFFFFFF")
    assert s.breaker is Breaker.UNKNOWN and s.supplier_index == 16 and s.distributor_index == 4
    assert s.tempo_today is s.tempo_tomorrow is TempoColour.RED and s.mobile_peak == s.mobile_peak_notice == 3


@pytest.mark.parametrize("data", ["", "0000000", "000000000", "0000000G", "-0000001", "  12  "])
def test_status_refuses_what_is_not_8_hex_digits(data: str) -> None:
    with pytest.raises(TicError):
        decode_status(data)


# --- RELAIS and the day profile -------------------------------------------------


def test_relays_spec_example() -> None:
    """§6.2.3.19: relays 3, 4 and 8 closed send 140; relay 1 alone sends 001."""
    assert decode_relays("140").closed == (False, False, True, True, False, False, False, True)
    one = decode_relays("001")
    assert one.dry_contact_closed and one.closed == (True,) + (False,) * 7
    for bad in ("256", "1A0", "", "-01"):
        with pytest.raises(TicError):
            decode_relays(bad)


def test_day_profile_with_afternoon_off_peak() -> None:
    data = "00008002 0050C001 06508002 1220C001 14208002 NONUTILE NONUTILE NONUTILE NONUTILE NONUTILE NONUTILE"
    entries = decode_schedule(data)
    assert [(e.start, e.supplier_index, e.dry_contact) for e in entries] == [
        (time(0, 0), 2, ContactAction.OPEN),
        (time(0, 50), 1, ContactAction.CLOSE),
        (time(6, 50), 2, ContactAction.OPEN),
        (time(12, 20), 1, ContactAction.CLOSE),
        (time(14, 20), 2, ContactAction.OPEN),
    ]
    assert entries[1].raw == "0050C001" and entries[1].virtual_contacts == (False,) * 7


def test_day_profile_action_bits() -> None:
    (e,) = decode_schedule("2230" + f"{1 << 14 | 0b1010101 << 4 | 0xB:04X}")
    assert e.start == time(22, 30) and e.dry_contact is ContactAction.TEMPO
    assert e.supplier_index is None  # 11..15: no change of index
    assert e.virtual_contacts == (True, False, True, False, True, False, True)
    (keep,) = decode_schedule("06000000")
    assert keep.dry_contact is ContactAction.KEEP and keep.supplier_index is None


@pytest.mark.parametrize("data", ["2400C001", "0060C001", "12345", "0000C00G", "X000C001"])
def test_day_profile_refuses_a_bad_slot(data: str) -> None:
    with pytest.raises(TicError):
        decode_schedule(f"00008001 {data} NONUTILE")


# --- interpret ----------------------------------------------------------------


def test_historic_single_phase_tempo_frame() -> None:
    i = interpret(
        _frame(
            {
                "ADCO": "021528603314",
                "OPTARIF": "BBR(",
                "ISOUSC": "45",
                "BBRHCJB": "000123456",
                "BBRHPJB": "000234567",
                "BBRHCJW": "000000010",
                "BBRHPJW": "000000020",
                "BBRHCJR": "000000030",
                "BBRHPJR": "000000040",
                "PTEC": "HPJW",
                "DEMAIN": "ROUG",
                "IINST": "012",
                "IMAX": "090",
                "PAPP": "02830",
                "HHPHC": "Y",
                "MOTDETAT": "000000",
            },
            H,
        )
    )
    assert (
        i.meter_id == "021528603314" and i.tariff_option == "BBR(" and i.tariff_period == "HPJW" and i.hphc_group == "Y"
    )
    assert i.tomorrow is TempoColour.RED
    assert i.value("energy_tempo_blue_hc") == 123456 and i.value("energy_tempo_red_hp") == 40
    assert i.measurements["apparent_power"].unit == "VA" and i.value("apparent_power") == 2830
    assert i.value("current_l1") == 12 and i.value("subscribed_current") == 45
    assert i.rejected == () and i.unknown == () and i.overcurrent == ()


def test_historic_adps_and_ejp_notice() -> None:
    i = interpret(
        _frame(
            {
                "OPTARIF": "EJP.",
                "EJPHN": "000001000",
                "EJPHPM": "000000500",
                "PEJP": "30",
                "PTEC": "HN..",
                "IINST": "046",
                "ADPS": "046",
                "PAPP": "09200",
            },
            H,
        )
    )
    assert i.ejp_notice_min == 30 and i.value("energy_ejp_peak") == 500
    assert [m.quantity for m in i.overcurrent] == ["overcurrent"] and i.overcurrent[0].value == 46


@pytest.mark.parametrize(("data", "missing"), [("00", set()), ("02", {1}), ("0C", {2, 3}), ("0E", {1, 2, 3})])
def test_ppot_phases_missing(data: str, missing: set[int]) -> None:
    i = interpret(_frame({"PPOT": data}, H))
    assert i.phases_missing == missing and i.unknown == () and i.rejected == ()
    assert [r.label for r in interpret(_frame({"PPOT": "X"}, H)).rejected] == ["PPOT"]


def test_three_phase_short_frame() -> None:
    i = interpret(
        _frame({"ADIR1": "062", "ADCO": "021528603314", "IINST1": "062", "IINST2": "010", "IINST3": "000"}, H)
    )
    assert i.short and i.value("current_l2") == 10 and i.value("overcurrent_l1") == 62


def test_non_numeric_values_are_rejected_and_the_rest_kept() -> None:
    i = interpret(
        _frame(
            {
                "PAPP": "0A680",
                "IINST": "003",
                "STGE": "nothex!!",
                "NTARF": "xx",
                "HCHC": " ",
                "PJOURF+1": "2500C001",
                "RELAIS": "999",
            },
            S,
        )
    )
    assert {r.label for r in i.rejected} == {"PAPP", "STGE", "NTARF", "HCHC", "PJOURF+1", "RELAIS"}
    assert all(r.reason for r in i.rejected)
    assert i.value("current_l1") == 3 and i.value("apparent_power") is None
    assert i.status is None and i.supplier_index is None and i.tomorrow_schedule is None


def test_unknown_labels_are_listed_not_raised() -> None:
    i = interpret(_frame({"FOO": "1", "PAPP": "00100"}, H))
    assert i.unknown == ("FOO",) and i.value("apparent_power") == 100


def test_horodated_values_keep_their_horodate() -> None:
    frame = Frame(
        True,
        {
            "SMAXSN": Group("SMAXSN", "01024", Horodate.parse("H230301065253")),
            "DPM1": Group("DPM1", "01", Horodate.parse(" 230302060000")),
            "FPM1": Group("FPM1", "01", Horodate.parse(" 230302220000")),
        },
        [],
        S,
    )
    i = interpret(frame)
    assert i.measurements["apparent_power_max_today"].horodate == Horodate.parse("H230301065253")
    (peak,) = i.mobile_peaks
    assert peak.number == 1 and peak.start is not None and peak.start.hour == 6 and peak.end.hour == 22


def test_every_table_label_reads_as_its_quantity() -> None:
    for m in MEASURES.values():
        i = interpret(_frame({m.label: "00042"}, m.mode))
        assert i.measurements[m.quantity].value == 42 * m.scale and i.measurements[m.quantity].unit == m.unit
    assert all(re.fullmatch(r"[a-z][a-z0-9_]{0,62}", m.quantity) for m in MEASURES.values())  # profile pattern


def test_points_one_per_quantity() -> None:
    historic = points("linky", mode=H)
    keys = [p.key for p in historic]
    assert len(keys) == len(set(keys)) and "linky/current_l1" in keys and "linky/energy_tempo_red_hp" in keys
    papp = next(p for p in historic if p.quantity == "apparent_power")
    assert (papp.unit, papp.resolution) == ("VA", 10.0) and "PAPP" in papp.description
    seen = points("linky", labels=["SINSTS", "EAST", "IRMS1", "STGE"])
    assert [(p.quantity, p.unit) for p in seen] == [
        ("energy_import", "Wh"),
        ("current_l1", "A"),
        ("apparent_power", "VA"),
    ]


def test_points_page_lists_every_measure() -> None:
    page = (Path(__file__).resolve().parents[1] / "drivers" / "tic" / "POINTS.md").read_text()
    rows = re.findall(r"^\| `([^`]+)` \| `([^`]+)` \| ([^|]+) \|", page, re.M)
    assert {(label, q, unit.strip()) for label, q, unit in rows} == {
        (m.label, m.quantity, m.unit) for m in MEASURES.values()
    }


# --- the real captures ------------------------------------------------------------


def _frames(capture: dict) -> list[Frame]:
    decoder = TicDecoder()
    return decoder.feed((corpus_dir("tic") / capture["file"]).read_bytes())


@pytest.mark.parametrize("capture", corpus_cases("tic", "captures"))
def test_every_capture_frame_interprets_cleanly(capture: dict) -> None:
    tracker = AlarmTracker()
    for frame in _frames(capture):
        i = interpret(frame)
        assert i.rejected == () and i.unknown == ()
        assert tracker.update(i) == []  # neither capture shows an over-power or an open breaker
    first = interpret(next(f for f in _frames(capture) if f.complete))
    expected = capture["first_complete_frame"]
    for label, want in expected.items():
        m = MEASURES.get(label)
        if m is not None:
            assert first.measurements[m.quantity].value == int(want["data"]), label
    if capture["mode"] == "standard":
        assert first.contract_name == "BASE" and first.tariff_label == "BASE" and first.supplier_index == 1
        assert first.status is not None and first.status.standard_mode and not first.status.breaker_open
        assert first.status.supplier_index == first.supplier_index  # spec §6.2.3.20: NTARF matches bits 10..13
        assert first.relays is not None and not first.relays.dry_contact_closed
        assert [(e.start, e.supplier_index) for e in first.tomorrow_schedule or ()] == [(time(0), 1)]
        assert first.value("apparent_power") == 240 and first.value("reference_power") == 4
    else:
        assert first.tariff_option == "HC.." and first.tariff_period == "HP.." and first.hphc_group == "A"
        assert first.value("energy_hc") == 6906827 and first.value("energy_hp") == 7617931
        assert first.value("apparent_power") == 680


# --- property ------------------------------------------------------------------------

_labels = st.sampled_from(
    sorted(MEASURES)
    + [
        "STGE",
        "RELAIS",
        "PJOURF+1",
        "PPOINTE",
        "PTEC",
        "OPTARIF",
        "DEMAIN",
        "PEJP",
        "NTARF",
        "NJOURF",
        "NJOURF+1",
        "LTARF",
        "NGTF",
        "HHPHC",
        "ADCO",
        "ADSC",
        "DATE",
        "DPM1",
        "FPM2",
        "MSG1",
    ]
) | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=9)
_data = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40) | st.from_regex(
    r"[0-9A-F]{8}|[0-9]{1,9}|([0-9]{4}[0-9A-F]{4} ){1,11}|NONUTILE", fullmatch=True
)


@settings(max_examples=300, deadline=None)
@given(
    groups=st.dictionaries(_labels, _data, max_size=25),
    mode=st.sampled_from([H, S, None]),
    complete=st.booleans(),
    bad=st.lists(_labels, max_size=3),
)
def test_interpret_never_raises(groups: dict[str, str], mode: Mode | None, complete: bool, bad: list[str]) -> None:
    frame = Frame(
        complete, {k: Group(k, v) for k, v in groups.items()}, [BadGroup(b"", "checksum", b) for b in bad], mode
    )
    i = interpret(frame)
    assert set(i.labels) == set(groups)
    state = tariff_state(i, datetime(2026, 1, 5, 12, 0, tzinfo=UTC))
    tariff_state(i, datetime(2026, 1, 5, 23, 59, tzinfo=UTC), previous=state)
    AlarmTracker().update(i)


@settings(max_examples=200, deadline=None)
@given(
    chunks=st.lists(st.binary(max_size=200) | st.sampled_from([b"\x02", b"\x03", b"\x04", b"\n", b"\r"]), max_size=40)
)
def test_random_bytes_through_codec_and_interpret_never_raise(chunks: list[bytes]) -> None:
    """Line noise through the codec and then the interpreter: values or nothing, never an exception."""
    decoder, tracker = TicDecoder(), AlarmTracker()
    state = None
    for frame in decoder.feed(b"".join(chunks)):
        i = interpret(frame)
        state = tariff_state(i, datetime(2026, 1, 5, 12, 0, tzinfo=UTC), previous=state)
        tracker.update(i)
