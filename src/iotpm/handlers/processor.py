"""The processor Lambda: Kinesis event in, partial batch response out.

Bad input is quarantined by the service and reported as processed; a device whose
writes failed comes back as a batch item failure, so Lambda retries from its first
record (the service is idempotent, so the records after it are harmless to repeat).
"""

from __future__ import annotations

import binascii
import gc
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import msgspec

from iotpm.observability import emf, log
from iotpm.service import BatchOutcome, Processor, RawRecord, StoreError


class _Kinesis(msgspec.Struct, gc=False):
    data: bytes  # base64 in the event; msgspec decodes it (strictly, as binascii's strict mode)
    sequenceNumber: str = ""  # noqa: N815 - the event's own field names
    partitionKey: str = ""  # noqa: N815
    approximateArrivalTimestamp: float | None = None  # noqa: N815


class _Record(msgspec.Struct, gc=False):
    kinesis: _Kinesis
    eventID: str = "shard:"  # noqa: N815


class _Event(msgspec.Struct, gc=False):
    Records: list[_Record] = []


def parse_event(event: Mapping[str, Any]) -> list[RawRecord]:
    """Kinesis event records as :class:`RawRecord` (undecodable base64 is kept as is).

    A well-formed event is converted in one call, in C (base64 included); one with any
    record out of shape (data that is not base64, a field of the wrong type) is taken
    record by record, so the odd record is kept for quarantine rather than lost.
    """
    now = time.time()
    try:
        parsed = msgspec.convert(event, _Event)
    except (msgspec.ValidationError, TypeError, RecursionError):
        given = event.get("Records") if isinstance(event, Mapping) else None
        return [_raw_record(rec, now) for rec in given] if isinstance(given, list) else []
    now_ms = int(now * 1000)
    return [
        RawRecord(
            k.sequenceNumber,
            k.partitionKey,
            k.data,
            now_ms if k.approximateArrivalTimestamp is None else int(k.approximateArrivalTimestamp * 1000),
            rec.eventID.partition(":")[0] or "shard",
        )
        for rec in parsed.Records
        for k in (rec.kinesis,)
    ]


def _raw_record(rec: object, now: float) -> RawRecord:
    """One record of an event out of shape, kept whole for quarantine (nothing in it can raise)."""
    if not isinstance(rec, Mapping):
        return RawRecord("", "", _repr(rec), int(now * 1000))
    kin = rec.get("kinesis")
    if not isinstance(kin, Mapping):
        kin = {}
    data = kin.get("data", "")
    if not isinstance(data, str):
        return RawRecord(_field(kin, "sequenceNumber"), _field(kin, "partitionKey"), _repr(data), int(now * 1000))
    try:
        raw = binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        raw = data.encode()
    try:
        arrival = float(kin.get("approximateArrivalTimestamp", now))
    except (TypeError, ValueError, OverflowError):
        arrival = now  # the record's age is then unknown, not an error
    if not math.isfinite(arrival) or not 0 <= arrival < 1e11:
        arrival = now
    event_id = rec.get("eventID")
    shard = event_id.partition(":")[0] if isinstance(event_id, str) else ""
    sequence, key = _field(kin, "sequenceNumber"), _field(kin, "partitionKey")
    return RawRecord(sequence, key, raw, int(arrival * 1000), shard or "shard")


def _field(kin: Mapping[str, Any], name: str) -> str:
    value = kin.get(name, "")
    return value if isinstance(value, str) else ""


def _repr(value: object) -> bytes:
    """A value that is not base64 text, as the bytes quarantine keeps of it."""
    try:
        return msgspec.json.encode(value)
    except (TypeError, ValueError, OverflowError, RecursionError, msgspec.EncodeError):
        return repr(value)[:4096].encode("utf-8", "backslashreplace")


class _Pauses:
    """Batches inside :func:`collector_paused`, and whether the collector was on before the first."""

    lock = threading.Lock()
    active = 0
    was_enabled = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Keep Python's cycle collector out of one batch.

    A 10,000-record batch allocates a few hundred thousand dicts, lists and rows,
    none of them in reference cycles (they are freed by reference counting when the
    batch ends); left on, the collector walks them over and over and costs more than
    half the batch. Anything cyclic is collected by its next pass after the batch.
    Batches of several handlers in one process (the twin's poller runs one per shard)
    overlap: the collector comes back when the last of them ends, if it was on before.
    """
    with _Pauses.lock:
        if _Pauses.active == 0:
            _Pauses.was_enabled = gc.isenabled()
            gc.disable()
        _Pauses.active += 1
    try:
        yield
    finally:
        with _Pauses.lock:
            _Pauses.active -= 1
            if _Pauses.active == 0 and _Pauses.was_enabled:
                gc.enable()


class ProcessorHandler:
    """Callable Lambda handler over a lazily built :class:`Processor`."""

    def __init__(self, factory: Callable[[], Processor]) -> None:
        self._factory = factory
        self._processor: Processor | None = None
        # one batch at a time, as Lambda runs it: the twin's poller calls from a thread per
        # shard, and the detector's kernel reuses its scratch buffers
        self._lock = threading.Lock()

    def warm(self) -> ProcessorHandler:
        """Build the processor now (its clients, the detector), as Lambda's provisioned
        concurrency does before the first batch, rather than in that batch's time."""
        with self._lock:
            if self._processor is None:
                self._processor = self._factory()
        return self

    def __call__(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        with self._lock, collector_paused():
            return self._handle(event, context)

    def _handle(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        started = time.perf_counter()
        records = parse_event(event)
        if self._processor is None:
            self._processor = self._factory()
        request_id = getattr(context, "aws_request_id", None)
        try:
            outcome = self._processor(records)
        except StoreError as exc:  # nothing could be stored: retry the whole batch
            log("error", "batch failed", error=str(exc), code=exc.code, request_id=request_id, records=len(records))
            return _response([records[0].sequence_number] if records else [])
        self._report(outcome, records, (time.perf_counter() - started) * 1000, request_id)
        return _response(outcome.failed_sequence_numbers)

    def _report(self, outcome: BatchOutcome, records: list[RawRecord], ms: float, request_id: str | None) -> None:
        c = outcome.counts
        emf(
            {
                "ReadingsReceived": (c.received, "Count"),
                "ReadingsProcessed": (c.stored, "Count"),
                "ReadingsQuarantined": (c.quarantined, "Count"),
                "ReadingsDuplicate": (c.duplicates, "Count"),
                "ReadingsFailed": (c.failed, "Count"),
                "AnomaliesRaised": (c.anomalies_raised, "Count"),
                "AnomaliesCleared": (c.anomalies_cleared, "Count"),
                "AlertsSent": (c.alerts_sent, "Count"),
                "TimestreamRejected": (c.timeseries_rejected, "Count"),
                "ReadingsRefused": (sum(n for per in c.refused.values() for n in per.values()), "Count"),
                "IdentityMismatches": (c.identity_mismatches, "Count"),
                "DevicesBootstrapped": (c.identities_bootstrapped, "Count"),
                "BatchLatency": (round(ms, 2), "Milliseconds"),
                "RecordAge": (c.max_age_ms, "Milliseconds"),
            },
            {"Environment": self._environment(), "Function": "processor"},
            properties={
                "request_id": request_id,
                "first_sequence_number": records[0].sequence_number if records else None,
                "last_sequence_number": records[-1].sequence_number if records else None,
                "quarantine_reasons": c.quarantine_reasons,
            },
        )
        if outcome.errors:
            log("warning", "devices will be retried", request_id=request_id, errors=outcome.errors[:20])
        self._refused(c.refused, request_id)

    def _refused(self, refused: Mapping[str, Mapping[str, int]], request_id: str | None) -> None:
        """A pipeline alarm's evidence per device refused: a metric with the device as its dimension
        (the ``device-refused`` alarm watches their sum, ``ReadingsRefused``) and an error log line."""
        for device, reasons in sorted(refused.items(), key=lambda kv: -sum(kv[1].values()))[:_REFUSED_NAMED]:
            emf(
                {"DeviceReadingsRefused": (sum(reasons.values()), "Count")},
                {"Environment": self._environment(), "Function": "processor", "DeviceId": device},
                properties={"reasons": dict(reasons), "request_id": request_id},
            )
            log("error", "device refused: its records break the pipeline's limits", device_id=device,
                reasons=dict(reasons), request_id=request_id)  # fmt: skip
        if len(refused) > _REFUSED_NAMED:
            log("error", "more devices refused", count=len(refused) - _REFUSED_NAMED, request_id=request_id)

    def _environment(self) -> str:
        return self._processor.settings.environment if self._processor is not None else "unknown"


#: at most this many devices named per batch (each a metric of its own); the rest are counted
_REFUSED_NAMED = 10


def _response(failed: list[str]) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in failed]}


def _build() -> Processor:
    from iotpm.composition import build_processor  # boto3 loads on first invoke, not at import

    return build_processor()


handler = ProcessorHandler(_build)
