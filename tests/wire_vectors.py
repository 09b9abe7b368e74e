"""The sync body's test vectors: the rows behind each file in docs/sync-vectors/.

Each vector is a lane and the store rows a gateway would send; the committed
files are what :func:`zaas_edge.wire.codec.encode_batch` makes of them
(``NAME.hex``) and what :func:`~zaas_edge.wire.codec.decode_batch` reads back
(``NAME.json``). tests/test_wire_vectors.py checks both stay true and that
the official protobuf library, from docs/sync-batch.proto alone, reads the
same rows. After a deliberate format change, rewrite them with::

    .venv/bin/python -m tests.wire_vectors
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zaas_edge.model import Alarm, Event, Lane, Quality, Severity, Stamp, UploadRecord
from zaas_edge.store import Stored
from zaas_edge.wire.codec import DecodedBatch, decode_batch, encode_batch

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "docs" / "sync-vectors"
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
S = 1_000_000_000
MS = 1_000_000
EPOCH = "7d1c3a9e"


def _raw_polling() -> list[Stored]:
    """Two meters polled every second, a counter, a lossless point and a gap in the seqs."""
    rows: list[UploadRecord] = []
    for i in range(4):
        t = T0 + i * S + 3 * MS
        rows.append(UploadRecord("meter-1/voltage_l1", "V", t, 230.1 + 0.1 * (i % 2), resolution=0.1))
        rows.append(UploadRecord("meter-1/power", "W", t + MS, 1520.0 - 10 * i, resolution=1.0))
        rows.append(UploadRecord("meter-2/energy_import", "kWh", t + 2 * MS, 12345.67 + 0.01 * i, resolution=0.01))
    rows.append(UploadRecord("ble-3/battery", "", T0 + 2 * S, 0.8125))  # no resolution: a float64, exact
    seqs = list(range(101, 101 + 10)) + [120, 121, 122]  # 111..119 were dropped by retention
    return [Stored(Lane.UPLOAD, s, r) for s, r in zip(seqs, rows, strict=True)]


def _aggregates_and_exceptions() -> list[Stored]:
    """Window aggregates, a fallback, non-ok qualities, a corrected and an unsynchronised row."""
    w = 60
    rows = [
        UploadRecord("meter-1/voltage_l1", "V", T0, 230.2, resolution=0.1, window_s=w, count=60,
                     min=229.8, max=230.9, last=230.4, last_ns=T0 + 59 * S + 3 * MS),
        UploadRecord("meter-1/power", "W", T0, 1507.5, quality=Quality.ESTIMATED, resolution=1.0, window_s=w,
                     count=58, min=1490.0, max=1533.0, last=1501.0, last_ns=T0 + 59 * S + 4 * MS),
        UploadRecord("tic-1/papp", "VA", T0 + 5 * S, 2.5e300, resolution=1.0),  # too large for the grid: float64
        UploadRecord("meter-1/voltage_l1", "V", T0 + w * S, 230.5, resolution=0.1, window_s=w, count=60,
                     min=230.0, max=231.2, last=230.6, last_ns=T0 + (w + 59) * S + 3 * MS),
        UploadRecord("mbus-7/volume", "m3", T0 + 30 * S, 812.345, quality=Quality.STALE, resolution=0.001),
        UploadRecord("mbus-7/volume", "m3", T0 + 90 * S, 812.351, synced=True, corrected=True, resolution=0.001),
        UploadRecord("lora-4/temperature", "degC", 1_000_000_000 + 42 * S, 21.5, quality=Quality.ERROR,
                     synced=False, mono_ns=42 * S, boot_id="0b8f2c1e-boot", resolution=0.5),
        UploadRecord("lora-4/temperature", "degC", 1_000_000_000 + 642 * S, 21.0, synced=False,
                     mono_ns=642 * S, boot_id="0b8f2c1e-boot", resolution=0.5),
    ]
    return [Stored(Lane.UPLOAD, 5000 + i, r) for i, r in enumerate(rows)]


def _events() -> list[Stored]:
    st = Stamp(T0 + 17 * S, 917 * S, "0b8f2c1e-boot", True)
    return [
        Stored(Lane.EVENT, 31, Event("store.gap", "dropped 9 unsent upload records", "store", st, Severity.WARNING,
                                     {"lane": "upload", "first_seq": 111, "last_seq": 119, "count": 9})),
        Stored(Lane.EVENT, 32, Event("task.restarted", "driver modbus-1 restarted", "runtime",
                                     Stamp(-5 * S, 3 * S, "0b8f2c1e-boot", False))),
    ]


def _alarms() -> list[Stored]:
    st = Stamp(T0 + 20 * S, 920 * S, "0b8f2c1e-boot", True)
    return [
        Stored(Lane.ALARM, 7, Alarm("device.meter-2.offline", True, "meter-2 does not answer", "modbus-1", st,
                                    Severity.ERROR, {"device": "meter-2", "last_seen_s": 95.5})),
        Stored(Lane.ALARM, 8, Alarm("device.meter-2.offline", False, "meter-2 answers again", "modbus-1", st)),
    ]


# name -> (lane, rows, epoch): what each docs/sync-vectors/NAME.{hex,json} holds.
CASES: dict[str, tuple[Lane, list[Stored], str]] = {
    "readings-raw": (Lane.READING, _raw_polling(), EPOCH),
    "readings-aggregates": (Lane.READING, _aggregates_and_exceptions(), EPOCH),
    "readings-empty": (Lane.READING, [], ""),
    "events": (Lane.EVENT, _events(), EPOCH),
    "alarms": (Lane.ALARM, _alarms(), EPOCH),
}


def as_json(d: DecodedBatch) -> dict[str, Any]:
    """A decoded batch as the JSON document beside its body."""
    return {"version": d.version, "lane": str(d.lane), "epoch": d.epoch, "first_seq": d.first_seq,
            "last_seq": d.last_seq, "resolutions": d.resolutions, "rows": d.rows}


def body(name: str) -> bytes:
    lane, rows, epoch = CASES[name]
    return encode_batch(lane, rows, epoch=epoch)


def dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def write(directory: Path = VECTORS) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in CASES:
        b = body(name)
        (directory / f"{name}.hex").write_text(_hex_lines(b))
        (directory / f"{name}.json").write_text(dump(as_json(decode_batch(b))))
        written += [directory / f"{name}.hex", directory / f"{name}.json"]
    return written


def _hex_lines(b: bytes, width: int = 32) -> str:
    """Hex, 32 bytes a line: readable in a diff, read back with ``bytes.fromhex`` (whitespace is ignored)."""
    return "".join(b[i:i + width].hex(" ") + "\n" for i in range(0, len(b), width)) or "\n"


def read_hex(path: Path) -> bytes:
    return bytes.fromhex(path.read_text())


if __name__ == "__main__":
    for p in write():
        print(p.relative_to(ROOT))
