"""The write-behind compaction as an object of its own (service/compaction.py).

A write-behind processor whose compaction never comes due by the clock logs a few batches;
the compaction is then run by hand over its shard's snapshot: what it writes to the
tables, the snapshot it answers, and that the snapshot it was handed is left as it was.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from iotpm.service.alarms import AlarmRecorder
from iotpm.service.batch import ProcessorSettings
from iotpm.service.compaction import Compaction, slice_of
from iotpm.service.errors import StoreError
from iotpm.service.in_memory import MemoryPipeline
from iotpm.service.ports import Failures, ReadingRow, Snapshot
from iotpm.service.samples import batch
from iotpm.service.storage import Tables

T0 = 1_790_000_000_000
SHARD = "shardId-000000000000"
NEVER_DUE = ProcessorSettings(compact_interval_s=10**9)  # a slice every 10^8 s: none comes due in these tests


class FailingFor:
    """A readings store whose writes fail for ``devices``."""

    def __init__(self, inner: Any, devices: set[str]) -> None:
        self.inner, self.devices = inner, devices

    def put_many(self, rows: Sequence[ReadingRow]) -> Failures:
        self.inner.put_many([r for r in rows if r.device_id not in self.devices])
        return {
            r.device_id: StoreError("throttled", code="ThrottlingException")
            for r in rows
            if r.device_id in self.devices
        }


def logged(pipe: MemoryPipeline, devices: int = 6, batches: int = 3, first: int = 0, start_ms: int = T0) -> int:
    """``batches`` batches of 20 readings per device logged (none compacted); the processing time after them."""
    proc = pipe.processor(settings=NEVER_DUE)
    now = T0
    for k in range(first, first + batches):
        now = T0 + (k + 1) * 20_000
        out = proc(batch(devices, 20, start_ms=start_ms, first_seq=k * 20, seed=k, shard=SHARD), now_ms=now)
        assert out.failed_sequence_numbers == [] and out.counts.stored == devices * 20
    return now


def compaction(pipe: MemoryPipeline, readings: Any = None) -> Compaction:
    assert pipe.log is not None
    alarms = AlarmRecorder(pipe.anomalies, pipe.alerts, 365)  # not used by a compaction
    tables = Tables(pipe.states, readings or pipe.readings, pipe.rollups, None, alarms, ProcessorSettings())
    return Compaction(tables, pipe.log)


def test_a_whole_compaction_writes_every_logged_reading_and_leaves_the_snapshot_it_was_handed(
    memory_pipeline: Callable[..., MemoryPipeline],
) -> None:
    pipe = memory_pipeline(behind=True)
    now = logged(pipe)
    assert pipe.snapshots is not None and not pipe.readings.items  # all of it in the log
    snap = pipe.snapshots.get(SHARD)
    handed = copy.deepcopy(snap)
    after = compaction(pipe)(SHARD, snap, now + 1)
    assert snap == handed and after is not snap
    assert len(pipe.readings.items) == 6 * 60 and len(pipe.rollups.items) > 0
    assert {r.flushed[SHARD] for r in after.records.values()} == {snap.last_key}
    assert (after.compacted_key, after.compacted_ms, after.last_key) == (snap.last_key, now + 1, snap.last_key)
    assert {d: r.readings for d, r in pipe.states.items.items()} == dict.fromkeys(after.records, 60)


def test_nothing_logged_since_or_nothing_logged_at_all_answers_the_snapshot_itself(
    memory_pipeline: Callable[..., MemoryPipeline],
) -> None:
    pipe = memory_pipeline(behind=True)
    empty = Snapshot()
    assert compaction(pipe)(SHARD, empty, T0) is empty
    now = logged(pipe)
    assert pipe.snapshots is not None
    run = compaction(pipe)
    done = run(SHARD, pipe.snapshots.get(SHARD), now)
    assert run(SHARD, done, now + 1) is done


def test_a_slice_compacts_its_own_devices_only(memory_pipeline: Callable[..., MemoryPipeline]) -> None:
    pipe = memory_pipeline(behind=True)
    now = logged(pipe, devices=12)
    assert pipe.snapshots is not None
    snap = pipe.snapshots.get(SHARD)
    turn = slice_of(sorted(snap.records)[0], 10)
    mine = {d for d in snap.records if slice_of(d, 10) == turn}
    after = compaction(pipe)(SHARD, snap, now, frozenset({turn}))
    assert {d for d, _ in pipe.readings.items} == mine
    for d, record in after.records.items():
        assert record.flushed == ({SHARD: snap.last_key} if d in mine else snap.records[d].flushed)
    # the tables hold every device's readings up to the oldest cursor: the uncompacted devices'
    assert after.compacted_key == min(r.flushed[SHARD] for r in snap.records.values())


def test_a_device_silent_since_its_last_compaction_leaves_the_snapshot(
    memory_pipeline: Callable[..., MemoryPipeline],
) -> None:
    pipe = memory_pipeline(behind=True)
    logged(pipe, devices=6)
    assert pipe.snapshots is not None
    run = compaction(pipe)
    pipe.snapshots.put(SHARD, run(SHARD, pipe.snapshots.get(SHARD), T0 + 100_000))
    # dev-0000..2 report again (numbered after the first records: a later prefix), dev-0003..5 are silent
    now = logged(pipe, devices=3, batches=1, first=3, start_ms=T0 + 1)
    after = run(SHARD, pipe.snapshots.get(SHARD), now)
    assert sorted(after.records) == ["dev-0000", "dev-0001", "dev-0002"]
    assert all(SHARD not in pipe.states.items[d].flushed for d in ("dev-0003", "dev-0004", "dev-0005"))


def test_a_device_whose_writes_fail_keeps_its_cursor_in_a_slice_and_fails_a_whole_compaction(
    memory_pipeline: Callable[..., MemoryPipeline],
) -> None:
    pipe = memory_pipeline(behind=True)
    now = logged(pipe, devices=4)
    assert pipe.snapshots is not None
    snap = pipe.snapshots.get(SHARD)
    failing = compaction(pipe, FailingFor(pipe.readings, {"dev-0001"}))
    with pytest.raises(StoreError):
        failing(SHARD, snap, now)
    every = frozenset(range(10))
    after = failing(SHARD, snap, now, every)
    assert after.records["dev-0001"].flushed == snap.records["dev-0001"].flushed  # written again on its next turn
    assert all(after.records[d].flushed[SHARD] == snap.last_key for d in ("dev-0000", "dev-0002", "dev-0003"))
    assert after.compacted_key == snap.records["dev-0001"].flushed[SHARD]
