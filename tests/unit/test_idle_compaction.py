"""The scheduled compaction of idle shards: with the batch log's items expiring after a week,
every reading stays readable for its 90 days and nothing is counted twice.

A plant publishes, stops for longer than the log's expiry, starts again; the job
(:class:`~iotpm.service.compaction.IdleShards`) runs in the quiet and, at the worst
moments, beside the shard's processor: claiming the snapshot while a batch that read it
is compacting (that batch's commit fails and Lambda retries it), while batches arrive
during its wait and its compaction (they commit first: the job merges its cursors into
theirs), and beside another run of itself. The log drops each entry at its expiry, as
DynamoDB's TTL would. After every run and every session, and long after the last, the
API's view (records, readings, minute and hour buckets, alarms) is write-through's.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import msgspec
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from iotpm.adapters.dynamodb import LOG_TTL_S, log_expires_at
from iotpm.api.memory import MemoryQueries
from iotpm.service.batch import RawRecord
from iotpm.service.compaction import Compaction, IdleShards
from iotpm.service.memory import MemoryLog, MemorySnapshots
from iotpm.service.ports import LogEntry, ReadingRow, Snapshot
from iotpm.testing.stream import assert_same, stream, view
from tests.unit.test_write_behind import Side

SHARD = "shardId-000000000000"
DAY_MS = 86_400_000
IDLE_MS = 3_600_000  # the job takes a shard no batch compacted for an hour
WAIT_MS = 5_000  # "longer than a batch runs" in this test's time
LEASE_MS = 60_000


class Clock:
    """The test's time: the newest batch's, moved on by idle gaps and the job's waits."""

    def __init__(self) -> None:
        self.ms = 0

    def __call__(self) -> int:
        return self.ms


class ExpiringLog(MemoryLog):
    """The batch log with the DynamoDB adapter's expiry: an entry is gone once ``log_expires_at`` passed."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.expired = 0

    def after(self, shard: str, key: str | None, newest_first: bool = False) -> Iterator[LogEntry]:
        self.drop()
        return super().after(shard, key, newest_first)

    def drop(self) -> None:
        now_s = self.clock() // 1000
        for entries in self.shards.values():
            gone = [
                k for k, raw in entries.items() if log_expires_at(msgspec.msgpack.decode(raw, type=LogEntry)) <= now_s
            ]
            for k in gone:
                del entries[k]
            self.expired += len(gone)


class HookedSnapshots(MemorySnapshots):
    """Snapshots whose next write first runs ``before_put`` (another writer gets in between)."""

    before_put: Callable[[], None] | None = None

    def put(self, shard: str, snapshot: Snapshot) -> None:
        hook, self.before_put = self.before_put, None
        if hook is not None:
            hook()
        super().put(shard, snapshot)


class Plant:
    """A write-through and a write-behind processor fed the same stream, with idle gaps and the job."""

    def __init__(self, seed: int) -> None:
        self.clock = Clock()
        self.through, self.behind = Side(False), Side(True, interval_s=60)
        self.log = ExpiringLog(self.clock)
        self.snapshots = HookedSnapshots()
        self.behind.log, self.behind.snapshots = self.log, self.snapshots
        self.behind.proc = self.behind.build()
        self.behind.queries = MemoryQueries(
            self.behind.states, self.behind.readings.inner, self.behind.anomalies, self.behind.rollups.inner, self.log
        )
        self.batches = deque(stream(seed, minutes=9))
        self.retry: list[RawRecord] = []
        self.offset = 0  # added to the stream's times: the idle gaps so far
        self.hook_writes: Callable[[], None] | None = None
        self.runs: list[dict[str, object]] = []

    def job(self) -> IdleShards:
        storage: Any = self.behind.proc.storage  # the processor's WriteBehind: the job writes where it does
        compaction = Compaction(storage.tables, self.log)
        return IdleShards(compaction, self.snapshots, lambda: [SHARD], idle_ms=IDLE_MS, wait_ms=WAIT_MS,
                          clock=self.clock, sleep=self.wait)  # fmt: skip

    # --- the stream
    def step(self) -> bool:
        """The next batch through both processors (a batch the write-behind one failed is retried
        first, as Lambda does); False when the stream is done."""
        if self.retry:
            records, self.retry = self.retry, []
            self.clock.ms += 700
            out = self.behind.proc(records, self.clock.ms)
            self._failed(records, out.failed_sequence_numbers)
            return True
        if not self.batches:
            return False
        records, now = self.batches.popleft()
        records = [msgspec.structs.replace(r, arrival_ms=r.arrival_ms + self.offset) for r in records]
        self.clock.ms = max(self.clock.ms + 1, now + self.offset)
        self.through.proc(records, self.clock.ms)
        out = self.behind.proc(records, self.clock.ms)
        self._failed(records, out.failed_sequence_numbers)
        return True

    def _failed(self, records: list[RawRecord], failed: list[str]) -> None:
        if failed:
            first = next(k for k, r in enumerate(records) if r.sequence_number == failed[0])
            self.retry = records[first:]

    def gap(self, ms: int) -> None:
        """The plant stops for ``ms``: the stream's later batches come that much later."""
        self.offset += ms
        self.clock.ms += ms

    # --- the job
    def wait(self, seconds: float) -> None:
        """The job's wait: time passes, and whatever the test put in it happens."""
        during, self.during_wait = self.during_wait, None
        if during is not None:
            during()
        self.clock.ms += int(seconds * 1000)

    during_wait: Callable[[], None] | None = None

    def run_job(self) -> dict[str, object]:
        report = self.job()(LEASE_MS).as_dict()
        self.runs.append(report)
        return report

    def same(self) -> None:
        self.log.drop()
        assert_same(view(self.through.queries), view(self.behind.queries))


ACTIONS = st.sampled_from(["quiet", "claim_in_batch", "batches_in_wait", "batch_in_compaction", "two_jobs"])


@settings(max_examples=8, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(
    seed=st.integers(0, 10_000),
    cuts=st.lists(st.integers(10, 250), min_size=1, max_size=3, unique=True),
    gaps=st.lists(st.integers(LOG_TTL_S // 86_400 + 1, 40), min_size=3, max_size=3),
    actions=st.lists(ACTIONS, min_size=3, max_size=3),
)
def test_every_reading_is_readable_for_its_days_whatever_the_job_meets(
    seed: int, cuts: list[int], gaps: list[int], actions: list[str]
) -> None:
    plant = Plant(seed)
    i = 0
    plan = dict(zip(sorted(cuts), zip(gaps, actions, strict=False), strict=False))
    while True:
        if i in plan:
            days, action = plan[i]
            plant.same()
            if action == "quiet":  # stopped for longer than the log keeps an item; the job runs meanwhile
                _quiet(plant, days * DAY_MS)
            else:  # stopped for hours to days; it starts again as the job runs
                plant.gap(IDLE_MS + days * 3 * 3_600_000)
                _job_at_restart(plant, action)
            plant.same()
        if not plant.step():
            break
        i += 1
    while plant.retry:
        plant.step()
    plant.same()
    # the plant stops for good: the job compacts the tail, and a fortnight later it is all there
    plant.gap(2 * 3_600_000)
    plant.run_job()
    plant.gap(14 * DAY_MS)
    plant.same()
    assert plant.log.expired > 0  # the log's items did expire: the chunks hold every reading
    assert not any(plant.log.shards.values()), "the log's items all expired"
    compacted = sum(SHARD in r["compacted"] for r in plant.runs)  # type: ignore[operator]
    assert compacted >= 1
    for row in _rows(plant):
        assert row.expires_at == row.ts_ms // 1000 + 90 * 86_400  # the chunks keep the readings' TTL


def _quiet(plant: Plant, gap_ms: int) -> None:
    """The shard idle for ``gap_ms``: the hourly job takes it once it was idle an hour, a later run
    finds nothing to do, and the plant starts again after the log's items expired."""
    start = plant.clock.ms
    plant.clock.ms += IDLE_MS + 1_800_000
    before = plant.snapshots.get(SHARD)
    report = plant.run_job()
    if before.compacted_key != before.last_key:  # readings of it are in the log only
        assert report["claimed"] == [SHARD] and report["compacted"] == [SHARD], report
    after = plant.snapshots.get(SHARD)
    assert after.compacted_key == after.last_key, "every logged reading is in the tables now"
    plant.clock.ms += 3_600_000
    again = plant.run_job()
    assert again["claimed"] == [], again
    plant.clock.ms = start
    plant.gap(gap_ms)


def _job_at_restart(plant: Plant, action: str) -> None:
    """The job as the plant starts again, as ``action`` says (when the log holds readings the
    tables do not: else there is nothing to race over, and the job claims nothing)."""
    before = plant.snapshots.get(SHARD)
    if before.compacted_key == before.last_key:
        assert plant.run_job()["claimed"] == []
        return
    if action == "claim_in_batch":
        # a batch opens the snapshot, compacts (all slices due), and before its commit the job
        # claims: the batch's commit fails, and its retry opens the claimed snapshot
        job = plant.job()
        claims: list[Any] = []
        plant.snapshots.before_put = lambda: claims.extend(job.claim(plant.clock(), plant.clock() + LEASE_MS,
                                                                      _report()))  # fmt: skip
        plant.step()
        assert claims, "the job should have claimed the idle shard"
        # its commit failed (a batch delivered again, with nothing new, has nothing to retry)
        plant.wait(WAIT_MS / 1000)
        plant.step()  # the retry, under the lease: no compaction
        report = _report()
        job.compact(claims, report)
        plant.runs.append(report.as_dict())
        return
    if action == "batches_in_wait":

        def three_batches() -> None:
            for _ in range(3):
                plant.step()

        plant.during_wait = three_batches
        plant.run_job()
        return
    if action == "batch_in_compaction":
        readings: Any = plant.behind.readings
        inner_put = readings.put_many
        fired: list[bool] = []

        def put_many(rows: Sequence[ReadingRow]) -> Any:
            if not fired:
                fired.append(True)
                readings.put_many = inner_put  # the batch's own compaction writes go straight through
                plant.step()
            return inner_put(rows)

        readings.put_many = put_many
        report = plant.run_job()
        readings.put_many = inner_put
        assert fired, report
        return
    if action == "two_jobs":
        other = plant.job()
        theirs: list[dict[str, object]] = []
        plant.during_wait = lambda: theirs.append(other(LEASE_MS).as_dict())
        report = plant.run_job()
        assert theirs and theirs[0]["claimed"] == [], theirs  # the other run finds the shard claimed
        assert report["compacted"] == [SHARD], report
        return
    raise AssertionError(action)


def _report() -> Any:
    from iotpm.service.compaction import IdleReport

    return IdleReport()


def _rows(plant: Plant) -> list[ReadingRow]:
    return list(plant.behind.readings.inner.items.values())


def test_a_log_item_expires_a_week_after_it_was_written_and_its_readings_keep_their_days() -> None:
    from iotpm.adapters.dynamodb import log_entries, log_items
    from iotpm.service.ports import LogDevice

    written = 1_790_000_000_000
    ts, metrics = [written - 5000, written], [{"t": 1.0}, {"t": 2.0}]
    part = LogDevice("dev-00", "plant-1", "line-0", "pump", "49600", 100.0, False, None, written, 2, 1,
                     ts, [1, 2], metrics, [0.1, 0.2], [False, False])  # fmt: skip
    for ttl_days, kept_s in ((90, LOG_TTL_S), (3, 3 * 86_400)):
        entry = LogEntry("020000", written, ttl_days * 86_400, [part])
        items = log_items(SHARD, entry)
        assert {int(it["expires_at"]["N"]) for it in items} == {written // 1000 + kept_s}
        (back,) = log_entries(items)
        rows = back.devices[0].rows(back.ttl_s)
        assert [r.expires_at for r in rows] == [r.ts_ms // 1000 + ttl_days * 86_400 for r in rows]


def test_the_snapshot_store_lists_its_shards(monkeypatch: Any) -> None:
    import os

    import boto3
    from moto import mock_aws

    from iotpm.adapters.s3 import S3Snapshots

    for name in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)  # moto in-process, not the integration tests' emulator
    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="t", aws_secret_access_key="t")
        client.create_bucket(Bucket="state", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        store = S3Snapshots(client, "state")
        assert store.shards() == []
        for shard in ("shardId-000000000000", "shardId-000000000001"):
            store.put(shard, Snapshot(last_key="020000"))
        client.put_object(Bucket="state", Key="snapshots/other/x.msgpack.z", Body=b"")  # not a shard's
        assert sorted(store.shards()) == ["shardId-000000000000", "shardId-000000000001"]


def test_the_compaction_function_runs_the_idle_shard_job_on_its_schedules_input() -> None:
    from iotpm.handlers.compaction import LEASE_MARGIN_MS, CompactionHandler
    from iotpm.service.compaction import IdleReport

    leases: list[int] = []

    class Job:
        def __call__(self, lease_ms: int) -> IdleReport:
            leases.append(lease_ms)
            return IdleReport(claimed=[SHARD], compacted=[SHARD])

    def parquet() -> Any:
        raise AssertionError("the idle-shard schedule must not run the Parquet compaction")

    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return 840_000

    handler = CompactionHandler(parquet, idle_factory=lambda: (Job(), 900_000))  # type: ignore[arg-type]
    out = handler({"job": "idle_shards"}, Context())
    assert out == {
        "job": "idle_shards",
        "claimed": [SHARD],
        "compacted": [SHARD],
        "merged": [],
        "left": {},
        "failed": {},
    }
    assert handler({"job": "idle_shards"}) == out
    # in Lambda the lease outlives the function (its time left, plus a margin); locally, the default
    assert leases == [840_000 + LEASE_MARGIN_MS, 900_000]


def test_one_shard_that_cannot_be_read_costs_that_shard_never_the_others() -> None:
    """A shard whose snapshot fails on every read (a disabled key, a corrupt object) is named in
    the run's report and fails the function (its Errors alarm), but every other idle shard is
    still claimed and compacted: none of their readings leaves with the log's expiry."""
    from iotpm.handlers.compaction import CompactionHandler, IdleShardsError
    from iotpm.service.errors import StoreError

    broken = "shardId-000000000000-broken"  # listed before the idle shard

    class OneBroken:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def get(self, shard: str) -> Snapshot:
            if shard == broken:
                raise StoreError("GetObject: AccessDenied (KMS key disabled)", code="AccessDenied")
            return self.inner.get(shard)  # type: ignore[no-any-return]

        def put(self, shard: str, snap: Snapshot) -> None:
            self.inner.put(shard, snap)

    p = Plant(0)
    for _ in range(120):
        p.step()
    while p.retry:
        p.step()
    snap = p.snapshots.get(SHARD)
    assert snap.compacted_key != snap.last_key  # the stopped plant's last readings are in the log only
    job = IdleShards(Compaction(p.behind.proc.storage.tables, p.log), OneBroken(p.snapshots), lambda: [broken, SHARD],
                     idle_ms=IDLE_MS, wait_ms=WAIT_MS, clock=p.clock, sleep=p.wait)  # fmt: skip
    handler = CompactionHandler(_no_parquet, idle_factory=lambda: (job, LEASE_MS))
    failures = 0
    for _ in range(8 * 24):  # the hourly schedule for 8 days: past the log's expiry
        p.clock.ms += 3_600_000
        try:
            handler({"job": "idle_shards"})
        except IdleShardsError as exc:
            failures += 1
            assert list(exc.failed) == [broken] and "AccessDenied" in exc.failed[broken]
    assert failures == 8 * 24  # every run says so
    snap = p.snapshots.get(SHARD)
    assert snap.compacted_key == snap.last_key  # the healthy shard was compacted all the same
    p.log.drop()
    assert_same(view(p.through.queries), view(p.behind.queries))


def _no_parquet() -> Any:
    raise AssertionError("the idle-shard schedule must not run the Parquet compaction")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_batch_that_commits_while_the_job_compacts_leaves_the_devices_table_right(seed: int) -> None:
    """A batch with an alarm commits while the job writes chunks (review C, findings 1 and 1b): the
    batch's device records carry the cursor before the job's, the job's carry the state before the
    batch's alarm; whichever landed last was wrong (the API counted logged readings twice on top
    of the rollups, or the device list showed the open alarm closed). After the job, the API and
    the devices table say what write-through's do."""
    import json

    p = Plant(seed)
    for _ in range(120):
        p.step()
    while p.retry:
        p.step()
    p.gap(IDLE_MS + 3 * 3_600_000)

    def hot_batch() -> None:
        records, now = p.batches.popleft()
        hot = []
        for r in records:
            body = json.loads(r.data)
            body["metrics"]["temperature_c"] = 150.0  # over the limit: an alarm raised, its records written
            hot.append(msgspec.structs.replace(r, data=json.dumps(body).encode(), arrival_ms=r.arrival_ms + p.offset))
        p.clock.ms = max(p.clock.ms + 1, now + p.offset)
        p.through.proc(hot, p.clock.ms)
        assert not p.behind.proc(hot, p.clock.ms).failed_sequence_numbers

    readings: Any = p.behind.readings
    inner = readings.put_many

    def put_many(rows: Any) -> Any:  # the job's first chunk write: the batch gets in before it
        readings.put_many = inner
        hot_batch()
        return inner(rows)

    readings.put_many = put_many
    report = p.job()(LEASE_MS)
    assert report.merged == [SHARD]  # the batch did commit while the job compacted
    p.same()
    through, behind = p.through.states.items, p.behind.states.items
    assert {d: r.alarm_open for d, r in behind.items()} == {d: r.alarm_open for d, r in through.items()}
    assert any(r.alarm_open for r in through.values())
