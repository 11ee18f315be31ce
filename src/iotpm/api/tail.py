"""What a device's record does not hold yet: its readings in the batch log (write-behind).

In write-behind the processor writes a device's readings chunks, rollups and record
every few minutes; in between, each batch's readings are in the shard's log (see
:class:`~iotpm.service.ports.BatchLog`). The read side adds them: a device's entries
after its record's ``flushed`` key, newest view first, one reading per key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

from iotpm.service.ports import (
    BatchLog,
    BucketAgg,
    DeviceRecord,
    LogDevice,
    LogEntry,
    ReadingRow,
    block_of,
    buckets_of_rows,
)


def parts(log: BatchLog, record: DeviceRecord, newest_first: bool = False) -> Iterator[tuple[LogEntry, LogDevice]]:
    """The device's parts of the entries after its record, per shard it names."""
    for shard, key in record.flushed.items():
        for entry in log.after(shard, key or None, newest_first):
            for part in entry.devices:
                if part.device_id == record.device_id:
                    yield entry, part


def with_view(log: BatchLog, record: DeviceRecord) -> DeviceRecord:
    """The record as its newest log entry sees the device (itself when nothing is logged after it)."""
    return with_views(log, [record])[record.device_id]


def with_views(log: BatchLog, records: Iterable[DeviceRecord]) -> dict[str, DeviceRecord]:
    """Each record as :func:`with_view` gives it, reading each shard's log once, newest first.

    A shard's entries are read from the oldest key any of its devices was flushed at and
    stop once every device of the shard has its newest part (or the log ends); an entry at
    or below a device's own flushed key is not the device's.
    """
    out = {r.device_id: r for r in records}
    wanted: dict[str, dict[str, str]] = {}  # shard -> device -> its flushed key there
    for r in out.values():
        for shard, key in r.flushed.items():
            wanted.setdefault(shard, {})[r.device_id] = key
    newest: dict[str, tuple[LogEntry, LogDevice]] = {}
    for shard, keys in wanted.items():
        pending = dict(keys)
        for entry in log.after(shard, min(keys.values()) or None, newest_first=True):
            for part in entry.devices:
                mark = pending.get(part.device_id)
                if mark is not None and entry.key > mark:
                    del pending[part.device_id]
                    held = newest.get(part.device_id)
                    if held is None or held[0].written_ms < entry.written_ms:  # of two shards', the later
                        newest[part.device_id] = (entry, part)
            if not pending or all(entry.key <= mark for mark in pending.values()):
                break
    return {d: r if d not in newest else _viewed(r, *newest[d]) for d, r in out.items()}


def _viewed(record: DeviceRecord, entry: LogEntry, part: LogDevice) -> DeviceRecord:
    latest = record.latest
    if part.ts and part.ts[-1] >= record.last_ts_ms:
        latest = dict(part.metrics[-1])
    return dataclasses.replace(
        record,
        site=part.site,
        line=part.line,
        device_type=part.device_type,
        last_ts_ms=part.last_ts_ms,
        latest=latest,
        health=part.health,
        alarm_open=part.alarm_open,
        alarm_since_ms=part.alarm_since_ms,
        readings=part.readings,
        updated_ms=entry.written_ms,
    )


def rows(log: BatchLog, record: DeviceRecord | None) -> dict[str, ReadingRow]:
    """The device's logged readings by key (of one key in two entries, the later)."""
    out: dict[str, ReadingRow] = {}
    if record is None:
        return out
    for entry, part in parts(log, record):
        for row in part.rows(entry.ttl_s):
            out[row.key] = row
    return out


def by_block(tail: dict[str, ReadingRow], width_ms: int) -> dict[int, list[ReadingRow]]:
    """Logged readings grouped by the block of ``width_ms`` that holds them."""
    out: dict[int, list[ReadingRow]] = {}
    for row in tail.values():
        out.setdefault(block_of(row.ts_ms, width_ms), []).append(row)
    return out


def buckets(tail: dict[str, ReadingRow], width_ms: int) -> dict[int, BucketAgg]:
    """Logged readings as buckets of ``width_ms`` (what their compaction will add to the rollups)."""
    return buckets_of_rows(list(tail.values()), width_ms)
