"""The reference central API: the test double and demo partner of the gateway's sync.

Small and correct, not the platform: it enrolls gateways with its own test CA
(one-time tokens), checks mTLS on every gateway request, decompresses and
decodes batches, stores rows once per (gateway, epoch, lane, seq) in SQLite,
answers ``acked_through``, records gaps, serves time and a signed
configuration bundle. Loopback-only ``/test/...`` endpoints let tests see
what it holds and inject faults (status codes, Retry-After, a size limit).
"""

from __future__ import annotations

__all__ = ["Central", "decode_body"]

import asyncio
import collections
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

from hil.central.ca import TestCA, sign_bundle
from zaas_edge.errors import ProtocolError
from zaas_edge.sync import codec
from zaas_edge.sync.batches import decompress

LANES = ("alarm", "event", "reading")
SCHEMA_VERSION = 2
_BODY_CACHE = 64  # decoded bodies kept for the test queries
ACCEPT = "zstd, gzip"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS token (token TEXT PRIMARY KEY, gateway TEXT, used_ns INTEGER);
CREATE TABLE IF NOT EXISTS gateway (id TEXT PRIMARY KEY, cert_sha256 TEXT, enrolled_ns INTEGER);
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
CREATE TABLE IF NOT EXISTS batch (gateway TEXT NOT NULL, key TEXT NOT NULL, body_sha256 TEXT NOT NULL,
    answer TEXT NOT NULL, PRIMARY KEY (gateway, key));
"""


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


def _undo_encoding(body: bytes, encoding: str) -> bytes:
    """aiohttp's server decompresses gzip (and zstd when it can) on its own: only undo what is left."""
    enc = (encoding or "identity").strip().lower()
    if enc in _MAGIC and body.startswith(_MAGIC[enc]):
        return decompress(body, enc)
    if enc not in _MAGIC and enc != "identity":
        raise ProtocolError(f"unsupported Content-Encoding {encoding!r}")
    return body


def _loopback(request: web.Request) -> bool:
    try:
        return ipaddress.ip_address((request.remote or "").split("%")[0]).is_loopback
    except ValueError:
        return False


class Central:
    """The server: ``await start()``, then ``url``; ``await stop()``."""

    def __init__(self, directory: Path, *, host: str = "127.0.0.1", port: int = 0,
                 cert_days: float = 90) -> None:
        self.dir = Path(directory)
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
        self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._bodies: collections.OrderedDict[int, dict[int, dict[str, Any]]] = collections.OrderedDict()
        # Fault injection, set by tests through /test/faults.
        self.faults: list[dict[str, Any]] = []  # each {status, retry_after, count}
        self.max_body_bytes = 1024 * 1024
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
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._mw])
        gw = "/v1/gateways/{gateway}"
        app.router.add_post(f"{gw}/enroll", self.enroll)
        app.router.add_post(f"{gw}/renew", self.renew)
        app.router.add_post(f"{gw}/lanes/{{lane}}/batches", self.batch)
        app.router.add_get(f"{gw}/config", self.config)
        app.router.add_get("/v1/time", self.time)
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

    def _peer(self, request: web.Request) -> str:
        """The verified client certificate's CN, which must be the gateway in the path."""
        cert = request.transport.get_extra_info("peercert") if request.transport else None
        if not cert:
            raise web.HTTPUnauthorized(text="a client certificate issued by the platform is required")
        cn = next((v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"), None)
        if cn != request.match_info["gateway"]:
            raise web.HTTPForbidden(text=f"certificate is for {cn!r}, not {request.match_info['gateway']!r}")
        return cn

    def _issue(self, gateway: str, csr_pem: str) -> dict[str, Any]:
        from cryptography import x509

        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
        except ValueError:
            raise web.HTTPBadRequest(text="csr is not a PEM certificate signing request") from None
        cn = [a.value for a in csr.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)]
        if cn != [gateway]:
            raise web.HTTPBadRequest(text=f"the CSR names {cn}, expected CN={gateway}")
        try:
            cert, chain = self.ca.sign_csr(csr_pem.encode(), days=self.cert_days)
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        from cryptography.hazmat.primitives import serialization

        from hil.central.ca import fingerprint

        fp = fingerprint(cert.public_bytes(serialization.Encoding.DER))
        self.db.execute("INSERT INTO gateway VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET cert_sha256 = "
                        "excluded.cert_sha256, enrolled_ns = excluded.enrolled_ns", (gateway, fp, time.time_ns()))
        return {"certificate": chain.decode(), "ca": self.ca.pem.decode(),
                "config_signing_key": self.ca.signing_public_pem.decode(),
                "accept_encoding": ["zstd", "gzip"] if self.offer_zstd else ["gzip"],
                "not_after": cert.not_valid_after_utc.isoformat()}

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
        answer = self._issue(gateway, csr)
        self.db.execute("UPDATE token SET used_ns = ? WHERE token = ?", (time.time_ns(), token))
        return web.json_response(answer, status=201)

    async def renew(self, request: web.Request) -> web.Response:
        gateway = self._peer(request)
        doc = await self._json(request)
        if not isinstance(doc.get("csr"), str):
            raise web.HTTPBadRequest(text="expected {csr}")
        return web.json_response(self._issue(gateway, doc["csr"]), status=201)

    async def time(self, request: web.Request) -> web.Response:
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
        # The wire size, compressed: what a platform's body limit applies to.
        wire = request.content_length
        if wire is not None and wire > self.max_body_bytes:
            await request.read()
            raise web.HTTPRequestEntityTooLarge(max_size=self.max_body_bytes, actual_size=wire)
        body = await request.read()
        if (fault := self._fault()) is not None:
            return fault
        encoding = request.headers.get("Content-Encoding", "identity")
        try:
            if encoding.strip().lower() == "zstd" and not self.offer_zstd:
                raise ProtocolError("unsupported Content-Encoding 'zstd' (this platform takes gzip)")
            raw = _undo_encoding(body, encoding)
        except ProtocolError as exc:
            kind = web.HTTPUnsupportedMediaType if "unsupported" in str(exc) else web.HTTPBadRequest
            raise kind(text=str(exc)) from None
        # The Idempotency-Key covers the body before compression: a batch sent
        # again with another Content-Encoding is the same batch.
        digest = hashlib.sha256(raw).hexdigest()
        seen = self.db.execute("SELECT body_sha256, answer FROM batch WHERE gateway = ? AND key = ?",
                               (gateway, key)).fetchone()
        if seen is not None:
            if seen[0] != digest:
                raise web.HTTPUnprocessableEntity(text="Idempotency-Key reused with a different body")
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
            db.execute("INSERT INTO batch VALUES (?, ?, ?, ?)", (gateway, key, digest, json.dumps(answer)))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return answer

    # ------------------------------------------------------------ test API (loopback only)
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
