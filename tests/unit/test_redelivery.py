"""A device's messages delivered again at new Kinesis positions (a producer that resends a PutRecords call
it does not know was taken; the twin's rule bridge dying between PutRecords and its acknowledgements) are
duplicates, never stored twice, while they are within the device's recent identities (RECENT_IDENTITIES,
twice the bridge's MAX_PER_KEY a call: review D's finding 4)."""

from __future__ import annotations

import json

import pytest

from iotpm.local.bridge import MAX_PER_KEY
from iotpm.service.batch import RawRecord
from iotpm.service.fresh import RECENT_IDENTITIES
from iotpm.service.in_memory import MemoryPipeline
from iotpm.testing.clock import recent

T0 = recent(1_765_000_000_000)
SHARD = "shardId-000000000000"


def _records(n: int, first_position: int, arrival: int, start: int = 0) -> list[RawRecord]:
    bodies = [
        json.dumps({"device_id": "pump-1", "ts": T0 + i * 100, "seq": i + 1, "site": "s", "line": "l",
                    "device_type": "pump", "metrics": {"temperature_c": 50.0 + i % 3}}).encode()
        for i in range(start, start + n)
    ]  # fmt: skip
    return [RawRecord(f"{first_position + i:056d}", "pump-1", b, arrival, SHARD) for i, b in enumerate(bodies)]


@pytest.mark.parametrize("behind", [False, True], ids=["write-through", "write-behind"])
@pytest.mark.parametrize("n", [1, MAX_PER_KEY, 2 * MAX_PER_KEY, RECENT_IDENTITIES])
@pytest.mark.parametrize("split", [False, True], ids=["one-batch", "two-batches"])
def test_messages_put_again_at_new_positions_are_duplicates(behind: bool, n: int, split: bool) -> None:
    pipe = MemoryPipeline.build(behind=behind)
    proc = pipe.processor()
    before = _records(10, 49_600_000_000, T0 + 1000, start=0)  # the device's earlier messages
    first = _records(n, 49_600_000_100, T0 + 5000, start=10)
    assert proc(before, T0 + 1000).counts.stored == 10
    assert proc(first, T0 + 5000).counts.stored == n
    again = _records(n, 49_600_001_000, T0 + 6000, start=10)  # the same messages, new positions after them
    parts = [again[: n // 2], again[n // 2 :]] if split else [again]
    counts = [proc(part, T0 + 6000 + k).counts for k, part in enumerate(parts) if part]
    assert sum(c.stored for c in counts) == 0
    assert sum(c.duplicates for c in counts) == n
    if behind:  # the batch log compacted into the readings table and rollups
        proc.storage.compact_all(SHARD)  # type: ignore[attr-defined]
    rows = [r for chunk in pipe.readings.chunks.values() for r in chunk]
    assert len(rows) == 10 + n and len({r.key for r in rows}) == 10 + n
    minute = [v for (_, res, _), v in pipe.rollups.items.items() if res == "1m"]
    assert sum(v.metrics["temperature_c"].count for v in minute) == 10 + n
