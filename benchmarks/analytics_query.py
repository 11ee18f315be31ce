"""``iotpm query`` over a day of a fleet's archive: each named query on the raw archive and compacted to Parquet.

Writes one UTC day of raw archive objects for ``--devices`` devices at ``--interval``
seconds per reading (canonical messages, the processor's own line encoder and key
layout, ``--batch`` records per object, a thousandth of the batches archived twice as
a Lambda retry would), then times each named query through
:class:`iotpm.analytics.duck.ArchiveDB` (what ``iotpm query --archive`` runs), the
median of ``--repeat`` runs: first over the raw gzip JSON Lines alone (the baseline,
as before compaction), then after the compaction job
(:mod:`iotpm.analytics.compaction`) ran an hour after the day ended (with its default
two hours' grace: the day's last hour is still raw, as it would be), and checks that
both answer the same. Bytes Athena would scan: every raw object of the day before;
after, the Parquet column chunks a query names (from the files' own metadata), the
duplicate check's key columns over the recent hours, and the raw objects still pending.
Prints figures, then one JSON object.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from iotpm.analytics.compaction import CompactionSettings, compact_folder
from iotpm.analytics.duck import ArchiveDB
from iotpm.analytics.queries import named_queries
from iotpm.service.ports import RawLine
from iotpm.service.processor import encode_lines

DAY = "2026-11-30"
PARAMS = {"device_id": "dev-0007", "from_day": DAY, "to_day": DAY, "silent_minutes": 15, "late_seconds": 60}


def write_day(root: Path, devices: int, interval_s: float, batch: int, seed: int = 0) -> tuple[int, int]:
    """The archive objects of one day; (records, bytes)."""
    rng = np.random.default_rng(seed)
    start = int(datetime.fromisoformat(f"{DAY}T00:00:00+00:00").timestamp() * 1000)
    steps = int(86_400 / interval_s)
    records = written = seq = 0
    pending: list[RawLine] = []

    def flush() -> None:
        nonlocal written
        first = pending[0]
        at = datetime.fromtimestamp(first.arrival_ms / 1000, tz=UTC)
        key = f"raw/year={at:%Y}/month={at:%m}/day={at:%d}/hour={at:%H}/{first.shard_id}-{first.sequence_number}-{pending[-1].sequence_number}.jsonl.gz"  # noqa: E501
        body = encode_lines(pending)
        target = root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
        written += len(body)
        if rng.random() < 0.001:  # a retried batch: the same records in a second, overlapping object
            (target.parent / f"{first.shard_id}-{first.sequence_number}-retry.jsonl.gz").write_bytes(body)
            written += len(body)
        pending.clear()

    noise = rng.normal(size=(steps, devices, 3))
    for k in range(steps):
        ts = start + int(k * interval_s * 1000)
        for d in range(devices):
            t, v, p = 55 + noise[k, d, 0], 2 + 0.1 * noise[k, d, 1], 90 + 1.5 * noise[k, d, 2]
            if d == 7 and k > steps // 2:
                t += 30.0  # one machine runs hot in the afternoon
            msg = {"schema_version": 1, "device_id": f"dev-{d:04d}", "ts": ts, "seq": k, "site": "plant-1",
                   "line": f"line-{1 + d % 4}", "device_type": "pump",
                   "metrics": {"temperature_c": round(t, 3), "vibration_mm_s": round(v, 4),
                               "pressure_psi": round(p, 2)}}  # fmt: skip
            seq += 1
            pending.append(RawLine(ts + 40, json.dumps(msg, separators=(",", ":")), f"dev-{d:04d}", f"{seq:030d}",
                                   "shardId-000000000000"))  # fmt: skip
            records += 1
            if len(pending) >= batch:
                flush()
    if pending:
        flush()
    return records, written


def timed(fn: object, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def run_all(db: ArchiveDB, repeat: int) -> tuple[dict[str, float], dict[str, list[tuple[object, ...]]]]:
    """Each named query's median time and its rows."""
    times, rows = {}, {}
    for name, q in named_queries().items():
        values = [PARAMS[p] for p in q.params]
        times[name] = timed(lambda q=q, values=values: db.query(q.template, values), repeat)
        rows[name] = db.query(q.template, values).rows
    return times, rows


def parquet_scan_bytes(db: ArchiveDB) -> dict[str, int]:
    """Per named query, the compressed bytes of the Parquet column chunks it reads, and the raw objects pending."""
    src = db.sources
    chunks: dict[str, int] = {}
    recent_keys = 0
    if src.compacted:
        files = [str(p) for p in src.compacted]
        for column, size in db.con.execute(
            "SELECT path_in_schema, sum(total_compressed_size) FROM parquet_metadata(?) GROUP BY 1", [files]
        ).fetchall():
            chunks[column] = int(size)
    if src.recent:
        row = db.con.execute(
            "SELECT sum(total_compressed_size) FROM parquet_metadata(?)"
            " WHERE path_in_schema IN ('shard_id', 'sequence_number')", [[str(p) for p in src.recent]]
        ).fetchone()  # fmt: skip
        recent_keys = int(row[0] or 0) if row else 0
    pending = sum(p.stat().st_size for p in src.pending) + sum(p.stat().st_size for p in src.quarantine)
    out = {}
    for name, q in named_queries().items():
        if "${readings}" not in q.template:  # quarantine only
            out[name] = sum(p.stat().st_size for p in src.quarantine)
            continue
        named = {c for c in chunks if re.search(rf"\b{c}\b", q.template)}
        out[name] = sum(chunks[c] for c in named) + recent_keys + pending
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between a device's readings")
    parser.add_argument("--batch", type=int, default=1000, help="records per archive object")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="iotpm-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        records, size = write_day(root, args.devices, args.interval, args.batch)
        took = time.perf_counter() - t0
        print(f"archive: {records:,} records in {size / 1e6:.1f} MB gzip JSON Lines ({took:.1f} s to write)")
        raw_db = ArchiveDB(root)
        base = timed(lambda: raw_db.query("SELECT count(*) FROM raw_records"), args.repeat)
        print(f"floor: count(*) over raw_records (read and gunzip every object, no JSON parsing) {base:.2f} s")
        before, before_rows = run_all(raw_db, args.repeat)
        raw_db.close()
        settings = CompactionSettings()
        now = int(datetime.fromisoformat(f"{DAY}T00:00:00+00:00").timestamp() * 1000) + 25 * 3_600_000
        t0 = time.perf_counter()
        done = compact_folder(root, now, settings)
        took = time.perf_counter() - t0
        print(f"compaction an hour after the day (grace {settings.grace_s} s): {len(done.hours)} hours, "
              f"{done.raw_objects} objects, {done.rows:,} readings -> {done.parquet_bytes / 1e6:.1f} MB Parquet "
              f"in {took:.1f} s; mark {done.through_hour}")  # fmt: skip
        db = ArchiveDB(root)
        after, after_rows = run_all(db, args.repeat)
        scanned = parquet_scan_bytes(db)
        print(f"{'named query':<34} {'raw JSON s':>10} {'compacted s':>11} {'Athena MB before':>17} {'after':>7}  same")
        for name in before:
            same = "yes" if before_rows[name] == after_rows[name] else "NO"
            before_mb = size / 1e6 if name != "quarantine_reasons" else 0.0
            print(f"{name:<34} {before[name]:>10.2f} {after[name]:>11.3f} {before_mb:>17.1f} "
                  f"{scanned[name] / 1e6:>7.2f}  {same}")  # fmt: skip
        identical = all(before_rows[n] == after_rows[n] for n in before)
        print(json.dumps({"devices": args.devices, "interval_s": args.interval, "records": records,
                          "archive_mb": round(size / 1e6, 1), "floor_count_s": round(base, 3),
                          "raw_queries_s": {k: round(v, 3) for k, v in before.items()},
                          "compacted_queries_s": {k: round(v, 3) for k, v in after.items()},
                          "max_compacted_s": round(max(after.values()), 3), "identical": identical,
                          "parquet_mb": round(done.parquet_bytes / 1e6, 1), "compaction_s": round(took, 1),
                          "pending_hours": 24 - len(done.hours),
                          "athena_mb_before": round(size / 1e6, 1),
                          "athena_mb_after": {k: round(v / 1e6, 2) for k, v in scanned.items()}}))  # fmt: skip


if __name__ == "__main__":
    main()
