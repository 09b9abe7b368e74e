"""Finding the meters on an M-Bus segment: primary and secondary (wildcard) search.

Primary search sends SND_NKE to each address (0 to 250) and asks the ones that
acknowledge for a telegram, whose header gives the secondary address.
Garbled acknowledgements mean two meters share a primary address, a classic
commissioning mistake, reported rather than hidden.

Secondary search walks the identification digits as a tree. Selecting
``FFFFFFFF`` (every digit a wildcard) makes every meter answer: silence
means no meter, one clean E5 means one meter (confirmed by reading it at
address 253, since identical E5s can overlap cleanly), garbled bytes mean a
collision, so the search descends into that branch, trying digits 0 to 9 in
the next position. The number of probes grows with the shared prefixes, not
with the size of the id space.
"""

from __future__ import annotations

__all__ = ["FoundMeter", "ScanResult", "scan_primary", "scan_secondary", "ID_DIGITS"]

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from zaas_edge.drivers.mbus.header import LongHeader
from zaas_edge.drivers.mbus.identity import manufacturer_name
from zaas_edge.drivers.mbus.link import MBusLink, ProbeResult
from zaas_edge.drivers.mbus.telegram import SecondarySelection

from zaas_edge.errors import TransientError

ID_DIGITS = 8
Progress = Callable[[float], None]  # fraction of the search done, 0.0 to 1.0


@dataclass(frozen=True, slots=True)
class FoundMeter:
    """A meter seen on the bus, as its telegram header describes it."""

    identification: str
    manufacturer: str
    version: int
    medium: int
    medium_name: str
    secondary: str  # 16 hex digits: what a secondary read selects
    address: int | None  # the primary address it answered at (None: found by secondary search)

    @classmethod
    def from_header(cls, header: LongHeader, address: int | None) -> FoundMeter:
        return cls(header.identification, header.manufacturer, header.version, header.medium,
                   header.medium_name, header.secondary_address, address)

    def suggested_id(self) -> str:
        return f"{self.medium_name.replace('_', '-')}-{self.identification}".lower()

    def config_snippet(self) -> str:
        """A ``meters`` entry of an ``mbus`` driver section for this meter."""
        where = f"address = {self.address}" if self.address is not None else f'secondary = "{self.secondary}"'
        return f'{{ id = "{self.suggested_id()}", {where}, interval_s = 900 }}'

    def as_dict(self) -> dict[str, object]:
        return {"identification": self.identification, "manufacturer": self.manufacturer,
                "maker": manufacturer_name(self.manufacturer), "version": self.version, "medium": self.medium,
                "medium_name": self.medium_name,
                "secondary": self.secondary, "address": self.address}


@dataclass
class ScanResult:
    meters: list[FoundMeter] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # collisions that could not be resolved, silent meters
    probes: int = 0


async def scan_primary(link: MBusLink, addresses: Iterable[int] = range(0, 251),
                       progress: Progress | None = None, result: ScanResult | None = None) -> ScanResult:
    """Probe each primary address; read the header of each meter that answers.

    ``result`` is filled as meters are found: a caller that is interrupted (Ctrl-C)
    still has what the search found so far.
    """
    todo = list(addresses)
    result = ScanResult() if result is None else result
    for k, address in enumerate(todo):
        result.probes += 1
        found = await link.probe_primary(address)
        if found is ProbeResult.COLLISION:
            result.problems.append(f"address {address}: garbled answer, several meters share this address")
        elif found is ProbeResult.SINGLE:
            try:
                readout = await link.read(address)
            except TransientError as exc:
                result.problems.append(f"address {address}: acknowledged SND_NKE but no telegram ({exc})")
            else:
                header = readout.header
                if header is None:
                    result.problems.append(f"address {address}: telegram without identification (CI "
                                           f"0x{readout.telegram.ci:02X})")
                else:
                    result.meters.append(FoundMeter.from_header(header, address))
        if progress is not None:
            progress((k + 1) / len(todo))
    return result


async def scan_secondary(link: MBusLink, progress: Progress | None = None,
                         max_probes: int = 5000, result: ScanResult | None = None) -> ScanResult:
    """Wildcard tree search over the identification digits (``result`` filled as for :func:`scan_primary`)."""
    result = ScanResult() if result is None else result
    seen: set[str] = set()

    async def visit(prefix: str, share: float, start: float) -> None:
        if result.probes >= max_probes:
            return
        mask = prefix + "F" * (ID_DIGITS - len(prefix))
        result.probes += 1
        found = await link.probe_secondary(mask)
        if found is ProbeResult.SINGLE:
            found = await _confirm(link, mask, result, seen)
        if found is ProbeResult.COLLISION:
            if len(prefix) == ID_DIGITS:
                result.problems.append(f"identification {prefix}: several meters share it; "
                                       "select them with manufacturer, version and medium")
            else:
                for digit in "0123456789":
                    await visit(prefix + digit, share / 10, start + share * int(digit) / 10)
        if progress is not None:
            progress(min(1.0, start + share))

    await visit("", 1.0, 0.0)
    if result.probes >= max_probes:
        result.problems.append(f"search stopped after {max_probes} probes: the bus answers to everything "
                               "(noise or a faulty meter?)")
    return result


async def _confirm(link: MBusLink, mask: str, result: ScanResult, seen: set[str]) -> ProbeResult:
    """After one clean E5: read the selected meter; a garbled telegram is a collision after all."""
    found, telegram = await link.identify(mask)
    if found is not ProbeResult.SINGLE:
        if found is ProbeResult.NONE:
            result.problems.append(f"selection {mask}: acknowledged but no telegram at address 253")
        return found
    header = telegram.header if telegram is not None else None
    if not isinstance(header, LongHeader):
        result.problems.append(f"selection {mask}: the answer has no long header")
        return ProbeResult.SINGLE
    selection = SecondarySelection(0x52, mask, None, None, None)
    if not selection.matches(header):
        result.problems.append(f"selection {mask}: meter {header.identification} answered, "
                               "which does not match the selection")
    if header.secondary_address not in seen:
        seen.add(header.secondary_address)
        result.meters.append(FoundMeter.from_header(header, None))
    return ProbeResult.SINGLE
