"""LoRaWAN 1.0.x over-the-air activation (OTAA), sans I/O: join request, join accept, session keys.

What the specification (LoRaWAN 1.0.2/1.0.3, section 6.2) asks, byte by byte:

- Join request: ``MHDR | AppEUI | DevEUI | DevNonce | MIC`` (EUIs and DevNonce
  little-endian on air), MIC = first 4 bytes of AES-CMAC(AppKey, everything
  before it). Parsing and its MIC are in ``lorawan.py``.
- Join accept: ``MHDR | AppNonce(3) | NetID(3) | DevAddr(4) | DLSettings |
  RxDelay | [CFList(16)] | MIC``, MIC = AES-CMAC(AppKey, MHDR..CFList)[0:4].
  Everything after the MHDR is then *decrypted* with AES-ECB under the AppKey
  (the network applies the decrypt operation, so the device needs only AES
  encrypt to read it).
- Session keys: ``NwkSKey = aes128_encrypt(AppKey, 0x01 | AppNonce | NetID |
  DevNonce | pad16)`` and ``AppSKey`` the same with 0x02, with the three
  fields in their on-air (little-endian) byte order.

``AppNonce`` (``JoinNonce`` in 1.0.4) is a 24-bit value the network never
repeats for a device; the driver uses a per-device counter, which 1.0.4
devices require and older ones accept. DevAddr follows the NetID: for the
type 0 NetIDs a private network uses, its 7 high bits are 0 and the NetID's
6-bit NwkID.
"""

from __future__ import annotations

__all__ = [
    "JoinAcceptFields",
    "build_join_request",
    "build_join_accept",
    "open_join_accept",
    "derive_session_keys",
    "encode_cflist",
    "decode_cflist",
    "dev_addr_in",
    "nwk_id",
]

import hmac
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from zaas_edge.errors import ProtocolError

from .lorawan import MType

_MIC = 4


def _key(key: bytes, name: str) -> bytes:
    if not isinstance(key, (bytes, bytearray)) or len(key) != 16:
        raise ValueError(f"{name} must be 16 bytes (32 hex digits)")
    return bytes(key)


def _cmac4(key: bytes, message: bytes) -> bytes:
    mac = CMAC(algorithms.AES(key))
    mac.update(message)
    return mac.finalize()[:_MIC]


def _ecb(key: bytes, data: bytes, *, decrypt: bool) -> bytes:
    cipher = Cipher(algorithms.AES(key), modes.ECB())
    op = cipher.decryptor() if decrypt else cipher.encryptor()
    return op.update(data) + op.finalize()


def _eui(eui: bytes, name: str) -> bytes:
    if len(eui) != 8:
        raise ValueError(f"{name} must be 8 bytes (16 hex digits)")
    return bytes(eui)


@dataclass(frozen=True, slots=True)
class JoinAcceptFields:
    """The plaintext of a join accept. ``cflist`` is the 16 raw bytes, or empty."""

    app_nonce: int
    net_id: int
    dev_addr: int
    rx1_dr_offset: int = 0
    rx2_dr: int = 0
    rx_delay: int = 1  # seconds; 0 on air means 1
    cflist: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.app_nonce <= 0xFFFFFF:
            raise ValueError(f"AppNonce is 24 bits, got {self.app_nonce}")
        if not 0 <= self.net_id <= 0xFFFFFF:
            raise ValueError(f"NetID is 24 bits, got {self.net_id}")
        if not 0 <= self.dev_addr <= 0xFFFFFFFF:
            raise ValueError(f"DevAddr is 32 bits, got {self.dev_addr}")
        if not 0 <= self.rx1_dr_offset <= 7 or not 0 <= self.rx2_dr <= 15:
            raise ValueError("RX1DROffset is 3 bits and RX2DataRate 4 bits")
        if not 0 <= self.rx_delay <= 15:
            raise ValueError(f"RxDelay is 0..15 s, got {self.rx_delay}")
        if len(self.cflist) not in (0, 16):
            raise ValueError(f"a CFList is 16 bytes, got {len(self.cflist)}")

    @property
    def dl_settings(self) -> int:
        return (self.rx1_dr_offset << 4) | self.rx2_dr

    def plaintext(self) -> bytes:
        """AppNonce | NetID | DevAddr | DLSettings | RxDelay | CFList, as on air (little-endian)."""
        return (self.app_nonce.to_bytes(3, "little") + self.net_id.to_bytes(3, "little")
                + self.dev_addr.to_bytes(4, "little") + bytes([self.dl_settings, self.rx_delay]) + self.cflist)


def build_join_request(app_key: bytes, app_eui: bytes, dev_eui: bytes, dev_nonce: int) -> bytes:
    """A join request as an end device sends it (EUIs MSB-first, as printed)."""
    if not 0 <= dev_nonce <= 0xFFFF:
        raise ValueError(f"DevNonce is 16 bits, got {dev_nonce}")
    body = (bytes([MType.JOIN_REQUEST << 5]) + _eui(app_eui, "AppEUI")[::-1] + _eui(dev_eui, "DevEUI")[::-1]
            + dev_nonce.to_bytes(2, "little"))
    return body + _cmac4(_key(app_key, "AppKey"), body)


def build_join_accept(app_key: bytes, fields: JoinAcceptFields) -> bytes:
    """The PHYPayload of a join accept: MIC over the plaintext, then AES *decrypt* of all but the MHDR."""
    key = _key(app_key, "AppKey")
    mhdr = bytes([MType.JOIN_ACCEPT << 5])
    plain = fields.plaintext()
    mic = _cmac4(key, mhdr + plain)
    return mhdr + _ecb(key, plain + mic, decrypt=True)


def open_join_accept(app_key: bytes, phy: bytes) -> JoinAcceptFields:
    """What a device does with a join accept: AES encrypt to read it, then check its MIC."""
    key = _key(app_key, "AppKey")
    phy = bytes(phy)
    if len(phy) not in (17, 33):
        raise ProtocolError(f"LoRaWAN join accept must be 17 or 33 bytes, got {len(phy)}")
    if phy[0] != MType.JOIN_ACCEPT << 5:
        raise ProtocolError(f"MHDR 0x{phy[0]:02x} is not a LoRaWAN 1.0 join accept")
    clear = _ecb(key, phy[1:], decrypt=False)
    plain, mic = clear[:-_MIC], clear[-_MIC:]
    if not hmac.compare_digest(_cmac4(key, phy[:1] + plain), mic):
        raise ProtocolError("join accept MIC mismatch: wrong AppKey, or not meant for this device")
    dl = plain[10]
    return JoinAcceptFields(
        app_nonce=int.from_bytes(plain[0:3], "little"),
        net_id=int.from_bytes(plain[3:6], "little"),
        dev_addr=int.from_bytes(plain[6:10], "little"),
        rx1_dr_offset=(dl >> 4) & 0x07,
        rx2_dr=dl & 0x0F,
        rx_delay=plain[11] & 0x0F,
        cflist=plain[12:],
    )


def derive_session_keys(app_key: bytes, app_nonce: int, net_id: int, dev_nonce: int) -> tuple[bytes, bytes]:
    """(NwkSKey, AppSKey) of the session a join accept opens."""
    key = _key(app_key, "AppKey")
    tail = app_nonce.to_bytes(3, "little") + net_id.to_bytes(3, "little") + dev_nonce.to_bytes(2, "little")
    pad = bytes(16 - 1 - len(tail))
    blocks = bytes([0x01]) + tail + pad + bytes([0x02]) + tail + pad
    out = _ecb(key, blocks, decrypt=False)
    return out[:16], out[16:]


def encode_cflist(freqs_mhz: tuple[float, ...] | list[float]) -> bytes:
    """A frequency-list CFList (type 0): up to five channels, 24 bits each in units of 100 Hz."""
    if len(freqs_mhz) > 5:
        raise ValueError("a CFList carries at most 5 frequencies")
    out = b""
    for f in freqs_mhz:
        hz100 = round(f * 10_000)
        if not 0 < hz100 <= 0xFFFFFF:
            raise ValueError(f"frequency {f} MHz does not fit a CFList")
        out += hz100.to_bytes(3, "little")
    return out + bytes(15 - len(out)) + b"\x00"  # unused channels are 0; CFListType 0


def decode_cflist(cflist: bytes) -> tuple[float, ...]:
    if len(cflist) != 16:
        raise ProtocolError(f"a CFList is 16 bytes, got {len(cflist)}")
    if cflist[15] != 0:
        raise ProtocolError(f"CFListType {cflist[15]} is not a frequency list")
    freqs = (int.from_bytes(cflist[i:i + 3], "little") for i in range(0, 15, 3))
    return tuple(f / 10_000 for f in freqs if f)


def nwk_id(net_id: int) -> int:
    """The NwkID of a type 0 NetID (its 6 low bits); other types are refused."""
    if not 0 <= net_id <= 0xFFFFFF:
        raise ValueError(f"NetID is 24 bits, got {net_id:#x}")
    if net_id >> 21:
        raise ValueError(f"NetID {net_id:06X} is not a type 0 NetID (only type 0 DevAddr allocation is supported)")
    return net_id & 0x3F


def dev_addr_in(net_id: int, nwk_addr: int) -> int:
    """The DevAddr of ``nwk_addr`` (25 bits) in a type 0 NetID: 0 | NwkID(6) | NwkAddr(25)."""
    if not 0 <= nwk_addr < 1 << 25:
        raise ValueError(f"NwkAddr is 25 bits, got {nwk_addr:#x}")
    return (nwk_id(net_id) << 25) | nwk_addr
