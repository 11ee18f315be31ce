"""The ports of the processing service: what it stores and sends, and the stores' contracts.

Rows are plain classes so the in-memory fakes and the AWS adapters share them;
adapters map them onto DynamoDB items, S3 objects, SNS messages. The ones a batch
builds by the thousand (readings, rollup deltas and their stats) are msgspec structs
(built in C, untracked by the cycle collector: a third of a dataclass's cost, a
seventh of a frozen one's). Nothing changes a row once built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import msgspec

from iotpm.service.errors import StoreError

Resolution = Literal["1m", "1h"]
RESOLUTION_MS: Mapping[Resolution, int] = {"1m": 60_000, "1h": 3_600_000}


class ReadingRow(msgspec.Struct, gc=False):
    """One stored reading with the detector's verdict on it."""

    device_id: str
    ts_ms: int
    key: str  # sort key: zero-padded ts, then seq or metric names (unique per reading)
    seq: int | None
    site: str
    line: str
    device_type: str
    metrics: Mapping[str, float]
    score: float
    anomaly: bool
    expires_at: int  # epoch seconds (DynamoDB TTL)


@dataclass(frozen=True, slots=True)
class AnomalyRow:
    """An alarm raise or clear, with its reasons."""

    device_id: str
    ts_ms: int
    kind: Literal["raise", "clear"]
    severity: Literal["warning", "critical"]
    score: float
    site: str
    line: str
    device_type: str
    reasons: tuple[Mapping[str, Any], ...]
    expires_at: int

    @property
    def key(self) -> str:
        """Sort key: time first, so a device's anomalies list in order."""
        return f"{self.ts_ms:013d}#{self.kind}"


class MetricStats(msgspec.Struct, gc=False):
    """count/min/max/sum of one metric in one rollup bucket."""

    count: int
    min: float
    max: float
    sum: float


def merge_stats(a: Mapping[str, MetricStats], b: Mapping[str, MetricStats]) -> dict[str, MetricStats]:
    """Combine two buckets' per-metric aggregates."""
    out = dict(a)
    for name, s in b.items():
        o = out.get(name)
        out[name] = (
            s if o is None else MetricStats(o.count + s.count, min(o.min, s.min), max(o.max, s.max), o.sum + s.sum)
        )
    return out


class RollupDelta(msgspec.Struct, gc=False):
    """One batch's contribution to one device's bucket.

    ``first_mark``/``last_mark`` are the per-device order marks (sequence number, or
    timestamp for devices that send none) of the readings it covers: a store applies a
    delta only if the bucket has not yet seen ``first_mark``, so replays add nothing.
    """

    device_id: str
    resolution: Resolution
    bucket_ms: int
    first_mark: int
    last_mark: int
    metrics: Mapping[str, MetricStats]
    anomalies: int
    expires_at: int


@dataclass
class DeviceRecord:
    """Everything stored per device: detector state plus what the API shows."""

    device_id: str
    site: str
    line: str
    device_type: str
    detector: dict[str, Any] | None = None
    last_mark: int = -1
    last_ts_ms: int = 0
    latest: dict[str, float] = field(default_factory=dict)
    health: float = 100.0
    alarm_open: bool = False
    alarm_since_ms: int | None = None
    trend: dict[str, dict[str, float | None]] = field(default_factory=dict)
    readings: int = 0
    updated_ms: int = 0
    version: int = 0  # optimistic concurrency: the version this record was read at
    #: replay protection: {"pos": {shard id: last applied Kinesis sequence number},
    #: "recent": base64 int64 identities of the device's latest messages}
    ingest: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Alert:
    """A notification of an alarm transition."""

    subject: str
    body: Mapping[str, Any]
    attributes: Mapping[str, str]
    dedup_id: str


class RawLine(msgspec.Struct, gc=False):
    """One raw record's line in the archive: the record as received, its data as text.

    A struct rather than a dict (a third of the cost to build, 10,000 a batch); its
    fields are in the order the archive's sorted-key JSON writes them.
    """

    arrival_ms: int
    data: str  # the record's bytes as UTF-8 text, or "base64:..." when they are not UTF-8
    partition_key: str
    sequence_number: str
    shard_id: str


@dataclass(frozen=True, slots=True)
class ArchiveObject:
    """One gzip JSON Lines object of raw records (or quarantined ones, as mappings)."""

    key: str
    lines: Sequence[RawLine | Mapping[str, Any]]


#: what a bulk write could not do, per device (the service retries those devices)
Failures = dict[str, StoreError]


class StateStore(Protocol):
    """Device records, read in bulk and written with optimistic concurrency."""

    def get_many(self, device_ids: Sequence[str]) -> dict[str, DeviceRecord]: ...

    def put_many(self, records: Sequence[DeviceRecord]) -> Failures:
        """Write each record if its stored version is still ``record.version``.

        A record written gets ``version`` advanced; one that lost the race fails with
        :class:`~iotpm.service.errors.ConflictError`.
        """
        ...


class ReadingStore(Protocol):
    """Readings; writing the same row twice leaves one."""

    def put_many(self, rows: Sequence[ReadingRow]) -> Failures: ...


class AnomalyStore(Protocol):
    """Alarm events; ``record`` says whether the event still needs its alert sent."""

    def record(self, row: AnomalyRow) -> bool: ...

    def claim(self, row: AnomalyRow, token: str) -> bool:
        """Mark the event notified by ``token`` unless another token did; True when ``token`` holds it.

        Idempotent for one token: a call repeated after an error whose outcome is unknown
        (the write may have landed) answers True again.
        """
        ...

    def release(self, row: AnomalyRow, token: str) -> None:
        """Undo :meth:`claim` by ``token`` (its alert could not be sent)."""
        ...


class RollupStore(Protocol):
    """Per-device 1-minute and 1-hour aggregates, applied at most once per delta."""

    def apply(self, deltas: Sequence[RollupDelta]) -> Failures: ...


class Archive(Protocol):
    """Raw and quarantined records as objects; a replayed key overwrites."""

    def put(self, obj: ArchiveObject) -> None: ...


class Alerts(Protocol):
    """Where alarm notifications go."""

    def publish(self, alert: Alert) -> None: ...


class TimeSeries(Protocol):
    """An optional time-series sink: how many rows it rejected, and devices it failed."""

    def write(self, rows: Sequence[ReadingRow]) -> tuple[int, Failures]: ...
