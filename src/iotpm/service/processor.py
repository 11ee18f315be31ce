"""The stream processor: Kinesis records in, stored readings, anomalies, rollups, alerts out.

Pure orchestration over the ports in :mod:`iotpm.service.ports`. Delivery is at least
once, so every write is idempotent: readings and anomalies by key, rollups by a
per-device order mark, device state by an optimistic version check, alerts by the
anomaly row's ``notified`` flag. A device whose writes fail is reported back (its
records' sequence numbers) so Lambda retries from there; bad input is quarantined
and never retried.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from iotpm.detection import AlarmEvent, DetectionResult, DetectorConfig, DeviceInput, DeviceState, FleetDetector
from iotpm.models import Reading, Rejection, RejectReason, ValidationLimits, decode
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
    ReadingRow,
    ReadingStore,
    RollupDelta,
    RollupStore,
    StateStore,
    TimeSeries,
)

_DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One Kinesis record as the handler received it (data already base64-decoded)."""

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


@dataclass
class _Item:
    record: int  # index of the Kinesis record it came in
    reading: Reading


@dataclass
class _Device:
    device_id: str
    items: list[_Item] = field(default_factory=list)


_Work = tuple[_Device, DeviceRecord, DetectionResult, list[Reading]]


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
        self.settings = settings or ProcessorSettings()

    def __call__(self, records: Sequence[RawRecord], now_ms: int | None = None) -> BatchOutcome:
        """Process a batch; raises :class:`StoreError` only when nothing could be stored."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        counts = Counts(records=len(records))
        if not records:
            return BatchOutcome(counts, [])
        counts.max_age_ms = max(0, now - min(r.arrival_ms for r in records))
        self.archive.put(ArchiveObject(self._key(self.settings.archive_prefix, records), _raw_lines(records)))
        devices, rejected = self._decode(records, counts)
        if rejected:
            self._quarantine(records, rejected, counts)
        if not devices:
            return BatchOutcome(counts, [])
        stored = self.states.get_many(sorted(devices))
        work = list(self._detect(devices, stored, counts))
        failures = self._write(work, now, counts)
        failed_records: set[int] = set()
        for device, _, _, fresh in work:
            if device.device_id in failures:
                counts.failed += len(fresh)
                counts.stored -= len(fresh)
                failed_records.update(item.record for item in device.items)
        failed = [records[i].sequence_number for i in sorted(failed_records)[:1]]
        errors = [f"{device}: {exc}" for device, exc in sorted(failures.items())]
        return BatchOutcome(counts, failed, errors)

    # -- decode -------------------------------------------------------------------

    def _decode(
        self, records: Sequence[RawRecord], counts: Counts
    ) -> tuple[dict[str, _Device], list[tuple[int, Rejection, Any]]]:
        devices: dict[str, _Device] = {}
        rejected: list[tuple[int, Rejection, Any]] = []
        limits = self.settings.limits
        for index, rec in enumerate(records):
            for payload in _payloads(rec.data, limits):
                counts.received += 1
                result = payload if isinstance(payload, Rejection) else decode(payload, rec.arrival_ms, limits)
                if isinstance(result, Rejection):
                    rejected.append((index, result, None if isinstance(payload, Rejection) else payload))
                else:
                    devices.setdefault(result.device_id, _Device(result.device_id)).items.append(_Item(index, result))
        return devices, rejected

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

    def _detect(
        self, devices: dict[str, _Device], stored: Mapping[str, DeviceRecord], counts: Counts
    ) -> Iterator[_Work]:
        inputs, plan = [], []
        for device_id in sorted(devices):
            device = devices[device_id]
            first = device.items[0].reading
            record = stored.get(device_id) or DeviceRecord(device_id, first.site, first.line, first.device_type)
            fresh = self._fresh(device, record, counts)
            if not fresh:
                continue
            channels, state = self._channels(record, fresh)
            ts = np.array([r.ts_ms for r in fresh], dtype=np.int64)
            x = np.array([[r.metrics.get(ch, np.nan) for ch in channels] for r in fresh], dtype=np.float64)
            last = fresh[-1]
            inputs.append(DeviceInput(device_id, channels, ts, x, state, last.line, last.device_type))
            plan.append((device, record, fresh))
        for (device, record, fresh), (result, state) in zip(plan, self.fleet.update(inputs), strict=True):
            record.detector = state.to_dict()
            counts.stored += len(fresh)
            yield device, record, result, fresh

    @staticmethod
    def _fresh(device: _Device, record: DeviceRecord, counts: Counts) -> list[Reading]:
        """Readings not yet applied: past the device's last mark, and not repeated here."""
        fresh, mark = [], record.last_mark
        for item in device.items:
            m = _mark(item.reading)
            if m <= mark:
                counts.duplicates += 1
                continue
            fresh.append(item.reading)
            mark = m
        return fresh

    def _channels(self, record: DeviceRecord, fresh: list[Reading]) -> tuple[tuple[str, ...], DeviceState | None]:
        seen = sorted({name for r in fresh for name in r.metrics})
        if record.detector is not None:
            state = DeviceState.from_dict(record.detector)
            if set(seen) <= set(state.channels):
                return state.channels, state
            # a new metric: the detector relearns the device with the wider set
            return tuple(sorted(set(seen) | set(state.channels))), None
        return tuple(seen), None

    # -- write --------------------------------------------------------------------

    def _write(self, work: list[_Work], now: int, counts: Counts) -> Failures:
        """Bulk writes in dependency order; a device that fails a step skips the rest.

        Device state goes last: until it is written, a retry reprocesses the device
        from its previous state and every earlier write repeats idempotently.
        """
        s = self.settings
        rows = {
            device.device_id: [
                _reading_row(r, float(result.score[i]), bool(result.is_anomaly[i]), s.readings_ttl_days)
                for i, r in enumerate(fresh)
            ]
            for device, _, result, fresh in work
        }
        failures: Failures = dict(self.readings.put_many([row for rs in rows.values() for row in rs]))
        if self.timeseries is not None:
            rejected, failed = self.timeseries.write([r for d, rs in rows.items() if d not in failures for r in rs])
            counts.timeseries_rejected += rejected
            failures.update(failed)
        for device, _, result, fresh in work:
            for event in result.events if device.device_id not in failures else ():
                try:
                    self._event(event, fresh[event.index], result, counts)
                except StoreError as exc:
                    failures[device.device_id] = exc
                    break
        deltas = [
            delta
            for device, _, _, fresh in work
            if device.device_id not in failures
            for delta in _rollups(rows[device.device_id], [_mark(r) for r in fresh], s.rollups_ttl_days)
        ]
        failures.update(self.rollups.apply(deltas))
        records = []
        for device, record, result, fresh in work:
            if device.device_id not in failures:
                self._update_record(record, result, fresh, now)
                records.append(record)
        failures.update(self.states.put_many(records))
        return failures

    def _event(self, event: AlarmEvent, reading: Reading, result: DetectionResult, counts: Counts) -> None:
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
    def _update_record(record: DeviceRecord, result: DetectionResult, fresh: list[Reading], now: int) -> None:
        last = fresh[-1]
        record.site, record.line, record.device_type = last.site, last.line, last.device_type
        record.last_mark, record.last_ts_ms = _mark(last), last.ts_ms
        record.latest = dict(last.metrics)
        record.health = result.health
        record.readings += len(fresh)
        raises = [e for e in result.events if e.kind == "raise"]
        record.alarm_open = result.alarm_open
        if raises:
            record.alarm_since_ms = raises[-1].ts_ms
        if not result.alarm_open:
            record.alarm_since_ms = None
        record.trend = {
            name: {
                "level": p.level,
                "slope_per_hour": p.slope_per_hour,
                "limit": p.limit,
                "hours_to_limit": p.hours_to_limit,
            }
            for name, p in result.predictions.items()
        }
        record.updated_ms = now


def _payloads(data: bytes, limits: ValidationLimits) -> Iterator[Any]:
    """The messages in one record: an object, or each element of a JSON array."""
    if len(data) > limits.max_bytes * 1000:
        yield Rejection(RejectReason.OVERSIZE, f"record of {len(data)} bytes")
        return
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        yield Rejection(RejectReason.MALFORMED_JSON, str(exc)[:200])
        return
    if isinstance(obj, list):
        if not obj:
            yield Rejection(RejectReason.UNKNOWN_SHAPE, "empty array")
        yield from obj
    else:
        yield obj


def _mark(reading: Reading) -> int:
    """Per-device order: the sequence number, or the timestamp when there is none."""
    return reading.seq if reading.seq is not None else reading.ts_ms


def _reading_row(r: Reading, score: float, anomaly: bool, ttl_days: int) -> ReadingRow:
    tail = str(r.seq) if r.seq is not None else ",".join(sorted(r.metrics))
    return ReadingRow(
        device_id=r.device_id,
        ts_ms=r.ts_ms,
        key=f"{r.ts_ms:013d}#{tail}",
        seq=r.seq,
        site=r.site,
        line=r.line,
        device_type=r.device_type,
        metrics=dict(r.metrics),
        score=round(score, 4),
        anomaly=anomaly,
        expires_at=r.ts_ms // 1000 + ttl_days * _DAY_S,
    )


def _rollups(rows: list[ReadingRow], marks: list[int], ttl_days: int) -> list[RollupDelta]:
    deltas: list[RollupDelta] = []
    for resolution, width in RESOLUTION_MS.items():
        buckets: dict[int, list[int]] = defaultdict(list)
        for i, row in enumerate(rows):
            buckets[row.ts_ms - row.ts_ms % width].append(i)
        for bucket, members in buckets.items():
            per_metric: dict[str, list[float]] = defaultdict(list)
            for i in members:
                for name, value in rows[i].metrics.items():
                    per_metric[name].append(value)
            stats = {
                name: MetricStats(len(values), min(values), max(values), sum(values))
                for name, values in per_metric.items()
            }
            deltas.append(
                RollupDelta(
                    device_id=rows[0].device_id,
                    resolution=resolution,
                    bucket_ms=bucket,
                    first_mark=min(marks[i] for i in members),
                    last_mark=max(marks[i] for i in members),
                    metrics=stats,
                    anomalies=sum(rows[i].anomaly for i in members),
                    expires_at=bucket // 1000 + ttl_days * _DAY_S,
                )
            )
    return deltas


def _alert(row: AnomalyRow, reading: Reading, result: DetectionResult) -> Alert:
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


def _raw_lines(records: Sequence[RawRecord]) -> list[dict[str, Any]]:
    return [
        {
            "sequence_number": r.sequence_number,
            "partition_key": r.partition_key,
            "arrival_ms": r.arrival_ms,
            "shard_id": r.shard_id,
            "data": _text(r.data),
        }
        for r in records
    ]


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode()


def encode_lines(lines: Sequence[Mapping[str, Any]]) -> bytes:
    """gzip JSON Lines, byte-for-byte reproducible (no timestamp in the gzip header)."""
    text = "".join(json.dumps(line, separators=(",", ":"), sort_keys=True) + "\n" for line in lines)
    return gzip.compress(text.encode(), mtime=0)


def decode_base64(data: str) -> bytes | None:
    """Kinesis record data; None when it is not valid base64."""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None
