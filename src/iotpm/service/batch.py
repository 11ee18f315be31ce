"""What a batch is made of on its way through the processor: its records, its tallies, its work.

The processor's steps (:mod:`~iotpm.service.decode`, :mod:`~iotpm.service.detect`, a
:class:`~iotpm.service.storage.Storage`) pass these between them; none changes what it
was handed, except the batch's :class:`Counts`, which every step adds to.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from iotpm.detection import DetectionResult, DeviceInput
from iotpm.models import ReadingFields, Rejection, ValidationLimits
from iotpm.service.ports import DeviceRecord

DAY_S: Final = 86_400

#: a refused message or record: its record's index in the batch, why, and what is quarantined
#: (the message as itself; None: the record's text)
Rejected = tuple[int, Rejection, Any]


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
class DeviceReadings:
    """One device's readings in a batch, in arrival order, and the first record it has one in.

    Only the first record matters on failure: Lambda retries a shard from the first
    record reported, and every record after it comes again.
    """

    device_id: str
    first_record: int
    readings: list[ReadingFields] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)  # each reading's record index in the batch
    #: each reading's place among the batch's decoded readings (see ``Decoded.readings``)
    positions: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Work:
    """One device's fresh readings, the detector's input made of them, its verdict, and its record
    as read (``record``) and as it stands after the batch (``after``)."""

    device: DeviceReadings
    record: DeviceRecord
    after: DeviceRecord
    fresh: list[ReadingFields]  # in time order (late ones, older than the device's last, included)
    input: DeviceInput  # ts, and values (n, c) in channel order with NaN where a reading lacks a metric
    result: DetectionResult
    indices: list[int] = field(default_factory=list)  # each fresh reading's record index in the batch

    @property
    def device_id(self) -> str:
        """The device this work is for."""
        return self.device.device_id


def merged(outcomes: Sequence[BatchOutcome]) -> BatchOutcome:
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
