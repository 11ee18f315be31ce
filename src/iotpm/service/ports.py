"""The ports of the processing service: what it stores and sends, and the stores' contracts.

Rows are plain classes so the in-memory fakes and the AWS adapters share them;
adapters map them onto DynamoDB items, S3 objects, SNS messages. The ones a batch
builds by the thousand (readings, rollup deltas and their stats) are msgspec structs
(built in C, untracked by the cycle collector: a third of a dataclass's cost, a
seventh of a frozen one's). Nothing changes a row once built.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

import msgspec

from iotpm.service.errors import StoreError

Resolution = Literal["1m", "1h"]
RESOLUTION_MS: Mapping[Resolution, int] = {"1m": 60_000, "1h": 3_600_000}
#: how much time one stored rollup item spans per resolution (its buckets packed in one item):
#: an hour of minute buckets (a day of minutes is 24 items to read; a block grows to ~5 KB, so
#: rewriting it each batch costs ~3 write units on average, where ten-minute blocks cost ~1 but
#: make a day 144 items: the emulator serves an item in ~4 ms whatever its size), or one hour bucket
ROLLUP_BLOCK_MS: Mapping[Resolution, int] = {"1m": 3_600_000, "1h": 3_600_000}
#: how much time one stored readings chunk spans (a device's readings of one batch, per hour)
CHUNK_MS: Final = 3_600_000


def block_of(ts_ms: int, width_ms: int) -> int:
    """The start of the block of ``width_ms`` that holds ``ts_ms``."""
    return ts_ms - ts_ms % width_ms


class ReadingRow(msgspec.Struct, gc=False):
    """One stored reading with the detector's verdict on it.

    ``ordinal`` counts the device's stored readings (0 for its first ever): the n-th
    reading a device stores keeps its ordinal however often its batch is retried,
    because a retry starts from the same device record. Stores group a call's rows
    per device and hour into one chunk named by its first ordinal, so a retry of
    the batch rewrites the same chunk (see :class:`ReadingStore`).
    """

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
    ordinal: int = 0


ChunkKey = tuple[str, int, int]  # device, hour start ms, first ordinal


#: at most this many readings in one chunk (a DynamoDB item holds 400 KB; a packed reading
#: of a few metrics is ~100 bytes, of fifty ~1 KB)
CHUNK_ROWS: Final = 250


class Reading(Protocol):
    """What a reading row is made of (:class:`~iotpm.models.ReadingFields`, as decoded)."""

    @property
    def device_id(self) -> str: ...
    @property
    def ts_ms(self) -> int: ...
    @property
    def seq(self) -> int | None: ...
    @property
    def site(self) -> str: ...
    @property
    def line(self) -> str: ...
    @property
    def device_type(self) -> str: ...
    @property
    def metrics(self) -> Mapping[str, float]: ...


class DeviceRows(Sequence[ReadingRow]):
    """One device's reading rows of a batch (or a run of them), kept as the columns they are made of.

    The rows are built only when read as rows (and then once): a store that packs columns
    (:func:`chunks_of`, the DynamoDB adapter's chunk items, the batch log) reads the
    columns, so the processor builds no 10,000 row structs a batch. Row ``i`` is
    ``ReadingRow(fresh[i]'s fields, key, scores[i], flags[i], expires ts // 1000 + ttl_s,
    ordinal first + i)``; a run ``[start, stop)`` holds those rows of its device's batch.
    ``hour``: the chunk hour all of them fall in, when the caller knows it
    (:func:`~iotpm.service.rows.reading_rows` finds it for a whole batch in one numpy pass);
    None: :meth:`chunks` reads their times.
    """

    __slots__ = ("_rows", "first", "flags", "fresh", "hour", "scores", "start", "stop", "ttl_s")

    def __init__(
        self, fresh: Sequence[Reading], scores: Sequence[float], flags: Sequence[bool], first: int, ttl_s: int,
        start: int = 0, stop: int | None = None, hour: int | None = None,
    ) -> None:  # fmt: skip
        self.fresh, self.scores, self.flags, self.first, self.ttl_s = fresh, scores, flags, first, ttl_s
        self.start, self.stop, self.hour = start, len(fresh) if stop is None else stop, hour
        self._rows: list[ReadingRow] | None = None

    def run(self, start: int, stop: int) -> DeviceRows:
        """Rows ``start`` to ``stop`` of the device's batch (positions in ``fresh``)."""
        return DeviceRows(self.fresh, self.scores, self.flags, self.first, self.ttl_s, start, stop)

    def readings(self) -> Sequence[Reading]:
        return self.fresh[self.start : self.stop]

    def ts(self) -> list[int]:
        return [r.ts_ms for r in self.readings()]

    def seqs(self) -> list[int | None]:
        return [r.seq for r in self.readings()]

    def metric_maps(self) -> list[Mapping[str, float]]:
        return [r.metrics for r in self.readings()]

    def score_list(self) -> list[float]:
        return list(self.scores[self.start : self.stop])

    def flag_list(self) -> list[bool]:
        return list(self.flags[self.start : self.stop])

    @property
    def first_ordinal(self) -> int:
        """The first row's ordinal."""
        return self.first + self.start

    def rows(self) -> list[ReadingRow]:
        """The rows, built once."""
        if self._rows is None:
            ttl_s, first, at = self.ttl_s, self.first, self.start
            self._rows = [
                ReadingRow(
                    r.device_id,
                    r.ts_ms,
                    # reading_key(), inline for a reading with a sequence number: 10,000 readings a batch
                    f"{str(r.ts_ms).zfill(13)}#{r.seq}"
                    if r.seq is not None
                    else reading_key(r.ts_ms, r.seq, r.metrics),
                    r.seq,
                    r.site,
                    r.line,
                    r.device_type,
                    r.metrics,
                    score,
                    anomaly,
                    r.ts_ms // 1000 + ttl_s,
                    first + at + i,
                )
                for i, (r, score, anomaly) in enumerate(
                    zip(self.readings(), self.scores[at : self.stop], self.flags[at : self.stop], strict=True)
                )
            ]
        return self._rows

    def chunks(self) -> dict[ChunkKey, DeviceRows] | None:
        """The runs :func:`chunks_of` cuts these rows into; None when an hour's readings are not one run
        (readings out of hour order: :func:`chunks_of` groups them row by row)."""
        n = self.stop - self.start
        if not n:
            return {}
        device = self.fresh[self.start].device_id
        bounds = [(self.start, self.stop, self.hour)] if self.hour is not None else self._hours()
        if bounds is None:
            return None
        out: dict[ChunkKey, DeviceRows] = {}
        for a, b, hour in bounds:
            for at in range(a, b, CHUNK_ROWS):
                out[(device, hour, self.first + at)] = self.run(at, min(at + CHUNK_ROWS, b))
        return out

    def _hours(self) -> list[tuple[int, int, int]] | None:
        """Each hour's run ``(start, stop, hour)`` read from the rows' times; None: not one run an hour."""
        ts = self.ts()
        lo, hi = min(ts), max(ts)
        if lo - lo % CHUNK_MS == hi - hi % CHUNK_MS:  # the common run: one hour
            return [(self.start, self.stop, lo - lo % CHUNK_MS)]
        bounds, at, seen, n = [], self.start, set(), len(ts)
        hours = [t - t % CHUNK_MS for t in ts]
        for i in range(1, n + 1):
            if i == n or hours[i] != hours[i - 1]:
                if hours[i - 1] in seen:
                    return None
                seen.add(hours[i - 1])
                bounds.append((at, self.start + i, hours[i - 1]))
                at = self.start + i
        return bounds

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, index: Any) -> Any:
        return self.rows()[index]

    def __iter__(self) -> Iterator[ReadingRow]:
        return iter(self.rows())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return self.rows() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self.rows())


class BatchRows(Sequence[ReadingRow]):
    """A call's rows as its devices' :class:`DeviceRows` (one part a device), read as one sequence."""

    __slots__ = ("_rows", "parts")

    def __init__(self, parts: Sequence[DeviceRows]) -> None:
        self.parts = parts
        self._rows: list[ReadingRow] | None = None

    def rows(self) -> list[ReadingRow]:
        if self._rows is None:
            self._rows = [r for part in self.parts for r in part]
        return self._rows

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def __getitem__(self, index: Any) -> Any:
        return self.rows()[index]

    def __iter__(self) -> Iterator[ReadingRow]:
        return (r for part in self.parts for r in part)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return self.rows() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


def chunks_of(rows: Sequence[ReadingRow]) -> dict[ChunkKey, Sequence[ReadingRow]]:
    """A call's rows grouped into chunks: per device and hour, in arrival order, named by the first ordinal.

    A device's readings of one hour that outnumber :data:`CHUNK_ROWS` are cut every
    ``CHUNK_ROWS`` readings; a retry carries the same readings first, so it cuts at the
    same ones. Rows given as :class:`BatchRows` (one part a device) are cut part by part
    into runs of their columns, without building a row.
    """
    if isinstance(rows, BatchRows):
        out: dict[ChunkKey, Sequence[ReadingRow]] = {}
        for part in rows.parts:
            runs = part.chunks()
            out.update(chunks_of(part.rows()) if runs is None else runs)  # a device is in one part
        return out
    groups: dict[tuple[str, int], list[ReadingRow]] = {}
    for row in rows:
        ts = row.ts_ms
        groups.setdefault((row.device_id, ts - ts % CHUNK_MS), []).append(row)  # block_of, inline: 10,000 rows
    out = {}
    for (device, hour), group in groups.items():
        for at in range(0, len(group), CHUNK_ROWS):
            chunk = group[at : at + CHUNK_ROWS]
            out[(device, hour, chunk[0].ordinal)] = chunk
    return out


@dataclass(frozen=True, slots=True)
class AnomalyRow:
    """An alarm raise, escalation or clear, with its reasons."""

    device_id: str
    ts_ms: int
    kind: Literal["raise", "escalate", "clear"]
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

    ``first_ordinal`` is the ordinal (see :class:`ReadingRow`) of the first reading it
    covers. A store keeps, per block of buckets (:data:`ROLLUP_BLOCK_MS`), the sum of
    every batch before the last one and the last batch's contribution with its first
    ordinal; a batch arriving with that same first ordinal is a retry of the last one
    and replaces it, any other is added. So a retry that carries more (or fewer)
    readings than the failed attempt leaves the buckets exact.
    """

    device_id: str
    resolution: Resolution
    bucket_ms: int
    first_ordinal: int
    metrics: Mapping[str, MetricStats]
    anomalies: int
    expires_at: int


class BucketAgg(msgspec.Struct, gc=False):
    """One bucket's aggregates: per-metric stats and how many readings were anomalous."""

    metrics: dict[str, MetricStats]
    anomalies: int


def add_buckets(a: Mapping[int, BucketAgg], b: Mapping[int, BucketAgg]) -> dict[int, BucketAgg]:
    """Two sets of buckets (by start ms) combined."""
    out = dict(a)
    for start, agg in b.items():
        o = out.get(start)
        out[start] = agg if o is None else BucketAgg(merge_stats(o.metrics, agg.metrics), o.anomalies + agg.anomalies)
    return out


@dataclass(frozen=True, slots=True)
class RollupBlock:
    """One stored block of buckets: every batch but the last summed, the last one apart.

    Keeping the last batch apart is what makes a retry exact: min and max cannot be
    subtracted, so a retry (same first ordinal) replaces ``last`` instead of adding.
    """

    base: Mapping[int, BucketAgg]
    last: Mapping[int, BucketAgg]
    last_ordinal: int

    def buckets(self) -> dict[int, BucketAgg]:
        """The block's buckets as they stand."""
        return add_buckets(self.base, self.last)

    def apply(self, deltas: Sequence[RollupDelta]) -> RollupBlock:
        """The block after one batch's deltas (all of this block, from one call)."""
        first = min(d.first_ordinal for d in deltas)
        last = {d.bucket_ms: BucketAgg(dict(d.metrics), d.anomalies) for d in deltas}
        if first == self.last_ordinal:  # the last batch again, retried: replace it
            return RollupBlock(self.base, last, first)
        return RollupBlock(self.buckets(), last, first)


EMPTY_BLOCK: Final = RollupBlock({}, {}, -1)

BlockKey = tuple[str, Resolution, int]  # device, resolution, block start ms


def blocks_of(deltas: Sequence[RollupDelta]) -> dict[BlockKey, list[RollupDelta]]:
    """A call's deltas grouped by the stored block they go to."""
    out: dict[BlockKey, list[RollupDelta]] = {}
    for d in deltas:
        key = (d.device_id, d.resolution, block_of(d.bucket_ms, ROLLUP_BLOCK_MS[d.resolution]))
        out.setdefault(key, []).append(d)
    return out


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
    #: write-behind: per shard, the key of the batch log entry this record is complete
    #: through; the device's readings in later entries of that shard's log are not in
    #: the record, the readings chunks and the rollups yet (see :class:`BatchLog`)
    flushed: dict[str, str] = field(default_factory=dict)
    #: where ``site``, ``line`` and ``device_type`` came from. Today always ``payload``: the
    #: bootstrap, a device seen for the first time with no record takes its first message's
    #: (later messages cannot change them); an operator registry will write ``registry``
    identity: str = "payload"
    #: the operator's re-baseline request (its ``rebaseline_ms``, server time) last applied to
    #: ``detector``: a newer request is applied once, whenever the device reports after it
    #: (written in the same write as the state it produced)
    rebaselined_ms: int = 0


class LogDevice(msgspec.Struct, array_like=True, gc=False):
    """One device's part of a batch log entry: its readings of the batch and its view after them.

    The readings are what the readings table would hold (the detector's score and flag
    on each); ``newest`` is the sequence number of its newest record in the batch (its
    replay position), the view fields what its device record would say after the batch.
    """

    device_id: str
    site: str
    line: str
    device_type: str
    newest: str
    health: float
    alarm_open: bool
    alarm_since_ms: int | None
    last_ts_ms: int
    readings: int  # the device's stored readings after the batch
    first_ordinal: int
    ts: list[int]
    seq: list[int | None]
    metrics: list[dict[str, float]]
    score: list[float]
    anomaly: list[bool]

    def rows(self, ttl_s: int) -> list[ReadingRow]:
        """The device's reading rows in this entry (in time order)."""
        return [
            ReadingRow(
                self.device_id, ts, reading_key(ts, seq, m), seq, self.site, self.line, self.device_type,
                m, score, flag, ts // 1000 + ttl_s, self.first_ordinal + i,
            )
            for i, (ts, seq, m, score, flag) in enumerate(
                zip(self.ts, self.seq, self.metrics, self.score, self.anomaly, strict=True)
            )
        ]  # fmt: skip


class LogEntry(msgspec.Struct, gc=False):
    """One batch's readings of the devices whose writes were held back (write-behind).

    ``key`` orders a shard's entries: every entry gets a key above the newest one on its
    shard when it is written (one writer per shard at a time: the event source mapping).
    """

    key: str
    written_ms: int
    ttl_s: int
    devices: list[LogDevice]


def reading_key(ts_ms: int, seq: int | None, metrics: Mapping[str, float]) -> str:
    """A reading's sort key: zero-padded time, then its sequence number or its metric names."""
    # zero-padded to 13 digits: str.zfill pads as f"{ts:013d}" does, at half its cost
    return f"{str(ts_ms).zfill(13)}#{seq if seq is not None else ','.join(sorted(metrics))}"


def log_key(sequence_number: str, after: str | None) -> str:
    """The key of a new log entry: the batch's last sequence number, above ``after`` (the newest key).

    Sequence numbers are decimal strings of varying length: prefixed by their length they
    sort as numbers. A retried batch can end below an entry already written (Lambda
    bisects a batch that failed): its key is then ``after`` with a counter above it.
    """
    key = f"{len(sequence_number):03d}{sequence_number}"
    if after is None or key > after:
        return key
    base, _, count = after.partition("~")
    return f"{base}~{int(count or 0) + 1:06d}"


def buckets_of_rows(rows: Sequence[ReadingRow], width_ms: int) -> dict[int, BucketAgg]:
    """Rows aggregated into buckets of ``width_ms`` (what the rollups would add for them)."""
    out: dict[int, BucketAgg] = {}
    for r in rows:
        start = block_of(r.ts_ms, width_ms)
        stats = {k: MetricStats(1, v, v, v) for k, v in r.metrics.items()}
        agg = BucketAgg(stats, int(r.anomaly))
        o = out.get(start)
        out[start] = agg if o is None else BucketAgg(merge_stats(o.metrics, agg.metrics), o.anomalies + agg.anomalies)
    return out


class BatchLog(Protocol):
    """Per shard, the readings of each batch whose table writes were held back (write-behind).

    A device's readings chunks, rollups and record are written every few minutes (a
    compaction) rather than every batch; until then its readings of each batch are in
    the batch's entry, one item for all of the batch's devices. Readers (the API) add a
    device's entries after its record's ``flushed`` key to what the tables hold; of one
    reading key in two entries they take the later.
    """

    def append(self, shard: str, entry: LogEntry) -> Failures:
        """Store the entry; the devices whose part of it could not be stored, with why.

        A store may split an entry into several items (by size, across devices and within
        one device's readings); a failure is charged to the devices of the items that
        failed, so the others' parts stand. A store may also raise
        :class:`~iotpm.service.errors.StoreError` for the whole entry.
        """
        ...

    def after(self, shard: str, key: str | None, newest_first: bool = False) -> Iterator[LogEntry]:
        """The shard's entries with keys above ``key`` (all when None), oldest first unless asked."""
        ...


@dataclass
class Snapshot:
    """One shard's device records as of its newest log entry: the processor's state in write-behind.

    ``last_key`` is the newest log entry applied to the records, ``compacted_key`` the
    newest one whose readings the tables hold (``compacted_ms`` when that was done).
    ``tag`` is the store's version of it (None for a shard with no snapshot yet).
    """

    records: dict[str, DeviceRecord] = field(default_factory=dict)
    last_key: str | None = None
    compacted_key: str | None = None
    compacted_ms: int = 0
    tag: str | None = None


class SnapshotStore(Protocol):
    """Per-shard snapshots, written only over the version read (one writer per shard)."""

    def get(self, shard: str) -> Snapshot:
        """The shard's snapshot as stored (an empty one when there is none)."""
        ...

    def put(self, shard: str, snapshot: Snapshot) -> None:
        """Store it if the stored version is still ``snapshot.tag``, and set ``tag`` to the new one.

        A snapshot changed since it was read fails with :class:`~iotpm.service.errors.ConflictError`.
        """
        ...


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

    def put_many(self, records: Sequence[DeviceRecord], *, checked: bool = True) -> Failures:
        """Write each record if its stored version is still ``record.version``.

        A record written gets ``version`` advanced; one that lost the race fails with
        :class:`~iotpm.service.errors.ConflictError`. Unchecked (write-behind, where the
        shard's snapshot is the truth and the table a view of it) the write always lands.
        """
        ...


class ReadingStore(Protocol):
    """Readings, stored in chunks: one per device, hour and call, named by its first ordinal.

    A call whose chunk has the same first ordinal as a stored one replaces it (the
    retry of a batch); readings with the same ``key`` in two chunks read as one.
    """

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
    """Per-device 1-minute and 1-hour aggregates; a retried batch replaces its own contribution."""

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
