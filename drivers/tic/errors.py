"""The one error the TIC codec raises.

Anything the codec cannot encode or parse raises :class:`TicError`, a
:class:`~zaas_edge.errors.ProtocolError`, so callers key on the project's
hierarchy only. The streaming decoder never raises for bad line bytes: it
reports them as rejected groups and counters, because a noisy optical or
two-wire TIC link is normal, not exceptional.
"""

from __future__ import annotations

from zaas_edge.errors import ProtocolError

__all__ = ["TicError"]


class TicError(ProtocolError):
    """Bytes or values that are not valid Linky / "bleu" TIC (Enedis-NOI-CPT_54E).

    ``reason`` is a short machine-readable word (``"checksum"``, ``"shape"``,
    ``"horodate"``, ...) so a caller can count rejects by cause without
    parsing the message.
    """

    def __init__(self, message: str, reason: str = "shape") -> None:
        self.reason = reason
        super().__init__(message)
