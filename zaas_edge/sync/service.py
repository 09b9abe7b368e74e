"""The sync service: drains the store's lanes to the platform, alarms first.

One loop, one batch in flight at a time, over one keep-alive mTLS connection:

1. After each batch it starts again from the alarm lane, so lanes are drained
   in the order alarm, event, reading and an alarm never waits behind a
   reading backlog.
2. A lane's next batch is the oldest frozen one on disk, or a new one cut
   after the store's ``sync`` cursor, sized to the lane's current target
   (grown on success up to ``batch_max_bytes`` compressed, halved on a timeout
   or a 413) and frozen before its first send (:mod:`zaas_edge.sync.batches`).
   With a backlog, the next one is frozen while the current one travels, so
   reading the store and encoding overlap the platform's work.
3. It is sent until acknowledged: tenacity backoff with full jitter, at least
   the server's ``Retry-After``; ``sync now`` cuts a wait short.
4. ``acked_through`` >= the batch's last seq moves the store cursor, *then*
   the frozen file is removed (a crash in between resends a batch the
   platform answers from its idempotency record).
5. A refusal of the batch itself (a 4xx other than 401/403/404/408/409/413/
   421/429) quarantines it: kept on disk, not resent, the cursor moved past
   it, alarm ``sync.quarantine``. A 415 on a zstd batch is not a refusal of
   its rows: it is compressed again as gzip once and resent.

It never drops data on TLS or identity failures: alarms ``sync.tls`` and
``sync.identity`` say what to do, batches wait. The server's ``Date`` header
checks the local clock (alarm ``clock.skew`` beyond ``clock_skew_alarm_s``);
the clock is never set from it.
"""

from __future__ import annotations

__all__ = ["SyncService", "CONSUMER"]

import asyncio
import collections
import contextlib
import datetime as dt
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from zaas_edge import backoff
from zaas_edge.aio import checkpoint, wait_for
from zaas_edge.errors import PermanentError, ZaasError
from zaas_edge.model import Alarm, Event, Lane, Severity
from zaas_edge.service import Service, ServiceContext
from zaas_edge.sync.batches import BatchStore, FrozenBatch, compress
from zaas_edge.sync.enroll import SIGNING_KEY_FILE, renew, store_bundle, verify_bundle
from zaas_edge.sync.identity import Identity
from zaas_edge.sync.uplink import (
    Answer,
    AuthRejected,
    Refused,
    Timeout,
    TlsUntrusted,
    TooLarge,
    Uplink,
    UplinkError,
)
from zaas_edge.wire import codec

CONSUMER = "sync"
MIN_BATCH_BYTES = 512
MAX_ROWS = 200_000
# Under ``compression = "auto"``, a batch smaller than this (before compression) goes as gzip even
# when the platform takes zstd. A building's steady minute of aggregates (1,400 points) is some
# 35 kB: gzip makes it 5 kB, zstd 3.4 kB, and loading zstd costs the daemon 1.4 MB of memory for
# the rest of its life, for 2.5 MB a day less on a fibre uplink.
# A backlog's batches (up to 256 kB compressed) are where zstd earns it: a quarter fewer bytes, and
# faster to drain.
ZSTD_FROM_BYTES = 64 * 1024
RATE_WINDOW_S = 60.0
RENEW_RETRY_S = 3600.0

QUARANTINE_ALARM = "sync.quarantine"
TLS_ALARM = "sync.tls"
IDENTITY_ALARM = "sync.identity"
SKEW_ALARM = "clock.skew"
CONFIG_ALARM = "sync.config"


class _LaneState:
    def __init__(self, target: int) -> None:
        self.target = target
        self.bytes_per_row = 16.0
        self.backlog = 0
        self.last_success: float | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.bytes_sent = 0
        self.rows_sent = 0
        self.batches_sent = 0
        self.quarantined = 0
        self.window: collections.deque[tuple[float, int]] = collections.deque()

    def rate(self) -> float:
        now = time.monotonic()
        while self.window and now - self.window[0][0] > RATE_WINDOW_S:
            self.window.popleft()
        return round(sum(n for _, n in self.window) / RATE_WINDOW_S, 1)


class SyncService(Service):
    name = "sync"

    def __init__(self, ctx: ServiceContext, *, source_lanes: dict[Any, Any] | None = None) -> None:
        """``source_lanes`` (tests of the transport alone) maps a wire lane to the store lane it drains."""
        super().__init__(ctx)
        self.source: dict[Any, Any] = dict(source_lanes or codec.SOURCE_LANE)
        cfg = ctx.config()
        self.cfg = cfg.sync
        self.gateway = cfg.gateway
        self.identity = Identity(self.cfg.identity_dir or cfg.gateway.state_dir / "identity", self.cfg.ca_file)
        self.batches = BatchStore(cfg.gateway.state_dir / "sync" / "batches")
        self.bundle_path = cfg.gateway.state_dir / "sync" / "config-bundle.json"
        self.lanes = {lane: _LaneState(self.cfg.batch_initial_bytes) for lane in codec.WIRE_LANES}
        self.epoch = ""
        self._uplink: Uplink | None = None
        self._uplink_stamp: tuple = ()
        self._wake = asyncio.Event()
        self._alarms: set[str] = set()
        self._next_renew_try = 0.0
        self._next_config_pull = 0.0
        self._zstd_refused = False  # a 415 on zstd: gzip from then on
        self.last_encoding = ""  # the Content-Encoding of the last batch frozen
        self._state = "starting"
        self.skew_s: float | None = None

    # ------------------------------------------------------------------ run

    async def run(self) -> None:
        ctx = self.ctx
        ctx.add_command("sync.now", self._cmd_now)
        await ctx.outbox.register(CONSUMER, sorted({self.source[w] for w in codec.WIRE_LANES}))
        self.epoch = await ctx.outbox.stream_epoch()
        self.lanes_quarantined_at_start()
        self._publish()
        try:
            while True:
                ctx.heartbeat()
                if not await self._ready():
                    self._publish()
                    await self._idle(self.cfg.idle_interval_s)
                    continue
                await self._maintenance()
                sent = False
                for lane in codec.WIRE_LANES:
                    if await self._drain_one(lane):
                        sent = True
                        break  # start again from the alarm lane
                if not sent:
                    self._state = "idle"
                self._publish()
                if not sent:
                    await self._idle(self.cfg.idle_interval_s)
        finally:
            if self._uplink is not None:
                await self._uplink.close()

    def lanes_quarantined_at_start(self) -> None:
        kept = self.batches.quarantined()
        for b in kept:
            self.lanes[Lane(b.lane)].quarantined += 1
        if kept:
            self._alarm(QUARANTINE_ALARM, True, f"{len(kept)} batches refused by the platform are kept in "
                        f"{self.batches.quarantine_dir}", Severity.ERROR, {"batches": [b.id for b in kept][:20]})

    async def _idle(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _cmd_now(self, req: dict[str, Any]) -> dict[str, Any]:
        self._wake.set()
        return {"woken": True, "status": self.ctx.status}

    # ------------------------------------------------------------------ identity

    async def _ready(self) -> bool:
        if not self.cfg.url:
            self._state = "no url"
            self._alarm(IDENTITY_ALARM, True, "sync is enabled but sync.url is not set", Severity.ERROR)
            return False
        if not self.identity.enrolled():
            self._state = "not enrolled"
            self._alarm(IDENTITY_ALARM, True, "not enrolled: run 'zaas-edge identity init' then "
                        "'zaas-edge enroll --url URL --token TOKEN'; readings are kept meanwhile", Severity.ERROR)
            return False
        dates = self.identity.cert_dates()
        now = dt.datetime.fromtimestamp(self.ctx.clock.now().wall_ns / 1e9, dt.UTC)
        if dates is not None and dates.not_after < now:
            self._alarm(IDENTITY_ALARM, True, f"the gateway certificate expired on "
                        f"{dates.not_after.isoformat()}: enroll again with a new token; "
                        "readings are kept meanwhile", Severity.ERROR)
        else:
            self._alarm(IDENTITY_ALARM, False, "gateway identity usable")
        return True

    def _make_uplink(self, ssl_context: Any) -> Uplink:
        return Uplink(self.cfg.url or "", self.gateway.id, ssl_context,
                      connect_timeout_s=self.cfg.connect_timeout_s, request_timeout_s=self.cfg.request_timeout_s,
                      bandwidth_limit_bytes_s=self.cfg.bandwidth_limit_bytes_s)

    def _identity_stamp(self) -> tuple:
        out = []
        for p in (self.identity.key_path, self.identity.cert_path, self.identity.ca_path):
            try:
                st = p.stat()
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                out.append(None)
        return tuple(out)

    def _get_uplink(self) -> Uplink:
        stamp = self._identity_stamp()
        if self._uplink is not None and stamp != self._uplink_stamp:
            # Re-enrolled, renewed or a new CA file: the session must use the new files.
            asyncio.get_running_loop().create_task(self._uplink.close())
            self._uplink = None
        if self._uplink is None:
            self._uplink = self._make_uplink(self.identity.context())
            self._uplink_stamp = stamp
        return self._uplink

    async def _drop_uplink(self) -> None:
        if self._uplink is not None:
            await self._uplink.close()
            self._uplink = None

    async def _maintenance(self) -> None:
        """Renewal at two-thirds of the certificate's life; the configuration bundle pull."""
        now = time.monotonic()
        dates = self.identity.cert_dates()
        wall = dt.datetime.fromtimestamp(self.ctx.clock.now().wall_ns / 1e9, dt.UTC)
        if self.cfg.renew and dates is not None and now >= self._next_renew_try and wall >= dates.renewal_due():
            self._next_renew_try = now + RENEW_RETRY_S
            try:
                info = await renew(self.identity, self.cfg.url or "", self.gateway.id, self.gateway.site,
                                   self._make_uplink)
                await self._drop_uplink()
                self._notice(Event("sync.renewed", f"certificate renewed, valid until {info.not_after.isoformat()}",
                                   "sync", self.ctx.clock.now(), Severity.NOTICE, {"cert_sha256": info.cert_sha256}))
            except ZaasError as exc:
                self.ctx.log.warning("certificate renewal failed (the current one stays in use): %s", exc)
        if self.cfg.config_pull_interval_s and now >= self._next_config_pull:
            self._next_config_pull = now + self.cfg.config_pull_interval_s
            await self._pull_config()

    async def _pull_config(self) -> None:
        key_file = self.cfg.config_key_file or self.identity.dir / SIGNING_KEY_FILE
        try:
            bundle = await self._get_uplink().config_bundle()
            doc = verify_bundle(bundle, key_file.read_bytes())
        except FileNotFoundError:
            self.ctx.log.warning("no pinned configuration signing key at %s: bundle not pulled", key_file)
            return
        except UplinkError as exc:  # the link or the gateway's login, not the bundle
            self.ctx.log.info("configuration bundle not pulled: %s", exc)
            return
        except PermanentError as exc:
            self._alarm(CONFIG_ALARM, True, f"configuration bundle rejected: {exc}", Severity.WARNING)
            return
        store_bundle(self.bundle_path, bundle)
        self._alarm(CONFIG_ALARM, False, "configuration bundle verified")
        self._notice(Event("sync.config_received", "signed configuration bundle verified and stored (not applied)",
                           "sync", self.ctx.clock.now(), Severity.INFO, {"version": doc.get("version")}))

    # ------------------------------------------------------------------ batches

    def _source(self, lane: Lane) -> Any:
        return self.source.get(lane, lane)

    async def _drain_one(self, lane: Lane) -> bool:
        """Send the lane's next batch until it is settled; False when the lane is empty."""
        src = self._source(lane)
        cursor, last = await self.ctx.outbox.position(CONSUMER, src)
        st = self.lanes[lane]
        st.backlog = max(0, last - cursor)
        batch = None
        more_frozen = False
        for b in self.batches.pending(str(lane)):
            if b.epoch == self.epoch and b.last_seq <= cursor:
                self.batches.remove(b)  # acknowledged just before a crash
                continue
            if batch is not None:
                more_frozen = True
                break
            batch = b
        if batch is None:
            if last <= cursor:
                return False
            batch = await self._freeze(lane, cursor)
            if batch is None:
                return False
        self._state = f"sending {lane}"
        ahead = None
        if not more_frozen and batch.epoch == self.epoch and last > batch.last_seq:
            # With a backlog, the next batch is frozen while this one travels: reading the store and
            # encoding overlap the platform's work instead of adding to it. It is an ordinary frozen
            # batch on disk (sent next, after any alarm or event); it acknowledges nothing by itself.
            ahead = asyncio.get_running_loop().create_task(self._freeze(lane, batch.last_seq))
        try:
            await self._send(lane, batch)
        except BaseException:
            if ahead is not None:
                ahead.cancel()
                with contextlib.suppress(asyncio.CancelledError, ZaasError):
                    await ahead
            raise
        if ahead is not None:
            try:
                await ahead
            except ZaasError as exc:  # the store could not be read: the batch is cut again next turn
                self.ctx.log.info("the next %s batch was not frozen ahead: %s", lane, exc)
        return True

    def _choose_encoding(self, raw_bytes: int) -> str:
        """The Content-Encoding of a batch of ``raw_bytes`` before compression."""
        if self._zstd_refused:
            return "gzip"
        if self.cfg.compression != "auto":
            return self.cfg.compression
        up = self._uplink
        offered = up is not None and "zstd" in up.accept_encoding
        return "zstd" if offered and raw_bytes >= ZSTD_FROM_BYTES else "gzip"

    async def _rows(self, lane: Lane, after: int, limit: int) -> list[Any]:
        src = self._source(lane)
        return await self.ctx.outbox.read_for_wire(src, after, limit)

    def _encode(self, lane: Lane, rows: Sequence[Any]) -> bytes:
        return codec.encode_batch(lane, rows, epoch=self.epoch)

    async def _freeze(self, lane: Lane, cursor: int) -> FrozenBatch | None:
        st = self.lanes[lane]
        limit = max(1, min(MAX_ROWS, int(st.target / max(st.bytes_per_row, 0.5))))
        rows = await self._rows(lane, cursor, limit)
        if not rows:
            return None
        encoding = ""
        while True:
            raw = self._encode(lane, rows)
            encoding = encoding or self._choose_encoding(len(raw))  # a split keeps the first choice
            body = compress(raw, encoding)
            if len(body) <= self.cfg.batch_max_bytes or len(rows) == 1:
                break
            rows = rows[:max(1, int(len(rows) * self.cfg.batch_max_bytes / len(body) * 0.9))]
        st.bytes_per_row = max(0.5, len(body) / len(rows))
        self.last_encoding = encoding
        return self.batches.freeze(str(lane), rows[0].seq, rows[-1].seq, len(rows), self.epoch, encoding,
                                   codec.CONTENT_TYPE, raw, body)

    def _wait(self, rs: RetryCallState) -> float:
        base = backoff.step(self.cfg.backoff_initial_s, self.cfg.backoff_max_s, rs.attempt_number - 1)
        exc = rs.outcome.exception() if rs.outcome else None
        after = getattr(exc, "retry_after", None)
        return max(base, after) if after else base

    async def _sleep(self, seconds: float) -> None:
        checkpoint()  # a stop that a library swallowed ends the retries here, not never
        self._state = f"backoff {seconds:.1f}s"
        self._publish()
        self.ctx.heartbeat()
        await self._idle(seconds)

    async def _send(self, lane: Lane, batch: FrozenBatch) -> None:
        while True:
            retrying = AsyncRetrying(retry=retry_if_exception_type(UplinkError), wait=self._wait,
                                     sleep=self._sleep, reraise=True)
            try:
                async for attempt in retrying:
                    with attempt:
                        answer = await self._attempt(lane, batch)
            except Refused as exc:
                if exc.status == 415 and batch.encoding != "gzip":
                    batch = self._fall_back_to_gzip(lane, batch, exc)
                    continue
                await self._quarantine(lane, batch, str(exc))
                return
            break
        if answer is None:
            return  # split on 413: the halves are on disk, sent next
        await self._settle(lane, batch, answer)

    def _fall_back_to_gzip(self, lane: Lane, batch: FrozenBatch, exc: Refused) -> FrozenBatch:
        """A 415 on a zstd batch: the platform does not take zstd after all; gzip is the encoding every
        platform takes. The body is byte-identical before compression and keeps its Idempotency-Key
        (which covers the uncompressed body), so the platform still stores its rows once."""
        self._zstd_refused = True
        self._error(lane, exc)
        self.ctx.log.warning("the platform refused a zstd batch (415): %s batch %d-%d sent again as gzip, "
                             "new batches go as gzip", lane, batch.first_seq, batch.last_seq)
        return self.batches.reencode(batch, "gzip")

    async def _attempt(self, lane: Lane, batch: FrozenBatch) -> Answer | None:
        st = self.lanes[lane]
        try:
            answer = await self._get_uplink().post_batch(batch)
        except TooLarge as exc:
            st.target = max(MIN_BATCH_BYTES, st.target // 2)
            self._error(lane, exc)
            if batch.rows > 1 and await self._split(lane, batch):
                return None
            raise Refused(413, "a single row is larger than the platform accepts") from None
        except Timeout as exc:
            st.target = max(MIN_BATCH_BYTES, st.target // 2)
            self._error(lane, exc)
            raise
        except (AuthRejected, TlsUntrusted) as exc:
            self._alarm(TLS_ALARM, True, str(exc), Severity.ERROR)
            await self._drop_uplink()  # the identity files may be fixed meanwhile: reload them
            self._error(lane, exc)
            raise
        except UplinkError as exc:
            self._error(lane, exc)
            raise
        if answer.acked_through < batch.last_seq and batch.epoch == self.epoch:
            raise UplinkError(f"the platform acknowledged through {answer.acked_through} only, "
                              f"batch ends at {batch.last_seq}")
        return answer

    async def _split(self, lane: Lane, batch: FrozenBatch) -> bool:
        """413: re-cut the frozen batch in two by seq range (the only re-cut there is)."""
        if batch.epoch != self.epoch:
            return False
        rows = await self._rows(lane, batch.first_seq - 1, batch.rows)
        rows = [r for r in rows if r.seq <= batch.last_seq]
        if len(rows) < 2:
            return False
        mid = len(rows) // 2
        halves = [(part[0].seq, part[-1].seq, len(part), self._encode(lane, part)) for part in (rows[:mid], rows[mid:])]
        new = self.batches.split(batch, halves)
        self._notice(Event("sync.batch_split", f"{lane} batch {batch.first_seq}-{batch.last_seq} too large for the "
                           f"platform: split in {len(new)}", "sync", self.ctx.clock.now(), Severity.INFO,
                           {"batch": batch.id, "into": [b.id for b in new]}))
        return True

    async def _settle(self, lane: Lane, batch: FrozenBatch, answer: Answer) -> None:
        st = self.lanes[lane]
        if batch.epoch == self.epoch:
            await self.ctx.outbox.ack(CONSUMER, self._source(lane), batch.last_seq)
        self.batches.remove(batch)
        st.last_success = time.time()
        st.bytes_sent += len(batch.body)
        st.rows_sent += batch.rows
        st.batches_sent += 1
        st.window.append((time.monotonic(), len(batch.body)))
        st.target = min(self.cfg.batch_max_bytes, st.target * 2)
        st.backlog = max(0, st.backlog - batch.rows)
        self._alarm(TLS_ALARM, False, "the platform accepts this gateway again")
        self._check_skew(answer.server_time)
        self._state = "sending"

    async def _quarantine(self, lane: Lane, batch: FrozenBatch, reason: str) -> None:
        path = self.batches.quarantine(batch, reason)
        if batch.epoch == self.epoch:
            # Kept on disk: moving the cursor past it stops the loop, loses nothing.
            await self.ctx.outbox.ack(CONSUMER, self._source(lane), batch.last_seq)
        st = self.lanes[lane]
        st.quarantined += 1
        self._error(lane, PermanentError(reason))
        self._alarm(QUARANTINE_ALARM, True, f"{lane} batch {batch.first_seq}-{batch.last_seq} refused by the "
                    f"platform and kept in {path}: {reason}", Severity.ERROR,
                    {"batch": batch.id, "lane": str(lane), "first_seq": batch.first_seq,
                     "last_seq": batch.last_seq, "path": str(path)}, force=True)

    # ------------------------------------------------------------------ status, alarms

    def _check_skew(self, server_time: float | None) -> None:
        if server_time is None:
            return
        local = self.ctx.clock.now().wall_ns / 1e9
        self.skew_s = round(local - server_time, 1)
        if abs(self.skew_s) > self.cfg.clock_skew_alarm_s:
            self._alarm(SKEW_ALARM, True, f"the local clock is {self.skew_s:+.0f}s off the platform's "
                        "(its Date header): check NTP; the clock is not changed", Severity.WARNING,
                        {"skew_s": self.skew_s})
        else:
            self._alarm(SKEW_ALARM, False, "the local clock agrees with the platform's")

    def _error(self, lane: Any, exc: BaseException) -> None:
        st = self.lanes.get(Lane(lane)) if lane is not None else None
        if st is not None:
            st.last_error = str(exc)
            st.last_error_at = time.time()
        self.ctx.log.info("sync %s: %s", lane, exc, extra={"fields": {"lane": str(lane)}})

    def _alarm(self, alarm_id: str, active: bool, text: str, severity: Severity = Severity.WARNING,
               data: dict[str, Any] | None = None, force: bool = False) -> None:
        if not force and active == (alarm_id in self._alarms):
            return
        (self._alarms.add if active else self._alarms.discard)(alarm_id)
        self._notice(Alarm(alarm_id, active, text, "sync", self.ctx.clock.now(), severity, data or {}))

    def _notice(self, item: Event | Alarm) -> None:
        self.ctx.notice(item)

    def _publish(self) -> None:
        cert = None
        with contextlib.suppress(ZaasError, OSError):
            c = self.identity.cert_dates()
            if c is not None:
                cert = {"not_after": c.not_after.isoformat()}
        self.ctx.status.clear()
        self.ctx.status.update({
            "state": self._state,
            "url": self.cfg.url,
            "epoch": self.epoch,
            "encoding": self.last_encoding or self._choose_encoding(0),  # the last batch's
            "certificate": cert,
            "clock_skew_s": self.skew_s,
            "alarms": sorted(self._alarms),
            "lanes": {str(lane): {
                "backlog": st.backlog, "last_success": st.last_success, "last_error": st.last_error,
                "last_error_at": st.last_error_at, "bytes_sent": st.bytes_sent, "rate_bps": st.rate(),
                "rows_sent": st.rows_sent, "batches_sent": st.batches_sent, "batch_target_bytes": st.target,
                "quarantined": st.quarantined,
            } for lane, st in self.lanes.items()},
        })


def batch_dir(state_dir: Path) -> Path:
    return state_dir / "sync" / "batches"
