"""BTHome v2 through bthome-ble: the recorded upstream cases, encryption errors, repeats, garbage."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from hypothesis import given, settings
from hypothesis import strategies as st
from zaas_edge.drivers.ble.bthome import BTHomeDevice, BTHomeEvent, decode_bthome, parse_bindkey

from tests.corpora import corpus_dir
from zaas_edge.errors import ConfigError, ProtocolError

MAC = "54:48:E6:8F:80:A5"
KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
# The gateway's units for the library's (see drivers/ble/bthome.py); the corpus carries the library's.
UNITS = {"°C": "degC", "mbar": "hPa", "m³": "m3", "m/s²": "m/s2", "µS/cm": "uS/cm", "°": "deg", None: ""}
QUANTITIES = {"carbon_dioxide": "co2"}


def encrypt_advert(plain: bytes, counter: int, mac: str = MAC, key: bytes = KEY) -> bytes:
    """An encrypted BTHome v2 advert per the BTHome spec (AES-CCM, 4-byte tag), for replay tests."""
    adv_info = 0x41  # version 2, encrypted
    nonce = bytes.fromhex(mac.replace(":", "")) + b"\xd2\xfc" + bytes([adv_info]) + counter.to_bytes(4, "little")
    sealed = AESCCM(key, tag_length=4).encrypt(nonce, plain, None)
    return bytes([adv_info]) + sealed[:-4] + counter.to_bytes(4, "little") + sealed[-4:]


# ---------------------------------------------------------------- own cases


def test_plain_advert_to_readings() -> None:
    # packet id 63, battery 94 %, temperature 21.78 degC, humidity 60.6 %, voltage 2.947 V
    advert = decode_bthome(bytes.fromhex("40003f015e02820803ac170c830b"), MAC)
    assert advert.packet_id == 63 and not advert.encrypted and advert.mac == MAC
    assert advert.readings == (
        ("battery", 94.0, "%"), ("temperature", 21.78, "degC"), ("humidity", 60.6, "%"), ("voltage", 2.947, "V"),
    )


def test_encrypted_advert_with_the_right_key() -> None:
    advert = decode_bthome(encrypt_advert(bytes.fromhex("02ca0903bf13"), 7), MAC, KEY.hex())
    assert advert.encrypted and advert.readings == (("temperature", 25.06, "degC"), ("humidity", 50.55, "%"))


def test_wrong_bindkey_is_a_protocol_error_that_says_so() -> None:
    with pytest.raises(ProtocolError, match="could not be decrypted: wrong bindkey"):
        decode_bthome(encrypt_advert(bytes.fromhex("02ca09"), 7), MAC, bytes(16))


def test_encrypted_advert_without_bindkey_asks_for_one() -> None:
    with pytest.raises(ProtocolError, match="configure the device's bindkey"):
        decode_bthome(encrypt_advert(bytes.fromhex("02ca09"), 7), MAC)


def test_plaintext_from_a_device_with_a_bindkey_is_refused() -> None:
    with pytest.raises(ProtocolError, match="unencrypted advert although a bindkey is configured"):
        decode_bthome(bytes.fromhex("4002ca09"), MAC, KEY)


def test_wrong_mac_breaks_the_nonce() -> None:
    with pytest.raises(ProtocolError, match="could not be decrypted"):
        decode_bthome(encrypt_advert(bytes.fromhex("02ca09"), 7), "A4:C1:38:8D:18:B2", KEY)


@pytest.mark.parametrize(("data", "reason"), [(b"", "empty"), (b"\x00", "version 0"), (b"\x60\x02\x00", "version 3")])
def test_not_bthome_v2(data: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        decode_bthome(data, MAC)


@pytest.mark.parametrize("key", ["abc", "00" * 15, b"\x00" * 17])
def test_malformed_bindkey_is_a_config_error(key: str | bytes) -> None:
    with pytest.raises(ConfigError, match="bindkey"):
        parse_bindkey(key)
    assert parse_bindkey(None) is None and parse_bindkey(KEY.hex()) == KEY


def test_binary_sensors_and_events() -> None:
    advert = decode_bthome(bytes.fromhex("44000a0f011001" + "3a04"), MAC)
    assert advert.readings == (("generic", 1.0, "bool"), ("power_state", 1.0, "bool"))
    assert advert.events == (BTHomeEvent("button", "long_press", None),)


def test_device_drops_repeated_packet_ids_within_four_seconds() -> None:
    device = BTHomeDevice(MAC)
    first = device.decode(bytes.fromhex("40000902ca09"), at=100.0)
    assert first is not None and first.readings == (("temperature", 25.06, "degC"),)
    assert device.decode(bytes.fromhex("40000902ca09"), at=101.0) is None
    assert device.decode(bytes.fromhex("40000802ca09"), at=101.5) is None  # older packet id
    assert device.decode(bytes.fromhex("40000a02cb09"), at=102.0).readings == (("temperature", 25.07, "degC"),)
    assert device.decode(bytes.fromhex("40000a02cb09"), at=110.0) is not None  # 8 s later: a new packet
    assert device.skipped == 2


def test_device_drops_replayed_encrypted_adverts() -> None:
    device = BTHomeDevice(MAC, KEY)
    assert device.decode(encrypt_advert(bytes.fromhex("02ca09"), 300), at=0.0) is not None
    assert device.decode(encrypt_advert(bytes.fromhex("02cb09"), 301), at=10.0).readings == (
        ("temperature", 25.07, "degC"),)
    assert device.decode(encrypt_advert(bytes.fromhex("02cc09"), 150), at=20.0) is None  # counter went back
    device.reset_replay_protection()
    assert device.decode(encrypt_advert(bytes.fromhex("02cd09"), 151), at=30.0).readings == (
        ("temperature", 25.09, "degC"),)
    assert device.decode(encrypt_advert(bytes.fromhex("02cd09"), 151), at=40.0) is None  # the same advert again
    assert device.skipped == 2


def test_device_still_raises_on_a_wrong_key() -> None:
    with pytest.raises(ProtocolError, match="wrong bindkey"):
        BTHomeDevice(MAC, bytes(16)).decode(encrypt_advert(b"\x02\xca\x09", 1), at=0.0)


# ---------------------------------------------------------------- upstream cases


def _expected(exp: dict) -> tuple[dict, dict, set, dict]:
    readings: dict[str, tuple[float, str]] = {}
    attributes: dict[str, str] = {}
    for key, s in exp["sensors"].items():
        if key in ("signal_strength", "packet_id"):
            continue
        if isinstance(s["value"], str):
            attributes[key] = s["value"]
            continue
        unit = UNITS.get(s["unit"], s["unit"]) or ("count" if s["device_class"] == "count" else "")
        readings[QUANTITIES.get(key, key)] = (float(s["value"]), unit)
    for key, b in exp["binary_sensors"].items():
        readings[key if key not in ("power", "battery", "moisture", "gas") else key + "_state"] = (
            1.0 if b["value"] else 0.0, "bool")
    events = {(k, e["event_type"]) for k, e in exp["events"].items()}
    packet_id = exp["sensors"].get("packet_id", {}).get("value")
    return readings, attributes, events, {"packet_id": packet_id}


def _check(advert, exp: dict, name: str) -> None:
    readings, attributes, events, meta = _expected(exp)
    got = {q: (v, u) for q, v, u in advert.readings}
    assert set(got) == set(readings), name
    for q, (value, unit) in readings.items():
        assert got[q][0] == pytest.approx(value) and got[q][1] == unit, (name, q)
    assert dict(advert.attributes) == attributes, name
    assert {(e.key, e.event_type) for e in advert.events} == events, name
    assert advert.packet_id == meta["packet_id"], name


def _cases() -> dict[str, list[dict]]:
    calls = json.loads((corpus_dir("bthome") / "bthome_v2_vectors.json").read_text())
    by_test: dict[str, list[dict]] = defaultdict(list)
    for call in calls:
        by_test[call["test"]].append(call)
    for test in by_test.values():
        test.sort(key=lambda c: c["call_index"])
    return by_test


def test_recorded_upstream_adverts() -> None:
    cases = _cases()
    assert sum(len(c) for c in cases.values()) == 63
    passed = 0
    for name, calls in cases.items():
        if len(calls) > 1:
            continue  # stateful: replayed in order below
        call = calls[0]
        exp = call["expected"]
        data = bytes.fromhex(call["service_data_fcd2"])
        if exp["title"] is None:  # the library refused the advert outright
            with pytest.raises(ProtocolError, match="version"):
                decode_bthome(data, call["address"], call["bindkey"])
        elif call["bindkey"] and data[0] & 1 and len(exp["sensors"]) == 1 and not exp["binary_sensors"]:
            # encrypted and nothing decoded: upstream's wrong-bindkey case
            with pytest.raises(ProtocolError, match="wrong bindkey"):
                decode_bthome(data, call["address"], call["bindkey"])
        else:
            _check(decode_bthome(data, call["address"], call["bindkey"]), exp, name)
        passed += 1
    assert passed == 57


def test_recorded_stateful_sequences_replayed_in_order() -> None:
    stateful = {name: calls for name, calls in _cases().items() if len(calls) > 1}
    assert sorted(stateful) == ["test_bthome_shelly_button_no_press", "test_identical_packet_id"]
    for name, calls in stateful.items():
        device = BTHomeDevice(calls[0]["address"], calls[0]["bindkey"])
        previous = None
        for i, call in enumerate(calls):
            advert = device.decode(bytes.fromhex(call["service_data_fcd2"]), at=float(i) * 0.1)
            if advert is None:
                # Dropped as a repeat: upstream's accumulated state shows nothing new either.
                assert call["expected"] == previous, (name, i)
            else:
                _check(advert, call["expected"], f"{name}[{i}]")
            previous = call["expected"]


def test_extra_vectors_from_the_maintainer() -> None:
    extra = json.loads((corpus_dir("bthome") / "extra_vectors.json").read_text())["cases"]
    for case in extra:
        want = case["expected"]
        advert = decode_bthome(bytes.fromhex(case["service_data_hex"]), MAC)
        got = {q: v for q, v, _ in advert.readings}
        assert advert.packet_id == want["packet_id"]
        assert got == pytest.approx({"battery": want["battery_pct"], "temperature": want["temperature_c"],
                                     "humidity": want["humidity_pct"], "voltage": want["voltage_v"]})


# ---------------------------------------------------------------- garbage


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=40), st.sampled_from([None, KEY]))
def test_garbage_only_raises_protocol_error(data: bytes, key: bytes | None) -> None:
    try:
        advert = decode_bthome(data, MAC, key)
    except ProtocolError as exc:
        assert str(exc)
    else:
        for quantity, value, unit in advert.readings:
            assert isinstance(quantity, str) and isinstance(value, float) and isinstance(unit, str)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=20), st.integers(0, 2**32 - 1))
def test_garbage_inside_valid_encryption_only_raises_protocol_error(plain: bytes, counter: int) -> None:
    try:
        advert = decode_bthome(encrypt_advert(plain, counter), MAC, KEY)
    except ProtocolError as exc:
        assert str(exc)
    else:
        assert advert.encrypted
