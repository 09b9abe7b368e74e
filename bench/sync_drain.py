"""Sync data path: bytes per reading on the wire, store footprint, 7-day outage projection.

Builds a backlog of realistic readings (default 1,000,000) from a building of
3,000 points: 100 meters, each with 20 fast points polled every second
(voltages around 230 V, currents, powers with noise, frequency, power factor)
and 10 slow points read every minute (monotonic energy and volume counters,
temperatures), stamped per meter poll with a few milliseconds of jitter.

It prints, each figure named with what it is per:

- the wire cost of the compact encoding (``zaas_edge.sync.codec``) with gzip
  and zstd, per raw reading sent as is (``raw`` policy), against one JSON
  object per reading and the same JSON lines gzip-compressed;
- the same backlog under the default upload policies (1-minute aggregates,
  last counter value per minute): bytes per upload record AND per raw reading
  the records stand for;
- encode and decode throughput, and the drain rate: through the real uplink
  to the reference central API on loopback (``--drain``, when hil/central and
  the transport are present) or, without it, the encode+compress+decode rate;
- the store's bytes per buffered raw reading and per upload record, measured
  on real SQLite files, and the projected store size of a 7-day outage under
  the default policies (upload records for 7 days plus the local raw window,
  which the size cap bounds);
- a last line ``ratio=<JSON-per-reading bytes / our bytes>`` (ours: the
  default wire encoding of raw readings, zstd).

    python bench/sync_drain.py [--readings N] [--batch N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import tempfile
import time
from pathlib import Path

import zstandard

from zaas_edge.config_model import Config  # noqa: F401  (imports the sync section model)
from zaas_edge.model import Lane, Reading, Stamp, UploadRecord
from zaas_edge.store import Store, Stored
from zaas_edge.sync.aggregate import Aggregation
from zaas_edge.sync.codec import decode_batch, encode_batch
from zaas_edge.sync.config import SyncSection
from zaas_edge.sync.policy import PolicySet

S = 1_000_000_000
MS = 1_000_000
T0 = 1_700_000_040 * S
BOOT = "5f0c2b7e-9d1a-4c3e-8b6f-0a1b2c3d4e5f"
METERS = 100
DAY_S = 86_400
_UPLOAD = getattr(Lane, "UPLOAD", Lane.READING)  # the store lane of upload records (label only here)

# (quantity, unit, resolution, fast?)
FAST = [("voltage_l1", "V", 0.1), ("voltage_l2", "V", 0.1), ("voltage_l3", "V", 0.1),
        ("current_l1", "A", 0.01), ("current_l2", "A", 0.01), ("current_l3", "A", 0.01),
        ("power_l1", "W", 1.0), ("power_l2", "W", 1.0), ("power_l3", "W", 1.0), ("active_power", "W", 1.0),
        ("reactive_power", "var", 1.0), ("apparent_power", "VA", 1.0), ("power_factor", "", 0.001),
        ("frequency", "Hz", 0.01), ("thd_voltage", "%", 0.1), ("thd_current", "%", 0.1),
        ("flow", "m3/h", 0.01), ("heat_power", "W", 1.0), ("supply_temp", "degC", 0.1), ("return_temp", "degC", 0.1)]
SLOW = [("energy_import", "kWh", 0.01), ("energy_export", "kWh", 0.01), ("energy_l1", "kWh", 0.01),
        ("energy_l2", "kWh", 0.01), ("energy_l3", "kWh", 0.01), ("reactive_energy", "kvarh", 0.01),
        ("water_volume", "m3", 0.001), ("heat_energy", "kWh", 0.1), ("temperature", "degC", 0.1),
        ("humidity", "%", 0.1)]


class Building:
    """Simulated meters: each keeps its own state so curves are continuous."""

    def __init__(self, seed: int = 7) -> None:
        self.rnd = random.Random(seed)
        r = self.rnd
        self.meters = []
        for m in range(METERS):
            self.meters.append({
                "phase_ms": (m * 9) % 1000,  # each meter is polled at its own moment of the second
                "load": r.uniform(500, 15000),  # W
                "v": [r.uniform(228, 233) for _ in range(3)],
                "energy": r.uniform(1e3, 1e6),
                "export": r.uniform(0, 1e4),
                "water": r.uniform(10, 5000),
                "heat": r.uniform(1e3, 1e5),
                "temp": r.uniform(18, 24),
            })
        self.resolution = {f"meter-{m:03d}/{q}": res for m in range(METERS) for q, _u, res in FAST + SLOW}

    def second(self, t: int) -> list[Reading]:
        """All readings stamped within second ``t`` (fast points each second, slow ones once a minute)."""
        r = self.rnd
        out = []
        for m, st in enumerate(self.meters):
            stamp_ns = T0 + t * S + (st["phase_ms"] + int(abs(r.gauss(0, 2)))) * MS + r.randrange(MS)
            stamp = Stamp(stamp_ns, stamp_ns - T0 + 5 * S, BOOT, True)
            st["load"] = max(100.0, st["load"] + r.gauss(0, 30))
            p = st["load"] + r.gauss(0, 15)
            vs = [v + r.gauss(0, 0.15) for v in st["v"]]
            phases = [p * f for f in (0.34, 0.33, 0.33)]
            cur = [ph / v / 0.95 for ph, v in zip(phases, vs, strict=True)]
            vals = vs + cur + phases + [p, p * 0.3 + r.gauss(0, 5), p / 0.95, 0.95 + r.gauss(0, 0.003),
                                        50 + r.gauss(0, 0.01), 2.1 + r.gauss(0, 0.05), 8 + r.gauss(0, 0.3),
                                        1.2 + r.gauss(0, 0.02), 3000 + r.gauss(0, 40), 65 + r.gauss(0, 0.05),
                                        45 + r.gauss(0, 0.05)]
            base = f"meter-{m:03d}/"
            out.extend(Reading.at(stamp, base + q, v, u) for (q, u, _res), v in zip(FAST, vals, strict=True))
            st["energy"] += p / 3_600_000  # kWh per second
            st["export"] += 0.0001
            st["water"] += r.uniform(0, 0.0005)
            st["heat"] += 0.0008
            if (t + m) % 60 == 0:
                e = st["energy"]
                slow = [e, st["export"], e * 0.34, e * 0.33, e * 0.33, e * 0.3, st["water"], st["heat"],
                        st["temp"] + r.gauss(0, 0.1), 45 + r.gauss(0, 0.5)]
                out.extend(Reading.at(stamp, base + q, v, u) for (q, u, _res), v in zip(SLOW, slow, strict=True))
        return out


def backlog(n: int) -> tuple[list[Reading], Building, float]:
    b = Building()
    out: list[Reading] = []
    t = 0
    while len(out) < n:
        out.extend(b.second(t))
        t += 1
    return out[:n], b, t


def as_raw_records(readings: list[Reading], resolution: dict[str, float]) -> list[Stored]:
    """The ``raw`` policy's records: the readings, to the millisecond, with their point's resolution."""
    return [Stored(_UPLOAD, i + 1, UploadRecord(r.point, r.unit, r.wall_ns - r.wall_ns % MS, r.value,
                                                   r.quality, True, False, None, "", resolution.get(r.point, 0.0)))
            for i, r in enumerate(readings)]


def json_lines(readings: list[Reading]) -> list[bytes]:
    """One JSON object per reading, the shape common gateways send."""
    return [json.dumps({"gateway": "gw-demo", "point": r.point, "value": r.value, "unit": r.unit,
                        "ts": r.wall_ns // MS, "quality": str(r.quality)}, separators=(",", ":")).encode()
            for r in readings]


def wire(records: list[Stored], batch: int) -> dict[str, float]:
    zc = zstandard.ZstdCompressor(level=3)
    raw = gz = zs = 0
    enc_s = dec_s = zip_s = 0.0
    for i in range(0, len(records), batch):
        chunk = records[i:i + batch]
        t = time.perf_counter()
        body = encode_batch(Lane.READING, chunk, epoch="0123456789abcdef")
        enc_s += time.perf_counter() - t
        t = time.perf_counter()
        z = zc.compress(body)
        zip_s += time.perf_counter() - t
        raw += len(body)
        gz += len(gzip.compress(body, 6))
        zs += len(z)
        t = time.perf_counter()
        d = decode_batch(zstandard.ZstdDecompressor().decompress(z))
        dec_s += time.perf_counter() - t
        assert len(d.rows) == len(chunk)
    n = len(records)
    return {"raw": raw / n, "gzip": gz / n, "zstd": zs / n, "encode_rps": n / enc_s, "decode_rps": n / dec_s,
            "pipeline_rps": n / (enc_s + zip_s + dec_s)}


def store_bytes_per_reading(readings: list[Reading], directory: Path) -> float:
    path = directory / "raw.db"
    with Store(path) as st:
        for i in range(0, len(readings), 5000):
            st.append(readings[i:i + 5000])
        st.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return st.used_bytes() / len(readings)


def store_bytes_per_upload(records: list[UploadRecord], directory: Path) -> tuple[float, str]:
    """Measured on the upload lane when the store has one; else the block encoding's size, stated as such."""
    path = directory / "upload.db"
    with Store(path) as st:
        if hasattr(st, "save_uploads") and hasattr(Lane, "UPLOAD"):
            st.register("aggregate", [Lane.READING])
            for i in range(0, len(records), 3000):
                st.save_uploads(records[i:i + 3000], "aggregate", 0, "{}", T0)
            st.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return st.used_bytes() / len(records), "measured"
    import zlib
    blob = sum(len(zlib.compress(encode_batch(Lane.READING, [Stored(Lane.READING, j + 1, r) for j, r in
                                                              enumerate(records[i:i + 3000])]), 1))
               for i in range(0, len(records), 3000))
    return blob / len(records) + 0.02, "estimated from the block encoding"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readings", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=50_000, help="records per batch")
    ap.add_argument("--dir", type=Path, default=None, help="where the measured store files go")
    args = ap.parse_args()
    n = args.readings

    t = time.perf_counter()
    readings, building, seconds = backlog(n)
    fast = METERS * len(FAST)
    slow = METERS * len(SLOW)
    rate = fast + slow / 60
    print(f"backlog: {n} readings of {fast + slow} points ({fast} at 1 s, {slow} at 60 s; {rate:.0f} readings/s), "
          f"{seconds:.0f} s of building time, built in {time.perf_counter() - t:.1f} s")

    lines = json_lines(readings)
    json_per = sum(len(x) for x in lines) / n
    jsonl_gz = len(gzip.compress(b"\n".join(lines), 6)) / n
    print(f"baseline JSON object per reading:  {json_per:8.2f} bytes/reading")
    print(f"baseline JSON lines, gzip:         {jsonl_gz:8.2f} bytes/reading")

    raw_records = as_raw_records(readings, building.resolution)
    w = wire(raw_records, args.batch)
    print(f"ours, raw policy, uncompressed:    {w['raw']:8.2f} bytes/reading")
    print(f"ours, raw policy, gzip:            {w['gzip']:8.2f} bytes/reading")
    print(f"ours, raw policy, zstd:            {w['zstd']:8.2f} bytes/reading "
          f"({jsonl_gz / w['zstd']:.1f}x fewer than gzipped JSON lines)")
    print(f"encode {w['encode_rps']:,.0f} readings/s, decode {w['decode_rps']:,.0f} readings/s, "
          f"encode+zstd+decode {w['pipeline_rps']:,.0f} readings/s (no network)")

    # The same backlog under the default upload policies.
    cfg = SyncSection()
    agg = Aggregation(PolicySet(window_s=cfg.window_s), grace_s=cfg.aggregate_grace_s,
                      resolution=building.resolution.get)
    stored = [Stored(Lane.READING, i + 1, r) for i, r in enumerate(readings)]
    t = time.perf_counter()
    recs, _ = agg.feed(stored)
    end = readings[-1].wall_ns + 3600 * S
    recs += agg.close(Stamp(end, end, BOOT, True), everything=True)
    agg_s = time.perf_counter() - t
    upl = [Stored(_UPLOAD, i + 1, r) for i, r in enumerate(recs)]
    wa = wire(upl, args.batch)
    per_raw = wa["zstd"] * len(recs) / n
    print(f"default policies: {len(recs)} upload records for {n} raw readings "
          f"({n / len(recs):.1f} readings each), aggregated at {n / agg_s:,.0f} readings/s")
    print(f"ours, default policies, zstd:      {wa['zstd']:8.2f} bytes/upload record, "
          f"{per_raw:8.3f} bytes/raw reading represented")

    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        per_raw_store = store_bytes_per_reading(readings[:300_000], Path(d))
        per_upload_store, how = store_bytes_per_upload([s.item for s in upl[:300_000]], Path(d))
    print(f"store: {per_raw_store:.1f} bytes per buffered raw reading (measured); "
          f"{per_upload_store:.1f} bytes per upload record ({how})")

    # 7-day outage of this building under the defaults.
    records_per_s = len(recs) / seconds
    upload_7d = records_per_s * 7 * DAY_S * per_upload_store
    window_s = cfg.local_window_h * 3600
    raw_window = rate * window_s * per_raw_store
    cap = 2 * 1000**3
    total = upload_7d + raw_window
    print(f"7-day outage: upload records {upload_7d / 1e6:,.0f} MB ({records_per_s:.1f} records/s, all kept); "
          f"raw readings of the local window ({cfg.local_window_h:g} h, older ones dropped once aggregated) "
          f"{raw_window / 1e6:,.0f} MB")
    print(f"7-day outage projected store size: {total / 1e6:,.0f} MB "
          f"({'under' if total < cap else 'OVER'} 2 GB)")
    print(f"targets: <=3 bytes/reading {'ok' if w['zstd'] <= 3 else 'MISSED'}; >=2.5x fewer than gzipped JSON "
          f"lines {'ok' if jsonl_gz / w['zstd'] >= 2.5 else 'MISSED'}; ratio>=20 "
          f"{'ok' if json_per / w['zstd'] >= 20 else 'MISSED'}; 7-day outage <2 GB "
          f"{'ok' if total < cap else 'MISSED'}")
    print(f"ratio={json_per / w['zstd']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
