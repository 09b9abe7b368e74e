"""OTAA codec (join request, join accept, session keys) and EU868 RX1 parameters, from the LoRaWAN 1.0.x text.

The corpus has no join vectors, so the expected values are computed here a
second way, from the specification's definitions with primitives the codec
does not use: AES-CMAC written out from RFC 4493 (checked against the RFC's
own vectors) over single-block AES, and the join accept read by a device's
AES *encrypt* operation.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st
from zaas_edge.drivers.lora import join, lorawan, region

from zaas_edge.errors import ProtocolError

APP_KEY = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
APP_EUI = bytes.fromhex("70B3D57ED0000001")
DEV_EUI = bytes.fromhex("0004A30B001C0530")


def aes_block(key: bytes, block: bytes) -> bytes:
    """One AES-128 block encryption, through CBC with a zero IV (the codec uses ECB)."""
    enc = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).encryptor()
    return enc.update(block) + enc.finalize()


def rfc4493_cmac(key: bytes, msg: bytes) -> bytes:
    """AES-CMAC as RFC 4493 section 2 spells it out."""
    def dbl(b: bytes) -> bytes:
        n = int.from_bytes(b, "big") << 1
        if n >> 128:
            n = (n & ((1 << 128) - 1)) ^ 0x87
        return n.to_bytes(16, "big")

    k1 = dbl(aes_block(key, bytes(16)))
    k2 = dbl(k1)
    blocks = [msg[i:i + 16] for i in range(0, len(msg), 16)] or [b""]
    last = blocks[-1]
    if len(last) == 16:
        last = bytes(a ^ b for a, b in zip(last, k1, strict=True))
    else:
        padded = last + b"\x80" + bytes(15 - len(last))
        last = bytes(a ^ b for a, b in zip(padded, k2, strict=True))
    x = bytes(16)
    for block in blocks[:-1] + [last]:
        x = aes_block(key, bytes(a ^ b for a, b in zip(x, block, strict=True)))
    return x


def test_the_reference_cmac_matches_rfc_4493_vectors() -> None:
    assert rfc4493_cmac(APP_KEY, b"").hex() == "bb1d6929e95937287fa37d129b756746"
    assert rfc4493_cmac(APP_KEY, bytes.fromhex("6bc1bee22e409f96e93d7e117393172a")).hex() \
        == "070a16b46b4d4144f79bdd9dd04a287c"


def test_join_request_layout_and_mic() -> None:
    phy = join.build_join_request(APP_KEY, APP_EUI, DEV_EUI, 0x2D10)
    assert len(phy) == 23 and phy[0] == 0x00
    assert phy[1:9] == APP_EUI[::-1] and phy[9:17] == DEV_EUI[::-1]  # little-endian on air
    assert phy[17:19] == bytes([0x10, 0x2D])
    assert phy[19:] == rfc4493_cmac(APP_KEY, phy[:19])[:4]
    frame = lorawan.parse_phy_payload(phy)
    assert isinstance(frame, lorawan.JoinRequest)
    assert (frame.join_eui, frame.dev_eui, frame.dev_nonce) == (APP_EUI, DEV_EUI, 0x2D10)
    assert lorawan.verify_join_request_mic(APP_KEY, frame)
    assert not lorawan.verify_join_request_mic(bytes(16), frame)


def test_join_accept_is_signed_then_aes_decrypted_and_a_device_reads_it_with_aes_encrypt() -> None:
    cflist = join.encode_cflist(region.DEFAULT_EXTRA_CHANNELS_MHZ)
    fields = join.JoinAcceptFields(app_nonce=0x000001, net_id=0x000013, dev_addr=0x26011BDA, rx1_dr_offset=2,
                                   rx2_dr=3, rx_delay=1, cflist=cflist)
    phy = join.build_join_accept(APP_KEY, fields)
    assert len(phy) == 33 and phy[0] == 0x20
    plain = bytes([0x01, 0, 0, 0x13, 0, 0, 0xDA, 0x1B, 0x01, 0x26, 0x23, 0x01]) + cflist
    mic = rfc4493_cmac(APP_KEY, b"\x20" + plain)[:4]
    # The device applies AES encrypt block by block to get the plaintext and MIC back.
    clear = aes_block(APP_KEY, phy[1:17]) + aes_block(APP_KEY, phy[17:33])
    assert clear == plain + mic
    assert join.open_join_accept(APP_KEY, phy) == fields
    assert lorawan.parse_phy_payload(phy).mtype is lorawan.MType.JOIN_ACCEPT
    short = join.build_join_accept(APP_KEY, join.JoinAcceptFields(7, 0, 0x00000001))
    assert len(short) == 17 and join.open_join_accept(APP_KEY, short).cflist == b""
    with pytest.raises(ProtocolError, match="MIC mismatch"):
        join.open_join_accept(bytes(16), phy)


def test_session_keys_follow_the_specification() -> None:
    nwk, app = join.derive_session_keys(APP_KEY, 0xABCDEF, 0x000013, 0x2D10)
    tail = bytes([0xEF, 0xCD, 0xAB, 0x13, 0x00, 0x00, 0x10, 0x2D])
    assert nwk == aes_block(APP_KEY, b"\x01" + tail + bytes(7))
    assert app == aes_block(APP_KEY, b"\x02" + tail + bytes(7))
    assert nwk != app


def test_cflist_and_dev_addr_allocation() -> None:
    cflist = join.encode_cflist(region.DEFAULT_EXTRA_CHANNELS_MHZ)
    assert cflist[:3] == (8671000).to_bytes(3, "little") and cflist[15] == 0
    assert join.decode_cflist(cflist) == region.DEFAULT_EXTRA_CHANNELS_MHZ
    assert join.dev_addr_in(0x000013, 0x1ABCDE) == (0x13 << 25) | 0x1ABCDE
    assert join.dev_addr_in(0x000000, 5) == 5
    with pytest.raises(ValueError, match="type 0"):
        join.dev_addr_in(0x600013, 1)
    with pytest.raises(ProtocolError, match="CFListType"):
        join.decode_cflist(bytes(15) + b"\x01")


def test_eu868_rx1_uses_the_uplink_data_rate_less_the_offset() -> None:
    assert region.rx1_datr("SF7BW125") == "SF7BW125"
    assert region.rx1_datr("SF7BW125", 2) == "SF9BW125"
    assert region.rx1_datr("SF11BW125", 3) == "SF12BW125"  # not below DR0
    assert region.datarate_of("SF7BW250") == 6
    assert region.JOIN_ACCEPT_DELAY1_US == 5_000_000
    with pytest.raises(ProtocolError, match="EU868"):
        region.rx1_datr("SF7BW500")


@settings(max_examples=200)
@given(app_nonce=st.integers(0, 0xFFFFFF), net_id=st.integers(0, 0xFFFFFF), dev_addr=st.integers(0, 0xFFFFFFFF),
       off=st.integers(0, 7), rx2=st.integers(0, 15), delay=st.integers(0, 15), with_cflist=st.booleans(),
       key=st.binary(min_size=16, max_size=16))
def test_join_accept_round_trip(app_nonce: int, net_id: int, dev_addr: int, off: int, rx2: int, delay: int,
                                with_cflist: bool, key: bytes) -> None:
    fields = join.JoinAcceptFields(app_nonce, net_id, dev_addr, off, rx2, delay,
                                   join.encode_cflist([867.1, 868.8]) if with_cflist else b"")
    assert join.open_join_accept(key, join.build_join_accept(key, fields)) == fields


@settings(max_examples=300)
@given(data=st.binary(max_size=40))
def test_garbage_join_accepts_raise_protocol_error_only(data: bytes) -> None:
    try:
        join.open_join_accept(APP_KEY, data)
    except ProtocolError:
        pass
    else:  # only a 2**-32 chance for random bytes of the right length and MHDR
        raise AssertionError(f"garbage accepted as a join accept: {data.hex()}")
