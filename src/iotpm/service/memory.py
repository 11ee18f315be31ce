"""In-memory implementations of the ports: for unit tests, benchmarks and dry runs.

They pass the same contract tests as the AWS adapters (tests/contract), so what a
test learns from a fake holds for DynamoDB, S3 and SNS.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
import orjson

from iotpm.service.errors import ConflictError
from iotpm.service.ports import (
    EMPTY_BLOCK,
    Alert,
    AnomalyRow,
    ArchiveObject,
    BlockKey,
    DeviceRecord,
    Failures,
    LogEntry,
    MetricStats,
    ReadingRow,
    RollupBlock,
    RollupDelta,
    Snapshot,
    blocks_of,
    chunks_of,
)


@dataclass
class Rollup:
    """A bucket as it stands: aggregates and anomalous readings."""

    metrics: dict[str, MetricStats]
    anomalies: int


class MemoryStates:
    """Device records keyed by id, with versions.

    Isolated as the table isolates them: a write keeps its own copy, made the way the DynamoDB
    item is (detector, trend and ingest through JSON), and a read gives an independent copy of
    that (its dicts and lists copied; its strings and numbers, immutable, shared)."""

    def __init__(self) -> None:
        self.items: dict[str, DeviceRecord] = {}

    def get_many(self, device_ids: Sequence[str]) -> dict[str, DeviceRecord]:
        return {d: _copied(self.items[d]) for d in device_ids if d in self.items}

    def put_many(self, records: Sequence[DeviceRecord], *, checked: bool = True) -> Failures:
        failures: Failures = {}
        for record in records:
            current = self.items.get(record.device_id)
            if not checked:
                record.version = current.version if current else 0
            elif (current.version if current else 0) != record.version:
                failures[record.device_id] = ConflictError(f"device {record.device_id} changed since it was read")
                continue
            record.version += 1
            self.items[record.device_id] = _stored(record)
        return failures


class MemoryReadings:
    """Readings in chunks keyed by (device, hour, first ordinal), as the DynamoDB table holds them."""

    def __init__(self) -> None:
        self.chunks: dict[tuple[str, int, int], Sequence[ReadingRow]] = {}  # kept as given: rows are immutable

    def put_many(self, rows: Sequence[ReadingRow]) -> Failures:
        for key, chunk in chunks_of(rows).items():
            self.chunks[key] = chunk
        return {}

    @property
    def items(self) -> dict[tuple[str, str], ReadingRow]:
        """Every reading by (device, reading key); of two with one key the later chunk's."""
        return {(r.device_id, r.key): r for _, chunk in sorted(self.chunks.items()) for r in chunk}


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
    """Blocks of buckets keyed by (device, resolution, block start), as the DynamoDB table holds them."""

    def __init__(self) -> None:
        self.blocks: dict[BlockKey, RollupBlock] = {}

    def apply(self, deltas: Sequence[RollupDelta]) -> Failures:
        for key, group in blocks_of(deltas).items():
            self.blocks[key] = self.blocks.get(key, EMPTY_BLOCK).apply(group)
        return {}

    @property
    def items(self) -> dict[tuple[str, str, int], Rollup]:
        """Every bucket as it stands, by (device, resolution, bucket start)."""
        return {
            (device, res, start): Rollup(dict(agg.metrics), agg.anomalies)
            for (device, res, _), block in self.blocks.items()
            for start, agg in block.buckets().items()
        }


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


class MemoryLog:
    """:class:`~iotpm.service.ports.BatchLog` in memory: entries kept encoded, as the table holds them."""

    def __init__(self) -> None:
        self.shards: dict[str, dict[str, bytes]] = {}

    def append(self, shard: str, entry: LogEntry) -> Failures:
        self.shards.setdefault(shard, {})[entry.key] = msgspec.msgpack.encode(entry)
        return {}

    def after(self, shard: str, key: str | None, newest_first: bool = False) -> Iterator[LogEntry]:
        entries = self.shards.get(shard, {})
        for k in sorted(entries, reverse=newest_first):
            if key is None or k > key:
                yield _ENTRY.decode(entries[k])


class MemorySnapshots:
    """:class:`~iotpm.service.ports.SnapshotStore` in memory, versioned like the S3 object."""

    def __init__(self) -> None:
        self.items: dict[str, tuple[str, Snapshot]] = {}
        self._count = 0

    def get(self, shard: str) -> Snapshot:
        got = self.items.get(shard)
        if got is None:
            return Snapshot()
        tag, snap = got
        return Snapshot({d: _stored(r) for d, r in snap.records.items()}, snap.last_key, snap.compacted_key,
                        snap.compacted_ms, tag)  # fmt: skip

    def put(self, shard: str, snapshot: Snapshot) -> None:
        current = self.items.get(shard)
        if (current[0] if current else None) != snapshot.tag:
            raise ConflictError(f"snapshot of {shard} changed since it was read")
        self._count += 1
        tag = str(self._count)
        records = {d: _stored(r) for d, r in snapshot.records.items()}
        self.items[shard] = (tag, Snapshot(records, snapshot.last_key, snapshot.compacted_key, snapshot.compacted_ms))
        snapshot.tag = tag


_ENTRY: Final = msgspec.msgpack.Decoder(LogEntry)


def _copied(record: DeviceRecord) -> DeviceRecord:
    """An independent copy of a record as stored: every dict and list in it copied (the strings and
    numbers JSON gave it are immutable). A third of :func:`_stored`'s cost: its detector's base64
    state is a 4 KB string that JSON would parse again."""
    copy = object.__new__(DeviceRecord)
    copy.__dict__.update(record.__dict__)
    copy.detector = None if record.detector is None else _json_copy(record.detector)
    copy.latest = dict(record.latest)
    copy.trend = _json_copy(record.trend)
    copy.ingest = _json_copy(record.ingest)
    copy.flushed = dict(record.flushed)
    return copy


def _json_copy(value: dict[str, Any]) -> dict[str, Any]:
    """A copy of a JSON-shaped dict: its dicts and lists copied, its strings, numbers and None shared."""
    out = value.copy()
    for k, v in value.items():
        t = type(v)
        if t is dict:
            out[k] = _json_copy(v)
        elif t is list:
            out[k] = [x if type(x) in _IMMUTABLE else _copy_other(x) for x in v]
        elif v is not None and t not in _IMMUTABLE:
            out[k] = _copy_other(v)
    return out


_IMMUTABLE: Final = frozenset({str, int, float, bool})


def _copy_other(value: Any) -> Any:
    """Anything else (a list in a list, a hand-made record's tuple): through JSON, as the table gives it back."""
    return orjson.loads(orjson.dumps(value))


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
    copy.flushed = dict(record.flushed)
    return copy
