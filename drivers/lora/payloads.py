"""Application payload codecs, chosen by name from a device profile, sans I/O.

A LoRaWAN device's FRMPayload is vendor-defined. Each profile under
``drivers/profiles/lora/*.toml`` names a ``codec`` implemented here as a pure
function ``(fport, payload, options) -> DecodedPayload``; the profile also
declares the points the codec can produce and cites the public payload
documentation each decoder follows.

The Milesight codecs share one channel walker: the payload is a sequence of
``channel_id, channel_type, value`` records whose value length is fixed per
(id, type). A record the table does not know ends the walk, as in the
vendor's own decoders, and what was read before it is kept (``partial``);
a record cut short raises ``ProtocolError``.
"""

from __future__ import annotations

__all__ = [
    "DecodedPayload",
    "PayloadProfile",
    "CODECS",
    "decode_payload",
    "load_profile",
    "profile_names",
    "PROFILE_DIR",
]

import math
import struct
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zaas_edge.config import validation_issues
from zaas_edge.errors import ConfigError, ConfigIssue, ProtocolError

PROFILE_DIR = Path(__file__).resolve().parent.parent / "profiles" / "lora"
MILESIGHT_FPORT = 85  # Milesight sensors report on FPort 85; other ports carry configuration answers


@dataclass(frozen=True, slots=True)
class DecodedPayload:
    readings: tuple[tuple[str, float, str], ...] = ()
    history_records: int = 0  # stored-history records, not turned into live readings
    partial: bool = False  # an unknown record stopped the walk
    ignored: bool = False  # a port that carries no measurements


Codec = Callable[[int | None, bytes, Mapping[str, Any]], DecodedPayload]


# ------------------------------------------------------------------ Milesight

def _u8(b: bytes) -> int:
    return b[0]


def _u16(b: bytes) -> int:
    return int.from_bytes(b[:2], "little")


def _i16(b: bytes) -> int:
    return int.from_bytes(b[:2], "little", signed=True)


def _u32(b: bytes) -> int:
    return int.from_bytes(b[:4], "little")


def _f32(b: bytes) -> float:
    return struct.unpack("<f", b[:4])[0]


Out = list[tuple[str, float, str]]
Reader = Callable[[bytes, Out, Mapping[str, Any]], None]


def _battery(v: bytes, out: Out, o: Mapping[str, Any]) -> None:
    out.append(("battery", float(_u8(v)), "%"))


def _temperature(v: bytes, out: Out, o: Mapping[str, Any]) -> None:
    out.append(("temperature", _i16(v) / 10, "degC"))


def _humidity(v: bytes, out: Out, o: Mapping[str, Any]) -> None:
    out.append(("humidity", _u8(v) / 2, "%"))


def _co2(v: bytes, out: Out, o: Mapping[str, Any]) -> None:
    out.append(("co2", float(_u16(v)), "ppm"))


def _gpio(v: bytes, out: Out, o: Mapping[str, Any]) -> None:
    out.append(("gpio", float(_u8(v) & 1), "bool"))


def _pulse(v: bytes, out: Out, o: Mapping[str, Any]) -> None:
    out.append(("pulse_count", float(_u32(v)), "count"))


def _water(v: bytes, out: Out, o: Mapping[str, Any]) -> None:
    # water_conv(2B) + pulse_conv(2B) + water(float): the device converts pulses to a volume itself.
    value = _f32(v[4:8])
    if math.isfinite(value):
        out.append(("volume", round(value, 6), str(o.get("volume_unit", "m3"))))


def _gpio_alarm(v: bytes, out: Out, o: Mapping[str, Any]) -> None:
    out.append(("gpio", float(v[0] & 1), "bool"))
    out.append(("gpio_alarm", float(v[1] == 1), "bool"))


def _water_alarm(v: bytes, out: Out, o: Mapping[str, Any]) -> None:
    _water(v, out, o)
    # 1 water outage timeout, 2 its release, 3 water flow timeout, 4 its release
    alarm = v[8]
    if alarm in (1, 2):
        out.append(("water_outage_alarm", float(alarm == 1), "bool"))
    elif alarm in (3, 4):
        out.append(("water_flow_alarm", float(alarm == 3), "bool"))


def _leak(v: bytes, out: Out, o: Mapping[str, Any]) -> None:
    out.append(("leak", float(_u8(v) == 1), "bool"))


def _skip(v: bytes, out: Out, o: Mapping[str, Any]) -> None:
    """Device information (versions, serial number, class, reset): not a measurement."""


_HISTORY = object()  # marker: counted, not turned into live readings

# Device information records every Milesight sensor sends after a join or a reset.
_MILESIGHT_INFO: dict[tuple[int, int], tuple[int, Reader | object]] = {
    (0xFF, 0x01): (1, _skip),  # IPSO version
    (0xFF, 0x09): (2, _skip),  # hardware version
    (0xFF, 0x0A): (2, _skip),  # firmware version
    (0xFF, 0xFF): (2, _skip),  # TSL version
    (0xFF, 0x16): (8, _skip),  # serial number
    (0xFF, 0x0F): (1, _skip),  # LoRaWAN class
    (0xFF, 0xFE): (1, _skip),  # reset event
    (0xFF, 0x0B): (1, _skip),  # device status
}
_MILESIGHT_CLIMATE = {
    (0x01, 0x75): (1, _battery),
    (0x03, 0x67): (2, _temperature),
    (0x04, 0x68): (1, _humidity),
}

# EM300-DI: Milesight-IoT/SensorDecoders EM_Series/EM300_Series/EM300-DI/ (README.md, EM300-DI_Decoder.js)
EM300_DI = {
    **_MILESIGHT_INFO, **_MILESIGHT_CLIMATE,
    (0x05, 0x00): (1, _gpio),
    (0x05, 0xC8): (4, _pulse),
    (0x05, 0xE1): (8, _water),  # firmware v1.3+
    (0x06, 0xE1): (8, _water),  # as the README's table numbers it
    (0x85, 0x00): (2, _gpio_alarm),
    (0x85, 0xE1): (9, _water_alarm),  # as the decoder numbers it
    (0x86, 0xE1): (9, _water_alarm),  # as the README's table numbers it
    (0x20, 0xCE): (13, _HISTORY),
    (0x21, 0xCE): (18, _HISTORY),
}
# EM300-SLD / EM300-ZLD: Milesight-IoT/SensorDecoders EM_Series/EM300_Series/EM300-SLD/
EM300_SLD = {
    **_MILESIGHT_INFO, **_MILESIGHT_CLIMATE,
    (0x05, 0x00): (1, _leak),
    (0x20, 0xCE): (8, _HISTORY),
}
# AM103 / AM103L: Milesight-IoT/SensorDecoders AM_Series/AM103/README.md
AM103 = {
    **_MILESIGHT_INFO, **_MILESIGHT_CLIMATE,
    (0x07, 0x7D): (2, _co2),
    (0x20, 0xCE): (9, _HISTORY),
}


def _milesight(table: Mapping[tuple[int, int], tuple[int, Reader | object]]) -> Codec:
    def decode(fport: int | None, payload: bytes, options: Mapping[str, Any]) -> DecodedPayload:
        if fport != MILESIGHT_FPORT:
            return DecodedPayload(ignored=True)
        out: Out = []
        history = 0
        i = 0
        partial = False
        while i < len(payload):
            if i + 2 > len(payload):
                raise ProtocolError(f"Milesight payload ends inside a record header at byte {i}")
            key = (payload[i], payload[i + 1])
            entry = table.get(key)
            if entry is None:
                partial = True  # a configuration answer or a newer firmware's channel
                break
            size, reader = entry
            value = payload[i + 2 : i + 2 + size]
            if len(value) < size:
                raise ProtocolError(
                    f"Milesight record {key[0]:02x} {key[1]:02x} at byte {i} needs {size} bytes, got {len(value)}"
                )
            if reader is _HISTORY:
                history += 1
            else:
                reader(value, out, options)  # type: ignore[operator]
            i += 2 + size
        if not out and not history and partial:
            raise ProtocolError(f"Milesight payload starts with an unknown record {payload[0]:02x} {payload[1]:02x}")
        return DecodedPayload(tuple(out), history, partial)

    return decode


CODECS: dict[str, Codec] = {
    "milesight-em300-di": _milesight(EM300_DI),
    "milesight-em300-sld": _milesight(EM300_SLD),
    "milesight-am103": _milesight(AM103),
}


def decode_payload(codec: str, fport: int | None, payload: bytes,
                   options: Mapping[str, Any] | None = None) -> DecodedPayload:
    """Decode a plaintext FRMPayload with the named codec; ``ProtocolError`` when it cannot be used."""
    try:
        fn = CODECS[codec]
    except KeyError:
        raise ConfigError(f"unknown payload codec {codec!r} (known: {', '.join(sorted(CODECS))})") from None
    return fn(fport, bytes(payload), options or {})


# ------------------------------------------------------------------ profiles


class _PointModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    quantity: str
    unit: str
    resolution: float = 0.0
    description: str = ""


class _ProfileModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    vendor: str
    model: str
    kind: str = Field(description="What the device measures, for people")
    codec: str
    source: list[str] = Field(min_length=1, description="Repository and path of the payload documentation")
    codec_options: dict[str, Any] = Field(default_factory=dict)
    points: list[_PointModel] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PayloadProfile:
    name: str
    vendor: str
    model: str
    kind: str
    codec: str
    source: tuple[str, ...]
    codec_options: Mapping[str, Any] = field(default_factory=dict)
    points: tuple[tuple[str, str, float, str], ...] = ()

    def decode(self, fport: int | None, payload: bytes) -> DecodedPayload:
        return decode_payload(self.codec, fport, payload, self.codec_options)


def profile_names(directory: Path = PROFILE_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.toml"))


def load_profile(name: str, directory: Path = PROFILE_DIR) -> PayloadProfile:
    """The profile ``<directory>/<name>.toml``; ``ConfigError`` naming the file and the fix."""
    path = directory / f"{name}.toml"
    if "/" in name or not path.is_file():
        raise ConfigError([ConfigIssue(str(path), "", (
            f"no LoRaWAN payload profile {name!r} (available: {', '.join(profile_names(directory)) or 'none'})"))])
    try:
        doc = tomllib.loads(path.read_text("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigIssue(str(path), "", f"not valid TOML: {exc}")]) from None
    try:
        m = _ProfileModel.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError(validation_issues(exc, _ProfileModel, file=str(path))) from None
    if m.codec not in CODECS:
        raise ConfigError([ConfigIssue(str(path), "codec",
                                       f"unknown codec {m.codec!r} (known: {', '.join(sorted(CODECS))})")])
    return PayloadProfile(name, m.vendor, m.model, m.kind, m.codec, tuple(m.source), dict(m.codec_options),
                          tuple((p.quantity, p.unit, p.resolution, p.description) for p in m.points))
