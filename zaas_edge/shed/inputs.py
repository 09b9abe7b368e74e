"""From the hub's readings and alarms to the engine's inputs: samples, tariff state, over-power.

Pure: :class:`InputGatherer` takes readings and alarm transitions and hands
back, on ``take``, what the next step needs. No clock of its own (the caller
passes monotonic seconds), no I/O, so a garbage reading is a counter, never an
exception.

What becomes what:

- a reading of a limit's point is a :class:`~zaas_edge.rules.model.Sample`
  (W, or VA for a Linky's ``apparent_power``; kW and kVA are scaled). Only
  fresh values count: a reading of quality ``stale`` or ``error`` is a repeat
  or a sentinel, and letting it in would make a dead meter look alive;
- a meter's tariff-state points (the TIC driver's enumerated
  ``tariff_period``, ``tempo_today``, ``peak_active``) become
  :class:`~zaas_edge.rules.model.TariffState`. Their value is the index into
  the point's declared ``states``; the period is named as the meter prints it
  (``hp`` → ``HP``, ``hc`` → ``HC``, ``peak`` → ``PM``, ``normal`` → ``HN``,
  ``base`` → ``TH``), which is what ``[[shedding.limits.tariff]] period`` takes;
- a device alarm ``device.<device>.over_power`` (the TIC driver's) raised on
  the device of a limit's point puts that limit into ``Inputs.overpower``.
"""

from __future__ import annotations

__all__ = ["InputGatherer", "PERIOD_NAMES", "TARIFF_QUANTITIES", "UNIT_SCALE"]

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from zaas_edge.model import Alarm, Quality, Reading
from zaas_edge.rules.config import SheddingConfig
from zaas_edge.rules.model import Sample, TariffState

#: The TIC driver's period states, as the meter's own labels name them (PTEC / LTARF).
PERIOD_NAMES: Mapping[str, str] = {"hp": "HP", "hc": "HC", "peak": "PM", "normal": "HN", "base": "TH"}
#: The quantities of a meter's tariff state that the engine reads.
TARIFF_QUANTITIES = ("tariff_period", "tempo_today", "peak_active")
#: Units a power point may come in, and the factor to W (or VA).
UNIT_SCALE: Mapping[str, float] = {"W": 1.0, "VA": 1.0, "kW": 1000.0, "kVA": 1000.0, "": 1.0}
_FRESH = (Quality.OK, Quality.ESTIMATED)
_OVER_POWER = "over_power"
_TEMPO: Mapping[str, Literal["blue", "white", "red"]] = {"blue": "blue", "white": "white", "red": "red"}


def _device(point: str) -> str:
    return point.partition("/")[0]


@dataclass
class InputGatherer:
    """Collects what arrives between two steps.

    ``states`` gives an enumerated point's declared states (from the drivers'
    point declarations); a tariff point whose states are unknown is ignored.
    """

    config: SheddingConfig
    states: Mapping[str, Sequence[str]] = field(default_factory=dict)
    rejected: int = 0  # readings of a limit point that could not be used (unit, value, quality)
    last_rejection: str | None = None
    unknown_states: set[str] = field(default_factory=set)  # tariff points heard before their states were known
    _pending: list[Sample] = field(default_factory=list)
    _tariff: dict[str, str] = field(default_factory=dict)  # quantity -> state name
    _overpower_devices: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._limit_points: frozenset[str] = frozenset(p for lim in self.config.limits for p in lim.points)
        self._meter_devices: frozenset[str] = frozenset(_device(p) for p in self._limit_points)
        self._limits_of_device: dict[str, frozenset[str]] = {
            d: frozenset(lim.id for lim in self.config.limits if any(_device(p) == d for p in lim.points))
            for d in self._meter_devices}

    @property
    def limit_points(self) -> frozenset[str]:
        return self._limit_points

    def readings(self, batch: Iterable[Reading]) -> bool:
        """Take a hub batch in; True when it carried a sample of a limit's point (a step is due)."""
        hit = False
        for r in batch:
            if r.point in self._limit_points:
                hit = self._sample(r) or hit
                continue
            device, _, quantity = r.point.partition("/")
            if quantity in TARIFF_QUANTITIES and (device in self._meter_devices or not self._meter_devices):
                self._tariff_point(r, quantity)
        return hit

    def _reject(self, r: Reading, why: str) -> bool:
        self.rejected += 1
        self.last_rejection = f"{r.point}: {why}"
        return False

    def _sample(self, r: Reading) -> bool:
        if r.quality not in _FRESH:
            return self._reject(r, f"quality {r.quality.value}")
        scale = UNIT_SCALE.get(r.unit)
        if scale is None:
            return self._reject(r, f"unit {r.unit!r} is not a power (W, VA, kW, kVA)")
        if not isinstance(r.value, float | int) or not math.isfinite(r.value):
            return self._reject(r, f"value {r.value!r}")
        self._pending.append(Sample(r.point, float(r.value) * scale, r.mono_ns / 1e9))
        return True

    def _tariff_point(self, r: Reading, quantity: str) -> None:
        states = self.states.get(r.point)
        if not states:
            self.unknown_states.add(r.point)  # the driver may declare its points later: asked again
            return
        if (not states or r.quality not in _FRESH or not isinstance(r.value, float | int)
                or not math.isfinite(r.value) or r.value != int(r.value)):
            return
        index = int(r.value)
        if 0 <= index < len(states):
            self._tariff[quantity] = states[index]

    def alarm(self, item: Alarm) -> bool:
        """Take an alarm transition in; True when it changed a limit's over-power flag."""
        head, _, rest = item.alarm_id.partition(".")
        device, _, kind = rest.rpartition(".")
        if head != "device" or kind != _OVER_POWER or device not in self._meter_devices:
            return False
        before = device in self._overpower_devices
        if item.active:
            self._overpower_devices.add(device)
        else:
            self._overpower_devices.discard(device)
        return before != item.active

    def take(self) -> tuple[Sample, ...]:
        """The samples since the last call, handed over once."""
        out, self._pending = tuple(self._pending), []
        return out

    def put_back(self, samples: Sequence[Sample]) -> None:
        """Hand samples taken too early back, ahead of any that came since."""
        self._pending[:0] = list(samples)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def tariff(self) -> TariffState:
        period = self._tariff.get("tariff_period")
        return TariffState(period=PERIOD_NAMES.get(period, None) if period is not None else None,
                           tempo=_TEMPO.get(self._tariff.get("tempo_today", "")),
                           peak=self._tariff.get("peak_active") == "on")

    def overpower(self) -> frozenset[str]:
        return frozenset(lim for d in self._overpower_devices for lim in self._limits_of_device.get(d, ()))
