"""Linky / "bleu" meter customer interface (TIC, Enedis-NOI-CPT_54E) codec.

Sans-I/O: bytes from the serial line in, in any chunking, frames out; and an
encoder for the meter simulator. The serial shell (1200 or 9600 Bd, 7E1) is
the ``tic`` driver (:mod:`.driver`, :class:`TicDriver`), a thin layer over
this; :mod:`.cli` gives ``zaas-edge tic read|decode`` and ``zaas-edge scan tic``.

Typical use::

    decoder = TicDecoder()
    for frame in decoder.feed(port.read(256)):
        if frame.complete and "PAPP" in frame.groups:
            ...  # frame.groups["PAPP"].data == "00680"

On top of the codec, pure too: :func:`interpret` gives a frame's meaning
(readings by quantity, see ``POINTS.md``, and decoded state such as
``STGE``), :func:`tariff_state` the tariff in force and :func:`changes` what
changed, and :class:`AlarmTracker` the over-power and breaker-open alarms::

    interp = interpret(frame)
    state = tariff_state(interp, now, previous=state)
    for t in tracker.update(interp):
        ...  # t.kind, t.active, t.reason, t.values

Malformed groups are rejected one by one (``frame.bad_groups``) and counted
(``decoder.counters``); only :func:`parse_group` and :func:`encode_frame`
raise, and then only :class:`TicError`, a :class:`zaas_edge.errors.ProtocolError`.
"""

from zaas_edge.drivers.tic.alarms import DEFAULT_CLEAR_AFTER, AlarmKind, AlarmTracker, AlarmTransition
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
from zaas_edge.drivers.tic.driver import TicDriver
from zaas_edge.drivers.tic.errors import TicError
from zaas_edge.drivers.tic.labels import MEASURES, Measure, points
from zaas_edge.drivers.tic.meaning import Interpretation, Measurement, MobilePeak, Rejected, interpret
from zaas_edge.drivers.tic.options import TicOptions
from zaas_edge.drivers.tic.status import (
    Breaker,
    ContactAction,
    CplStatus,
    Euridis,
    Relays,
    ScheduleEntry,
    Status,
    TempoColour,
    decode_relays,
    decode_schedule,
    decode_status,
)
from zaas_edge.drivers.tic.tariff import Contract, Period, TariffChange, TariffState, changes, tariff_state

__all__ = [
    "TicDriver",
    "TicOptions",
    "DEFAULT_CLEAR_AFTER",
    "MEASURES",
    "AlarmKind",
    "AlarmTracker",
    "AlarmTransition",
    "Breaker",
    "ContactAction",
    "Contract",
    "CplStatus",
    "Euridis",
    "Interpretation",
    "Measure",
    "Measurement",
    "MobilePeak",
    "Period",
    "Rejected",
    "Relays",
    "ScheduleEntry",
    "Status",
    "TariffChange",
    "TariffState",
    "TempoColour",
    "changes",
    "decode_relays",
    "decode_schedule",
    "decode_status",
    "interpret",
    "points",
    "tariff_state",
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
