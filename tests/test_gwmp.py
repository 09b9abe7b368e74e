"""Semtech UDP packet forwarder protocol: spec cases, the published examples, garbage."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zaas_edge.drivers.lora.gwmp import (
    CrcStatus,
    GatewayStats,
    PullAck,
    PullData,
    PullResp,
    PushAck,
    PushData,
    TxAck,
    TxPacket,
    parse_datagram,
    parse_rxpk,
    pull_ack,
    pull_resp,
    push_ack,
)

from tests.corpora import corpus_dir
from zaas_edge.errors import ProtocolError

EUI = bytes.fromhex("AA555A0000000101")
TOKEN = b"\x9c\x41"


def push_data(body: dict | bytes, *, version: int = 2, token: bytes = TOKEN, eui: bytes = EUI) -> bytes:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return bytes([version]) + token + b"\x00" + eui + raw


def rxpk(**overrides: object) -> dict:
    pk = {
        "time": "2013-03-31T16:21:17.528002Z", "tmst": 3512348611, "chan": 2, "rfch": 0,
        "freq": 868.1, "stat": 1, "modu": "LORA", "datr": "SF7BW125", "codr": "4/5",
        "rssi": -35, "lsnr": 5.1, "size": 4, "data": base64.b64encode(b"\x40\x01\x02\x03").decode(),
    }
    pk.update(overrides)
    return {k: v for k, v in pk.items() if v is not None}


# ---------------------------------------------------------------- spec


def test_push_data_with_one_lora_packet_gives_every_field() -> None:
    dg = parse_datagram(push_data({"rxpk": [rxpk()]}))
    assert isinstance(dg, PushData)
    assert (dg.version, dg.token, dg.gateway_eui, dg.rejected, dg.stat) == (2, TOKEN, EUI, (), None)
    (pk,) = dg.rxpk
    assert pk.payload == b"\x40\x01\x02\x03"
    assert (pk.freq_mhz, pk.modulation, pk.datr) == (868.1, "LORA", "SF7BW125")
    assert (pk.spreading_factor, pk.bandwidth_khz) == (7, 125)
    assert (pk.codr, pk.rssi_dbm, pk.snr_db, pk.tmst, pk.chan, pk.rfch) == ("4/5", -35.0, 5.1, 3512348611, 2, 0)
    assert pk.crc is CrcStatus.OK and pk.crc_ok
    assert pk.time == datetime(2013, 3, 31, 16, 21, 17, 528002, tzinfo=UTC)


@pytest.mark.parametrize(("stat", "status"), [(1, CrcStatus.OK), (-1, CrcStatus.BAD), (0, CrcStatus.NONE)])
def test_crc_status_is_reported_not_filtered(stat: int, status: CrcStatus) -> None:
    (pk,) = parse_datagram(push_data({"rxpk": [rxpk(stat=stat)]})).rxpk
    assert pk.crc is status
    assert pk.crc_ok is (status is CrcStatus.OK)


def test_fsk_packet_has_a_numeric_datarate_and_no_spreading_factor() -> None:
    (pk,) = parse_datagram(push_data({"rxpk": [rxpk(modu="FSK", datr=50000, codr=None, lsnr=None)]})).rxpk
    assert (pk.modulation, pk.datr, pk.spreading_factor, pk.snr_db) == ("FSK", 50000, None, None)


def test_unpadded_base64_is_accepted_as_the_protocol_allows() -> None:
    (pk,) = parse_datagram(push_data({"rxpk": [rxpk(data="QAECAw", size=4)]})).rxpk
    assert pk.payload == b"\x40\x01\x02\x03"


def test_stat_only_push_data_reports_gateway_counters_as_readings() -> None:
    stat = {"time": "2014-01-12 08:59:28 GMT", "lati": 46.24, "long": 3.2523, "alti": 145,
            "rxnb": 2, "rxok": 1, "rxfw": 1, "ackr": 100.0, "dwnb": 0, "txnb": 0}
    dg = parse_datagram(push_data({"stat": stat}))
    assert dg.rxpk == () and isinstance(dg.stat, GatewayStats)
    assert dict((q, (v, u)) for q, v, u in dg.stat.readings()) == {
        "rx_packets": (2.0, "count"), "rx_crc_ok": (1.0, "count"), "rx_forwarded": (1.0, "count"),
        "upstream_acked": (100.0, "%"), "downlink_datagrams": (0.0, "count"), "tx_packets": (0.0, "count"),
        "latitude": (46.24, "deg"), "longitude": (3.2523, "deg"), "altitude": (145.0, "m"),
    }


def test_one_bad_rxpk_is_rejected_alone_and_the_rest_delivered() -> None:
    body = {"rxpk": [rxpk(data="!!!!"), rxpk(), rxpk(size=9)], "stat": {"rxnb": 3}}
    dg = parse_datagram(push_data(body))
    assert len(dg.rxpk) == 1 and dg.rxpk[0].payload == b"\x40\x01\x02\x03"
    assert [r.index for r in dg.rejected] == [0, 2]
    assert "base64" in str(dg.rejected[0].error)
    assert "'size' is 9 but 'data' decodes to 4 bytes" in str(dg.rejected[1].error)
    assert dg.stat is not None and dg.stat.rxnb == 3


def test_pull_data_and_acks() -> None:
    pd = parse_datagram(b"\x02" + TOKEN + b"\x02" + EUI)
    assert pd == PullData(2, TOKEN, EUI)
    assert parse_datagram(b"\x02" + TOKEN + b"\x01") == PushAck(2, TOKEN)
    assert parse_datagram(b"\x02" + TOKEN + b"\x04") == PullAck(2, TOKEN)


def test_answers_echo_token_bytes_and_version() -> None:
    assert push_ack(TOKEN) == b"\x02\x9c\x41\x01"
    assert pull_ack(TOKEN) == b"\x02\x9c\x41\x04"
    assert push_ack(b"\x00\x07", version=1) == b"\x01\x00\x07\x01"
    with pytest.raises(ValueError):
        push_ack(b"\x01")


def test_version_1_push_and_pull_data_are_accepted_but_not_tx_ack() -> None:
    assert parse_datagram(push_data({"rxpk": [rxpk()]}, version=1)).version == 1
    assert parse_datagram(b"\x01" + TOKEN + b"\x02" + EUI) == PullData(1, TOKEN, EUI)
    with pytest.raises(ProtocolError, match="TX_ACK is not defined in protocol version 1"):
        parse_datagram(b"\x01" + TOKEN + b"\x05" + EUI)


def test_pull_resp_round_trip_for_a_join_accept() -> None:
    tx = TxPacket(payload=bytes(range(17)), freq_mhz=869.525, datr="SF9BW125", tmst=3512348611 + 5_000_000)
    dg = parse_datagram(pull_resp(b"\x00\x01", tx))
    assert isinstance(dg, PullResp) and dg.token == b"\x00\x01"
    assert dg.txpk == tx
    body = json.loads(pull_resp(b"\x00\x01", tx)[4:])
    assert body["txpk"]["ipol"] is True and body["txpk"]["size"] == 17 and "imme" not in body["txpk"]


def test_txpk_needs_a_time_or_immediate() -> None:
    with pytest.raises(ValueError, match="tmst or immediate"):
        TxPacket(payload=b"x", freq_mhz=868.1, datr="SF7BW125").to_json()


def test_tx_ack_without_json_means_success() -> None:
    ack = parse_datagram(b"\x02" + TOKEN + b"\x05" + EUI)
    assert isinstance(ack, TxAck) and ack.ok and ack.error is None


@pytest.mark.parametrize(
    ("datagram", "reason"),
    [
        (b"", "too short"),
        (b"\x02\x00", "too short"),
        (b"\x03\x00\x00\x00" + EUI + b"{}", "version 3 not supported"),
        (b"\x02\x00\x00\x09", "unknown GWMP identifier 0x09"),
        (b"\x02\x00\x00\x00" + EUI[:5], "8-byte gateway EUI"),
        (push_data(b"not json"), "not valid JSON"),
        (push_data(b"[1, 2]"), "not an object"),
        (push_data(b"\xff\xfe{}"), "not valid JSON"),
        (push_data({"rxpk": {"data": "QA=="}}), "'rxpk' is not an array"),
        (b"\x02\x00\x00\x01extra", "unexpected bytes"),
        (b"\x02\x00\x00\x02" + EUI + b"x", "unexpected bytes"),
        (b"\x02\x00\x00\x03{}", "no 'txpk'"),
    ],
)
def test_garbage_datagrams_raise_protocol_error_with_a_reason(datagram: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        parse_datagram(datagram)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"data": "QA=Q"}, "base64"),
        ({"data": 12}, "not a base64 string"),
        ({"size": 5}, "'size' is 5"),
        ({"datr": "SF7"}, "SF7BW125"),
        ({"stat": 2}, "'stat' must be 1, 0 or -1"),
        ({"freq": "868.1"}, "'freq' is str"),
        ({"freq": None}, "missing 'freq'"),
        ({"tmst": 1.5}, "'tmst' must be an integer"),
        ({"time": "yesterday"}, "not ISO 8601"),
        ({"modu": "OOK"}, "LORA or FSK"),
    ],
)
def test_bad_rxpk_fields_are_named(fields: dict, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        parse_rxpk(rxpk(**fields))


# ---------------------------------------------------------------- published examples


def _examples() -> list[tuple[str, dict]]:
    data = json.loads((corpus_dir("gwmp") / "gwmp_examples.json").read_text())
    out = []
    for source in data["sources"]:
        for i, example in enumerate(source["examples"]):
            out.append((f"{source['repo']}#{i}", example))
    return out


def test_every_published_json_example_parses_as_documented() -> None:
    checked = 0
    for name, example in _examples():
        parsed = example["parsed"]
        if parsed is None:  # a schematic with "...": not JSON, and must be refused as such
            with pytest.raises(ProtocolError):
                parse_datagram(push_data(example["verbatim"].encode()))
            continue
        body = example["verbatim"].encode()
        if "txpk" in parsed:
            dg = parse_datagram(b"\x02" + TOKEN + b"\x03" + body)
            assert isinstance(dg, PullResp), name
            want = parsed["txpk"]
            assert dg.txpk.freq_mhz == want["freq"] and dg.txpk.datr == want["datr"], name
            assert dg.txpk.immediate is want["imme"] and len(dg.txpk.payload) == want["size"], name
        elif "txpk_ack" in parsed:
            dg = parse_datagram(b"\x02" + TOKEN + b"\x05" + EUI + body)
            assert isinstance(dg, TxAck) and dg.gateway_eui == EUI, name
            assert dg.error == parsed["txpk_ack"].get("error") and dg.warning == parsed["txpk_ack"].get("warn"), name
            assert dg.ok is False if dg.error else True
        else:
            dg = parse_datagram(push_data(body))
            assert isinstance(dg, PushData), name
            want_rx = parsed.get("rxpk", [])
            assert len(dg.rxpk) + len(dg.rejected) == len(want_rx), name
            kept = [w for i, w in enumerate(want_rx) if i not in {r.index for r in dg.rejected}]
            for pk, want in zip(dg.rxpk, kept, strict=True):
                assert pk.freq_mhz == want["freq"] and pk.tmst == want["tmst"] and pk.rssi_dbm == want["rssi"], name
                assert len(pk.payload) == want["size"] and pk.datr == want["datr"], name
                assert pk.snr_db == want.get("lsnr") and pk.chan == want["chan"], name
            for rejected in dg.rejected:
                # The corpus notes that this documentation sample is not valid base64 ('-' mixed with '+').
                assert want_rx[rejected.index]["data"].startswith("-DS4CGaDCdG"), name
                assert "base64" in str(rejected.error)
            if "stat" in parsed:
                s = parsed["stat"]
                assert dg.stat is not None
                assert (dg.stat.rxnb, dg.stat.rxok, dg.stat.ackr, dg.stat.lati, dg.stat.alti) == (
                    s["rxnb"], s["rxok"], s["ackr"], s["lati"], s["alti"])
                assert dg.stat.temp == s.get("temp")
        checked += 1
    assert checked == 11


def test_chirpstack_byte_vectors() -> None:
    data = json.loads((corpus_dir("gwmp") / "gwmp_examples.json").read_text())
    vectors = data["byte_vectors_chirpstack_gateway_bridge"]["vectors"]
    got = [parse_datagram(bytes(v["bytes"])) for v in vectors]
    assert got == [
        PushData(2, b"\x00\x00", bytes(8)),
        PushData(2, b"\x7b\x00", bytes.fromhex("0102030405060708")),
    ]
    assert push_ack(got[1].token) == b"\x02\x7b\x00\x01"


# ---------------------------------------------------------------- properties


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_never_raise_anything_but_protocol_error(data: bytes) -> None:
    try:
        parse_datagram(data)
    except ProtocolError:
        pass


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_rxpk_like = st.fixed_dictionaries(
    {},
    optional={k: _json | st.just(v) for k, v in rxpk().items()},
)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from([0, 3, 5]),
    st.one_of(
        st.dictionaries(st.sampled_from(["rxpk", "stat", "txpk", "txpk_ack", "x"]), _json, max_size=3),
        st.fixed_dictionaries({"rxpk": st.lists(_rxpk_like, max_size=3), "stat": _json}),
        st.fixed_dictionaries({"txpk": _rxpk_like}),
    ),
)
def test_hostile_json_never_raises_anything_but_protocol_error(ident: int, body: dict) -> None:
    head = b"\x02" + TOKEN + bytes([ident]) + (b"" if ident == 3 else EUI)
    try:
        dg = parse_datagram(head + json.dumps(body).encode())
    except ProtocolError as exc:
        assert str(exc)
    else:
        assert dg.token == TOKEN


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=255), st.integers(0, 2**32 - 1), st.binary(min_size=2, max_size=2))
def test_txpk_round_trip(payload: bytes, tmst: int, token: bytes) -> None:
    tx = TxPacket(payload=payload, freq_mhz=869.525, datr="SF12BW125", tmst=tmst)
    assert parse_datagram(pull_resp(token, tx)) == PullResp(2, token, tx)
