"""The one module that speaks HTTP to the platform (the standard library's ``http.client``).

Why not aiohttp: the gateway makes one request at a time over one keep-alive
connection, and aiohttp with its helpers (yarl, multidict, attrs, frozenlist,
aiohappyeyeballs...) costs 14 MB of resident memory on a box whose budget for
the whole daemon is 50 MB; ``http.client`` costs well under 1 MB on top of the
``ssl`` module TLS needs anyway. Each request runs in a worker thread; a
cancelled or timed-out request shuts the socket down, so the thread returns at
once and the connection is never reused half-read.

Everything the transport can raise is translated here into the gateway's error
types, so the sync service keys its retry policy on our types only:

- :class:`Refused` (PermanentError): the platform refused *this batch* for
  good (a 4xx other than 401, 403, 404, 408, 409, 413, 421, 429): quarantine it.
- :class:`TooLarge` (TransientError): 413, split the batch and send again.
- :class:`Busy` (TransientError): 408, 409, 429, 5xx; carries ``retry_after``.
- :class:`AuthRejected` (PermanentError, retried): 401, 403, 404, 421, or a TLS
  handshake refused: the gateway's identity or address is wrong, not the
  batch; keep every batch and retry slowly while an alarm says why.
- :class:`TlsUntrusted` (PermanentError, retried): the server's certificate does not
  chain to the pinned CA.
- :class:`LinkDown` (TransientError): connection refused, reset, DNS.
- :class:`Timeout` (LinkDown): no answer in time (the batch size is halved).

Every request is made over one keep-alive connection with the platform CA
pinned and the gateway's certificate presented (mTLS). A connection the
platform closed while idle is noticed on the next request, which is sent once
more on a fresh connection (every request is idempotent: batches carry their
Idempotency-Key).
"""

from __future__ import annotations

__all__ = [
    "Uplink",
    "Answer",
    "UplinkError",
    "Refused",
    "TooLarge",
    "Busy",
    "AuthRejected",
    "TlsUntrusted",
    "LinkDown",
    "Timeout",
    "enroll_request",
    "parse_retry_after",
    "ACCEPT_ENCODING_HEADER",
    "EPOCH_HEADER",
]

import asyncio
import contextlib
import email.utils
import gzip
import http.client
import json
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from zaas_edge.aio import wait_for
from zaas_edge.errors import PermanentError, TransientError, ZaasError
from zaas_edge.ratelimit import TokenBucket
from zaas_edge.sync.batches import FrozenBatch

ACCEPT_ENCODING_HEADER = "Accept-Encoding"  # sent by the server in its answers: what it can decompress
EPOCH_HEADER = "Zaas-Stream-Epoch"
USER_AGENT = "zaas-edge"
KEEPALIVE_S = 60.0  # an idle connection older than this is closed rather than reused
MAX_ANSWER_BYTES = 16 << 20  # an answer is a small JSON document; more is a broken or hostile server
_NOT_THE_BATCH = {401, 403, 404, 421}  # about the gateway or the address, not this batch
_RETRY = {408, 409, 429}
# What a connection the server closed while idle looks like on the next request.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class UplinkError(ZaasError):
    """Anything about the link or the gateway, not the batch: the batch is kept and sent again.

    Transient or permanent per :mod:`zaas_edge.errors`: a busy platform or a
    dropped link is a ``TransientError``; a refused login or an untrusted
    certificate is a ``PermanentError`` (the service raises its alarm) and is
    retried on the same backoff, so the operator's fix is picked up live.
    """

    status: int | None = None
    retry_after: float | None = None


class Refused(PermanentError):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"the platform refused the batch: HTTP {status}: {text}")
        self.status = status


class TooLarge(UplinkError, TransientError):
    status = 413


class Busy(UplinkError, TransientError):
    def __init__(self, status: int, text: str, retry_after: float | None) -> None:
        super().__init__(f"the platform answered HTTP {status}: {text}")
        self.status = status
        self.retry_after = retry_after


class AuthRejected(UplinkError, PermanentError):
    pass


class TlsUntrusted(UplinkError, PermanentError):
    pass


class LinkDown(UplinkError, TransientError):
    pass


class Timeout(LinkDown):
    pass


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True, slots=True)
class Answer:
    """What the platform said to an accepted batch."""

    acked_through: int
    server_time: float | None  # from the Date header, seconds since the epoch
    accept_encoding: frozenset[str] = field(default_factory=frozenset)
    body: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    headers: Mapping[str, str]  # names lower-cased
    body: bytes


def _server_time(resp: _Response) -> float | None:
    date = resp.headers.get("date")
    if not date:
        return None
    try:
        return email.utils.parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return None


def _encodings(resp: _Response) -> frozenset[str]:
    raw = resp.headers.get(ACCEPT_ENCODING_HEADER.lower(), "")
    return frozenset(p.split(";")[0].strip().lower() for p in raw.split(",") if p.strip())


def _translate(exc: BaseException, url: str) -> UplinkError:
    """Socket, TLS and HTTP errors into the gateway's types, with a message an operator can act on."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TlsUntrusted(f"{url}: the server's certificate is not trusted by the pinned platform CA "
                            f"({exc.verify_message or exc}): check sync.ca_file")
    if isinstance(exc, ssl.SSLError):
        return AuthRejected(f"{url}: TLS handshake failed ({exc}): the platform may refuse this gateway's "
                            "certificate (expired, revoked or from another CA): check 'zaas-edge identity show'")
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError
        return Timeout(f"{url}: no answer in time")
    if isinstance(exc, http.client.IncompleteRead):
        return LinkDown(f"{url}: the answer was cut short: {exc}")
    if isinstance(exc, (*_STALE, http.client.HTTPException, zlib.error)):
        # A TLS alert from the server often shows up as a reset right after the handshake.
        text = str(exc)
        if "alert" in text.lower() or "certificate" in text.lower():
            return AuthRejected(f"{url}: the platform closed the TLS session ({text}): check the certificate")
        return LinkDown(f"{url}: connection lost: {text or type(exc).__name__}")
    if isinstance(exc, OSError):  # refused, unreachable, DNS (socket.gaierror)
        return LinkDown(f"{url}: cannot connect: {exc}")
    return LinkDown(f"{url}: {type(exc).__name__}: {exc}")


def _status_error(resp: _Response) -> Exception:
    text = resp.body[:300].decode("utf-8", "replace")
    s = resp.status
    retry_after = parse_retry_after(resp.headers.get("retry-after"))
    if s == 413:
        return TooLarge(f"the platform refused the batch as too large (413): {text}")
    if s in _RETRY or s >= 500:
        return Busy(s, text, retry_after)
    if s in _NOT_THE_BATCH:
        err = AuthRejected(f"the platform answered HTTP {s}: {text} (check the gateway id, sync.url and "
                           "the certificate)")
        err.status = s
        return err
    return Refused(s, text)


def _decoded(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


class _Connection:
    """One keep-alive HTTPS connection, used from a worker thread one request at a time.

    ``abort`` may be called from any thread: it shuts the socket down, through a
    duplicate of its descriptor taken when it was opened (the TLS socket replaces
    the plain one during the handshake), so a blocked ``exchange`` returns at once
    with an OSError, whether it is in the handshake, sending or waiting.
    """

    def __init__(self, host: str, port: int, ssl_context: ssl.SSLContext, connect_timeout_s: float,
                 request_timeout_s: float) -> None:
        self.conn = http.client.HTTPSConnection(host, port, timeout=connect_timeout_s, context=ssl_context)
        self.conn._create_connection = self._open  # type: ignore[attr-defined]  # http.client's own hook
        self.request_timeout_s = request_timeout_s
        self.last_used = 0.0  # time.monotonic() of the last complete exchange; 0 before the first
        self._guard = threading.Lock()
        self._handle: socket.socket | None = None
        self._aborted = False

    def _open(self, address: tuple[str, int], timeout: float, source_address: object = None) -> socket.socket:
        sock = socket.create_connection(address, timeout)
        with self._guard:
            if self._aborted:
                sock.close()
                raise ConnectionAbortedError("the request was cancelled")
            if self._handle is not None:
                self._handle.close()
            self._handle = sock.dup()
        return sock

    def exchange(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> _Response:
        conn = self.conn
        if conn.sock is None:
            conn.connect()
            assert conn.sock is not None
            conn.sock.settimeout(self.request_timeout_s)
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        raw = resp.read(MAX_ANSWER_BYTES + 1)
        if len(raw) > MAX_ANSWER_BYTES:
            raise http.client.HTTPException(f"answer larger than {MAX_ANSWER_BYTES} bytes")
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        if resp.will_close:
            conn.close()
        self.last_used = time.monotonic()
        return _Response(resp.status, hdrs, _decoded(raw, hdrs.get("content-encoding", "")))

    def abort(self) -> None:
        with self._guard:
            self._aborted = True
            if self._handle is not None:
                with contextlib.suppress(OSError):
                    self._handle.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.conn.close()
        with self._guard:
            if self._handle is not None:
                self._handle.close()
                self._handle = None


class Uplink:
    """A keep-alive mTLS session to the platform for one gateway."""

    def __init__(self, base_url: str, gateway_id: str, ssl_context: ssl.SSLContext, *,
                 connect_timeout_s: float = 10.0, request_timeout_s: float = 60.0,
                 bandwidth_limit_bytes_s: int = 0) -> None:
        self.base = base_url.rstrip("/")
        parts = urlsplit(self.base)
        if parts.scheme != "https" or not parts.hostname:
            raise PermanentError(f"{base_url}: the platform's address must be an https:// URL")
        self._host, self._port, self._prefix = parts.hostname, parts.port or 443, parts.path.rstrip("/")
        self.gateway_id = gateway_id
        self.ssl = ssl_context
        self.connect_timeout_s = connect_timeout_s
        self.request_timeout_s = request_timeout_s
        # One second of burst: a metered link is paced, never flooded.
        self.bucket = (TokenBucket(bandwidth_limit_bytes_s, bandwidth_limit_bytes_s, time.monotonic())
                       if bandwidth_limit_bytes_s else None)
        self.bytes_sent = 0
        self.accept_encoding: frozenset[str] = frozenset()
        self._conn: _Connection | None = None
        self._serial = asyncio.Lock()  # one request at a time on the one connection

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abort()
            conn.close()

    async def __aenter__(self) -> Uplink:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _connection(self) -> tuple[_Connection, bool]:
        """The connection to use and whether it is a reused one (which the server may have closed)."""
        conn = self._conn
        if conn is not None and conn.last_used and time.monotonic() - conn.last_used > KEEPALIVE_S:
            conn.close()
            conn = None
        if conn is None:
            conn = self._conn = _Connection(self._host, self._port, self.ssl, self.connect_timeout_s,
                                            self.request_timeout_s)
        return conn, conn.conn.sock is not None

    async def _exchange(self, conn: _Connection, method: str, path: str, body: bytes | None,
                        headers: dict[str, str]) -> _Response:
        """One exchange in a worker thread, bounded by the request timeout.

        On any failure, a timeout or a cancellation the socket is shut down (the
        thread returns at once) and the connection is dropped, never reused half-read.
        """
        fut = asyncio.get_running_loop().run_in_executor(None, conn.exchange, method, path, body, headers)
        try:
            return await wait_for(asyncio.shield(fut), self.connect_timeout_s + self.request_timeout_s)
        except BaseException:
            conn.abort()
            if self._conn is conn:
                self._conn = None
            fut.add_done_callback(lambda f: (f.cancelled() or f.exception(), conn.close()))
            raise

    async def _request(self, method: str, path: str, *, data: bytes | None = None,
                       headers: dict[str, str] | None = None,
                       json_body: Any = None) -> tuple[dict[str, Any], _Response]:
        url = f"{self.base}{path}"
        if data is not None and self.bucket is not None:
            wait = self.bucket.debit(len(data), time.monotonic())
            if wait:
                await asyncio.sleep(wait)
        hdrs = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip", **(headers or {})}
        body = data
        if json_body is not None:
            body = json.dumps(json_body).encode()
            hdrs["Content-Type"] = "application/json"
        async with self._serial:
            resp = await self._send(url, method, self._prefix + path, body, hdrs)
        if resp.status >= 400:
            raise _status_error(resp)
        self.accept_encoding = _encodings(resp) or self.accept_encoding
        try:
            doc = json.loads(resp.body) if resp.body else {}
        except ValueError:
            raise Busy(resp.status, f"unreadable answer ({resp.body[:80]!r})", None) from None
        if data is not None:
            self.bytes_sent += len(data)
        return (doc if isinstance(doc, dict) else {}), resp

    async def _send(self, url: str, method: str, path: str, body: bytes | None,
                    headers: dict[str, str]) -> _Response:
        for attempt in (1, 2):
            conn, reused = self._connection()
            try:
                return await self._exchange(conn, method, path, body, headers)
            except TimeoutError:  # asyncio's and the socket's
                raise Timeout(f"{url}: no answer in time") from None
            except (OSError, http.client.HTTPException, zlib.error) as exc:
                if attempt == 1 and reused and isinstance(exc, (*_STALE, ssl.SSLEOFError, ssl.SSLZeroReturnError)):
                    continue  # the platform closed the idle connection: once more on a fresh one
                raise _translate(exc, url) from None
        raise AssertionError("unreachable")

    async def post_batch(self, batch: FrozenBatch) -> Answer:
        headers = {
            "Idempotency-Key": batch.id,
            "Content-Type": batch.content_type,
            "Content-Encoding": batch.encoding,
            EPOCH_HEADER: batch.epoch,
        }
        doc, resp = await self._request(
            "POST", f"/v1/gateways/{self.gateway_id}/lanes/{batch.lane}/batches", data=batch.body, headers=headers)
        acked = doc.get("acked_through")
        if not isinstance(acked, int):
            raise Busy(resp.status, f"answer without an integer acked_through: {str(doc)[:120]}", None)
        return Answer(acked, _server_time(resp), self.accept_encoding, doc)

    async def server_time(self) -> tuple[float | None, float | None]:
        """(Date header, the body's unix time) from ``GET /v1/time``."""
        doc, resp = await self._request("GET", "/v1/time")
        body = doc.get("unix_ns")
        return _server_time(resp), (body / 1e9 if isinstance(body, int) else None)

    async def config_bundle(self) -> dict[str, Any]:
        doc, _ = await self._request("GET", f"/v1/gateways/{self.gateway_id}/config")
        return doc

    async def renew(self, csr_pem: bytes) -> dict[str, Any]:
        doc, _ = await self._request("POST", f"/v1/gateways/{self.gateway_id}/renew",
                                     json_body={"csr": csr_pem.decode()})
        return doc


async def enroll_request(base_url: str, ca_context: ssl.SSLContext, gateway_id: str, token: str,
                         csr_pem: bytes, timeout_s: float = 30.0) -> dict[str, Any]:
    """``POST /v1/gateways/{id}/enroll`` with the one-time token, over TLS with the CA pinned."""
    up = Uplink(base_url, gateway_id, ca_context, request_timeout_s=timeout_s)
    try:
        doc, _ = await up._request("POST", f"/v1/gateways/{gateway_id}/enroll",
                                   json_body={"csr": csr_pem.decode(), "token": token})
    except Refused as exc:
        raise PermanentError(f"enrollment refused: {exc}") from None
    finally:
        await up.close()
    if not isinstance(doc.get("certificate"), str):
        raise PermanentError("enrollment answer without a certificate")
    return doc
