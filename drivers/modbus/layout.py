"""A device's compiled layout: what reading its profile takes, worked out once and shared.

What a ``Device`` needs to plan, read and decode its points (the decode
entries with the configuration's overrides, the compiled decoders, the read
plan, the poll intervals and their groups, the decoding plan of each block)
is a pure function of the profile, the device options that change points
(per-point overrides, the two default intervals), the detection shift and
the bus's request cost. Unit id and device id play no part. So a building of
300 meters of one model with one configuration holds that layout once, not
300 times: ``layout_for`` hands every device with the same inputs the same
object, for as long as one of them lives.

Sharing also shares the caches inside (blocks per due set in ``Plan``,
decoding plans per block, due sets with their scale factors), which are pure
functions of the layout: the first device of a round works them out, the
others reuse them. A device that learns something about itself (barriers,
unreadable registers: ``Plan.split``, ``Plan.with_learnt``) gets a plan of
its own and keeps its decoding plans with it; the layout never changes.
"""

from __future__ import annotations

__all__ = ["Layout", "DecodeEntry", "BlockPlan", "build_entries", "layout_for"]

import math
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .cost import RequestCost
from .decode import DataType, RegisterSpec, ValueDecoder, compile_value
from .options import DeviceOptions
from .plan import Block, Plan, ReadPoint, Table, interval_groups
from .profile import Profile, sf_key

WITH_DEPS_KEPT = 64  # distinct due sets of one layout (a few: fast, slow, both, all); bounded anyway
BLOCK_PLANS_KEPT = 256  # decoding plans of one layout's (or one learnt plan's) blocks

# How to take a block's answer apart: its points with a compiled decoder and their byte offsets,
# and the others (scale factors, text, bit fields) as register slices.
BlockPlan = tuple[tuple[tuple[str, int, ValueDecoder], ...], tuple[ReadPoint, ...]]


@dataclass(frozen=True, slots=True)
class DecodeEntry:
    """What decoding one point needs, resolved once (profile plus overrides)."""

    quantity: str
    spec: RegisterSpec
    unit: str
    resolution: float
    sf: str | None  # plan key of its scale-factor register
    sf_address: int | None  # after relocation
    writable: bool
    table: Table
    address: int  # after relocation
    is_string: bool
    plausible: tuple[float, float] = (-math.inf, math.inf)  # outside: stored with quality error


def build_entries(profile: Profile, opts: DeviceOptions, shift: int = 0) -> dict[str, DecodeEntry]:
    """Every enabled point of the device, with the configuration's overrides applied."""
    out: dict[str, DecodeEntry] = {}
    for p in profile.points:
        ov = opts.points.get(p.quantity)
        if ov is not None and not ov.enabled:
            continue
        spec = profile.register_spec(p)
        if ov is not None:
            changes: dict[str, Any] = {}
            if ov.scale is not None:
                changes["scale"] = ov.scale
            if ov.offset is not None:
                changes["offset"] = ov.offset
            if ov.word_order is not None:
                changes["order"] = ov.word_order
            if changes:
                spec = RegisterSpec(**{**{f: getattr(spec, f) for f in RegisterSpec.__slots__}, **changes})
        writable = p.writable if ov is None or ov.writable is None else ov.writable
        out[p.quantity] = DecodeEntry(
            p.quantity, spec, p.unit, p.resolution,
            sf_key(p.scale_factor) if p.scale_factor is not None else None,
            p.scale_factor + shift if p.scale_factor is not None else None,
            writable, profile.table_of(p), p.address + shift, p.type is DataType.STRING, p.plausible_range)
    return out


def _intervals(profile: Profile, opts: DeviceOptions, entries: Mapping[str, DecodeEntry]) -> dict[str, int]:
    out = {}
    for p in profile.points:
        if p.quantity not in entries:
            continue
        ov = opts.points.get(p.quantity)
        if ov is not None and ov.interval_s is not None:
            s = ov.interval_s
        elif p.interval_s is not None:
            s = p.interval_s
        else:
            default = profile.interval_s(p)
            slow = default == profile.defaults.slow_interval_s and default != profile.defaults.fast_interval_s
            if slow:
                s = opts.interval_slow_s or default
            else:
                s = opts.interval_fast_s or default
        out[p.quantity] = int(s * 1e9)
    return out


class Layout:
    """The entries, decoders, plan and intervals of every device with the same profile, options
    that matter, shift and request cost; read-only once built (its caches only ever fill)."""

    __slots__ = ("profile", "shift", "entries", "decoders", "plan", "intervals", "groups", "keys",
                 "block_plans", "_with_deps", "__weakref__")

    def __init__(self, profile: Profile, opts: DeviceOptions, shift: int, cost: RequestCost) -> None:
        self.profile = profile
        self.shift = shift
        self.entries: Mapping[str, DecodeEntry] = build_entries(profile, opts, shift)
        entries = self.entries
        # Points decoded straight from a response's bytes (compile_value); the others by decode_value.
        self.decoders: Mapping[str, ValueDecoder] = {
            q: dec for q, e in entries.items()
            if e.sf is None and not e.is_string and not e.table.is_bits and (dec := compile_value(e.spec)) is not None}
        sf_keys = {e.sf for e in entries.values() if e.sf}
        points = [rp for rp in profile.read_points(shift) if rp.key in entries or rp.key in sf_keys]
        self.plan = Plan.build(points, profile.defaults.max_gap, cost=cost)
        self.intervals: Mapping[str, int] = _intervals(profile, opts, entries)
        self.groups = interval_groups(self.intervals)  # the Scheduler's, per device only its deadlines
        self.keys = frozenset(entries)  # every point: a poll of all of them (offline retries, poll now)
        self.block_plans: dict[int, tuple[Block, BlockPlan]] = {}  # for the blocks of self.plan
        self._with_deps: dict[frozenset[str], frozenset[str]] = {}

    def without_compiled(self) -> Layout:
        """The same layout with every point decoded by ``decode_value`` (the reference the compiled
        decoders are tested against); a copy with caches of its own, never shared."""
        other = object.__new__(Layout)
        for name in Layout.__slots__:
            if name != "__weakref__":
                setattr(other, name, getattr(self, name))
        other.decoders = {}
        other.block_plans = {}
        return other

    def wanted(self, keys: frozenset[str]) -> frozenset[str]:
        """The due points this layout has, with the scale factors they need (once per due set)."""
        got = self._with_deps.get(keys)
        if got is None:
            entries = self.entries
            got = self.profile.with_dependencies(k for k in keys if k in entries)
            if len(self._with_deps) >= WITH_DEPS_KEPT:
                self._with_deps.clear()
            self._with_deps[keys] = got
        return got

    def block_plan(self, block: Block, cache: dict[int, tuple[Block, BlockPlan]]) -> BlockPlan:
        """How to take ``block``'s answer apart, kept in ``cache`` (the layout's own for the blocks
        of its plan, a device's for the blocks of a plan it learnt)."""
        hit = cache.get(id(block))
        if hit is not None and hit[0] is block:
            return hit[1]
        compiled = []
        others = []
        entries, decoders = self.entries, self.decoders
        for p in block.points:
            dec = decoders.get(p.key)
            if dec is not None and p.count == entries[p.key].spec.count:
                compiled.append((p.key, 2 * (p.address - block.start), dec))
            else:
                others.append(p)
        plan: BlockPlan = (tuple(compiled), tuple(others))
        if len(cache) >= BLOCK_PLANS_KEPT:
            cache.clear()
        cache[id(block)] = (block, plan)
        return plan


# The layouts some device uses, by their inputs: one goes when its last device goes (a reload that
# edits a profile file leaves nothing behind), so the cache needs no bound of its own.
_kept: weakref.WeakValueDictionary[tuple[object, ...], Layout] = weakref.WeakValueDictionary()


def _key(profile: Profile, opts: DeviceOptions, shift: int, cost: RequestCost) -> tuple[object, ...]:
    overrides: Iterable[object] = tuple(opts.points.items()) if opts.points else ()
    return (id(profile), overrides, opts.interval_fast_s, opts.interval_slow_s, shift, cost)


def layout_for(profile: Profile, opts: DeviceOptions, shift: int, cost: RequestCost) -> Layout:
    """The layout of a device with these inputs: the one another device with the same already
    uses, or a new one."""
    key = _key(profile, opts, shift, cost)
    hit = _kept.get(key)
    if hit is not None and hit.profile is profile:  # a layout holds its profile: the id is not reused
        return hit
    made = _kept[key] = Layout(profile, opts, shift, cost)
    return made
