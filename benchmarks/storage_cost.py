"""DynamoDB write units per 1,000 readings, as DynamoDB bills them, for the packed layout and the one before it.

A fleet (500 devices, one reading every 5 s by default) is cut into batches by the
batching window (the production one, 2 s, from terraform/environments/prod) and run
through the processor with the real DynamoDB adapters over a recording client: every
item they put is sized by DynamoDB's rules (attribute names + values; numbers by their
significant digits; 1 KB write units rounded up per item, one more put per global
secondary index the item is in, ALL projections). The same port calls are also sized
as the layout before packing wrote them (one item per reading, one per rollup bucket,
detector state as JSON text), so both layouts are measured on the same readings in one
run. The first ``--warmup`` minutes (the detector learning, its state larger) are left
out of the figures.

Prints a table per window, then one JSON object on the last line with
``wru_per_1000_readings`` (the packed layout at the first window) and
``old_wru_per_1000_readings``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from iotpm.adapters.dynamodb import (
    FLEET_KEY,
    DynamoAnomalies,
    DynamoLog,
    DynamoReadings,
    DynamoRollups,
    DynamoStates,
    TableNames,
    anomaly_item,
    table_specs,
)
from iotpm.adapters.dynamodb import item_size as item_bytes
from iotpm.adapters.dynamodb import write_units as units
from iotpm.adapters.s3 import encode_snapshot
from iotpm.service import Processor, RawRecord
from iotpm.service.memory import MemoryAlerts, MemoryArchive, MemorySnapshots
from iotpm.service.ports import (
    AnomalyRow,
    DeviceRecord,
    Failures,
    MetricStats,
    ReadingRow,
    RollupDelta,
    Snapshot,
    merge_stats,
)
from iotpm.service.processor import ProcessorSettings

NAMES = TableNames("readings", "devices", "anomalies", "rollups")
PROD_TFVARS = Path(__file__).resolve().parents[1] / "terraform" / "environments" / "prod" / "terraform.tfvars"
T0 = 1_789_999_200_000  # 2026-09-21 14:00 UTC, a whole hour
S3_PUT_USD_PER_K = 0.005  # S3 Standard PUT requests, us-east-1 list price
WRU_USD_PER_M = 0.625  # on-demand write request units, us-east-1 list price (eu-west-1 is ~13 % more)
GB_MONTH_USD = 0.25

Item = dict[str, Any]


# -- DynamoDB's item size (iotpm.adapters.dynamodb.item_size) and its indexes ----------


def _indexes() -> dict[str, list[tuple[tuple[str, ...], bool]]]:
    """Per table, each GSI's key attributes and whether it projects keys only (from the table specs)."""
    out: dict[str, list[tuple[tuple[str, ...], bool]]] = {}
    for spec in table_specs(NAMES):
        for gsi in spec.get("GlobalSecondaryIndexes", []):
            keys = tuple(k["AttributeName"] for k in gsi["KeySchema"])
            out.setdefault(spec["TableName"], []).append((keys, gsi["Projection"]["ProjectionType"] == "KEYS_ONLY"))
    return out


INDEX_KEYS = _indexes()
INDEX_ENTRY_BYTES = 100  # a keys-only index entry: its keys and the table's, well under 1 KB


@dataclass
class Meter:
    """Write units, items and bytes per table."""

    wru: Counter[str] = field(default_factory=Counter)
    items: Counter[str] = field(default_factory=Counter)
    bytes: Counter[str] = field(default_factory=Counter)
    on: bool = True

    def put(
        self,
        table: str,
        item: Mapping[str, Any],
        previous: Mapping[str, Any] | None = None,
        projected_all: bool = False,
    ) -> None:
        """One put, with its index writes: an index projecting everything is written whenever the item is;
        a keys-only one only when the item enters it or its keys change (a delete and a put then)."""
        if not self.on:
            return
        size = item_bytes(item)
        wru = units(size)
        for keys, keys_only in INDEX_KEYS.get(table, []):
            if not all(k in item for k in keys):
                continue
            if projected_all or not keys_only:
                wru += units(size)
            elif previous is None or not all(k in previous for k in keys):
                wru += 1
            elif any(previous[k] != item[k] for k in keys):
                wru += 2
        self.wru[table] += wru
        self.items[table] += 1
        self.bytes[table] += size


class RecordingClient:
    """Enough of a DynamoDB client for the adapters: items kept by key, every put metered."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.keys = {s["TableName"]: [k["AttributeName"] for k in s["KeySchema"]] for s in table_specs(NAMES)}
        self.tables: dict[str, dict[str, Item]] = {name: {} for name in self.keys}

    def _key(self, table: str, item: Mapping[str, Any]) -> str:
        return json.dumps([item[k] for k in self.keys[table]], sort_keys=True)

    def _put(self, table: str, item: Item) -> None:
        key = self._key(table, item)
        self.meter.put(table, item, self.tables[table].get(key))
        self.tables[table][key] = item

    def batch_write_item(self, RequestItems: dict[str, list[Item]]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        for table, requests in RequestItems.items():
            for r in requests:
                self._put(table, r["PutRequest"]["Item"])
        return {"UnprocessedItems": {}}

    def put_item(self, TableName: str, Item: Item, **_: Any) -> dict[str, Any]:  # noqa: N803 - boto3's names
        self._put(TableName, Item)
        return {}

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        out = {}
        for table, spec in RequestItems.items():
            got = (self.tables[table].get(self._key(table, k)) for k in spec["Keys"])
            out[table] = [it for it in got if it is not None]
        return {"Responses": out, "UnprocessedKeys": {}}

    def get_item(self, TableName: str, Key: Item, **_: Any) -> dict[str, Any]:  # noqa: N803 - boto3's names
        item = self.tables[TableName].get(self._key(TableName, Key))
        return {"Item": item} if item else {}

    def query(self, TableName: str, ExpressionAttributeValues: Item, ScanIndexForward: bool = True,  # noqa: N803
              **_: Any) -> dict[str, Any]:  # fmt: skip
        """The batch log's one query shape: a partition's items above a sort key."""
        part, low = ExpressionAttributeValues[":d"]["S"], ExpressionAttributeValues[":k"]["S"]
        items = [it for it in self.tables[TableName].values() if it["device_id"]["S"] == part and it["sk"]["S"] > low]
        items.sort(key=lambda it: str(it["sk"]["S"]), reverse=not ScanIndexForward)
        return {"Items": items}

    def update_item(self, TableName: str, Key: Item, **_: Any) -> dict[str, Any]:  # noqa: N803 - boto3's names
        item = dict(self.tables[TableName][self._key(TableName, Key)], notified={"BOOL": True})
        self._put(TableName, item)
        return {}


# -- the layout before packing (items as the adapters wrote them until this change) ----


def _n(value: float | int) -> dict[str, str]:
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def _num_map(values: Mapping[str, float]) -> dict[str, Any]:
    return {"M": {k: _n(float(v)) for k, v in values.items()}}


def legacy_reading(row: ReadingRow) -> Item:
    item: Item = {
        "device_id": {"S": row.device_id},
        "sk": {"S": row.key},
        "ts": _n(row.ts_ms),
        "site": {"S": row.site},
        "line": {"S": row.line},
        "device_type": {"S": row.device_type},
        "metrics": _num_map(row.metrics),
        "score": _n(row.score),
        "anomaly": {"BOOL": row.anomaly},
        "expires_at": _n(row.expires_at),
    }
    if row.seq is not None:
        item["seq"] = _n(row.seq)
    return item


def legacy_device(r: DeviceRecord) -> Item:
    return {
        "device_id": {"S": r.device_id},
        "fleet": {"S": FLEET_KEY},
        "site_key": {"S": f"{r.site}#{r.line}#{r.device_id}"},
        "site": {"S": r.site},
        "line": {"S": r.line},
        "device_type": {"S": r.device_type},
        "detector": {"S": json.dumps(r.detector, separators=(",", ":"))},
        "last_mark": _n(r.last_mark),
        "last_ts": _n(r.last_ts_ms),
        "latest": _num_map(r.latest),
        "health": _n(float(r.health)),
        "alarm_open": {"BOOL": r.alarm_open},
        "alarm_since": {"NULL": True} if r.alarm_since_ms is None else _n(r.alarm_since_ms),
        "trend": {"S": json.dumps(r.trend, separators=(",", ":"))},
        "readings": _n(r.readings),
        "updated": _n(r.updated_ms),
        "version": _n(r.version + 1),
    }


def legacy_bucket(d: RollupDelta, metrics: Mapping[str, MetricStats], anomalies: int, mark: int) -> Item:
    stats = {
        name: {"M": {"count": _n(s.count), "min": _n(s.min), "max": _n(s.max), "sum": _n(s.sum)}}
        for name, s in metrics.items()
    }
    return {
        "series": {"S": f"{d.device_id}#{d.resolution}"},
        "bucket": _n(d.bucket_ms),
        "device_id": {"S": d.device_id},
        "resolution": {"S": d.resolution},
        "metrics": {"M": stats},
        "anomalies": _n(anomalies),
        "last_mark": _n(mark),
        "expires_at": _n(d.expires_at),
    }


class Legacy:
    """Sizes each port call as the layout before packing wrote it."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.buckets: dict[tuple[str, str, int], tuple[dict[str, MetricStats], int]] = {}

    def readings(self, rows: Sequence[ReadingRow]) -> None:
        for row in rows:
            self.meter.put(NAMES.readings, legacy_reading(row))

    def states(self, records: Sequence[DeviceRecord]) -> None:
        for record in records:  # the layout before had indexes that projected every attribute
            self.meter.put(NAMES.devices, legacy_device(record), projected_all=True)

    def rollups(self, deltas: Sequence[RollupDelta]) -> None:
        for d in deltas:
            key = (d.device_id, d.resolution, d.bucket_ms)
            metrics, anomalies = self.buckets.get(key, ({}, 0))
            merged = (merge_stats(metrics, d.metrics), anomalies + d.anomalies)
            self.buckets[key] = merged
            mark = d.first_ordinal + 1_000  # stands for the sequence number it held (same digits)
            self.meter.put(NAMES.rollups, legacy_bucket(d, *merged, mark))


class Tee:
    """A port that also shows each call to the legacy sizer (same calls, same order)."""

    def __init__(self, inner: Any, legacy: Any) -> None:
        self.inner, self.legacy = inner, legacy

    def put_many(self, rows: Sequence[Any], **kwargs: Any) -> Failures:
        self.legacy(rows)
        failures: Failures = self.inner.put_many(rows, **kwargs)
        return failures

    def apply(self, deltas: Sequence[RollupDelta]) -> Failures:
        self.legacy(deltas)
        failures: Failures = self.inner.apply(deltas)
        return failures

    def get_many(self, ids: Sequence[str]) -> dict[str, DeviceRecord]:
        got: dict[str, DeviceRecord] = self.inner.get_many(ids)
        return got

    def record(self, row: AnomalyRow) -> bool:
        fresh: bool = self.inner.record(row)
        if fresh:  # the same item in both layouts: put, then updated once its alert is sent
            self.legacy.meter.put(NAMES.anomalies, anomaly_item(row))
            self.legacy.meter.put(NAMES.anomalies, anomaly_item(row))
        return fresh

    def mark_notified(self, row: AnomalyRow) -> None:
        self.inner.mark_notified(row)


# -- the fleet ------------------------------------------------------------------------


def prod_window_s() -> float:
    for line in PROD_TFVARS.read_text().splitlines():
        name, _, value = line.partition("=")
        if name.strip() == "batching_window_s":
            return float(value.split("#")[0].strip())
    raise SystemExit(f"batching_window_s not found in {PROD_TFVARS}")


def fleet_batches(devices: int, interval_s: float, window_s: float, minutes: float,
                  shards: int = 4) -> list[list[RawRecord]]:  # fmt: skip
    """Each device reads every ``interval_s`` (phases spread) on one of ``shards`` shards; a batch is a window's
    records (the processor writes a log entry and a snapshot per shard of a batch)."""
    rng = np.random.default_rng(7)
    interval, window = int(interval_s * 1000), int(window_s * 1000)
    phase = (np.arange(devices) * interval) // devices
    n = int(minutes * 60_000 // interval)
    events: list[tuple[int, int, int]] = sorted(
        (T0 + int(phase[d]) + k * interval, d, k) for d in range(devices) for k in range(n)
    )
    noise = rng.normal(size=(len(events), 3))
    batches: dict[int, list[RawRecord]] = {}
    for i, (ts, d, k) in enumerate(events):
        device = f"dev-{d:04d}"
        metrics = {
            "temperature_c": round(55.0 + 0.5 * noise[i, 0], 2),
            "vibration_mm_s": round(2.0 + 0.1 * noise[i, 1], 3),
            "pressure_psi": round(90.0 + 1.5 * noise[i, 2], 2),
        }
        body = {
            "schema_version": 1,
            "device_id": device,
            "ts": ts,
            "seq": k,
            "site": "plant-1",
            "line": f"line-{d % 10}",
            "device_type": "pump",
            "metrics": metrics,
        }
        # Kinesis sequence numbers are 56 digits (they sit in device records and log keys)
        record = RawRecord(f"4962{i:052d}", device, json.dumps(body).encode(), ts + 300, f"shard-{d % shards}")
        batches.setdefault((ts - T0) // window, []).append(record)
    return [batches[k] for k in sorted(batches)]


class CountedSnapshots(MemorySnapshots):
    """Snapshots in memory, their S3 requests and bytes counted (S3 bills per request, not per KB)."""

    def __init__(self) -> None:
        super().__init__()
        self.puts = self.bytes = 0
        self.on = False

    def put(self, shard: str, snapshot: Snapshot) -> None:
        super().put(shard, snapshot)
        if self.on:
            self.puts += 1
            self.bytes += len(encode_snapshot(snapshot))


@dataclass
class Run:
    window_s: float
    readings: int
    new: Meter
    old: Meter
    seconds: float
    behind: Meter | None = None
    snapshots: CountedSnapshots | None = None


def run(devices: int, interval_s: float, window_s: float, minutes: float, warmup: float,
        compact_s: int | None = None, shards: int = 4) -> Run:  # fmt: skip
    """The fleet through the processor: write-through (both layouts metered), or write-behind."""
    new, old = Meter(on=False), Meter(on=False)
    client = RecordingClient(new)
    legacy = Legacy(old)
    states = Tee(DynamoStates(client, NAMES.devices, workers=1), legacy.states)
    snaps = CountedSnapshots()
    proc = Processor(
        states=states,
        readings=Tee(DynamoReadings(client, NAMES.readings, workers=1), legacy.readings),
        anomalies=Tee(DynamoAnomalies(client, NAMES.anomalies), legacy),
        rollups=Tee(DynamoRollups(client, NAMES.rollups, workers=1), legacy.rollups),
        archive=MemoryArchive(),
        alerts=MemoryAlerts(),
        settings=ProcessorSettings(compact_interval_s=compact_s or 600),
        batch_log=DynamoLog(client, NAMES.readings) if compact_s else None,
        snapshots=snaps if compact_s else None,
    )
    readings = 0
    t0 = time.perf_counter()
    for records in fleet_batches(devices, interval_s, window_s, minutes + warmup, shards):
        counting = records[0].arrival_ms - T0 >= warmup * 60_000
        new.on = old.on = snaps.on = counting
        out = proc(records, now_ms=records[-1].arrival_ms)
        assert not out.errors and out.counts.stored == len(records), out
        readings += len(records) if counting else 0
        proc.archive = MemoryArchive()  # the archive is not what is measured; keep memory flat
    if compact_s:
        return Run(window_s, readings, Meter(), old, time.perf_counter() - t0, new, snaps)
    return Run(window_s, readings, new, old, time.perf_counter() - t0)


def per_1000(wru: int, readings: int) -> float:
    return round(wru * 1000 / readings, 1)


def report(r: Run, devices: int, interval_s: float) -> dict[str, Any]:
    readings_per_month = devices / interval_s * 86_400 * 30
    print(f"\n== window {r.window_s:g} s: {r.readings:,} readings measured ({r.seconds:.0f} s to run)")
    head = ("old WRU/1k", "new WRU/1k", "old items/1k", "new items/1k", "new B/item")
    print(f"{'table':<10} {head[0]:>11} {head[1]:>11} {head[2]:>13} {head[3]:>13} {head[4]:>11}")
    for table in (NAMES.readings, NAMES.devices, NAMES.rollups, NAMES.anomalies):
        items = r.new.items[table]
        print(
            f"{table:<10} {per_1000(r.old.wru[table], r.readings):>11} {per_1000(r.new.wru[table], r.readings):>11} "
            f"{per_1000(r.old.items[table], r.readings):>13} {per_1000(items, r.readings):>13} "
            f"{(r.new.bytes[table] // items if items else 0):>11}"
        )
    old, new = sum(r.old.wru.values()), sum(r.new.wru.values())
    print(f"{'total':<10} {per_1000(old, r.readings):>11} {per_1000(new, r.readings):>11}")
    month_old = old / r.readings * readings_per_month
    month_new = new / r.readings * readings_per_month
    print(
        f"per month at {readings_per_month / 1e6:.0f} M readings: old {month_old / 1e6:,.0f} M WRU "
        f"(${month_old / 1e6 * WRU_USD_PER_M:,.0f}), new {month_new / 1e6:,.0f} M WRU "
        f"(${month_new / 1e6 * WRU_USD_PER_M:,.0f}) at ${WRU_USD_PER_M}/M WRU"
    )
    stored = r.new.bytes[NAMES.readings] + 100 * r.new.items[NAMES.readings]  # DynamoDB adds 100 B an item
    stored_old = r.old.bytes[NAMES.readings] + 100 * r.old.items[NAMES.readings]
    gb90 = readings_per_month * 3 / 1e9
    print(
        f"readings stored for 90 days: old {stored_old / r.readings * gb90:,.0f} GB, "
        f"new {stored / r.readings * gb90:,.0f} GB (${stored / r.readings * gb90 * GB_MONTH_USD:,.0f}/month)"
    )
    return {
        "window_s": r.window_s,
        "readings": r.readings,
        "old_wru_per_1000_readings": per_1000(old, r.readings),
        "wru_per_1000_readings": per_1000(new, r.readings),
        "new_by_table": {t: per_1000(r.new.wru[t], r.readings) for t in r.new.wru},
        "old_by_table": {t: per_1000(r.old.wru[t], r.readings) for t in r.old.wru},
        "new_usd_per_month": round(month_new / 1e6 * WRU_USD_PER_M),
        "old_usd_per_month": round(month_old / 1e6 * WRU_USD_PER_M),
        "readings_gb_90_days": round(stored / r.readings * gb90),
    }


def report_behind(r: Run, devices: int, interval_s: float, compact_s: int) -> dict[str, Any]:
    assert r.behind is not None and r.snapshots is not None
    readings_per_month = devices / interval_s * 86_400 * 30
    m = r.behind
    print(f"\n== write-behind, window {r.window_s:g} s, compaction every {compact_s} s: {r.readings:,} readings "
          f"({r.seconds:.0f} s to run)")  # fmt: skip
    print(f"{'table':<10} {'WRU/1k':>9} {'items/1k':>9} {'B/item':>8}")
    for table in (NAMES.readings, NAMES.devices, NAMES.rollups, NAMES.anomalies):
        items = m.items[table]
        print(f"{table:<10} {per_1000(m.wru[table], r.readings):>9} {per_1000(items, r.readings):>9} "
              f"{(m.bytes[table] // items if items else 0):>8}")  # fmt: skip
    total = sum(m.wru.values())
    month = total / r.readings * readings_per_month
    s3_puts = r.snapshots.puts / r.readings * readings_per_month
    print(f"{'total':<10} {per_1000(total, r.readings):>9}")
    print(f"S3 snapshot PUTs: {per_1000(r.snapshots.puts, r.readings)}/1k readings, "
          f"{r.snapshots.bytes // max(1, r.snapshots.puts):,} B each; per month {s3_puts / 1e6:.1f} M "
          f"(${s3_puts / 1e3 * S3_PUT_USD_PER_K:,.0f} at ${S3_PUT_USD_PER_K}/1k)")  # fmt: skip
    print(f"per month: {month / 1e6:,.0f} M WRU (${month / 1e6 * WRU_USD_PER_M:,.0f})")
    stored = m.bytes[NAMES.readings] + 100 * m.items[NAMES.readings]  # chunks and log items, both kept 90 days
    gb90 = stored / r.readings * readings_per_month * 3 / 1e9
    print(f"readings table for 90 days (chunks and log): {gb90:,.0f} GB (${gb90 * GB_MONTH_USD:,.0f}/month)")
    return {
        "readings_gb_90_days": round(gb90),
        "wru_per_1000_readings": per_1000(total, r.readings),
        "by_table": {t: per_1000(m.wru[t], r.readings) for t in m.wru},
        "usd_per_month": round(month / 1e6 * WRU_USD_PER_M),
        "s3_puts_per_1000_readings": per_1000(r.snapshots.puts, r.readings),
        "s3_usd_per_month": round(s3_puts / 1e3 * S3_PUT_USD_PER_K),
        "compact_interval_s": compact_s,
    }


def prod_compact_s() -> int:
    """The pipeline module's compact_interval_s default, unless prod's tfvars set one."""
    for line in PROD_TFVARS.read_text().splitlines():
        name, _, value = line.partition("=")
        if name.strip() == "compact_interval_s":
            return int(value.split("#")[0].strip())
    text = (PROD_TFVARS.parents[2] / "modules" / "pipeline" / "variables.tf").read_text()
    block = text[text.index('variable "compact_interval_s"') :]
    return int(block[block.index("default") :].split("=")[1].split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between a device's readings")
    parser.add_argument("--windows", default="", help="batching windows in seconds (default: prod's), comma-separated")
    parser.add_argument("--minutes", type=float, default=10.0, help="measured minutes of fleet time")
    parser.add_argument("--warmup", type=float, default=9.0, help="minutes run first and left out (100 readings)")
    parser.add_argument("--shards", type=int, default=4, help="Kinesis shards the fleet is spread over")
    args = parser.parse_args()
    windows = [float(w) for w in args.windows.split(",") if w] or [prod_window_s()]
    print(
        f"{args.devices} devices, one reading every {args.interval:g} s, windows {windows} s "
        f"(prod: {prod_window_s():g} s), {args.shards} shard(s), {args.minutes:g} min measured after "
        f"{args.warmup:g} min; "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    results = [report(run(args.devices, args.interval, w, args.minutes, args.warmup, shards=args.shards),
                      args.devices, args.interval) for w in windows]  # fmt: skip
    compact = prod_compact_s()
    behind = report_behind(run(args.devices, args.interval, windows[0], args.minutes, args.warmup, compact,
                               args.shards), args.devices, args.interval, compact)  # fmt: skip
    first = results[0]
    through = {k: first[k] for k in ("wru_per_1000_readings", "new_by_table", "new_usd_per_month")}
    print(json.dumps({"devices": args.devices, "interval_s": args.interval, "window_s": first["window_s"],
                      "readings": first["readings"], "wru_per_1000_readings": behind["wru_per_1000_readings"],
                      "write_behind": behind, "write_through": through,
                      "old_wru_per_1000_readings": first["old_wru_per_1000_readings"], "target": 100,
                      "others": results[1:]}))  # fmt: skip


if __name__ == "__main__":
    main()
