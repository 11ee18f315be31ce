"""Write-behind: a batch's readings in one log entry, the shard's records in its snapshot.

Per batch, whatever the number of devices: one log item (the readings, scored, and each
device's view after them: what the API adds to the tables), the snapshot object (S3)
and the alarm events. Every ``compact_interval_s`` the readings logged since the last
compaction are written to the readings chunks, the rollups and the device records, per
device (:class:`~iotpm.service.compaction.Compaction`). A device new to the devices
table, or whose alarm opened or closed, has its record written after the commit, so the
fleet's list finds it and shows its alarm.

The snapshot is the commit: until it is written, a retry starts from the one before,
and its entry replaces this one (same key) or repeats its readings (readers take one
reading per key). A snapshot that changed since it was read (another writer) fails the
batch.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from iotpm.observability import log
from iotpm.service.batch import DAY_S, Counts, Work
from iotpm.service.compaction import Compaction, due_slices
from iotpm.service.errors import StoreError
from iotpm.service.ports import BatchLog, DeviceRecord, Failures, LogEntry, ReadingRow, Snapshot, SnapshotStore, log_key
from iotpm.service.rows import last_sequence, log_device, reading_rows
from iotpm.service.storage import Tables


class WriteBehind:
    """The :class:`~iotpm.service.storage.Storage` that logs each batch and compacts the log in slices."""

    per_shard = True

    def __init__(self, tables: Tables, *, log: BatchLog, snapshots: SnapshotStore) -> None:
        self.tables, self.log, self.snapshots = tables, log, snapshots
        self.compaction = Compaction(tables, log)

    def open(self, shard: str) -> ShardLogBatch:
        """The shard's batch, from the shard's snapshot as stored now."""
        return ShardLogBatch(self, shard, self.snapshots.get(shard))

    def compact_all(self, shard: str, handed: Sequence[str] = ()) -> None:
        """Every device of ``shard`` compacted and the snapshot committed (a reshard's parent shard,
        or the shard a device's gateway published through before it moved).

        ``handed``: devices another shard takes over now. Their records leave this snapshot
        (the devices table holds all of them once compacted): should one come back here,
        its batch reads it from the devices table, as new to the shard, not this record,
        which misses what the other shard applied meanwhile.
        """
        snap = self.snapshots.get(shard)
        after = self.compaction(shard, snap, int(time.time() * 1000))
        gone = [d for d in handed if d in after.records]
        if gone:
            records = {d: r for d, r in after.records.items() if d not in gone}
            after = dataclasses.replace(after, records=records)
        if after is not snap:
            self.snapshots.put(shard, after)


@dataclass(frozen=True, slots=True)
class _Logged:
    """What a batch's log entry holds: its key, the devices whose readings it holds, the records to commit."""

    key: str | None
    ok: list[Work]
    records: dict[str, DeviceRecord]  # the snapshot's records after the batch
    now_records: list[DeviceRecord]  # written to the devices table after the commit


@dataclass(frozen=True, slots=True)
class ShardLogBatch:
    """One shard's batch in write-behind: started from the snapshot read, committed by writing it."""

    owner: WriteBehind
    shard: str
    snap: Snapshot

    def records(self, device_ids: Sequence[str]) -> dict[str, DeviceRecord]:
        """The devices' records: from the shard's snapshot, else the devices table.

        A device new to the shard's snapshot whose record names another shard's log (the
        stream was resharded: Kinesis hands a child shard over only once its parent is
        done; or its gateway moved to one whose messages go to this shard) has that shard
        compacted first, so its record is whole, and leaves that shard's snapshot: a device
        is in one snapshot at a time, so one that comes back to a shard is read from the
        devices table, never from the record it left there.
        """
        out = {d: self.snap.records[d] for d in device_ids if d in self.snap.records}
        missing = [d for d in device_ids if d not in out]
        stored = self.owner.tables.states.get_many(missing) if missing else {}
        others = sorted({s for r in stored.values() for s in r.flushed if s != self.shard})
        for other in others:
            self.owner.compact_all(other, handed=[d for d, r in stored.items() if other in r.flushed])
        if others:
            stored = self.owner.tables.states.get_many(missing)
        out.update(stored)
        return out

    def write(self, work: Sequence[Work], now: int, counts: Counts) -> Failures:
        """Time-series copy and events, the log entry, a due compaction, the snapshot (the commit),
        then the records the devices table must hold now."""
        owner = self.owner
        rows = reading_rows(work, owner.tables.settings.readings_ttl_days)
        failures: Failures = {}
        if owner.tables.timeseries is not None and rows:
            rejected, failed = owner.tables.timeseries.write([r for rs in rows.values() for r in rs])
            counts.timeseries_rejected += rejected
            failures.update(failed)
        failures = owner.tables.alarms(work, counts, uuid.uuid4().hex, failures)
        try:
            logged = self._append([w for w in work if w.device_id not in failures], rows, now, failures)
        except StoreError as exc:
            return {**failures, **dict.fromkeys((w.device_id for w in work if w.device_id not in failures), exc)}
        after = self._compacted(
            Snapshot(logged.records, logged.key or self.snap.last_key, self.snap.compacted_key,
                     self.snap.compacted_ms or now, self.snap.tag),
            logged, now,
        )  # fmt: skip
        try:
            owner.snapshots.put(self.shard, after)
        except StoreError as exc:
            return {**failures, **dict.fromkeys((w.device_id for w in work), exc)}
        # after the commit (a retry must not find them applied): a record that fails here is
        # written by the next compaction, and its readings are in the log meanwhile
        now_records = [after.records.get(r.device_id, r) for r in logged.now_records]  # with a compaction's cursor
        held = owner.tables.states.put_many(now_records, checked=False) if now_records else {}
        if held:
            log("warning", "device records not written; the next compaction writes them", devices=sorted(held)[:20])
        return failures

    def _append(
        self, ok: list[Work], rows: Mapping[str, Sequence[ReadingRow]], now: int, failures: Failures
    ) -> _Logged:
        """The batch's log entry appended; what it holds. Devices whose items the log refused are
        added to ``failures`` (the others' stand and commit); a log that fails whole raises."""
        records = dict(self.snap.records)
        if not ok:
            return _Logged(None, ok, records, [])
        key = log_key(last_sequence(ok, self.shard), self.snap.last_key)
        committed, now_records = self._committed(ok)
        ttl_s = self.owner.tables.settings.readings_ttl_days * DAY_S
        entry = LogEntry(key, now, ttl_s, [log_device(w, rows[w.device_id]) for w in ok])
        refused = self.owner.log.append(self.shard, entry)
        if refused:
            # charged to the devices whose items failed; the others' stand and commit. Their
            # pieces that did land are read once per reading key, as a retried batch's
            # are; the log now differs from what this processor wrote: read it from the table
            failures.update(refused)
            ok = [w for w in ok if w.device_id not in refused]
            now_records = [r for r in now_records if r.device_id not in refused]
            self.owner.compaction.forget(self.shard)
        else:
            self.owner.compaction.wrote(self.shard, self.snap.last_key, entry)
        records.update((w.device_id, committed[w.device_id]) for w in ok)
        return _Logged(key, ok, records, now_records)

    def _committed(self, ok: list[Work]) -> tuple[dict[str, DeviceRecord], list[DeviceRecord]]:
        """Each device's record in the snapshot after the batch, and those the devices table must hold now."""
        committed: dict[str, DeviceRecord] = {}
        now_records = []
        for w in ok:
            record = w.after
            if self.shard not in record.flushed:  # the API finds the device's readings in this shard's log
                # only here: a device new to the shard had any other shard it names compacted
                # first (see records), so the tables hold what those logs had of it
                record = _flushed(record, {self.shard: self.snap.last_key or ""})  # nothing of it logged before
                now_records.append(record)
            elif w.result.events:
                now_records.append(record)
            committed[w.device_id] = record
        return committed, now_records

    def _compacted(self, after: Snapshot, logged: _Logged, now: int) -> Snapshot:
        """``after`` with the slices due by the clock compacted (``after`` when none is, or it failed).

        Before the commit, which then carries the slices' cursors (one snapshot write a
        batch); if the commit fails, the tables already hold what the records written here
        say, and the retry starts from the snapshot before. A device new to the shard waits
        for its slice's next turn: its record is written after the commit, as every new one.
        """
        s = self.owner.tables.settings
        slices = due_slices(after.compacted_ms, now, s.compact_interval_s * 1000, s.compact_slices)
        if not slices:
            return after
        new = frozenset(w.device_id for w in logged.ok if w.device_id not in self.snap.records)
        try:
            return self.owner.compaction(self.shard, after, now, slices, skip=new)
        except StoreError as exc:  # the readings stay in the log; the next batch compacts again
            log("warning", "compaction failed; retried with the next batch", shard=self.shard, error=str(exc))
            return after


def _flushed(record: DeviceRecord, flushed: dict[str, str]) -> DeviceRecord:
    return dataclasses.replace(record, flushed=flushed)
