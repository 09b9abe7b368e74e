"""One time scale shared by a scenario's simulators and the daemon's generated configuration.

A building's day takes 24 hours; a test has minutes. A :class:`TimeScale`
says how scenario time maps to real time: ``factor`` scenario seconds pass
per real second, and scenario time ``epoch`` (Unix seconds: the simulated
day's date and hour) falls at real time ``origin``. It is a value and a few
pure conversions; nothing here reads a clock except :meth:`TimeScale.starting_now`
and :meth:`TimeScale.clock`, which take the clock they read as an argument.

Who uses it:

- the simulators take their time from it: the plant's base-load profile
  (``hil.shed_plant``), the Linky's clock (tariff periods, Tempo days, its
  energy registers), the M-Bus meters' indexes (a water meter's volume
  integrates its flow over scenario time), the LoRa uplink interval;
- the scenario's generated daemon configuration divides durations by the
  factor (:func:`hil.scaled.scale_config`): poll intervals, aggregation
  windows, alarm rule delays and windows, stale timers, each kept at or above
  the daemon's own minimum; and maps time-of-day windows (a building's idle
  nights) to the real wall-clock minutes at which scenario night occurs
  (:meth:`TimeScale.real_windows`), so the daemon runs on its real clock with
  no test hook.

What cannot be compressed is listed in the README's *Time scale* section:
real-time control (the shedding loop and the Linky's breaking filter, which
keeps real seconds), the daemon's minimum intervals, wall-clock hours of the
consumption rules, and minute-granular time-of-day windows.
"""

from __future__ import annotations

__all__ = ["TimeScale", "hhmm"]

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace


def hhmm(minute: int) -> str:
    """Minute of the day as ``HH:MM`` (what ``DailyWindow`` reads)."""
    minute %= 1440
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _minute_of_day(hm: str) -> int:
    h, m = hm.split(":")
    return int(h) * 60 + int(m)


def _local_midnight(t: float) -> float:
    """Unix time of the local midnight that starts the day of ``t`` (the process's time zone)."""
    tm = time.localtime(t)
    return time.mktime((tm.tm_year, tm.tm_mon, tm.tm_mday, 0, 0, 0, 0, 0, -1))


@dataclass(frozen=True, slots=True)
class TimeScale:
    """``factor`` scenario seconds per real second; scenario time ``epoch`` at real time ``origin``.

    ``origin`` is in the seconds of whichever real clock the caller reads
    (``time.time`` for wall-clock mappings, ``time.monotonic`` for a
    simulator's timers: :meth:`on_clock` moves it from one to the other).
    """

    factor: float = 1.0
    epoch: float = 0.0
    origin: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.factor) and self.factor > 0):
            raise ValueError(f"a time scale's factor must be a positive number, got {self.factor}")
        if not (math.isfinite(self.epoch) and math.isfinite(self.origin)):
            raise ValueError("a time scale's epoch and origin must be finite")

    @classmethod
    def starting_now(cls, factor: float = 1.0, epoch: float | None = None,
                     clock: Callable[[], float] = time.time) -> TimeScale:
        """A scale whose scenario time ``epoch`` (default: now) is the real time now on ``clock``."""
        now = clock()
        return cls(factor, now if epoch is None else epoch, now)

    @property
    def real_time(self) -> bool:
        return self.factor == 1.0

    # -- instants -------------------------------------------------------------------------

    def scenario_at(self, real: float) -> float:
        """Scenario time at real time ``real``."""
        return self.epoch + (real - self.origin) * self.factor

    def real_at(self, scenario: float) -> float:
        """Real time at which scenario time ``scenario`` occurs."""
        return self.origin + (scenario - self.epoch) / self.factor

    def clock(self, real_clock: Callable[[], float] = time.time) -> Callable[[], float]:
        """A clock of scenario time (Unix seconds), read from ``real_clock``."""
        return lambda: self.scenario_at(real_clock())

    def on_clock(self, now_here: float, now_there: float) -> TimeScale:
        """The same scale with ``origin`` on another real clock, given one instant read on both."""
        return replace(self, origin=self.origin - now_here + now_there)

    # -- durations ------------------------------------------------------------------------

    def real_s(self, scenario_s: float) -> float:
        """How long ``scenario_s`` scenario seconds take in real seconds."""
        return scenario_s / self.factor

    def scenario_s(self, real_s: float) -> float:
        return real_s * self.factor

    def real_duration(self, scenario_s: float, minimum: float = 0.0) -> float:
        """``scenario_s`` in real seconds, never under ``minimum`` (a daemon's smallest interval)."""
        return max(minimum, self.real_s(scenario_s))

    @property
    def minute_error_s(self) -> float:
        """How far a time-of-day window may be off, in scenario seconds: one real minute's worth.

        ``DailyWindow`` is minute-granular, so a scenario window is widened to
        whole real minutes: at factor 120 that is up to two scenario hours, at
        factor 1440 a whole scenario day (too coarse for a night window).
        """
        return 60.0 * self.factor

    # -- time-of-day windows --------------------------------------------------------------

    def real_windows(self, start: str, end: str, until: float, *,
                     days: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)) -> list[dict[str, str]]:
        """The real wall-clock windows (``{"start", "end"}``, HH:MM local) at which a daily scenario window occurs.

        ``start``/``end`` are HH:MM of scenario local time (the process's time
        zone, the daemon's too), spanning midnight when ``end < start``; ``days``
        the scenario weekdays it applies to (0 = Monday). ``origin`` is a
        wall-clock (``time.time``) value and ``until`` the real time the run
        ends: one window per scenario occurrence between the two, each widened
        outward to whole real minutes. A window whose start equals its end is
        the whole day: on every day it stays so at any scale. At factor 1 this
        is the window itself.
        """
        a, b = _minute_of_day(start), _minute_of_day(end)
        every_day = set(days) >= set(range(7))
        if self.real_time or (a == b and every_day):
            return [{"start": hhmm(a), "end": hhmm(b)} | ({} if every_day else {"days": sorted(set(days))})]
        length = ((b - a) % 1440 or 1440) * 60.0
        out: list[dict[str, str]] = []
        day = _local_midnight(self.scenario_at(self.origin)) - 86400.0  # a window begun the day before
        last = self.scenario_at(until)
        while day <= last:
            s = time.mktime((*time.localtime(day)[:3], a // 60, a % 60, 0, 0, 0, -1))
            if time.localtime(s).tm_wday in days:
                r0, r1 = self.real_at(s), self.real_at(s + length)
                if r1 > self.origin and r0 < until:
                    lo = math.floor(max(r0, self.origin) / 60.0) * 60.0
                    hi = math.ceil(min(r1, until) / 60.0) * 60.0
                    if hi - lo >= 86400.0:
                        return [{"start": "00:00", "end": "00:00"}]
                    window = {"start": hhmm(_minute_of_real(lo)), "end": hhmm(_minute_of_real(hi))}
                    if window not in out:
                        out.append(window)
            day = _local_midnight(day + 86400.0 + 3600.0)  # +1 h: a 23-hour day at a DST change
        return out


def _minute_of_real(t: float) -> int:
    tm = time.localtime(t)
    return tm.tm_hour * 60 + tm.tm_min
