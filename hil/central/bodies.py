"""Request bodies under a cap: on the wire (chunked or not) and once inflated.

Why a module of its own: a platform's body limit that trusts
``Content-Length`` alone is no limit. A chunked body has no length, and a
gzip or zstd body of 1 MiB can inflate to a gigabyte. Both are read here a
piece at a time and given up on as soon as they pass their cap, so the
memory a request can take is the cap plus one piece, whatever the client
sends. ``inflate`` is pure (bytes in, bytes out); ``read_capped`` only pulls
from an aiohttp stream.
"""

from __future__ import annotations

__all__ = ["BodyTooLarge", "STEP", "inflate", "read_capped"]

import zlib

from aiohttp import StreamReader

from zaas_edge.errors import ProtocolError

STEP = 64 * 1024  # the most one inflate step produces: the memory above the cap
_ZSTD_MAX_WINDOW = 8 * 1024 * 1024  # a frame asking for a larger window is refused, not allocated


class BodyTooLarge(Exception):
    """The body passed its cap; ``where`` says whether on the wire or once inflated (for the 413 text)."""

    def __init__(self, limit: int, where: str) -> None:
        super().__init__(f"request body larger than {limit} bytes {where}")
        self.limit = limit
        self.where = where


async def read_capped(content: StreamReader, limit: int) -> bytes:
    """The whole body if it is at most ``limit`` bytes; BodyTooLarge as soon as it is more.

    Reads what has arrived, piece by piece (aiohttp pauses the socket while
    its own buffer is full), so a chunked body of any size costs at most
    ``limit`` plus one piece.
    """
    buf = bytearray()
    while chunk := await content.readany():
        buf += chunk
        if len(buf) > limit:
            raise BodyTooLarge(limit, "on the wire")
    return bytes(buf)


def inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """Undo ``Content-Encoding`` (identity, gzip, zstd) with at most ``limit`` bytes out.

    BodyTooLarge past the cap (the inflating stops there: a bomb costs the
    cap, not its inflated size); ProtocolError for an unknown encoding, a
    corrupt or truncated stream, or bytes after its end.
    """
    enc = (encoding or "identity").strip().lower()
    if enc == "identity":
        if len(body) > limit:
            raise BodyTooLarge(limit, "on the wire")
        return body
    if enc == "gzip":
        return _gunzip(body, limit)
    if enc == "zstd":
        return _unzstd(body, limit)
    raise ProtocolError(f"unsupported Content-Encoding {encoding!r}")


def _gunzip(body: bytes, limit: int) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = bytearray()
    data = body
    try:
        while not d.eof:
            if not data:
                raise ProtocolError("truncated gzip body")
            # max_length > 0 always: 0 would mean "no limit" to zlib.
            out += d.decompress(data, min(STEP, limit + 1 - len(out)))
            if len(out) > limit:
                raise BodyTooLarge(limit, "once inflated")
            data = d.unconsumed_tail
    except zlib.error as exc:
        raise ProtocolError(f"cannot decompress the gzip body: {exc}") from None
    if d.unused_data:
        raise ProtocolError("bytes after the end of the gzip body")
    return bytes(out)


def _unzstd(body: bytes, limit: int) -> bytes:
    import zstandard

    out = bytearray()
    try:
        dctx = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW)
        with dctx.stream_reader(body, read_across_frames=True) as reader:
            while chunk := reader.read(min(STEP, limit + 1 - len(out))):
                out += chunk
                if len(out) > limit:
                    raise BodyTooLarge(limit, "once inflated")
    except zstandard.ZstdError as exc:
        raise ProtocolError(f"cannot decompress the zstd body: {exc}") from None
    return bytes(out)
