"""In-memory implementations of the ports: for unit tests, benchmarks and dry runs.

They pass the same contract tests as the AWS adapters (tests/contract), so what a
test learns from a fake holds for DynamoDB, S3 and SNS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from iotpm.service.errors import ConflictError
from iotpm.service.ports import (
    Alert,
    AnomalyRow,
    ArchiveObject,
    DeviceRecord,
    Failures,
    MetricStats,
    ReadingRow,
    RollupDelta,
    merge_stats,
)


@dataclass
class Rollup:
    """A stored bucket: aggregates plus the last order mark applied to it."""

    metrics: dict[str, MetricStats]
    anomalies: int
    last_mark: int


class MemoryStates:
    """Device records keyed by id, with versions."""

    def __init__(self) -> None:
        self.items: dict[str, DeviceRecord] = {}

    def get_many(self, device_ids: Sequence[str]) -> dict[str, DeviceRecord]:
        return {d: _stored(self.items[d]) for d in device_ids if d in self.items}

    def put_many(self, records: Sequence[DeviceRecord]) -> Failures:
        failures: Failures = {}
        for record in records:
            current = self.items.get(record.device_id)
            if (current.version if current else 0) != record.version:
                failures[record.device_id] = ConflictError(f"device {record.device_id} changed since it was read")
                continue
            record.version += 1
            self.items[record.device_id] = _stored(record)
        return failures


class MemoryReadings:
    """Readings keyed by (device, sort key)."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], ReadingRow] = {}

    def put_many(self, rows: Sequence[ReadingRow]) -> Failures:
        for row in rows:
            self.items[(row.device_id, row.key)] = row
        return {}


class MemoryAnomalies:
    """Anomaly rows keyed by (device, sort key), each with its ``notified`` flag."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], tuple[AnomalyRow, str | None]] = {}  # row, the token that notified

    def record(self, row: AnomalyRow) -> bool:
        key = (row.device_id, row.key)
        if key in self.items:
            return self.items[key][1] is None
        self.items[key] = (row, None)
        return True

    def claim(self, row: AnomalyRow, token: str) -> bool:
        key = (row.device_id, row.key)
        stored, holder = self.items[key]
        if holder not in (None, token):
            return False
        self.items[key] = (stored, token)
        return True

    def release(self, row: AnomalyRow, token: str) -> None:
        key = (row.device_id, row.key)
        stored, holder = self.items[key]
        if holder == token:
            self.items[key] = (stored, None)


class MemoryRollups:
    """Buckets keyed by (device, resolution, bucket start)."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str, int], Rollup] = {}

    def apply(self, deltas: Sequence[RollupDelta]) -> Failures:
        for delta in deltas:
            key = (delta.device_id, delta.resolution, delta.bucket_ms)
            current = self.items.get(key)
            if current is None:
                self.items[key] = Rollup(dict(delta.metrics), delta.anomalies, delta.last_mark)
            elif current.last_mark < delta.first_mark:
                current.metrics = merge_stats(current.metrics, delta.metrics)
                current.anomalies += delta.anomalies
                current.last_mark = delta.last_mark
        return {}


@dataclass
class MemoryArchive:
    """Objects by key (a replay overwrites)."""

    objects: dict[str, ArchiveObject] = field(default_factory=dict)

    def put(self, obj: ArchiveObject) -> None:
        self.objects[obj.key] = obj


@dataclass
class MemoryAlerts:
    """Every alert published, in order."""

    sent: list[Alert] = field(default_factory=list)

    def publish(self, alert: Alert) -> None:
        self.sent.append(alert)


@dataclass
class MemoryTimeSeries:
    """Rows written; rejects none."""

    rows: list[ReadingRow] = field(default_factory=list)

    def write(self, rows: Sequence[ReadingRow]) -> tuple[int, Failures]:
        self.rows.extend(rows)
        return 0, {}


def _stored(record: DeviceRecord) -> DeviceRecord:
    """An independent copy, made the way the DynamoDB item is: detector and trend through JSON.

    orjson, not json: it is ten times faster, and it refuses numpy scalars and
    non-string keys, which the DynamoDB item could not hold either.
    """
    copy = object.__new__(DeviceRecord)  # dataclasses.replace would re-run __init__: twice the cost
    copy.__dict__.update(record.__dict__)
    copy.detector = None if record.detector is None else orjson.loads(orjson.dumps(record.detector))
    copy.latest = dict(record.latest)
    copy.trend = orjson.loads(orjson.dumps(record.trend))
    copy.ingest = orjson.loads(orjson.dumps(record.ingest))
    return copy
