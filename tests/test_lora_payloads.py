"""LoRaWAN payload codecs against the vendors' published examples, and garbage.

Example payloads and the values they decode to are quoted from:
- Milesight-IoT/SensorDecoders: EM_Series/EM300_Series/EM300-DI/README.md ("Example")
- TheThingsNetwork/lorawan-devices: vendor/milesight-iot/em300-di-codec.yaml (uplinkDecoder example)
- Milesight-IoT/SensorDecoders: EM_Series/EM300_Series/EM300-SLD/README.md ("Example", both payloads)
- Milesight-IoT/SensorDecoders: AM_Series/AM103/README.md ("Example")
- TheThingsNetwork/lorawan-devices: vendor/milesight-iot/am103-codec.yaml (uplinkDecoder example 1)
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zaas_edge.drivers.lora.payloads import CODECS, decode_payload, load_profile, profile_names

from zaas_edge.errors import ConfigError, ProtocolError


def values(codec: str, hex_payload: str, fport: int = 85) -> dict[str, float]:
    d = decode_payload(codec, fport, bytes.fromhex(hex_payload.replace(" ", "")))
    return {q: v for q, v, _ in d.readings}


def test_em300_di_readme_example() -> None:
    d = decode_payload("milesight-em300-di", 85, bytes.fromhex("01755C0367340104686520CE9E74466310015D020000010000"))
    assert {q: v for q, v, _ in d.readings} == {"battery": 92, "temperature": 30.8, "humidity": 50.5}
    assert d.history_records == 1 and not d.partial  # the 0x20 0xCE history record: pulse 256 at 1665561758


def test_em300_di_ttn_example_pulse_counter() -> None:
    d = decode_payload("milesight-em300-di", 85, bytes([0x01, 0x75, 0x5C, 0x05, 0xC8, 0x00, 0x01, 0x00, 0x00]))
    assert [(q, v, u) for q, v, u in d.readings] == [("battery", 92.0, "%"), ("pulse_count", 256.0, "count")]


def test_em300_di_water_conversion_and_alarm_records_from_the_payload_table() -> None:
    # water_conv(2B) + pulse_conv(2B) + water(float LE), then the 9-byte alarm variant with 3 = flow timeout alarm
    body = (10).to_bytes(2, "little") + (10).to_bytes(2, "little") + struct.pack("<f", 12.5)
    d = decode_payload("milesight-em300-di", 85, bytes([0x05, 0xE1]) + body + bytes([0x85, 0xE1]) + body + b"\x03",
                       {"volume_unit": "m3"})
    assert [(q, v, u) for q, v, u in d.readings] == [
        ("volume", 12.5, "m3"), ("volume", 12.5, "m3"), ("water_flow_alarm", 1.0, "bool")]
    assert values("milesight-em300-di", "850001 01") == {"gpio": 1.0, "gpio_alarm": 1.0}


def test_em300_sld_readme_examples() -> None:
    assert values("milesight-em300-sld", "01755C 03673401 046865 050000") == {
        "battery": 92, "temperature": 30.8, "humidity": 50.5, "leak": 0.0}
    d = decode_payload("milesight-em300-sld", 85, bytes.fromhex("20CE9E74466310015D01"))
    assert d.readings == () and d.history_records == 1
    assert values("milesight-em300-sld", "050001") == {"leak": 1.0}


def test_am103_readme_and_ttn_examples() -> None:
    assert values("milesight-am103", "017564 03671801 04686D 077DC501") == {
        "battery": 100, "co2": 453, "temperature": 28, "humidity": 54.5}
    assert values("milesight-am103", "01755C 03673401 046865 077DE704") == {
        "battery": 92, "temperature": 30.8, "humidity": 50.5, "co2": 1255}


def test_negative_temperature_and_device_information_records() -> None:
    # ff0bff (device status) ff0101 (IPSO version) then -5.2 degC (0xFFCC little-endian)
    assert values("milesight-am103", "FF0BFF FF0101 0367CCFF") == {"temperature": -5.2}


def test_other_ports_carry_no_measurements_and_unknown_records_stop_the_walk() -> None:
    assert decode_payload("milesight-am103", 1, b"\x01\x75\x10").ignored
    d = decode_payload("milesight-am103", 85, bytes.fromhex("017564 FE0212"))
    assert d.partial and [q for q, _, _ in d.readings] == ["battery"]
    with pytest.raises(ProtocolError, match="unknown record"):
        decode_payload("milesight-am103", 85, bytes.fromhex("9999"))
    with pytest.raises(ProtocolError, match="needs 2 bytes"):
        decode_payload("milesight-am103", 85, bytes.fromhex("077D01"))
    with pytest.raises(ProtocolError, match="record header"):
        decode_payload("milesight-am103", 85, bytes.fromhex("01756401"))


@settings(max_examples=300, deadline=None)
@given(codec=st.sampled_from(sorted(CODECS)), payload=st.binary(max_size=64), fport=st.sampled_from([85, 85, 1]))
def test_garbage_raises_protocol_error_only(codec: str, payload: bytes, fport: int) -> None:
    try:
        d = decode_payload(codec, fport, payload)
    except ProtocolError:
        return
    assert all(isinstance(v, float) for _, v, _ in d.readings)


def test_every_profile_loads_cites_its_source_and_declares_its_points() -> None:
    names = profile_names()
    assert names == ["milesight-am103", "milesight-em300-di", "milesight-em300-sld"]
    for name in names:
        p = load_profile(name)
        assert p.codec in CODECS
        assert any("SensorDecoders" in s or "lorawan-devices" in s for s in p.source)
        assert {q for q, *_ in p.points} >= {"battery", "temperature"}


def test_profile_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="available: milesight-am103"):
        load_profile("nosuch")
    (tmp_path / "bad.toml").write_text('vendor = "X"\nmodel = "Y"\nkind = "z"\ncodec = "nope"\nsource = ["a"]\n')
    with pytest.raises(ConfigError, match="unknown codec 'nope'"):
        load_profile("bad", tmp_path)
    (tmp_path / "worse.toml").write_text('vendor = "X"\n')
    with pytest.raises(ConfigError) as exc:
        load_profile("worse", tmp_path)
    assert str(tmp_path / "worse.toml") in str(exc.value)
