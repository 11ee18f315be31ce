"""What a device's record does not hold yet: its readings in the batch log (write-behind).

In write-behind the processor writes a device's readings chunks, rollups and record
every few minutes; in between, each batch's readings are in the shard's log (see
:class:`~iotpm.service.ports.BatchLog`). The read side adds them: a device's entries
after its record's ``flushed`` key, newest view first, one reading per key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

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
    newest = next(parts(log, record, newest_first=True), None)
    if newest is None:
        return record
    entry, part = newest
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
