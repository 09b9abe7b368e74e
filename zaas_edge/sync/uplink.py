"""The one module that speaks HTTP to the platform (wraps aiohttp).

Everything aiohttp can raise is translated here into the gateway's error
types, so the sync service keys its retry policy on our types only and an
aiohttp upgrade touches this file alone:

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
pinned and the gateway's certificate presented (mTLS).
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
import email.utils
import json
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from zaas_edge.errors import PermanentError, TransientError, ZaasError
from zaas_edge.ratelimit import TokenBucket
from zaas_edge.sync.batches import FrozenBatch

ACCEPT_ENCODING_HEADER = "Accept-Encoding"  # sent by the server in its answers: what it can decompress
EPOCH_HEADER = "Zaas-Stream-Epoch"
USER_AGENT = "zaas-edge"
_NOT_THE_BATCH = {401, 403, 404, 421}  # about the gateway or the address, not this batch
_RETRY = {408, 409, 429}


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


def _server_time(resp: aiohttp.ClientResponse) -> float | None:
    date = resp.headers.get("Date")
    if not date:
        return None
    try:
        return email.utils.parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return None


def _encodings(resp: aiohttp.ClientResponse) -> frozenset[str]:
    raw = resp.headers.get(ACCEPT_ENCODING_HEADER, "")
    return frozenset(p.split(";")[0].strip().lower() for p in raw.split(",") if p.strip())


def _translate(exc: BaseException, url: str) -> UplinkError:
    """aiohttp and ssl errors into the gateway's types, with a message an operator can act on."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError) or isinstance(exc, ssl.SSLCertVerificationError):
        return TlsUntrusted(f"{url}: the server's certificate is not trusted by the pinned platform CA "
                            f"({getattr(exc, 'certificate_error', exc)}): check sync.ca_file")
    if isinstance(exc, (aiohttp.ClientSSLError, ssl.SSLError)):
        return AuthRejected(f"{url}: TLS handshake failed ({exc}): the platform may refuse this gateway's "
                            "certificate (expired, revoked or from another CA): check 'zaas-edge identity show'")
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return Timeout(f"{url}: no answer in time")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return LinkDown(f"{url}: cannot connect: {exc.os_error or exc}")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return LinkDown(f"{url}: the answer was cut short: {exc}")
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, ConnectionError)):
        # A TLS alert from the server often shows up as a reset right after the handshake.
        text = str(exc)
        if "alert" in text.lower() or "certificate" in text.lower():
            return AuthRejected(f"{url}: the platform closed the TLS session ({text}): check the certificate")
        return LinkDown(f"{url}: connection lost: {text or type(exc).__name__}")
    if isinstance(exc, aiohttp.ClientError):
        return LinkDown(f"{url}: {type(exc).__name__}: {exc}")
    return LinkDown(f"{url}: {type(exc).__name__}: {exc}")


async def _status_error(resp: aiohttp.ClientResponse) -> Exception:
    try:
        text = (await resp.text())[:300]
    except (TimeoutError, aiohttp.ClientError, UnicodeDecodeError):
        text = ""
    s = resp.status
    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
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


class Uplink:
    """A keep-alive mTLS session to the platform for one gateway."""

    def __init__(self, base_url: str, gateway_id: str, ssl_context: ssl.SSLContext, *,
                 connect_timeout_s: float = 10.0, request_timeout_s: float = 60.0,
                 bandwidth_limit_bytes_s: int = 0) -> None:
        self.base = base_url.rstrip("/")
        self.gateway_id = gateway_id
        self.ssl = ssl_context
        self.timeout = aiohttp.ClientTimeout(total=request_timeout_s, sock_connect=connect_timeout_s)
        # One second of burst: a metered link is paced, never flooded.
        self.bucket = (TokenBucket(bandwidth_limit_bytes_s, bandwidth_limit_bytes_s, time.monotonic())
                       if bandwidth_limit_bytes_s else None)
        self.bytes_sent = 0
        self.accept_encoding: frozenset[str] = frozenset()
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # limit=1: one connection, kept alive between batches.
            conn = aiohttp.TCPConnector(ssl=self.ssl, limit=1, keepalive_timeout=75, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(connector=conn, timeout=self.timeout,
                                                  headers={"User-Agent": USER_AGENT}, auto_decompress=True)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Uplink:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _request(self, method: str, path: str, *, data: bytes | None = None,
                       headers: dict[str, str] | None = None,
                       json_body: Any = None) -> tuple[dict[str, Any], aiohttp.ClientResponse]:
        url = f"{self.base}{path}"
        if data is not None and self.bucket is not None:
            wait = self.bucket.debit(len(data), time.monotonic())
            if wait:
                await asyncio.sleep(wait)
        try:
            async with self._get_session().request(method, url, data=data, json=json_body,
                                                   headers=headers) as resp:
                if resp.status >= 400:
                    raise await _status_error(resp)
                raw = await resp.read()
                self.accept_encoding = _encodings(resp) or self.accept_encoding
                try:
                    doc = json.loads(raw) if raw else {}
                except ValueError:
                    raise Busy(resp.status, f"unreadable answer ({raw[:80]!r})", None) from None
                if data is not None:
                    self.bytes_sent += len(data)
                return (doc if isinstance(doc, dict) else {}), resp
        except (UplinkError, Refused):
            raise
        except (TimeoutError, aiohttp.ClientError, ssl.SSLError, OSError) as exc:
            # A broken connection must not be reused: start the next request on a fresh one.
            await self.close()
            raise _translate(exc, url) from None

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
