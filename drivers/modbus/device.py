"""One device on a bus: its read plan, its schedule, its health, its writes.

A ``Device`` reads with the ``Layout`` (``layout.py``) of its profile and
configuration: the decode entries, the ``Plan`` and the poll intervals, made
once and shared by every device with the same inputs. It keeps its own
``Scheduler`` deadlines from ``plan.py``, and on each due tick reads the
planned blocks through the bus and decodes them with ``decode.py``.

Failures are judged per poll, not per request. A poll *fails* when the device
gave no valid answer at all (no response, garbled answers, the port is
gone); the first silent request ends the poll, so a dead meter costs the bus
one timeout per poll, not one per block. The verdicts feed the device's
``zaas_edge.health.DeviceHealth``: after ``offline_after`` failed polls in a
row the device is *offline* (``ctx.availability``: a ``device.availability``
event, the alarm ``device.<id>.offline``, one log line); it is then retried
with the gateway's backoff (``retry_initial_s`` doubling to ``retry_max_s``,
jittered) instead of on its schedule. Its first good answer clears the alarm
and restarts the schedule.

An exception response is an answer: the device is alive, so it counts for
availability like any answer (it never makes a poll fail, and it needs no
resync of a serial line). Every exception is counted per device
(``exceptions``). Exception 02 (illegal data address) on a block splits the
block at its widest gap and remembers the cut (``Plan.split``); the learnt
barriers and unreadable points are saved as driver state so a restart does
not learn them again. Any other code (01 illegal function, 04 device
failure, 06 busy...) says something about the device rather than the plan:
the blocks it refused give no reading this poll, ``last_exception`` holds the
code, and a ``modbus.exception`` event (and one log line) is raised once per
change: when the device starts answering with a code, when the code changes,
and when a poll passes without one again. A device answering exception 04 to
every request therefore stays online, reads nothing, and says so once.

Missing values (sentinels, NaN, a missing scale factor) produce **no
reading**: the store, the sync encoder and MQTT all carry numbers, and a NaN
or a plausible-looking placeholder would poison sums and charts. The gap is
visible instead: the point's latest reading ages, the ``missing_values``
counter grows, and the point's entry into (and exit from) the missing state
is logged once.
"""

from __future__ import annotations

__all__ = ["Device", "DecodeEntry", "build_entries"]

import asyncio
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from zaas_edge.aio import checkpoint
from zaas_edge.backoff import Backoff
from zaas_edge.driver import DriverContext
from zaas_edge.errors import PermanentError, ProtocolError, TransientError
from zaas_edge.health import Counter, DeviceHealth, DeviceStatus
from zaas_edge.model import Point, Quality, Reading, Severity, Stamp
from zaas_edge.ratelimit import Pacer

from .bus import Bus
from .cost import RequestCost
from .decode import (
    DataType,
    Decoded,
    decode_scale_factor,
    decode_string,
    decode_value,
    encode_bits,
    encode_value,
    registers_bytes,
)
from .identify import find_marker
from .layout import BlockPlan, DecodeEntry, Layout, build_entries, layout_for
from .options import DeviceOptions, ModbusOptions
from .plan import Block, Plan, Scheduler, Table
from .transport import EXCEPTION_NAMES, CrcError, ExceptionResponse, LinkDown, NoResponse

log = logging.getLogger("zaas_edge.drivers.modbus")

MAX_SPLITS_PER_POLL = 32
BAD_RESPONSE_LOG_S = 60.0  # at most one journal line per device this often about answers of the wrong shape
# Counters of a Modbus device, shown as 0 before they first grow.
COUNTED = (Counter.REQUESTS, Counter.ANSWERS, Counter.TIMEOUTS, Counter.CHECKSUM_ERRORS, Counter.BAD_RESPONSES,
           Counter.EXCEPTIONS, Counter.LINK_ERRORS, Counter.MISSING_VALUES, Counter.OVERRUNS)


@dataclass(slots=True)
class PollResult:
    values: dict[str, Decoded | str] = field(default_factory=dict)
    stamps: dict[str, float] = field(default_factory=dict)
    answered: bool = False
    error: str | None = None


_NONE: frozenset[str] = frozenset()  # no point missing, none implausible: what nearly every device holds


class Device:
    """Polls one unit id on a bus and keeps its health.

    What its profile and options make of it (entries, decoders, plan, intervals) is a ``Layout``
    shared with every device of the same inputs; a device keeps only what is its own (its id and
    unit, its health and schedule, a plan of its own once it learns barriers or unreadable
    registers). Slotted: a building holds hundreds.
    """

    __slots__ = ("opts", "bus_opts", "bus", "ctx", "id", "unit", "profile", "timeout", "gap_s", "health",
                 "last_exception", "shift", "layout", "entries", "intervals", "plan", "_block_plans", "scheduler",
                 "_points", "_missing", "_implausible", "_poll_lock", "backoff", "_state_loaded",
                 "_exception_code", "_bad_log")

    def __init__(self, opts: DeviceOptions, bus_opts: ModbusOptions, bus: Bus,
                 ctx: DriverContext | None = None) -> None:
        self.opts = opts
        self.bus_opts = bus_opts
        self.bus = bus
        self.ctx = ctx
        self.id = opts.id
        self.unit = opts.unit
        self.profile = opts.resolved_profile
        self._points: tuple[Mapping[str, DecodeEntry], tuple[Point, ...]] | None = None  # model_points(), per entries
        self.timeout = opts.timeout_s or bus_opts.timeout_s
        self.gap_s = (opts.inter_frame_delay_ms / 1000 if opts.inter_frame_delay_ms is not None
                      else bus_opts.frame_gap_s)
        self.health = DeviceHealth(opts.id, offline_after=bus_opts.offline_after, now=time.monotonic(),
                                   counted=COUNTED)
        self.last_exception: int | None = None  # exception code (other than 02) of the last poll, if any
        self.shift: int | None = None if self._needs_detection else 0
        self._set_layout(self.shift or 0)
        self._missing: frozenset[str] = _NONE  # points whose last value was missing (replaced on change, rare)
        self._implausible: frozenset[str] = _NONE  # points whose last value was outside their plausible range
        self._poll_lock = asyncio.Lock()  # a poll-now and a scheduled poll do not interleave
        self.backoff = Backoff(bus_opts.retry_initial_s, bus_opts.retry_max_s)  # retries while offline
        self._state_loaded = False
        self._exception_code: int | None = None  # announced state, for one event per change
        self._bad_log: Pacer | None = None  # one journal line a minute about answers of the wrong shape, once one came

    # -- layout ---------------------------------------------------------------------

    @property
    def _needs_detection(self) -> bool:
        d = self.profile.detection
        return d is not None and d.relocate

    def _set_layout(self, shift: int) -> None:
        self._use(layout_for(self.profile, self.opts, shift, RequestCost.for_bus(self.bus_opts, self.gap_s)))

    def _use(self, layout: Layout) -> None:
        """Read, plan and decode as ``layout`` says, from a fresh schedule and its (unlearnt) plan."""
        self.layout = layout
        self.entries: Mapping[str, DecodeEntry] = layout.entries
        self.intervals: Mapping[str, int] = layout.intervals
        self._set_plan(layout.plan)
        self.scheduler = Scheduler(None, time.monotonic_ns(), layout.groups)

    def _set_plan(self, plan: Plan) -> None:
        """Read with ``plan``: the layout's, with the decoding plans of its blocks shared, or one this
        device learnt, whose blocks are its own and so are their decoding plans."""
        self.plan = plan
        self._block_plans: dict[int, tuple[Block, BlockPlan]] = (
            self.layout.block_plans if plan is self.layout.plan else {})

    def model_points(self) -> list[Point]:
        """The device's points, built once per set of entries: services ask for them every second."""
        made = self._points
        if made is None or made[0] is not self.entries:
            described = {p.quantity: p.description for p in self.profile.points}
            made = self._points = (self.entries, tuple(
                Point(self.id, e.quantity, e.unit, e.resolution, described.get(e.quantity, ""), e.writable)
                for e in self.entries.values() if not e.is_string))
        return list(made[1])

    # -- learnt state ---------------------------------------------------------------

    def _state_key(self) -> str:
        return f"plan.{self.id}"

    def _fingerprint(self) -> str:
        return f"{self.profile.name}:{self.unit}:{self.shift}"

    async def load_state(self) -> None:
        self._state_loaded = True
        if self.ctx is None:
            return
        try:
            doc = await self.ctx.load_state(self._state_key())
        except Exception:  # a store problem must not stop polling; learning again is cheap
            return
        if not doc or doc.get("fingerprint") != self._fingerprint():
            return
        keys = {p.key for p in self.plan.points}
        barriers = frozenset((Table(t), int(a)) for t, a in doc.get("barriers", []))
        unreadable = frozenset(k for k in doc.get("unreadable", []) if k in keys)
        if barriers != self.plan.barriers or unreadable != self.plan.unreadable:  # else keep the shared plan
            self._set_plan(self.plan.with_learnt(barriers, unreadable))

    async def _save_state(self) -> None:
        if self.ctx is None:
            return
        doc = {"fingerprint": self._fingerprint(),
               "barriers": sorted([int(t), a] for t, a in self.plan.barriers),
               "unreadable": sorted(self.plan.unreadable)}
        try:
            await self.ctx.save_state(self._state_key(), doc)
        except Exception:
            pass  # in memory it is still learnt

    # -- reading --------------------------------------------------------------------

    async def _request(self, block: Block) -> list[int]:
        """One request, counted, its latency measured (``read`` does the same inline)."""
        self._count(Counter.REQUESTS)
        t0 = time.monotonic()
        regs = await self.bus.read(self.unit, block.table, block.start, block.count, timeout=self.timeout,
                                   gap_s=self.gap_s)
        self.health.latency(time.monotonic() - t0)
        self.health.count(Counter.ANSWERS)
        return regs

    async def _counted_read(self, table: Table, start: int, count: int) -> list[int]:
        """A marker search's read: counted on the device, its failures judged like a poll's."""
        try:
            return await self._request(Block(table, start, count, ()))
        except ExceptionResponse:
            self._count(Counter.EXCEPTIONS)
            raise
        except (TransientError, ProtocolError) as exc:
            self._note_failure(exc)
            raise

    def _count(self, name: Counter | str, n: int = 1) -> None:
        """Count on the device (the shared vocabulary) and on the driver."""
        if isinstance(name, Counter):
            self.health.count(name, n)
        if self.ctx is not None:
            self.ctx.count(str(name), n)

    def _note_failure(self, exc: Exception) -> None:
        if isinstance(exc, NoResponse):
            self._count(Counter.TIMEOUTS)
        elif isinstance(exc, CrcError):
            self._count(Counter.CHECKSUM_ERRORS)
        elif isinstance(exc, LinkDown):
            self._count(Counter.LINK_ERRORS)
        elif isinstance(exc, ProtocolError):
            self._count(Counter.BAD_RESPONSES)
            self._bad_response_log(exc)
        self.health.last_error = str(exc)

    def _bad_response_log(self, exc: Exception) -> None:
        """One journal line per device per ``BAD_RESPONSE_LOG_S`` about answers of the wrong shape,
        with the count since the previous line: a device answering garbage to every poll must not
        write a line per poll (the counter has them all)."""
        if self._bad_log is None:
            self._bad_log = Pacer(BAD_RESPONSE_LOG_S)
        held = self._bad_log.admit("bad_response", time.monotonic())
        if held is None:
            return
        more = f" ({held + 1} bad responses since the last report)" if held else ""
        self._log(logging.WARNING, f"device {self.id} (unit {self.unit}): {exc}{more}")

    async def detect(self) -> bool:
        """Find the SunSpec marker (or the profile's) and relocate the points; False if the device was silent."""
        det = self.profile.detection
        assert det is not None
        try:
            search = await find_marker(det, self._counted_read)
        except LinkDown:
            return False  # counted by the read; the next poll looks again
        if not search.answered:
            return False
        found = search.base
        if found is None:
            self._log(logging.WARNING, f"device {self.id}: {det.marker!r} marker not found at "
                      f"{', '.join(map(str, det.candidates))}; assuming the profile's addresses")
            shift = 0
        else:
            shift = found - det.candidates[0]
            if shift:
                self._log(logging.INFO,
                          f"device {self.id}: {det.marker!r} marker at {found}; addresses shifted by {shift}")
        self.shift = shift
        self._set_layout(shift)
        await self.load_state()
        return True

    async def read(self, keys: frozenset[str] | set[str]) -> PollResult:
        """Read ``keys`` (point quantities) once; never raises for bus problems."""
        res = PollResult()
        refused: int | None = None  # an exception code other than 02 met in this poll
        if self.shift is None:
            if not await self.detect():
                res.error = self.health.last_error or "no answer"
                return res
            res.answered = True
        if not self._state_loaded:
            await self.load_state()
        wanted = self._wanted(keys)
        queue = list(self.plan.blocks_for(wanted))
        raw: dict[str, list[int]] = {}
        fast: dict[str, float | None] = {}  # points decoded as their block arrived (compile_value)
        splits = 0
        bus, unit, timeout, gap_s, health = self.bus, self.unit, self.timeout, self.gap_s, self.health
        while queue:
            block = queue.pop(0)
            # What _request does, inline: every device of a bus waits here at the top of each
            # second, and a coroutine less per device is that much less memory and switching.
            self._count(Counter.REQUESTS)
            t0 = time.monotonic()
            try:
                regs = await bus.read(unit, block.table, block.start, block.count, timeout=timeout, gap_s=gap_s)
            except ExceptionResponse as exc:
                res.answered = True
                self._count(Counter.EXCEPTIONS)
                self.health.last_error = str(exc)
                if exc.code != 2:
                    refused = exc.code
                elif splits < MAX_SPLITS_PER_POLL:
                    splits += 1
                    await self._split(block)
                    done = set(raw) | set(fast)
                    queue = [b for b in self.plan.blocks_for(wanted - done)]
                continue
            except CrcError as exc:
                self._note_failure(exc)
                continue  # noise on the line: the next block may pass
            except (TransientError, ProtocolError) as exc:
                self._note_failure(exc)
                res.error = str(exc)
                break  # silent device or gone port: do not spend a timeout per block
            stamp = time.monotonic()
            health.latency(stamp - t0)
            health.count(Counter.ANSWERS)
            res.answered = True
            compiled, others = self.layout.block_plan(block, self._block_plans)
            data = registers_bytes(regs) if compiled and len(regs) == block.count else None
            if data is None:
                others = block.points
            else:
                for key, at, decode in compiled:
                    fast[key] = decode(data, at)
                    res.stamps[key] = stamp
            for p in others:
                raw[p.key] = list(block.extract(regs, p))
                res.stamps[p.key] = stamp
        if not res.answered and res.error is None:
            res.error = self.health.last_error
        if res.answered:
            self._exception_state(refused)
        values = res.values
        missing = Decoded.missing()
        ok = Quality.OK
        entries = self.entries
        for q in keys:
            v = fast.get(q, fast)  # the dict itself: not decoded from the bytes
            if v is not fast:
                values[q] = missing if v is None else Decoded(v, ok)  # type: ignore[arg-type]
                continue
            e = entries.get(q)
            if e is None or q not in raw:
                continue
            values[q] = self._decode(e, raw)
        return res

    def _wanted(self, keys: frozenset[str] | set[str]) -> frozenset[str]:
        """The due points this device has, with the scale factors they need (once per due set)."""
        return self.layout.wanted(keys if isinstance(keys, frozenset) else frozenset(keys))

    def _exception_state(self, code: int | None) -> None:
        """Announce a change in the exception the device answers with (02 is the planner's business)."""
        self.last_exception = code
        if code == self._exception_code:
            return
        before, self._exception_code = self._exception_code, code
        if code is not None:
            name = EXCEPTION_NAMES.get(code, "unknown exception")
            text = f"{self.id} (unit {self.unit}) answers exception {code:02d} ({name}); those points give no reading"
            data = {"device": self.id, "unit": self.unit, "code": code, "name": name}
            severity = Severity.WARNING
        else:
            text = f"{self.id} (unit {self.unit}) answers without exceptions again"
            data = {"device": self.id, "unit": self.unit, "code": None, "previous": before}
            severity = Severity.INFO
        if self.ctx is not None:
            self.ctx.event("modbus.exception", text, severity, data)  # the journal's one line about it
        else:
            self._log(logging.WARNING if code is not None else logging.INFO, f"device {text}")

    def _decode(self, e: DecodeEntry, raw: Mapping[str, list[int]]) -> Decoded | str:
        regs = raw[e.quantity]
        try:
            if e.is_string:
                return decode_string(regs, e.spec.order)
            if e.sf is None:
                return decode_value(regs, e.spec)
            sf = raw.get(e.sf)
            return decode_value(regs, e.spec, sf[0] if sf else None, has_sf=True)
        except ProtocolError:
            return Decoded.missing()

    async def _split(self, block: Block) -> None:
        before = self.plan.unreadable
        self._set_plan(self.plan.split(block))
        lost = self.plan.unreadable - before
        if lost:
            self._log(logging.WARNING, f"device {self.id}: {', '.join(sorted(lost))} refused with exception 02 "
                      "(illegal data address); no longer read")
            if self.ctx is not None:
                self.ctx.event("modbus.point_unreadable", f"{self.id}: {', '.join(sorted(lost))} not readable",
                               Severity.WARNING, {"device": self.id, "points": sorted(lost)})
        else:
            self._log(logging.INFO, f"device {self.id}: block {block.table.name.lower()} {block.start}+{block.count} "
                      "refused with exception 02; split")
        self._count("splits")
        await self._save_state()

    # -- readings and health ----------------------------------------------------------

    def readings(self, res: PollResult) -> list[Reading]:
        """Readings for the decoded values; missing values are counted, not emitted."""
        assert self.ctx is not None
        out: list[Reading] = []
        now_stamp = self.ctx.now()
        now_mono = time.monotonic()
        reading = self.ctx.reading
        entries, arrivals, device_id, isfinite = self.entries, res.stamps, self.id, math.isfinite
        stamps: dict[float, Stamp] = {}  # one stamp per block's arrival, not one per point
        for q, d in res.values.items():
            if isinstance(d, str):
                continue  # text (serial numbers) is shown by `zaas-edge read`, not stored
            e = entries[q]
            value = d.value
            if value is None or not isfinite(value):
                self._count(Counter.MISSING_VALUES)
                if q not in self._missing:
                    self._missing |= {q}
                    self._log(logging.WARNING, f"device {self.id}: {q} has no value (sentinel or missing scale factor)")
                continue
            if self._missing and q in self._missing:
                self._missing -= {q}
                self._log(logging.INFO, f"device {self.id}: {q} has a value again")
            lo, hi = e.plausible
            if lo <= value <= hi and not self._implausible:
                quality = d.quality  # the usual case, without a call
            else:
                quality = self._plausibility(q, e, d)
            # Stamp each value when its block arrived, not when the poll ended.
            arrived = arrivals.get(q, now_mono)
            stamp = stamps.get(arrived)
            if stamp is None:
                age_ns = int((now_mono - arrived) * 1e9)
                stamp = stamps[arrived] = now_stamp if age_ns <= 0 else type(now_stamp)(
                    now_stamp.wall_ns - age_ns, now_stamp.mono_ns - age_ns, now_stamp.boot_id, now_stamp.synced)
            out.append(reading(q, value, e.unit, quality, stamp=stamp, device_id=device_id))
        return out

    def _plausibility(self, q: str, e: DecodeEntry, d: Decoded) -> Quality:
        """The quality to store ``d`` with: ``error`` outside the point's plausible range (counted,
        one journal line when a point goes out of range and one when it comes back)."""
        assert d.value is not None
        lo, hi = e.plausible
        if lo <= d.value <= hi:
            if q in self._implausible:
                self._implausible -= {q}
                self._log(logging.INFO, f"device {self.id}: {q} is plausible again ({d.value:g} {e.unit})")
            return d.quality
        self._count("implausible_values")
        if q not in self._implausible:
            self._implausible |= {q}
            self._log(logging.WARNING, f"device {self.id}: {q} reads {d.value:g} {e.unit}, outside its plausible "
                      f"range [{lo:g}, {hi:g}]; stored with quality error (wrong profile, address or word order?)")
        return Quality.ERROR

    def _judge(self, res: PollResult) -> None:
        """One poll's verdict into the device's health; a change of availability is announced."""
        now = time.monotonic()
        if res.answered:
            self.backoff.reset()
            change = self.health.success(now)
            if change is not None and change.previous is False:
                # Restart the schedule: deadlines missed while offline are not overruns.
                self.scheduler = Scheduler(None, time.monotonic_ns(), self.layout.groups)
        else:
            self._count("failed_polls")
            change = self.health.failure(now, res.error or "no answer")
        if change is not None and self.ctx is not None:
            self.ctx.availability(change, f"{self.id} (unit {self.unit})", {"unit": self.unit})

    def status(self, bus: str, bus_down: str | None) -> DeviceStatus:
        """This device's health for ``Driver.health()``: where it is, and its bus's state."""
        return self.health.status(time.monotonic(), {"unit": self.unit, "bus": bus, "bus_down": bus_down,
                                                     "last_exception": self.last_exception})

    def _log(self, level: int, msg: str) -> None:
        logger = self.ctx.log if self.ctx is not None else log
        logger.log(level, msg, extra={"fields": {"device": self.id, "unit": self.unit}})

    async def poll(self, keys: frozenset[str] | set[str]) -> list[Reading]:
        """Read, judge health, and return the readings (the driver emits them)."""
        async with self._poll_lock:
            res = await self.read(keys)
            self._judge(res)
            return self.readings(res) if self.ctx is not None else []

    # -- the loop ---------------------------------------------------------------------

    async def run(self) -> None:
        """Poll on schedule while online, with backoff while offline, until cancelled."""
        assert self.ctx is not None
        while True:
            checkpoint()  # pymodbus can swallow a cancellation: never loop on after a stop
            if self.health.online is False:
                await asyncio.sleep(self.backoff.next())
                batch = await self.poll(self.layout.keys)
            else:
                nxt = self.scheduler.next_deadline()
                now = time.monotonic_ns()
                if nxt is not None and nxt > now:
                    await asyncio.sleep((nxt - now) / 1e9)
                before = self.scheduler.overruns
                due = self.scheduler.due(time.monotonic_ns())
                missed = self.scheduler.overruns - before
                if missed:
                    self._count(Counter.OVERRUNS, missed)
                batch = await self.poll(due)
            if batch:
                self.ctx.emit(batch)
            self.ctx.heartbeat()

    # -- writing ----------------------------------------------------------------------

    async def write(self, quantity: str, value: float) -> float:
        """Write ``value`` to a writable coil or holding register and return what reads back.

        Retries ``write_retries`` times when the device does not answer or reads
        back something else; a value that still differs raises ``PermanentError``.
        """
        e = self.entries.get(quantity)
        if e is None:
            raise PermanentError(f"device {self.id} has no point {quantity!r}")
        if not e.writable:
            raise PermanentError(f"{self.id}/{quantity} is not writable (set points.{quantity}.writable = true "
                                 "in the device's configuration if the device allows it)")
        if e.table not in (Table.COILS, Table.HOLDING) or e.is_string:
            raise PermanentError(f"{self.id}/{quantity} lives in the {e.table.name.lower()} table, which is read-only")
        if not math.isfinite(value):
            raise PermanentError(f"cannot write {value!r} to {self.id}/{quantity}")
        attempts = self.bus_opts.write_retries + 1
        last: Exception | None = None
        for _ in range(attempts):
            try:
                got = await self._write_once(e, value)
            except (TransientError, ProtocolError) as exc:
                self._note_failure(exc)
                last = exc
                continue
            if self._matches(e, value, got):
                self._count("writes")
                if self.ctx is not None:
                    self.ctx.emit([self.ctx.reading(quantity, got, e.unit, Quality.OK, device_id=self.id)])
                return got
            last = PermanentError(f"{self.id}/{quantity}: wrote {value:g}, read back {got:g}")
        self._count("write_failures")
        if isinstance(last, PermanentError):
            raise last
        raise TransientError(f"{self.id}/{quantity}: write failed after {attempts} attempts: {last}")

    @staticmethod
    def _matches(e: DecodeEntry, wanted: float, got: float) -> bool:
        step = abs(e.spec.scale) if not e.spec.dtype.is_float else 0.0
        tol = max(e.resolution, step / 2, 1e-9 * max(1.0, abs(wanted)))
        if e.spec.dtype is DataType.FLOAT32:
            tol = max(tol, abs(wanted) * 1e-6)
        return abs(got - wanted) <= tol

    async def _write_once(self, e: DecodeEntry, value: float) -> float:
        bus, unit, t, gap = self.bus, self.unit, self.timeout, self.gap_s
        if e.table is Table.COILS:
            await bus.write_coil(unit, e.address, bool(value), timeout=t, gap_s=gap)
            bit = await bus.read_for_write(unit, Table.COILS, e.address, 1, timeout=t, gap_s=gap)
            return float(bit[0])
        count = e.spec.count
        if e.spec.bit is not None or e.spec.mask is not None:
            (reg,) = await bus.read_for_write(unit, Table.HOLDING, e.address, 1, timeout=t, gap_s=gap)
            raw = (value - e.spec.offset) / e.spec.scale
            if not float(raw).is_integer():
                raise PermanentError(f"{self.id}/{e.quantity}: {value:g} is not a whole step of the bit field")
            regs: tuple[int, ...] = (encode_bits(reg, int(raw), e.spec.bit, e.spec.mask),)
        else:
            sf = 0
            if e.sf is not None:
                sf_regs = await bus.read_for_write(unit, Table.HOLDING, e.sf_address, 1, timeout=t, gap_s=gap)
                got_sf = decode_scale_factor(sf_regs[0])
                if got_sf is None:
                    raise PermanentError(f"{self.id}/{e.quantity}: its scale factor is not implemented")
                sf = got_sf
            regs = encode_value(value, e.spec, sf)
        await bus.write_registers(unit, e.address, regs, timeout=t, gap_s=gap)
        back = await bus.read_for_write(unit, Table.HOLDING, e.address, count, timeout=t, gap_s=gap)
        raw_sf: dict[str, list[int]] = {e.quantity: back}
        if e.sf is not None:
            raw_sf[e.sf] = await bus.read_for_write(unit, Table.HOLDING, e.sf_address, 1, timeout=t, gap_s=gap)
        d = self._decode(e, raw_sf)
        if isinstance(d, str) or d.value is None:
            raise PermanentError(f"{self.id}/{e.quantity}: read-back is not a value")
        return d.value
