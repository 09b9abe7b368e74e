"""Modbus driver: the pure core (register decoding, read planning, device profiles)
and the I/O shell around it.

The pure core:

* ``decode``: registers to values and back, sentinels, scale factors;
* ``cost``: what a request costs on the wire, per transport;
* ``plan``: the cheapest requests in bus time, splitting on exception 02,
  per-point poll intervals without drift; ``explain`` reports a plan;
* ``profile``: TOML device profiles and the built-in library;
* ``layout``: what a profile and a configuration make of a device (entries,
  decoders, plan, intervals), built once and shared by every device with the
  same.

The shell: ``options`` (configuration), ``transport`` (the only module that
talks to pymodbus), ``bus`` (one request at a time on a serial line, a
bounded pool on TCP), ``device`` (polling, health, writes) and ``driver``
(``ModbusDriver``, registered as the ``modbus`` driver); ``cli`` adds the
technician's commands.
"""

from __future__ import annotations

from .cost import RequestCost
from .decode import (
    DataType,
    Decoded,
    RegisterSpec,
    SentinelPolicy,
    WordOrder,
    decode_bits,
    decode_raw,
    decode_scale_factor,
    decode_string,
    decode_value,
    encode_bits,
    encode_raw,
    encode_string,
    encode_value,
    register_count,
)
from .driver import ModbusDriver
from .options import DeviceOptions, ModbusOptions
from .plan import MAX_BITS, MAX_REGISTERS, Block, Plan, ReadPoint, Scheduler, Table, cheapest, coalesce
from .profile import Profile, ProfilePoint, get_profile, load_profile, load_profiles, parse_profile

__all__ = [
    "DataType",
    "Decoded",
    "RegisterSpec",
    "SentinelPolicy",
    "WordOrder",
    "decode_bits",
    "decode_raw",
    "decode_scale_factor",
    "decode_string",
    "decode_value",
    "encode_bits",
    "encode_raw",
    "encode_string",
    "encode_value",
    "register_count",
    "MAX_BITS",
    "MAX_REGISTERS",
    "Block",
    "Plan",
    "ReadPoint",
    "Scheduler",
    "Table",
    "coalesce",
    "cheapest",
    "RequestCost",
    "Profile",
    "ProfilePoint",
    "get_profile",
    "load_profile",
    "load_profiles",
    "parse_profile",
    "DeviceOptions",
    "ModbusOptions",
    "ModbusDriver",
]
