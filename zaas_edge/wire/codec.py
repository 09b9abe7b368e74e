"""The batch body sync sends: a Protocol Buffers message of columns (sans-I/O).

Pure functions, bytes in and values out: :func:`encode_batch` builds the
uncompressed body of one frozen batch (the uplink compresses it with gzip or
zstd), :func:`decode_batch` reads it back (the reference central API does),
raising :class:`~zaas_edge.errors.ProtocolError` and nothing else on bytes
that do not follow the format.

The body is the message ``zaas.sync.v2.Batch`` of docs/sync-batch.proto, so a
platform team generates its decoder with ``protoc`` instead of porting this
one; docs/sync-encoding.md says what each column means and
docs/sync-vectors/ holds bodies with their decoded rows. The short of it:

- readings go column by column: a dictionary of point keys (each sent once
  per batch, with its unit and resolution), then seq gaps, point-index
  deltas, per-point delta-of-delta timestamps, values as integers at the
  point's resolution delta-coded per point, a float64 column for values that
  do not fit (and for points without a resolution: lossless), and sparse
  exception lists for quality and clock state, the usual case costing
  nothing. Every integer column is a packed varint field (``sint64`` when it
  is signed: protobuf's own zigzag), so protobuf adds only a tag and a length
  per column;
- events and alarms are rare and varied: one sub-message each, ``data`` as a
  JSON object.

Bodies of version 1 (before the schema, starting ``"ZB"``) are still read, by
:mod:`zaas_edge.wire.codec_v1`: the store may hold upload blocks written
before an upgrade, and older gateways keep sending them until upgraded.

Which store lane feeds which wire lane is :data:`SOURCE_LANE`: readings go up
as upload records (raw samples or window aggregates made by the upload
policies), not as the raw reading lane, which stays local.
"""

from __future__ import annotations

__all__ = [
    "FORMAT_VERSION",
    "CONTENT_TYPE",
    "SCHEMA",
    "SOURCE_LANE",
    "WIRE_LANES",
    "DEFAULT_TOLERANCE",
    "DecodedBatch",
    "WireRow",
    "encode_batch",
    "decode_batch",
    "decode_records",
    "split_resolution",
]

import itertools
import json
import math
import struct
from collections.abc import Callable, Sequence
from typing import Any

from zaas_edge.errors import ProtocolError
from zaas_edge.model import Alarm, Event, Lane, Quality, Reading, UploadRecord
from zaas_edge.wire import proto as pb
from zaas_edge.wire.batch import (
    BOOT,
    CORR,
    MONO,
    QUAL,
    SYNC,
    DecodedBatch,
    WireRow,
    reading_dicts,
    scale,
    scale_of,
    split_resolution,
    wire_rows,
)
from zaas_edge.wire.codec_v1 import MAGIC as _V1_MAGIC
from zaas_edge.wire.codec_v1 import decode_v1
from zaas_edge.wire.varint import zz as _zz

FORMAT_VERSION = 2
CONTENT_TYPE = f"application/vnd.zaas.batch;v={FORMAT_VERSION}"
SCHEMA = "zaas.sync.v2.Batch"  # the message in docs/sync-batch.proto

# The one place that says which store lane each wire lane drains: the wire
# lane "reading" carries the store lane ``upload`` (records the aggregator made
# from the raw ``reading`` lane, which never leaves the box); events and alarms
# go as they are. Sync reads and acknowledges these store lanes as consumer "sync".
SOURCE_LANE: dict[Lane, Lane] = {Lane.READING: Lane.UPLOAD, Lane.EVENT: Lane.EVENT, Lane.ALARM: Lane.ALARM}
WIRE_LANES = (Lane.ALARM, Lane.EVENT, Lane.READING)  # drain order: alarms first

# A value is sent as an integer at its point's resolution when it lies within
# this fraction of a step of the grid: at 0.5 every finite value in range is
# (the declared resolution says finer digits are noise); lower it to keep
# off-grid values exact in the float64 column instead.
DEFAULT_TOLERANCE = 0.5

_LANE_CODE = {Lane.READING: 1, Lane.EVENT: 2, Lane.ALARM: 3}
_CODE_LANE = {v: k for k, v in _LANE_CODE.items()}
_QUALITY_CODE = {Quality.OK: 0, Quality.STALE: 1, Quality.ERROR: 2, Quality.ESTIMATED: 3}
_CODE_QUALITY = {v: k for k, v in _QUALITY_CODE.items()}
_SYNCED, _CORRECTED, _HAS_MONO = 1, 2, 4
_MAX_INT = 1 << 53  # quantised integers stay exact as float64 on the way back
_F64 = struct.Struct("<d")  # protobuf's double: little-endian

# Field numbers of docs/sync-batch.proto (tests/test_wire_proto.py holds them to the schema).
# Batch
(B_VERSION, B_LANE, B_EPOCH, B_FIRST_SEQ, B_ROW_COUNT, B_SEQ_GAPS, B_READINGS, B_EVENTS, B_ALARMS) = range(1, 10)
# Readings
(R_KEYS, R_UNITS, R_MANTISSAS, R_EXPONENTS, R_POINT_DELTAS, R_KIND_RUNS, R_TIME_UNIT, R_FIRST_TIME, R_TIME_CODES,
 R_FALLBACK_GAPS, R_VALUE_DELTAS, R_WINDOW_S, R_COUNTS, R_LAST_TIME_OFFSETS, R_MIN_OFFSETS, R_MAX_OFFSETS,
 R_LAST_OFFSETS, R_FLOATS, R_QUALITY_GAPS, R_QUALITIES, R_BOOT_IDS, R_CLOCK_GAPS, R_CLOCK_FLAGS, R_MONO_DELTAS,
 R_BOOT_INDEXES) = range(1, 26)
# Event: kind, then the common fields; Alarm: alarm_id, active, then the same.
_EVENT_HEAD = ("kind",)
_ALARM_HEAD = ("alarm_id", "active")


# ------------------------------------------------------------- encoding

def encode_batch(
    lane: Lane,
    rows: Sequence[Any],
    *,
    resolution: Callable[[str], float | None] = lambda key: None,
    epoch: str = "",
    tolerance: float = DEFAULT_TOLERANCE,
) -> bytes:
    """The uncompressed body of one batch of ``lane``.

    ``rows`` are :class:`zaas_edge.store.Stored` (anything with ``seq`` and
    ``item``), in increasing seq order. For the reading lane an item is an
    :class:`UploadRecord` or a plain :class:`Reading`; ``resolution(key)``
    overrides a record's own resolution (``None``: keep it; a plain reading
    has none, so goes lossless). The bytes are the canonical serialisation
    of a ``zaas.sync.v2.Batch``: what the official protobuf libraries write
    for the same message.
    """
    lane = Lane(lane)
    if lane not in _LANE_CODE:
        raise ValueError(f"{lane} is not a wire lane (one of {', '.join(_LANE_CODE)})")
    seqs = [r.seq for r in rows]
    for a, b in itertools.pairwise(seqs):
        if b <= a:
            raise ValueError(f"rows must be in increasing seq order ({a} then {b})")
    out = bytearray()
    pb.put_uint(out, B_VERSION, FORMAT_VERSION)  # first, so every body starts 08 02
    pb.put_uint(out, B_LANE, _LANE_CODE[lane])
    pb.put_text(out, B_EPOCH, epoch)
    pb.put_uint(out, B_FIRST_SEQ, seqs[0] if seqs else 0)
    pb.put_uint(out, B_ROW_COUNT, len(seqs))
    pb.put_packed(out, B_SEQ_GAPS, [b - a - 1 for a, b in itertools.pairwise(seqs)])
    if lane is Lane.READING:
        pb.put_bytes(out, B_READINGS, _encode_readings([r.item for r in rows], resolution, tolerance), always=True)
    else:
        _encode_notices(out, lane, [r.item for r in rows])
    return bytes(out)


def _record(item: Any) -> UploadRecord:
    if isinstance(item, UploadRecord):
        return item
    if isinstance(item, Reading):
        return UploadRecord(item.point, item.unit, item.wall_ns, item.value, item.quality, item.synced,
                            False, None if item.synced else item.mono_ns, "" if item.synced else item.boot_id)
    raise TypeError(f"a reading batch holds UploadRecord or Reading items, not {type(item).__name__}")


def _encode_readings(items: list[Any], resolution: Callable[[str], float | None], tolerance: float) -> bytearray:
    recs = [_record(i) for i in items]
    out = bytearray()
    # Dictionary of (key, unit) in order of first appearance.
    index: dict[tuple[str, str], int] = {}
    scales: list[tuple[int, int]] = []
    pidx = [0] * len(recs)
    for i, r in enumerate(recs):
        k = (r.point, r.unit)
        j = index.get(k)
        if j is None:
            j = index[k] = len(scales)
            res = resolution(r.point)
            scales.append(split_resolution(r.resolution if res is None else res))
        pidx[i] = j
    pb.put_texts(out, R_KEYS, [key for key, _unit in index])
    pb.put_texts(out, R_UNITS, [unit for _key, unit in index])
    pb.put_packed(out, R_MANTISSAS, [m for m, _e in scales])
    pb.put_packed(out, R_EXPONENTS, [_zz(e) for _m, e in scales])

    # Point column: delta of the dictionary index (a steady poll order is all +1).
    pb.put_packed(out, R_POINT_DELTAS, [_zz(j - prev) for prev, j in zip([0, *pidx], pidx)])  # noqa: B905

    # Kinds as alternating run lengths, raw first.
    runs: list[int] = []
    cur, run = False, 0
    for r in recs:
        agg = r.window_s > 0
        if agg != cur:
            runs.append(run)
            cur, run = agg, 0
        run += 1
    if recs:
        runs.append(run)
    pb.put_packed(out, R_KIND_RUNS, runs)

    # Time: the coarsest power-of-ten unit that keeps every stamp exact.
    stamps = [r.wall_ns for r in recs] + [r.last_ns for r in recs if r.window_s and r.last_ns is not None]
    g = math.gcd(*stamps) if stamps else 0
    k = 0
    while k < 9 and g and g % 10 ** (k + 1) == 0:
        k += 1
    unit = 10**k
    t0 = recs[0].wall_ns // unit if recs else 0
    last_t: dict[int, int] = {}
    last_dt: dict[int, int] = {}
    prev_t = t0
    col = []
    for j, r in zip(pidx, recs, strict=True):
        t = r.wall_ns // unit
        pt = last_t.get(j)
        if pt is None:
            col.append(_zz(t - prev_t))
            last_dt[j] = 0
        else:
            dt = t - pt
            col.append(_zz(dt - last_dt[j]))
            last_dt[j] = dt
        last_t[j] = t
        prev_t = t
    pb.put_uint(out, R_TIME_UNIT, k)
    pb.put_sint(out, R_FIRST_TIME, t0)
    pb.put_packed(out, R_TIME_CODES, col)

    # Values: integers at the resolution, per point deltas; float64 otherwise.
    tol = tolerance + 1e-9
    mults = [scale(m, e) if m else (0.0, 0.0) for m, e in scales]
    prev_q = [0] * len(scales)
    ints: list[int] = []
    windows: list[int] = []
    counts: list[int] = []
    last_offsets: list[int] = []
    spreads: tuple[list[int], list[int], list[int]] = ([], [], [])  # min, max, last minus avg, in steps
    floats = bytearray()
    fallback: list[int] = []
    pack = _F64.pack
    for i, (j, r) in enumerate(zip(pidx, recs, strict=True)):
        mul, div = mults[j]
        agg = r.window_s > 0
        fields = (r.value, r.min, r.max, r.last) if agg else (r.value,)
        qs = None
        if mul:
            qs = []
            for v in fields:
                if v is None:
                    v = r.value
                if not math.isfinite(v):
                    qs = None
                    break
                x = v * div / mul
                q = round(x)
                if abs(q) >= _MAX_INT or abs(x - q) > tol:
                    qs = None
                    break
                qs.append(q)
            if qs is None:
                fallback.append(i)
        if agg:
            windows.append(r.window_s)
            counts.append(r.count)
            lo = r.last_ns if r.last_ns is not None else r.wall_ns
            last_offsets.append(_zz((lo - r.wall_ns) // unit))
        if qs is None:
            for v in fields:
                floats += pack(r.value if v is None else v)
            continue
        q = qs[0]
        ints.append(_zz(q - prev_q[j]))
        prev_q[j] = q
        if agg:
            for spread, x in zip(spreads, qs[1:], strict=True):
                spread.append(_zz(x - q))
    pb.put_packed(out, R_FALLBACK_GAPS, _gaps(fallback))
    pb.put_packed(out, R_VALUE_DELTAS, ints)
    pb.put_packed(out, R_WINDOW_S, windows)
    pb.put_packed(out, R_COUNTS, counts)
    pb.put_packed(out, R_LAST_TIME_OFFSETS, last_offsets)
    for field, spread in zip((R_MIN_OFFSETS, R_MAX_OFFSETS, R_LAST_OFFSETS), spreads, strict=True):
        pb.put_packed(out, field, spread)
    pb.put_doubles(out, R_FLOATS, floats)

    # Sparse exceptions: quality other than ok, clock state other than synced.
    bad = [(i, _QUALITY_CODE[r.quality]) for i, r in enumerate(recs) if r.quality is not Quality.OK]
    pb.put_packed(out, R_QUALITY_GAPS, _gaps([i for i, _code in bad]))
    pb.put_packed(out, R_QUALITIES, [code for _i, code in bad])

    odd = [(i, r) for i, r in enumerate(recs) if not r.synced or r.corrected]
    boots: dict[str, int] = {}
    flags: list[int] = []
    monos: list[int] = []
    boot_indexes: list[int] = []
    prev_mono = 0
    for _, r in odd:
        has_mono = r.mono_ns is not None and not r.synced
        flags.append((_SYNCED if r.synced else 0) | (_CORRECTED if r.corrected else 0) | (_HAS_MONO if has_mono else 0))
        if has_mono:
            monos.append(_zz(r.mono_ns - prev_mono))
            prev_mono = r.mono_ns
            boot_indexes.append(boots.setdefault(r.boot_id, len(boots)))
    pb.put_texts(out, R_BOOT_IDS, list(boots))
    pb.put_packed(out, R_CLOCK_GAPS, _gaps([i for i, _r in odd]))
    pb.put_packed(out, R_CLOCK_FLAGS, flags)
    pb.put_packed(out, R_MONO_DELTAS, monos)
    pb.put_packed(out, R_BOOT_INDEXES, boot_indexes)
    return out


def _gaps(rows: list[int]) -> list[int]:
    """Increasing row numbers as gaps: ``row - previous - 1``, the previous of the first being -1."""
    return [i - prev - 1 for prev, i in zip([-1, *rows], rows)]  # noqa: B905


def _encode_notices(out: bytearray, lane: Lane, items: list[Event | Alarm]) -> None:
    """Events and alarms: one sub-message each, in the field order of docs/sync-batch.proto."""
    want = Alarm if lane is Lane.ALARM else Event
    field = B_ALARMS if lane is Lane.ALARM else B_EVENTS
    for it in items:
        if not isinstance(it, want):
            raise TypeError(f"the {lane} lane holds {want.__name__} items, not {type(it).__name__}")
        m = bytearray()
        if isinstance(it, Alarm):
            pb.put_text(m, 1, it.alarm_id)
            pb.put_bool(m, 2, it.active)
        else:
            pb.put_text(m, 1, it.kind)
        n = 2 if isinstance(it, Event) else 3
        pb.put_text(m, n, str(it.severity))
        pb.put_text(m, n + 1, it.source)
        pb.put_text(m, n + 2, it.text)
        pb.put_text(m, n + 3, json.dumps(dict(it.data), default=str, separators=(",", ":"), ensure_ascii=False))
        pb.put_int64(m, n + 4, it.stamp.wall_ns)
        pb.put_int64(m, n + 5, it.stamp.mono_ns)
        pb.put_text(m, n + 6, it.stamp.boot_id)
        pb.put_bool(m, n + 7, it.stamp.synced)
        pb.put_bytes(out, field, m, always=True)


# ------------------------------------------------------------- decoding

def decode_batch(body: bytes) -> DecodedBatch:
    """Read a body back (this version or version 1); raises :class:`ProtocolError` (only) on bytes off the format."""
    try:
        return _decode(bytes(body))
    except ProtocolError:
        raise
    except (ValueError, IndexError, KeyError, OverflowError, TypeError, struct.error, RecursionError) as exc:
        raise ProtocolError(f"malformed batch body: {type(exc).__name__}: {exc}") from exc


def decode_records(body: bytes) -> list[WireRow]:
    """A reading-lane body read back as ``WireRow(seq, UploadRecord)`` tuples (no dict per row).

    What the store uses to hand its upload blocks to sync; :func:`decode_batch`
    is the general form. Raises :class:`ProtocolError` (only) on bytes off
    the format, or on a body of another lane.
    """
    try:
        d = _decode(bytes(body), records=True)
    except ProtocolError:
        raise
    except (ValueError, IndexError, KeyError, OverflowError, TypeError, struct.error, RecursionError) as exc:
        raise ProtocolError(f"malformed batch body: {type(exc).__name__}: {exc}") from exc
    if d.lane is not Lane.READING:
        raise ProtocolError(f"a {d.lane} body where reading records were expected")
    return d.rows  # type: ignore[return-value]


def _decode(body: bytes, records: bool = False) -> DecodedBatch:
    if body[:2] == _V1_MAGIC:
        return decode_v1(body, records)
    msg = pb.Fields(body)
    version = msg.uint(B_VERSION)
    if version != FORMAT_VERSION:
        if not version:
            raise ProtocolError("not a zaas batch body (no format version)")
        raise ProtocolError(f"batch format version {version} is not supported (this side reads 1 and "
                            f"{FORMAT_VERSION})")
    lane = _CODE_LANE.get(msg.uint(B_LANE))
    if lane is None:
        raise ProtocolError(f"unknown lane code {msg.uint(B_LANE)}")
    epoch = msg.text(B_EPOCH)
    first = msg.uint(B_FIRST_SEQ)
    n = msg.uint(B_ROW_COUNT)
    if n > len(body):
        raise ProtocolError(f"{n} rows announced in a body of {len(body)} bytes")
    gaps = msg.uints(B_SEQ_GAPS)
    if len(gaps) != max(n - 1, 0):
        raise ProtocolError(f"{len(gaps)} seq gaps for {n} rows")
    seqs = [first] * n
    s = first
    for i, d in enumerate(gaps, 1):
        s += d + 1
        seqs[i] = s
    readings, events, alarms = msg.message(B_READINGS), msg.by_number.get(B_EVENTS), msg.by_number.get(B_ALARMS)
    if (readings is not None and lane is not Lane.READING) or (events and lane is not Lane.EVENT) or (
            alarms and lane is not Lane.ALARM):
        raise ProtocolError(f"a {lane} batch carries rows of another lane")
    resolutions: dict[str, float] = {}
    rows: list[Any]
    if lane is Lane.READING:
        fields, kinds = _reading_fields(readings, seqs, resolutions)
        rows = wire_rows(seqs, fields) if records else reading_dicts(seqs, fields, kinds)
    else:
        rows = _decode_notices(msg, lane, seqs)
    return DecodedBatch(version, lane, first if n else 0, seqs[-1] if n else 0, rows, epoch, resolutions)


def _reading_fields(m: pb.Fields | None, seqs: list[int], resolutions: dict[str, float]
                    ) -> tuple[list[list[Any]], list[bool]]:
    """Each row as a list of UploadRecord's fields, and whether it is an aggregate."""
    n = len(seqs)
    if m is None:
        if n:
            raise ProtocolError("a reading batch without its readings")
        return [], []
    keys, units = m.texts(R_KEYS), m.texts(R_UNITS)
    mantissas, exponents = m.uints(R_MANTISSAS), m.uints(R_EXPONENTS)
    npts = len(keys)
    if not len(units) == len(mantissas) == len(exponents) == npts:
        raise ProtocolError(f"point dictionary: {npts} keys, {len(units)} units, {len(mantissas)} mantissas, "
                            f"{len(exponents)} exponents")
    if n and not npts:
        raise ProtocolError("rows without a point dictionary")
    mults: list[tuple[float, float]] = []
    point_res: list[float] = []
    for key, mant, e in zip(keys, mantissas, exponents, strict=True):
        sc = scale_of(key, mant, (e >> 1) ^ -(e & 1))
        mults.append(sc[:2])
        point_res.append(sc[2])
        resolutions[key] = sc[2]

    deltas = m.uints(R_POINT_DELTAS)
    if len(deltas) != n:
        raise ProtocolError(f"{len(deltas)} point indexes for {n} rows")
    pidx = [0] * n
    j = 0
    for i, d in enumerate(deltas):
        j += (d >> 1) ^ -(d & 1)
        if not 0 <= j < npts:
            raise ProtocolError(f"row {i}: point index {j} outside the dictionary of {npts}")
        pidx[i] = j

    runs = m.uints(R_KIND_RUNS)
    if sum(runs) != n:
        raise ProtocolError(f"kind runs cover {sum(runs)} rows, the batch has {n}")
    kinds: list[bool] = []
    agg = False
    for r in runs:
        kinds.extend([agg] * r)
        agg = not agg

    k = m.uint(R_TIME_UNIT)
    if k > 9:
        raise ProtocolError(f"time unit 10^{k} ns out of range")
    unit = 10**k
    t = m.sint(R_FIRST_TIME)
    codes = m.uints(R_TIME_CODES)
    if len(codes) != n:
        raise ProtocolError(f"{len(codes)} time codes for {n} rows")
    times = [0] * n
    last_t: dict[int, int] = {}
    last_dt: dict[int, int] = {}
    for i, (j, c) in enumerate(zip(pidx, codes, strict=True)):
        c = (c >> 1) ^ -(c & 1)
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

    fallback = set()
    prev = -1
    for d in m.uints(R_FALLBACK_GAPS):
        prev += d + 1
        fallback.add(prev)
    if prev >= n:
        raise ProtocolError(f"fallback row {prev} beyond the {n} rows")
    ints = m.uints(R_VALUE_DELTAS)
    windows, counts, last_offsets = m.uints(R_WINDOW_S), m.uints(R_COUNTS), m.uints(R_LAST_TIME_OFFSETS)
    nagg = sum(runs[1::2])
    if not len(windows) == len(counts) == len(last_offsets) == nagg:
        raise ProtocolError(f"{nagg} aggregate rows, {len(windows)} windows, {len(counts)} counts, "
                            f"{len(last_offsets)} last times")
    lows, highs, lasts = m.uints(R_MIN_OFFSETS), m.uints(R_MAX_OFFSETS), m.uints(R_LAST_OFFSETS)
    floats = m.doubles(R_FLOATS)
    prev_q = [0] * npts
    ok = Quality.OK
    rows: list[list[Any]] = []
    qi = ai = si = fi = 0  # next integer value, aggregate row, quantised aggregate row, float
    nints, nspread, nfloats = len(ints), len(lows), len(floats)
    if not len(highs) == len(lasts) == nspread:
        raise ProtocolError(f"{nspread} min offsets, {len(highs)} max offsets, {len(lasts)} last offsets")
    for i in range(n):
        j = pidx[i]
        key, unit_s = keys[j], units[j]
        mul, div = mults[j]
        agg = kinds[i]
        if agg:
            window, count = windows[ai], counts[ai]
            z = last_offsets[ai]
            last_ns = times[i] + ((z >> 1) ^ -(z & 1)) * unit
            ai += 1
        else:
            window, count, last_ns = 0, 1, None
        lo = hi = last = None
        if mul and i not in fallback:
            if qi >= nints:
                raise ProtocolError(f"integer values end before row {i}")
            z = ints[qi]
            qi += 1
            q = prev_q[j] + ((z >> 1) ^ -(z & 1))
            prev_q[j] = q
            value = q * mul / div
            if agg:
                if si >= nspread:
                    raise ProtocolError(f"aggregate offsets end before row {i}")
                a, b, c = lows[si], highs[si], lasts[si]
                si += 1
                lo = (q + ((a >> 1) ^ -(a & 1))) * mul / div
                hi = (q + ((b >> 1) ^ -(b & 1))) * mul / div
                last = (q + ((c >> 1) ^ -(c & 1))) * mul / div
        else:
            width = 4 if agg else 1
            if fi + width > nfloats:
                raise ProtocolError(f"float64 values end before row {i}")
            value = floats[fi]
            if agg:
                lo, hi, last = floats[fi + 1:fi + 4]
            fi += width
        rows.append([key, unit_s, times[i], value, ok, True, False, None, "", point_res[j], window, count,
                     lo, hi, last, last_ns])
    if qi != nints or si != nspread or fi != nfloats:
        raise ProtocolError(f"values left over: {nints - qi} integers, {nspread - si} aggregate offsets, "
                            f"{nfloats - fi} float64")

    qgaps, qcodes = m.uints(R_QUALITY_GAPS), m.uints(R_QUALITIES)
    if len(qgaps) != len(qcodes):
        raise ProtocolError(f"{len(qgaps)} quality rows, {len(qcodes)} quality codes")
    prev = -1
    for d, code in zip(qgaps, qcodes, strict=True):
        prev += d + 1
        if prev >= n or code not in _CODE_QUALITY:
            raise ProtocolError(f"quality exception (row {prev}, code {code}) out of range")
        rows[prev][QUAL] = _CODE_QUALITY[code]

    boots = m.texts(R_BOOT_IDS)
    cgaps, flags = m.uints(R_CLOCK_GAPS), m.uints(R_CLOCK_FLAGS)
    monos, boot_indexes = m.uints(R_MONO_DELTAS), m.uints(R_BOOT_INDEXES)
    if len(cgaps) != len(flags) or len(monos) != len(boot_indexes):
        raise ProtocolError(f"clock exceptions: {len(cgaps)} rows, {len(flags)} flags, {len(monos)} mono times, "
                            f"{len(boot_indexes)} boot indexes")
    prev, mono, mi = -1, 0, 0
    for d, f in zip(cgaps, flags, strict=True):
        prev += d + 1
        if prev >= n or f > 7:
            raise ProtocolError(f"clock exception (row {prev}, flags {f}) out of range")
        row = rows[prev]
        row[SYNC] = bool(f & _SYNCED)
        row[CORR] = bool(f & _CORRECTED)
        if f & _HAS_MONO:
            if mi >= len(monos):
                raise ProtocolError(f"mono times end before row {prev}")
            z, b = monos[mi], boot_indexes[mi]
            mi += 1
            mono += (z >> 1) ^ -(z & 1)
            if b >= len(boots):
                raise ProtocolError(f"boot index {b} outside the {len(boots)} boots")
            row[MONO], row[BOOT] = mono, boots[b]
    if mi != len(monos):
        raise ProtocolError(f"{len(monos) - mi} mono times left over")
    return rows, kinds


def _decode_notices(msg: pb.Fields, lane: Lane, seqs: list[int]) -> list[dict[str, Any]]:
    head = _ALARM_HEAD if lane is Lane.ALARM else _EVENT_HEAD
    items = msg.messages(B_ALARMS if lane is Lane.ALARM else B_EVENTS)
    if len(items) != len(seqs):
        raise ProtocolError(f"{len(items)} {lane}s for {len(seqs)} rows")
    rows = []
    for seq, m in zip(seqs, items, strict=True):
        row: dict[str, Any] = {"seq": seq}
        if lane is Lane.ALARM:
            row["alarm_id"], row["active"] = m.text(1), m.bool(2)
        else:
            row["kind"] = m.text(1)
        n = len(head) + 1
        row["severity"], row["source"], row["text"] = m.text(n), m.text(n + 1), m.text(n + 2)
        data = m.text(n + 3)
        try:
            row["data"] = json.loads(data) if data else {}
        except json.JSONDecodeError as exc:
            raise ProtocolError(f"{lane} data is not JSON: {exc}") from exc
        if not isinstance(row["data"], dict):
            raise ProtocolError(f"{lane} data must be a JSON object, not {type(row['data']).__name__}")
        row["wall_ns"], row["mono_ns"] = m.int64(n + 4), m.int64(n + 5)
        row["boot_id"], row["synced"] = m.text(n + 6), m.bool(n + 7)
        rows.append(row)
    return rows
