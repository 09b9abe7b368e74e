"""LoRaWAN 1.0.x frames: spec layout, published vectors, round trips, garbage."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zaas_edge.drivers.lora.lorawan import (
    DataFrame,
    FCtrl,
    JoinAccept,
    JoinRequest,
    MType,
    Proprietary,
    build_data_frame,
    compute_mic,
    crypt_frm_payload,
    join_request_mic,
    open_frame,
    parse_phy_payload,
    verify_join_request_mic,
    verify_mic,
)

from tests.corpora import corpus_dir
from zaas_edge.errors import ProtocolError

NWK = bytes.fromhex("44024241ed4ce9a68c6a8bc055233fd3")
APP = bytes.fromhex("ec925802ae430ca77fd3dd73cb2cc588")


# ---------------------------------------------------------------- spec layout


def test_data_frame_fields_little_endian_on_air() -> None:
    raw = bytes.fromhex("40f17dbe4900020001954378762b11ff0d")
    frame = parse_phy_payload(raw)
    assert isinstance(frame, DataFrame)
    assert frame.mtype is MType.UNCONFIRMED_DATA_UP and frame.uplink and not frame.confirmed
    assert frame.dev_addr == 0x49BE7DF1 and frame.dev_addr_hex == "49BE7DF1"
    assert frame.fctrl == FCtrl() and frame.fcnt16 == 2 and frame.fopts == b""
    assert (frame.fport, frame.frm_payload, frame.mic) == (1, bytes.fromhex("95437876"), bytes.fromhex("2b11ff0d"))
    assert open_frame(frame, 2, NWK, APP) == b"test"


def test_fctrl_bits() -> None:
    assert FCtrl.from_byte(0xF3) == FCtrl(adr=True, adr_ack_req=True, ack=True, f_pending=True, fopts_len=3)
    assert FCtrl(adr=True, ack=True, fopts_len=2).to_byte() == 0xA2
    assert FCtrl.from_byte(0x10).class_b


def test_join_request_fields_and_mic() -> None:
    app_key = bytes(range(16))
    body = bytes([0x00]) + bytes.fromhex("0807060504030201") + bytes.fromhex("1122334455667788")[::-1] + b"\x34\x12"
    frame = parse_phy_payload(body + b"\x00" * 4)
    assert isinstance(frame, JoinRequest)
    assert frame.join_eui == bytes.fromhex("0102030405060708")
    assert frame.dev_eui == bytes.fromhex("1122334455667788")
    assert frame.dev_nonce == 0x1234
    signed = parse_phy_payload(body + join_request_mic(app_key, frame))
    assert verify_join_request_mic(app_key, signed)
    assert not verify_join_request_mic(bytes(16), signed)


def test_join_accept_and_proprietary_are_recognised() -> None:
    assert isinstance(parse_phy_payload(b"\x20" + bytes(16)), JoinAccept)
    assert isinstance(parse_phy_payload(b"\x20" + bytes(32)), JoinAccept)
    prop = parse_phy_payload(b"\xe0abc")
    assert isinstance(prop, Proprietary) and prop.payload == b"abc"


def test_downlink_header_is_parsed_with_its_direction() -> None:
    raw = build_data_frame(dev_addr=0x01020304, fcnt32=7, fport=3, payload=b"on", nwk_skey=NWK, app_skey=APP,
                           mtype=MType.CONFIRMED_DATA_DOWN, fctrl=FCtrl(ack=True, f_pending=True))
    frame = parse_phy_payload(raw)
    assert frame.mtype is MType.CONFIRMED_DATA_DOWN and not frame.uplink and frame.confirmed
    assert frame.fctrl.ack and frame.fctrl.f_pending
    assert open_frame(frame, 7, NWK, APP) == b"on"


def test_mic_uses_the_full_32_bit_counter() -> None:
    raw = build_data_frame(dev_addr=0x26011BDA, fcnt32=0x10005, fport=2, payload=b"\x01", nwk_skey=NWK, app_skey=APP)
    frame = parse_phy_payload(raw)
    assert frame.fcnt16 == 5
    assert verify_mic(NWK, frame, 0x10005)
    assert not verify_mic(NWK, frame, 5)
    with pytest.raises(ProtocolError, match="MIC mismatch for DevAddr 26011BDA"):
        open_frame(frame, 0x20005, NWK, APP)
    with pytest.raises(ValueError, match="does not end in"):
        open_frame(frame, 6, NWK, APP)


def test_port_zero_is_encrypted_with_the_network_key() -> None:
    raw = build_data_frame(dev_addr=1, fcnt32=1, fport=0, payload=b"\x02", nwk_skey=NWK, app_skey=APP)
    frame = parse_phy_payload(raw)
    assert frame.frm_payload == crypt_frm_payload(NWK, 1, 1, True, b"\x02")
    assert open_frame(frame, 1, NWK, None) == b"\x02"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"\x40" + bytes(10), "too short"),
        (b"\x41" + bytes(16), "major version 1"),
        (b"\x44" + bytes(16), "RFU bits"),
        (b"\xc0" + bytes(16), "reserved"),
        (b"\x00" + bytes(10), "join request must be 23 bytes"),
        (b"\x20" + bytes(20), "join accept must be 17 or 33 bytes"),
        (bytes.fromhex("4001020304" + "05" + "0000" + "aabbccdd"), "FOptsLen 5 runs past"),
        (bytes.fromhex("4001020304" + "01" + "0000" + "02" + "00" + "aabbccdd"), "both in FOpts and on FPort 0"),
        (b"\x40" + bytes(300), "exceeds 255"),
    ],
)
def test_malformed_frames_raise_protocol_error(raw: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        parse_phy_payload(raw)


def test_build_refuses_impossible_frames() -> None:
    common = {"dev_addr": 1, "fcnt32": 1, "nwk_skey": NWK, "app_skey": APP}
    with pytest.raises(ValueError, match="needs an FPort"):
        build_data_frame(fport=None, payload=b"x", **common)
    with pytest.raises(ValueError, match="not both"):
        build_data_frame(fport=0, payload=b"x", fopts=b"\x02", **common)
    with pytest.raises(ValueError, match="16 bytes"):
        build_data_frame(fport=1, payload=b"x", dev_addr=1, fcnt32=1, nwk_skey=b"short", app_skey=APP)
    with pytest.raises(ValueError, match="not a data frame"):
        build_data_frame(fport=1, payload=b"x", mtype=MType.JOIN_REQUEST, **common)


# ---------------------------------------------------------------- published vectors


def _vectors() -> dict:
    return json.loads((corpus_dir("lorawan") / "vectors.json").read_text())


def test_phy_payload_vectors() -> None:
    vectors = _vectors()["phy_payload_vectors"]
    assert len(vectors) == 8
    for v in vectors:
        frame = parse_phy_payload(bytes.fromhex(v["phy_payload_hex"]))
        assert isinstance(frame, DataFrame), v["id"]
        assert frame.mtype == v["mtype"] and frame.uplink is (v["direction"] == "up"), v["id"]
        assert f"{frame.dev_addr:08x}" == v["devaddr"], v["id"]  # printed MSB-first in the corpus
        assert frame.fctrl.to_byte() == int(v["fctrl"], 16), v["id"]
        assert frame.fcnt16 == v["fcnt16"] and frame.fopts.hex() == v["fopts_hex"], v["id"]
        assert frame.fport == v["fport"] and frame.frm_payload.hex() == v["frm_payload_hex"], v["id"]
        assert frame.mic.hex() == v["mic_hex"], v["id"]
        nwk = bytes.fromhex(v["nwkskey"])
        assert verify_mic(nwk, frame, v["fcnt16"]) is v["mic_valid"], v["id"]
        app = bytes.fromhex(v["appskey"]) if v["appskey"] else None
        if not v["mic_valid"]:
            with pytest.raises(ProtocolError, match="MIC mismatch"):
                open_frame(frame, v["fcnt16"], nwk, app)
        elif v["frm_payload_decrypted_hex"] is not None:
            assert open_frame(frame, v["fcnt16"], nwk, app).hex() == v["frm_payload_decrypted_hex"], v["id"]
            # And the other way: the same keys rebuild the identical frame from the plaintext.
            rebuilt = build_data_frame(
                dev_addr=frame.dev_addr, fcnt32=v["fcnt16"], fport=frame.fport,
                payload=bytes.fromhex(v["frm_payload_decrypted_hex"]), nwk_skey=nwk, app_skey=app or nwk,
                mtype=frame.mtype, fctrl=frame.fctrl, fopts=frame.fopts,
            )
            assert rebuilt.hex() == v["phy_payload_hex"], v["id"]
        else:
            assert compute_mic(nwk, frame, v["fcnt16"]) == frame.mic, v["id"]


def test_frm_payload_only_vectors() -> None:
    vectors = _vectors()["frm_payload_only_vectors"]
    assert len(vectors) == 4
    for v in vectors:
        key, addr = bytes.fromhex(v["appskey"]), int(v["devaddr"], 16)
        up = v["direction"] == "up"
        plain, cipher = bytes.fromhex(v["plaintext_hex"]), bytes.fromhex(v["ciphertext_hex"])
        assert crypt_frm_payload(key, addr, v["fcnt"], up, cipher) == plain, v["id"]
        assert crypt_frm_payload(key, addr, v["fcnt"], up, plain) == cipher, v["id"]


def _fixture_cases(root: Path) -> list[tuple[str, bytes, int, int, bytes, bytes]]:
    cases = []
    for device in sorted((root / "fixtures").iterdir()):
        key = bytes.fromhex((device / "key.hex").read_text().strip())
        for xml in sorted(device.glob("payload_*.xml")):
            expected = xml.with_suffix(".txt")
            if not expected.exists():
                continue  # payload_plaintext-*: sent on FPort 1 unencrypted by the test device, nothing to decrypt
            text = xml.read_text()
            fcnt = int(re.search(r"<FCntUp>(\d+)</FCntUp>", text).group(1))
            payload = bytes.fromhex(re.search(r"<payload_hex>([0-9a-fA-F]*)</payload_hex>", text).group(1))
            want = bytes.fromhex(expected.read_text().strip())
            cases.append((xml.name, key, int(device.name, 16), fcnt, payload, want))
    return cases


def test_python_lora_fixtures_decrypt_to_the_expected_plaintext() -> None:
    cases = _fixture_cases(corpus_dir("lorawan") / "python-lora-fixtures")
    assert len(cases) == 17
    for name, app_skey, dev_addr, fcnt, payload, want in cases:
        assert crypt_frm_payload(app_skey, dev_addr, fcnt, True, payload) == want, name


# ---------------------------------------------------------------- properties

_keys = st.binary(min_size=16, max_size=16)


@settings(max_examples=300, deadline=None)
@given(
    dev_addr=st.integers(0, 2**32 - 1),
    fcnt32=st.integers(0, 2**32 - 1),
    fport=st.integers(1, 255),
    payload=st.binary(max_size=200),
    nwk=_keys,
    app=_keys,
    confirmed=st.booleans(),
    fopts=st.binary(max_size=15),
    adr=st.booleans(),
)
def test_uplink_round_trip(dev_addr, fcnt32, fport, payload, nwk, app, confirmed, fopts, adr) -> None:
    mtype = MType.CONFIRMED_DATA_UP if confirmed else MType.UNCONFIRMED_DATA_UP
    raw = build_data_frame(dev_addr=dev_addr, fcnt32=fcnt32, fport=fport, payload=payload, nwk_skey=nwk,
                           app_skey=app, mtype=mtype, fctrl=FCtrl(adr=adr), fopts=fopts)
    frame = parse_phy_payload(raw)
    assert (frame.mtype, frame.dev_addr, frame.fcnt16, frame.fport) == (mtype, dev_addr, fcnt32 & 0xFFFF, fport)
    assert frame.fopts == fopts and frame.fctrl.adr is adr and frame.fctrl.fopts_len == len(fopts)
    assert len(frame.frm_payload) == len(payload)
    assert open_frame(frame, fcnt32, nwk, app) == payload


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80))
def test_garbage_frames_raise_only_protocol_error(raw: bytes) -> None:
    try:
        frame = parse_phy_payload(raw)
    except ProtocolError as exc:
        assert str(exc)
        return
    assert frame.raw == raw
    if isinstance(frame, DataFrame):
        try:
            open_frame(frame, frame.fcnt16, NWK, APP)
        except ProtocolError as exc:
            assert "MIC mismatch" in str(exc)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=13, max_size=60), st.integers(0, 7), st.integers(12, 59))
def test_any_flipped_bit_fails_the_mic(payload: bytes, bit: int, pos: int) -> None:
    raw = build_data_frame(dev_addr=0x26011BDA, fcnt32=42, fport=1, payload=payload, nwk_skey=NWK, app_skey=APP)
    pos %= len(raw)
    corrupted = bytearray(raw)
    corrupted[pos] ^= 1 << bit
    try:
        frame = parse_phy_payload(bytes(corrupted))
    except ProtocolError:
        return  # the flip made the header itself invalid
    if isinstance(frame, DataFrame):
        assert not verify_mic(NWK, frame, (42 & ~0xFFFF) | frame.fcnt16)
