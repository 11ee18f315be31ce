"""The stream processor: Kinesis records in, stored readings, anomalies, rollups, alerts out.

A batch's path, step by step (each step in its own module, none changing what it was handed):

1. the raw records go to the archive while the batch is decoded and scored (nothing is
   written before the archive has them: :mod:`~iotpm.service.archive_objects`);
2. **decode** (:mod:`~iotpm.service.decode`): records into each device's readings, and
   what was refused with why;
3. the devices' records, from the storage strategy (:mod:`~iotpm.service.storage`);
4. **detect** (:mod:`~iotpm.service.detect`): what is fresh for each device, scored by the
   fleet detector, and each device's record after the batch;
5. what was refused goes to the quarantine;
6. **the write plan**, by the storage strategy: write-through
   (:mod:`~iotpm.service.write_through`) or write-behind (:mod:`~iotpm.service.write_behind`,
   with its :mod:`~iotpm.service.compaction`);
7. the outcome: a device whose writes failed is reported back (its first record's sequence
   number) so Lambda retries from there; one the store refuses for good is quarantined.

Delivery is at least once, so every write is idempotent: readings chunks and anomalies by
key, rollups by the batch's first reading ordinal (a retry replaces its own contribution),
device state by an optimistic version check, alerts by the anomaly row's ``notified`` flag.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import msgspec

from iotpm.detection import DetectorConfig, FleetDetector
from iotpm.models import Rejection, RejectReason
from iotpm.service.alarms import AlarmRecorder
from iotpm.service.archive_objects import encode_lines, quarantine_object, raw_object
from iotpm.service.batch import BatchOutcome, Counts, ProcessorSettings, RawRecord, Rejected, Work, merged
from iotpm.service.decode import BatchDecoder, Registered
from iotpm.service.detect import BatchDetector
from iotpm.service.errors import StoreError
from iotpm.service.ports import (
    Alerts,
    AnomalyStore,
    Archive,
    BatchLog,
    Failures,
    ReadingStore,
    RollupStore,
    SnapshotStore,
    StateStore,
    TimeSeries,
)
from iotpm.service.storage import Storage, Tables
from iotpm.service.write_behind import WriteBehind
from iotpm.service.write_through import WriteThrough

if TYPE_CHECKING:
    from iotpm.operator.ports import Registration
    from iotpm.service.config_cache import OperatorCache

#: a gateway's registered device_type (iotpm.operator.service.GATEWAY_TYPE; not imported here: an import cycle)
GATEWAY_TYPE = "gateway"

__all__ = ["BatchOutcome", "Counts", "Processor", "ProcessorSettings", "RawRecord", "encode_lines"]


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
        """Write-through unless given a ``batch_log`` and ``snapshots`` (write-behind);
        ``operator``: registry identity, limits, shelve and re-baseline (see service/config_cache.py)."""
        self.states, self.readings, self.anomalies, self.rollups = states, readings, anomalies, rollups
        self.archive, self.alerts, self.timeseries = archive, alerts, timeseries
        self.log, self.snapshots, self.operator = batch_log, snapshots, operator
        self.settings = settings or ProcessorSettings()
        self._detect = BatchDetector(detector, self.settings, operator)
        self._wired: tuple[tuple[object, ...], BatchDecoder, Storage] | None = None
        # the raw batch goes to the archive while the batch is decoded and scored
        self._archiver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="iotpm-archive")

    @property
    def fleet(self) -> FleetDetector:
        """The fleet detector on the limits in effect."""
        return self._detect.fleet

    @property
    def storage(self) -> Storage:
        """The storage strategy over the ports as they are now."""
        return self._wire()[1]

    def _wire(self) -> tuple[BatchDecoder, Storage]:
        """The decoder and the storage strategy, built again when a port or the settings were
        replaced since (a test swaps a store, a benchmark the archive, after construction)."""
        ports = (self.settings, self.states, self.readings, self.rollups, self.anomalies, self.alerts,
                 self.timeseries, self.log, self.snapshots)  # fmt: skip
        if self._wired is None or any(a is not b for a, b in zip(ports, self._wired[0], strict=True)):
            self._detect.settings = self.settings
            decoder = BatchDecoder(self.settings.limits, self._gateways if self.operator is not None else None)
            self._wired = (ports, decoder, self._storage(self.settings))
        return self._wired[1], self._wired[2]

    def _gateways(self, own: Sequence[str], named: Mapping[str, Sequence[str]]) -> Registered:
        """The gateway each device is registered under, from the operator's registry, judged by the
        publisher first: only the devices a registered gateway names are looked up (a thing that is not
        one cannot make the processor read, or cache, the ids it invents). A retryable
        :class:`StoreError` when the registry cannot be read for a device a gateway published for, or
        for a thing that published other devices' readings and was never read (it may be a gateway:
        its devices' readings are retried, not quarantined); a device's own readings go on otherwise."""
        assert self.operator is not None
        controls = self.operator.devices(sorted({*own, *named}))
        unknown = [t for t in named if not controls[t].read]
        if unknown:
            raise StoreError(f"device registry unreadable for {len(unknown)} things that published other devices")
        gateways = frozenset(t for t in named if _is_gateway(controls[t].registration))
        sent = sorted({d for t in gateways for d in named[t]} - controls.keys())
        if sent:
            controls.update(self.operator.devices(sent))
            unread = [d for d in sent if not controls[d].read]
            if unread:
                raise StoreError(f"device registry unreadable for {len(unread)} devices a gateway published for")
        gateway_of = {d: c.registration.gateway if c.registration is not None else None for d, c in controls.items()}
        return Registered(gateway_of, gateways)

    def _storage(self, settings: ProcessorSettings) -> Storage:
        alarms = AlarmRecorder(self.anomalies, self.alerts, settings.anomalies_ttl_days, self.operator)
        tables = Tables(self.states, self.readings, self.rollups, self.timeseries, alarms, settings)
        if self.log is not None and self.snapshots is not None:
            return WriteBehind(tables, log=self.log, snapshots=self.snapshots)
        return WriteThrough(tables)

    def __call__(self, records: Sequence[RawRecord], now_ms: int | None = None) -> BatchOutcome:
        """Process a batch; raises :class:`StoreError` only when nothing could be stored."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        shards = sorted({r.shard_id for r in records})
        decoder, storage = self._wire()
        if storage.per_shard and len(shards) > 1:  # never from Kinesis (a batch is one shard's)
            return merged([self(tuple(r for r in records if r.shard_id == s), now) for s in shards])
        counts = Counts(records=len(records))
        if not records:
            return BatchOutcome(counts, [])
        counts.max_age_ms = max(0, now - min([r.arrival_ms for r in records]))
        archived = self._archiver.submit(self.archive.put, raw_object(self.settings.archive_prefix, records))
        try:
            batch = storage.open(shards[0])
            decoded = decoder(records, counts)
            stored = batch.records(sorted(decoded.devices)) if decoded.devices else {}
            detected = self._detect(decoded.devices, records, stored, counts, now, decoded.readings)
        finally:
            archived.result()  # a failed archive write fails the batch here, before its own writes
        rejected = decoded.rejected + detected.rejected
        if rejected:
            self.archive.put(quarantine_object(self.settings.quarantine_prefix, records, rejected, counts))
        failures = batch.write(detected.work, now, counts)
        return self._outcome(records, detected.work, failures, counts)

    def _outcome(
        self, records: Sequence[RawRecord], work: Sequence[Work], failures: Failures, counts: Counts
    ) -> BatchOutcome:
        """The records Lambda retries (from the first failed device's first record on), and what
        the store refused for good quarantined with its reason."""
        first_failed: int | None = None
        poisoned: list[Rejected] = []
        for w in work:
            exc = failures.get(w.device_id)
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
            prefix = f"{self.settings.quarantine_prefix}-store"
            self.archive.put(quarantine_object(prefix, records, poisoned, counts))
        failed = [] if first_failed is None else [records[first_failed].sequence_number]
        errors = [f"{device}: {exc}" for device, exc in sorted(failures.items())]
        return BatchOutcome(counts, failed, errors)


def _is_gateway(registration: Registration | None) -> bool:
    """Whether a thing is registered as a gateway (it may publish the readings of the devices under it)."""
    return registration is not None and registration.device_type == GATEWAY_TYPE
