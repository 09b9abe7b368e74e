"""The meter's two alarms, over-power and breaker open, each raised once and cleared once.

:class:`AlarmTracker` is a tiny pure state machine fed one
:class:`~zaas_edge.drivers.tic.meaning.Interpretation` per frame; it returns
the :class:`AlarmTransition` values (raise or clear, with a reason and the
values that explain it) for the driver to turn into
:class:`zaas_edge.model.Alarm` records, which sync sends first.

- **Over-power.** Standard mode: ``STGE`` bit 7, "dépassement de la puissance
  de référence en cours", in every frame, so it is raised and cleared as the
  bit goes. Historic mode: ``ADPS`` (single-phase) or ``ADIR1..3``
  (three-phase short frames) are sent *only while* the current is over the
  reference, so the alarm clears after they have been absent from
  ``clear_after`` frames in a row (default 3). One absent frame is not
  enough: a group lost to a bad checksum, or the long frame a three-phase
  meter slips in after every 20 short frames (which never carries ``ADIR``),
  would otherwise clear and re-raise the alarm within seconds. Frames that
  cannot tell (interrupted, ``ADPS`` rejected by its checksum) do not count.
  Three historic frames are about 3 to 6 s at 1200 Bd: well inside the
  meter's own breaking filter (minutes, ENERGY.md §3.1).
- **Breaker open.** Standard mode only (historic frames do not carry the
  breaker state): raised when ``STGE`` bits 1..3 leave "closed", with the
  reason the meter gives (over-power, over-voltage, load shedding, remote
  order, overheating), cleared when it reads closed again. A frame without a
  readable ``STGE`` changes nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from zaas_edge.drivers.tic.codec import Mode
from zaas_edge.drivers.tic.meaning import Interpretation
from zaas_edge.drivers.tic.status import Breaker

__all__ = ["AlarmKind", "AlarmTransition", "AlarmTracker", "DEFAULT_CLEAR_AFTER"]

#: Historic frames without ``ADPS``/``ADIR`` before over-power clears (see the module docstring).
DEFAULT_CLEAR_AFTER = 3

_OVERCURRENT = ("ADPS", "ADIR1", "ADIR2", "ADIR3")


class AlarmKind(enum.StrEnum):
    """The alarm, by a stable name the driver puts into its alarm id (``device.<id>.over_power``)."""

    OVER_POWER = "over_power"
    BREAKER_OPEN = "breaker_open"


def _no_values() -> Mapping[str, float | str]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class AlarmTransition:
    """``kind`` raised (``active``) or cleared, why, and the frame's values that show it.

    ``values`` holds quantities (``apparent_power``, ``breaking_power``,
    ``overcurrent`` ...) and, for the breaker, ``breaker`` (a
    :class:`~zaas_edge.drivers.tic.status.Breaker` value).
    """

    kind: AlarmKind
    active: bool
    reason: str
    values: Mapping[str, float | str] = field(default_factory=_no_values)


_BREAKER_REASON = {
    Breaker.OPEN_OVER_POWER: "the meter opened its breaker on over-power",
    Breaker.OPEN_OVER_VOLTAGE: "the meter opened its breaker on over-voltage",
    Breaker.OPEN_LOAD_SHEDDING: "the meter opened its breaker for load shedding (délestage)",
    Breaker.OPEN_REMOTE_ORDER: "the meter opened its breaker on a CPL or Euridis order",
    Breaker.OPEN_OVERHEAT_HIGH_CURRENT: "the meter opened its breaker on overheating, above the maximum current",
    Breaker.OPEN_OVERHEAT_LOW_CURRENT: "the meter opened its breaker on overheating, below the maximum current",
    Breaker.UNKNOWN: "the meter reports its breaker open for an undefined reason (code 7)",
}

_POWER_VALUES = (
    "apparent_power",
    "apparent_power_l1",
    "apparent_power_l2",
    "apparent_power_l3",
    "reference_power",
    "breaking_power",
    "current_l1",
    "current_l2",
    "current_l3",
    "subscribed_current",
    "overcurrent",
    "overcurrent_l1",
    "overcurrent_l2",
    "overcurrent_l3",
)


def _values(interp: Interpretation) -> dict[str, float | str]:
    return {q: m.value for q in _POWER_VALUES if (m := interp.measurements.get(q)) is not None}


def _over_current(interp: Interpretation) -> list[str]:
    """The over-current labels of this frame: ``ADPS`` whenever sent, ``ADIRn`` unless it reads 0.

    A short frame lists all three ``ADIR`` groups; a phase that is not over
    its setting is taken to read 000, and one whose value is unreadable
    counts as over (the safe side).
    """
    over = ["ADPS"] if "ADPS" in interp.labels else []
    for n in (1, 2, 3):
        label = f"ADIR{n}"
        if label in interp.labels:
            m = interp.measurements.get(f"overcurrent_l{n}")
            if m is None or m.value > 0:
                over.append(label)
    return over


class AlarmTracker:
    """Feed every frame's interpretation to :meth:`update`; act on the transitions it returns."""

    def __init__(self, clear_after: int = DEFAULT_CLEAR_AFTER) -> None:
        if clear_after < 1:
            raise ValueError(f"clear_after must be at least 1 frame, not {clear_after}")
        self.clear_after = clear_after
        self._active: set[AlarmKind] = set()
        self._absent = 0  # historic frames in a row without ADPS/ADIR while over-power is raised

    @property
    def active(self) -> frozenset[AlarmKind]:
        """The alarms raised and not yet cleared."""
        return frozenset(self._active)

    def update(self, interp: Interpretation) -> list[AlarmTransition]:
        """The transitions this frame causes (usually none)."""
        out: list[AlarmTransition] = []
        if interp.mode is Mode.HISTORIC:
            self._historic_over_power(interp, out)
        elif interp.mode is Mode.STANDARD and interp.status is not None:
            status = interp.status
            values = _values(interp)
            if status.over_reference_power:
                self._raise(
                    AlarmKind.OVER_POWER, "the apparent power is over the reference power (STGE bit 7)", values, out
                )
            else:
                self._clear(AlarmKind.OVER_POWER, "the apparent power is back under the reference power", values, out)
            if status.breaker_open:
                self._raise(
                    AlarmKind.BREAKER_OPEN,
                    _BREAKER_REASON[status.breaker],
                    {**values, "breaker": status.breaker.value},
                    out,
                )
            else:
                self._clear(
                    AlarmKind.BREAKER_OPEN,
                    "the meter's breaker is closed again",
                    {**values, "breaker": Breaker.CLOSED.value},
                    out,
                )
        return out

    def _historic_over_power(self, interp: Interpretation, out: list[AlarmTransition]) -> None:
        present = _over_current(interp)
        if present:
            self._absent = 0
            self._raise(
                AlarmKind.OVER_POWER,
                f"the current is over the reference current ({', '.join(present)})",
                _values(interp),
                out,
            )
            return
        if AlarmKind.OVER_POWER not in self._active:
            return
        lost = any(label in interp.bad_labels for label in _OVERCURRENT)
        if not interp.complete or lost:
            return  # this frame cannot say the over-current has ended
        self._absent += 1
        if self._absent >= self.clear_after:
            self._clear(
                AlarmKind.OVER_POWER,
                f"no ADPS/ADIR for {self._absent} frames: the current is back under the reference",
                _values(interp),
                out,
            )

    def _raise(
        self, kind: AlarmKind, reason: str, values: Mapping[str, float | str], out: list[AlarmTransition]
    ) -> None:
        if kind not in self._active:
            self._active.add(kind)
            out.append(AlarmTransition(kind, True, reason, MappingProxyType(dict(values))))

    def _clear(
        self, kind: AlarmKind, reason: str, values: Mapping[str, float | str], out: list[AlarmTransition]
    ) -> None:
        if kind in self._active:
            self._active.discard(kind)
            self._absent = 0
            out.append(AlarmTransition(kind, False, reason, MappingProxyType(dict(values))))
