"""Commands from ``<base>/cmd/<target>/set``: validated, rate-limited, expiring, always acknowledged.

A command is a JSON object with ``req_id`` (echoed back), ``ts`` (Unix
seconds on the sender's clock) and ``ttl_s`` (0 < ttl_s <= 3600). It is
refused as expired when the gateway's synchronised clock reads past
``ts + ttl_s``, and as from the future when ``ts`` is more than 60 s ahead.
``ts`` is required so a command queued by the broker (persistent session)
or held back by a slow network never acts late. While the gateway's clock is
not synchronised (no RTC, NTP not reached yet) the check cannot be made and
the command is taken as fresh on receipt, and its acknowledgement says so:
``"time_checked": false`` and a reason ending with "its time could not be
checked", so a sender relying on ``ttl_s`` knows it was not applied.

Every command gets exactly one acknowledgement on ``<base>/cmd/<target>/state``:
``{"req_id", "accepted", "code", "reason", "state"}``, where ``code`` is a
stable word to key on and ``reason`` a sentence for people.

Authentication is the broker's job: only the integrator's account may
publish to ``cmd/+/set`` (see the README for the ACL). Nothing here trusts
a payload beyond its schema.
"""

from __future__ import annotations

__all__ = [
    "Ack",
    "CommandHandler",
    "DriverCommand",
    "LoadShedCommand",
    "LimitCommand",
    "TokenBucket",
    "MAX_PAYLOAD",
    "MAX_TTL_S",
    "FUTURE_TOLERANCE_S",
]

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zaas_edge.errors import ZaasError
from zaas_edge.ratelimit import TokenBucket
from zaas_edge.service import DriverControl
from zaas_edge.shed.overrides import LimitOverrides, LoadOverrides

log = logging.getLogger("zaas_edge.mqtt")

MAX_PAYLOAD = 4096
MAX_TTL_S = 3600.0
FUTURE_TOLERANCE_S = 60.0
UNCHECKED_TIME = ("its time could not be checked: the gateway's clock is not synchronised, "
                  "so ts and ttl_s were not compared with it")
MAX_BUCKETS = 1024  # rate-limit buckets, one per configured target (drivers and loads)


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    req_id: str = Field(min_length=1, max_length=64)
    ts: float = Field(allow_inf_nan=False, description="Unix seconds on the sender's clock")
    ttl_s: float = Field(gt=0, le=MAX_TTL_S, allow_inf_nan=False)


class DriverCommand(_Command):
    """``driver/<id>``: poll now, enable or disable until the next restart or reload."""

    action: Literal["poll", "enable", "disable"]


class LimitCommand(_Command):
    """``limit/<id>``: hold a load-shedding limit at ``limit_w`` for ``ttl_s`` seconds (a demand
    response, a lower contract for the day); ``null`` hands it back to the configuration."""

    limit_w: float | None = Field(gt=0, le=10_000_000, allow_inf_nan=False)


class LoadShedCommand(_Command):
    """``loadshed/<load>``: override the rules engine for ``ttl_s`` seconds (``auto`` ends it)."""

    mode: Literal["auto", "shed", "restore"]


@dataclass(frozen=True, slots=True)
class Ack:
    req_id: str | None
    accepted: bool
    code: str
    reason: str
    state: dict[str, Any] = field(default_factory=dict)
    # False when the gateway's clock was not synchronised: the command's ts and ttl_s were not checked,
    # so a sender that relies on them to refuse stale commands knows this one was not judged by them.
    time_checked: bool = True

    def payload(self) -> bytes:
        from zaas_edge.mqtt.payloads import dumps

        doc = {"req_id": self.req_id, "accepted": self.accepted, "code": self.code,
               "reason": self.reason, "state": self.state}
        if not self.time_checked:
            doc["time_checked"] = False
        return dumps(doc)


class _Refused(Exception):
    def __init__(self, code: str, reason: str, req_id: str | None = None,
                 state: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.code, self.reason, self.req_id, self.state = code, reason, req_id, state or {}


def _first_error(exc: ValidationError) -> str:
    errs = exc.errors(include_url=False)
    parts = []
    for e in errs[:3]:
        where = ".".join(str(x) for x in e["loc"]) or "payload"
        parts.append(f"{where}: {e['msg']}")
    more = f" (+{len(errs) - 3} more)" if len(errs) > 3 else ""
    return "; ".join(parts) + more


class CommandHandler:
    """Turns one received command into its effect and its acknowledgement. Never raises."""

    KINDS = ("driver", "loadshed", "limit")
    MODELS: dict[str, type[_Command]] = {"driver": DriverCommand, "loadshed": LoadShedCommand, "limit": LimitCommand}

    def __init__(self, drivers: DriverControl, overrides: LoadOverrides, *, rate_per_s: float, burst: int,
                 counters: dict[str, Any] | None = None, limits: LimitOverrides | None = None) -> None:
        self.drivers = drivers
        self.overrides = overrides
        self.limits = limits if limits is not None else LimitOverrides(tuple)
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._buckets: dict[str, TokenBucket] = {}
        self.counters: dict[str, Any] = counters if counters is not None else {}
        self.counters.setdefault("accepted", 0)
        self.counters.setdefault("refused", {})

    async def handle(self, target: str, payload: bytes, *, retain: bool, wall_s: float, mono_s: float,
                     synced: bool) -> Ack:
        try:
            ack = await self._handle(target, payload, retain, wall_s, mono_s, synced)
        except _Refused as r:
            ack = Ack(r.req_id, False, r.code, r.reason, r.state)
        except Exception as exc:  # a driver failing in an unexpected way must not stop the intake
            log.exception("command on %s failed", target, extra={"fields": {"target": target}})
            ack = Ack(None, False, "failed", f"the command failed: {type(exc).__name__}: {exc}")
        if ack.accepted and not synced:
            ack = dataclasses.replace(ack, time_checked=False, reason=f"{ack.reason}; {UNCHECKED_TIME}")
        if ack.accepted:
            self.counters["accepted"] += 1
        else:
            refused = self.counters["refused"]
            refused[ack.code] = refused.get(ack.code, 0) + 1
        return ack

    async def _handle(self, target: str, payload: bytes, retain: bool, wall_s: float, mono_s: float,
                      synced: bool) -> Ack:
        req_id = _peek_req_id(payload)
        if retain:
            raise _Refused("retained", "retained: a retained command never acts; publish commands "
                           "with the retain flag off", req_id)
        if len(payload) > MAX_PAYLOAD:
            raise _Refused("oversize", f"payload of {len(payload)} bytes is over the {MAX_PAYLOAD}-byte limit",
                           req_id)
        kind, _, ident = target.partition("/")
        if kind not in self.KINDS or not ident or "/" in ident:
            raise _Refused("unknown_target", f"unknown target {target!r}: expected driver/<id>, "
                           "loadshed/<load> or limit/<id>", req_id)
        try:
            doc = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _Refused("malformed", f"payload is not JSON: {exc}", req_id) from None
        except RecursionError:
            raise _Refused("malformed", "payload is nested too deeply", req_id) from None
        if not isinstance(doc, dict):
            raise _Refused("malformed", "payload must be a JSON object", req_id)
        model = self.MODELS[kind]
        try:
            cmd = model.model_validate(doc)
        except ValidationError as exc:
            raise _Refused("invalid", f"invalid {kind} command: {_first_error(exc)}", req_id) from None
        req_id = cmd.req_id
        if synced:
            if wall_s > cmd.ts + cmd.ttl_s:
                raise _Refused("expired", f"expired {wall_s - cmd.ts - cmd.ttl_s:.1f} s ago (ts + ttl_s is past)",
                               req_id)
            if cmd.ts > wall_s + FUTURE_TOLERANCE_S:
                raise _Refused("future", f"ts is {cmd.ts - wall_s:.0f} s ahead of the gateway's clock; "
                               "check the sender's clock", req_id)
        self._check_target(kind, ident, req_id)
        # One bucket per configured target, made only once the target is known to exist: a sender
        # inventing target names gets refusals, never a table that grows with its inventions.
        bucket = self._buckets.get(target)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:  # targets removed by reloads: start the table again
                self._buckets.clear()
            bucket = self._buckets[target] = TokenBucket(self.rate_per_s, self.burst, mono_s)
        if not bucket.try_take(mono_s):
            raise _Refused("rate_limited", f"too many commands for {target}: at most {self.burst} at once "
                           f"and {self.rate_per_s * 60:g} per minute", req_id)
        if isinstance(cmd, DriverCommand):
            return await self._driver(ident, cmd)
        if isinstance(cmd, LimitCommand):
            return self._limit(ident, cmd, mono_s)
        assert isinstance(cmd, LoadShedCommand)
        return self._loadshed(ident, cmd, mono_s)

    def known(self, target: str) -> bool:
        """Whether ``target`` names a configured driver or load: only those get a retained
        acknowledgement (their effective state), so refusals for made-up targets leave nothing
        retained on the broker."""
        kind, _, ident = target.partition("/")
        if not ident or "/" in ident:
            return False
        if kind == "driver":
            return ident in self.drivers.drivers_info()
        if kind == "limit":
            return ident in self.limits.limits()
        return kind == "loadshed" and ident in self.overrides.loads()

    def _check_target(self, kind: str, ident: str, req_id: str) -> None:
        if kind == "driver":
            if ident not in self.drivers.drivers_info():
                raise _Refused("unknown_target", f"no driver {ident!r} in the configuration", req_id)
            return
        if kind == "limit":
            limits = self.limits.limits()
            if not limits:
                raise _Refused("not_configured", "load shedding has no limits configured", req_id)
            if ident not in limits:
                raise _Refused("unknown_target", f"no limit {ident!r} (known: {', '.join(sorted(limits))})", req_id)
            return
        loads = self.overrides.loads()
        if not loads:
            raise _Refused("not_configured", "load shedding is not configured", req_id)
        if ident not in loads:
            raise _Refused("unknown_target", f"no load {ident!r} (known: {', '.join(sorted(loads))})", req_id)

    async def _driver(self, driver_id: str, cmd: DriverCommand) -> Ack:
        try:
            if cmd.action == "poll":
                await self.drivers.poll_now(driver_id)
            else:
                await self.drivers.set_enabled(driver_id, cmd.action == "enable")
        except ZaasError as exc:
            raise _Refused("refused", str(exc), cmd.req_id, _driver_state(self.drivers, driver_id)) from None
        return Ack(cmd.req_id, True, "ok", f"{cmd.action} done", _driver_state(self.drivers, driver_id))

    def _limit(self, limit: str, cmd: LimitCommand, mono_s: float) -> Ack:
        self.limits.set(limit, cmd.limit_w, cmd.ttl_s, mono_s)
        what = f"limit held at {cmd.limit_w:g} W" if cmd.limit_w is not None else "limit back to the configuration"
        return Ack(cmd.req_id, True, "ok", what, dict(self.limits.state(limit, mono_s)))

    def _loadshed(self, load: str, cmd: LoadShedCommand, mono_s: float) -> Ack:
        self.overrides.set(load, cmd.mode, cmd.ttl_s, mono_s)
        return Ack(cmd.req_id, True, "ok", f"override {cmd.mode}", self.overrides.state(load, mono_s))


def _driver_state(drivers: DriverControl, driver_id: str) -> dict[str, Any]:
    info = drivers.drivers_info().get(driver_id)
    return {} if info is None else {"enabled": info.enabled, "state": info.state}


def _peek_req_id(payload: bytes) -> str | None:
    """The req_id of a payload being refused, when one can be read, so the sender can match the refusal."""
    if len(payload) > MAX_PAYLOAD:
        return None
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    rid = doc.get("req_id") if isinstance(doc, dict) else None
    return rid if isinstance(rid, str) and 0 < len(rid) <= 64 else None
