"""The one error the M-Bus codec raises.

Every malformed input (bad framing, checksum, truncated record, reserved
code that leaves the length unknown) raises :class:`MBusError`, a
:class:`~zaas_edge.errors.ProtocolError`, so callers key on the project's
hierarchy only. The message says what is wrong and at which byte offset, so a
technician can line it up with a hex dump.
"""

from __future__ import annotations

from zaas_edge.errors import ProtocolError

__all__ = ["MBusError"]


class MBusError(ProtocolError):
    """Bytes that are not valid wired M-Bus (EN 13757-2/-3).

    ``offset`` is the position of the offending byte in the buffer handed to
    the decoder (the whole frame when decoding a frame), or ``None`` when the
    problem is not tied to one byte.
    """

    def __init__(self, message: str, offset: int | None = None) -> None:
        self.offset = offset
        if offset is not None:
            message = f"{message} (at byte {offset})"
        super().__init__(message)
