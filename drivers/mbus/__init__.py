"""Wired M-Bus codec (EN 13757-2 link layer, EN 13757-3 application layer).

Sans-I/O: bytes in, frozen values out, and builders for the bytes a master
sends. The serial driver and the meter simulator are thin shells over this.

Typical read of a meter::

    parser = FrameParser()
    port.write(req_ud2(address, fcb))
    for frame in parser.feed(port.read(...)):
        telegram = decode_frame(frame)           # VariableDataTelegram, ...
        for key, record in telegram.by_key().items():
            ...  # record.value in record.unit

The I/O shell: :mod:`.link` (the link protocol over a serial port),
:mod:`.scan` (primary and secondary search), :mod:`.driver` (the ``mbus``
driver) and :mod:`.cli` (``zaas-edge scan mbus``, ``zaas-edge mbus ...``).

Everything malformed raises :class:`MBusError`, a
:class:`zaas_edge.errors.ProtocolError`.
"""

from zaas_edge.drivers.mbus.driver import MBusDriver  # noqa: E402
from zaas_edge.drivers.mbus.encode import (
    RecordSpec,
    encode_fixed_data,
    encode_record,
    encode_records,
    encode_variable_data,
    rsp_ud,
    spec_from_record,
)
from zaas_edge.drivers.mbus.errors import MBusError
from zaas_edge.drivers.mbus.frames import (
    Ack,
    ControlFrame,
    Frame,
    FrameParser,
    LongFrame,
    ShortFrame,
    application_reset,
    encode_frame,
    parse_frame,
    req_ud1,
    req_ud2,
    select_secondary,
    set_primary_address,
    snd_nke,
    snd_ud,
)
from zaas_edge.drivers.mbus.header import (
    LongHeader,
    ShortHeader,
    decode_manufacturer,
    encode_manufacturer,
    medium_name,
)
from zaas_edge.drivers.mbus.options import MBusOptions, MeterOptions  # noqa: E402 - after the codec
from zaas_edge.drivers.mbus.records import Coding, DataRecord, Function, parse_records
from zaas_edge.drivers.mbus.telegram import (
    AlarmStatus,
    ApplicationError,
    FixedDataTelegram,
    SecondarySelection,
    Telegram,
    VariableDataTelegram,
    decode_frame,
    decode_telegram,
    decode_user_data,
)
from zaas_edge.drivers.mbus.units import convert

__all__ = [
    "MBusError",
    # link layer
    "Ack",
    "ShortFrame",
    "ControlFrame",
    "LongFrame",
    "Frame",
    "FrameParser",
    "parse_frame",
    "encode_frame",
    "snd_nke",
    "req_ud1",
    "req_ud2",
    "snd_ud",
    "application_reset",
    "select_secondary",
    "set_primary_address",
    "rsp_ud",
    # application layer
    "LongHeader",
    "ShortHeader",
    "decode_manufacturer",
    "encode_manufacturer",
    "medium_name",
    "Coding",
    "Function",
    "DataRecord",
    "parse_records",
    "VariableDataTelegram",
    "FixedDataTelegram",
    "ApplicationError",
    "AlarmStatus",
    "SecondarySelection",
    "Telegram",
    "decode_user_data",
    "decode_frame",
    "decode_telegram",
    # encoding
    "RecordSpec",
    "encode_record",
    "encode_records",
    "encode_variable_data",
    "encode_fixed_data",
    "spec_from_record",
    # units
    "convert",
    # the driver (link, scan and cli are imported where used: they are the I/O shell)
    "MBusDriver",
    "MBusOptions",
    "MeterOptions",
]
