"""Recorded BLE adverts played back through the driver's ``AdvertSource`` seam.

A JSON-lines file holds one advert per line::

    {"mac": "CB:B8:33:4C:88:4F", "rssi": -61, "delay_s": 0.0,
     "manufacturer_data": {"1177": "0512fc53..."},
     "service_data": {"0000fcd2-0000-1000-8000-00805f9b34fb": "40 02 ca 09"}}

Manufacturer data is keyed by the company id in decimal (1177 = 0x0499,
Ruuvi), as bleak reports it; hex strings may contain spaces. ``delay_s`` is
the pause before the advert (0 by default). After the last advert the source
holds, as a quiet radio would, unless ``then="end"`` (the stream ends, which
the driver treats like a lost adapter) or ``then="vanish"`` (the adapter
disappears: ``TransientError``).

``bthome_encrypt`` builds encrypted BTHome v2 adverts the way a sensor does
(AES-CCM, 4-byte tag, nonce = MAC + UUID + device info + counter), for test
data made from the specification rather than copied from elsewhere.
"""

from __future__ import annotations

__all__ = ["ReplaySource", "MissingAdapterSource", "load_adverts", "bthome_encrypt"]

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from zaas_edge.drivers.ble.scanner import Advert

from zaas_edge.errors import ProtocolError, TransientError


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def load_adverts(path: str | Path) -> list[tuple[float, Advert]]:
    """(delay, advert) pairs from a JSON-lines file; blank lines and ``#`` comments are skipped."""
    out = []
    for n, line in enumerate(Path(path).read_text("utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            rec: dict[str, Any] = json.loads(line)
            advert = Advert(
                mac=str(rec["mac"]).upper(),
                rssi=rec.get("rssi"),
                manufacturer_data={int(k): _hex(v) for k, v in rec.get("manufacturer_data", {}).items()},
                service_data={str(k).lower(): _hex(v) for k, v in rec.get("service_data", {}).items()},
                name=rec.get("name"),
            )
            out.append((float(rec.get("delay_s", 0.0)), advert))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProtocolError(f"{path}:{n}: not a recorded advert: {exc}") from None
    return out


class ReplaySource:
    """An ``AdvertSource`` that plays recorded adverts, stamping them with the loop's clock."""

    def __init__(self, adverts: Iterable[tuple[float, Advert]] | str | Path, *, then: str = "hold",
                 repeat: int = 1) -> None:
        self.adverts = load_adverts(adverts) if isinstance(adverts, (str, Path)) else list(adverts)
        if then not in ("hold", "end", "vanish"):
            raise ValueError("then must be hold, end or vanish")
        self.then = then
        self.repeat = repeat
        self.streams = 0  # how many times the driver (re)opened the source
        self.played = 0

    async def stream(self) -> AsyncIterator[Advert]:
        self.streams += 1
        loop = asyncio.get_running_loop()
        for _ in range(self.repeat):
            for delay, advert in self.adverts:
                await asyncio.sleep(delay)  # also yields to the loop between adverts
                self.played += 1
                yield Advert(advert.mac, advert.rssi, advert.manufacturer_data, advert.service_data,
                             advert.name, loop.time())
        if self.then == "vanish":
            raise TransientError("Bluetooth adapter hci0 not found (replay: the adapter vanished)")
        if self.then == "hold":
            await asyncio.Event().wait()


class MissingAdapterSource:
    """No adapter for the first ``failures`` attempts, then the adverts of ``then_source``."""

    def __init__(self, failures: int, then_source: ReplaySource | None = None, adapter: str = "hci0") -> None:
        self.failures = failures
        self.then_source = then_source
        self.adapter = adapter
        self.attempts = 0

    async def stream(self) -> AsyncIterator[Advert]:
        self.attempts += 1
        if self.attempts <= self.failures or self.then_source is None:
            raise TransientError(f"Bluetooth adapter {self.adapter} not found (no /sys/class/bluetooth/{self.adapter})")
        async for advert in self.then_source.stream():
            yield advert


def bthome_encrypt(plain: bytes, mac: str, bindkey: bytes, counter: int, device_info: int = 0x41) -> bytes:
    """The service data of an encrypted BTHome v2 advert carrying ``plain`` measurement objects."""
    count = counter.to_bytes(4, "little")
    nonce = bytes.fromhex(mac.replace(":", "")) + b"\xd2\xfc" + bytes([device_info]) + count
    sealed = AESCCM(bindkey, tag_length=4).encrypt(nonce, plain, None)
    return bytes([device_info]) + sealed[:-4] + count + sealed[-4:]
