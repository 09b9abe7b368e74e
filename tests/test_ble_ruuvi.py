"""RuuviTag data format 5: the spec's own vectors, real adverts, sentinels, garbage."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zaas_edge.drivers.ble.ruuvi import RuuviDF5, decode_df5, manufacturer_data

from tests.corpora import corpus_dir
from zaas_edge.errors import ProtocolError

VALID = bytes.fromhex("0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F")


def _corpus() -> dict:
    return json.loads((corpus_dir("ruuvi") / "df5_vectors.json").read_text())


def test_spec_valid_vector_field_by_field() -> None:
    r = decode_df5(VALID)
    assert r.temperature_c == pytest.approx(24.3)
    assert r.humidity_pct == pytest.approx(53.49)
    assert r.pressure_pa == 100044
    assert (r.acc_x_g, r.acc_y_g, r.acc_z_g) == (0.004, -0.004, 1.036)
    assert (r.battery_v, r.tx_power_dbm) == (2.977, 4)
    assert (r.movement_counter, r.measurement_sequence, r.mac) == (66, 205, "CB:B8:33:4C:88:4F")


def test_readings_use_gateway_units() -> None:
    readings = {q: (v, u) for q, v, u in decode_df5(VALID).readings()}
    assert readings["temperature"] == (pytest.approx(24.3), "degC")
    assert readings["humidity"] == (pytest.approx(53.49), "%")
    assert readings["pressure"] == (pytest.approx(1000.44), "hPa")
    assert readings["acceleration_z"] == (1.036, "g")
    assert readings["battery_voltage"] == (2.977, "V")
    assert readings["tx_power"] == (4.0, "dBm")
    assert readings["movement_counter"] == (66.0, "count")


def test_sentinels_make_no_readings() -> None:
    invalid = bytes.fromhex("058000FFFFFFFF800080008000FFFFFFFFFFFFFFFFFFFFFF")
    assert decode_df5(invalid) == RuuviDF5(*([None] * 11))
    assert decode_df5(invalid).readings() == []


def test_battery_and_tx_power_share_two_bytes() -> None:
    # 11 bits of millivolts above 1600, 5 bits of 2 dBm steps above -40.
    power = ((3000 - 1600) << 5) | ((8 + 40) // 2)
    data = VALID[:13] + struct.pack(">H", power) + VALID[15:]
    r = decode_df5(data)
    assert (r.battery_v, r.tx_power_dbm) == (3.0, 8)
    only_tx_missing = VALID[:13] + struct.pack(">H", (1400 << 5) | 0x1F) + VALID[15:]
    assert (decode_df5(only_tx_missing).battery_v, decode_df5(only_tx_missing).tx_power_dbm) == (3.0, None)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (bytes.fromhex("03291A1ECE1E"), "data format 3 is not supported"),
        (VALID[:23], "needs 24 bytes, got 23"),
    ],
)
def test_not_df5_raises_protocol_error(data: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        decode_df5(data)


def test_official_vectors() -> None:
    vectors = _corpus()["official_vectors"]
    assert [v["id"] for v in vectors] == ["valid", "minimum", "invalid"]
    for v in vectors:
        r = decode_df5(bytes.fromhex(v["payload_hex"]))
        want = v["expected"]
        got = {
            "temperature_c": r.temperature_c, "pressure_pa": r.pressure_pa, "humidity_pct": r.humidity_pct,
            "acc_x_g": r.acc_x_g, "acc_y_g": r.acc_y_g, "acc_z_g": r.acc_z_g, "tx_power_dbm": r.tx_power_dbm,
            "battery_v": r.battery_v, "movement_counter": r.movement_counter,
            "measurement_sequence": r.measurement_sequence, "mac": r.mac,
        }
        assert set(got) == set(want), v["id"]
        for key, expected in want.items():
            if isinstance(expected, float):
                assert got[key] == pytest.approx(expected, abs=1e-9), (v["id"], key)
            else:
                assert got[key] == expected, (v["id"], key)


def test_ruuvitag_sensor_unit_vector_with_trailing_rssi_byte() -> None:
    case = _corpus()["ruuvitag_sensor_unit_test"]
    want = case["expected_ruuvitag_sensor_units"]
    r = decode_df5(bytes.fromhex(case["payload_hex"]))
    assert r.temperature_c == pytest.approx(want["temperature"]) and r.humidity_pct == pytest.approx(want["humidity"])
    assert r.pressure_pa / 100 == pytest.approx(want["pressure_hpa"])
    assert (r.acc_x_g * 1000, r.acc_y_g * 1000, r.acc_z_g * 1000) == pytest.approx(
        (want["acceleration_x_mg"], want["acceleration_y_mg"], want["acceleration_z_mg"]))
    assert round(r.battery_v * 1000) == want["battery_mv"] and r.tx_power_dbm == want["tx_power"]
    assert r.movement_counter == want["movement_counter"]
    assert r.measurement_sequence == want["measurement_sequence_number"]
    assert r.mac.replace(":", "").lower() == want["mac"]


def test_real_advertisements_agree_with_a_second_implementation() -> None:
    cases = _corpus()["real_advertisements"]["cases"]
    assert len(cases) == 9
    for case in cases:
        raw = bytes.fromhex(case["raw_advertisement_hex"])
        # The scan adapter prefixes the length of the AD structures (and may append the RSSI).
        payload = manufacturer_data(raw[1 : 1 + raw[0]])
        assert payload is not None and bytes.fromhex(case["payload_hex"]).startswith(payload), case
        r = decode_df5(payload)
        ref = case["decoded_by_ruuvitag_sensor_4.1.0"]
        # ruuvitag-sensor rounds to 2 decimals; the format resolves 0.005 degC and 0.0025 %.
        assert r.temperature_c == pytest.approx(ref["temperature"], abs=0.0051)
        assert r.humidity_pct == pytest.approx(ref["humidity"], abs=0.0051)
        if ref["pressure"] is None:
            assert r.pressure_pa is None
        else:
            assert r.pressure_pa / 100 == pytest.approx(ref["pressure"])
        assert (round(r.acc_x_g * 1000), round(r.acc_y_g * 1000), round(r.acc_z_g * 1000)) == (
            ref["acceleration_x"], ref["acceleration_y"], ref["acceleration_z"])
        assert round(r.battery_v * 1000) == ref["battery"] and r.tx_power_dbm == ref["tx_power"]
        assert r.movement_counter == ref["movement_counter"]
        assert r.measurement_sequence == ref["measurement_sequence_number"]
        assert r.mac.replace(":", "").lower() == ref["mac"]


def test_manufacturer_data_walks_ad_structures() -> None:
    adv = bytes.fromhex("020106") + bytes([1 + 2 + len(VALID), 0xFF, 0x99, 0x04]) + VALID
    assert manufacturer_data(adv) == VALID
    assert manufacturer_data(bytes.fromhex("020106")) is None
    assert manufacturer_data(bytes.fromhex("1bff9904")) is None  # truncated structure


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_garbage_only_raises_protocol_error(data: bytes) -> None:
    try:
        r = decode_df5(data)
    except ProtocolError:
        return
    assert data[0] == 5 and len(data) >= 24
    for _, value, _ in r.readings():
        assert value == value  # never NaN


@settings(max_examples=300, deadline=None)
@given(
    st.integers(-32767, 32767), st.integers(0, 65534), st.integers(0, 65534),
    st.integers(0, 2046), st.integers(0, 30), st.integers(0, 254), st.integers(0, 65534),
)
def test_encoded_fields_decode_back(t: int, h: int, p: int, mv: int, tx: int, move: int, seq: int) -> None:
    data = struct.pack(">BhHHhhhHBH6s", 5, t, h, p, 1, -2, 3, (mv << 5) | tx, move, seq, bytes(range(6)))
    r = decode_df5(data)
    assert r.temperature_c == pytest.approx(t * 0.005) and r.humidity_pct == pytest.approx(h * 0.0025)
    assert r.pressure_pa == p + 50000 and (r.acc_x_g, r.acc_y_g, r.acc_z_g) == (0.001, -0.002, 0.003)
    assert r.battery_v == pytest.approx(1.6 + mv / 1000) and r.tx_power_dbm == -40 + 2 * tx
    assert (r.movement_counter, r.measurement_sequence, r.mac) == (move, seq, "00:01:02:03:04:05")
