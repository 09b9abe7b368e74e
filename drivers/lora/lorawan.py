"""LoRaWAN 1.0.x frames (PHYPayload), sans I/O: parse, check the MIC, decrypt, build.

Byte orders, because every source prints them differently: on air, DevAddr,
FCnt, DevNonce and the EUIs are little-endian. Here DevAddr is an ``int`` (the
value people write MSB-first, ``0x49BE7DF1``) and EUIs are ``bytes`` in the
MSB-first order they are printed on labels; keys are ``bytes`` exactly as
written in hex (AES keys have no byte order).

The frame carries only the low 16 bits of the frame counter; the MIC and the
keystream use all 32. The caller reconstructs them (``fcnt.py``) and passes
``fcnt32``; the MIC then confirms the guess.
"""

from __future__ import annotations

__all__ = [
    "MType",
    "FCtrl",
    "DataFrame",
    "JoinRequest",
    "JoinAccept",
    "Proprietary",
    "Frame",
    "parse_phy_payload",
    "compute_mic",
    "verify_mic",
    "crypt_frm_payload",
    "open_frame",
    "build_data_frame",
    "join_request_mic",
    "verify_join_request_mic",
]

import hmac
from dataclasses import dataclass
from enum import IntEnum

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from zaas_edge.errors import ProtocolError

_MIC = 4
_FHDR_MIN = 7  # DevAddr 4 + FCtrl 1 + FCnt 2
_DATA_MIN = 1 + _FHDR_MIN + _MIC
_JOIN_REQUEST_LEN = 1 + 8 + 8 + 2 + _MIC
_JOIN_ACCEPT_LENS = (17, 33)  # without / with CFList
_MAX_PHY = 255


class MType(IntEnum):
    JOIN_REQUEST = 0
    JOIN_ACCEPT = 1
    UNCONFIRMED_DATA_UP = 2
    UNCONFIRMED_DATA_DOWN = 3
    CONFIRMED_DATA_UP = 4
    CONFIRMED_DATA_DOWN = 5
    RFU = 6
    PROPRIETARY = 7

    @property
    def is_data(self) -> bool:
        return MType.UNCONFIRMED_DATA_UP <= self <= MType.CONFIRMED_DATA_DOWN

    @property
    def uplink(self) -> bool:
        return self in (MType.JOIN_REQUEST, MType.UNCONFIRMED_DATA_UP, MType.CONFIRMED_DATA_UP)


@dataclass(frozen=True, slots=True)
class FCtrl:
    """Frame control. Bit 4 is FPending on downlinks and ClassB on uplinks (1.0.2+)."""

    adr: bool = False
    adr_ack_req: bool = False  # uplink only; RFU on downlinks
    ack: bool = False
    f_pending: bool = False  # downlink FPending / uplink ClassB
    fopts_len: int = 0

    @classmethod
    def from_byte(cls, value: int) -> FCtrl:
        return cls(bool(value & 0x80), bool(value & 0x40), bool(value & 0x20), bool(value & 0x10), value & 0x0F)

    def to_byte(self) -> int:
        if not 0 <= self.fopts_len <= 15:
            raise ValueError(f"FOptsLen must be 0..15, got {self.fopts_len}")
        return (self.adr << 7) | (self.adr_ack_req << 6) | (self.ack << 5) | (self.f_pending << 4) | self.fopts_len

    @property
    def class_b(self) -> bool:
        return self.f_pending


@dataclass(frozen=True, slots=True)
class DataFrame:
    """A data frame (up or down), FRMPayload still encrypted as it was on air."""

    mtype: MType
    major: int
    dev_addr: int
    fctrl: FCtrl
    fcnt16: int
    fopts: bytes
    fport: int | None
    frm_payload: bytes
    mic: bytes
    raw: bytes

    @property
    def uplink(self) -> bool:
        return self.mtype.uplink

    @property
    def confirmed(self) -> bool:
        return self.mtype in (MType.CONFIRMED_DATA_UP, MType.CONFIRMED_DATA_DOWN)

    @property
    def dev_addr_hex(self) -> str:
        return f"{self.dev_addr:08X}"


@dataclass(frozen=True, slots=True)
class JoinRequest:
    """OTAA join request; JoinEUI (AppEUI in 1.0) and DevEUI MSB-first as printed."""

    major: int
    join_eui: bytes
    dev_eui: bytes
    dev_nonce: int
    mic: bytes
    raw: bytes

    mtype = MType.JOIN_REQUEST


@dataclass(frozen=True, slots=True)
class JoinAccept:
    """A join accept is encrypted whole with the AppKey; only its header is readable here."""

    major: int
    encrypted: bytes
    raw: bytes

    mtype = MType.JOIN_ACCEPT


@dataclass(frozen=True, slots=True)
class Proprietary:
    major: int
    payload: bytes
    raw: bytes

    mtype = MType.PROPRIETARY


Frame = DataFrame | JoinRequest | JoinAccept | Proprietary


def parse_phy_payload(data: bytes) -> Frame:
    """Split a PHYPayload into its fields; raise ``ProtocolError`` when it cannot be a LoRaWAN 1.0 frame."""
    data = bytes(data)
    if not data:
        raise ProtocolError("empty LoRaWAN PHYPayload")
    if len(data) > _MAX_PHY:
        raise ProtocolError(f"LoRaWAN PHYPayload of {len(data)} bytes exceeds {_MAX_PHY}")
    mhdr = data[0]
    mtype, major = MType(mhdr >> 5), mhdr & 0x03
    if mhdr & 0x1C:
        raise ProtocolError(f"LoRaWAN MHDR 0x{mhdr:02x} has RFU bits set")
    if major != 0:
        raise ProtocolError(f"LoRaWAN major version {major} not supported (only LoRaWAN R1 = 0)")
    if mtype is MType.RFU:
        raise ProtocolError("LoRaWAN MType 6 is reserved (RFU)")
    if mtype is MType.PROPRIETARY:
        return Proprietary(major, data[1:], data)
    if mtype is MType.JOIN_REQUEST:
        if len(data) != _JOIN_REQUEST_LEN:
            raise ProtocolError(f"LoRaWAN join request must be {_JOIN_REQUEST_LEN} bytes, got {len(data)}")
        return JoinRequest(
            major=major,
            join_eui=data[1:9][::-1],
            dev_eui=data[9:17][::-1],
            dev_nonce=int.from_bytes(data[17:19], "little"),
            mic=data[19:23],
            raw=data,
        )
    if mtype is MType.JOIN_ACCEPT:
        if len(data) not in _JOIN_ACCEPT_LENS:
            raise ProtocolError(f"LoRaWAN join accept must be 17 or 33 bytes, got {len(data)}")
        return JoinAccept(major, data[1:], data)

    if len(data) < _DATA_MIN:
        raise ProtocolError(f"LoRaWAN data frame too short: {len(data)} bytes, at least {_DATA_MIN}")
    fctrl = FCtrl.from_byte(data[5])
    fopts_end = 1 + _FHDR_MIN + fctrl.fopts_len
    body_end = len(data) - _MIC
    if fopts_end > body_end:
        raise ProtocolError(
            f"LoRaWAN FOptsLen {fctrl.fopts_len} runs past the end of a {len(data)}-byte frame"
        )
    fport: int | None = None
    frm_payload = b""
    if body_end > fopts_end:
        fport = data[fopts_end]
        frm_payload = data[fopts_end + 1 : body_end]
    if fport == 0 and fctrl.fopts_len:
        raise ProtocolError("LoRaWAN frame has MAC commands both in FOpts and on FPort 0")
    return DataFrame(
        mtype=mtype,
        major=major,
        dev_addr=int.from_bytes(data[1:5], "little"),
        fctrl=fctrl,
        fcnt16=int.from_bytes(data[6:8], "little"),
        fopts=data[8:fopts_end],
        fport=fport,
        frm_payload=frm_payload,
        mic=data[body_end:],
        raw=data,
    )


# ---------------------------------------------------------------- crypto


def _check_key(key: bytes, name: str) -> bytes:
    if not isinstance(key, (bytes, bytearray)) or len(key) != 16:
        raise ValueError(f"{name} must be 16 bytes (32 hex digits)")
    return bytes(key)


def _cmac(key: bytes, message: bytes) -> bytes:
    mac = CMAC(algorithms.AES(key))
    mac.update(message)
    return mac.finalize()


def _block(prefix: int, uplink: bool, dev_addr: int, fcnt32: int, last: int) -> bytes:
    """The B0 (MIC) and Ai (keystream) blocks share this layout."""
    return (
        bytes([prefix, 0, 0, 0, 0, 0 if uplink else 1])
        + (dev_addr & 0xFFFFFFFF).to_bytes(4, "little")
        + (fcnt32 & 0xFFFFFFFF).to_bytes(4, "little")
        + bytes([0, last])
    )


def compute_mic(nwk_skey: bytes, frame: DataFrame, fcnt32: int) -> bytes:
    """MIC of a data frame: AES-CMAC over B0 | MHDR..FRMPayload, first 4 bytes."""
    _check_key(nwk_skey, "NwkSKey")
    msg = frame.raw[:-_MIC]
    b0 = _block(0x49, frame.uplink, frame.dev_addr, fcnt32, len(msg))
    return _cmac(nwk_skey, b0 + msg)[:_MIC]


def verify_mic(nwk_skey: bytes, frame: DataFrame, fcnt32: int) -> bool:
    return hmac.compare_digest(compute_mic(nwk_skey, frame, fcnt32), frame.mic)


def crypt_frm_payload(key: bytes, dev_addr: int, fcnt32: int, uplink: bool, payload: bytes) -> bytes:
    """Encrypt or decrypt (the same XOR) an FRMPayload with the AES keystream of the spec."""
    _check_key(key, "key")
    if not payload:
        return b""
    blocks = (len(payload) + 15) // 16
    if blocks > 255:
        raise ValueError("FRMPayload too long")
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    stream = encryptor.update(b"".join(_block(0x01, uplink, dev_addr, fcnt32, i) for i in range(1, blocks + 1)))
    return bytes(p ^ s for p, s in zip(payload, stream[: len(payload)], strict=True))


def open_frame(frame: DataFrame, fcnt32: int, nwk_skey: bytes, app_skey: bytes | None) -> bytes:
    """Check the MIC, then return the plaintext FRMPayload.

    FPort 0 carries MAC commands, encrypted with the NwkSKey; other ports use
    the AppSKey. A MIC mismatch (wrong keys, wrong counter guess, corruption)
    raises ``ProtocolError``.
    """
    if (fcnt32 & 0xFFFF) != frame.fcnt16:
        raise ValueError(f"fcnt32 {fcnt32} does not end in the frame's FCnt {frame.fcnt16}")
    if not verify_mic(nwk_skey, frame, fcnt32):
        raise ProtocolError(
            f"LoRaWAN MIC mismatch for DevAddr {frame.dev_addr_hex} FCnt {fcnt32}: "
            "wrong NwkSKey, a counter out of step, or a corrupted frame"
        )
    if not frame.frm_payload:
        return b""
    if frame.fport == 0:
        key = nwk_skey
    elif app_skey is None:
        raise ValueError("an AppSKey is needed to decrypt application payloads")
    else:
        key = app_skey
    return crypt_frm_payload(key, frame.dev_addr, fcnt32, frame.uplink, frame.frm_payload)


def build_data_frame(
    *,
    dev_addr: int,
    fcnt32: int,
    fport: int | None,
    payload: bytes,
    nwk_skey: bytes,
    app_skey: bytes,
    mtype: MType = MType.UNCONFIRMED_DATA_UP,
    fctrl: FCtrl | None = None,
    fopts: bytes = b"",
) -> bytes:
    """Encrypt ``payload`` and sign the frame, as an end device (uplink) or network server (downlink) would."""
    if not mtype.is_data:
        raise ValueError(f"{mtype.name} is not a data frame")
    if not 0 <= fcnt32 <= 0xFFFFFFFF:
        raise ValueError(f"fcnt32 must fit 32 bits, got {fcnt32}")
    if not 0 <= dev_addr <= 0xFFFFFFFF:
        raise ValueError(f"dev_addr must fit 32 bits, got {dev_addr}")
    if len(fopts) > 15:
        raise ValueError("FOpts is at most 15 bytes")
    if fport is None and payload:
        raise ValueError("a payload needs an FPort")
    if fport is not None and not 0 <= fport <= 255:
        raise ValueError(f"FPort must be 0..255, got {fport}")
    if fport == 0 and fopts:
        raise ValueError("MAC commands go either in FOpts or on FPort 0, not both")
    base = fctrl or FCtrl()
    ctrl = FCtrl(base.adr, base.adr_ack_req, base.ack, base.f_pending, len(fopts))
    uplink = mtype.uplink
    body = bytes([mtype << 5]) + dev_addr.to_bytes(4, "little") + bytes([ctrl.to_byte()])
    body += (fcnt32 & 0xFFFF).to_bytes(2, "little") + bytes(fopts)
    if fport is not None:
        key = nwk_skey if fport == 0 else app_skey
        body += bytes([fport]) + crypt_frm_payload(key, dev_addr, fcnt32, uplink, payload)
    if len(body) + _MIC > _MAX_PHY:
        raise ValueError(f"frame of {len(body) + _MIC} bytes exceeds {_MAX_PHY}")
    b0 = _block(0x49, uplink, dev_addr, fcnt32, len(body))
    return body + _cmac(_check_key(nwk_skey, "NwkSKey"), b0 + body)[:_MIC]


def join_request_mic(app_key: bytes, frame: JoinRequest) -> bytes:
    """MIC of a join request: AES-CMAC(AppKey, MHDR | JoinEUI | DevEUI | DevNonce)."""
    return _cmac(_check_key(app_key, "AppKey"), frame.raw[:-_MIC])[:_MIC]


def verify_join_request_mic(app_key: bytes, frame: JoinRequest) -> bool:
    return hmac.compare_digest(join_request_mic(app_key, frame), frame.mic)
