"""Compaction: a shard's logged readings into the readings chunks, the rollups and the device records.

Write-behind (:mod:`~iotpm.service.write_behind`) logs each batch and compacts the log
every ``compact_interval_s``, a slice of the shard's devices at a time (by a stable hash
of the id), so no batch carries a whole shard's compaction. Each device's readings are
those logged after its own ``flushed`` key, so the slices are compacted at different
times. Idempotent: a chunk is named by its device, hour and first ordinal, and a rollup
block replaces a contribution with the same first ordinal, so a compaction repeated (it
failed half way, or its snapshot write did) writes the same items.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from iotpm.observability import log
from iotpm.service.ports import BatchLog, DeviceRecord, Failures, LogEntry, ReadingRow, Snapshot
from iotpm.service.rows import row_rollups
from iotpm.service.storage import Tables

#: each device's readings logged after its cursor, by reading key
Logged = dict[str, dict[str, ReadingRow]]


class Compaction:
    """Compacts a shard's snapshot; configured with the log, the tables and the settings.

    It remembers the log entries this processor wrote (:meth:`wrote`), so a compaction
    reads them without a query when no other writer wrote in between.
    """

    def __init__(self, tables: Tables, log: BatchLog) -> None:
        self.tables, self.log = tables, log
        self._tails: dict[str, LogTail] = {}  # per shard: the log entries this processor wrote

    def wrote(self, shard: str, prev: str | None, entry: LogEntry) -> None:
        """``entry`` was appended to the shard's log when the snapshot's newest entry was ``prev``."""
        self._tails[shard] = LogTail.grown(self._tails.get(shard), prev, entry)

    def forget(self, shard: str) -> None:
        """The shard's log differs from what this processor wrote: read it from the log from now on."""
        self._tails.pop(shard, None)

    def __call__(
        self,
        shard: str,
        snap: Snapshot,
        now: int,
        slices: frozenset[int] | None = None,
        *,
        skip: frozenset[str] = frozenset(),
    ) -> Snapshot:
        """The snapshot after the shard's logged readings of the devices of ``slices`` (all when
        None) but ``skip`` are in the tables; ``snap`` itself when there was nothing to do. The
        caller commits it (writes the snapshot).

        In slices, a device whose writes fail keeps its record and cursor (the next turn writes
        it again) and the others go on; a whole compaction fails as one (:class:`StoreError`).
        Every record of the slices is written: a device logged since its last compaction with
        its ``flushed`` key moved to the newest entry, a silent one without this shard's key
        (nothing of it is in the log) and out of the snapshot; it comes back, whole, from the
        devices table when it reports again.
        """
        count = self.tables.settings.compact_slices
        scope = {
            d: r for d, r in snap.records.items() if d not in skip and (slices is None or slice_of(d, count) in slices)
        }
        if snap.last_key is None or (not scope and slices is not None):
            return snap  # nothing logged yet, or no device in these slices (the next ones are due by the clock)
        cursors = {d: r.flushed.get(shard) or "" for d, r in scope.items()}
        start = min(cursors.values(), default=snap.last_key)
        if slices is None and start == snap.last_key:
            # nothing logged since: a closed shard (resharded) is compacted once, and its silent
            # devices' records, which may name their child shard by now, are left as they are
            return snap
        rows, newest = self._logged_rows(shard, cursors, start, snap.last_key)
        written, failed = self._write(shard, scope, rows, newest)
        if failed and (slices is None or len(failed) == len(scope)):
            # a whole compaction (a reshard's parent shard, before its devices move) or nothing done
            raise next(iter(failed.values()))
        if failed:  # charged to those devices: they keep their cursors, and the next turn writes them again
            log("warning", "compaction failed for some devices; they are compacted again on their next turn",
                shard=shard, devices=sorted(failed)[:20], error=str(next(iter(failed.values())))[:300])  # fmt: skip
        after = _marked(snap, shard, written, rows, newest, now)
        if shard in self._tails and after.compacted_key:  # safe before the commit: an older cursor queries
            self._tails[shard].trim(after.compacted_key)
        return after

    def _write(
        self, shard: str, scope: Mapping[str, DeviceRecord], rows: Logged, newest: str | None
    ) -> tuple[list[DeviceRecord], Failures]:
        """The scope's readings, rollups and records written; the records written (cursors moved) and
        the devices whose writes failed (a device that fails a step skips the rest)."""
        # per device in arrival order: a chunk is named by its hour's first ordinal, which a
        # compaction repeated with more entries (newer batches) names the same
        flat = [r for held in rows.values() for r in sorted(held.values(), key=lambda r: r.ordinal)]
        failed: Failures = {}
        if flat:
            failed.update(self.tables.readings.put_many(flat))
            ok = [r for r in flat if r.device_id not in failed]
            failed.update(self.tables.rollups.apply(row_rollups(ok, self.tables.settings)))
        records = []
        for device, record in scope.items():
            if device in failed:
                continue
            if device in rows:  # the API reads its log entries after ``newest`` only
                flushed = {**record.flushed, shard: newest or ""}  # newest: set, rows were read
            else:  # silent since its last compaction: the tables hold all of it; out of the snapshot
                flushed = {k: v for k, v in record.flushed.items() if k != shard}
            records.append(dataclasses.replace(record, flushed=flushed))
        if records:
            failed.update(self.tables.states.put_many(records, checked=False))
        return [r for r in records if r.device_id not in failed], failed

    def _logged_rows(
        self, shard: str, cursors: dict[str, str], start: str | None, last: str | None
    ) -> tuple[Logged, str | None]:
        """Each device's readings logged after its cursor, by key, and the newest entry read."""
        rows: Logged = {}
        newest = last
        if start == last:
            return rows, newest
        for entry in self._entries(shard, start or None, last):
            newest = entry.key
            for part in entry.devices:
                if part.device_id in cursors and entry.key > cursors[part.device_id]:
                    held = rows.setdefault(part.device_id, {})
                    for row in part.rows(entry.ttl_s):
                        held[row.key] = row  # of one key in two entries (a retried batch), the later
        return rows, newest

    def _entries(self, shard: str, after: str | None, last: str | None) -> Iterator[LogEntry]:
        """The shard's entries after ``after``: from what this processor wrote when that is
        every one of them up to the snapshot's ``last`` (no query), else from the log."""
        tail = self._tails.get(shard)
        if tail is not None and tail.covers(after, last):
            return iter([e for e in tail.entries if after is None or e.key > after])
        return self.log.after(shard, after)


def _marked(
    snap: Snapshot, shard: str, written: list[DeviceRecord], rows: Logged, newest: str | None, now: int
) -> Snapshot:
    """``snap`` with the records written (a silent device's taken out) and its compaction cursor moved."""
    records = dict(snap.records)
    for record in written:
        if record.device_id in rows:
            records[record.device_id] = record
        else:
            del records[record.device_id]
    # the tables hold every device's readings up to here (the oldest slice's cursor)
    compacted = min((r.flushed.get(shard) or "" for r in records.values()), default=newest)
    return dataclasses.replace(snap, records=records, compacted_key=compacted, compacted_ms=now)


@dataclass(slots=True)
class LogTail:
    """A shard's log entries after ``base`` as this processor wrote them, in key order: all
    of them, as long as no other writer (another instance, a retried batch's first try
    that did not commit) wrote in between; a gap starts a new tail."""

    base: str | None  # None: from the shard's first entry
    entries: list[LogEntry]

    @classmethod
    def grown(cls, tail: LogTail | None, prev: str | None, entry: LogEntry) -> LogTail:
        """``tail`` with ``entry``, written when the snapshot's newest entry was ``prev``."""
        if tail is not None:
            newest = tail.entries[-1].key if tail.entries else tail.base
            if newest == prev:
                tail.entries.append(entry)
                return tail
        return cls(prev, [entry])

    def covers(self, after: str | None, last: str | None) -> bool:
        """Whether every entry after ``after`` up to ``last`` (the snapshot's newest) is here."""
        newest = self.entries[-1].key if self.entries else self.base
        if newest != last:
            return False
        return self.base is None or (after is not None and after >= self.base)

    def trim(self, upto: str) -> None:
        """Forget the entries up to ``upto`` (every device's readings there are compacted)."""
        if self.base is None or upto > self.base:
            self.entries = [e for e in self.entries if e.key > upto]
            self.base = upto


def slice_of(device_id: str, count: int) -> int:
    """The compaction slice a device falls in (a stable hash: every process agrees)."""
    return zlib.crc32(device_id.encode()) % count


def due_slices(last_ms: int, now: int, interval_ms: int, count: int) -> frozenset[int]:
    """The slices whose turn came since ``last_ms``: slice ``k`` is due whenever the clock
    passes a multiple of ``interval_ms / count`` that is ``k`` modulo ``count``."""
    step = max(1, interval_ms // max(1, count))
    first, last = last_ms // step + 1, now // step
    return frozenset(t % count for t in range(max(first, last - count + 1), last + 1))
