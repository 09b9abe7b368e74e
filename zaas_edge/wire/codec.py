"""The batch body sync sends: columnar readings, JSON-column events and alarms (sans-I/O).

Pure functions, bytes in and values out: :func:`encode_batch` builds the
uncompressed body of one frozen batch (the uplink compresses it with gzip or
zstd), :func:`decode_batch` reads it back (the reference central API does),
raising :class:`~zaas_edge.errors.ProtocolError` and nothing else on bytes
that do not follow the format. The byte layout, versioned, is in
docs/sync-encoding.md; the short of it:

- readings go column by column: a dictionary of point keys (each sent once
  per batch, with its unit and resolution), then seq deltas, point-index
  deltas, per-point delta-of-delta timestamps, values as integers at the
  point's resolution delta-coded per point, a float64 column for values that
  do not fit (and for points without a resolution: lossless), and sparse
  exception lists for quality and clock state, the usual case costing nothing;
- events and alarms are rare and varied: their fields go as JSON columns.

Which store lane feeds which wire lane is :data:`SOURCE_LANE`: readings go up
as upload records (raw samples or window aggregates made by the upload
policies), not as the raw reading lane, which stays local.
"""

from __future__ import annotations

__all__ = [
    "FORMAT_VERSION",
    "CONTENT_TYPE",
    "MAGIC",
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
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from zaas_edge.errors import ProtocolError
from zaas_edge.model import Alarm, Event, Lane, Quality, Reading, UploadRecord
from zaas_edge.wire.varint import Reader as _Reader
from zaas_edge.wire.varint import put as _put
from zaas_edge.wire.varint import put1 as _put1
from zaas_edge.wire.varint import put_str as _str
from zaas_edge.wire.varint import section as _section
from zaas_edge.wire.varint import unzz as _unzz
from zaas_edge.wire.varint import zz as _zz

FORMAT_VERSION = 1
CONTENT_TYPE = f"application/vnd.zaas.batch;v={FORMAT_VERSION}"
MAGIC = b"ZB"

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
_F64 = struct.Struct(">d")


class WireRow(NamedTuple):
    """A row to encode: its seq and its item (what ``Stored`` carries, lighter)."""

    seq: int
    item: Any


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    version: int
    lane: Lane
    first_seq: int
    last_seq: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    epoch: str = ""
    resolutions: dict[str, float] = field(default_factory=dict)  # reading lane: point key -> declared step


# ---------------------------------------------------------- resolution

def split_resolution(res: float | None) -> tuple[int, int]:
    """``res`` as ``(m, e)`` with ``res == m * 10**e`` (``(0, 0)``: lossless).

    Decimal steps (0.1 V, 0.5 degC, 100 W) are exact this way; a step that is
    not a decimal multiple (1/3) falls back to lossless.
    """
    if res is None or not isinstance(res, (int, float)) or not math.isfinite(res) or res <= 0:
        return 0, 0
    for e in range(12, -13, -1):
        m = res / 10.0**e if e >= 0 else res * 10.0**-e
        r = round(m)
        if 1 <= r < 1_000_000 and abs(m - r) <= 1e-6:
            return r, e
    return 0, 0


def _scale(m: int, e: int) -> tuple[float, float]:
    """Multiplier and divisor that turn an integer back into a value, as exactly as float allows."""
    return (float(m), 10.0**-e) if e < 0 else (float(m) * 10.0**e, 1.0)


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
    has none, so goes lossless).
    """
    lane = Lane(lane)
    if lane not in _LANE_CODE:
        raise ValueError(f"{lane} is not a wire lane (one of {', '.join(_LANE_CODE)})")
    seqs = [r.seq for r in rows]
    for a, b in itertools.pairwise(seqs):
        if b <= a:
            raise ValueError(f"rows must be in increasing seq order ({a} then {b})")
    out = bytearray(MAGIC)
    out.append(FORMAT_VERSION)
    out.append(_LANE_CODE[lane])
    _str(out, epoch)
    _put1(out, seqs[0] if seqs else 0)
    _put1(out, len(seqs))
    sec = bytearray()
    _put(sec, [b - a - 1 for a, b in itertools.pairwise(seqs)])
    _section(out, sec)
    if lane is Lane.READING:
        _encode_readings(out, [r.item for r in rows], resolution, tolerance)
    else:
        _encode_json(out, lane, [r.item for r in rows])
    return bytes(out)


def _record(item: Any) -> UploadRecord:
    if isinstance(item, UploadRecord):
        return item
    if isinstance(item, Reading):
        return UploadRecord(item.point, item.unit, item.wall_ns, item.value, item.quality, item.synced,
                            False, None if item.synced else item.mono_ns, "" if item.synced else item.boot_id)
    raise TypeError(f"a reading batch holds UploadRecord or Reading items, not {type(item).__name__}")


def _encode_readings(out: bytearray, items: list[Any], resolution: Callable[[str], float | None],
                     tolerance: float) -> None:
    recs = [_record(i) for i in items]
    n = len(recs)
    # Dictionary of (key, unit) in order of first appearance.
    index: dict[tuple[str, str], int] = {}
    scales: list[tuple[int, int]] = []
    pidx = [0] * n
    for i, r in enumerate(recs):
        k = (r.point, r.unit)
        j = index.get(k)
        if j is None:
            j = index[k] = len(scales)
            res = resolution(r.point)
            scales.append(split_resolution(r.resolution if res is None else res))
        pidx[i] = j
    sec = bytearray()
    _put1(sec, len(scales))
    for (key, unit), (m, e) in zip(index, scales, strict=True):
        _str(sec, key)
        _str(sec, unit)
        _put1(sec, m)
        _put1(sec, _zz(e))
    _section(out, sec)

    # Point column: delta of the dictionary index (a steady poll order is all +1).
    sec = bytearray()
    prev = 0
    col = []
    for j in pidx:
        col.append(_zz(j - prev))
        prev = j
    _put(sec, col)
    _section(out, sec)

    # Kinds as alternating run lengths, raw first.
    sec = bytearray()
    runs: list[int] = []
    cur, run = False, 0
    for r in recs:
        agg = r.window_s > 0
        if agg != cur:
            runs.append(run)
            cur, run = agg, 0
        run += 1
    runs.append(run)
    _put1(sec, len(runs))
    _put(sec, runs)
    _section(out, sec)

    # Time: the coarsest power-of-ten unit that keeps every stamp exact.
    stamps = [r.wall_ns for r in recs] + [r.last_ns for r in recs if r.window_s and r.last_ns is not None]
    g = math.gcd(*stamps) if stamps else 0
    k = 0
    while k < 9 and g and g % 10 ** (k + 1) == 0:
        k += 1
    unit = 10**k
    sec = bytearray([k])
    t0 = recs[0].wall_ns // unit if recs else 0
    _put1(sec, _zz(t0))
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
    _put(sec, col)
    _section(out, sec)

    # Values: integers at the resolution, per point deltas; float64 otherwise.
    tol = tolerance + 1e-9
    mults = [_scale(m, e) if m else (0.0, 0.0) for m, e in scales]
    prev_q = [0] * len(scales)
    ints: list[int] = []
    aggs: list[int] = []
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
            aggs.append(r.window_s)
            aggs.append(r.count)
            lo = r.last_ns if r.last_ns is not None else r.wall_ns
            aggs.append(_zz((lo - r.wall_ns) // unit))
        if qs is None:
            for v in fields:
                floats += pack(r.value if v is None else v)
            continue
        q = qs[0]
        ints.append(_zz(q - prev_q[j]))
        prev_q[j] = q
        if agg:
            aggs.extend(_zz(x - q) for x in qs[1:])
    for body in (_gaps(fallback), _put_list(ints), _put_list(aggs), floats):
        _section(out, body)

    # Sparse exceptions: quality other than ok, clock state other than synced.
    sec = bytearray()
    bad = [(i, _QUALITY_CODE[r.quality]) for i, r in enumerate(recs) if r.quality is not Quality.OK]
    _put1(sec, len(bad))
    prev = -1
    for i, code in bad:
        _put1(sec, i - prev - 1)
        sec.append(code)
        prev = i
    _section(out, sec)

    sec = bytearray()
    odd = [(i, r) for i, r in enumerate(recs) if not r.synced or r.corrected]
    boots: dict[str, int] = {}
    for _, r in odd:
        if r.mono_ns is not None and not r.synced:
            boots.setdefault(r.boot_id, len(boots))
    _put1(sec, len(boots))
    for b in boots:
        _str(sec, b)
    _put1(sec, len(odd))
    prev, prev_mono = -1, 0
    for i, r in odd:
        _put1(sec, i - prev - 1)
        prev = i
        has_mono = r.mono_ns is not None and not r.synced
        sec.append((_SYNCED if r.synced else 0) | (_CORRECTED if r.corrected else 0) | (_HAS_MONO if has_mono else 0))
        if has_mono:
            _put1(sec, _zz(r.mono_ns - prev_mono))
            prev_mono = r.mono_ns
            _put1(sec, boots[r.boot_id])
    _section(out, sec)


def _put_list(values: list[int]) -> bytearray:
    b = bytearray()
    _put(b, values)
    return b


def _gaps(rows: list[int]) -> bytearray:
    b = bytearray()
    _put1(b, len(rows))
    prev = -1
    col = []
    for i in rows:
        col.append(i - prev - 1)
        prev = i
    _put(b, col)
    return b


def _encode_json(out: bytearray, lane: Lane, items: list[Event | Alarm]) -> None:
    cols: dict[str, list[Any]] = {}
    names = ("alarm_id", "active") if lane is Lane.ALARM else ("kind",)
    names += ("severity", "source", "text", "data", "wall_ns", "mono_ns", "boot_id", "synced")
    for n in names:
        cols[n] = []
    want = Alarm if lane is Lane.ALARM else Event
    for it in items:
        if not isinstance(it, want):
            raise TypeError(f"the {lane} lane holds {want.__name__} items, not {type(it).__name__}")
        if isinstance(it, Alarm):
            cols["alarm_id"].append(it.alarm_id)
            cols["active"].append(it.active)
        else:
            cols["kind"].append(it.kind)
        cols["severity"].append(str(it.severity))
        cols["source"].append(it.source)
        cols["text"].append(it.text)
        cols["data"].append(dict(it.data))
        cols["wall_ns"].append(it.stamp.wall_ns)
        cols["mono_ns"].append(it.stamp.mono_ns)
        cols["boot_id"].append(it.stamp.boot_id)
        cols["synced"].append(it.stamp.synced)
    body = json.dumps(cols, default=str, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    _section(out, bytearray(body))


# ------------------------------------------------------------- decoding

def decode_batch(body: bytes) -> DecodedBatch:
    """Read a batch body back; raises :class:`ProtocolError` (only) on bytes off the format."""
    try:
        return _decode(bytes(body))
    except ProtocolError:
        raise
    except (ValueError, IndexError, KeyError, OverflowError, TypeError, struct.error, RecursionError) as exc:
        raise ProtocolError(f"malformed batch body: {type(exc).__name__}: {exc}") from exc


def _decode(body: bytes, records: bool = False) -> DecodedBatch:
    if len(body) < 4 or body[:2] != MAGIC:
        raise ProtocolError("not a zaas batch body (missing the 'ZB' magic)")
    version = body[2]
    if version != FORMAT_VERSION:
        raise ProtocolError(f"batch format version {version} is not supported (this side reads {FORMAT_VERSION})")
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
        new = tuple.__new__
        rows = [new(WireRow, (seq, new(UploadRecord, r))) for seq, r in zip(seqs, fields, strict=True)]
    elif lane is Lane.READING:
        rows = _decode_readings(rd, seqs, resolutions)
    else:
        rows = _decode_json(rd, lane, seqs)
    rd.done("batch")
    return DecodedBatch(version, lane, first if n else 0, seqs[-1] if n else 0, rows, epoch, resolutions)


_SCALES: dict[tuple[int, int], tuple[float, float, float]] = {}  # (m, e) -> multiplier, divisor, resolution


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
        scale = _SCALES.get((m, e))
        if scale is None:
            if m and not -30 <= e <= 30:
                raise ProtocolError(f"resolution exponent {e} of {key!r} out of range")
            scale = (*_scale(m, e), m * 10.0**e) if m else (0.0, 0.0, 0.0)
            if len(_SCALES) < 4096:
                _SCALES[(m, e)] = scale
        points.append((key, unit))
        mults.append(scale[:2])
        resolutions[key] = scale[2]
    sec.pos = pos
    return points, mults


# Field positions of a row while it is decoded (UploadRecord's order).
(_POINT, _UNIT, _WALL, _VALUE, _QUAL, _SYNC, _CORR, _MONO, _BOOT, _RES, _WIN, _COUNT, _MIN, _MAX, _LAST,
 _LAST_NS) = range(16)


def _decode_readings(rd: _Reader, seqs: list[int], resolutions: dict[str, float]) -> list[dict[str, Any]]:
    """The reading rows as dicts (the documented decoded form)."""
    rows, kinds = _reading_fields(rd, seqs, resolutions)
    out: list[dict[str, Any]] = []
    for seq, r, agg in zip(seqs, rows, kinds, strict=True):
        row: dict[str, Any] = {"seq": seq, "point": r[_POINT], "unit": r[_UNIT], "wall_ns": r[_WALL],
                               "quality": str(r[_QUAL]), "synced": r[_SYNC], "corrected": r[_CORR],
                               "kind": "agg" if agg else "raw"}
        if agg:
            row["window_s"], row["count"], row["last_ns"] = r[_WIN], r[_COUNT], r[_LAST_NS]
        row["value"] = r[_VALUE]
        if agg:
            row["min"], row["max"], row["last"], row["avg"] = r[_MIN], r[_MAX], r[_LAST], r[_VALUE]
        if r[_MONO] is not None:
            row["mono_ns"], row["boot_id"] = r[_MONO], r[_BOOT]
        out.append(row)
    return out


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
        rows[prev][_QUAL] = _CODE_QUALITY[code]
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
        row[_SYNC] = bool(flags & _SYNCED)
        row[_CORR] = bool(flags & _CORRECTED)
        if flags & _HAS_MONO:
            mono += sec.z()
            b = sec.u()
            if b >= len(boots):
                raise ProtocolError(f"boot index {b} outside the {len(boots)} boots")
            row[_MONO], row[_BOOT] = mono, boots[b]
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
