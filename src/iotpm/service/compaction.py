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
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from iotpm.observability import log
from iotpm.service.errors import ConflictError
from iotpm.service.ports import BatchLog, DeviceRecord, Failures, LogEntry, ReadingRow, Snapshot, SnapshotStore
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
        committed_only: bool = False,
        keep_silent: bool = False,
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

        ``committed_only`` reads the log up to the snapshot's ``last_key`` (not entries a batch
        in flight appended); ``keep_silent`` leaves a silent device's record as it is, in the
        snapshot and the devices table (:class:`IdleShards`, which runs beside batches).
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
        rows, newest = self._logged_rows(shard, cursors, start, snap.last_key, committed_only)
        if keep_silent:
            scope = {d: r for d, r in scope.items() if d in rows}
        written, failed = self._write(shard, scope, rows, newest)
        if failed and (slices is None or len(failed) == len(scope)):
            # a whole compaction (a reshard's parent shard, before its devices move) or nothing done
            raise next(iter(failed.values()))
        if failed:  # charged to those devices: they keep their cursors, and the next turn writes them again
            log("warning", "compaction failed for some devices; they are compacted again on their next turn",
                shard=shard, devices=sorted(failed)[:20], error=str(next(iter(failed.values())))[:300])  # fmt: skip
        silent = frozenset(d for d in snap.records if d not in rows) if keep_silent else frozenset()
        after = _marked(snap, shard, written, rows, newest, now, silent)
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
        self, shard: str, cursors: dict[str, str], start: str | None, last: str | None, committed_only: bool = False
    ) -> tuple[Logged, str | None]:
        """Each device's readings logged after its cursor, by key, and the newest entry read
        (up to ``last`` only, when ``committed_only``)."""
        rows: Logged = {}
        newest = last
        if start == last:
            return rows, newest
        for entry in self._entries(shard, start or None, last):
            if committed_only and last is not None and entry.key > last:
                break
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
    snap: Snapshot,
    shard: str,
    written: list[DeviceRecord],
    rows: Logged,
    newest: str | None,
    now: int,
    silent: frozenset[str] = frozenset(),
) -> Snapshot:
    """``snap`` with the records written (a silent device's taken out) and its compaction cursor moved.

    ``silent``: devices kept as they are though nothing of theirs is logged after their cursor
    (the tables hold all of it): they do not hold the compaction cursor back."""
    records = dict(snap.records)
    for record in written:
        if record.device_id in rows:
            records[record.device_id] = record
        else:
            del records[record.device_id]
    # the tables hold every device's readings up to here (the oldest slice's cursor)
    held = (r.flushed.get(shard) or "" for d, r in records.items() if d not in silent)
    compacted = min(held, default=newest)
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


@dataclass(frozen=True, slots=True)
class Claim:
    """A shard the job holds: its snapshot as claimed (``tag`` the claim's version) and the lease's end."""

    shard: str
    snap: Snapshot
    lease_ms: int


@dataclass(slots=True)
class IdleReport:
    """What a run of :class:`IdleShards` did, shard by shard."""

    claimed: list[str] = field(default_factory=list)
    compacted: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)  # committed over batches that came meanwhile
    left: dict[str, str] = field(default_factory=dict)  # shard -> why the batches' compaction does it
    # shard -> the error that stopped its claim or compaction (the other shards go on; the
    # function then fails, so its Errors alarm tells someone before the log expires)
    failed: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "claimed": self.claimed,
            "compacted": self.compacted,
            "merged": self.merged,
            "left": self.left,
            "failed": self.failed,
        }


class IdleShards:
    """The scheduled compaction of shards no batch compacts (a plant stopped: its shard receives nothing).

    Compaction runs inside a batch, due by the clock; a shard that receives no batch keeps
    its last readings in the log only. This job compacts a shard whose snapshot was last
    compacted ``idle_ms`` ago or more and whose log holds readings past that, so the log's
    items can expire long before the readings do (the adapters' log expiry).

    Beside the shard's processor it never compacts the same entries differently, which
    a chunk or rollup contribution named by its first ordinal would double count or lose:

    1. **claim**: the snapshot is written over the version read (a batch that committed
       meanwhile wins: the shard is live) with ``compacted_ms`` set to the lease's end. A
       batch compacts only the slices due since ``compacted_ms`` (:func:`due_slices`), so
       no batch that opens the claimed snapshot compacts before the lease ends.
    2. **wait** ``wait_ms`` (longer than a batch may run: the processor's timeout): a batch
       that opened the snapshot before the claim may have compacted; its commit fails
       (the claim changed the version) and it is over before the job reads the log, so
       the job's writes land after its own, over the same names.
    3. **compact** from the snapshot's cursors up to its newest committed entry (not what
       a batch in flight appended), every device with readings logged; a silent one is
       left as it is. Then commit: over the claimed version, or, when batches committed
       meanwhile (they append entries and never move a cursor under the lease), over the
       newest version with each compacted device's cursor moved where the job left it.

    Should the job stop half way (its writes failed, its commit did not land before the
    lease ends), the cursors stay where they were: the next compaction, by a batch or the
    job, starts there, reads the same entries again and writes the same names over the
    job's (a repeated compaction, as a failed commit in a batch is). ``lease_ms`` must
    cover ``wait_ms`` and the job's own run (its timeout), so no late write of the job
    lands after a batch compacted.
    """

    def __init__(
        self,
        compaction: Compaction,
        snapshots: SnapshotStore,
        shards: Callable[[], Iterable[str]],
        *,
        idle_ms: int,
        wait_ms: int,
        clock: Callable[[], int] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.compaction, self.snapshots, self.shards = compaction, snapshots, shards
        self.idle_ms, self.wait_ms = idle_ms, wait_ms
        self.clock = clock or (lambda: int(time.time() * 1000))
        self.sleep = sleep

    def __call__(self, lease_ms: int) -> IdleReport:
        """Claim the idle shards with a lease of ``lease_ms`` (the job's whole run), wait, compact them."""
        report = IdleReport()
        start = self.clock()
        until = start + lease_ms
        claims = self.claim(start, until, report)
        if claims:
            self.sleep(max(0, start + self.wait_ms - self.clock()) / 1000)
            self.compact(claims, report)
        return report

    def idle(self, snap: Snapshot, now: int) -> bool:
        """Whether a shard's snapshot has logged readings no batch compacted for ``idle_ms``."""
        return (
            snap.last_key is not None
            and snap.compacted_key != snap.last_key
            and now - snap.compacted_ms >= self.idle_ms
        )

    def claim(self, now: int, until: int, report: IdleReport) -> list[Claim]:
        """The idle shards claimed (step 1) until ``until``."""
        claims = []
        for shard in self.shards():
            try:
                snap = self.snapshots.get(shard)
                if not self.idle(snap, now):
                    continue
                claimed = dataclasses.replace(snap, compacted_ms=until)
                self.snapshots.put(shard, claimed)
            except ConflictError:
                report.left[shard] = "a batch committed while it was claimed"
                continue
            except Exception as exc:  # one shard's failure costs that shard, never the others
                _failed(report, shard, "claim", exc)
                continue
            claims.append(Claim(shard, claimed, until))
            report.claimed.append(shard)
        return claims

    def compact(self, claims: Iterable[Claim], report: IdleReport) -> None:
        """Each claimed shard compacted and committed (step 3), while its lease lasts."""
        for c in claims:
            try:
                self._compact(c, report)
            except Exception as exc:  # the cursors stay: the next compaction writes the same again
                _failed(report, c.shard, "compaction", exc)

    def _compact(self, c: Claim, report: IdleReport) -> None:
        snap = self.snapshots.get(c.shard)
        if snap.compacted_ms != c.lease_ms:  # compacted by another (a reshard's parent shard)
            report.left[c.shard] = "compacted by another writer"
            return
        now = self.clock()
        if now >= c.lease_ms:
            report.left[c.shard] = "lease ended"
            return
        after = self.compaction(c.shard, snap, now, committed_only=True, keep_silent=True)
        after = dataclasses.replace(after, compacted_ms=now)
        moved = {d: r.flushed.get(c.shard) for d, r in after.records.items()
                 if r.flushed.get(c.shard) != snap.records[d].flushed.get(c.shard)}  # fmt: skip
        merged = False
        while self.clock() < c.lease_ms:
            try:
                self.snapshots.put(c.shard, after)
                report.compacted.append(c.shard)
                if merged:
                    self._records_again(c.shard, after, moved)
                return
            except ConflictError:  # batches committed meanwhile: their entries over the job's cursors
                merged = True
                current = self.snapshots.get(c.shard)
                if current.compacted_ms != c.lease_ms:
                    report.left[c.shard] = "compacted by another writer"
                    return
                after = _merged(current, c.shard, moved, snap, now)
                if c.shard not in report.merged:
                    report.merged.append(c.shard)
        report.left[c.shard] = "lease ended before the commit"

    def _records_again(self, shard: str, committed: Snapshot, moved: Mapping[str, str | None]) -> None:
        """The devices table's records of the moved devices written again from the merged snapshot.

        A batch that committed while the job compacted wrote its devices' records (their alarm
        state) with the cursor before the job's, and the job wrote the claim-time records with
        its own: whichever landed last, a record said one thing wrong (the API counted logged
        readings the rollups already hold, or an open alarm showed closed in the device list).
        The merged snapshot has both, and any batch after the commit writes from it too."""
        again = [
            r
            for d, cursor in moved.items()
            if (r := committed.records.get(d)) is not None and cursor is not None and r.flushed.get(shard) == cursor
        ]
        if again:
            failed = self.compaction.tables.states.put_many(again, checked=False)
            if failed:  # the next compaction of the device writes its record again
                raise next(iter(failed.values()))


def _failed(report: IdleReport, shard: str, step: str, exc: Exception) -> None:
    report.failed[shard] = f"{step}: {type(exc).__name__}: {str(exc)[:200]}"
    log("error", f"idle shard's {step} failed", shard=shard, error=f"{type(exc).__name__}: {str(exc)[:300]}")


def _merged(current: Snapshot, shard: str, moved: Mapping[str, str | None], claimed: Snapshot, now: int) -> Snapshot:
    """``current`` with the job's cursors: a device's only where its cursor is still the claimed one
    (under the lease no batch moves one). The compaction cursor is the oldest device's: the
    batches' devices may have readings logged after theirs."""
    records = dict(current.records)
    for device, cursor in moved.items():
        record = records.get(device)
        if (
            record is not None
            and cursor is not None
            and record.flushed.get(shard) == claimed.records[device].flushed.get(shard)
        ):
            records[device] = dataclasses.replace(record, flushed={**record.flushed, shard: cursor})
    compacted = min((r.flushed.get(shard) or "" for r in records.values()), default=current.last_key)
    return dataclasses.replace(current, records=records, compacted_key=compacted, compacted_ms=now)
