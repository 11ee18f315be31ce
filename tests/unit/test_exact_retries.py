"""Exactly-once effects of retries on the packed layout (in-memory stores).

A device whose writes fail is retried from its first record, and the retry may carry
more readings than the failed attempt (newer records arrived) or fewer (a shorter
batch, a bisected one). Whatever the pattern, the readings are stored once each and
the rollups equal the aggregates of the readings, computed here from scratch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from iotpm.service import Processor, RawRecord, StoreError
from iotpm.service.in_memory import MemoryPipeline
from iotpm.service.memory import MemoryReadings, MemoryRollups, MemoryStates
from iotpm.service.ports import RESOLUTION_MS, DeviceRecord, Failures, MetricStats
from iotpm.service.samples import batch

T0 = 1_789_999_200_000  # a whole hour
NOW = T0 + 3_600_000


class FlakyStates(MemoryStates):
    """Fails the state writes of the devices in ``failing`` (the set is changed by the test)."""

    def __init__(self) -> None:
        super().__init__()
        self.failing: set[str] = set()

    def put_many(self, records: Sequence[DeviceRecord]) -> Failures:
        ok = [r for r in records if r.device_id not in self.failing]
        failures = super().put_many(ok)
        failed = {r.device_id for r in records} & self.failing
        return failures | {d: StoreError("throttled", code="ThrottlingException") for d in failed}


def stores() -> tuple[Processor, FlakyStates, MemoryReadings, MemoryRollups]:
    """Fresh in-memory stores (each hypothesis example its own) with flaky states, and a processor over them."""
    states = FlakyStates()
    pipe = MemoryPipeline(states=states)
    return pipe.processor(), states, pipe.readings, pipe.rollups


def expected_buckets(records: Sequence[RawRecord]) -> dict[tuple[str, str, int], dict[str, MetricStats]]:
    """Every bucket's aggregates computed from the readings themselves."""
    out: dict[tuple[str, str, int], dict[str, MetricStats]] = {}
    for rec in records:
        body: dict[str, Any] = json.loads(rec.data)
        for res, width in RESOLUTION_MS.items():
            bucket = out.setdefault((body["device_id"], res, body["ts"] - body["ts"] % width), {})
            for name, v in body["metrics"].items():
                s = bucket.get(name)
                bucket[name] = (
                    MetricStats(1, v, v, v)
                    if s is None
                    else MetricStats(s.count + 1, min(s.min, v), max(s.max, v), s.sum + v)
                )
    return out


def stored_buckets(rollups: MemoryRollups) -> dict[tuple[str, str, int], dict[str, MetricStats]]:
    return {key: dict(r.metrics) for key, r in rollups.items.items()}


def same(a: dict[tuple[str, str, int], dict[str, MetricStats]], b: dict[Any, dict[str, MetricStats]]) -> bool:
    """Equal counts, min and max; sums equal to rounding (they are added in another order)."""
    if a.keys() != b.keys() or any(a[k].keys() != b[k].keys() for k in a):
        return False
    return all(
        (s.count, s.min, s.max) == (t.count, t.min, t.max) and abs(s.sum - t.sum) < 1e-6
        for k in a
        for s, t in ((a[k][name], b[k][name]) for name in a[k])
    )


def test_a_retry_that_carries_newer_readings_of_the_same_bucket_leaves_the_rollups_exact() -> None:
    proc, states, readings, rollups = stores()
    records = batch(3, 10, start_ms=T0, interval_ms=1000)  # 10 readings a device, all in one minute
    first = records[:15]  # 5 readings a device
    states.failing = {"dev-0001"}
    out = proc(first, now_ms=NOW)
    start = next(i for i, r in enumerate(first) if r.partition_key == "dev-0001")
    assert out.failed_sequence_numbers == [first[start].sequence_number]
    states.failing = set()
    # Lambda retries from the failed record; by now the shard holds five newer readings a device
    out = proc(records[start:], now_ms=NOW)
    assert out.failed_sequence_numbers == [] and not out.errors
    minute = rollups.items[("dev-0001", "1m", T0)]
    assert minute.metrics["temperature_c"].count == 10  # not 5: the retry replaced the failed attempt
    assert same(stored_buckets(rollups), expected_buckets(records))
    assert len(readings.items) == 30 and states.items["dev-0001"].readings == 10


def test_a_retry_that_carries_fewer_readings_than_the_failed_attempt_leaves_nothing_twice() -> None:
    proc, states, readings, rollups = stores()
    records = batch(2, 120, start_ms=T0, interval_ms=1000)  # two minutes, two rollup blocks' worth of chunks
    states.failing = {"dev-0000"}
    proc(records, now_ms=NOW)  # all 120 readings of dev-0000 written, its state not
    states.failing = set()
    short = records[:50]  # the retry is a shorter batch: 25 readings a device
    assert proc(short, now_ms=NOW).failed_sequence_numbers == []
    assert proc(records[50:], now_ms=NOW).failed_sequence_numbers == []
    assert same(stored_buckets(rollups), expected_buckets(records))
    assert len(readings.items) == 240 and states.items["dev-0000"].readings == 120


@settings(max_examples=40, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=1, max_value=90), min_size=1, max_size=30),
    fails=st.lists(st.sets(st.sampled_from(["dev-0000", "dev-0001", "dev-0002"])), min_size=1, max_size=30),
)
def test_any_pattern_of_failed_state_writes_and_batch_sizes_leaves_every_reading_once_and_rollups_exact(
    cuts: list[int], fails: list[set[str]]
) -> None:
    """A shard of 3 devices, 60 readings each, 20 s apart (minutes, blocks and an hour cross), read
    in batches of the drawn sizes; each call fails the state writes of the drawn devices."""
    proc, states, readings, rollups = stores()
    records = batch(3, 60, start_ms=T0 + 3_590_000, interval_ms=20_000)  # crosses an hour too
    at, calls = 0, 0
    while at < len(records):
        states.failing = fails[calls % len(fails)] if calls < 60 else set()
        chunk = records[at : at + cuts[calls % len(cuts)]]
        out = proc(chunk, now_ms=NOW)
        calls += 1
        if out.failed_sequence_numbers:
            at += [r.sequence_number for r in chunk].index(out.failed_sequence_numbers[0])
        else:
            at += len(chunk)
    assert len(readings.items) == len(records)
    assert sum(s.readings for s in states.items.values()) == len(records)
    assert same(stored_buckets(rollups), expected_buckets(records))
