"""The compaction Lambda: an EventBridge Scheduler invocation in, a compaction's report out.

Two jobs, one function, each on its own schedule:

- the archive's closed hours as Parquet (the default). The Scheduler's input may override
  the settings for one run (``{"max_hours": 6}``); the result says which hours were
  compacted and where the mark stands;
- ``{"job": "idle_shards"}``: write-behind's batch log compacted for the shards no batch
  compacts (:class:`~iotpm.service.compaction.IdleShards`: a plant stopped, its shard
  receives nothing), so the log's items may expire a week after they were written while
  the readings keep theirs. The result names the shards claimed, compacted and left.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pydantic import Field

from iotpm.analytics.compaction import CompactionSettings, Compactor
from iotpm.composition import TableSettings

if TYPE_CHECKING:
    from iotpm.service.compaction import IdleShards

#: the job's lease on a claimed shard outlives its run: a minute past the function's time left
LEASE_MARGIN_MS = 60_000


class IdleShardsSettings(TableSettings):
    """The idle-shard job's tables and knobs (Terraform sets them; the processor's own where shared)."""

    state_bucket: str
    readings_ttl_days: int = 90
    compact_interval_s: int = 600
    #: a shard is the job's once no batch compacted it for this long
    idle_after_s: int = Field(default=3600, ge=60)
    #: between its claim and its compaction: longer than a processor batch may run (its timeout);
    #: at most 630 s (a 600 s processor timeout + 30 s), so the compaction keeps 270 s of the
    #: function's 900 s (Terraform refuses a longer processor timeout with write_behind)
    idle_wait_s: int = Field(default=150, ge=0, le=630)
    #: the lease when the function's time left is unknown (a local run)
    idle_lease_s: int = Field(default=900, ge=60)


class CompactionHandler:
    """Callable Lambda handler over lazily built jobs (clients are made on first use)."""

    def __init__(
        self,
        factory: Callable[[], Compactor],
        now_ms: Callable[[], int] | None = None,
        idle_factory: Callable[[], tuple[IdleShards, int]] | None = None,
    ) -> None:
        self._factory = factory
        self._now_ms = now_ms or (lambda: int(time.time() * 1000))
        self._job: Compactor | None = None
        self._idle_factory = idle_factory or _build_idle
        self._idle: tuple[IdleShards, int] | None = None

    def __call__(self, event: Mapping[str, Any] | None, context: Any = None) -> dict[str, object]:
        given = event or {}
        if given.get("job") == "idle_shards":
            return self.idle_shards(context)
        if self._job is None:
            self._job = self._factory()
        job = self._job
        s = job.settings
        knobs = replace(
            s,
            grace_s=int(given.get("grace_s", s.grace_s)),
            window_h=int(given.get("window_h", s.window_h)),
            max_hours=int(given.get("max_hours", s.max_hours)),
        )
        if knobs != s:
            job = Compactor(job.files, knobs)
        return job(self._now_ms()).as_dict()

    def idle_shards(self, context: Any = None) -> dict[str, object]:
        """The idle shards compacted; the lease lasts past the function's end (its time left)."""
        if self._idle is None:
            self._idle = self._idle_factory()
        job, lease_ms = self._idle
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if callable(remaining):
            lease_ms = int(remaining()) + LEASE_MARGIN_MS
        report = job(lease_ms)
        if report.failed:  # every other shard was done; fail so the function's Errors alarm fires
            raise IdleShardsError(report.failed)
        return {"job": "idle_shards", **report.as_dict()}


class IdleShardsError(RuntimeError):
    """Some shards' idle compaction failed (the others were compacted): their logged readings
    expire from the readings table a week after they were written unless a later run or a
    batch compacts them, so the run fails loudly (the compaction-errors alarm)."""

    def __init__(self, failed: Mapping[str, str]) -> None:
        super().__init__(f"idle-shard compaction failed for {len(failed)} shard(s): {dict(failed)}")
        self.failed = dict(failed)


def _build() -> Compactor:
    from iotpm.composition import build_compactor  # boto3 loads on first invoke, not at import

    return build_compactor()


def build_idle_shards(
    settings: IdleShardsSettings | None = None, aws: dict[str, Any] | None = None
) -> tuple[IdleShards, int]:
    """The idle-shard job over the processor's tables, log and snapshots, and its default lease (ms)."""
    from iotpm.adapters.dynamodb import DynamoAnomalies, DynamoLog, DynamoReadings, DynamoRollups, DynamoStates
    from iotpm.adapters.s3 import S3Snapshots
    from iotpm.composition import clients
    from iotpm.service.alarms import AlarmRecorder
    from iotpm.service.batch import ProcessorSettings
    from iotpm.service.compaction import Compaction, IdleShards
    from iotpm.service.storage import Tables

    s = settings or IdleShardsSettings()  # from the environment
    c = aws or clients(s, ("dynamodb", "s3"))
    ddb = c["dynamodb"]
    knobs = ProcessorSettings(environment=s.environment, readings_ttl_days=s.readings_ttl_days,
                              compact_interval_s=s.compact_interval_s)  # fmt: skip
    # a compaction writes readings, rollups and records only: the alarm recorder is never called
    alarms = AlarmRecorder(DynamoAnomalies(ddb, s.anomalies_table), _NoAlerts(), knobs.anomalies_ttl_days)
    tables = Tables(DynamoStates(ddb, s.devices_table), DynamoReadings(ddb, s.readings_table),
                    DynamoRollups(ddb, s.rollups_table), None, alarms, knobs)  # fmt: skip
    log = DynamoLog(ddb, s.readings_table)
    snapshots = S3Snapshots(c["s3"], s.state_bucket)
    job = IdleShards(Compaction(tables, log), snapshots, snapshots.shards,
                     idle_ms=s.idle_after_s * 1000, wait_ms=s.idle_wait_s * 1000)  # fmt: skip
    return job, s.idle_lease_s * 1000


def _build_idle() -> tuple[IdleShards, int]:
    return build_idle_shards()


class _NoAlerts:
    """Alerts a compaction never sends."""

    def publish(self, alert: Any) -> None:
        raise RuntimeError("the idle-shard compaction sends no alerts")


handler = CompactionHandler(_build)


__all__ = [
    "CompactionHandler",
    "CompactionSettings",
    "IdleShardsError",
    "IdleShardsSettings",
    "build_idle_shards",
    "handler",
]
