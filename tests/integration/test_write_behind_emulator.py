"""Write-behind on the real adapters: DynamoDB's batch log, S3 snapshots with If-Match, the API's queries.

DynamoDB is the emulator's and DynamoDB Local (AWS's own engine, with its item and request limits).

The stream of tests/unit/test_write_behind.py (:mod:`iotpm.testing.stream`) goes through a processor built by the
composition root (``IOTPM_STATE_BUCKET`` set, as Terraform sets it) over the emulator,
and through an in-memory write-through one; every device reads the same through
:class:`~iotpm.adapters.dynamodb_queries.DynamoQueries`, before and after compactions,
with a container lost half way (the snapshot re-read from S3, not held).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from iotpm.adapters.dynamodb_queries import DynamoQueries
from iotpm.adapters.s3 import S3Snapshots
from iotpm.api.memory import MemoryQueries
from iotpm.composition import build_processor
from iotpm.service.errors import ConflictError
from iotpm.service.in_memory import MemoryPipeline
from iotpm.service.ports import Snapshot
from iotpm.service.processor import ProcessorSettings
from iotpm.testing.stream import assert_same, stream, view

from .aws import REGION, Environment


def test_write_behind_over_the_emulator_reads_as_write_through(
    endpoint: str, dynamodb_endpoint: str, memory_pipeline: Callable[..., MemoryPipeline]
) -> None:
    env = Environment(endpoint, timestream=False, dynamodb=dynamodb_endpoint)
    state = f"{env.bucket}-state"
    env.s3.create_bucket(Bucket=state, CreateBucketConfiguration={"LocationConstraint": REGION})
    settings = env.settings.model_copy(update={"state_bucket": state, "compact_interval_s": 40})
    aws = {"dynamodb": env.ddb, "s3": env.s3, "sns": env.sns}
    proc = build_processor(settings, aws)
    assert proc.log is not None and proc.snapshots is not None
    through = memory_pipeline()  # write-through, in memory
    through_proc = through.processor(settings=ProcessorSettings(compact_interval_s=40))
    through_queries = MemoryQueries(through.states, through.readings, through.anomalies, through.rollups)
    queries = DynamoQueries(env.ddb, env.names)
    batches = stream(seed=11, minutes=4)
    for i, (records, now) in enumerate(batches):
        if i == len(batches) // 2:
            proc = build_processor(settings, aws)  # a new container: nothing held
        through_proc(records, now)
        out = proc(records, now)
        assert not out.failed_sequence_numbers, out.errors
        if i % 25 == 0 or i == len(batches) - 1:
            assert_same(view(through_queries), view(queries))
    items = env.ddb.scan(TableName=env.names.readings)["Items"]
    logged = [it for it in items if it["device_id"]["S"].startswith("~log#")]
    assert 0 < len(logged) <= len(batches)  # one log item a batch at most
    chunks = len(items) - len(logged)  # per device, a chunk per compaction and hour
    assert 0 < chunks <= 6 * (4 * 60 // 40 + 2)


def test_a_snapshot_put_over_a_newer_one_is_a_conflict(endpoint: str) -> None:
    env = Environment(endpoint, timestream=False)
    bucket = f"{env.bucket}-snap"
    env.s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    a, b = S3Snapshots(env.s3, bucket), S3Snapshots(env.s3, bucket)
    first = a.get("shard-1")
    assert first.tag is None and not first.records
    a.put("shard-1", Snapshot(last_key="001"))
    assert b.get("shard-1").last_key == "001"
    again = a.get("shard-1")  # held: answered 304, the same snapshot
    assert again.last_key == "001" and again.tag == b.get("shard-1").tag
    stale = Snapshot(last_key="002")  # written as if no snapshot existed
    with pytest.raises(ConflictError):
        b.put("shard-1", stale)
    newer = b.get("shard-1")
    newer.last_key = "003"
    b.put("shard-1", newer)
    old = Snapshot(last_key="004", tag=again.tag)
    with pytest.raises(ConflictError):
        a.put("shard-1", old)
    assert a.get("shard-1").last_key == "003"
