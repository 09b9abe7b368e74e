"""A meter's record layout: fixed by its first good readout, changed only on evidence.

The M-Bus checksum is a byte sum: a telegram mutated on the line (or sent by
a confused meter) can pass it and decode into records the meter never had,
each of which would become a new point with a made-up value. So a meter's set
of records (key and unit) is learned from its first readout and remembered
across restarts; a readout with records outside it is refused and counted,
unless the same new layout comes back :data:`CONFIRM` readouts in a row (a
meter reconfigured) or the meter answers with another identity (replaced), in
which case the new layout is adopted. A readout with fewer records than
known is fine: meters leave out records they have no value for.

Pure: the driver feeds it each readout's layout and acts on the verdict.
"""

from __future__ import annotations

__all__ = ["LayoutGuard", "Verdict", "CONFIRM"]

from collections.abc import Mapping
from enum import Enum

CONFIRM = 3  # readouts in a row with the same new layout before it is believed


class Verdict(Enum):
    OK = "ok"  # within the known layout
    LEARNED = "learned"  # the first layout of this meter (or of its replacement)
    CHANGED = "changed"  # a new layout, confirmed
    REFUSED = "refused"  # records outside the known layout: the readout is not believed


class LayoutGuard:
    """``known`` maps record key to unit (the meter's points); it is updated in place on a change."""

    def __init__(self, known: dict[str, str]) -> None:
        self.known = known
        self._candidate: frozenset[tuple[str, str]] | None = None
        self._seen = 0

    def check(self, layout: Mapping[str, str], *, replaced: bool = False) -> Verdict:
        if not self.known or replaced:
            self._adopt(layout)
            return Verdict.LEARNED
        if all(self.known.get(k) == u for k, u in layout.items()):
            self._candidate, self._seen = None, 0
            return Verdict.OK
        candidate = frozenset(layout.items())
        if candidate == self._candidate:
            self._seen += 1
        else:
            self._candidate, self._seen = candidate, 1
        if self._seen >= CONFIRM:
            self._adopt(layout)
            return Verdict.CHANGED
        return Verdict.REFUSED

    @property
    def pending(self) -> int:
        """How many readouts in a row have shown the current unconfirmed layout (0: none)."""
        return self._seen

    def unknown(self, layout: Mapping[str, str]) -> list[str]:
        """The records of ``layout`` the known layout does not have (or has with another unit)."""
        return sorted(k for k, u in layout.items() if self.known.get(k) != u)

    def _adopt(self, layout: Mapping[str, str]) -> None:
        self.known.clear()
        self.known.update(layout)
        self._candidate, self._seen = None, 0
