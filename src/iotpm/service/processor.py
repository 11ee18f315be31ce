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
import gzip
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, Final

import msgspec
import numpy as np
import orjson

from iotpm.detection import AlarmEvent, DetectionResult, DetectorConfig, DeviceInput, DeviceState, FleetDetector
from iotpm.detection.state import FloatArray
from iotpm.models import FastDecoder, ReadingFields, Rejection, RejectReason, ValidationLimits, decode
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
    DeviceRecord,
    Failures,
    MetricStats,
    RawLine,
    ReadingRow,
    ReadingStore,
    RollupDelta,
    RollupStore,
    StateStore,
    TimeSeries,
)

_DAY_S = 86_400


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


@dataclass(slots=True)
class _Device:
    """One device's readings in a batch, in arrival order, and the first record it has one in.

    Only the first record matters on failure: Lambda retries a shard from the first
    record reported, and every record after it comes again.
    """

    device_id: str
    first_record: int
    readings: list[ReadingFields] = field(default_factory=list)


@dataclass(slots=True)
class _Work:
    """One device's fresh readings, the detector's input made of them, its verdict, and its record."""

    device: _Device
    record: DeviceRecord
    fresh: list[ReadingFields]
    marks: list[int]  # each fresh reading's order mark (its seq, or its timestamp)
    input: DeviceInput  # ts, and values (n, c) in channel order with NaN where a reading lacks a metric
    result: DetectionResult


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
    ) -> None:
        self.states, self.readings, self.anomalies, self.rollups = states, readings, anomalies, rollups
        self.archive, self.alerts, self.timeseries = archive, alerts, timeseries
        self.fleet = FleetDetector(detector)
        if self.fleet.native is None:  # the zip was built without a compiler for this machine
            log("warning", "detector C kernel not loaded; the numpy kernel runs (same results, slower)")
        self.settings = settings or ProcessorSettings()
        self._fast = FastDecoder(self.settings.limits)

    def __call__(self, records: Sequence[RawRecord], now_ms: int | None = None) -> BatchOutcome:
        """Process a batch; raises :class:`StoreError` only when nothing could be stored."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        counts = Counts(records=len(records))
        if not records:
            return BatchOutcome(counts, [])
        counts.max_age_ms = max(0, now - min([r.arrival_ms for r in records]))
        self.archive.put(ArchiveObject(self._key(self.settings.archive_prefix, records), _raw_lines(records)))
        devices, rejected = self._decode(records, counts)
        if rejected:
            self._quarantine(records, rejected, counts)
        if not devices:
            return BatchOutcome(counts, [])
        stored = self.states.get_many(sorted(devices))
        work = self._detect(devices, stored, counts)
        failures = self._write(work, now, counts)
        first_failed: int | None = None  # Lambda retries from the first failed record on
        for w in work:
            if w.device.device_id in failures:
                counts.failed += len(w.fresh)
                counts.stored -= len(w.fresh)
                first = w.device.first_record
                first_failed = first if first_failed is None else min(first_failed, first)
        failed = [] if first_failed is None else [records[first_failed].sequence_number]
        errors = [f"{device}: {exc}" for device, exc in sorted(failures.items())]
        return BatchOutcome(counts, failed, errors)

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
            device = devices.get(fields.device_id)
            if device is None:
                device = devices[fields.device_id] = _Device(fields.device_id, index)
            device.readings.append(fields)
        # each rejection is one message (or one unreadable record)
        counts.received += sum(len(d.readings) for d in devices.values()) + len(rejected)
        return devices, rejected

    def _each(
        self, records: Sequence[RawRecord], max_bytes: int, rejected: list[tuple[int, Rejection, Any]]
    ) -> Iterator[tuple[int, ReadingFields]]:
        """Each record's index with each of its readings: the fast decoder's, else :func:`decode`'s."""
        for index, rec in enumerate(records):
            readings = self._fast(rec.data, rec.arrival_ms) if len(rec.data) <= max_bytes else None
            if readings is None:
                readings = self._slow(index, rec, max_bytes, rejected)
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
        for payload in payloads:
            result = decode(payload, rec.arrival_ms, self.settings.limits)
            if isinstance(result, Rejection):
                # what only the standard library could parse (NaN literals, say) has no
                # JSON form: it is archived as the record's text, exactly as received
                rejected.append((index, result, payload if strict else None))
            else:
                out.append(ReadingFields.of(result))
        return out

    def _quarantine(
        self, records: Sequence[RawRecord], rejected: list[tuple[int, Rejection, Any]], counts: Counts
    ) -> None:
        lines = []
        for index, rejection, payload in rejected:
            rec = records[index]
            lines.append(
                {
                    "reason": rejection.reason.value,
                    "detail": rejection.detail,
                    "device_id": rejection.device_id,
                    "sequence_number": rec.sequence_number,
                    "partition_key": rec.partition_key,
                    "arrival_ms": rec.arrival_ms,
                    "payload": payload if payload is not None else _text(rec.data),
                }
            )
            counts.quarantine_reasons[rejection.reason.value] = (
                counts.quarantine_reasons.get(rejection.reason.value, 0) + 1
            )
        counts.quarantined += len(lines)
        self.archive.put(ArchiveObject(self._key(self.settings.quarantine_prefix, records), lines))

    def _key(self, prefix: str, records: Sequence[RawRecord]) -> str:
        first, last = records[0], records[-1]
        at = datetime.fromtimestamp(first.arrival_ms / 1000, tz=UTC)
        part = f"year={at:%Y}/month={at:%m}/day={at:%d}/hour={at:%H}"
        return f"{prefix}/{part}/{first.shard_id}-{first.sequence_number}-{last.sequence_number}.jsonl.gz"

    # -- detect -------------------------------------------------------------------

    def _detect(self, devices: dict[str, _Device], stored: Mapping[str, DeviceRecord], counts: Counts) -> list[_Work]:
        pending: list[tuple[_Device, DeviceRecord, list[ReadingFields], list[int], DeviceInput]] = []
        for device_id in sorted(devices):
            device = devices[device_id]
            first = device.readings[0]
            record = stored.get(device_id) or DeviceRecord(device_id, first.site, first.line, first.device_type)
            fresh, marks, stamps = self._fresh(device, record, counts)
            if not fresh:
                continue
            channels, state = self._channels(record, fresh)
            ts = np.array(stamps, dtype=np.int64)
            x = _values(fresh, channels)
            last = fresh[-1]
            item = DeviceInput(device_id, channels, ts, x, state, last.line, last.device_type)
            pending.append((device, record, fresh, marks, item))
        work = []
        results = self.fleet.update([item for *_, item in pending])
        for (device, record, fresh, marks, item), (result, state) in zip(pending, results, strict=True):
            record.detector = state.to_dict()
            counts.stored += len(fresh)
            work.append(_Work(device, record, fresh, marks, item, result))
        return work

    @staticmethod
    def _fresh(
        device: _Device, record: DeviceRecord, counts: Counts
    ) -> tuple[list[ReadingFields], list[int], list[int]]:
        """Readings not yet applied (past the device's last mark, and not repeated here),
        with their marks and timestamps."""
        fresh, marks, stamps, mark = [], [], [], record.last_mark
        for r in device.readings:
            m = r.seq if r.seq is not None else r.ts_ms  # the order mark: the seq, or the time without one
            if m <= mark:
                counts.duplicates += 1
                continue
            fresh.append(r)
            marks.append(m)
            stamps.append(r.ts_ms)
            mark = m
        return fresh, marks, stamps

    def _channels(self, record: DeviceRecord, fresh: list[ReadingFields]) -> tuple[tuple[str, ...], DeviceState | None]:
        if record.detector is not None:
            try:
                state = DeviceState.from_dict(record.detector)
            except (ValueError, KeyError, TypeError, binascii.Error) as exc:
                # a state from another release (or damaged): the device learns its
                # baseline again rather than holding up the shard
                log("warning", "detector state unusable; relearning", device_id=record.device_id, error=str(exc))
                return tuple(sorted(set().union(*[r.metrics for r in fresh]))), None
            seen = set().union(*[r.metrics for r in fresh])
            if seen.issubset(state.channels):
                return state.channels, state
            # a new metric: the detector relearns the device with the wider set
            return tuple(sorted(seen.union(state.channels))), None
        return tuple(sorted(set().union(*[r.metrics for r in fresh]))), None

    # -- write --------------------------------------------------------------------

    def _write(self, work: list[_Work], now: int, counts: Counts) -> Failures:
        """Bulk writes in dependency order; a device that fails a step skips the rest.

        Device state goes last: until it is written, a retry reprocesses the device
        from its previous state and every earlier write repeats idempotently.
        """
        s = self.settings
        rows = _reading_rows(work, s.readings_ttl_days)
        failures: Failures = dict(self.readings.put_many([row for rs in rows.values() for row in rs]))
        if self.timeseries is not None:
            rejected, failed = self.timeseries.write([r for d, rs in rows.items() if d not in failures for r in rs])
            counts.timeseries_rejected += rejected
            failures.update(failed)
        for w in work:
            for event in w.result.events if w.device.device_id not in failures else ():
                try:
                    self._event(event, w.fresh[event.index], w.result, counts)
                except StoreError as exc:
                    failures[w.device.device_id] = exc
                    break
        failures.update(self.rollups.apply(_rollups([w for w in work if w.device.device_id not in failures], s)))
        records = []
        for w in work:
            if w.device.device_id not in failures:
                self._update_record(w, now)
                records.append(w.record)
        failures.update(self.states.put_many(records))
        return failures

    def _event(self, event: AlarmEvent, reading: ReadingFields, result: DetectionResult, counts: Counts) -> None:
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
        else:
            counts.anomalies_cleared += 1
        if self.anomalies.record(row):
            self.alerts.publish(_alert(row, reading, result))
            self.anomalies.mark_notified(row)
            counts.alerts_sent += 1

    @staticmethod
    def _update_record(w: _Work, now: int) -> None:
        record, result, fresh = w.record, w.result, w.fresh
        last = fresh[-1]
        record.site, record.line, record.device_type = last.site, last.line, last.device_type
        record.last_mark, record.last_ts_ms = w.marks[-1], last.ts_ms
        record.latest = dict(last.metrics)
        record.health = result.health
        record.readings += len(fresh)
        raises = [e for e in result.events if e.kind == "raise"]
        record.alarm_open = result.alarm_open
        if raises:
            record.alarm_since_ms = raises[-1].ts_ms
        if not result.alarm_open:
            record.alarm_since_ms = None
        record.trend = result.trend_table()
        record.updated_ms = now


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
        except (ValueError, UnicodeDecodeError) as exc:
            return Rejection(RejectReason.MALFORMED_JSON, str(exc)[:200])
    if type(obj) is list:
        return (strict, obj) if obj else Rejection(RejectReason.UNKNOWN_SHAPE, "empty array")
    return strict, [obj]


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
                # zero-padded to 13 digits: str.zfill pads as f"{ts:013d}" does, at half its cost
                f"{str(r.ts_ms).zfill(13)}#{r.seq if r.seq is not None else ','.join(sorted(r.metrics))}",
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
    verb = "raised" if row.kind == "raise" else "cleared"
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
