"""Linky / "bleu" meter customer interface (TIC, Enedis-NOI-CPT_54E) codec.

Sans-I/O: bytes from the serial line in, in any chunking, frames out; and an
encoder for the meter simulator. The serial shell (1200 or 9600 Bd, 7E1) will
be a thin layer over this; no driver is registered yet.

Typical use::

    decoder = TicDecoder()
    for frame in decoder.feed(port.read(256)):
        if frame.complete and "PAPP" in frame.groups:
            ...  # frame.groups["PAPP"].data == "00680"

Malformed groups are rejected one by one (``frame.bad_groups``) and counted
(``decoder.counters``); only :func:`parse_group` and :func:`encode_frame`
raise, and then only :class:`TicError`, a :class:`zaas_edge.errors.ProtocolError`.
"""

from zaas_edge.drivers.tic.codec import (
    EOT,
    ETX,
    STX,
    BadGroup,
    Counters,
    Frame,
    Group,
    Horodate,
    Mode,
    TicDecoder,
    Variant,
    checksum,
    detect_mode,
    encode_frame,
    encode_group,
    parse_group,
)
from zaas_edge.drivers.tic.errors import TicError

__all__ = [
    "EOT",
    "ETX",
    "STX",
    "BadGroup",
    "Counters",
    "Frame",
    "Group",
    "Horodate",
    "Mode",
    "TicDecoder",
    "TicError",
    "Variant",
    "checksum",
    "detect_mode",
    "encode_frame",
    "encode_group",
    "parse_group",
]
