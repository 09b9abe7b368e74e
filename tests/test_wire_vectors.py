"""The test vectors in docs/sync-vectors/ are what the gateway sends and what the central reads.

A platform team tests its decoder on them (tests/test_wire_proto.py does so
with the official protobuf library); these tests keep them true: the encoder
still makes each committed body from the rows of tests/wire_vectors.py, and
the decoder still reads each to its committed JSON. A deliberate format
change rewrites them with ``python -m tests.wire_vectors``.
"""

from __future__ import annotations

import json

import pytest

from tests.wire_vectors import CASES, VECTORS, as_json, body, read_hex
from zaas_edge.wire.codec import decode_batch


def test_every_vector_is_committed_and_nothing_else():
    names = {p.stem for p in VECTORS.iterdir()}
    files = {p.name for p in VECTORS.iterdir()}
    assert names == set(CASES)
    assert files == {f"{n}.{ext}" for n in CASES for ext in ("hex", "json")}


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_encoder_still_makes_the_committed_body(name):
    assert body(name) == read_hex(VECTORS / f"{name}.hex"), (
        f"the encoder changed docs/sync-vectors/{name}.hex: if on purpose, run python -m tests.wire_vectors")


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_decoder_reads_the_committed_body_to_its_rows(name):
    d = decode_batch(read_hex(VECTORS / f"{name}.hex"))
    assert as_json(d) == json.loads((VECTORS / f"{name}.json").read_text())


def test_the_vectors_cover_what_a_decoder_must_handle():
    docs = {n: json.loads((VECTORS / f"{n}.json").read_text()) for n in CASES}
    rows = [r for d in docs.values() for r in d["rows"]]
    readings = [r for r in rows if "point" in r]
    assert {r["kind"] for r in readings} == {"raw", "agg"}
    assert {r["quality"] for r in readings} == {"ok", "stale", "error", "estimated"}
    assert any(r["corrected"] for r in readings) and any(not r["synced"] for r in readings)
    assert any(v == 0.0 for d in docs.values() for v in d["resolutions"].values())  # a lossless point
    assert any(r["value"] > 2.0**53 for r in readings)  # a value off the integer grid: the float64 column
    seqs = [r["seq"] for r in docs["readings-raw"]["rows"]]
    assert any(b - a > 1 for a, b in zip(seqs, seqs[1:], strict=False))  # a gap in the seqs
    assert docs["readings-empty"]["rows"] == []
    assert any(r["wall_ns"] < 0 for r in rows if "kind" in r and "point" not in r)  # int64 below zero
