"""What a decoded batch is, whichever version of the body it came from, and how a resolution travels.

Shared by the current body (:mod:`zaas_edge.wire.codec`, protobuf) and the
version-1 reader (:mod:`zaas_edge.wire.codec_v1`) so that both hand the store,
sync and the central exactly the same rows.
"""

from __future__ import annotations

__all__ = ["DecodedBatch", "WireRow", "split_resolution", "scale_of", "reading_dicts", "wire_rows"]

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from zaas_edge.errors import ProtocolError
from zaas_edge.model import Lane, UploadRecord


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


# Field positions of a reading row while it is decoded: UploadRecord's order, so
# a finished row becomes an UploadRecord without a copy.
(POINT, UNIT, WALL, VALUE, QUAL, SYNC, CORR, MONO, BOOT, RES, WIN, COUNT, MIN, MAX, LAST, LAST_NS) = range(16)


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


def scale(m: int, e: int) -> tuple[float, float]:
    """Multiplier and divisor that turn an integer back into a value, as exactly as float allows."""
    return (float(m), 10.0**-e) if e < 0 else (float(m) * 10.0**e, 1.0)


_SCALES: dict[tuple[int, int], tuple[float, float, float]] = {}  # (m, e) -> multiplier, divisor, resolution


def scale_of(key: str, m: int, e: int) -> tuple[float, float, float]:
    """Multiplier, divisor and declared step of a received ``(m, e)``; cached, the same few recur."""
    s = _SCALES.get((m, e))
    if s is None:
        if m and not -30 <= e <= 30:
            raise ProtocolError(f"resolution exponent {e} of {key!r} out of range")
        s = (*scale(m, e), m * 10.0**e) if m else (0.0, 0.0, 0.0)
        if len(_SCALES) < 4096:
            _SCALES[(m, e)] = s
    return s


def reading_dicts(seqs: list[int], rows: list[list[Any]], kinds: list[bool]) -> list[dict[str, Any]]:
    """The reading rows as dicts (the documented decoded form)."""
    out: list[dict[str, Any]] = []
    for seq, r, agg in zip(seqs, rows, kinds, strict=True):
        row: dict[str, Any] = {"seq": seq, "point": r[POINT], "unit": r[UNIT], "wall_ns": r[WALL],
                               "quality": str(r[QUAL]), "synced": r[SYNC], "corrected": r[CORR],
                               "kind": "agg" if agg else "raw"}
        if agg:
            row["window_s"], row["count"], row["last_ns"] = r[WIN], r[COUNT], r[LAST_NS]
        row["value"] = r[VALUE]
        if agg:
            row["min"], row["max"], row["last"], row["avg"] = r[MIN], r[MAX], r[LAST], r[VALUE]
        if r[MONO] is not None:
            row["mono_ns"], row["boot_id"] = r[MONO], r[BOOT]
        out.append(row)
    return out


def wire_rows(seqs: list[int], rows: list[list[Any]]) -> list[WireRow]:
    """The reading rows as ``WireRow(seq, UploadRecord)`` tuples, built without their constructors' checks."""
    new = tuple.__new__
    return [new(WireRow, (seq, new(UploadRecord, r))) for seq, r in zip(seqs, rows, strict=True)]
