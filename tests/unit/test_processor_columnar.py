"""The columnar path (the common batch grouped by device once, its plain devices settled on slices of
it) leaves the stores exactly as the general path does: the same records, readings, rollups, events,
alerts, log entries, snapshots, quarantine and counts, batch after batch, in both write strategies,
over generated batches that mix the common case with retries, resends, late and unordered readings,
conflicting repeats, identity changes, other shapes, odd sequence numbers and failing writes. The fast
side also keeps its detector states between batches (BatchDetector.reuse_states), the general side reads
each from its record."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotpm.service.batch import Counts, DeviceReadings, RawRecord
from iotpm.service.errors import StoreError
from iotpm.service.fresh import BatchMarks, Grouped, fresh_readings
from iotpm.service.in_memory import MemoryPipeline
from iotpm.service.memory import MemoryLog, MemoryStates
from iotpm.service.ports import DeviceRecord, Failures, LogEntry
from iotpm.service.processor import Processor, ProcessorSettings
from iotpm.service.samples import reading

T0 = 1_790_000_000_000
SHARD = "shardId-000000000003"
NAMES = ("temperature_c", "vibration_mm_s", "pressure_psi")


class FailingStates(MemoryStates):
    """Fails the record writes of the devices in ``failing`` (set per batch by the test)."""

    def __init__(self) -> None:
        super().__init__()
        self.failing: set[str] = set()

    def put_many(self, records: Sequence[DeviceRecord], *, checked: bool = True) -> Failures:
        failures = super().put_many([r for r in records if r.device_id not in self.failing], checked=checked)
        return failures | {
            r.device_id: StoreError("throttled", code="Throttling") for r in records if r.device_id in self.failing
        }


class FailingLog(MemoryLog):
    """Refuses the log items of the devices in ``failing`` (the others' stand)."""

    def __init__(self) -> None:
        super().__init__()
        self.failing: set[str] = set()

    def append(self, shard: str, entry: LogEntry) -> Failures:
        kept = [d for d in entry.devices if d.device_id not in self.failing]
        super().append(shard, LogEntry(entry.key, entry.written_ms, entry.ttl_s, kept))
        return {
            d.device_id: StoreError("throttled", code="Throttling")
            for d in entry.devices
            if d.device_id in self.failing
        }


class Fleet:
    """A seeded fleet's batches: mostly the common batch (one canonical reading a record, each its
    device's own, one name set), with what breaks it for a device or for the whole batch."""

    def __init__(self, seed: int, devices: int) -> None:
        self.rng = random.Random(seed)
        self.ids = [f"dev-{seed % 100:02d}-{d:02d}" for d in range(devices)]
        self.clock = {d: T0 + self.rng.randrange(0, 1000) for d in self.ids}
        self.seq = dict.fromkeys(self.ids, 0)
        self.number = 10**20 + seed * 10**9
        self.sent: list[RawRecord] = []
        self.previous: list[RawRecord] = []
        self.batches = 0

    def _record(self, key: str, body: Any, short: bool = False) -> RawRecord:
        self.number += self.rng.randrange(1, 4)
        number = str(self.number)
        if short:  # a number of another length: the batch's numbers do not compare as text
            number = number[1:]
        arrival = max(self.clock.values()) + 50
        return RawRecord(number, key, json.dumps(body).encode(), arrival, SHARD)

    def batch(self, per_device: int) -> list[RawRecord]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.12 and self.previous:  # Lambda retrying the last batch, whole or from a record on
            return self.previous[rng.randrange(0, len(self.previous)) :]
        # another name set (fewer; a new one: the devices relearn) for the whole batch
        names = rng.choice([NAMES] * 6 + [NAMES[:2], (*NAMES, "rpm_hz")])
        # a record that makes the whole batch other than the common one (the rest: a device alone)
        odd_batch = rng.choice(["short", "array", "foreign", "names", *[""] * 8])
        self.batches += 1
        if self.batches == 1:  # the first is the common batch, so every example has the fast path to test
            names, odd_batch = NAMES, ""
        records: list[RawRecord] = []
        for _ in range(per_device):
            for device in rng.sample(self.ids, k=max(1, len(self.ids) - rng.randrange(0, 3))):
                self.clock[device] += rng.choice((1000, 1000, 1000, 2000))
                self.seq[device] += 1
                ts, seq = self.clock[device], self.seq[device]
                odd = rng.random()
                if odd < 0.02:
                    ts -= 3000  # out of time order within its device
                elif odd < 0.04:
                    ts -= 7_200_000  # late: older than the device's last scored reading
                elif odd < 0.05:
                    self.seq[device] = seq = 1  # a restart
                metrics = {m: round(50 + rng.gauss(0, 1), 3) for m in names}
                now_odd = odd_batch and rng.random() < 0.1
                if now_odd and odd_batch == "names":
                    metrics["flow_lpm"] = 3.0  # one reading of another name set
                line = "line-1" if rng.random() > 0.01 else "line-2"  # a payload naming another line
                body: Any = reading(device, seq, ts, metrics, line=line)
                if now_odd and odd_batch == "array":
                    body = [body]  # an array of one reading
                key = self.ids[0] if now_odd and odd_batch == "foreign" else device  # another thing's (refused)
                rec = self._record(key, body, short=now_odd and odd_batch == "short")
                records.append(rec)
                self.sent.append(rec)
                again = rng.random()
                if again < 0.02:  # the same message again in a new record (a resend)
                    records.append(self._record(rec.partition_key, json.loads(rec.data)))
                elif again < 0.03 and isinstance(body, dict):  # same time and seq, other values: a conflict
                    records.append(self._record(device, {**body, "metrics": {m: v + 1 for m, v in metrics.items()}}))
                elif again < 0.05 and self.sent:  # an older message resent
                    old = rng.choice(self.sent[-200:])
                    records.append(self._record(old.partition_key, json.loads(old.data)))
        self.previous = records
        return records


def _stores(pipe: MemoryPipeline) -> dict[str, Any]:
    """Everything the stores hold (an alarm's claim as claimed or not: the token is random)."""
    out: dict[str, Any] = {
        "states": pipe.states.items,
        "readings": pipe.readings.chunks,
        "anomalies": {k: (row, holder is None) for k, (row, holder) in pipe.anomalies.items.items()},
        "rollups": pipe.rollups.blocks,
        "alerts": [(a.subject, a.body, a.attributes) for a in pipe.alerts.sent],
        "archive": pipe.archive.objects,
    }
    if pipe.log is not None and pipe.snapshots is not None:
        out["log"] = pipe.log.shards
        out["snapshots"] = {s: snap for s, (_, snap) in pipe.snapshots.items.items()}
    return out


def _pipeline(behind: bool) -> tuple[MemoryPipeline, FailingStates, FailingLog | None]:
    states = FailingStates()
    log = FailingLog() if behind else None
    pipe = MemoryPipeline(
        states=states, log=log, snapshots=MemoryPipeline.build(behind=True).snapshots if behind else None
    )
    return pipe, states, log


@pytest.mark.parametrize("behind", [False, True], ids=["write-through", "write-behind"])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000))
def test_the_columnar_path_stores_what_the_general_path_stores(behind: bool, seed: int) -> None:
    fleet = Fleet(seed, devices=random.Random(seed).randrange(3, 14))
    rng = random.Random(seed + 1)
    pipes = [_pipeline(behind), _pipeline(behind)]
    procs: list[Processor] = []
    for (pipe, _, _), columnar in zip(pipes, (True, False), strict=True):
        proc = pipe.processor(settings=ProcessorSettings(compact_interval_s=60, compact_slices=2))
        proc._detect.columnar = columnar
        proc._detect.reuse_states = columnar  # the general path reads every state from its record
        procs.append(proc)
    settled = []
    real = Grouped.fresh

    def counted(self: Grouped, slot: int, device: DeviceReadings, record: DeviceRecord) -> Any:
        got = real(self, slot, device, record)
        settled.append(got is not None)
        return got

    Grouped.fresh = counted  # type: ignore[method-assign]
    try:
        _run(fleet, rng, pipes, procs, behind)
    finally:
        Grouped.fresh = real  # type: ignore[method-assign]
    assert any(settled)  # the columnar path settled devices


def _run(fleet: Fleet, rng: random.Random, pipes: list[Any], procs: list[Processor], behind: bool) -> None:
    for b in range(8):
        records = fleet.batch(per_device=rng.randrange(1, 8))
        failing = set(rng.sample(fleet.ids, k=rng.randrange(0, 3))) if rng.random() < 0.3 else set()
        now = max(r.arrival_ms for r in records) + 1000 * b
        outcomes = []
        for proc, (_, states, log) in zip(procs, pipes, strict=True):
            states.failing = set() if behind else failing
            if log is not None:
                log.failing = failing
            outcomes.append(proc(records, now_ms=now))
        got, want = outcomes
        assert vars(got.counts) == vars(want.counts)
        assert got.failed_sequence_numbers == want.failed_sequence_numbers
        assert got.errors == want.errors
        assert _stores(pipes[0][0]) == _stores(pipes[1][0])


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    devices=st.integers(1, 6),
    floor_shift=st.integers(-3, 3),
    repeat=st.booleans(),
)
def test_a_grouped_device_is_settled_as_fresh_readings_settles_it(
    seed: int, devices: int, floor_shift: int, repeat: bool
) -> None:
    """Whatever each device's marks (its position near the batch's numbers, recent identities met
    again or not), a device the grouping settles gets what :func:`fresh_readings` gives it, and one it
    cannot settle is left to it."""
    rng = random.Random(seed)
    from iotpm.models import ReadingFields

    ids = [f"dev-{d}" for d in range(devices)]
    readings: list[ReadingFields] = []
    records: list[RawRecord] = []
    n = rng.randrange(1, 40)
    numbers = [10**20 + 10 * i + rng.randrange(0, 2) for i in range(n)]
    if rng.random() < 0.5:  # not in the stream's order (Kinesis never does this): no device may be settled
        rng.shuffle(numbers)
    clock = dict.fromkeys(ids, T0)
    for i in range(n):
        device = rng.choice(ids)
        clock[device] += 1000
        ts = clock[device] if rng.random() < 0.9 else T0 + rng.randrange(0, 20) * 1000  # now and then out of order
        seq = rng.choice([None, rng.randrange(0, 5), ts % 10**6, ts % 10**6])  # now and then a repeat
        readings.append(ReadingFields(device, ts, {"a_c": float(rng.randrange(3)), "b_c": 1.0}, seq=seq))
        records.append(RawRecord(str(numbers[i]), device, b"{}", T0, SHARD))
    groups: dict[str, DeviceReadings] = {}
    for i, r in enumerate(readings):
        d = groups.setdefault(r.device_id, DeviceReadings(r.device_id, i))
        d.readings.append(r)
        d.indices.append(i)
        d.positions.append(i)
    order = sorted(groups)
    marks = BatchMarks.of(records, readings)
    grouped = Grouped.of(marks, [groups[d] for d in order])
    if grouped is None:
        assert numbers != sorted(numbers)
        return
    for device_id in order:
        device = groups[device_id]
        record = DeviceRecord(device_id, "s", "l", "t")
        if rng.random() < 0.7:  # marks of an earlier batch: some of these readings, a position near these
            earlier = device.readings[: len(device.readings) // 2] if repeat else []
            earlier += [ReadingFields(device_id, T0 - 5000, {"a_c": 9.0, "b_c": 1.0}, seq=77)]
            back = [RawRecord(str(10**20 - 10 + k), device_id, b"{}", T0, SHARD) for k in range(len(earlier))]
            first = fresh_readings(DeviceReadings(device_id, 0, earlier, list(range(len(earlier)))), back, record,
                                   Counts())  # fmt: skip
            pos = int(records[rng.choice(device.indices[:2])].sequence_number) + floor_shift
            record.ingest = {**first.ingest, "pos": {SHARD: str(pos)}}
        want = fresh_readings(device, records, record, Counts(), marks)
        slot = grouped.slots.get(device_id)
        if slot is None:
            continue
        got = grouped.fresh(slot, device, record)
        if got is None:
            continue
        assert got.readings == want.readings
        assert got.indices == want.indices
        assert got.ingest == want.ingest
        assert want.conflicts == []
        assert got.rows == want.rows
        ts, x = grouped.columns(slot, ("a_c", "b_c", "z_c"))
        columns = marks.columns(want, ("a_c", "b_c", "z_c"))
        assert columns is not None
        assert ts.tolist() == columns[0].tolist()
        assert x.tobytes() == columns[1].tobytes()
