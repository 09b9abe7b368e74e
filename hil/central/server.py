"""The reference central API: the test double and demo partner of the gateway's sync.

Small and correct, not the platform: it enrolls gateways with its own test CA
(one-time tokens), checks mTLS on every gateway request, decompresses and
decodes batches, stores rows once per (gateway, epoch, lane, seq) in SQLite,
answers ``acked_through``, records gaps, serves time and a signed
configuration bundle.

It is also the contract the platform team copies, so it holds the security
rules of docs/sync-api.md, not just the happy path: a gateway id, once
enrolled, is re-enrolled only with a token bound to that id; the enrolled
certificate's SHA-256 is pinned and checked on every request (a renewed one
replaces it on its first use, a re-enrollment at once); the certificate's
subject is built from the id alone; a body is capped on the wire (chunked
or not) and once inflated; an idempotent answer is replayed only for the
lane and epoch it was given for.

``/test/...`` endpoints (see what it holds, mint tokens, inject faults)
exist only in test mode (``Central(test_mode=True)``, ``--test-mode``), and
answer on loopback only.
"""

from __future__ import annotations

__all__ = ["Central", "decode_body"]

import asyncio
import collections
import datetime as dt
import hashlib
import ipaddress
import json
import secrets
import sqlite3
import ssl
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hil.central.bodies import BodyTooLarge, inflate, read_capped
from hil.central.ca import TestCA, fingerprint, sign_bundle
from zaas_edge.errors import ProtocolError
from zaas_edge.wire import codec

LANES = ("alarm", "event", "reading")
SCHEMA_VERSION = 2
_BODY_CACHE = 64  # decoded bodies kept for the test queries
ACCEPT = "zstd, gzip"
MAX_BODY_BYTES = 1024 * 1024  # on the wire, compressed: the gateway's batches are at most 256 kB
MAX_INFLATED_BYTES = 16 * 1024 * 1024  # once decompressed: an honest batch inflates 5 to 20 times
_JSON_MAX_BYTES = 64 * 1024  # an enrollment or renewal document

_SCHEMA = """
CREATE TABLE IF NOT EXISTS token (token TEXT PRIMARY KEY, gateway TEXT, used_ns INTEGER);
-- cert_sha256: the pinned certificate; next_sha256: a renewed one, pinned in its place on its first use.
CREATE TABLE IF NOT EXISTS gateway (id TEXT PRIMARY KEY, cert_sha256 TEXT, enrolled_ns INTEGER,
    next_sha256 TEXT);
-- A stream is one (gateway, epoch, lane); a row is stored once per (stream, seq), that is once per
-- (gateway, epoch, lane, seq), and points at the batch body it came in (kept uncompressed, decoded on
-- demand): ingestion costs one small index entry per row, not a document.
CREATE TABLE IF NOT EXISTS stream (id INTEGER PRIMARY KEY, gateway TEXT NOT NULL, epoch TEXT NOT NULL,
    lane TEXT NOT NULL, acked_through INTEGER NOT NULL, UNIQUE (gateway, epoch, lane));
CREATE TABLE IF NOT EXISTS body (id INTEGER PRIMARY KEY, content_type TEXT NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS row (stream INTEGER NOT NULL, seq INTEGER NOT NULL, body INTEGER NOT NULL,
    received_ns INTEGER NOT NULL, PRIMARY KEY (stream, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS gap (gateway TEXT NOT NULL, epoch TEXT NOT NULL, lane TEXT NOT NULL,
    first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, recorded_ns INTEGER NOT NULL);
-- An idempotent answer is for one request: the same key, body, lane and epoch.
CREATE TABLE IF NOT EXISTS batch (gateway TEXT NOT NULL, key TEXT NOT NULL, body_sha256 TEXT NOT NULL,
    answer TEXT NOT NULL, lane TEXT, epoch TEXT, PRIMARY KEY (gateway, key));
"""
# Columns added since SCHEMA_VERSION 2, added in place to an older directory (NULL: not known then).
_ADDED_COLUMNS = {"gateway": ("next_sha256",), "batch": ("lane", "epoch")}


def decode_body(content_type: str, body: bytes, *, rows: bool = True) -> dict[str, Any]:
    """A batch body as {lane, first_seq, last_seq, seqs, rows}; ProtocolError when unreadable.

    ``rows=False`` (ingestion): the whole body is still read and checked, but
    reading rows are not turned into dicts, only their seqs are kept.
    """
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype != codec.CONTENT_TYPE.split(";")[0].strip().lower():
        raise ProtocolError(f"unsupported Content-Type {content_type!r}")
    if not rows:
        try:
            recs = codec.decode_records(body)
        except ProtocolError:
            pass  # another lane, or a bad body: decode_batch says which
        else:
            seqs = [r.seq for r in recs]
            return {"lane": "reading", "first_seq": seqs[0] if seqs else 0, "last_seq": seqs[-1] if seqs else 0,
                    "seqs": seqs, "rows": None}
    d = codec.decode_batch(body)
    return {"lane": str(d.lane), "first_seq": d.first_seq, "last_seq": d.last_seq,
            "seqs": [r["seq"] for r in d.rows], "rows": list(d.rows)}


_MAGIC = {"gzip": b"\x1f\x8b", "zstd": b"\x28\xb5\x2f\xfd"}


def _undo_encoding(body: bytes, encoding: str, limit: int) -> bytes:
    """Inflate with a cap (BodyTooLarge past it); a body without its encoding's magic is left to the decoder."""
    enc = (encoding or "identity").strip().lower()
    if enc in _MAGIC and not body.startswith(_MAGIC[enc]):
        enc = "identity"
    return inflate(body, enc, limit)


def _too_large(exc: BodyTooLarge) -> web.Response:
    """A 413 that also ends the connection: what is left of the body is never read into memory."""
    resp = web.Response(status=413, text=f"{exc}; send smaller batches")
    resp.force_close()
    return resp


def _loopback(request: web.Request) -> bool:
    try:
        return ipaddress.ip_address((request.remote or "").split("%")[0]).is_loopback
    except ValueError:
        return False


class Central:
    """The server: ``await start()``, then ``url``; ``await stop()``.

    ``test_mode`` adds the ``/test/...`` endpoints (loopback only); without
    it they do not exist (404), as on the platform.
    """

    def __init__(self, directory: Path, *, host: str = "127.0.0.1", port: int = 0,
                 cert_days: float = 90, test_mode: bool = False) -> None:
        self.dir = Path(directory)
        self.test_mode = test_mode
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = TestCA(self.dir / "ca")
        self.host, self.port = host, port
        self.cert_days = cert_days
        self.db = sqlite3.connect(self.dir / "central.sqlite", isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        # A committed batch survives the central's crash (WAL); a power cut of the test host may lose the
        # last ones, which the gateways then resend (they keep a batch until it is acknowledged).
        self.db.execute("PRAGMA synchronous=NORMAL")
        self._set_aside_old_schema()
        self.db.executescript(_SCHEMA)
        self._add_columns()
        self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._bodies: collections.OrderedDict[int, dict[int, dict[str, Any]]] = collections.OrderedDict()
        # Fault injection, set by tests through /test/faults.
        self.faults: list[dict[str, Any]] = []  # each {status, retry_after, count}
        self.max_body_bytes = MAX_BODY_BYTES
        self.max_inflated_bytes = MAX_INFLATED_BYTES
        self.offer_zstd = True
        self.config_document: dict[str, Any] = {"version": 1, "settings": {}}
        self.requests: dict[str, int] = {}
        self.batches_seen: list[dict[str, Any]] = []
        self.first_batch = asyncio.Event()
        self._runner: web.AppRunner | None = None

    def _set_aside_old_schema(self) -> None:
        """A directory from an older central (one JSON document per row): its tables are renamed, kept."""
        if self.db.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
            return
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for t in ("row", "stream"):
            if t in tables:
                self.db.execute(f"ALTER TABLE {t} RENAME TO {t}_v1")

    def _add_columns(self) -> None:
        for table, columns in _ADDED_COLUMNS.items():
            have = {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}
            for col in columns:
                if col not in have:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {col} TEXT")

    # ------------------------------------------------------------ lifecycle
    def server_context(self) -> ssl.SSLContext:
        cert, key = self.ca.server_pair()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(cert), str(key))
        ctx.load_verify_locations(cafile=str(self.ca.ca_path))
        # Optional at the TLS layer so enrollment works before a gateway has a
        # certificate; every gateway endpoint then requires a verified one.
        ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx

    def app(self) -> web.Application:
        # client_max_size bounds the JSON bodies (enrollment, renewal: a CSR of a few hundred bytes);
        # batch bodies are read by read_capped against max_body_bytes.
        app = web.Application(client_max_size=_JSON_MAX_BYTES, middlewares=[self._mw])
        gw = "/v1/gateways/{gateway}"
        app.router.add_post(f"{gw}/enroll", self.enroll)
        app.router.add_post(f"{gw}/renew", self.renew)
        app.router.add_post(f"{gw}/lanes/{{lane}}/batches", self.batch)
        app.router.add_get(f"{gw}/config", self.config)
        app.router.add_get("/v1/time", self.time)
        if not self.test_mode:
            return app
        app.router.add_get("/test/rows", self.test_rows)
        app.router.add_get("/test/gaps", self.test_gaps)
        app.router.add_get("/test/streams", self.test_streams)
        app.router.add_get("/test/stats", self.test_stats)
        app.router.add_post("/test/tokens", self.test_token)
        app.router.add_post("/test/faults", self.test_faults)
        return app

    async def start(self) -> None:
        # The central decompresses itself: zstd needs no extra aiohttp backend, and a
        # body is hashed (idempotency) exactly as it travelled.
        self._runner = web.AppRunner(self.app(), access_log=None, auto_decompress=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.server_context())
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self.db.close()

    # ------------------------------------------------------------ helpers
    @web.middleware
    async def _mw(self, request: web.Request, handler: Any) -> web.StreamResponse:
        name = request.match_info.route.resource.canonical if request.match_info.route.resource else request.path
        self.requests[name] = self.requests.get(name, 0) + 1
        resp = await handler(request)
        if self.offer_zstd:
            resp.headers["Accept-Encoding"] = ACCEPT
        else:
            resp.headers["Accept-Encoding"] = "gzip"
        return resp

    def _client_cert(self, request: web.Request) -> tuple[str | None, str]:
        """(CN, SHA-256 fingerprint) of the client certificate the TLS layer verified; 401 without one."""
        transport = request.transport
        cert = transport.get_extra_info("peercert") if transport else None
        tls = transport.get_extra_info("ssl_object") if transport else None
        der = tls.getpeercert(binary_form=True) if tls is not None else None
        if not cert or not der:
            raise web.HTTPUnauthorized(text="a client certificate issued by the platform is required")
        cn = next((v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"), None)
        return cn, fingerprint(der)

    def _check_pinned(self, gateway: str, cert_sha256: str, *, promote: bool) -> None:
        """403 unless the certificate is the one pinned for ``gateway`` (or its renewal, pinned on first use).

        A certificate the CA signed is not enough: one replaced by a
        re-enrollment, or superseded by a renewal that has since been used,
        is refused, though it has not expired.
        """
        row = self.db.execute("SELECT cert_sha256, next_sha256 FROM gateway WHERE id = ?", (gateway,)).fetchone()
        if row is not None and cert_sha256 == row[0]:
            return
        if row is not None and row[1] is not None and cert_sha256 == row[1]:
            if promote:  # the renewed certificate works: from now on it is the only one
                self.db.execute("UPDATE gateway SET cert_sha256 = next_sha256, next_sha256 = NULL WHERE id = ?",
                                (gateway,))
            return
        raise web.HTTPForbidden(text=f"certificate {cert_sha256} is not the one enrolled for {gateway!r} "
                                     "(revoked by a re-enrollment or a renewal, or never enrolled)")

    def _peer(self, request: web.Request) -> str:
        """The gateway in the path, if the client certificate is its pinned one (its CN alone is not enough)."""
        cn, cert_sha256 = self._client_cert(request)
        if cn != request.match_info["gateway"]:
            raise web.HTTPForbidden(text=f"certificate is for {cn!r}, not {request.match_info['gateway']!r}")
        self._check_pinned(cn, cert_sha256, promote=True)
        return cn

    def _sign(self, gateway: str, csr_pem: bytes, *, days: float | None = None,
              not_before: dt.datetime | None = None) -> tuple[x509.Certificate, bytes, str]:
        """(leaf, chain PEM, fingerprint) for the CSR's key; the subject is CN=<gateway> and nothing else."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError:
            raise web.HTTPBadRequest(text="csr is not a PEM certificate signing request") from None
        cn = [a.value for a in csr.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)]
        if cn != [gateway]:
            raise web.HTTPBadRequest(text=f"the CSR names {cn}, expected CN={gateway}")
        try:
            cert, chain = self.ca.sign_csr(csr_pem, gateway=gateway, days=self.cert_days if days is None else days,
                                           not_before=not_before)
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        return cert, chain, fingerprint(cert.public_bytes(serialization.Encoding.DER))

    def _pin(self, gateway: str, cert_sha256: str, *, renewal: bool) -> None:
        """Enrollment pins at once (the previous certificate is revoked); renewal pins on first use."""
        if renewal:
            self.db.execute("UPDATE gateway SET next_sha256 = ? WHERE id = ?", (cert_sha256, gateway))
        else:
            self.db.execute("INSERT INTO gateway VALUES (?, ?, ?, NULL) ON CONFLICT (id) DO UPDATE SET "
                            "cert_sha256 = excluded.cert_sha256, enrolled_ns = excluded.enrolled_ns, "
                            "next_sha256 = NULL", (gateway, cert_sha256, time.time_ns()))

    def _answer(self, cert: x509.Certificate, chain: bytes) -> dict[str, Any]:
        return {"certificate": chain.decode(), "ca": self.ca.pem.decode(),
                "config_signing_key": self.ca.signing_public_pem.decode(),
                "accept_encoding": ["zstd", "gzip"] if self.offer_zstd else ["gzip"],
                "not_after": cert.not_valid_after_utc.isoformat()}

    def certify(self, gateway: str, csr_pem: bytes, *, days: float | None = None,
                not_before: dt.datetime | None = None) -> bytes:
        """In-process tests: a certificate chain for ``gateway``, pinned as a re-enrollment pins it.

        The previous certificate is revoked at once. ``days`` and
        ``not_before`` make short-lived or already expired certificates.
        """
        cert, chain, cert_sha256 = self._sign(gateway, csr_pem, days=days, not_before=not_before)
        self._pin(gateway, cert_sha256, renewal=False)
        return chain

    async def _json(self, request: web.Request) -> dict[str, Any]:
        try:
            doc = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="expected a JSON object") from None
        if not isinstance(doc, dict):
            raise web.HTTPBadRequest(text="expected a JSON object")
        return doc

    # ------------------------------------------------------------ gateway API
    async def enroll(self, request: web.Request) -> web.Response:
        gateway = request.match_info["gateway"]
        doc = await self._json(request)
        token, csr = doc.get("token"), doc.get("csr")
        if not isinstance(token, str) or not isinstance(csr, str):
            raise web.HTTPBadRequest(text="expected {token, csr}")
        row = self.db.execute("SELECT gateway, used_ns FROM token WHERE token = ?", (token,)).fetchone()
        if row is None or row[1] is not None or (row[0] and row[0] != gateway):
            raise web.HTTPForbidden(text="unknown, used or foreign enrollment token")
        bound = row[0]
        enrolled = self.db.execute("SELECT 1 FROM gateway WHERE id = ? AND cert_sha256 IS NOT NULL",
                                   (gateway,)).fetchone()
        if enrolled and bound != gateway:
            # Else any unbound token would take an enrolled id over.
            raise web.HTTPForbidden(text=f"gateway {gateway!r} is already enrolled: re-enrolling it needs a token "
                                         "bound to that id")
        cert, chain, cert_sha256 = self._sign(gateway, csr.encode())
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            used = db.execute("UPDATE token SET used_ns = ? WHERE token = ? AND used_ns IS NULL",
                              (time.time_ns(), token)).rowcount
            if used != 1:
                raise web.HTTPForbidden(text="unknown, used or foreign enrollment token")
            self._pin(gateway, cert_sha256, renewal=False)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return web.json_response(self._answer(cert, chain), status=201)

    async def renew(self, request: web.Request) -> web.Response:
        gateway = self._peer(request)
        doc = await self._json(request)
        if not isinstance(doc.get("csr"), str):
            raise web.HTTPBadRequest(text="expected {csr}")
        cert, chain, cert_sha256 = self._sign(gateway, doc["csr"].encode())
        self._pin(gateway, cert_sha256, renewal=True)
        return web.json_response(self._answer(cert, chain), status=201)

    async def time(self, request: web.Request) -> web.Response:
        # No id in the path: any enrolled gateway's pinned certificate, or its renewal (the gateway's
        # trial of a new pair, which does not revoke the current one yet).
        cn, cert_sha256 = self._client_cert(request)
        self._check_pinned(cn or "", cert_sha256, promote=False)
        return web.json_response({"unix_ns": time.time_ns()})

    async def config(self, request: web.Request) -> web.Response:
        gateway = self._peer(request)
        doc = {**self.config_document, "gateway": gateway, "issued_ns": time.time_ns()}
        return web.json_response(sign_bundle(self.ca.signing_key, doc))

    def _fault(self) -> web.Response | None:
        while self.faults:
            f = self.faults[0]
            if f.get("count", 1) <= 0:
                self.faults.pop(0)
                continue
            f["count"] = f.get("count", 1) - 1
            headers = {"Retry-After": str(f["retry_after"])} if f.get("retry_after") is not None else {}
            return web.Response(status=int(f["status"]), text=f.get("text", "injected fault"), headers=headers)
        return None

    async def batch(self, request: web.Request) -> web.Response:
        gateway = self._peer(request)
        lane = request.match_info["lane"]
        if lane not in LANES:
            raise web.HTTPBadRequest(text=f"unknown lane {lane!r}")
        key = request.headers.get("Idempotency-Key", "")
        if not key or len(key) > 200:
            raise web.HTTPBadRequest(text="Idempotency-Key is required (at most 200 characters)")
        epoch = request.headers.get("Zaas-Stream-Epoch", "")
        if not epoch:
            raise web.HTTPBadRequest(text="Zaas-Stream-Epoch is required")
        # The wire size, compressed: what a platform's body limit applies to. Content-Length is
        # believed only when it says too much; a chunked body (or a lying length) is counted as read.
        wire = request.content_length
        try:
            if wire is not None and wire > self.max_body_bytes:
                raise BodyTooLarge(self.max_body_bytes, "on the wire")
            body = await read_capped(request.content, self.max_body_bytes)
        except BodyTooLarge as exc:
            return _too_large(exc)
        if (fault := self._fault()) is not None:
            return fault
        encoding = request.headers.get("Content-Encoding", "identity")
        try:
            if encoding.strip().lower() == "zstd" and not self.offer_zstd:
                raise ProtocolError("unsupported Content-Encoding 'zstd' (this platform takes gzip)")
            raw = _undo_encoding(body, encoding, self.max_inflated_bytes)
        except BodyTooLarge as exc:
            return _too_large(exc)
        except ProtocolError as exc:
            kind = web.HTTPUnsupportedMediaType if "unsupported" in str(exc) else web.HTTPBadRequest
            raise kind(text=str(exc)) from None
        # The Idempotency-Key covers the body before compression: a batch sent
        # again with another Content-Encoding is the same batch.
        digest = hashlib.sha256(raw).hexdigest()
        seen = self.db.execute("SELECT body_sha256, answer, lane, epoch FROM batch WHERE gateway = ? AND key = ?",
                               (gateway, key)).fetchone()
        if seen is not None:
            if seen[0] != digest:
                raise web.HTTPUnprocessableEntity(text="Idempotency-Key reused with a different body")
            # The answer is about one stream: replayed for another lane or epoch it would ack rows
            # that stream never got. (NULL: stored by an older central, which did not record them.)
            if seen[2] is not None and (seen[2], seen[3]) != (lane, epoch):
                raise web.HTTPUnprocessableEntity(text=f"Idempotency-Key already used for lane {seen[2]!r} "
                                                       f"epoch {seen[3]!r}, not lane {lane!r} epoch {epoch!r}")
            answer = json.loads(seen[1])
            answer["replayed"] = True
            answer["acked_through"] = self._acked(gateway, epoch, lane)
            return web.json_response(answer)
        try:
            decoded = decode_body(request.headers.get("Content-Type", ""), raw, rows=False)
        except ProtocolError as exc:
            kind = web.HTTPUnsupportedMediaType if "unsupported" in str(exc) else web.HTTPBadRequest
            raise kind(text=str(exc)) from None
        if decoded["lane"] != lane:
            raise web.HTTPBadRequest(text=f"batch of lane {decoded['lane']!r} posted to lane {lane!r}")
        answer = self._store(gateway, epoch, lane, key, digest, decoded, request.headers.get("Content-Type", ""),
                             raw)
        self.batches_seen.append({"key": key, "lane": lane, "first_seq": decoded["first_seq"],
                                  "last_seq": decoded["last_seq"], "bytes": len(body),
                                  "encoding": request.headers.get("Content-Encoding")})
        self.first_batch.set()
        return web.json_response(answer)

    def _acked(self, gateway: str, epoch: str, lane: str) -> int:
        row = self.db.execute("SELECT acked_through FROM stream WHERE gateway = ? AND epoch = ? AND lane = ?",
                              (gateway, epoch, lane)).fetchone()
        return row[0] if row else 0

    def _stream(self, gateway: str, epoch: str, lane: str) -> tuple[int, int]:
        """(id, acked_through) of the stream, created on its first batch (inside the caller's transaction)."""
        self.db.execute("INSERT OR IGNORE INTO stream (gateway, epoch, lane, acked_through) VALUES (?, ?, ?, 0)",
                        (gateway, epoch, lane))
        return self.db.execute("SELECT id, acked_through FROM stream WHERE gateway = ? AND epoch = ? AND lane = ?",
                               (gateway, epoch, lane)).fetchone()

    def _body_rows(self, body_id: int) -> dict[int, dict[str, Any]]:
        """The rows of a stored body by seq, decoded once (a few recent bodies are cached)."""
        got = self._bodies.get(body_id)
        if got is None:
            ctype, data = self.db.execute("SELECT content_type, data FROM body WHERE id = ?", (body_id,)).fetchone()
            got = {r["seq"]: r for r in decode_body(ctype, data)["rows"]}
            self._bodies[body_id] = got
            if len(self._bodies) > _BODY_CACHE:
                self._bodies.popitem(last=False)
        else:
            self._bodies.move_to_end(body_id)
        return got

    def _rows(self, where: str, args: list[Any]) -> list[tuple[str, str, str, int, dict[str, Any]]]:
        """(gateway, epoch, lane, seq, row) in stream and seq order."""
        sql = ("SELECT s.gateway, s.epoch, s.lane, r.seq, r.body FROM row r JOIN stream s ON s.id = r.stream "
               f"WHERE {where} ORDER BY s.gateway, s.epoch, s.lane, r.seq")
        return [(g, e, ln, seq, self._body_rows(b)[seq]) for g, e, ln, seq, b in self.db.execute(sql, args)]

    def _store(self, gateway: str, epoch: str, lane: str, key: str, digest: str,
               decoded: dict[str, Any], content_type: str, raw: bytes) -> dict[str, Any]:
        now = time.time_ns()
        first, last = int(decoded["first_seq"]), int(decoded["last_seq"])
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            stream, before = self._stream(gateway, epoch, lane)
            body = db.execute("INSERT INTO body (content_type, data) VALUES (?, ?)", (content_type, raw)).lastrowid
            cur = db.executemany("INSERT OR IGNORE INTO row VALUES (?, ?, ?, ?)",
                                 [(stream, seq, body, now) for seq in decoded["seqs"]])
            stored = cur.rowcount
            if not stored:
                db.execute("DELETE FROM body WHERE id = ?", (body,))
            gap = None
            if first > before + 1:
                gap = (before + 1, first - 1)
                db.execute("INSERT INTO gap VALUES (?, ?, ?, ?, ?, ?)", (gateway, epoch, lane, *gap, now))
            acked = max(before, last)
            db.execute("UPDATE stream SET acked_through = ? WHERE id = ?", (acked, stream))
            answer = {"acked_through": acked, "stored": stored, "duplicates": len(decoded["seqs"]) - stored,
                      "gap": list(gap) if gap else None}
            db.execute("INSERT INTO batch VALUES (?, ?, ?, ?, ?, ?)",
                       (gateway, key, digest, json.dumps(answer), lane, epoch))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return answer

    # ------------------------------------------------------------ test API (test mode, loopback only)
    def _test_only(self, request: web.Request) -> None:
        if not _loopback(request):
            raise web.HTTPForbidden(text="test endpoints answer on loopback only")

    async def test_rows(self, request: web.Request) -> web.Response:
        self._test_only(request)
        q = request.query
        where, args = "1", []
        for col in ("gateway", "epoch", "lane"):
            if col in q:
                where += f" AND s.{col} = ?"
                args.append(q[col])
        rows = [{"gateway": g, "epoch": e, "lane": ln, "seq": s, "row": r}
                for g, e, ln, s, r in self._rows(where, args)]
        return web.json_response({"rows": rows, "count": len(rows)})

    async def test_gaps(self, request: web.Request) -> web.Response:
        self._test_only(request)
        gaps = [{"gateway": g, "epoch": e, "lane": ln, "first_seq": a, "last_seq": b}
                for g, e, ln, a, b, _ in self.db.execute("SELECT * FROM gap ORDER BY rowid")]
        return web.json_response({"gaps": gaps})

    async def test_streams(self, request: web.Request) -> web.Response:
        self._test_only(request)
        return web.json_response({"streams": [
            {"gateway": g, "epoch": e, "lane": ln, "acked_through": a}
            for g, e, ln, a in self.db.execute("SELECT gateway, epoch, lane, acked_through FROM stream "
                                               "ORDER BY 1, 2, 3")]})

    async def test_stats(self, request: web.Request) -> web.Response:
        self._test_only(request)
        rows = self.db.execute("SELECT count(*) FROM row").fetchone()[0]
        by = {f"{g}/{ln}": n for g, ln, n in self.db.execute(
            "SELECT s.gateway, s.lane, count(*) FROM row r JOIN stream s ON s.id = r.stream GROUP BY 1, 2")}
        return web.json_response({"batches": len(self.batches_seen), "rows": rows, "requests": self.requests,
                                  "rows_by_gateway_lane": by})

    def new_token(self, gateway: str | None = None) -> str:
        token = secrets.token_urlsafe(18)
        self.db.execute("INSERT INTO token VALUES (?, ?, NULL)", (token, gateway))
        return token

    async def test_token(self, request: web.Request) -> web.Response:
        self._test_only(request)
        doc = await self._json(request)
        return web.json_response({"token": self.new_token(doc.get("gateway"))})

    async def test_faults(self, request: web.Request) -> web.Response:
        self._test_only(request)
        doc = await self._json(request)
        if "faults" in doc:
            self.faults = list(doc["faults"])
        if "max_body_bytes" in doc:
            self.max_body_bytes = int(doc["max_body_bytes"])
        if "offer_zstd" in doc:
            self.offer_zstd = bool(doc["offer_zstd"])
        return web.json_response({"faults": self.faults, "max_body_bytes": self.max_body_bytes})

    # ------------------------------------------------------------ direct access for in-process tests
    def rows(self, gateway: str | None = None, lane: str | None = None) -> list[tuple[str, str, int, dict]]:
        where, args = "1", []
        if gateway:
            where += " AND s.gateway = ?"
            args.append(gateway)
        if lane:
            where += " AND s.lane = ?"
            args.append(lane)
        return [(e, ln, s, r) for _g, e, ln, s, r in self._rows(where, args)]

    def gaps(self) -> list[tuple[str, int, int]]:
        return [(ln, a, b) for ln, a, b in self.db.execute("SELECT lane, first_seq, last_seq FROM gap ORDER BY rowid")]
