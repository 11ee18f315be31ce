"""The stream processor: Kinesis records in, stored readings, anomalies, rollups, alerts out.

Pure orchestration over the ports in :mod:`iotpm.service.ports`. Delivery is at least
once, so every write is idempotent: readings chunks and anomalies by key, rollups by
the batch's first reading ordinal (a retry replaces its own contribution), device
state by an optimistic version check, alerts by the anomaly row's ``notified`` flag.
A device whose writes fail is reported back (its records' sequence numbers) so Lambda
retries from there; bad input is quarantined and never retried.
"""

from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
import gzip
import json
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final, TypeVar

import msgspec
import numpy as np
import numpy.typing as npt
import orjson

from iotpm.detection import AlarmEvent, DetectionResult, DetectorConfig, DeviceInput, DeviceState, FleetDetector
from iotpm.detection.state import FloatArray
from iotpm.models import FastDecoder, ReadingFields, Rejection, RejectReason, ValidationLimits, decode
from iotpm.models.validation import DEVICE_REFUSALS
from iotpm.observability import log
from iotpm.service.errors import StoreError
from iotpm.service.ports import (
    RESOLUTION_MS,
    Alert,
    Alerts,
    AnomalyRow,
    AnomalyStore,
    Archive,
    ArchiveObject,
    BatchLog,
    DeviceRecord,
    Failures,
    LogDevice,
    LogEntry,
    MetricStats,
    RawLine,
    ReadingRow,
    ReadingStore,
    RollupDelta,
    RollupStore,
    Snapshot,
    SnapshotStore,
    StateStore,
    TimeSeries,
    block_of,
    buckets_of_rows,
    log_key,
    reading_key,
)

if TYPE_CHECKING:
    from iotpm.service.config_cache import DeviceControl, OperatorCache

_DAY_S = 86_400
T = TypeVar("T")


class RawRecord(msgspec.Struct, gc=False):
    """One Kinesis record as the handler received it (data already base64-decoded).

    A msgspec struct: a batch builds 10,000 of these, and a dataclass costs three
    times as much to build (a frozen one seven times).
    """

    sequence_number: str
    partition_key: str
    data: bytes
    arrival_ms: int
    shard_id: str = "shard"


@dataclass
class Counts:
    """What happened to a batch; ``received == stored + quarantined + duplicates + failed``."""

    records: int = 0
    received: int = 0  # readings (and undecodable records) seen
    stored: int = 0
    quarantined: int = 0
    duplicates: int = 0
    failed: int = 0  # readings of devices whose writes failed: retried by Lambda
    anomalies_raised: int = 0
    anomalies_cleared: int = 0
    alerts_sent: int = 0
    timeseries_rejected: int = 0
    max_age_ms: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    #: what a device's own sending made the processor refuse (see ``DEVICE_REFUSALS``), by the
    #: thing that published it and the reason: each raises a pipeline alarm naming the device
    refused: dict[str, dict[str, int]] = field(default_factory=dict)
    #: readings whose site, line or device type differ from their device's record (the record's kept)
    identity_mismatches: int = 0
    #: devices seen for the first time, their site, line and type taken from their payload
    identities_bootstrapped: int = 0
    #: alarm events of shelved devices: recorded, not sent (see service/config_cache.py)
    alerts_shelved: int = 0


@dataclass
class BatchOutcome:
    """The batch's counts and the records Lambda must retry (empty when all went well)."""

    counts: Counts
    failed_sequence_numbers: list[str]
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ProcessorSettings:
    """Knobs of the service (the composition root fills them from the environment)."""

    environment: str = "local"
    readings_ttl_days: int = 90
    anomalies_ttl_days: int = 365
    rollups_ttl_days: int = 400
    limits: ValidationLimits = field(default_factory=ValidationLimits)
    archive_prefix: str = "raw"
    quarantine_prefix: str = "quarantine"
    #: write-behind (when the processor has a batch log and snapshots): how often a shard's
    #: held readings are compacted into the readings chunks, the rollups and the device records
    compact_interval_s: int = 600
    #: a shard's devices fall in this many slices (by a hash of the id), compacted in turn, a
    #: slice every ``compact_interval_s / compact_slices``: each device still once per interval,
    #: and no batch carries a whole shard's compaction
    compact_slices: int = 10
    #: a device's channel set (its metric names) stops growing at this many; names past it are
    #: refused (``too_many_metrics``). 64 is what the detector's C kernel takes
    max_channels: int = 64
    #: per device type, another cap than ``max_channels``
    max_channels_by_type: Mapping[str, int] = field(default_factory=dict)

    def channel_cap(self, device_type: str) -> int:
        """How many channels a device of ``device_type`` may have."""
        return self.max_channels_by_type.get(device_type, self.max_channels)


@dataclass(slots=True)
class _Device:
    """One device's readings in a batch, in arrival order, and the first record it has one in.

    Only the first record matters on failure: Lambda retries a shard from the first
    record reported, and every record after it comes again.
    """

    device_id: str
    first_record: int
    readings: list[ReadingFields] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)  # each reading's record index in the batch


@dataclass(slots=True)
class _Work:
    """One device's fresh readings, the detector's input made of them, its verdict, and its record."""

    device: _Device
    record: DeviceRecord
    fresh: list[ReadingFields]  # in time order (late ones, older than the device's last, included)
    input: DeviceInput  # ts, and values (n, c) in channel order with NaN where a reading lacks a metric
    result: DetectionResult
    indices: list[int] = field(default_factory=list)  # each fresh reading's record index in the batch


class Processor:
    """Processes one Kinesis batch through the ports it is given."""

    def __init__(
        self,
        *,
        states: StateStore,
        readings: ReadingStore,
        anomalies: AnomalyStore,
        rollups: RollupStore,
        archive: Archive,
        alerts: Alerts,
        timeseries: TimeSeries | None = None,
        detector: DetectorConfig | None = None,
        settings: ProcessorSettings | None = None,
        batch_log: BatchLog | None = None,
        snapshots: SnapshotStore | None = None,
        operator: OperatorCache | None = None,
    ) -> None:
        """Write-through unless given a ``batch_log`` and ``snapshots`` (see :meth:`_write_behind`);
        ``operator``: registry identity, limits, shelve and re-baseline (see service/config_cache.py)."""
        self.operator = operator
        self.states, self.readings, self.anomalies, self.rollups = states, readings, anomalies, rollups
        self.log, self.snapshots = batch_log, snapshots
        self._tails: dict[str, _Tail] = {}  # per shard: the log entries this processor wrote
        self.archive, self.alerts, self.timeseries = archive, alerts, timeseries
        self.fleet = FleetDetector(detector)
        if self.fleet.native is None:  # the zip was built without a compiler for this machine
            log("warning", "detector C kernel not loaded; the numpy kernel runs (same results, slower)")
        self.settings = settings or ProcessorSettings()
        self._fast = FastDecoder(self.settings.limits)
        # the raw batch goes to the archive while the batch is decoded and scored (nothing
        # is written before the archive has it)
        self._archiver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="iotpm-archive")

    def __call__(self, records: Sequence[RawRecord], now_ms: int | None = None) -> BatchOutcome:
        """Process a batch; raises :class:`StoreError` only when nothing could be stored."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        shards = sorted({r.shard_id for r in records})
        if self.log is not None and len(shards) > 1:  # never from Kinesis (a batch is one shard's)
            return _merged([self(tuple(r for r in records if r.shard_id == s), now) for s in shards])
        counts = Counts(records=len(records))
        if not records:
            return BatchOutcome(counts, [])
        counts.max_age_ms = max(0, now - min([r.arrival_ms for r in records]))
        raw = ArchiveObject(self._key(self.settings.archive_prefix, records), _raw_lines(records))
        archived = self._archiver.submit(self.archive.put, raw)
        try:
            snap = self.snapshots.get(shards[0]) if self.log is not None and self.snapshots is not None else None
            devices, rejected = self._decode(records, counts)
            stored = self._records(sorted(devices), shards[0], snap) if devices else {}
            work = self._detect(devices, records, stored, counts, rejected)
        finally:
            archived.result()  # a failed archive write fails the batch here, before its own writes
        if rejected:
            self._quarantine(records, rejected, counts)
        if snap is not None:
            failures = self._write_behind(work, now, counts, shards[0], snap)
        elif work:
            failures = self._write(work, now, counts)
        else:
            return BatchOutcome(counts, [])
        first_failed: int | None = None  # Lambda retries from the first failed record on
        poisoned: list[tuple[int, Rejection, Any]] = []
        for w in work:
            exc = failures.get(w.device.device_id)
            if exc is None:
                continue
            counts.stored -= len(w.fresh)
            if not exc.retryable:  # retrying cannot fix it: quarantined with the store's reason
                detail = f"{exc.code or 'error'}: {exc}"[:500]
                poisoned += [
                    (i, Rejection(RejectReason.STORE_REJECTED, detail, r.device_id), msgspec.to_builtins(r))
                    for i, r in zip(w.indices, w.fresh, strict=True)
                ]
                continue
            counts.failed += len(w.fresh)
            first = w.device.first_record
            first_failed = first if first_failed is None else min(first_failed, first)
        if poisoned:
            self._quarantine(records, poisoned, counts, prefix=f"{self.settings.quarantine_prefix}-store")
        failed = [] if first_failed is None else [records[first_failed].sequence_number]
        errors = [f"{device}: {exc}" for device, exc in sorted(failures.items())]
        return BatchOutcome(counts, failed, errors)

    def _records(self, device_ids: list[str], shard: str, snap: Snapshot | None) -> dict[str, DeviceRecord]:
        """The batch's devices' records: from the shard's snapshot (copies), else the devices table.

        A device new to the shard's snapshot whose record names another shard's log (the
        stream was resharded: Kinesis hands a child shard over only once its parent is
        done) has that shard compacted first, so its record is whole.
        """
        if snap is None:
            return self.states.get_many(device_ids)
        out = {d: copy.copy(snap.records[d]) for d in device_ids if d in snap.records}
        missing = [d for d in device_ids if d not in out]
        stored = self.states.get_many(missing) if missing else {}
        others = sorted({s for r in stored.values() for s in r.flushed if s != shard})
        if others and self.snapshots is not None:
            for other in others:
                self._compact(other, self.snapshots.get(other), int(time.time() * 1000))
            stored = self.states.get_many(missing)
        out.update(stored)
        return out

    # -- decode -------------------------------------------------------------------

    def _decode(
        self, records: Sequence[RawRecord], counts: Counts
    ) -> tuple[dict[str, _Device], list[tuple[int, Rejection, Any]]]:
        """Group the valid readings by device; the rest, with their reasons, to quarantine.

        A batch whose every record is one canonical reading is checked as a whole;
        otherwise a record of canonical messages with epoch-ms timestamps takes the
        fast decoder, and anything else goes through :func:`decode`, which accepts the
        legacy shapes and names what is wrong.
        """
        devices: dict[str, _Device] = {}
        rejected: list[tuple[int, Rejection, Any]] = []
        limits, fast = self.settings.limits, self._fast
        max_bytes = limits.max_bytes * 1000  # a record may carry an array of readings
        datas = [rec.data for rec in records]
        whole = fast.batch(datas, [rec.arrival_ms for rec in records]) if max(map(len, datas)) <= max_bytes else None
        # the common batch is one accepted reading per record; otherwise record by record
        pairs = enumerate(whole) if whole is not None else self._each(records, max_bytes, rejected)
        for index, fields in pairs:
            thing = records[index].partition_key
            if fields.device_id != thing:  # the rule keys each record by the thing that published it
                # quarantined as itself, not as its record: an array of foreign ids costs its own size
                why = f"reading for {fields.device_id!r} published by thing {thing[:128]!r}"
                rejection = Rejection(RejectReason.DEVICE_MISMATCH, why, fields.device_id)
                rejected.append((index, rejection, msgspec.to_builtins(fields)))
                continue
            device = devices.get(fields.device_id)
            if device is None:
                device = devices[fields.device_id] = _Device(fields.device_id, index)
            device.readings.append(fields)
            device.indices.append(index)
        # each rejection is one message (or one unreadable record)
        counts.received += sum(len(d.readings) for d in devices.values()) + len(rejected)
        return devices, rejected

    def _each(
        self, records: Sequence[RawRecord], max_bytes: int, rejected: list[tuple[int, Rejection, Any]]
    ) -> Iterator[tuple[int, ReadingFields]]:
        """Each record's index with each of its readings: the fast decoder's, else :func:`decode`'s."""
        most = self.settings.limits.max_readings
        for index, rec in enumerate(records):
            try:
                readings = self._fast(rec.data, rec.arrival_ms) if len(rec.data) <= max_bytes else None
                if readings is not None and len(readings) > most:
                    rejected.append((index, _too_many(len(readings), most, rec), None))
                    continue
                if readings is None:
                    readings = self._slow(index, rec, max_bytes, rejected)
            except Exception as exc:  # a decoder bug must not block the shard: quarantined, counted, logged
                log("error", "decoder failed on a record", sequence_number=rec.sequence_number, error=repr(exc)[:300])
                detail = f"{type(exc).__name__}: {exc}"[:300]
                rejected.append((index, Rejection(RejectReason.DECODER_ERROR, detail), None))
                continue
            for fields in readings:
                yield index, fields

    def _slow(
        self, index: int, rec: RawRecord, max_bytes: int, rejected: list[tuple[int, Rejection, Any]]
    ) -> list[ReadingFields]:
        """A record the fast decoder did not take: each message judged by :func:`decode`."""
        parsed = _payloads(rec.data, max_bytes)
        if isinstance(parsed, Rejection):
            rejected.append((index, parsed, None))
            return []
        out = []
        strict, payloads = parsed
        if len(payloads) > self.settings.limits.max_readings:
            rejected.append((index, _too_many(len(payloads), self.settings.limits.max_readings, rec), None))
            return []
        for payload in payloads:
            result = decode(payload, rec.arrival_ms, self.settings.limits)
            if isinstance(result, Rejection):
                # what only the standard library could parse (NaN literals, say) has no
                # JSON form: it is archived as the record's text, exactly as received (once
                # per record, however many of its messages are refused: see _quarantine)
                rejected.append((index, result, payload if strict else None))
            else:
                out.append(ReadingFields.of(result))
        return out

    def _quarantine(
        self,
        records: Sequence[RawRecord],
        rejected: list[tuple[int, Rejection, Any]],
        counts: Counts,
        prefix: str | None = None,
    ) -> None:
        """One line per rejection, with what was refused: a message as itself, a record's text
        once per record (its line counts the record's other rejections without a payload), so
        the object grows with the input's size, never with its square."""
        lines = []
        whole: dict[int, dict[str, Any]] = {}  # record index -> its line carrying the record's text
        for index, rejection, payload in rejected:
            rec, reason = records[index], rejection.reason.value
            counts.quarantine_reasons[reason] = counts.quarantine_reasons.get(reason, 0) + 1
            counts.quarantined += not rejection.part
            if rejection.reason in DEVICE_REFUSALS:  # charged to the thing that published it
                per = counts.refused.setdefault(rec.partition_key[:128], {})
                per[reason] = per.get(reason, 0) + 1
            if payload is None and index in whole:
                line = whole[index]
                line["count"] += 1
                line["reasons"][reason] = line["reasons"].get(reason, 0) + 1
                continue
            line = {
                "reason": reason,
                "detail": rejection.detail,
                "device_id": rejection.device_id,
                "sequence_number": rec.sequence_number,
                "partition_key": rec.partition_key,
                "arrival_ms": rec.arrival_ms,
                "payload": payload if payload is not None else _text(rec.data),
            }
            if payload is None:
                line.update(count=1, reasons={reason: 1})
                whole[index] = line
            if rejection.part:  # the rest of the message was stored: readers must not leave the record out
                line["partial"] = True
            lines.append(line)
        self.archive.put(ArchiveObject(self._key(prefix or self.settings.quarantine_prefix, records), lines))

    def _key(self, prefix: str, records: Sequence[RawRecord]) -> str:
        first, last = records[0], records[-1]
        try:
            at = datetime.fromtimestamp(first.arrival_ms / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            at = datetime.fromtimestamp(0, tz=UTC)
        part = f"year={at:%Y}/month={at:%m}/day={at:%d}/hour={at:%H}"
        name = "-".join(_safe(v) for v in (first.shard_id, first.sequence_number, last.sequence_number))
        return f"{prefix}/{part}/{name}.jsonl.gz"

    # -- detect -------------------------------------------------------------------

    def _detect(
        self,
        devices: dict[str, _Device],
        records: Sequence[RawRecord],
        stored: Mapping[str, DeviceRecord],
        counts: Counts,
        rejected: list[tuple[int, Rejection, Any]],
    ) -> list[_Work]:
        """Each device's fresh readings through the detector, late ones stored without a score."""
        pending: list[tuple[_Device, DeviceRecord, _Fresh, DeviceInput, DeviceInput | None]] = []
        new: list[str] = []
        controls = self._controls(sorted(devices))
        for device_id in sorted(devices):
            device = devices[device_id]
            record = stored.get(device_id)
            if record is None:  # the bootstrap: its first message's site, line and type (see DeviceRecord.identity)
                first = device.readings[0]
                record = DeviceRecord(device_id, first.site, first.line, first.device_type)
                new.append(device_id)
            fresh = _fresh(device, records, record, counts)
            rejected += fresh.conflicts
            # the registry's identity, a re-baseline; an unregistered device quarantined where so set
            if self.operator is not None and not self.operator.admit(record, controls.get(device_id), self.fleet):
                rejected += self.operator.quarantined(device_id, fresh.readings, fresh.indices)
                continue
            if not fresh.readings:
                continue
            _identify(record, fresh.readings, counts)
            state = _state(record)
            rejected += _capped(fresh, state.channels if state else (), self.settings.channel_cap(record.device_type))
            if not fresh.readings:
                continue
            channels, state = _channels(state, fresh.readings)
            ts = np.array([r.ts_ms for r in fresh.readings], dtype=np.int64)
            x = _values(fresh.readings, channels)
            last = fresh.readings[-1]
            whole = DeviceInput(device_id, channels, ts, x, state, last.line, last.device_type)
            # readings older than the device's last scored one are stored and rolled up, not scored:
            # the detector's state has moved past them (a gateway forwarding what it buffered)
            on_time = ts >= record.last_ts_ms
            scored: DeviceInput | None = whole
            if not on_time.all():
                scored = (
                    DeviceInput(device_id, channels, ts[on_time], x[on_time], state, last.line, last.device_type)
                    if on_time.any()
                    else None
                )
            pending.append((device, record, fresh, whole, scored))
        if new:
            counts.identities_bootstrapped += len(new)
            log("info", "devices seen for the first time: site, line and type from their payload",
                devices=new[:20], count=len(new))  # fmt: skip
        work = []
        detected = [item for *_, item in pending if item is not None]
        results = iter(self.fleet.update(detected)) if detected else iter(())
        for device, record, fresh, whole, to_score in pending:
            if to_score is None:
                result = _unscored(whole, record)
            else:
                result, state = next(results)
                record.detector = state.to_dict()
                if to_score is not whole:
                    result = _scatter(result, np.flatnonzero(whole.ts >= record.last_ts_ms), len(whole.ts))
            counts.stored += len(fresh.readings)
            record.ingest = fresh.ingest
            work.append(_Work(device, record, fresh.readings, whole, result, fresh.indices))
        return work

    def _controls(self, device_ids: list[str]) -> dict[str, DeviceControl]:
        """The batch's devices' registrations and alarm controls; the detector on the limits in effect."""
        if self.operator is None:
            return {}
        controls = self.operator.devices(device_ids)
        if self.operator.config() is not self.fleet.config:
            self.fleet = FleetDetector(self.operator.config())  # the limits changed: applied from this batch on
        return controls

    # -- write --------------------------------------------------------------------

    def _write(self, work: list[_Work], now: int, counts: Counts) -> Failures:
        """Bulk writes in dependency order; a device that fails a step skips the rest.

        Device state goes last: until it is written, a retry reprocesses the device
        from its previous state and every earlier write repeats idempotently.
        """
        s = self.settings
        token = uuid.uuid4().hex  # this attempt's claim on the alerts it sends
        rows = _reading_rows(work, s.readings_ttl_days)
        failures: Failures = dict(self.readings.put_many([row for rs in rows.values() for row in rs]))
        if self.timeseries is not None:
            rejected, failed = self.timeseries.write([r for d, rs in rows.items() if d not in failures for r in rs])
            counts.timeseries_rejected += rejected
            failures.update(failed)
        self._events(work, counts, token, failures)
        failures.update(self.rollups.apply(_rollups([w for w in work if w.device.device_id not in failures], s)))
        records = []
        for w in work:
            if w.device.device_id not in failures:
                self._update_record(w, now)
                records.append(w.record)
        failures.update(self.states.put_many(records))
        return failures

    def _write_behind(self, work: list[_Work], now: int, counts: Counts, shard: str, snap: Snapshot) -> Failures:
        """Write-behind: the batch's readings in one log entry, the shard's records in its snapshot.

        Per batch, whatever the number of devices: one log item (the readings, scored,
        and each device's view after them: what the API adds to the tables), the
        snapshot object (S3) and the alarm events. Every ``compact_interval_s`` the
        readings logged since the last compaction are written to the readings chunks,
        the rollups and the device records, per device (:meth:`_compact`). A device new
        to the devices table, or whose alarm opened or closed, has its record written
        after the commit, so the fleet's list finds it and shows its alarm.

        The snapshot is the commit: until it is written, a retry starts from the one
        before, and its entry replaces this one (same key) or repeats its readings
        (readers take one reading per key). A snapshot that changed since it was read
        (another writer) fails the batch.
        """
        s, log_ = self.settings, self.log
        assert log_ is not None and self.snapshots is not None
        token = uuid.uuid4().hex
        rows = _reading_rows(work, s.readings_ttl_days)
        failures: Failures = {}
        if self.timeseries is not None and rows:
            rejected, failed = self.timeseries.write([r for rs in rows.values() for r in rs])
            counts.timeseries_rejected += rejected
            failures.update(failed)
        self._events(work, counts, token, failures)
        ok = [w for w in work if w.device.device_id not in failures]
        key = log_key(_last_sequence(ok, shard), snap.last_key) if ok else None
        now_records = []
        for w in ok:
            self._update_record(w, now)
            if shard not in w.record.flushed:  # the API finds the device's readings in this shard's log
                # only here: a device new to the shard had any other shard it names compacted
                # first (see _records), so the tables hold what those logs had of it
                w.record.flushed = {shard: snap.last_key or ""}  # nothing of it logged before this batch
                now_records.append(w.record)
            elif w.result.events:
                now_records.append(w.record)
        records = dict(snap.records)
        if ok and key is not None:
            ttl_s = s.readings_ttl_days * _DAY_S
            entry = LogEntry(key, now, ttl_s, [_log_device(w, rows[w.device.device_id]) for w in ok])
            try:
                refused = log_.append(shard, entry)
            except StoreError as exc:
                return {**failures, **dict.fromkeys((w.device.device_id for w in ok), exc)}
            if refused:
                # charged to the devices whose items failed; the others' stand and commit. Their
                # pieces that did land are read once per reading key, as a retried batch's
                # are; the log now differs from what this processor wrote: read it from the table
                failures.update(refused)
                ok = [w for w in ok if w.device.device_id not in refused]
                now_records = [r for r in now_records if r.device_id not in refused]
                self._tails.pop(shard, None)
            else:
                self._tails[shard] = _Tail.grown(self._tails.get(shard), snap.last_key, entry)
            records.update((w.device.device_id, w.record) for w in ok)
        after = Snapshot(records, key or snap.last_key, snap.compacted_key, snap.compacted_ms or now, snap.tag)
        slices = _due_slices(after.compacted_ms, now, s.compact_interval_s * 1000, s.compact_slices)
        if slices:
            # before the commit, which then carries the slices' cursors (one snapshot write a
            # batch); if the commit fails, the tables already hold what the records written here
            # say, and the retry starts from the snapshot before. A device new to the shard waits
            # for its slice's next turn: its record is written after the commit, as every new one
            new = frozenset(w.device.device_id for w in ok if w.device.device_id not in snap.records)
            try:
                self._compact(shard, after, now, slices, skip=new, commit=False)
            except StoreError as exc:  # the readings stay in the log; the next batch compacts again
                log("warning", "compaction failed; retried with the next batch", shard=shard, error=str(exc))
        try:
            self.snapshots.put(shard, after)
        except StoreError as exc:
            return {**failures, **dict.fromkeys((w.device.device_id for w in work), exc)}
        # after the commit (a retry must not find them applied): a record that fails here is
        # written by the next compaction, and its readings are in the log meanwhile
        now_records = [after.records.get(r.device_id, r) for r in now_records]  # with a compaction's cursor
        held = self.states.put_many(now_records, checked=False) if now_records else {}
        if held:
            log("warning", "device records not written; the next compaction writes them", devices=sorted(held)[:20])
        return failures

    def _compact(
        self,
        shard: str,
        snap: Snapshot,
        now: int,
        slices: frozenset[int] | None = None,
        *,
        skip: frozenset[str] = frozenset(),
        commit: bool = True,
    ) -> None:
        """The shard's logged readings into the tables, for the devices of ``slices`` (all
        when None) but ``skip``, then the snapshot marked, and written when ``commit``
        (else the caller's batch writes it: ``snap`` changes only for what the tables
        hold). In slices, a device whose writes fail keeps its record and cursor (the next
        turn writes it again) and the others go on; a whole compaction fails as one.

        Each device's readings are those logged after its own ``flushed`` key, so the
        slices are compacted at different times. Idempotent: a chunk is named by its
        device, hour and first ordinal, and a rollup block replaces a contribution with the
        same first ordinal, so a compaction repeated (it failed half way, or its snapshot
        write did) writes the same items. Every record of the slices is written: a device
        logged since its last compaction with its ``flushed`` key moved to the newest
        entry, a silent one without this shard's key (nothing of it is in the log) and out
        of the snapshot; it comes back, whole, from the devices table when it reports again.
        """
        assert self.log is not None and self.snapshots is not None
        count = self.settings.compact_slices
        scope = {
            d: r for d, r in snap.records.items() if d not in skip and (slices is None or _slice(d, count) in slices)
        }
        if snap.last_key is None or (not scope and slices is not None):
            return  # nothing logged yet, or no device in these slices (the next ones are due by the clock)
        cursors = {d: r.flushed.get(shard) or "" for d, r in scope.items()}
        start = min(cursors.values(), default=snap.last_key)
        if slices is None and start == snap.last_key:
            # nothing logged since: a closed shard (resharded) is compacted once, and its silent
            # devices' records, which may name their child shard by now, are left as they are
            return
        rows, newest = self._logged_rows(shard, cursors, start, snap.last_key)
        records, failed = self._compacted(shard, scope, rows, newest)
        if failed and (slices is None or len(failed) == len(scope)):
            # a whole compaction (a reshard's parent shard, before its devices move) or nothing done
            raise next(iter(failed.values()))
        if failed:  # charged to those devices: they keep their cursors, and the next turn writes them again
            log("warning", "compaction failed for some devices; they are compacted again on their next turn",
                shard=shard, devices=sorted(failed)[:20], error=str(next(iter(failed.values())))[:300])  # fmt: skip
        for record in records:
            if record.device_id in rows:
                snap.records[record.device_id] = record
            else:
                del snap.records[record.device_id]
        # the tables hold every device's readings up to here (the oldest slice's cursor)
        snap.compacted_key = min((r.flushed.get(shard) or "" for r in snap.records.values()), default=newest)
        snap.compacted_ms = now
        if commit:
            self.snapshots.put(shard, snap)
        if shard in self._tails and snap.compacted_key:  # safe before the commit: an older cursor queries
            self._tails[shard].trim(snap.compacted_key)

    def _compacted(
        self,
        shard: str,
        scope: Mapping[str, DeviceRecord],
        rows: Mapping[str, Mapping[str, ReadingRow]],
        newest: str | None,
    ) -> tuple[list[DeviceRecord], Failures]:
        """The scope's readings, rollups and records written; the records written (cursors moved) and
        the devices whose writes failed (a device that fails a step skips the rest)."""
        # per device in arrival order: a chunk is named by its hour's first ordinal, which a
        # compaction repeated with more entries (newer batches) names the same
        flat = [r for held in rows.values() for r in sorted(held.values(), key=lambda r: r.ordinal)]
        failed: Failures = {}
        if flat:
            failed.update(self.readings.put_many(flat))
            ok = [r for r in flat if r.device_id not in failed]
            failed.update(self.rollups.apply(_row_rollups(ok, self.settings)))
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
            failed.update(self.states.put_many(records, checked=False))
        return [r for r in records if r.device_id not in failed], failed

    def _logged_rows(
        self, shard: str, cursors: dict[str, str], start: str | None, last: str | None
    ) -> tuple[dict[str, dict[str, ReadingRow]], str | None]:
        """Each device's readings logged after its cursor, by key, and the newest entry read."""
        rows: dict[str, dict[str, ReadingRow]] = {}
        newest = last
        if start == last:
            return rows, newest
        for entry in self._logged(shard, start or None, last):
            newest = entry.key
            for part in entry.devices:
                if part.device_id in cursors and entry.key > cursors[part.device_id]:
                    held = rows.setdefault(part.device_id, {})
                    for row in part.rows(entry.ttl_s):
                        held[row.key] = row  # of one key in two entries (a retried batch), the later
        return rows, newest

    def _logged(self, shard: str, after: str | None, last: str | None) -> Iterator[LogEntry]:
        """The shard's entries after ``after``: from what this processor wrote when that is
        every one of them up to the snapshot's ``last`` (no query), else from the log."""
        tail = self._tails.get(shard)
        if tail is not None and tail.covers(after, last):
            return iter([e for e in tail.entries if after is None or e.key > after])
        assert self.log is not None
        return self.log.after(shard, after)

    def _events(self, work: list[_Work], counts: Counts, token: str, failures: Failures) -> None:
        """Each device's alarm events recorded and alerted; a device whose store fails is in ``failures``."""
        for w in work:
            for event in w.result.events if w.device.device_id not in failures else ():
                try:
                    self._event(event, w.fresh[event.index], w.result, counts, token)
                except StoreError as exc:
                    failures[w.device.device_id] = exc
                    break

    def _event(
        self, event: AlarmEvent, reading: ReadingFields, result: DetectionResult, counts: Counts, token: str
    ) -> None:
        row = AnomalyRow(
            device_id=reading.device_id,
            ts_ms=event.ts_ms,
            kind=event.kind,
            severity=event.severity,
            score=round(event.score, 4),
            site=reading.site,
            line=reading.line,
            device_type=reading.device_type,
            reasons=tuple(
                {
                    "detector": r.detector,
                    "metric": r.metric,
                    "observed": round(r.observed, 4),
                    "expected": round(r.expected, 4),
                    "score": round(r.score, 4),
                    "detail": r.detail,
                }
                for r in event.reasons
            ),
            expires_at=event.ts_ms // 1000 + self.settings.anomalies_ttl_days * _DAY_S,
        )
        if event.kind == "raise":
            counts.anomalies_raised += 1
        elif event.kind == "clear":
            counts.anomalies_cleared += 1
        # claimed before it is sent, by this attempt's token: a retry after a failure anywhere
        # later finds it claimed and sends nothing, so an alert goes out once per raise; a claim
        # whose outcome is unknown is asked again (idempotent for one token); a failed send
        # releases the claim
        if not self.anomalies.record(row):
            return
        if self.operator is not None and self.operator.shelved(row.device_id, row.ts_ms):
            counts.alerts_shelved += 1  # recorded, not sent
            return
        if _again(lambda: self.anomalies.claim(row, token)):
            try:
                self.alerts.publish(_alert(row, reading, result))
            except StoreError:
                _again(lambda: self.anomalies.release(row, token))
                raise
            counts.alerts_sent += 1

    @staticmethod
    def _update_record(w: _Work, now: int) -> None:
        record, result, fresh = w.record, w.result, w.fresh
        last = fresh[-1]
        record.readings += len(fresh)
        record.last_mark = record.readings  # the last reading's mark: the count of applied readings
        record.updated_ms = now
        if last.ts_ms < record.last_ts_ms:  # every reading late: the device's current view stays
            return
        record.last_ts_ms = last.ts_ms
        record.latest = dict(last.metrics)
        record.health = result.health
        raises = [e for e in result.events if e.kind == "raise"]
        record.alarm_open = result.alarm_open
        if raises:
            record.alarm_since_ms = raises[-1].ts_ms
        if not result.alarm_open:
            record.alarm_since_ms = None
        record.trend = _shown(result.trend_table())
        record.updated_ms = now


@dataclass(slots=True)
class _Tail:
    """A shard's log entries after ``base`` as this processor wrote them, in key order: all
    of them, as long as no other writer (another instance, a retried batch's first try
    that did not commit) wrote in between; a gap starts a new tail."""

    base: str | None  # None: from the shard's first entry
    entries: list[LogEntry]

    @classmethod
    def grown(cls, tail: _Tail | None, prev: str | None, entry: LogEntry) -> _Tail:
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


def _slice(device_id: str, count: int) -> int:
    """The compaction slice a device falls in (a stable hash: every process agrees)."""
    return zlib.crc32(device_id.encode()) % count


def _due_slices(last_ms: int, now: int, interval_ms: int, count: int) -> frozenset[int]:
    """The slices whose turn came since ``last_ms``: slice ``k`` is due whenever the clock
    passes a multiple of ``interval_ms / count`` that is ``k`` modulo ``count``."""
    step = max(1, interval_ms // max(1, count))
    first, last = last_ms // step + 1, now // step
    return frozenset(t % count for t in range(max(first, last - count + 1), last + 1))


# -- fresh readings: what is new for a device --------------------------------------

#: how many recent reading identities a device record keeps (a message delivered again
#: in another record: an IoT rule retry, a device resending after a reconnect)
RECENT_IDENTITIES: Final = 16
#: how many shards' positions a device record keeps (a reshard moves a device to a child shard)
POSITION_SHARDS: Final = 8


@dataclass(slots=True)
class _Fresh:
    """A device's readings not applied yet, in time order, and its ingest marks after them."""

    readings: list[ReadingFields]
    indices: list[int]
    ingest: dict[str, Any]
    conflicts: list[tuple[int, Rejection, Any]]  # same time and sequence number as a reading applied, other values


def _fresh(device: _Device, records: Sequence[RawRecord], record: DeviceRecord, counts: Counts) -> _Fresh:
    """The device's readings that are not replays nor repeats, and its ingest marks after them.

    Replay protection keys on what Kinesis guarantees: a record at or below the device's
    applied position on its shard (a Lambda retry, a replay of the stream) was applied
    already. Nothing the device supplies orders its readings: a restart (``seq`` from 1
    again), a gateway's late readings and a change of message shape are all new. A reading
    with the same time, sequence number and metric names as one of the device's recent
    ones, delivered in another record, is a repeat when its values are the same too, and a
    conflict (quarantined) when they differ: the readings table holds one reading per key.
    """
    ingest = record.ingest
    positions: dict[str, str] = dict(ingest.get("pos") or {})
    applied = {shard: _seqnum(value) for shard, value in positions.items()}
    recent = _unpack(ingest.get("recent"))
    seen = {entry >> _CONTENT_BITS: entry & _CONTENT_MASK for entry in recent}
    fresh: list[tuple[int, int, ReadingFields]] = []
    conflicts: list[tuple[int, Rejection, Any]] = []
    newest: dict[str, int] = {}
    for reading, index in zip(device.readings, device.indices, strict=True):
        rec = records[index]
        number = _seqnum(rec.sequence_number)
        floor = applied.get(rec.shard_id)
        if number is not None and floor is not None and number <= floor:
            counts.duplicates += 1
            continue
        key, content = _identity(reading)
        known = seen.get(key)
        if known is not None:
            if known == content:
                counts.duplicates += 1
            else:
                why = f"ts {reading.ts_ms} seq {reading.seq} was applied with other values"
                rejection = Rejection(RejectReason.DUPLICATE_SEQUENCE, why, reading.device_id)
                conflicts.append((index, rejection, msgspec.to_builtins(reading)))
            continue
        seen[key] = content
        recent.append(key << _CONTENT_BITS | content)
        fresh.append((reading.ts_ms, index, reading))
        if number is not None and number > newest.get(rec.shard_id, -1):
            newest[rec.shard_id] = number
    fresh.sort(key=itemgetter(0))  # stable: one instant's readings keep their arrival order
    for shard, number in newest.items():
        positions[shard] = str(number)
    if len(positions) > POSITION_SHARDS:  # the newest shards: sequence numbers grow across a reshard
        keep = sorted(positions, key=lambda k: _seqnum(positions[k]) or -1)[-POSITION_SHARDS:]
        positions = {k: positions[k] for k in keep}
    marks = {"pos": positions, "recent": _pack(recent[-RECENT_IDENTITIES:])}
    return _Fresh([r for _, _, r in fresh], [i for _, i, _ in fresh], marks, conflicts)


def _seqnum(value: object) -> int | None:
    """A Kinesis sequence number as an int (they are decimal strings), or None if it is not one."""
    if isinstance(value, str) and 0 < len(value) <= 128 and value.isascii() and value.isdigit():
        return int(value)
    return None


#: a recent identity packs the reading's key (40 bits) above a digest of its values (23 bits)
_CONTENT_BITS: Final = 23
_CONTENT_MASK: Final = (1 << _CONTENT_BITS) - 1


def _identity(r: ReadingFields) -> tuple[int, int]:
    """(key, content) digests: the reading's key as the readings table has it (time and sequence
    number, or time and metric names without one), and its metrics.

    Built from ints and floats only (CPython hashes those the same in every process and
    release; strings it salts), names through CRC-32.
    """
    names = zlib.crc32("\x00".join(r.metrics).encode())
    key = hash((r.ts_ms, -1, names) if r.seq is None else (r.ts_ms, r.seq)) & 0xFF_FFFF_FFFF
    return key, hash((names, *r.metrics.values())) & _CONTENT_MASK


def _pack(keys: list[int]) -> str:
    return base64.b64encode(np.array(keys, dtype="<i8").tobytes()).decode()


def _unpack(text: object) -> list[int]:
    if not isinstance(text, str) or not text:
        return []
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return []
    keys: list[int] = np.frombuffer(raw[: len(raw) - len(raw) % 8], dtype="<i8").tolist()
    return keys


def _scatter(result: DetectionResult, keep: npt.NDArray[np.intp], n: int) -> DetectionResult:
    """A result for the on-time subset ``keep`` of ``n`` readings, spread back over all ``n``.

    The late readings get no score, no flag and no expected value; events point at the
    reading they belong to.
    """
    m = len(keep)
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(result):
        value = getattr(result, f.name)
        if f.name != "trend" and isinstance(value, np.ndarray) and value.ndim and value.shape[0] == m:
            fill: Any = False if value.dtype == np.bool_ else (np.nan if f.name in _UNKNOWN_WHEN_LATE else 0)
            full = np.full((n, *value.shape[1:]), fill, dtype=value.dtype)
            full[keep] = value
            changes[f.name] = full
    changes["events"] = [dataclasses.replace(e, index=int(keep[e.index])) for e in result.events]
    return dataclasses.replace(result, **changes)


_UNKNOWN_WHEN_LATE: Final = frozenset({"expected", "scale"})


def _unscored(whole: DeviceInput, record: DeviceRecord) -> DetectionResult:
    """The result for a chunk of late readings only: nothing scored, the device's view unchanged."""
    n, c = whole.values.shape
    return DetectionResult(
        channels=whole.channels,
        score=np.zeros(n),
        is_anomaly=np.zeros(n, dtype=bool),
        events=[],
        channel_scores=np.zeros((n, c, 0)),
        device_scores=np.zeros((n, 0)),
        expected=np.full((n, c), np.nan),
        scale=np.full((n, c), np.nan),
        health=record.health,
        alarm_open=record.alarm_open,
        trend=np.full((c, 4), np.nan),
        in_alarm=np.zeros(n, dtype=bool),
    )


def _too_many(n: int, most: int, rec: RawRecord) -> Rejection:
    """A record of more readings than a record may carry: refused whole, once."""
    why = f"{n} readings in one record; at most {most}"
    return Rejection(RejectReason.TOO_MANY_READINGS, why, rec.partition_key[:128] or None)


def _capped(fresh: _Fresh, known: tuple[str, ...], cap: int) -> list[tuple[int, Rejection, Any]]:
    """The device's channel set grown by the fresh readings' new names up to ``cap``, no further.

    Names are taken in time order (a reading's own in sorted order) while the set has room;
    a reading's metrics past it are refused (``too_many_metrics``) and quarantined as
    themselves, its other metrics kept; a reading left with none is refused whole.
    ``fresh`` keeps what is stored. A set already past ``cap`` (a lower cap set later)
    keeps its channels and takes no new one.
    """
    admitted = set(known)
    if len(admitted.union(*[r.metrics for r in fresh.readings])) <= max(cap, len(known)):
        return []  # the common batch: every name fits
    refused: list[tuple[int, Rejection, Any]] = []
    readings, indices = [], []
    for r, index in zip(fresh.readings, fresh.indices, strict=True):
        for name in sorted(r.metrics):
            if len(admitted) >= cap:
                break
            admitted.add(name)
        extra = {m: v for m, v in r.metrics.items() if m not in admitted}
        if extra:
            part = len(extra) < len(r.metrics)
            why = f"{len(extra)} metric names past the {cap} channels a {r.device_type!r} device may have"
            payload = {"device_id": r.device_id, "ts": r.ts_ms, "seq": r.seq, "metrics": extra}
            refused.append((index, Rejection(RejectReason.TOO_MANY_METRICS, why, r.device_id, part=part), payload))
            if not part:
                continue
            r.metrics = {m: v for m, v in r.metrics.items() if m in admitted}
        readings.append(r)
        indices.append(index)
    fresh.readings, fresh.indices = readings, indices
    return refused


def _again(call: Callable[[], T], attempts: int = 3) -> T:
    """``call``, tried again on a retryable store error (it must be idempotent); the last error leaves."""
    for attempt in range(attempts):
        try:
            return call()
        except StoreError as exc:
            if not exc.retryable or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _payloads(data: bytes, max_bytes: int) -> tuple[bool, list[Any]] | Rejection:
    """The messages in one record (an object, or each element of a JSON array), or why none.

    orjson parses; the standard library gets a second look at what orjson refuses
    (``NaN`` literals, integers past 64 bits), so those reach validation and are
    rejected with their own reason rather than as malformed JSON. The flag says
    whether the record was strict JSON (parsed by orjson).
    """
    if len(data) > max_bytes:
        return Rejection(RejectReason.OVERSIZE, f"record of {len(data)} bytes")
    strict = True
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        strict = False
        try:
            obj = json.loads(data)
        except RecursionError:
            return Rejection(RejectReason.MALFORMED_JSON, "nested too deeply")
        except (ValueError, UnicodeDecodeError) as exc:
            return Rejection(RejectReason.MALFORMED_JSON, str(exc)[:200])
    if type(obj) is list:
        return (strict, obj) if obj else Rejection(RejectReason.UNKNOWN_SHAPE, "empty array")
    return strict, [obj]


def _state(record: DeviceRecord) -> DeviceState | None:
    """The device's detector state, or None when it has none (or one this release cannot read)."""
    if record.detector is None:
        return None
    try:
        return DeviceState.from_dict(record.detector)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        # a state from another release (or damaged): the device learns its
        # baseline again rather than holding up the shard
        log("warning", "detector state unusable; relearning", device_id=record.device_id, error=str(exc))
        return None


def _channels(state: DeviceState | None, fresh: list[ReadingFields]) -> tuple[tuple[str, ...], DeviceState | None]:
    """The detector's channels for the fresh readings, and the state to continue from (None: learn anew)."""
    seen = set().union(*[r.metrics for r in fresh])
    if state is None:
        return tuple(sorted(seen)), None
    if seen.issubset(state.channels):
        return state.channels, state
    # a new metric: the detector relearns the device with the wider set
    return tuple(sorted(seen.union(state.channels))), None


def _identify(record: DeviceRecord, fresh: list[ReadingFields], counts: Counts) -> None:
    """The readings carry their device's site, line and type as its record has them.

    A device's identity is its record's, not what its payload says: a reading that names
    another site, line or type is counted and logged and stored under the record's, so
    it cannot move the device to another line's routes (alerts' message attributes) or
    summaries. Its own data (time, sequence number, metrics) is kept as sent.
    """
    own = (record.site, record.line, record.device_type)
    differ = [r for r in fresh if (r.site, r.line, r.device_type) != own]
    if not differ:
        return
    counts.identity_mismatches += len(differ)
    said = differ[0]
    log("warning", "payload names another site, line or type than the device's record; the record's is kept",
        device_id=record.device_id, record=list(own), payload=[said.site, said.line, said.device_type],
        readings=len(differ))  # fmt: skip
    for r in differ:
        r.site, r.line, r.device_type = own


def _values(fresh: list[ReadingFields], channels: tuple[str, ...]) -> FloatArray:
    """(n, c) metric values in channel order; NaN where a reading lacks a metric."""
    get = itemgetter(*channels)
    try:
        rows: list[Any] = [get(r.metrics) for r in fresh]
    except KeyError:
        rows = [[r.metrics.get(ch, np.nan) for ch in channels] for r in fresh]
    return np.array(rows, dtype=np.float64).reshape(len(fresh), len(channels))


def _reading_rows(work: list[_Work], ttl_days: int) -> dict[str, list[ReadingRow]]:
    """Each device's reading rows with the detector's score and flag on each."""
    ttl_s = ttl_days * _DAY_S
    # rounded and flagged for the whole batch at once: two numpy calls, not two per device
    scores = np.round(np.concatenate([w.result.score for w in work]), 4).tolist() if work else []
    flags = np.concatenate([w.result.is_anomaly for w in work]).tolist() if work else []
    out, at = {}, 0
    for w in work:
        end = at + len(w.fresh)
        first = w.record.readings  # the device's stored readings before this batch: the first new one's ordinal
        out[w.device.device_id] = [
            ReadingRow(
                r.device_id,
                r.ts_ms,
                reading_key(r.ts_ms, r.seq, r.metrics),
                r.seq,
                r.site,
                r.line,
                r.device_type,
                r.metrics,
                score,
                anomaly,
                r.ts_ms // 1000 + ttl_s,
                first + i,
            )
            for i, (r, score, anomaly) in enumerate(zip(w.fresh, scores[at:end], flags[at:end], strict=True))
        ]
        at = end
    return out


def _rollups(work: list[_Work], settings: ProcessorSettings) -> list[RollupDelta]:
    """Each device's 1-minute and 1-hour buckets for this batch, computed per channel set at once."""
    deltas: list[RollupDelta] = []
    ttl_s = settings.rollups_ttl_days * _DAY_S
    groups: dict[tuple[str, ...], list[_Work]] = {}
    for w in work:
        groups.setdefault(w.input.channels, []).append(w)
    for channels, members in groups.items():
        sizes = [len(w.fresh) for w in members]
        owner = np.repeat(np.arange(len(members)), sizes)
        ts = np.concatenate([w.input.ts for w in members])
        # each reading's ordinal (see ReadingRow): the device's count before the batch, plus its place in it
        ordinals = np.arange(len(owner), dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        ordinals += np.repeat(np.array([w.record.readings for w in members], dtype=np.int64), sizes)
        x = np.concatenate([w.input.values for w in members])
        flags = np.concatenate([w.result.is_anomaly for w in members]).astype(np.int64)
        present = np.isfinite(x)
        filled = np.where(present, x, 0.0)
        for resolution, width in RESOLUTION_MS.items():
            bucket = ts - ts % width
            order = np.lexsort((bucket, owner))
            b, o = bucket[order], owner[order]
            starts = np.flatnonzero(np.r_[True, (b[1:] != b[:-1]) | (o[1:] != o[:-1])])
            count = np.add.reduceat(present[order].astype(np.int64), starts).tolist()
            low = np.fmin.reduceat(x[order], starts).tolist()
            high = np.fmax.reduceat(x[order], starts).tolist()
            total = np.add.reduceat(filled[order], starts).tolist()
            first = np.minimum.reduceat(ordinals[order], starts).tolist()
            anomalies = np.add.reduceat(flags[order], starts).tolist()
            for k, (at, who) in enumerate(zip(b[starts].tolist(), o[starts].tolist(), strict=True)):
                stats = {
                    name: MetricStats(count[k][j], low[k][j], high[k][j], total[k][j])
                    for j, name in enumerate(channels)
                    if count[k][j]
                }
                deltas.append(
                    RollupDelta(
                        device_id=members[who].device.device_id,
                        resolution=resolution,
                        bucket_ms=at,
                        first_ordinal=first[k],
                        metrics=stats,
                        anomalies=anomalies[k],
                        expires_at=at // 1000 + ttl_s,
                    )
                )
    return deltas


def _alert(row: AnomalyRow, reading: ReadingFields, result: DetectionResult) -> Alert:
    at = datetime.fromtimestamp(row.ts_ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")
    top = row.reasons[0] if row.reasons else None
    why = f": {top['metric']} {top['detector']}" if top else ""
    # an escalation carries its new severity, so a route for critical alarms hears it
    verb = {"raise": "raised", "escalate": "escalated", "clear": "cleared"}[row.kind]
    subject = f"[{row.severity.upper()}] {row.device_id} alarm {verb}{why}"[:100]
    body = {
        "event": f"alarm_{verb}",
        "device_id": row.device_id,
        "site": row.site,
        "line": row.line,
        "device_type": row.device_type,
        "time": at,
        "severity": row.severity,
        "score": row.score,
        "health": result.health,
        "reasons": list(row.reasons),
        "reading": dict(reading.metrics),
    }
    attributes = {
        "severity": row.severity,
        "site": row.site,
        "line": row.line,
        "device_id": row.device_id,
        "event": f"alarm_{verb}",
    }
    return Alert(subject, body, attributes, f"{row.device_id}#{row.key}")


def _raw_lines(records: Sequence[RawRecord]) -> list[RawLine]:
    try:  # the common batch is all UTF-8: decoded in one comprehension, not a call per record
        texts = [r.data.decode("utf-8") for r in records]
    except UnicodeDecodeError:
        texts = [_text(r.data) for r in records]
    return [
        RawLine(r.arrival_ms, text, r.partition_key, r.sequence_number, r.shard_id)
        for r, text in zip(records, texts, strict=True)
    ]


def _safe(value: str) -> str:
    """A key part from a Kinesis field: what S3 and Hive paths take plainly (an odd event's field may be anything)."""
    cleaned = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "_.-") else "_" for ch in value[:96])
    return cleaned or "none"


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode()


_LINES: Final = msgspec.json.Encoder(order="sorted")


def encode_lines(lines: Sequence[RawLine | Mapping[str, Any]]) -> bytes:
    """gzip JSON Lines (sorted keys, UTF-8), byte-for-byte reproducible (no timestamp in the header).

    Level 6, zlib's default: for a 10,000-record batch (4 MB of lines) it takes a
    quarter of the time of level 9 for a tenth more bytes; msgspec writes the lines
    ten times faster than :func:`json.dumps`.
    """
    return gzip.compress(_LINES.encode_lines(lines), compresslevel=6, mtime=0)


def _merged(outcomes: Sequence[BatchOutcome]) -> BatchOutcome:
    """Outcomes of a batch's parts as one (counts added)."""
    counts = Counts()
    for o in outcomes:
        for f in dataclasses.fields(Counts):
            mine, theirs = getattr(counts, f.name), getattr(o.counts, f.name)
            if isinstance(mine, dict):
                _add(mine, theirs)
            elif f.name == "max_age_ms":
                counts.max_age_ms = max(mine, theirs)
            else:
                setattr(counts, f.name, mine + theirs)
    return BatchOutcome(
        counts, [n for o in outcomes for n in o.failed_sequence_numbers], [e for o in outcomes for e in o.errors]
    )


def _add(mine: dict[str, Any], theirs: Mapping[str, Any]) -> None:
    """``theirs`` added into ``mine``: numbers summed, nested tallies (per device) too."""
    for k, v in theirs.items():
        if isinstance(v, Mapping):
            _add(mine.setdefault(k, {}), v)
        else:
            mine[k] = mine.get(k, 0) + v


def _last_sequence(work: Sequence[_Work], shard: str) -> str:
    """The newest sequence number on ``shard`` among the devices' fresh readings (their ingest positions)."""
    best, text = -1, "0"
    for w in work:
        value = (w.record.ingest.get("pos") or {}).get(shard)
        number = _seqnum(value)
        if number is not None and number > best:
            best, text = number, str(value)
    return text


def _log_device(w: _Work, rows: Sequence[ReadingRow]) -> LogDevice:
    r = w.record
    pos = r.ingest.get("pos") or {}
    return LogDevice(
        r.device_id, r.site, r.line, r.device_type, str(max(pos.values(), key=lambda v: _seqnum(v) or -1, default="")),
        float(r.health), r.alarm_open, r.alarm_since_ms, r.last_ts_ms, r.readings, rows[0].ordinal if rows else 0,
        [x.ts_ms for x in rows], [x.seq for x in rows], [dict(x.metrics) for x in rows], [x.score for x in rows],
        [x.anomaly for x in rows],
    )  # fmt: skip


def _row_rollups(rows: Sequence[ReadingRow], settings: ProcessorSettings) -> list[RollupDelta]:
    """The 1-minute and 1-hour deltas of stored rows (a compaction's), per device and bucket."""
    ttl_s = settings.rollups_ttl_days * _DAY_S
    deltas: list[RollupDelta] = []
    for resolution, width in RESOLUTION_MS.items():
        groups: dict[tuple[str, int], list[ReadingRow]] = {}
        for r in rows:
            groups.setdefault((r.device_id, block_of(r.ts_ms, width)), []).append(r)
        for (device, at), members in groups.items():
            ((_, agg),) = buckets_of_rows(members, width).items()
            first = min(r.ordinal for r in members)
            deltas.append(RollupDelta(device, resolution, at, first, agg.metrics, agg.anomalies, at // 1000 + ttl_s))
    return deltas


def _shown(trend: Mapping[str, Mapping[str, float | None]]) -> dict[str, dict[str, float | None]]:
    """The trend table as it is shown and stored: 7 significant digits (the devices table keeps it as text)."""
    return {m: {k: None if v is None else float(f"{v:.7g}") for k, v in row.items()} for m, row in trend.items()}
