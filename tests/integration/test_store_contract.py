"""The stores' contract, run on the in-memory fakes and on the DynamoDB adapters (emulator, DynamoDB Local).

What a store promises the processor and the API, on the packed layout: a chunk or
block written again by a retry (same first ordinal) replaces the failed attempt, a
new batch adds; reads order, cut and page the same on both.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from iotpm.adapters.dynamodb import DynamoAnomalies, DynamoReadings, DynamoRollups, DynamoStates
from iotpm.adapters.dynamodb_queries import DynamoQueries
from iotpm.api.memory import MemoryQueries
from iotpm.api.ports import AnomalyFilter, DeviceFilter, Queries
from iotpm.service import memory as m
from iotpm.service.ports import (
    CHUNK_ROWS,
    ROLLUP_BLOCK_MS,
    AnomalyRow,
    AnomalyStore,
    DeviceRecord,
    MetricStats,
    ReadingRow,
    ReadingStore,
    RollupDelta,
    RollupStore,
    StateStore,
)
from iotpm.testing.clock import recent

from .aws import DYNAMODB_BACKENDS, Environment

HOUR = 3_600_000
T0 = recent(1_789_999_200_000)  # a whole hour, a day or two ago: DynamoDB Local sweeps expired items
BLOCK = ROLLUP_BLOCK_MS["1m"]


@dataclass
class Stores:
    readings: ReadingStore
    rollups: RollupStore
    states: StateStore
    anomalies: AnomalyStore
    queries: Queries


@pytest.fixture(params=["memory", *DYNAMODB_BACKENDS])
def stores(request: pytest.FixtureRequest) -> Iterator[Stores]:
    if request.param == "memory":
        readings, rollups, states, anomalies = (
            m.MemoryReadings(),
            m.MemoryRollups(),
            m.MemoryStates(),
            m.MemoryAnomalies(),
        )
        out = Stores(readings, rollups, states, anomalies, MemoryQueries(states, readings, anomalies, rollups))
    else:
        endpoint = request.getfixturevalue("endpoint")
        local = request.getfixturevalue("dynamodb_local") if request.param == "dynamodb-local" else None
        env = Environment(endpoint, timestream=False, dynamodb=local)
        out = Stores(
            DynamoReadings(env.ddb, env.names.readings),
            DynamoRollups(env.ddb, env.names.rollups),
            DynamoStates(env.ddb, env.names.devices),
            DynamoAnomalies(env.ddb, env.names.anomalies),
            DynamoQueries(env.ddb, env.names),
        )
    assert not out.states.put_many([DeviceRecord("dev-1", "plant-1", "line-1", "pump")])
    yield out


def row(ordinal: int, ts_ms: int, value: float = 1.0, metrics: dict[str, float] | None = None) -> ReadingRow:
    metrics = {"temperature_c": value} if metrics is None else metrics
    return ReadingRow(
        "dev-1", ts_ms, f"{ts_ms:013d}#{ordinal}", ordinal, "plant-1", "line-1", "pump", metrics, 0.5, False, 1, ordinal
    )


def delta(first: int, bucket_ms: int, values: list[float], anomalies: int = 0) -> RollupDelta:
    stats = {"temperature_c": MetricStats(len(values), min(values), max(values), sum(values))}
    return RollupDelta("dev-1", "1m", bucket_ms, first, stats, anomalies, 2_000_000_000)


def all_readings(q: Queries, limit: int = 1000) -> list[tuple[int, float]]:
    out, cursor = [], None
    while True:
        page = q.readings("dev-1", T0 - 10 * HOUR, T0 + 10 * HOUR, limit, cursor)
        out += [(r.ordinal, r.metrics["temperature_c"]) for r in page.items]
        cursor = page.cursor
        if cursor is None:
            return out


def minutes(q: Queries, limit: int = 1000, device_id: str = "dev-1") -> list[tuple[int, Any, int]]:
    out, cursor = [], None
    while True:
        page = q.buckets(device_id, "1m", T0 - HOUR, T0 + 2 * HOUR, limit, cursor)
        out += [(b.start_ms - T0, dict(b.metrics["temperature_c"]), b.anomalies) for b in page.items]
        cursor = page.cursor
        if cursor is None:
            return out


def test_a_retried_chunk_replaces_the_failed_attempt_and_the_next_batch_adds(stores: Stores) -> None:
    stores.readings.put_many([row(i, T0 + i * 1000, 1.0) for i in range(5)])  # the attempt whose state failed
    stores.readings.put_many([row(i, T0 + i * 1000, 2.0) for i in range(3)])  # its retry, a shorter batch
    stores.readings.put_many([row(i, T0 + i * 1000, 3.0) for i in range(3, 7)])  # the next batch
    assert all_readings(stores.queries) == [(0, 2.0), (1, 2.0), (2, 2.0), (3, 3.0), (4, 3.0), (5, 3.0), (6, 3.0)]


def test_a_batch_of_more_readings_than_a_chunk_holds_is_cut_where_its_retry_cuts(stores: Stores) -> None:
    n = CHUNK_ROWS * 2 + 10
    stores.readings.put_many([row(i, T0 + i * 10, 1.0) for i in range(n)])  # failed attempt
    stores.readings.put_many([row(i, T0 + i * 10, 2.0) for i in range(n + 40)])  # its retry, with newer readings
    assert all_readings(stores.queries) == [(i, 2.0) for i in range(n + 40)]


def test_readings_of_a_batch_across_hours_are_chunked_per_hour_and_read_in_key_order(stores: Stores) -> None:
    # late and out-of-order readings: ordinals follow arrival, keys follow time
    ts = [T0 + HOUR + 5_000, T0 + 10_000, T0 + HOUR + 1_000, T0 - 1_000, T0 + 20_000]
    stores.readings.put_many([row(i, t, float(i)) for i, t in enumerate(ts)])
    stores.readings.put_many([row(5, T0 + 15_000, 5.0)])
    assert [o for o, _ in all_readings(stores.queries)] == [3, 1, 5, 4, 2, 0]
    assert [o for o, _ in all_readings(stores.queries, limit=2)] == [3, 1, 5, 4, 2, 0]  # pages cross hours
    page = stores.queries.readings("dev-1", T0 + 10_000, T0 + HOUR + 2_000, 10, None)
    assert [r.ordinal for r in page.items] == [1, 5, 4, 2] and page.cursor is None


def test_a_retried_rollup_replaces_its_own_contribution_and_a_new_batch_adds(stores: Stores) -> None:
    stores.rollups.apply([delta(0, T0, [1.0, 2.0, 3.0, 4.0, 5.0])])  # 5 readings; the state write then fails
    # the retry starts at the same reading and carries 5 newer ones in the same bucket
    stores.rollups.apply([delta(0, T0, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], anomalies=1)])
    assert minutes(stores.queries) == [(0, {"count": 10, "min": 1.0, "max": 10.0, "mean": 5.5}, 1)]
    stores.rollups.apply([delta(10, T0, [0.5, 20.0]), delta(11, T0 + 60_000, [7.0])])  # the next batch
    assert minutes(stores.queries) == [
        (0, {"count": 12, "min": 0.5, "max": 20.0, "mean": 75.5 / 12}, 1),
        (60_000, {"count": 1, "min": 7.0, "max": 7.0, "mean": 7.0}, 0),
    ]


def test_a_retry_that_no_longer_reaches_a_block_leaves_it_to_the_batch_that_does(stores: Stores) -> None:
    # the failed attempt touched two blocks; its retry (a shorter batch) only the first
    stores.rollups.apply([delta(0, T0, [1.0]), delta(1, T0 + BLOCK, [2.0, 3.0])])
    stores.rollups.apply([delta(0, T0, [1.0])])
    # the next batch starts at reading 1, the first of the second block again: it replaces, not adds
    stores.rollups.apply([delta(1, T0 + BLOCK, [2.0, 3.0, 4.0])])
    assert [(at, s["count"]) for at, s, _ in minutes(stores.queries)] == [(0, 1), (BLOCK, 3)]


def test_bucket_pages_cross_blocks_and_resume_after_their_cursor(stores: Stores) -> None:
    stores.rollups.apply([delta(k, T0 + k * 60_000, [float(k)]) for k in range(75)])
    whole = minutes(stores.queries)
    assert [at for at, _, _ in whole] == [k * 60_000 for k in range(75)]
    assert minutes(stores.queries, limit=7) == whole
    page = stores.queries.buckets("dev-1", "1m", T0 + 5 * 60_000, T0 + 12 * 60_000, 100, None)
    assert [b.start_ms - T0 for b in page.items] == [k * 60_000 for k in range(5, 12)]


def test_a_full_chunk_of_readings_at_the_metric_cap_is_one_item_and_reads_back(stores: Stores) -> None:
    """CHUNK_ROWS readings of 64 metrics (a device's default channel cap), values that barely compress:
    one chunk item, under DynamoDB's 400 KB item limit."""
    rng = random.Random(7)
    names = [f"channel_{k:02d}_mm_s" for k in range(64)]
    rows = [row(i, T0 + i * 10, metrics={n: rng.uniform(0, 1e3) for n in names}) for i in range(CHUNK_ROWS)]
    assert not stores.readings.put_many(rows)
    page = stores.queries.readings("dev-1", T0, T0 + HOUR, CHUNK_ROWS + 1, None)
    assert [(r.ordinal, dict(r.metrics)) for r in page.items] == [(r.ordinal, dict(r.metrics)) for r in rows]


def test_a_batch_over_more_blocks_than_one_batch_write_takes_is_stored_whole(stores: Stores) -> None:
    devices = [f"dev-{d:02d}" for d in range(14)]  # 14 devices x 2 blocks: 28 items, BatchWriteItem takes 25
    stats = lambda v: {"temperature_c": MetricStats(1, v, v, v)}  # noqa: E731 - one reading's stats
    deltas = [
        RollupDelta(d, "1m", T0 + b * BLOCK, 0, stats(1.0 + b), 0, 2_000_000_000) for d in devices for b in range(2)
    ]
    assert not stores.rollups.apply(deltas)
    for d in devices:
        got = [(at, s["count"], s["min"]) for at, s, _ in minutes(stores.queries, device_id=d)]
        assert got == [(b * BLOCK, 1, 1.0 + b) for b in range(2)], d


def test_devices_and_fleet_anomalies_filter_and_page_alike(stores: Stores) -> None:
    """The index queries with their filter expressions: the same devices and alarms, in the same order, by pages."""
    records = [
        DeviceRecord(f"dev-{i:02d}", f"plant-{i % 2}", f"line-{i % 3}", "pump", health=3.0 * i, last_ts_ms=T0)
        for i in range(30)
    ]
    assert not stores.states.put_many(records)
    everyone = [*records, DeviceRecord("dev-1", "plant-1", "line-1", "pump")]
    for where in (DeviceFilter(), DeviceFilter(line="line-2"), DeviceFilter(site="plant-1", health_below=50.0)):
        chosen = [
            r
            for r in everyone
            if where.site in (None, r.site) and where.line in (None, r.line)
            and (where.health_below is None or r.health < where.health_below)
        ]  # fmt: skip
        order = (lambda r: r.device_id) if where.line else (lambda r: f"{r.site}#{r.line}#{r.device_id}")
        assert _all_devices(stores.queries, where) == [r.device_id for r in sorted(chosen, key=order)], where
    rows = [
        AnomalyRow(f"dev-{i:02d}", T0 - i * 5 * HOUR, "raise", ("warning", "critical")[i % 2], 1.0, f"plant-{i % 2}",
                   f"line-{i % 3}", "pump", ({"detector": "threshold", "metric": "temperature_c"},), 2_000_000_000)
        for i in range(20)
    ]  # fmt: skip
    for r in rows:
        assert stores.anomalies.record(r)
    for sev, site, line in ((None, None, None), ("critical", None, None), ("warning", "plant-0", "line-1")):
        where = AnomalyFilter(T0 - 90 * HOUR, T0 + HOUR, sev, site, line)
        chosen = [r for r in rows if where.since_ms <= r.ts_ms and sev in (None, r.severity)
                  and site in (None, r.site) and line in (None, r.line)]  # fmt: skip
        assert _all_anomalies(stores.queries, where) == [(r.ts_ms, r.device_id) for r in chosen], where


def test_device_records_reads_many_devices_together_and_skips_unknown_ones(stores: Stores) -> None:
    """Fleet-wide alarm states read their devices' records in batches: past 100 keys, repeated and unknown ids."""
    records = [DeviceRecord(f"dev-{i:03d}", "plant-1", "line-1", "pump", alarm_open=i % 3 == 0,
                            alarm_since_ms=T0 + i if i % 3 == 0 else None) for i in range(130)]  # fmt: skip
    assert not stores.states.put_many(records)
    asked = [f"dev-{i:03d}" for i in range(0, 130, 1)] + ["dev-007", "nobody", "dev-129"]
    got = stores.queries.device_records(asked)
    assert sorted(got) == sorted(r.device_id for r in records)
    for r in records:
        assert (got[r.device_id].alarm_open, got[r.device_id].alarm_since_ms) == (r.alarm_open, r.alarm_since_ms)
    assert stores.queries.device_records([]) == {}


def test_a_device_record_read_or_written_is_the_callers_own(stores: Stores) -> None:
    """What a caller does to a record it wrote or read, nested dicts and lists included, never changes the table."""
    detector = {"v": 11, "channels": ["pressure_psi", "temperature_c"], "ready": True, "state": "AAAA", "x": [[1, 2]]}
    record = DeviceRecord("dev-9", "plant-1", "line-1", "pump", detector=detector, latest={"temperature_c": 1.5},
                          trend={"temperature_c": {"level": 1.5, "limit": None}},
                          ingest={"pos": {"shard-1": "49"}, "recent": "AAAA"}, flushed={"shard-1": "k1"})  # fmt: skip
    assert not stores.states.put_many([record])

    def scribble(r: DeviceRecord) -> None:
        assert r.detector is not None
        r.detector["channels"].append("rpm")
        r.detector["x"][0].append(3)
        r.detector["ready"] = False
        r.latest["temperature_c"] = 9.0
        r.trend["temperature_c"]["level"] = 9.0
        r.ingest["pos"]["shard-1"] = "50"
        r.flushed["shard-1"] = "k2"

    def as_written(r: DeviceRecord) -> None:
        assert r.detector == {"v": 11, "channels": ["pressure_psi", "temperature_c"], "ready": True, "state": "AAAA",
                              "x": [[1, 2]]}  # fmt: skip
        assert (r.latest, r.trend) == ({"temperature_c": 1.5}, {"temperature_c": {"level": 1.5, "limit": None}})
        assert (r.ingest, r.flushed) == ({"pos": {"shard-1": "49"}, "recent": "AAAA"}, {"shard-1": "k1"})

    scribble(record)  # the writer goes on with its copy
    first = stores.states.get_many(["dev-9"])["dev-9"]
    as_written(first)
    scribble(first)  # a reader changes what it read
    as_written(stores.states.get_many(["dev-9"])["dev-9"])


def _all_devices(q: Queries, where: DeviceFilter) -> list[str]:
    out, cursor = [], None
    while True:
        page = q.devices(where, 7, cursor)
        out += [r.device_id for r in page.items]
        if (cursor := page.cursor) is None:
            return out


def _all_anomalies(q: Queries, where: AnomalyFilter) -> list[tuple[int, str]]:
    out, cursor = [], None
    while True:
        page = q.anomalies(where, 4, cursor)
        out += [(r.ts_ms, r.device_id) for r in page.items]
        if (cursor := page.cursor) is None:
            return out


def test_a_table_written_before_packing_reads_on_and_takes_new_batches(endpoint: str, dynamodb_endpoint: str) -> None:
    """Items of the layout before (one per reading, one per bucket) sit with chunks and blocks: no migration."""
    env = Environment(endpoint, timestream=False, dynamodb=dynamodb_endpoint)
    n = lambda v: {"N": str(v)}  # noqa: E731 - a DynamoDB number, for the items below
    for i, ts in enumerate((T0 + 1_000, T0 + BLOCK + 1_000)):
        env.ddb.put_item(
            TableName=env.names.readings,
            Item={"device_id": {"S": "dev-1"}, "sk": {"S": f"{ts:013d}#{i}"}, "ts": n(ts), "seq": n(i),
                  "site": {"S": "plant-1"}, "line": {"S": "line-1"}, "device_type": {"S": "pump"},
                  "metrics": {"M": {"temperature_c": n(9.5)}}, "score": n(0.5), "anomaly": {"BOOL": False},
                  "expires_at": n(1)},
        )  # fmt: skip
        stats = {"temperature_c": {"M": {"count": n(1), "min": n(9.5), "max": n(9.5), "sum": n(9.5)}}}
        env.ddb.put_item(
            TableName=env.names.rollups,
            Item={"series": {"S": "dev-1#1m"}, "bucket": n(ts - 1_000), "device_id": {"S": "dev-1"},
                  "resolution": {"S": "1m"}, "metrics": {"M": stats}, "anomalies": n(0), "last_mark": n(i),
                  "expires_at": n(2_000_000_000)},
        )  # fmt: skip
    new = Stores(DynamoReadings(env.ddb, env.names.readings), DynamoRollups(env.ddb, env.names.rollups),
                 DynamoStates(env.ddb, env.names.devices), DynamoAnomalies(env.ddb, env.names.anomalies),
                 DynamoQueries(env.ddb, env.names))  # fmt: skip
    new.readings.put_many([row(5, T0 + 30_000, 1.0), row(6, T0 + BLOCK + 2_000, 2.0)])
    new.rollups.apply([delta(5, T0, [1.0]), delta(5, T0 + BLOCK, [2.0])])  # the minutes of the old items
    assert all_readings(new.queries) == [(-1, 9.5), (5, 1.0), (-1, 9.5), (6, 2.0)]
    assert [(at, s["count"], s["min"]) for at, s, _ in minutes(new.queries)] == [(0, 2, 1.0), (BLOCK, 2, 2.0)]
