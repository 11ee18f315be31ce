"""``iotpm query`` over a day of a fleet's archive: DuckDB time per named query, bytes on disk.

Writes one UTC day of raw archive objects for ``--devices`` devices at ``--interval``
seconds per reading (canonical messages, the processor's own line encoder and key
layout, ``--batch`` records per object, a thousandth of the batches archived twice as
a Lambda retry would), then times each named query through
:class:`iotpm.analytics.duck.ArchiveDB` (what ``iotpm query --archive`` runs), the
median of ``--repeat`` runs. Baseline in the same run: ``SELECT count(*) FROM
raw_records`` (reading and decompressing every object, no JSON parsing of ``data``).
It also writes the same readings as Parquet (one row per reading, metrics as columns)
and times the limit-breach question on it, to weigh a columnar copy: bytes Athena
would scan and the time. Prints figures, then one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

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
        db = ArchiveDB(root)
        base = timed(lambda: db.query("SELECT count(*) FROM raw_records"), args.repeat)
        print(f"baseline count(*) over raw_records: {base:.2f} s")
        figures: dict[str, float] = {}
        for name, q in named_queries().items():
            values = [PARAMS[p] for p in q.params]
            figures[name] = timed(lambda q=q, values=values: db.query(q.template, values), args.repeat)
            print(f"iotpm query {name}: {figures[name]:.2f} s (median of {args.repeat})")
        parquet = root / "readings.parquet"
        db.query(
            "COPY (SELECT device_id, site, line, ts_ms, arrival_ms, dt,"
            " CAST(json_extract_scalar(data, '$.metrics.temperature_c') AS DOUBLE) AS temperature_c,"
            " CAST(json_extract_scalar(data, '$.metrics.pressure_psi') AS DOUBLE) AS pressure_psi,"
            " CAST(json_extract_scalar(data, '$.metrics.vibration_mm_s') AS DOUBLE) AS vibration_mm_s"
            " FROM ${readings} r)"
            f" TO '{parquet}' (FORMAT parquet)"
        )
        pq_size = parquet.stat().st_size
        breach = "sum(CASE WHEN temperature_c < 10 OR temperature_c > 80 THEN 1 ELSE 0 END)"
        pq_sql = f"SELECT dt, site, line, count(*), {breach} FROM read_parquet('{parquet}') GROUP BY ALL"
        pq_time = timed(lambda: db.con.execute(pq_sql).fetchall(), args.repeat)
        print(f"the same readings as Parquet: {pq_size / 1e6:.1f} MB; limit breaches on it {pq_time:.2f} s "
              f"(JSON: {figures['limit_breaches_per_line_per_day']:.2f} s)")  # fmt: skip
        print(json.dumps({"devices": args.devices, "interval_s": args.interval, "records": records,
                          "archive_mb": round(size / 1e6, 1), "baseline_count_s": round(base, 3),
                          "queries_s": {k: round(v, 3) for k, v in figures.items()},
                          "parquet_mb": round(pq_size / 1e6, 1), "parquet_breaches_s": round(pq_time, 3)}))  # fmt: skip


if __name__ == "__main__":
    main()
