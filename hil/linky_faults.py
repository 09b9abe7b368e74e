"""Line faults a simulated Linky puts on its frames on request, as a pure function of the groups.

Each fault costs exactly what it says, so a test can assert the decoder's
answer group by group:

- ``noise``: bytes between frames (before this frame's STX), never an STX;
  a decoder drops them (``noise_bytes``) and loses no group.
- ``bad_checksum``: one group's checksum character changed (the group named
  ``label``, else the ``at``-th, else the first); that group alone is rejected.
- ``eot``: the emission is interrupted after ``at`` groups (default: half),
  EOT instead of the rest and ETX: an incomplete frame with only good groups.
- ``partial``: the frame stops in the middle of group ``at`` with neither ETX
  nor EOT; the next STX ends it: one ``unterminated`` group.
- ``tail``: only the second half of the frame, from the middle of group
  ``at`` to ETX, no STX: what a reader that opens the port mid-frame sees.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from zaas_edge.drivers.tic import EOT, ETX, STX, Group, Mode, Variant, encode_group

__all__ = ["FaultKind", "Fault", "DEFAULT_NOISE", "render"]

#: Line noise: a NUL run (the adapter powering up), a bit of everything printable, a stray CR LF.
DEFAULT_NOISE = b"\x00\x00\x7f#~ NOISE\r\n\x1b\x11"


class FaultKind(enum.Enum):
    NOISE = "noise"
    BAD_CHECKSUM = "bad_checksum"
    EOT = "eot"
    PARTIAL = "partial"
    TAIL = "tail"


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault for one frame; ``label``/``at`` choose the group, ``noise`` the bytes of ``noise``."""

    kind: FaultKind
    label: str | None = None
    at: int | None = None
    noise: bytes = DEFAULT_NOISE

    def __post_init__(self) -> None:
        if STX in self.noise:
            raise ValueError("noise must not hold STX: it would start a frame")


def _target(groups: Sequence[Group], fault: Fault, default: int) -> int:
    if fault.label is not None:
        for i, g in enumerate(groups):
            if g.label == fault.label:
                return i
        raise ValueError(f"no group {fault.label} in this frame")
    at = default if fault.at is None else fault.at
    if not 0 <= at < len(groups):
        raise ValueError(f"group {at} outside a frame of {len(groups)}")
    return at


def _bad(encoded: bytes) -> bytes:
    """Replace the checksum (the byte before CR) by the next printable one: neither variant matches it."""
    cs = encoded[-2]
    return encoded[:-2] + bytes(((cs - 0x20 + 1) % 64 + 0x20,)) + encoded[-1:]


def render(groups: Sequence[Group], mode: Mode, variant: Variant | None = None,
           faults: Sequence[Fault] = ()) -> bytes:
    """The bytes of one frame with ``faults`` applied (several may combine: noise plus one cut)."""
    encoded = [encode_group(g, mode, variant) for g in groups]
    prefix = b""
    end = bytes((ETX,))
    start = bytes((STX,))
    for fault in faults:
        if fault.kind is FaultKind.NOISE:
            prefix += fault.noise
        elif fault.kind is FaultKind.BAD_CHECKSUM:
            i = _target(groups, fault, 0)
            encoded[i] = _bad(encoded[i])
        elif fault.kind is FaultKind.EOT:
            i = _target(groups, fault, len(groups) // 2)
            encoded, end = encoded[:i], bytes((EOT,))
        elif fault.kind is FaultKind.PARTIAL:
            i = _target(groups, fault, len(groups) // 2)
            encoded, end = encoded[:i] + [encoded[i][: len(encoded[i]) // 2]], b""
        else:  # TAIL
            i = _target(groups, fault, len(groups) // 2)
            encoded, start = [encoded[i][len(encoded[i]) // 2 :]] + encoded[i + 1 :], b""
    return prefix + start + b"".join(encoded) + end
