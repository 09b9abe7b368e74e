"""The sync body is the protobuf message of docs/sync-batch.proto: a decoder generated from it reads our bytes.

The Python module is generated at test time from the .proto with protoc (the
``grpcio-tools`` package, in the test extra) and parsed with the official
``protobuf`` runtime. :func:`rows_of` below is a platform's whole decoder over
the generated classes, written from the comments of the .proto alone: the
reference for a port to another language.
"""

from __future__ import annotations

import importlib.util
import json
import math
import struct
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.test_wire_codec import records
from tests.wire_vectors import CASES, VECTORS, read_hex
from zaas_edge.model import Lane
from zaas_edge.wire import codec
from zaas_edge.wire.codec import decode_batch, encode_batch

PROTO = Path(__file__).resolve().parent.parent / "docs" / "sync-batch.proto"


@pytest.fixture(scope="module")
def pb2(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    protoc = pytest.importorskip("grpc_tools.protoc", reason="grpcio-tools (the test extra) generates the module")
    pytest.importorskip("google.protobuf", reason="protobuf (the test extra) parses the bodies")
    out = tmp_path_factory.mktemp("pb2")
    rc = protoc.main(["protoc", f"-I{PROTO.parent}", f"--python_out={out}", PROTO.name])
    assert rc == 0, f"protoc refused {PROTO}"
    path = out / "sync_batch_pb2.py"
    spec = importlib.util.spec_from_file_location("sync_batch_pb2", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["sync_batch_pb2"] = mod
    spec.loader.exec_module(mod)
    return mod


# ------------------------------------------------- a platform's decoder

_QUALITY = {0: "ok", 1: "stale", 2: "error", 3: "estimated"}
_LANE = {1: "reading", 2: "event", 3: "alarm"}


def _rows_at(gaps: Any) -> list[int]:
    rows, prev = [], -1
    for g in gaps:
        prev += g + 1
        rows.append(prev)
    return rows


def _value(q: int, m: int, e: int) -> float:
    return q * m / 10**-e if e < 0 else float(q * m * 10**e)


def rows_of(batch: Any) -> dict[str, Any]:
    """A parsed ``Batch`` as the decoded document of docs/sync-vectors/*.json."""
    n = batch.row_count
    seqs = [batch.first_seq] if n else []
    for g in batch.seq_gaps:
        seqs.append(seqs[-1] + 1 + g)
    doc: dict[str, Any] = {"version": batch.version, "lane": _LANE[batch.lane], "epoch": batch.epoch,
                           "first_seq": seqs[0] if n else 0, "last_seq": seqs[-1] if n else 0,
                           "resolutions": {}, "rows": []}
    if batch.lane != 1:
        items = batch.alarms if batch.lane == 3 else batch.events
        for seq, it in zip(seqs, items, strict=True):
            row: dict[str, Any] = {"seq": seq}
            if batch.lane == 3:
                row |= {"alarm_id": it.alarm_id, "active": it.active}
            else:
                row["kind"] = it.kind
            row |= {"severity": it.severity, "source": it.source, "text": it.text,
                    "data": json.loads(it.data_json or "{}"), "wall_ns": it.wall_ns, "mono_ns": it.mono_ns,
                    "boot_id": it.boot_id, "synced": it.synced}
            doc["rows"].append(row)
        return doc

    r = batch.readings
    points = list(zip(r.point_keys, r.point_units, r.resolution_mantissas, r.resolution_exponents, strict=True))
    doc["resolutions"] = {k: (m * 10.0**e if m else 0.0) for k, _u, m, e in points}
    idx, j = [], 0
    for d in r.point_index_deltas:
        j += d
        idx.append(j)
    kinds: list[bool] = []
    for i, run in enumerate(r.kind_runs):
        kinds += [i % 2 == 1] * run
    unit = 10**r.time_unit_exponent
    times, t, last_t, last_dt = [], r.first_time, {}, {}
    for j, c in zip(idx, r.time_codes, strict=True):
        if j in last_t:
            last_dt[j] += c
            t = last_t[j] + last_dt[j]
        else:
            t += c
            last_dt[j] = 0
        last_t[j] = t
        times.append(t * unit)
    fallback = set(_rows_at(r.fallback_gaps))
    ints, spreads = iter(r.value_deltas), iter(zip(r.min_offsets, r.max_offsets, r.last_offsets, strict=True))
    aggs = iter(zip(r.window_s, r.counts, r.last_time_offsets, strict=True))
    floats = iter(r.float_values)
    q_prev: dict[int, int] = {}
    for i, seq in enumerate(seqs):
        key, unit_s, m, e = points[idx[i]]
        row = {"seq": seq, "point": key, "unit": unit_s, "wall_ns": times[i], "quality": "ok", "synced": True,
               "corrected": False, "kind": "agg" if kinds[i] else "raw"}
        if kinds[i]:
            window, count, off = next(aggs)
            row |= {"window_s": window, "count": count, "last_ns": times[i] + off * unit}
        if m and i not in fallback:
            q = q_prev.get(idx[i], 0) + next(ints)
            q_prev[idx[i]] = q
            row["value"] = _value(q, m, e)
            if kinds[i]:
                lo, hi, last = (q + d for d in next(spreads))
                row |= {"min": _value(lo, m, e), "max": _value(hi, m, e), "last": _value(last, m, e)}
        else:
            row["value"] = next(floats)
            if kinds[i]:
                row |= {"min": next(floats), "max": next(floats), "last": next(floats)}
        if kinds[i]:
            row["avg"] = row["value"]
        doc["rows"].append(row)
    for i, quality in zip(_rows_at(r.quality_gaps), r.qualities, strict=True):
        doc["rows"][i]["quality"] = _QUALITY[quality]
    monos = iter(zip(r.mono_deltas, r.boot_indexes, strict=True))
    mono = 0
    for i, flags in zip(_rows_at(r.clock_gaps), r.clock_flags, strict=True):
        row = doc["rows"][i]
        row["synced"], row["corrected"] = bool(flags & 1), bool(flags & 2)
        if flags & 4:
            d, b = next(monos)
            mono += d
            row["mono_ns"], row["boot_id"] = mono, r.boot_ids[b]
    return doc


# ------------------------------------------------------------- tests

def _bits(doc: Any) -> Any:
    """Floats by their bits, so NaN equals NaN and -0.0 differs from 0.0."""
    if isinstance(doc, float):
        return struct.pack("<d", doc)
    if isinstance(doc, dict):
        return {k: _bits(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_bits(v) for v in doc]
    return doc


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_official_library_reads_every_vector_to_its_rows_and_writes_the_same_bytes(pb2, name):
    body = read_hex(VECTORS / f"{name}.hex")
    batch = pb2.Batch.FromString(body)
    assert rows_of(batch) == json.loads((VECTORS / f"{name}.json").read_text())
    assert batch.SerializeToString() == body


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(records())
def test_any_reading_batch_decodes_the_same_through_the_schema(pb2, rows):
    body = encode_batch(Lane.READING, rows, epoch="ep")
    batch = pb2.Batch.FromString(body)
    d = decode_batch(body)
    ours = {"version": d.version, "lane": str(d.lane), "epoch": d.epoch, "first_seq": d.first_seq,
            "last_seq": d.last_seq, "resolutions": d.resolutions, "rows": d.rows}
    theirs = rows_of(batch)
    # A platform computes the resolution as m * 10^e; ours is the same product, cached.
    assert all(math.isclose(theirs["resolutions"][k], v) for k, v in ours["resolutions"].items())
    theirs["resolutions"] = ours["resolutions"]
    assert _bits(theirs) == _bits(ours)
    assert batch.SerializeToString() == body


def test_a_body_written_by_the_official_library_is_read_by_the_gateway(pb2):
    batch = pb2.Batch(version=2, lane=pb2.LANE_EVENT, epoch="e", first_seq=9, row_count=2, seq_gaps=[3])
    batch.events.add(kind="store.gap", severity="warning", source="store", text="t", data_json='{"n":1}',
                     wall_ns=-1, mono_ns=5, boot_id="b", synced=True)
    batch.events.add(kind="k")
    d = decode_batch(batch.SerializeToString())
    assert [r["seq"] for r in d.rows] == [9, 13]
    assert d.rows[0] == {"seq": 9, "kind": "store.gap", "severity": "warning", "source": "store", "text": "t",
                         "data": {"n": 1}, "wall_ns": -1, "mono_ns": 5, "boot_id": "b", "synced": True}
    assert d.rows[1]["data"] == {} and d.rows[1]["synced"] is False


def test_the_codec_uses_the_field_numbers_of_the_schema(pb2):
    batch = {f.name: f.number for f in pb2.Batch.DESCRIPTOR.fields}
    assert batch == {"version": codec.B_VERSION, "lane": codec.B_LANE, "epoch": codec.B_EPOCH,
                     "first_seq": codec.B_FIRST_SEQ, "row_count": codec.B_ROW_COUNT, "seq_gaps": codec.B_SEQ_GAPS,
                     "readings": codec.B_READINGS, "events": codec.B_EVENTS, "alarms": codec.B_ALARMS}
    readings = [f.name for f in sorted(pb2.Readings.DESCRIPTOR.fields, key=lambda f: f.number)]
    ours = ["point_keys", "point_units", "resolution_mantissas", "resolution_exponents", "point_index_deltas",
            "kind_runs", "time_unit_exponent", "first_time", "time_codes", "fallback_gaps", "value_deltas",
            "window_s", "counts", "last_time_offsets", "min_offsets", "max_offsets", "last_offsets",
            "float_values", "quality_gaps", "qualities", "boot_ids", "clock_gaps", "clock_flags", "mono_deltas",
            "boot_indexes"]
    assert readings == ours
    assert [f.number for f in sorted(pb2.Readings.DESCRIPTOR.fields, key=lambda f: f.number)] == list(
        range(codec.R_KEYS, codec.R_BOOT_INDEXES + 1))
    assert codec.SCHEMA == pb2.Batch.DESCRIPTOR.full_name
    assert codec.FORMAT_VERSION == 2
