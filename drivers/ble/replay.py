"""Recorded BLE adverts played through the driver's ``AdvertSource`` seam.

A test and demo seam, not a production path: with ``ZAAS_EDGE_BLE_REPLAY=FILE``
in its environment the ``ble`` driver (and ``zaas-edge ble scan``) takes its
adverts from FILE instead of the radio, and says so in a warning. It sits at
the same boundary as ``BleakSource``, so everything above it (decoding,
deduplication, throttling, readings) is the production code.

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
"""

from __future__ import annotations

__all__ = ["REPLAY_ENV", "ReplaySource", "load_adverts", "replay_path"]

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from zaas_edge.errors import ConfigError, ProtocolError, TransientError

from .scanner import Advert

REPLAY_ENV = "ZAAS_EDGE_BLE_REPLAY"


def replay_path(environ: dict[str, str] | None = None) -> Path | None:
    """The recorded-adverts file named by ``ZAAS_EDGE_BLE_REPLAY``, if any."""
    value = (os.environ if environ is None else environ).get(REPLAY_ENV, "").strip()
    return Path(value) if value else None


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def load_adverts(path: str | Path) -> list[tuple[float, Advert]]:
    """(delay, advert) pairs from a JSON-lines file; blank lines and ``#`` comments are skipped."""
    out = []
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"recorded BLE adverts {path} cannot be read ({exc.strerror}): "
                          f"fix or unset {REPLAY_ENV}") from None
    for n, line in enumerate(text.splitlines(), 1):
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
