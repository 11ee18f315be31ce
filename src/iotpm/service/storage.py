"""The storage port: where a batch's devices' records come from, and where its write plan goes.

Two strategies implement it, each in its own module: :class:`~iotpm.service.write_through.WriteThrough`
(every batch writes the readings chunks, the rollups and the device records) and
:class:`~iotpm.service.write_behind.WriteBehind` (every batch writes one log entry and its
shard's snapshot; a :class:`~iotpm.service.compaction.Compaction` moves the logged readings
into the tables in slices). Both record and alert the alarm events before their commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from iotpm.service.alarms import AlarmRecorder
from iotpm.service.batch import Counts, ProcessorSettings, Work
from iotpm.service.ports import DeviceRecord, Failures, ReadingStore, RollupStore, StateStore, TimeSeries


@dataclass(frozen=True, slots=True)
class Tables:
    """What every strategy writes a batch's plan to: the tables, the time-series copy (if any), the
    alarm recorder, and the settings (TTLs, compaction)."""

    states: StateStore
    readings: ReadingStore
    rollups: RollupStore
    timeseries: TimeSeries | None
    alarms: AlarmRecorder
    settings: ProcessorSettings


class ShardBatch(Protocol):
    """One batch of one shard, from the records it starts from to its commit."""

    def records(self, device_ids: Sequence[str]) -> dict[str, DeviceRecord]:
        """The devices' records as the batch starts from them (the processor does not change them)."""
        ...

    def write(self, work: Sequence[Work], now: int, counts: Counts) -> Failures:
        """The batch's readings, events, rollups and records written; the devices whose writes failed.

        A device in the answer has nothing of this batch committed: Lambda retries it.
        """
        ...


class Storage(Protocol):
    """A storage strategy: opens a shard's batch."""

    #: whether a batch must hold one shard's records (a batch of several is processed shard by shard)
    per_shard: bool

    def open(self, shard: str) -> ShardBatch:
        """The batch of ``shard`` about to be processed (read before its records are decoded)."""
        ...
