"""Reading version 1 of the batch body (``"ZB"``, format 1): blocks stored before the protobuf body.

Why it stays: the store keeps its upload blocks in the batch encoding, so a
gateway upgraded with records still unsent holds version-1 blocks, and the
central hears older gateways until they are upgraded. Nothing writes this
version any more. Its layout is in docs/sync-encoding.md ("Body, version 1").
Raises :class:`~zaas_edge.errors.ProtocolError` on bytes off the format; the
caller turns any other exception into one.
"""

from __future__ import annotations

__all__ = ["MAGIC", "decode_v1"]

import json
import struct
from typing import Any

from zaas_edge.errors import ProtocolError
from zaas_edge.model import Lane, Quality
from zaas_edge.wire.batch import BOOT, CORR, MONO, QUAL, SYNC, DecodedBatch, reading_dicts, scale_of, wire_rows
from zaas_edge.wire.varint import Reader as _Reader
from zaas_edge.wire.varint import unzz as _unzz

MAGIC = b"ZB"
VERSION = 1
_CODE_LANE = {1: Lane.READING, 2: Lane.EVENT, 3: Lane.ALARM}
_CODE_QUALITY = {0: Quality.OK, 1: Quality.STALE, 2: Quality.ERROR, 3: Quality.ESTIMATED}
_SYNCED, _CORRECTED, _HAS_MONO = 1, 2, 4
_F64 = struct.Struct(">d")


def decode_v1(body: bytes, records: bool = False) -> DecodedBatch:
    if len(body) < 4 or body[:2] != MAGIC:
        raise ProtocolError("not a zaas batch body (missing the 'ZB' magic)")
    version = body[2]
    if version != VERSION:
        raise ProtocolError(f"batch format version {version} is not supported (this side reads {VERSION})")
    lane = _CODE_LANE.get(body[3])
    if lane is None:
        raise ProtocolError(f"unknown lane code {body[3]}")
    rd = _Reader(body, 4)
    epoch = rd.text()
    first = rd.u()
    n = rd.u()
    if n > len(body):
        raise ProtocolError(f"{n} rows announced in a body of {len(body)} bytes")
    sec = rd.section()
    seqs = [first] * n
    s = first
    for i, d in enumerate(sec.us(max(n - 1, 0)), 1):
        s += d + 1
        seqs[i] = s
    sec.done("seq column")
    resolutions: dict[str, float] = {}
    if lane is Lane.READING and records:
        fields, _kinds = _reading_fields(rd, seqs, resolutions)
        rows = wire_rows(seqs, fields)
    elif lane is Lane.READING:
        fields, kinds = _reading_fields(rd, seqs, resolutions)
        rows = reading_dicts(seqs, fields, kinds)
    else:
        rows = _decode_json(rd, lane, seqs)
    rd.done("batch")
    return DecodedBatch(version, lane, first if n else 0, seqs[-1] if n else 0, rows, epoch, resolutions)


def _read_dictionary(sec: _Reader, npts: int, resolutions: dict[str, float]
                     ) -> tuple[list[tuple[str, str]], list[tuple[float, float]]]:
    """The point dictionary: (key, unit) and (multiplier, divisor) per entry.

    Hot when the store reads its upload blocks back (each block has its own
    dictionary): an entry whose lengths and resolution fit one byte each, the
    usual case, is read without the general varint reader.
    """
    points: list[tuple[str, str]] = []
    mults: list[tuple[float, float]] = []
    buf, pos, end = sec.buf, sec.pos, sec.end
    for _ in range(npts):
        kl = buf[pos] if pos < end else 0x80
        ks = pos + 1
        us = ks + kl
        ul = buf[us] if kl < 0x80 and us < end else 0x80
        ue = us + 1 + ul
        if ul < 0x80 and ue + 2 <= end and buf[ue] < 0x80 and buf[ue + 1] < 0x80:
            try:
                key, unit = buf[ks:us].decode("utf-8"), buf[us + 1:ue].decode("utf-8")
            except UnicodeDecodeError:
                raise ProtocolError(f"string is not UTF-8 before byte {ue}") from None
            m, e = buf[ue], _unzz(buf[ue + 1])
            pos = ue + 2
        else:  # the general path: long strings, large mantissas, or a truncated entry (raises)
            sec.pos = pos
            key, unit = sec.text(), sec.text()
            m, e = sec.u(), sec.z()
            pos = sec.pos
        scale = scale_of(key, m, e)
        points.append((key, unit))
        mults.append(scale[:2])
        resolutions[key] = scale[2]
    sec.pos = pos
    return points, mults


def _reading_fields(rd: _Reader, seqs: list[int], resolutions: dict[str, float]
                    ) -> tuple[list[list[Any]], list[bool]]:
    """Each row as a list of UploadRecord's fields, and whether it is an aggregate."""
    n = len(seqs)
    sec = rd.section()
    npts = sec.u()
    if npts > sec.end - sec.pos:
        raise ProtocolError(f"{npts} points announced in a dictionary of {sec.end - sec.pos} bytes")
    points, mults = _read_dictionary(sec, npts, resolutions)
    sec.done("point dictionary")
    if n and not points:
        raise ProtocolError("rows without a point dictionary")

    sec = rd.section()
    pidx = [0] * n
    j = 0
    for i, d in enumerate(sec.us(n)):
        j += _unzz(d)
        if not 0 <= j < npts:
            raise ProtocolError(f"row {i}: point index {j} outside the dictionary of {npts}")
        pidx[i] = j
    sec.done("point column")

    sec = rd.section()
    runs = sec.us(sec.u())
    sec.done("kind runs")
    if sum(runs) != n:
        raise ProtocolError(f"kind runs cover {sum(runs)} rows, the batch has {n}")
    kinds: list[bool] = []
    agg = False
    for r in runs:
        kinds.extend([agg] * r)
        agg = not agg

    sec = rd.section()
    k = sec.byte()
    if k > 9:
        raise ProtocolError(f"time unit 10^{k} ns out of range")
    unit = 10**k
    t = sec.z()
    times = [0] * n
    last_t: dict[int, int] = {}
    last_dt: dict[int, int] = {}
    for i, (j, c) in enumerate(zip(pidx, sec.us(n), strict=True)):
        c = _unzz(c)
        pt = last_t.get(j)
        if pt is None:
            t = t + c
            last_dt[j] = 0
        else:
            dt = last_dt[j] + c
            last_dt[j] = dt
            t = pt + dt
        last_t[j] = t
        times[i] = t * unit
    sec.done("time column")

    sec = rd.section()
    nf = sec.u()
    fallback = set()
    prev = -1
    for d in sec.us(nf):
        prev += d + 1
        fallback.add(prev)
    sec.done("fallback list")
    if prev >= n:
        raise ProtocolError(f"fallback row {prev} beyond the {n} rows")
    ints, aggs, floats = rd.section(), rd.section(), rd.section()
    int_values = iter(ints.rest())  # one per row on the integer grid, in row order
    unpack = _F64.unpack_from
    prev_q = [0] * npts
    point_res = [resolutions[key] for key, _unit in points]
    ok = Quality.OK
    rows: list[list[Any]] = []
    for i in range(n):
        j = pidx[i]
        key, unit_s = points[j]
        mul, div = mults[j]
        agg = kinds[i]
        if agg:
            window, count = aggs.u(), aggs.u()
            last_ns = times[i] + aggs.z() * unit
        else:
            window, count, last_ns = 0, 1, None
        lo = hi = last = None
        if mul and i not in fallback:
            z = next(int_values, None)
            if z is None:
                raise ProtocolError(f"integer values end before row {i}")
            q = prev_q[j] + ((z >> 1) ^ -(z & 1))
            prev_q[j] = q
            value = q * mul / div
            if agg:
                lo, hi, last = ((q + aggs.z()) * mul / div for _ in range(3))
        else:
            vals = [unpack(floats.take(8))[0] for _ in range(4 if agg else 1)]
            value = vals[0]
            if agg:
                lo, hi, last = vals[1:]
        rows.append([key, unit_s, times[i], value, ok, True, False, None, "", point_res[j], window, count,
                     lo, hi, last, last_ns])
    if next(int_values, None) is not None:
        raise ProtocolError("unexpected bytes after the integer values")
    aggs.done("aggregate columns")
    floats.done("float64 values")

    sec = rd.section()
    prev = -1
    for _ in range(sec.u()):
        prev += sec.u() + 1
        code = sec.byte()
        if prev >= n or code not in _CODE_QUALITY:
            raise ProtocolError(f"quality exception (row {prev}, code {code}) out of range")
        rows[prev][QUAL] = _CODE_QUALITY[code]
    sec.done("quality exceptions")

    sec = rd.section()
    boots = [sec.text() for _ in range(_bounded(sec, sec.u()))]
    prev, mono = -1, 0
    for _ in range(sec.u()):
        prev += sec.u() + 1
        flags = sec.byte()
        if prev >= n or flags > 7:
            raise ProtocolError(f"clock exception (row {prev}, flags {flags}) out of range")
        row = rows[prev]
        row[SYNC] = bool(flags & _SYNCED)
        row[CORR] = bool(flags & _CORRECTED)
        if flags & _HAS_MONO:
            mono += sec.z()
            b = sec.u()
            if b >= len(boots):
                raise ProtocolError(f"boot index {b} outside the {len(boots)} boots")
            row[MONO], row[BOOT] = mono, boots[b]
    sec.done("clock exceptions")
    return rows, kinds


def _bounded(sec: _Reader, count: int) -> int:
    if count > sec.end - sec.pos:
        raise ProtocolError(f"{count} entries announced, {sec.end - sec.pos} bytes left")
    return count


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "alarm_id": (str,), "active": (bool,), "kind": (str,), "severity": (str,), "source": (str,),
    "text": (str,), "data": (dict,), "wall_ns": (int,), "mono_ns": (int,), "boot_id": (str,), "synced": (bool,),
}


def _decode_json(rd: _Reader, lane: Lane, seqs: list[int]) -> list[dict[str, Any]]:
    sec = rd.section()
    try:
        cols = json.loads(sec.take(sec.end - sec.pos).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"{lane} columns are not UTF-8 JSON: {exc}") from exc
    names = ("alarm_id", "active") if lane is Lane.ALARM else ("kind",)
    names += ("severity", "source", "text", "data", "wall_ns", "mono_ns", "boot_id", "synced")
    if not isinstance(cols, dict) or set(cols) != set(names):
        raise ProtocolError(f"{lane} columns must be exactly {', '.join(names)}")
    n = len(seqs)
    for name in names:
        col = cols[name]
        want = _JSON_TYPES[name]
        if not isinstance(col, list) or len(col) != n:
            raise ProtocolError(f"{lane} column {name!r} must be a list of {n}")
        for v in col:
            if not isinstance(v, want) or (want == (int,) and isinstance(v, bool)):
                raise ProtocolError(f"{lane} column {name!r} holds a {type(v).__name__}")
    return [{"seq": s, **{name: cols[name][i] for name in names}} for i, s in enumerate(seqs)]
