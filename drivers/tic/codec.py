"""TIC frames and groups: checksum, group parser, streaming decoder, encoder.

On the wire (Enedis-NOI-CPT_54E, see shared/ENERGY.md §3.1)::

    frame     STX  group...  ETX          (EOT instead of ETX: emission interrupted)
    historic  LF label SP data SP cs CR                 1200 Bd 7E1
    standard  LF label HT [horodate HT] data HT cs CR   9600 Bd 7E1

``cs = (sum & 0x3F) + 0x20``. The spec sums label through data, without the
last separator, in historic mode ("mode 1") and label through the last HT in
standard mode ("mode 2"); some older meters use the other zone, so both are
accepted and each acceptance is counted (the two can never both match, they
differ by the separator's value, which is not a multiple of 64).

A group is parsed from its end (checksum, then separator), because data may
hold spaces (``MSG1``, ``LTARF``, ``PJOURF+1``) and is kept byte-exact.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from zaas_edge.drivers.tic.errors import TicError

__all__ = [
    "STX",
    "ETX",
    "EOT",
    "Mode",
    "Variant",
    "Horodate",
    "Group",
    "BadGroup",
    "Frame",
    "Counters",
    "TicDecoder",
    "checksum",
    "parse_group",
    "encode_group",
    "encode_frame",
    "detect_mode",
]

STX = 0x02
ETX = 0x03
EOT = 0x04
LF = 0x0A
CR = 0x0D
SP = 0x20
HT = 0x09

#: Largest frame kept while waiting for its end. The longest real frame, a
#: three-phase producer in standard mode, is about 1442 bytes; anything much
#: longer is a line without ETX and is dropped so memory stays bounded.
MAX_FRAME_BYTES = 4096

_MARKER = re.compile(b"[\x02\x03\x04]")  # STX, ETX, EOT: what ends the frame being read

_WINTER = timezone(timedelta(hours=1))
_SUMMER = timezone(timedelta(hours=2))


class Mode(enum.Enum):
    """The two TIC modes; the value is the line speed (both are 7E1)."""

    HISTORIC = 1200
    STANDARD = 9600

    @property
    def separator(self) -> int:
        return SP if self is Mode.HISTORIC else HT


class Variant(enum.Enum):
    """Which bytes the checksum covers.

    ``MODE1`` stops before the last separator (the historic rule), ``MODE2``
    includes it (the standard rule, and what some older historic meters do).
    """

    MODE1 = 1
    MODE2 = 2

    @staticmethod
    def spec(mode: Mode) -> Variant:
        """The variant the spec prescribes for ``mode``."""
        return Variant.MODE1 if mode is Mode.HISTORIC else Variant.MODE2


def checksum(zone: bytes) -> int:
    """``(sum & 0x3F) + 0x20``: always a printable character, 0x20..0x5F."""
    return (sum(zone) & 0x3F) + 0x20


@dataclass(frozen=True, slots=True)
class Horodate:
    """A standard-mode timestamp ``SAAMMJJhhmmss``.

    ``raw`` is kept so a group re-encodes byte-exact. ``time`` carries the
    meter's offset (``H`` winter = +01:00, ``E`` summer = +02:00), or none when
    the season is ``SP`` (not applicable). ``degraded`` is set when the season
    letter is lower case: the meter's clock is not trusted, so a consumer
    should not align billing windows on it.
    """

    raw: str
    time: datetime
    degraded: bool

    @classmethod
    def parse(cls, raw: str) -> Horodate:
        """Read ``SAAMMJJhhmmss``; a date the calendar refuses is a ``horodate`` error, not a guess."""
        if len(raw) != 13 or not raw[1:].isdigit() or not raw[1:].isascii():
            raise TicError(f"horodate {raw!r} is not SAAMMJJhhmmss", "horodate")
        season = raw[0]
        if season not in "HEhe ":
            raise TicError(f"horodate {raw!r}: season {season!r} is not H, E or SP", "horodate")
        d = [int(raw[i : i + 2]) for i in range(1, 13, 2)]
        try:
            tz = {"H": _WINTER, "E": _SUMMER}.get(season.upper())
            time = datetime(2000 + d[0], d[1], d[2], d[3], d[4], d[5], tzinfo=tz)
        except ValueError as exc:
            raise TicError(f"horodate {raw!r}: {exc}", "horodate") from None
        return cls(raw=raw, time=time, degraded=season.islower())

    @classmethod
    def build(cls, time: datetime, degraded: bool = False) -> Horodate:
        """The horodate a meter would send for ``time`` (aware: +01:00 or +02:00; naive: SP season)."""
        offset = time.utcoffset()
        if offset is None:
            season = " "
        elif offset == timedelta(hours=1):
            season = "h" if degraded else "H"
        elif offset == timedelta(hours=2):
            season = "e" if degraded else "E"
        else:
            raise TicError(f"horodate offset {offset} is neither +01:00 nor +02:00", "horodate")
        if not 2000 <= time.year <= 2099:
            raise TicError(f"horodate year {time.year} outside 2000..2099", "horodate")
        return cls.parse(season + time.strftime("%y%m%d%H%M%S"))


@dataclass(frozen=True, slots=True)
class Group:
    """One information group: ``data`` is the exact text sent, spaces included."""

    label: str
    data: str
    horodate: Horodate | None = None


@dataclass(frozen=True, slots=True)
class BadGroup:
    """A rejected group: what came in, why, and its label when one could be read.

    ``reason`` is one of ``unterminated``, ``shape``, ``checksum``,
    ``horodate``, ``duplicate``, ``junk``.
    """

    raw: bytes
    reason: str
    label: str | None = None


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame between STX and ETX (``complete``), or cut short by EOT or a new STX.

    An incomplete frame still carries its good groups: each group has its own
    checksum, so its values are as trustworthy as in a complete frame; only
    the absence of a label means less. ``mode`` is the mode of its groups
    (``None`` when no group could be read).
    """

    complete: bool
    groups: dict[str, Group]
    bad_groups: list[BadGroup]
    mode: Mode | None

    @property
    def short(self) -> bool:
        """A three-phase historic short frame (sent while a phase is over its setting)."""
        return any(label.startswith("ADIR") for label in self.groups) and "PAPP" not in self.groups


@dataclass(slots=True)
class Counters:
    """What the decoder saw, for diagnostics: a rising count tells a technician what to check.

    ``parity_stripped`` rising means the port is read 8N1 instead of 7E1;
    ``checksum_mode2`` on a historic line (or ``checksum_mode1`` on a standard
    one) is an older meter's checksum rule; ``noise_bytes`` includes the
    first partial frame, which is always dropped.
    """

    bytes_in: int = 0
    parity_stripped: int = 0
    noise_bytes: int = 0
    frames_complete: int = 0
    frames_interrupted: int = 0
    frames_truncated: int = 0
    frames_oversized: int = 0
    groups_ok: int = 0
    groups_bad: int = 0
    checksum_mode1: int = 0
    checksum_mode2: int = 0


def _is_label(text: bytes) -> bool:
    return bool(text) and all(0x21 <= b <= 0x7E for b in text)


def _is_data(text: bytes) -> bool:
    return all(0x20 <= b <= 0x7E for b in text)


def _split(body: bytes, mode: Mode | None) -> tuple[Mode, str, str, str | None, int, bytes]:
    """Cut ``body`` (between LF and CR) from its end: mode, label, data, horodate, cs, checked zone."""
    if len(body) < 3:
        raise TicError(f"group {body!r} is too short", "shape")
    found = Mode.STANDARD if HT in body else Mode.HISTORIC
    if mode is not None and found is not mode:
        raise TicError(f"group {body!r} uses the {found.name.lower()} separator", "shape")
    sep = found.separator
    cs, head = body[-1], body[:-2]
    if body[-2] != sep:
        raise TicError(f"group {body!r}: no separator before the checksum", "shape")
    if found is Mode.HISTORIC:
        cut = head.find(SP)
        if cut < 0:
            raise TicError(f"group {body!r}: no separator after the label", "shape")
        label, data, horodate = head[:cut], head[cut + 1 :], None
    else:
        fields = head.split(b"\t")
        if len(fields) == 2:
            (label, data), horodate = fields, None
        elif len(fields) == 3:
            label, horodate, data = fields
        else:
            raise TicError(f"group {body!r}: {len(fields) + 1} fields", "shape")
    if not _is_label(label) or not _is_data(data) or (horodate is not None and not _is_data(horodate)):
        raise TicError(f"group {body!r}: control or separator character in a field", "shape")
    return (
        found,
        label.decode("ascii"),
        data.decode("ascii"),
        None if horodate is None else horodate.decode("ascii"),
        cs,
        head,
    )


def _parse(body: bytes, mode: Mode | None) -> tuple[Group, Mode, Variant]:
    found, label, data, horodate, cs, head = _split(body, mode)
    if checksum(head) == cs:
        variant = Variant.MODE1
    elif checksum(head + bytes((found.separator,))) == cs:
        variant = Variant.MODE2
    else:
        raise TicError(f"group {label}: checksum {chr(cs)!r} does not match", "checksum")
    return Group(label, data, None if horodate is None else Horodate.parse(horodate)), found, variant


def parse_group(body: bytes, mode: Mode | None = None) -> Group:
    """Parse one group, ``body`` without its LF and CR.

    ``mode=None`` takes the mode from the separator. Raises :class:`TicError`
    (``reason`` ``shape``, ``checksum`` or ``horodate``).
    """
    return _parse(body, mode)[0]


def encode_group(group: Group, mode: Mode, variant: Variant | None = None) -> bytes:
    """``LF ... CR`` for one group; ``variant`` defaults to the spec's rule for ``mode``."""
    variant = variant or Variant.spec(mode)
    label, data = group.label.encode("ascii", "replace"), group.data.encode("ascii", "replace")
    if not group.label.isascii() or not _is_label(label):
        raise TicError(f"label {group.label!r} is not printable ASCII without spaces", "shape")
    if not group.data.isascii() or not _is_data(data):
        raise TicError(f"data {group.data!r} of {group.label} is not printable ASCII", "shape")
    sep = bytes((mode.separator,))
    if group.horodate is not None:
        if mode is Mode.HISTORIC:
            raise TicError(f"group {group.label}: historic mode has no horodate", "shape")
        head = label + sep + group.horodate.raw.encode("ascii") + sep + data
    else:
        head = label + sep + data
    zone = head if variant is Variant.MODE1 else head + sep
    return b"\n" + head + sep + bytes((checksum(zone),)) + b"\r"


def encode_frame(groups: Iterable[Group] | Mapping[str, Group], mode: Mode, variant: Variant | None = None) -> bytes:
    """A whole frame, STX to ETX, as a meter sends it (for the simulator and tests)."""
    items = groups.values() if isinstance(groups, Mapping) else groups
    return bytes((STX,)) + b"".join(encode_group(g, mode, variant) for g in items) + bytes((ETX,))


def _strip(data: bytes, counters: Counters) -> bytes:
    """Clear bit 7: a port read 8N1 delivers the parity bit as the eighth data bit."""
    high = sum(1 for b in data if b & 0x80) if max(data, default=0) & 0x80 else 0
    if high:
        counters.parity_stripped += high
        data = bytes(b & 0x7F for b in data)
    return data


def _groups(body: bytes, mode: Mode | None, counters: Counters, complete: bool) -> Frame:
    """Parse a frame body: reject bad groups one by one, keep every good one."""
    groups: dict[str, Group] = {}
    bad: list[BadGroup] = []
    modes: list[Mode] = []
    pieces = body.split(b"\n")
    if pieces[0]:
        bad.append(BadGroup(pieces[0], "junk"))
    for piece in pieces[1:]:
        end = piece.find(b"\r")
        if end < 0:
            bad.append(BadGroup(piece, "unterminated"))
            continue
        if end + 1 < len(piece):
            bad.append(BadGroup(piece[end + 1 :], "junk"))
        raw = piece[:end]
        try:
            group, found, variant = _parse(raw, mode)
        except TicError as exc:
            cut = min((i for i in (raw.find(SP), raw.find(HT)) if i >= 0), default=-1)
            label = raw[:cut] if cut > 0 and _is_label(raw[:cut]) else None
            bad.append(BadGroup(raw, exc.reason, None if label is None else label.decode("ascii")))
            continue
        if group.label in groups:
            bad.append(BadGroup(raw, "duplicate", group.label))
            continue
        groups[group.label] = group
        modes.append(found)
        if variant is Variant.MODE1:
            counters.checksum_mode1 += 1
        else:
            counters.checksum_mode2 += 1
    counters.groups_ok += len(groups)
    counters.groups_bad += len(bad)
    frame_mode = mode or (max(dict.fromkeys(modes), key=modes.count) if modes else None)
    return Frame(complete=complete, groups=groups, bad_groups=bad, mode=frame_mode)


class TicDecoder:
    """Incremental frame decoder: feed bytes as they come, get the frames they end.

    Bytes before the first STX (the first partial frame, leading NULs, line
    noise) are dropped; a frame longer than ``max_frame`` without an end is
    dropped too, so a line of garbage never grows memory. ``mode=None`` reads
    each group's mode from its separator; a fixed mode rejects the other's
    groups as ``shape``.
    """

    def __init__(self, mode: Mode | None = None, max_frame: int = MAX_FRAME_BYTES) -> None:
        self.mode = mode
        self.max_frame = max_frame
        self.counters = Counters()
        self._buf = bytearray()
        self._inside = False

    def feed(self, data: bytes) -> list[Frame]:
        """Consume ``data``; return every frame that ended in it (complete or cut short)."""
        counters = self.counters
        counters.bytes_in += len(data)
        data = _strip(data, counters)
        frames: list[Frame] = []
        pos, n = 0, len(data)
        while pos < n:
            if not self._inside:
                start = data.find(STX, pos)
                if start < 0:
                    counters.noise_bytes += n - pos
                    break
                counters.noise_bytes += start - pos
                self._inside, pos = True, start + 1
                continue
            found = _MARKER.search(data, pos)
            end = n if found is None else found.start()
            if len(self._buf) + end - pos > self.max_frame:
                # no end in sight: drop what we have and resynchronise on the next STX
                counters.frames_oversized += 1
                self._buf.clear()
                self._inside = False
                pos = end if found is None or data[end] == STX else end + 1
                continue
            self._buf += data[pos:end]
            if found is None:
                break
            marker = data[end]
            body = bytes(self._buf)
            self._buf.clear()
            if marker == ETX:
                counters.frames_complete += 1
                frames.append(_groups(body, self.mode, counters, complete=True))
                self._inside, pos = False, end + 1
            elif marker == EOT:
                counters.frames_interrupted += 1
                frames.append(_groups(body, self.mode, counters, complete=False))
                self._inside, pos = False, end + 1
            else:  # a new STX before this frame ended
                counters.frames_truncated += 1
                frames.append(_groups(body, self.mode, counters, complete=False))
                pos = end + 1
        return frames

    def flush(self) -> Frame | None:
        """End of stream: the frame in progress, if any, as an incomplete frame."""
        if not self._inside:
            return None
        body = bytes(self._buf)
        self._buf.clear()
        self._inside = False
        self.counters.frames_truncated += 1
        return _groups(body, self.mode, self.counters, complete=False)


def detect_mode(data: bytes, min_groups: int = 2) -> Mode | None:
    """Which mode's groups pass their checksum in ``data`` (a few seconds read at one speed).

    Frames are not required: every ``LF ... CR`` is tried, so half a frame is
    enough. Returns the mode with the most passing groups, if at least
    ``min_groups`` pass, else ``None`` (wrong speed, no meter, or noise).
    """
    data = _strip(data, Counters())
    passed = {Mode.HISTORIC: 0, Mode.STANDARD: 0}
    for piece in data.split(b"\n")[1:]:
        end = piece.find(b"\r")
        if end < 0:
            continue
        try:
            _, found, _ = _parse(piece[:end], None)
        except TicError:
            continue
        passed[found] += 1
    best = max(passed, key=lambda m: passed[m])
    return best if passed[best] >= min_groups and passed[best] > passed[_other(best)] else None


def _other(mode: Mode) -> Mode:
    return Mode.STANDARD if mode is Mode.HISTORIC else Mode.HISTORIC
