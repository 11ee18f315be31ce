"""Write-behind answers what write-through answers: the API's view is the same at every point.

The same stream (:mod:`iotpm.testing.stream`: a fleet that reads every few seconds, a
fault that raises an alarm, a device that restarts, a gateway's late readings, replays of
whole batches) goes through a write-through processor and a write-behind one (batch log
plus shard snapshots). After every batch, every device's record, readings and minute and
hour buckets read the same through the API's queries, before and after each compaction; a
retried batch, a lost container (the snapshot re-read) and a failing compaction change
nothing.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotpm.api.memory import MemoryQueries
from iotpm.api.ports import Queries
from iotpm.operator.memory import MemoryDocuments, MemoryRegistry
from iotpm.operator.ports import Registration
from iotpm.service import Processor, RawRecord, StoreError
from iotpm.service.compaction import due_slices as _due_slices
from iotpm.service.compaction import slice_of as _slice
from iotpm.service.config_cache import OperatorCache
from iotpm.service.in_memory import MemoryPipeline
from iotpm.service.memory import MemoryLog, MemorySnapshots
from iotpm.service.ports import Failures, ReadingRow, RollupDelta
from iotpm.service.processor import ProcessorSettings
from iotpm.service.samples import reading
from iotpm.testing.stream import DEVICES, T0, assert_same, stream, view


class Flaky:
    """Wraps a store: while ``failing`` is set, its writes fail (a throttled table)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.failing = inner, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put_many(self, rows: Sequence[ReadingRow]) -> Failures:
        if self.failing:
            return {r.device_id: StoreError("throttled", code="ThrottlingException") for r in rows}
        failures: Failures = self.inner.put_many(rows)
        return failures

    def apply(self, deltas: Sequence[RollupDelta]) -> Failures:
        if self.failing:
            return {d.device_id: StoreError("throttled", code="ThrottlingException") for d in deltas}
        failures: Failures = self.inner.apply(deltas)
        return failures


class Side:
    """One processor with its in-memory stores and the API's queries over them."""

    def __init__(self, behind: bool, interval_s: int = 60) -> None:
        self.stores = MemoryPipeline.build(behind=behind)  # what the conftest's memory_pipeline fixture gives
        self.states, self.anomalies, self.alerts = self.stores.states, self.stores.anomalies, self.stores.alerts
        self.readings, self.rollups = Flaky(self.stores.readings), Flaky(self.stores.rollups)
        self.log, self.snapshots = self.stores.log or MemoryLog(), self.stores.snapshots or MemorySnapshots()
        self.behind, self.interval_s = behind, interval_s
        self.proc = self.build()
        self.queries: Queries = MemoryQueries(
            self.states, self.readings.inner, self.anomalies, self.rollups.inner, self.log
        )

    def build(self) -> Processor:
        """A processor as a fresh container builds it (nothing held from before)."""
        return self.stores.processor(
            readings=self.readings,
            rollups=self.rollups,
            settings=ProcessorSettings(compact_interval_s=self.interval_s),
            batch_log=self.log if self.behind else None,
            snapshots=self.snapshots if self.behind else None,
        )


def test_write_behind_shows_what_write_through_shows_after_every_batch() -> None:
    through, behind = Side(False), Side(True)
    raised = 0
    for records, now in stream(seed=3, minutes=20):
        out_t, out_b = through.proc(records, now), behind.proc(records, now)
        assert out_t.counts == out_b.counts
        assert not out_b.failed_sequence_numbers
        raised += out_b.counts.anomalies_raised
        assert_same(view(through.queries), view(behind.queries))
    assert raised >= 1, "the stream should raise the overheating device's alarm"
    assert len(behind.alerts.sent) == len(through.alerts.sent)
    # compactions happened (the tables hold readings) and the log holds only what came after the last
    assert behind.readings.inner.items and behind.rollups.inner.items
    snap = behind.snapshots.get("shardId-000000000000")
    assert snap.compacted_key is not None and snap.last_key is not None


def test_write_behind_writes_fewer_items_than_devices_times_batches() -> None:
    through, behind = Side(False), Side(True, interval_s=300)
    batches = stream(seed=4, minutes=30)
    for records, now in batches:
        through.proc(records, now)
        behind.proc(records, now)
    entries = sum(len(v) for v in behind.log.shards.values())
    assert entries <= len(batches)  # one entry a batch at most
    # per device: a chunk per compaction and hour, not per batch
    assert len(behind.readings.inner.chunks) < len(through.readings.inner.chunks) / 5


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), cold=st.lists(st.integers(0, 400), max_size=6),
       flaky=st.lists(st.integers(0, 400), max_size=6))  # fmt: skip
def test_lost_containers_and_failing_compactions_change_nothing(seed: int, cold: list[int], flaky: list[int]) -> None:
    """A fresh container (nothing held) at any batch, and compactions whose writes fail, read the same."""
    through, behind = Side(False), Side(True, interval_s=45)
    for i, (records, now) in enumerate(stream(seed, minutes=8)):
        if i in cold:
            behind.proc = behind.build()
        behind.readings.failing = behind.rollups.failing = i in flaky
        through.proc(records, now)
        out = behind.proc(records, now)
        assert not out.failed_sequence_numbers  # a failing compaction never fails the batch
    behind.readings.failing = behind.rollups.failing = False
    assert_same(view(through.queries), view(behind.queries))


def test_a_batch_whose_log_write_fails_is_retried_whole_and_lands_once() -> None:
    through, behind = Side(False), Side(True)

    class FailingLog(MemoryLog):
        fail = True

        def append(self, shard: str, entry: Any) -> None:
            if self.fail:
                self.fail = False
                raise StoreError("throttled", code="ThrottlingException")
            super().append(shard, entry)

    behind.log = FailingLog()
    behind.proc = behind.build()
    behind.queries = MemoryQueries(behind.states, behind.readings.inner, behind.anomalies, behind.rollups.inner,
                                   behind.log)  # fmt: skip
    batches = stream(seed=5, minutes=3)
    for records, now in batches[:40]:
        through.proc(records, now)
        out = behind.proc(records, now)
        if out.failed_sequence_numbers:  # Lambda retries from the first failed record
            first = next(i for i, r in enumerate(records) if r.sequence_number == out.failed_sequence_numbers[0])
            assert not behind.proc(records[first:], now).failed_sequence_numbers
    assert_same(view(through.queries), view(behind.queries))


def test_a_snapshot_written_by_another_container_fails_the_batch_it_raced() -> None:
    behind = Side(True)
    batches = stream(seed=6, minutes=1)
    behind.proc(*batches[0])
    other = behind.build()
    snap = behind.snapshots.get("shardId-000000000000")
    behind.snapshots.put("shardId-000000000000", snap)  # another writer moved it on
    stale = behind.snapshots

    class Stale(MemorySnapshots):
        def get(self, shard: str) -> Any:
            got = stale.get(shard)
            got.tag = "stale"
            return got

        def put(self, shard: str, snapshot: Any) -> None:
            stale.put(shard, snapshot)

    other.snapshots = Stale()
    out = other(*batches[1])
    assert out.failed_sequence_numbers == [batches[1][0][0].sequence_number]


@pytest.mark.parametrize("seed", [7])
def test_a_device_that_goes_silent_is_compacted_with_the_rest(seed: int) -> None:
    through, behind = Side(False), Side(True, interval_s=30)
    batches = stream(seed, minutes=3)
    for records, now in batches:
        through.proc(records, now)
        behind.proc(records, now)
    # only dev-00 reports from now on: the others' held readings are compacted all the same
    later = [(r, now) for r, now in stream(seed + 1, minutes=6)[len(batches) :]]
    for records, now in later:
        only = [r for r in records if r.partition_key == "dev-00"]
        if only:
            through.proc(only, now)
            behind.proc(only, now)
    snap = behind.snapshots.get("shardId-000000000000")
    assert snap.compacted_key == snap.last_key or snap.compacted_ms >= later[-1][1] - 60_000
    for device in DEVICES[1:]:
        chunks = [k for k in behind.readings.inner.chunks if k[0] == device]
        assert chunks, f"{device}'s readings should be in the readings table"
    assert_same(view(through.queries), view(behind.queries))


def test_a_reshard_moves_devices_to_child_shards_and_every_view_stays_the_same() -> None:
    """Half way, the stream splits its shard in two: each device's readings come on a child shard
    (Kinesis hands over a child only after its parent's records), and its first batch there has
    the parent compacted first. The views match write-through after every batch, and a record
    names only the shard it is on, so a read queries one log."""
    through, behind = Side(False), Side(True)
    batches = stream(seed=5, minutes=12)
    split = len(batches) // 2
    child = {d: f"shardId-00000000000{1 + i % 2}" for i, d in enumerate(DEVICES)}
    for i, (records, now) in enumerate(batches):
        if i >= split:
            for shard in sorted(set(child.values())):
                part = [msgspec.structs.replace(r, shard_id=shard) for r in records if child[r.partition_key] == shard]
                if part:
                    assert not through.proc(part, now).failed_sequence_numbers
                    assert not behind.proc(part, now).failed_sequence_numbers
        else:
            through.proc(records, now)
            behind.proc(records, now)
        assert_same(view(through.queries), view(behind.queries))
    for device in DEVICES:
        record = behind.queries.device(device)
        assert record is not None and set(record.flushed) <= {child[device]}, (device, record.flushed)


@settings(max_examples=200, deadline=None)
@given(
    interval_s=st.integers(10, 3600),
    count=st.integers(1, 16),
    gaps_ms=st.lists(st.integers(1, 30_000), min_size=1, max_size=400),
)
def test_each_slice_is_compacted_once_an_interval_whatever_the_batches(
    interval_s: int, count: int, gaps_ms: list[int]
) -> None:
    """Batches come when they come (a quiet shard waits; a busy one every few hundred ms):
    every slice has its turn within an interval plus the longest wait between batches, and
    no slice more than once a turn."""
    interval = interval_s * 1000
    last = now = 1_790_000_000_000
    seen: dict[int, list[int]] = {k: [now] for k in range(count)}  # the first batch: none due yet
    for gap in gaps_ms:
        now += gap
        due = _due_slices(last, now, interval, count)
        assert due <= set(range(count))
        for k in due:
            seen[k].append(now)
        if due:
            last = now
    step = interval // count
    longest = max(gaps_ms)
    for k, times in seen.items():
        times.append(now)
        waits = [b - a for a, b in itertools.pairwise(times)]
        assert max(waits[:-1] or [0]) <= interval + step + longest, (k, waits)
        assert waits[-1] <= interval + step + longest
        gaps_between = [b - a for a, b in itertools.pairwise(times[1:-1])]
        assert all(g > interval - longest - step for g in gaps_between), (k, gaps_between)


def test_a_devices_slice_is_stable_and_the_slices_even() -> None:
    ids = [f"pump-{i:04d}" for i in range(2000)]
    assert [_slice(d, 10) for d in ids] == [_slice(d, 10) for d in ids]
    sizes = [sum(_slice(d, 10) == k for d in ids) for k in range(10)]
    assert min(sizes) > 150 and max(sizes) < 250, sizes


def test_processors_taking_turns_on_a_shard_show_what_write_through_shows() -> None:
    """Lambda may run a shard's batches on one instance, then another, then the first
    again: each compacts from the log entries it wrote only while no other wrote between."""
    through, behind = Side(False, interval_s=10), Side(True, interval_s=10)
    instances = [behind.proc, behind.build(), behind.build()]
    rng = random.Random(3)
    for records, now in stream(seed=9, minutes=8):
        through.proc(records, now)
        proc = instances[0] if rng.random() < 0.6 else rng.choice(instances)
        assert not proc(records, now).failed_sequence_numbers
        if rng.random() < 0.3:  # delivered again, to any instance: nothing new to log, a compaction may be due
            assert not rng.choice(instances)(records, now + 900).failed_sequence_numbers
        assert_same(view(through.queries), view(behind.queries))


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 10_000), fails=st.sets(st.integers(0, 250), min_size=1, max_size=40),
       cold=st.booleans())  # fmt: skip
def test_a_commit_that_fails_after_its_slice_compacted_is_retried_and_changes_nothing(
    seed: int, fails: set[int], cold: bool
) -> None:
    """A due slice is compacted before the batch's snapshot write (the commit); when that
    write fails, the tables and device records already hold the slice, and Lambda retries
    the batch (on this container or a fresh one). Every view matches write-through."""
    through, behind = Side(False), Side(True, interval_s=10)

    class FailingSnapshots(MemorySnapshots):
        failing = False

        def put(self, shard: str, snapshot: Any) -> None:
            if self.failing:
                self.failing = False
                raise StoreError("slow down", code="SlowDown")
            super().put(shard, snapshot)

    snapshots = FailingSnapshots()
    behind.snapshots = snapshots
    behind.proc = behind.build()
    for i, (records, now) in enumerate(stream(seed, minutes=6)):
        through.proc(records, now)
        snapshots.failing = i in fails
        out = behind.proc(records, now)
        if out.failed_sequence_numbers:
            assert i in fails
            if cold:
                behind.proc = behind.build()
            first = next(k for k, r in enumerate(records) if r.sequence_number == out.failed_sequence_numbers[0])
            assert not behind.proc(records[first:], now + 300).failed_sequence_numbers
        assert_same(view(through.queries), view(behind.queries))


class OneDeviceFails(Flaky):
    """A store whose writes fail for one device only, for good (an item it cannot take)."""

    def __init__(self, inner: Any, device: str) -> None:
        super().__init__(inner)
        self.device = device

    def put_many(self, rows: Sequence[ReadingRow]) -> Failures:
        if self.failing:
            error = StoreError("refused", retryable=False, code="ValidationException")
            ok = [r for r in rows if r.device_id != self.device]
            failures: Failures = self.inner.put_many(ok)
            return {**failures, **({self.device: error} if len(ok) < len(rows) else {})}
        return super().put_many(rows)


def test_a_device_whose_compaction_fails_keeps_its_cursor_and_the_others_are_compacted() -> None:
    through, behind = Side(False), Side(True, interval_s=30)
    behind.readings = OneDeviceFails(behind.readings.inner, "dev-02")
    behind.proc = behind.build()
    behind.readings.failing = True
    batches = stream(seed=8, minutes=4)
    for records, now in batches[: len(batches) // 2]:
        through.proc(records, now)
        assert not behind.proc(records, now).failed_sequence_numbers
        assert_same(view(through.queries), view(behind.queries))  # the log still shows dev-02's readings
    snap = behind.snapshots.get("shardId-000000000000")
    assert snap.records["dev-02"].flushed.get("shardId-000000000000", "") < min(
        r.flushed["shardId-000000000000"] for d, r in snap.records.items() if d != "dev-02"
    )  # the others' cursors moved past dev-02's
    assert {r.device_id for r in behind.readings.inner.items.values()} == set(DEVICES) - {"dev-02"}
    behind.readings.failing = False
    for records, now in batches[len(batches) // 2 :]:
        through.proc(records, now)
        behind.proc(records, now)
    assert_same(view(through.queries), view(behind.queries))
    assert "dev-02" in {r.device_id for r in behind.readings.inner.items.values()}


class Moves:
    """Both sides fed the same gateways' batches: dev-01 publishes through gw-1 (shard A), dev-02
    through gw-2 (shard B), dev-00 through whichever gateway the registry names. One processor per
    shard (a container each), each reading the registry through its own cache (entries up to 30 s
    old, on the stream's clock): just after a move the old shard may still take dev-00's late
    readings through the old gateway while the new shard takes its new ones."""

    SHARDS: tuple[str, str] = ("shardId-000000000000", "shardId-000000000001")

    def __init__(self, interval_s: int) -> None:
        self.registry, self.t_ms = MemoryRegistry(), 0
        for gw in ("gw-1", "gw-2"):
            self.registry.put(Registration(gw, "plant-1", "line-1", "gateway"), None)
        self.gateway_of = {"dev-00": "gw-1", "dev-01": "gw-1", "dev-02": "gw-2"}
        for device, gw in self.gateway_of.items():
            self.registry.put(Registration(device, "plant-1", "line-1", "pump", gateway=gw), None)
        self.sides = (Side(False, interval_s), Side(True, interval_s))
        # one cache per shard, shared by both sides' processors: both read the same answers
        caches = {
            s: OperatorCache(self.registry, MemoryDocuments(), clock=lambda: self.t_ms / 1000) for s in self.SHARDS
        }
        self.procs = [{s: side.stores.processor(
            readings=side.readings, rollups=side.rollups, operator=caches[s],
            settings=ProcessorSettings(compact_interval_s=interval_s),
            batch_log=side.log if side.behind else None, snapshots=side.snapshots if side.behind else None,
        ) for s in self.SHARDS} for side in self.sides]  # fmt: skip
        self.seq, self.pos, self.stored, self.late_stored = 0, 0, 0, 0

    def move(self, gw: str) -> None:
        self.gateway_of["dev-00"] = gw
        held = self.registry.get("dev-00")
        assert held is not None
        self.registry.put(dataclasses.replace(held, gateway=gw), held.version)

    def tick(self, t_ms: int, late: str | None = None) -> None:
        """One reading of each device, each gateway's message on its shard, both sides; ``late``:
        that gateway also forwards a reading of dev-00 it held (taken half a second earlier)."""
        self.t_ms = t_ms
        self.seq += 2
        for gw, shard in zip(("gw-1", "gw-2"), self.SHARDS, strict=True):
            values = [(d, self.seq, t_ms) for d, g in self.gateway_of.items() if g == gw]
            if late == gw:
                values.append(("dev-00", self.seq - 1, t_ms - 500))
            body = {"thing_name": gw, "readings": [
                reading(d, seq, T0 + ts, {"temperature_c": 55.0 + (seq * 7 + i) % 11 * 0.1})
                for i, (d, seq, ts) in enumerate(values)]}  # fmt: skip
            self.pos += 1
            record = RawRecord(f"{49_600_000_000 + self.pos * 7:056d}", gw, json.dumps(body).encode(),
                               T0 + t_ms + 200, shard)  # fmt: skip
            outs = [procs[shard]([record], T0 + t_ms + 500) for procs in self.procs]
            assert not outs[0].failed_sequence_numbers and not outs[1].failed_sequence_numbers
            assert outs[0].counts == outs[1].counts
            self.stored += outs[0].counts.stored
            self.late_stored += late == gw and outs[0].counts.stored == len(values)  # dev-00 on both shards


@settings(max_examples=30, deadline=None)
@given(
    interval_s=st.sampled_from([5, 60, 900]),
    phases=st.lists(
        st.tuples(st.integers(1, 4), st.sampled_from([1, 5, 40, 700, 3600]), st.booleans()), min_size=2, max_size=6
    ),
    compact_at=st.lists(st.tuples(st.integers(0, 24), st.integers(0, 1)), max_size=4),
)
def test_a_device_moving_between_gateways_on_two_shards_and_back_stores_what_write_through_stores(
    interval_s: int, phases: list[tuple[int, int, bool]], compact_at: list[tuple[int, int]]
) -> None:
    """dev-00 moves between gw-1 (shard A) and gw-2 (shard B) every phase (A->B->A->B...), ``gap``
    s after its last reading (quick or slow moves), ``n`` readings a phase, the old gateway
    forwarding one more of its readings just after the move when ``late`` (the old shard, its
    registry cache not yet expired, may take it: the device on both shards at once); a shard
    compacted whole at arbitrary ticks (``compact_at``), the batches' own compactions due by the
    clock between. After every tick the API shows on write-behind what it shows on write-through
    (readings, ordinals, buckets, record and its count), and once every shard is compacted the
    readings table holds the same readings, each once, ordinals 0..n-1 (a shard starting a device
    again from the record it left there re-uses its ordinals: chunks overwritten, the count
    rolled back)."""
    m = Moves(interval_s)
    through, behind = m.sides
    compact = {tick: shard for tick, shard in compact_at}
    t_ms, tick = 0, 0
    for k, (n, gap_s, late) in enumerate(phases):
        m.move(("gw-1", "gw-2")[k % 2])
        t_ms += gap_s * 1000
        for i in range(n):
            t_ms += 1000
            m.tick(t_ms, late=("gw-2", "gw-1")[k % 2] if late and i == 0 and k else None)
            if tick in compact:
                m.procs[1][m.SHARDS[0]].storage.compact_all(m.SHARDS[compact[tick]])  # type: ignore[attr-defined]
            tick += 1
            assert_same(view(through.queries), view(behind.queries))
    for shard in m.SHARDS:
        m.procs[1][shard].storage.compact_all(shard)  # type: ignore[attr-defined]
    assert_same(view(through.queries), view(behind.queries))
    assert t_ms < 86_400_000 - 3_600_000  # the view's window
    assert len(behind.readings.inner.items) == len(through.readings.inner.items) == m.stored
    for device in m.gateway_of:
        record = behind.states.get_many([device])[device]
        assert record.readings == through.states.get_many([device])[device].readings
        rows = [r for key, c in behind.readings.inner.chunks.items() if key[0] == device for r in c]
        assert sorted(r.ordinal for r in rows) == list(range(record.readings)), device
        assert record.last_ts_ms <= T0 + t_ms
