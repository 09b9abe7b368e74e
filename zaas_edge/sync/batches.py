"""Frozen batches: what is sent is decided once, kept on disk, and resent byte-identical.

A batch is frozen (id, lane, seq range, compressed body) and written to
``<state_dir>/sync/batches/`` *before* its first send. Until the platform
acknowledges it, every retry (after a timeout, a reset, a restart of the
daemon, a power cut) sends the same bytes under the same ``Idempotency-Key``,
so the platform can store its rows exactly once whatever happened to the
previous attempts.

Each batch is one file: a JSON header line, then the body. Files are written
atomically (temporary file, fsync, rename, fsync of the directory). A batch
is deleted once the store's cursor has moved past it; a quarantined batch (the
platform refused it for good) moves to ``quarantine/`` and stays there for an
operator.

The only case where a frozen batch is cut again is a ``413 Payload Too
Large``: it is split in two halves by seq range, the halves frozen (new ids)
before the original is removed. A ``415`` on a zstd batch re-compresses it
once as gzip: same id, same uncompressed body (the ``Idempotency-Key``
covers the body before compression), so it is still the same batch.
"""

from __future__ import annotations

__all__ = [
    "FrozenBatch",
    "BatchStore",
    "compress",
    "decompress",
]

import gzip
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from zaas_edge.errors import ProtocolError
from zaas_edge.sync.identity import atomic_write

MAX_DECOMPRESSED = 64 * 1024 * 1024  # refuse decompression bombs


@dataclass(frozen=True, slots=True)
class FrozenBatch:
    id: str
    lane: str  # the wire lane
    first_seq: int
    last_seq: int
    rows: int
    epoch: str
    encoding: str  # Content-Encoding: gzip or zstd
    content_type: str
    created_ns: int
    raw_bytes: int  # size before compression
    body: bytes = b""

    def header(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("body")
        return d


def compress(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        # mtime=0: the same rows always give the same bytes.
        return gzip.compress(body, compresslevel=6, mtime=0)
    if encoding == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=9).compress(body)
    raise ValueError(f"unknown content encoding {encoding!r}")


def decompress(body: bytes, encoding: str, limit: int = MAX_DECOMPRESSED) -> bytes:
    """Undo ``Content-Encoding``; raises ProtocolError on bad or oversized input."""
    encoding = (encoding or "identity").strip().lower()
    try:
        if encoding == "identity":
            out = body
        elif encoding == "gzip":
            import zlib

            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out = d.decompress(body, limit + 1)
            if not d.eof:
                raise ProtocolError("truncated or oversized gzip body")
        elif encoding == "zstd":
            import zstandard

            with zstandard.ZstdDecompressor().stream_reader(body) as r:
                out = r.read(limit + 1)
        else:
            raise ProtocolError(f"unsupported Content-Encoding {encoding!r}")
    except ProtocolError:
        raise
    except Exception as exc:  # zlib.error, zstandard.ZstdError
        raise ProtocolError(f"cannot decompress the {encoding} body: {exc}") from None
    if len(out) > limit:
        raise ProtocolError(f"body larger than {limit} bytes once decompressed")
    return out


# ---------------------------------------------------------------- persistence

class BatchStore:
    """The frozen batches of every lane, one file each, in a state directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.quarantine_dir = self.dir / "quarantine"
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.quarantine_dir.mkdir(exist_ok=True, mode=0o700)
        for stale in self.dir.glob(".*.tmp-*"):  # a write cut short by a crash: never renamed, never sent
            stale.unlink(missing_ok=True)

    @staticmethod
    def new_id(lane: str, first: int, last: int) -> str:
        return f"{lane}-{first}-{last}-{secrets.token_hex(6)}"

    def _path(self, b: FrozenBatch, quarantined: bool = False) -> Path:
        return (self.quarantine_dir if quarantined else self.dir) / f"{b.lane}-{b.first_seq:016d}-{b.id}.batch"

    def freeze(self, lane: str, first_seq: int, last_seq: int, rows: int, epoch: str, encoding: str,
               content_type: str, raw: bytes, body: bytes | None = None) -> FrozenBatch:
        body = compress(raw, encoding) if body is None else body
        b = FrozenBatch(self.new_id(lane, first_seq, last_seq), lane, first_seq, last_seq, rows, epoch,
                        encoding, content_type, time.time_ns(), len(raw), body)
        atomic_write(self._path(b), json.dumps(b.header()).encode() + b"\n" + body, 0o600)
        return b

    @staticmethod
    def _load(path: Path) -> FrozenBatch | None:
        try:
            data = path.read_bytes()
            head, _, body = data.partition(b"\n")
            h = json.loads(head)
            return FrozenBatch(**h, body=body)
        except (OSError, ValueError, TypeError):
            return None

    def pending(self, lane: str) -> list[FrozenBatch]:
        """Frozen, unacknowledged batches of ``lane`` in seq order (unreadable files are set aside)."""
        out = []
        for p in sorted(self.dir.glob(f"{lane}-*.batch")):
            b = self._load(p)
            if b is None:
                os.replace(p, self.quarantine_dir / (p.name + ".unreadable"))
                continue
            out.append(b)
        return sorted(out, key=lambda b: b.first_seq)

    def remove(self, b: FrozenBatch) -> None:
        self._path(b).unlink(missing_ok=True)

    def quarantine(self, b: FrozenBatch, reason: str) -> Path:
        """Keep the batch aside (not resent) with why it was refused."""
        dest = self._path(b, quarantined=True)
        os.replace(self._path(b), dest)
        atomic_write(dest.with_suffix(".reason"), reason.encode(), 0o600)
        return dest

    def quarantined(self) -> list[FrozenBatch]:
        return [b for p in sorted(self.quarantine_dir.glob("*.batch")) if (b := self._load(p)) is not None]

    def reencode(self, b: FrozenBatch, encoding: str) -> FrozenBatch:
        """The same batch (id, rows, uncompressed body) compressed another way, replacing it on disk.

        The Idempotency-Key covers the uncompressed body, so the platform
        treats both encodings as the same batch.
        """
        raw = decompress(b.body, b.encoding)
        new = replace(b, encoding=encoding, body=compress(raw, encoding))
        atomic_write(self._path(new), json.dumps(new.header()).encode() + b"\n" + new.body, 0o600)
        return new

    def split(self, b: FrozenBatch, halves: list[tuple[int, int, int, bytes]]) -> list[FrozenBatch]:
        """Replace ``b`` by batches cut from the same rows: (first, last, rows, raw body) each."""
        out = [self.freeze(b.lane, first, last, n, b.epoch, b.encoding, b.content_type, raw)
               for first, last, n, raw in halves]
        self.remove(b)
        return out
