"""One LoRaWAN PHYPayload explained field by field, sans I/O (``zaas-edge lora decode``).

A technician holding a hex frame from a forwarder's log wants to know what it
is, whether the keys they were given match it, and what it says. This module
puts the project's own codecs (``lorawan.py``, ``join.py``, ``payloads.py``)
together for that, and decides nothing the driver does not: the MIC is
checked the way the driver checks it (the 16-bit counter on air, then its
next rollovers, as on a first contact), the payload is decrypted only once
the MIC holds (or, without a NwkSKey, on the counter as sent, said so), and
it is decoded by the device's payload profile when one applies.

The result is plain data (``FrameReport``) for a table or ``--json``; keys
never appear in it.
"""

from __future__ import annotations

__all__ = ["FrameKeys", "FrameReport", "MicStatus", "describe_frame"]

from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import JsonValue

from zaas_edge.errors import ProtocolError

from . import join, lorawan
from .payloads import PayloadProfile

# As the driver on a first contact: how many 16-bit rollovers to try for the counter's high bits.
ROLLOVERS = 16


class MicStatus(StrEnum):
    OK = "ok"
    BAD = "bad"
    NOT_CHECKED = "not checked"  # no key to check it with


@dataclass(frozen=True, slots=True)
class FrameKeys:
    """What the technician has: any of the session keys, the OTAA root key, the device's profile."""

    nwk_skey: bytes | None = None
    app_skey: bytes | None = None
    app_key: bytes | None = None
    profile: PayloadProfile | None = None
    device_id: str | None = None  # the keys file's name for the device, when the keys came from there


@dataclass(frozen=True, slots=True)
class FrameReport:
    """The frame's fields in order (``fields``), its MIC verdict and what the keys opened."""

    kind: str  # "data", "join request", "join accept", "proprietary"
    mic: MicStatus
    fields: dict[str, JsonValue] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # what could not be done and why (a missing key, a payload the profile refused)

    def as_dict(self) -> dict[str, JsonValue]:
        return {"kind": self.kind, "mic_status": self.mic.value, **self.fields, "notes": list(self.notes)}


def _mhdr(frame: lorawan.Frame) -> dict[str, JsonValue]:
    raw = frame.raw[0]
    return {"mhdr": f"{raw:02X}", "mtype": lorawan.MType(raw >> 5).name.lower(), "major": raw & 0x03}


def _mic_fcnt(nwk_skey: bytes, frame: lorawan.DataFrame) -> int | None:
    for epoch in range(ROLLOVERS + 1):
        guess = (epoch << 16) | frame.fcnt16
        if lorawan.verify_mic(nwk_skey, frame, guess):
            return guess
    return None


def _data(frame: lorawan.DataFrame, keys: FrameKeys) -> FrameReport:
    ctrl = frame.fctrl
    out: dict[str, JsonValue] = {
        **_mhdr(frame),
        "direction": "uplink" if frame.uplink else "downlink",
        "confirmed": frame.confirmed,
        "dev_addr": frame.dev_addr_hex,
        "fctrl": {"adr": ctrl.adr, "adr_ack_req": ctrl.adr_ack_req, "ack": ctrl.ack,
                  ("class_b" if frame.uplink else "f_pending"): ctrl.f_pending, "fopts_len": ctrl.fopts_len},
        "fcnt": frame.fcnt16,
        "fopts": frame.fopts.hex().upper(),
        "fport": frame.fport,
        "frm_payload": frame.frm_payload.hex().upper(),
        "mic": frame.mic.hex().upper(),
    }
    if keys.device_id:
        out["device"] = keys.device_id
    notes: list[str] = []
    fcnt32: int | None = None
    if keys.nwk_skey is None:
        mic = MicStatus.NOT_CHECKED
        notes.append("MIC not checked: give the NwkSKey")
    else:
        fcnt32 = _mic_fcnt(keys.nwk_skey, frame)
        mic = MicStatus.BAD if fcnt32 is None else MicStatus.OK
        if fcnt32 is not None:
            out["fcnt32"] = fcnt32
    if mic is MicStatus.BAD or not frame.frm_payload:
        return FrameReport("data", mic, out, tuple(notes))
    key = keys.nwk_skey if frame.fport == 0 else keys.app_skey
    if key is None:
        notes.append("payload not decrypted: give the " + ("NwkSKey" if frame.fport == 0 else "AppSKey"))
        return FrameReport("data", mic, out, tuple(notes))
    if fcnt32 is None:
        fcnt32 = frame.fcnt16
        notes.append("decrypted with the 16-bit counter as sent (no NwkSKey to confirm its high bits)")
    plain = lorawan.crypt_frm_payload(key, frame.dev_addr, fcnt32, frame.uplink, frame.frm_payload)
    out["plaintext"] = plain.hex().upper()
    if frame.fport == 0:
        notes.append("FPort 0: MAC commands, not application data")
    elif keys.profile is None:
        notes.append("values not decoded: name the payload profile (--profile) or the device (--device)")
    else:
        try:
            decoded = keys.profile.decode(frame.fport, plain)
        except ProtocolError as exc:
            notes.append(f"payload refused by profile {keys.profile.name}: {exc}")
        else:
            out["profile"] = keys.profile.name
            if decoded.ignored:
                notes.append(f"FPort {frame.fport} carries no measurements for profile {keys.profile.name}")
            values: list[JsonValue] = [{"quantity": q, "value": v, "unit": u} for q, v, u in decoded.readings]
            out["values"] = values
            if decoded.partial:
                notes.append("an unknown record stopped the decoding: the values before it are shown")
            if decoded.history_records:
                out["history_records"] = decoded.history_records
    return FrameReport("data", mic, out, tuple(notes))


def _join_request(frame: lorawan.JoinRequest, keys: FrameKeys) -> FrameReport:
    out: dict[str, JsonValue] = {
        **_mhdr(frame), "app_eui": frame.join_eui.hex().upper(), "dev_eui": frame.dev_eui.hex().upper(),
        "dev_nonce": frame.dev_nonce, "mic": frame.mic.hex().upper(),
    }
    if keys.device_id:
        out["device"] = keys.device_id
    if keys.app_key is None:
        return FrameReport("join request", MicStatus.NOT_CHECKED, out, ("MIC not checked: give the AppKey",))
    ok = lorawan.verify_join_request_mic(keys.app_key, frame)
    return FrameReport("join request", MicStatus.OK if ok else MicStatus.BAD, out)


def _join_accept(frame: lorawan.JoinAccept, keys: FrameKeys) -> FrameReport:
    out: dict[str, JsonValue] = {**_mhdr(frame), "encrypted": frame.encrypted.hex().upper()}
    if keys.app_key is None:
        return FrameReport("join accept", MicStatus.NOT_CHECKED, out,
                           ("a join accept is encrypted whole: give the AppKey to read it",))
    try:
        accept = join.open_join_accept(keys.app_key, frame.raw)
    except ProtocolError:
        return FrameReport("join accept", MicStatus.BAD, out)
    out.update(app_nonce=accept.app_nonce, net_id=f"{accept.net_id:06X}", dev_addr=f"{accept.dev_addr:08X}",
               rx1_dr_offset=accept.rx1_dr_offset, rx2_dr=accept.rx2_dr, rx_delay_s=accept.rx_delay or 1)
    notes: list[str] = []
    if accept.cflist:
        try:
            freqs: list[JsonValue] = list(join.decode_cflist(accept.cflist))
            out["cflist_mhz"] = freqs
        except ProtocolError as exc:
            notes.append(str(exc))
    return FrameReport("join accept", MicStatus.OK, out, tuple(notes))


def describe_frame(phy: bytes, keys: FrameKeys | None = None) -> FrameReport:
    """Explain one PHYPayload; ``ProtocolError`` (with the reason) when it cannot be a LoRaWAN 1.0 frame."""
    keys = keys or FrameKeys()
    frame = lorawan.parse_phy_payload(phy)
    if isinstance(frame, lorawan.DataFrame):
        return _data(frame, keys)
    if isinstance(frame, lorawan.JoinRequest):
        return _join_request(frame, keys)
    if isinstance(frame, lorawan.JoinAccept):
        return _join_accept(frame, keys)
    return FrameReport("proprietary", MicStatus.NOT_CHECKED,
                       {**_mhdr(frame), "payload": frame.payload.hex().upper()},
                       ("proprietary frame: its content is the vendor's",))
