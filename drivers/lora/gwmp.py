"""Semtech UDP packet forwarder protocol (GWMP), sans I/O.

Every datagram starts with a 4-byte header: protocol version, a 2-byte random
token (opaque: implementations disagree on its byte order, so it is kept as
bytes and echoed as received), and an identifier. PUSH_DATA, PULL_DATA and
TX_ACK then carry the 8-byte gateway EUI; PUSH_DATA, PULL_RESP and TX_ACK a
JSON object.

Versions: 2 is what every current forwarder speaks (PROTOCOL.TXT v1.3+ and
sx1302_hal). Version 1 has the same layout for PUSH_DATA, PUSH_ACK, PULL_DATA
and PULL_ACK (it lacks TX_ACK and leaves the PULL_RESP token unused), so those
four are accepted with version 1 too, and answers echo the request's version.

``parse_datagram`` raises ``ProtocolError`` for anything that is not a valid
datagram. One bad ``rxpk`` entry does not cost the others in the same
PUSH_DATA: it is kept in ``PushData.rejected`` with its reason, so the caller
counts it while the good packets and the gateway statistics still get through.
"""

from __future__ import annotations

__all__ = [
    "Identifier",
    "CrcStatus",
    "RxPacket",
    "GatewayStats",
    "RejectedPacket",
    "PushData",
    "PushAck",
    "PullData",
    "PullAck",
    "PullResp",
    "TxAck",
    "TxPacket",
    "Datagram",
    "PROTOCOL_VERSION",
    "parse_datagram",
    "parse_rxpk",
    "parse_stat",
    "parse_txpk",
    "push_ack",
    "pull_ack",
    "pull_resp",
]

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any

from zaas_edge.errors import ProtocolError

PROTOCOL_VERSION = 2
_HEADER = 4
_EUI = 8
_MAX_PAYLOAD = 255  # a LoRa PHY payload is at most 255 bytes
_DEFAULT_POWER_DBM = 14
_DATR_LORA = re.compile(r"^SF(\d{1,2})BW(\d{2,4})$")
_B64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")


class Identifier(IntEnum):
    PUSH_DATA = 0x00
    PUSH_ACK = 0x01
    PULL_DATA = 0x02
    PULL_RESP = 0x03
    PULL_ACK = 0x04
    TX_ACK = 0x05


# Which identifiers each version may carry with the layout parsed here.
_VERSIONS: dict[int, frozenset[Identifier]] = {
    1: frozenset({Identifier.PUSH_DATA, Identifier.PUSH_ACK, Identifier.PULL_DATA, Identifier.PULL_ACK}),
    2: frozenset(Identifier),
}


class CrcStatus(IntEnum):
    """``rxpk.stat``: the PHY CRC of the received packet."""

    BAD = -1
    NONE = 0  # the packet had no CRC
    OK = 1


@dataclass(frozen=True, slots=True)
class RxPacket:
    """One radio packet received by the gateway (an ``rxpk`` entry)."""

    payload: bytes
    freq_mhz: float
    modulation: str  # "LORA" or "FSK"
    datr: str | int  # "SF7BW125" for LoRa, bits per second for FSK
    crc: CrcStatus
    spreading_factor: int | None = None
    bandwidth_khz: int | None = None
    codr: str | None = None
    rssi_dbm: float | None = None
    snr_db: float | None = None
    tmst: int | None = None  # concentrator microsecond counter, wraps at 2**32
    time: datetime | None = None  # only when the gateway has GPS or NTP time
    chan: int | None = None
    rfch: int | None = None

    @property
    def crc_ok(self) -> bool:
        return self.crc is CrcStatus.OK


@dataclass(frozen=True, slots=True)
class GatewayStats:
    """The ``stat`` object: the gateway's own counters since its last report."""

    time: str | None = None
    lati: float | None = None
    long: float | None = None
    alti: float | None = None
    rxnb: int | None = None
    rxok: int | None = None
    rxfw: int | None = None
    ackr: float | None = None
    dwnb: int | None = None
    txnb: int | None = None
    temp: float | None = None

    def readings(self) -> list[tuple[str, float, str]]:
        """(quantity, value, unit) for every field present, to report the forwarder's health."""
        out: list[tuple[str, float, str]] = []
        for name, quantity, unit in _STAT_READINGS:
            value = getattr(self, name)
            if value is not None:
                out.append((quantity, float(value), unit))
        return out


_STAT_READINGS = (
    ("rxnb", "rx_packets", "count"),
    ("rxok", "rx_crc_ok", "count"),
    ("rxfw", "rx_forwarded", "count"),
    ("ackr", "upstream_acked", "%"),
    ("dwnb", "downlink_datagrams", "count"),
    ("txnb", "tx_packets", "count"),
    ("temp", "temperature", "degC"),
    ("lati", "latitude", "deg"),
    ("long", "longitude", "deg"),
    ("alti", "altitude", "m"),
)


@dataclass(frozen=True, slots=True)
class RejectedPacket:
    """An ``rxpk`` entry that could not be used, with the reason."""

    index: int
    error: ProtocolError


@dataclass(frozen=True, slots=True)
class PushData:
    version: int
    token: bytes
    gateway_eui: bytes
    rxpk: tuple[RxPacket, ...] = ()
    stat: GatewayStats | None = None
    rejected: tuple[RejectedPacket, ...] = ()

    identifier = Identifier.PUSH_DATA


@dataclass(frozen=True, slots=True)
class PushAck:
    version: int
    token: bytes

    identifier = Identifier.PUSH_ACK


@dataclass(frozen=True, slots=True)
class PullData:
    version: int
    token: bytes
    gateway_eui: bytes

    identifier = Identifier.PULL_DATA


@dataclass(frozen=True, slots=True)
class PullAck:
    version: int
    token: bytes

    identifier = Identifier.PULL_ACK


@dataclass(frozen=True, slots=True)
class PullResp:
    version: int
    token: bytes
    txpk: TxPacket

    identifier = Identifier.PULL_RESP


@dataclass(frozen=True, slots=True)
class TxAck:
    """The gateway's answer to a PULL_RESP; ``error`` is None or "NONE" on success."""

    version: int
    token: bytes
    gateway_eui: bytes
    error: str | None = None
    warning: str | None = None
    ack: Mapping[str, Any] = field(default_factory=dict)

    identifier = Identifier.TX_ACK

    @property
    def ok(self) -> bool:
        return self.error in (None, "NONE")


Datagram = PushData | PushAck | PullData | PullAck | PullResp | TxAck


@dataclass(frozen=True, slots=True)
class TxPacket:
    """A packet for the gateway to send (``txpk``), e.g. an OTAA join accept.

    ``tmst`` schedules on the concentrator counter (join accept: the join
    request's ``tmst`` plus 5 or 6 s); ``immediate`` sends at once.
    """

    payload: bytes
    freq_mhz: float
    datr: str | int
    rfch: int = 0
    power_dbm: int = _DEFAULT_POWER_DBM
    tmst: int | None = None
    immediate: bool = False
    modulation: str = "LORA"
    codr: str = "4/5"
    ipol: bool = True  # downlinks to end devices use inverted polarity
    fdev: int | None = None  # FSK frequency deviation in Hz

    def to_json(self) -> dict[str, Any]:
        if self.tmst is None and not self.immediate:
            raise ValueError("a txpk needs either tmst or immediate=True")
        if not 0 < len(self.payload) <= _MAX_PAYLOAD:
            raise ValueError(f"txpk payload must be 1..{_MAX_PAYLOAD} bytes, got {len(self.payload)}")
        obj: dict[str, Any] = {"imme": True} if self.immediate else {"tmst": self.tmst}
        obj.update(freq=self.freq_mhz, rfch=self.rfch, powe=self.power_dbm, modu=self.modulation, datr=self.datr)
        if self.modulation == "LORA":
            obj.update(codr=self.codr, ipol=self.ipol)
        elif self.fdev is not None:
            obj.update(fdev=self.fdev)
        obj.update(size=len(self.payload), data=base64.b64encode(self.payload).decode("ascii"))
        return obj


# ---------------------------------------------------------------- answers


def _check_token(token: bytes) -> bytes:
    if len(token) != 2:
        raise ValueError(f"a GWMP token is 2 bytes, got {len(token)}")
    return bytes(token)


def push_ack(token: bytes, version: int = PROTOCOL_VERSION) -> bytes:
    """The PUSH_ACK for a PUSH_DATA: the same version and token."""
    return bytes([version]) + _check_token(token) + bytes([Identifier.PUSH_ACK])


def pull_ack(token: bytes, version: int = PROTOCOL_VERSION) -> bytes:
    """The PULL_ACK for a PULL_DATA: the same version and token."""
    return bytes([version]) + _check_token(token) + bytes([Identifier.PULL_ACK])


def pull_resp(token: bytes, txpk: TxPacket) -> bytes:
    """A PULL_RESP asking the gateway to send ``txpk``; the gateway answers TX_ACK with ``token``."""
    body = json.dumps({"txpk": txpk.to_json()}, separators=(",", ":")).encode("utf-8")
    return bytes([PROTOCOL_VERSION]) + _check_token(token) + bytes([Identifier.PULL_RESP]) + body


# ---------------------------------------------------------------- parsing


def parse_datagram(data: bytes) -> Datagram:
    """Decode one UDP datagram; raise ``ProtocolError`` saying what is wrong."""
    if len(data) < _HEADER:
        raise ProtocolError(f"GWMP datagram too short: {len(data)} bytes, the header alone is {_HEADER}")
    version, token, ident = data[0], bytes(data[1:3]), data[3]
    if version not in _VERSIONS:
        raise ProtocolError(f"GWMP protocol version {version} not supported (expected 1 or 2)")
    try:
        identifier = Identifier(ident)
    except ValueError:
        raise ProtocolError(f"unknown GWMP identifier 0x{ident:02x}") from None
    if identifier not in _VERSIONS[version]:
        raise ProtocolError(f"GWMP {identifier.name} is not defined in protocol version {version}")
    rest = bytes(data[_HEADER:])

    if identifier in (Identifier.PUSH_ACK, Identifier.PULL_ACK):
        if rest:
            raise ProtocolError(f"GWMP {identifier.name} has {len(rest)} unexpected bytes after the header")
        return (PushAck if identifier is Identifier.PUSH_ACK else PullAck)(version, token)

    if identifier is Identifier.PULL_RESP:
        obj = _json_object(rest, identifier)
        txpk = obj.get("txpk")
        if not isinstance(txpk, dict):
            raise ProtocolError("GWMP PULL_RESP has no 'txpk' object")
        try:
            return PullResp(version, token, parse_txpk(txpk))
        except ProtocolError as exc:
            raise ProtocolError(f"GWMP PULL_RESP txpk: {exc}") from None

    if len(rest) < _EUI:
        raise ProtocolError(f"GWMP {identifier.name} too short for the 8-byte gateway EUI: {len(rest)} bytes")
    eui, body = rest[:_EUI], rest[_EUI:]

    if identifier is Identifier.PULL_DATA:
        if body:
            raise ProtocolError(f"GWMP PULL_DATA has {len(body)} unexpected bytes after the gateway EUI")
        return PullData(version, token, eui)

    if identifier is Identifier.TX_ACK:
        # The JSON is optional: older forwarders send an empty TX_ACK on success.
        if not body.strip(b"\x00 \t\r\n"):
            return TxAck(version, token, eui)
        obj = _json_object(body, identifier)
        ack = obj.get("txpk_ack", {})
        if not isinstance(ack, dict):
            raise ProtocolError("GWMP TX_ACK 'txpk_ack' is not an object")
        error, warning = ack.get("error"), ack.get("warn")
        return TxAck(version, token, eui, error if isinstance(error, str) else None,
                     warning if isinstance(warning, str) else None, ack)

    # PUSH_DATA
    obj = _json_object(body, identifier)
    rxpk_json = obj.get("rxpk", [])
    if not isinstance(rxpk_json, list):
        raise ProtocolError("GWMP PUSH_DATA 'rxpk' is not an array")
    packets: list[RxPacket] = []
    rejected: list[RejectedPacket] = []
    for index, item in enumerate(rxpk_json):
        try:
            packets.append(parse_rxpk(item))
        except ProtocolError as exc:
            rejected.append(RejectedPacket(index, ProtocolError(f"rxpk[{index}]: {exc}")))
    stat_json = obj.get("stat")
    stat = parse_stat(stat_json) if stat_json is not None else None
    return PushData(version, token, eui, tuple(packets), stat, tuple(rejected))


def _json_object(body: bytes, identifier: Identifier) -> dict[str, Any]:
    # Some forwarders pad the datagram with a trailing NUL; it is not part of the JSON.
    text = body.rstrip(b"\x00")
    try:
        obj = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"GWMP {identifier.name} body is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"GWMP {identifier.name} body is JSON {type(obj).__name__}, not an object")
    return obj


def _number(obj: Mapping[str, Any], key: str, *, required: bool = False, integer: bool = False) -> Any:
    value = obj.get(key)
    if value is None:
        if required:
            raise ProtocolError(f"missing '{key}'")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"'{key}' is {type(value).__name__} {value!r}, not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ProtocolError(f"'{key}' is not finite: {value!r}")
    if integer:
        if isinstance(value, float):
            if not value.is_integer():
                raise ProtocolError(f"'{key}' must be an integer, got {value!r}")
            value = int(value)
    return value


def _decode_base64(text: Any, what: str = "data") -> bytes:
    """Standard base64, padding optional (PROTOCOL.TXT allows both); anything else is refused."""
    if not isinstance(text, str):
        raise ProtocolError(f"'{what}' is {type(text).__name__}, not a base64 string")
    if not _B64.match(text) or len(text.rstrip("=")) % 4 == 1:
        raise ProtocolError(f"'{what}' is not valid base64: {text[:40]!r}")
    padded = text.rstrip("=")
    padded += "=" * (-len(padded) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError(f"'{what}' is not valid base64: {exc}") from None


def parse_rxpk(obj: Any) -> RxPacket:
    """One ``rxpk`` entry; ``size`` must match the decoded payload."""
    if not isinstance(obj, dict):
        raise ProtocolError(f"entry is JSON {type(obj).__name__}, not an object")
    payload = _decode_base64(obj.get("data"), "data")
    size = _number(obj, "size", integer=True)
    if size is not None and size != len(payload):
        raise ProtocolError(f"'size' is {size} but 'data' decodes to {len(payload)} bytes")
    freq = _number(obj, "freq", required=True)
    stat = _number(obj, "stat", integer=True)
    try:
        crc = CrcStatus(stat if stat is not None else 1)
    except ValueError:
        raise ProtocolError(f"'stat' must be 1, 0 or -1, got {stat!r}") from None
    modulation = obj.get("modu", "LORA")
    if modulation not in ("LORA", "FSK"):
        raise ProtocolError(f"'modu' must be LORA or FSK, got {modulation!r}")
    datr = obj.get("datr")
    sf = bw = None
    if modulation == "LORA":
        if not isinstance(datr, str) or not (m := _DATR_LORA.match(datr)):
            raise ProtocolError(f"LoRa 'datr' must look like SF7BW125, got {datr!r}")
        sf, bw = int(m.group(1)), int(m.group(2))
    else:
        datr = _number(obj, "datr", required=True, integer=True)
    codr = obj.get("codr")
    if codr is not None and not isinstance(codr, str):
        raise ProtocolError(f"'codr' must be a string like 4/5, got {codr!r}")
    return RxPacket(
        payload=payload,
        freq_mhz=float(freq),
        modulation=modulation,
        datr=datr,
        crc=crc,
        spreading_factor=sf,
        bandwidth_khz=bw,
        codr=codr,
        rssi_dbm=_optional_float(obj, "rssi"),
        snr_db=_optional_float(obj, "lsnr"),
        tmst=_number(obj, "tmst", integer=True),
        time=_parse_time(obj.get("time")),
        chan=_number(obj, "chan", integer=True),
        rfch=_number(obj, "rfch", integer=True),
    )


def parse_txpk(obj: Mapping[str, Any]) -> TxPacket:
    """A ``txpk`` object, as a gateway (or the simulator standing in for one) receives it."""
    payload = _decode_base64(obj.get("data"), "data")
    size = _number(obj, "size", integer=True)
    if size is not None and size != len(payload):
        raise ProtocolError(f"'size' is {size} but 'data' decodes to {len(payload)} bytes")
    modulation = obj.get("modu", "LORA")
    if modulation not in ("LORA", "FSK"):
        raise ProtocolError(f"'modu' must be LORA or FSK, got {modulation!r}")
    datr = obj.get("datr")
    if modulation == "LORA":
        if not isinstance(datr, str) or not _DATR_LORA.match(datr):
            raise ProtocolError(f"LoRa 'datr' must look like SF7BW125, got {datr!r}")
    else:
        datr = _number(obj, "datr", required=True, integer=True)
    immediate = obj.get("imme", False) is True
    tmst = _number(obj, "tmst", integer=True)
    if not immediate and tmst is None:
        raise ProtocolError("txpk has neither 'imme' nor 'tmst'")
    codr = obj.get("codr", "4/5")
    return TxPacket(
        payload=payload,
        freq_mhz=float(_number(obj, "freq", required=True)),
        datr=datr,
        rfch=_default(_number(obj, "rfch", integer=True), 0),
        power_dbm=_default(_number(obj, "powe", integer=True), _DEFAULT_POWER_DBM),
        tmst=tmst,
        immediate=immediate,
        modulation=modulation,
        codr=codr if isinstance(codr, str) else "4/5",
        ipol=obj.get("ipol", False) is True,
        fdev=_number(obj, "fdev", integer=True),
    )


def _default(value: Any, default: Any) -> Any:
    return default if value is None else value


def _optional_float(obj: Mapping[str, Any], key: str) -> float | None:
    value = _number(obj, key)
    return None if value is None else float(value)


def _parse_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProtocolError(f"'time' is {type(value).__name__}, not an ISO 8601 string")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ProtocolError(f"'time' is not ISO 8601: {value[:40]!r}") from None


def parse_stat(obj: Any) -> GatewayStats:
    """The ``stat`` object of a PUSH_DATA (every field optional)."""
    if not isinstance(obj, dict):
        raise ProtocolError(f"GWMP 'stat' is JSON {type(obj).__name__}, not an object")
    time = obj.get("time")
    return GatewayStats(
        time=time if isinstance(time, str) else None,
        lati=_number(obj, "lati"),
        long=_number(obj, "long"),
        alti=_number(obj, "alti"),
        rxnb=_number(obj, "rxnb", integer=True),
        rxok=_number(obj, "rxok", integer=True),
        rxfw=_number(obj, "rxfw", integer=True),
        ackr=_number(obj, "ackr"),
        dwnb=_number(obj, "dwnb", integer=True),
        txnb=_number(obj, "txnb", integer=True),
        temp=_number(obj, "temp"),
    )
