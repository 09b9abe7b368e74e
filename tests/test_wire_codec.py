"""The batch codec, from its specification (docs/sync-encoding.md) and by properties."""

from __future__ import annotations

import gzip
import json
import math
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zaas_edge.errors import ProtocolError
from zaas_edge.model import Alarm, Event, Lane, Quality, Reading, Severity, Stamp, UploadRecord
from zaas_edge.store import Stored
from zaas_edge.wire import codec
from zaas_edge.wire.codec import (
    CONTENT_TYPE,
    FORMAT_VERSION,
    decode_batch,
    encode_batch,
    split_resolution,
)

T0 = 1_700_000_000_000_000_000
S = 1_000_000_000


def rec(point="m1/p", value=1.0, t=T0, **kw) -> UploadRecord:
    unit = kw.pop("unit", "W")
    return UploadRecord(point, unit, t, value, **kw)


def stored(items, first=1, lane=Lane.READING):
    return [Stored(lane, first + i, it) for i, it in enumerate(items)]


def test_header_is_versioned_and_names_the_lane():
    # A protobuf message (docs/sync-batch.proto) whose first fields are the version and the lane.
    body = encode_batch(Lane.READING, stored([rec()], first=7), epoch="e1")
    assert body[:2] == b"\x08\x02" and FORMAT_VERSION == 2  # field 1 (version), varint 2
    assert body[2:4] == b"\x10\x01"  # field 2 (lane), reading
    assert body[4:8] == b"\x1a\x02e1"  # field 3 (epoch), length-delimited
    assert body[8:12] == b"\x20\x07\x28\x01"  # first seq 7, one row (no seq gaps: field 6 left out)
    assert body[12] == 0x3A  # field 7: the readings
    assert CONTENT_TYPE == "application/vnd.zaas.batch;v=2"
    d = decode_batch(body)
    assert (d.version, d.lane, d.first_seq, d.last_seq, d.epoch) == (2, Lane.READING, 7, 7, "e1")


def test_empty_batch_round_trips():
    d = decode_batch(encode_batch(Lane.READING, []))
    assert (d.first_seq, d.last_seq, d.rows) == (0, 0, [])


def test_quantised_values_come_back_at_the_resolution():
    items = [rec("m/v", 230.04, T0 + i * S, unit="V", resolution=0.1) for i in range(3)]
    items += [rec("m/e", 1234.567, T0, unit="kWh", resolution=0.01)]
    rows = decode_batch(encode_batch(Lane.READING, stored(items))).rows
    assert [r["value"] for r in rows] == [230.0, 230.0, 230.0, 1234.57]
    assert [r["wall_ns"] for r in rows] == [T0, T0 + S, T0 + 2 * S, T0]
    assert [r["seq"] for r in rows] == [1, 2, 3, 4]
    assert rows[0] | {} == {"seq": 1, "point": "m/v", "unit": "V", "value": 230.0, "quality": "ok",
                            "wall_ns": T0, "synced": True, "corrected": False, "kind": "raw"}


def test_resolution_callback_overrides_the_record_and_unknown_points_are_lossless():
    items = [rec("a/x", 1.23456789, resolution=0.1), rec("b/y", 1.23456789, resolution=0.1), rec("c/z", 0.1 + 0.2)]
    res = {"a/x": 0.001}.get
    rows = decode_batch(encode_batch(Lane.READING, stored(items), resolution=res)).rows
    assert rows[0]["value"] == 1.235
    assert rows[1]["value"] == pytest.approx(1.2, abs=1e-12)
    assert rows[2]["value"] == 0.1 + 0.2  # lossless: bit for bit


def test_values_that_do_not_fit_fall_back_to_float64():
    items = [rec(value=v, resolution=1.0) for v in (math.inf, -math.inf, 1e300, 12.0)]
    rows = decode_batch(encode_batch(Lane.READING, stored(items))).rows
    assert [r["value"] for r in rows] == [math.inf, -math.inf, 1e300, 12.0]
    nan = decode_batch(encode_batch(Lane.READING, stored([rec(value=math.nan, resolution=1.0)]))).rows[0]
    assert math.isnan(nan["value"])


def test_a_tighter_tolerance_keeps_off_grid_values_exact():
    items = [rec(value=230.1, resolution=0.1), rec(value=230.123, resolution=0.1)]
    rows = decode_batch(encode_batch(Lane.READING, stored(items), tolerance=1e-6)).rows
    assert rows[0]["value"] == 230.1 and rows[1]["value"] == 230.123


def test_aggregates_carry_their_window_and_merge_fields():
    a = rec("m/v", 230.04, T0, unit="V", resolution=0.1, window_s=60, count=60, min=229.1, max=231.26,
            last=230.3, last_ns=T0 + 59 * S)
    rows = decode_batch(encode_batch(Lane.READING, stored([rec("m/v", 229.0, T0 - S, unit="V",
                                                                resolution=0.1), a]))).rows
    assert rows[0]["kind"] == "raw" and "window_s" not in rows[0]
    r = rows[1]
    assert r["kind"] == "agg"
    assert (r["window_s"], r["count"], r["last_ns"], r["wall_ns"]) == (60, 60, T0 + 59 * S, T0)
    assert (r["avg"], r["value"], r["min"], r["max"], r["last"]) == (230.0, 230.0, 229.1, 231.3, 230.3)


def test_quality_and_clock_state_are_sparse_exceptions():
    items = [rec(), rec(quality=Quality.STALE), rec(synced=False, mono_ns=5 * S, boot_id="boot-a"),
             rec(corrected=True), rec(quality=Quality.ESTIMATED, synced=False, mono_ns=6 * S, boot_id="boot-b")]
    rows = decode_batch(encode_batch(Lane.READING, stored(items))).rows
    assert [r["quality"] for r in rows] == ["ok", "stale", "ok", "ok", "estimated"]
    assert [r["synced"] for r in rows] == [True, True, False, True, False]
    assert [r["corrected"] for r in rows] == [False, False, False, True, False]
    assert (rows[2]["mono_ns"], rows[2]["boot_id"]) == (5 * S, "boot-a")
    assert (rows[4]["mono_ns"], rows[4]["boot_id"]) == (6 * S, "boot-b")
    assert "mono_ns" not in rows[0]


def test_plain_readings_are_accepted_and_keep_unsynced_stamps():
    r = Reading("m/p", 5.5, "W", T0, 42, "boot", False, Quality.ERROR)
    row = decode_batch(encode_batch(Lane.READING, stored([r]))).rows[0]
    assert row | {} == {"seq": 1, "point": "m/p", "unit": "W", "value": 5.5, "quality": "error", "wall_ns": T0,
                        "synced": False, "corrected": False, "kind": "raw", "mono_ns": 42, "boot_id": "boot"}


def test_seq_gaps_round_trip():
    items = [Stored(Lane.READING, s, rec()) for s in (5, 6, 9, 1000)]
    assert [r["seq"] for r in decode_batch(encode_batch(Lane.READING, items)).rows] == [5, 6, 9, 1000]
    with pytest.raises(ValueError, match="increasing"):
        encode_batch(Lane.READING, [Stored(Lane.READING, 2, rec()), Stored(Lane.READING, 2, rec())])


def test_events_and_alarms_go_as_one_message_each_with_their_data_as_json():
    st_ = Stamp(T0, 7, "boot", True)
    ev = Event("store.gap", "dropped", "store", st_, Severity.WARNING, {"count": 3})
    al = Alarm("store.degraded", True, "disk full", "store", st_, Severity.ERROR, {"path": "/x"})
    d = decode_batch(encode_batch(Lane.EVENT, stored([ev], 10, Lane.EVENT)))
    assert d.lane is Lane.EVENT and d.rows == [{"seq": 10, "kind": "store.gap", "severity": "warning",
                                                "source": "store", "text": "dropped", "data": {"count": 3},
                                                "wall_ns": T0, "mono_ns": 7, "boot_id": "boot", "synced": True}]
    d = decode_batch(encode_batch(Lane.ALARM, stored([al], 3, Lane.ALARM)))
    assert d.rows[0]["alarm_id"] == "store.degraded" and d.rows[0]["active"] is True
    with pytest.raises(TypeError):
        encode_batch(Lane.ALARM, stored([ev]))


def test_split_resolution():
    assert split_resolution(0.1) == (1, -1)
    assert split_resolution(0.5) == (5, -1)
    assert split_resolution(0.01) == (1, -2)
    assert split_resolution(1) == (1, 0)
    assert split_resolution(100.0) == (1, 2)
    assert split_resolution(None) == split_resolution(0) == split_resolution(-1) == (0, 0)
    assert split_resolution(1 / 3) == (0, 0)
    assert split_resolution(math.nan) == (0, 0)


def test_steady_metered_data_costs_few_bytes_per_reading():
    # 200 points at 1 s for 5 minutes: every steady column compresses to almost nothing.
    import random
    rnd = random.Random(4)
    items = []
    for s in range(300):
        for p in range(200):
            items.append(rec(f"m{p}/v", 230 + rnd.gauss(0, 0.3), T0 + s * S + p * 1_000_000, unit="V",
                             resolution=0.1))
    body = encode_batch(Lane.READING, stored(items))
    per = len(gzip.compress(body)) / len(items)
    jsonl = gzip.compress("\n".join(json.dumps({"point": r.point, "value": r.value, "ts": r.wall_ns})
                                    for r in items).encode())
    assert per < 2.0
    assert len(jsonl) / len(items) > 2.5 * per


def test_garbage_headers_are_protocol_errors():
    good = encode_batch(Lane.READING, stored([rec(resolution=1.0)]))
    for bad in (b"", b"ZB", b"XX\x01\x01", b"\x08\x03" + good[2:], b"\x08\x02\x10\x09" + good[4:], good[:-1],
                good + b"\x00", good + b"\x0b", b"\x08\x02\x10\x02\x3a\x00"):
        with pytest.raises(ProtocolError):
            decode_batch(bad)


def test_fields_in_another_order_unpacked_columns_and_unknown_fields_are_read_as_protobuf_allows():
    from zaas_edge.wire import proto as pb

    items = [rec("m/v", 230.0 + i, T0 + i * S, unit="V", resolution=0.1) for i in range(3)]
    want = decode_batch(encode_batch(Lane.READING, stored(items, first=4), epoch="e")).rows
    readings = bytearray()
    readings += b"\xa8\x06\x07"  # unknown field 101, varint: skipped
    pb.put_texts(readings, 1, ["m/v"])
    pb.put_texts(readings, 2, ["V"])
    pb.put_packed(readings, 11, [codec._zz(2300)])  # one column packed in two parts, then one unpacked value
    pb.put_packed(readings, 11, [codec._zz(10)])
    pb.put_uint(readings, 11, codec._zz(10))
    pb.put_packed(readings, 3, [1])
    pb.put_packed(readings, 4, [codec._zz(-1)])
    pb.put_packed(readings, 5, [0, 0, 0])
    pb.put_packed(readings, 6, [3])
    pb.put_sint(readings, 8, T0)
    pb.put_packed(readings, 9, [0, codec._zz(S), 0])
    body = bytearray()
    pb.put_bytes(body, 7, readings)
    pb.put_uint(body, 5, 3)
    pb.put_packed(body, 6, [0, 0])
    pb.put_text(body, 3, "e")
    pb.put_uint(body, 4, 4)
    pb.put_uint(body, 2, 1)
    pb.put_uint(body, 1, 2)
    assert decode_batch(bytes(body)).rows == want


def test_version_1_bodies_are_still_read():
    # Upload blocks stored before the protobuf body, and gateways not yet upgraded.
    from pathlib import Path

    from tests.wire_vectors import read_hex

    folder = Path(__file__).parent / "wire_v1_bodies"
    names = sorted(p.stem for p in folder.glob("*.hex"))
    assert names == ["alarms", "events", "readings-aggregates", "readings-raw"]
    for name in names:
        body = read_hex(folder / f"{name}.hex")
        assert body[:3] == b"ZB\x01"
        d = decode_batch(body)
        want = json.loads((folder / f"{name}.json").read_text())
        assert (d.version, str(d.lane), d.epoch, d.first_seq, d.last_seq) == (
            1, want["lane"], want["epoch"], want["first_seq"], want["last_seq"])
        assert d.rows == want["rows"] and d.resolutions == want["resolutions"]
        if d.lane is Lane.READING:
            assert [w.seq for w in codec.decode_records(body)] == [r["seq"] for r in d.rows]


# ------------------------------------------------------------ properties

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
resolutions = st.sampled_from([0.0, 1.0, 0.1, 0.01, 0.5, 10.0, 0.001])
qualities = st.sampled_from(list(Quality))


@st.composite
def records(draw):
    n = draw(st.integers(0, 40))
    keys = draw(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=5, unique=True))
    res = {k: draw(resolutions) for k in keys}
    out = []
    seq = draw(st.integers(1, 2**40))
    for _ in range(n):
        k = draw(st.sampled_from(keys))
        big = res[k] == 0.0
        value = draw(finite if big else st.floats(-1e9, 1e9))
        t = draw(st.integers(0, 2**62))
        synced = draw(st.booleans())
        agg = draw(st.booleans())
        kw = {}
        if agg:
            lo, hi, last = (draw(st.floats(-1e9, 1e9)) for _ in range(3))
            kw = {"window_s": draw(st.integers(1, 86400)), "count": draw(st.integers(1, 10**6)), "min": lo,
                  "max": hi, "last": last, "last_ns": t + draw(st.integers(0, 86400 * S))}
        out.append(Stored(Lane.UPLOAD if hasattr(Lane, "UPLOAD") else Lane.READING, seq, UploadRecord(
            k, draw(st.sampled_from(["W", "V", "kWh", ""])), t, value, draw(qualities), synced,
            draw(st.booleans()), None if synced else draw(st.integers(0, 2**62)),
            "" if synced else draw(st.text(max_size=8)), res[k], **kw)))
        seq += draw(st.integers(1, 1000))
    return out


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_round_trip_exact_when_lossless_and_within_half_a_step_when_quantised(rows):
    d = decode_batch(encode_batch(Lane.READING, rows, epoch="ep"))
    assert len(d.rows) == len(rows)
    for got, s in zip(d.rows, rows, strict=True):
        r = s.item
        assert (got["seq"], got["point"], got["unit"], got["wall_ns"]) == (s.seq, r.point, r.unit, r.wall_ns)
        assert (got["quality"], got["synced"], got["corrected"]) == (str(r.quality), r.synced, r.corrected)
        assert got["kind"] == r.kind
        if not r.synced:
            assert (got["mono_ns"], got["boot_id"]) == (r.mono_ns, r.boot_id)
        fields = [("value", r.value)]
        if r.window_s:
            assert (got["window_s"], got["count"], got["last_ns"]) == (r.window_s, r.count, r.last_ns)
            fields += [("min", r.min), ("max", r.max), ("last", r.last)]
        for name, want in fields:
            if r.resolution == 0.0:
                assert struct.pack(">d", got[name]) == struct.pack(">d", want)
            else:
                assert abs(got[name] - want) <= r.resolution / 2 * (1 + 1e-9) + abs(want) * 1e-15


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_garbage_raises_protocol_error_only(data):
    try:
        decode_batch(data)
    except ProtocolError:
        pass


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(records(), st.data())
def test_mutated_bodies_raise_protocol_error_only(rows, data):
    body = bytearray(encode_batch(Lane.READING, rows))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip" and body:
            i = data.draw(st.integers(0, len(body) - 1))
            body[i] ^= data.draw(st.integers(1, 255))
        elif op == "cut" and body:
            del body[data.draw(st.integers(0, len(body) - 1)):]
        else:
            i = data.draw(st.integers(0, len(body)))
            body[i:i] = data.draw(st.binary(min_size=1, max_size=4))
    try:
        d = decode_batch(bytes(body))
    except ProtocolError:
        return
    assert all(isinstance(r["value"], float) for r in d.rows)


def test_source_lane_maps_every_wire_lane():
    assert set(codec.SOURCE_LANE) == {Lane.READING, Lane.EVENT, Lane.ALARM}
    assert codec.SOURCE_LANE[Lane.EVENT] is Lane.EVENT and codec.SOURCE_LANE[Lane.ALARM] is Lane.ALARM


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_decode_records_gives_the_rows_decode_batch_gives_and_encodes_back_to_the_same_bytes(rows):
    body = encode_batch(Lane.READING, rows, epoch="ep")
    got = codec.decode_records(body)
    d = decode_batch(body)
    assert [w.seq for w in got] == [r["seq"] for r in d.rows] == [s.seq for s in rows]
    for w, row in zip(got, d.rows, strict=True):
        r = w.item
        assert isinstance(r, UploadRecord) and r.kind == row["kind"]
        assert (r.point, r.unit, r.wall_ns, str(r.quality), r.synced, r.corrected) == (
            row["point"], row["unit"], row["wall_ns"], row["quality"], row["synced"], row["corrected"])
        assert struct.pack(">d", r.value) == struct.pack(">d", row["value"])
        assert r.resolution == d.resolutions[r.point]
        if row["kind"] == "agg":
            assert (r.window_s, r.count, r.last_ns) == (row["window_s"], row["count"], row["last_ns"])
            assert [r.min, r.max, r.last] == [row["min"], row["max"], row["last"]]
        else:
            assert (r.window_s, r.count, r.min, r.max, r.last, r.last_ns) == (0, 1, None, None, None, None)
        assert (r.mono_ns, r.boot_id) == (row.get("mono_ns"), row.get("boot_id", ""))
    # What the store hands sync encodes to the very body it was read from.
    assert encode_batch(Lane.READING, got, epoch="ep") == body


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_decode_records_raises_protocol_error_only_on_garbage(data):
    try:
        codec.decode_records(data)
    except ProtocolError:
        pass


def test_decode_records_refuses_another_lane():
    body = encode_batch(Lane.EVENT, stored([Event("k", "t", "s", Stamp(T0, 1, "b", True))], lane=Lane.EVENT))
    with pytest.raises(ProtocolError, match="reading records were expected"):
        codec.decode_records(body)
