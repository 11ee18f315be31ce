"""The idle-shard job as the compaction function runs it, over DynamoDB and S3 (moto in-process):
a write-behind processor logs a few batches and stops; the job claims the shard's snapshot
(If-Match), compacts its log into the readings table and commits; the log's items expire a
week after they were written, the chunks with their readings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pydantic import ValidationError

from iotpm.adapters.dynamodb import TableNames, create_tables, log_partition
from iotpm.adapters.s3 import S3Snapshots
from iotpm.composition import Settings, build_processor, build_queries
from iotpm.handlers.compaction import CompactionHandler, IdleShardsSettings, build_idle_shards
from iotpm.service.samples import batch

T0 = 1_790_000_000_000
SHARD = "shardId-000000000000"
NAMES = TableNames("readings", "devices", "anomalies", "rollups")
ENV = {
    "IOTPM_READINGS_TABLE": "readings",
    "IOTPM_DEVICES_TABLE": "devices",
    "IOTPM_ANOMALIES_TABLE": "anomalies",
    "IOTPM_ROLLUPS_TABLE": "rollups",
    "IOTPM_STATE_BUCKET": "state",
    "IOTPM_COMPACT_INTERVAL_S": "600",
    "IOTPM_IDLE_AFTER_S": "600",
    "IOTPM_IDLE_WAIT_S": "0",
    "AWS_REGION": "eu-west-1",
}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for name in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)  # the integration tests' emulator: this is moto in-process
    for k, v in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", **ENV}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        c = {n: boto3.client(n, region_name="eu-west-1") for n in ("dynamodb", "s3", "sns")}
        create_tables(c["dynamodb"], NAMES)
        for bucket in ("state", "archive"):
            c["s3"].create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        topic = c["sns"].create_topic(Name="alerts")["TopicArn"]
        c["topic"] = topic
        yield c


def test_the_function_compacts_a_shard_no_batch_compacted(aws: dict[str, Any]) -> None:
    settings = Settings(archive_bucket="archive", alerts_topic_arn=aws["topic"], **_table_kwargs())
    proc = build_processor(settings, aws)
    for k in range(3):  # three batches, a second apart: no compaction is due yet
        records = batch(4, 5, start_ms=T0 + k * 5000, first_seq=k * 100)
        assert not proc(records, T0 + k * 5000 + 6000).failed_sequence_numbers
    snaps = S3Snapshots(aws["s3"], "state")
    before = snaps.get(SHARD)
    assert before.last_key is not None and before.compacted_key != before.last_key
    log_items = aws["dynamodb"].query(
        TableName="readings", KeyConditionExpression="device_id = :d",
        ExpressionAttributeValues={":d": {"S": log_partition(SHARD)}},
    )["Items"]  # fmt: skip
    assert log_items and all(
        int(it["expires_at"]["N"]) <= (T0 + 30_000) // 1000 + 7 * 86_400 for it in log_items
    )  # a week after it was written, not the readings' 90 days

    now = [T0 + 2 * 3_600_000]  # two hours later: no batch came
    job, lease = build_idle_shards(IdleShardsSettings(), aws)
    job.clock = lambda: now[0]
    handler = CompactionHandler(lambda: pytest.fail("not the Parquet job"), idle_factory=lambda: (job, lease))
    out = handler({"job": "idle_shards"})
    assert out["claimed"] == [SHARD] and out["compacted"] == [SHARD], out
    after = snaps.get(SHARD)
    assert after.compacted_key == after.last_key == before.last_key
    queries = build_queries(settings, aws)
    for device in (f"dev-{d:04d}" for d in range(4)):
        record = queries.device(device)
        assert record is not None and record.flushed.get(SHARD) == after.last_key
        page = queries.readings(device, 0, T0 + 86_400_000, 100, None)
        assert len(page.items) == 15  # every reading from the chunks, none from the log
        assert all(r.expires_at == r.ts_ms // 1000 + 90 * 86_400 for r in page.items)
    assert handler({"job": "idle_shards"})["claimed"] == []  # nothing left to compact


def _table_kwargs() -> dict[str, Any]:
    return {"readings_table": "readings", "devices_table": "devices", "anomalies_table": "anomalies",
            "rollups_table": "rollups", "state_bucket": "state", "region": "eu-west-1"}  # fmt: skip


@pytest.mark.parametrize(("wait", "accepted"), [("630", True), ("631", False), ("900", False)])
def test_a_wait_that_leaves_the_job_no_time_to_compact_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, wait: str, accepted: bool
) -> None:
    """The job waits a processor batch's timeout inside its own 900 s: past 630 s it is a configuration error."""
    for k, v in {**ENV, "IOTPM_IDLE_WAIT_S": wait}.items():
        monkeypatch.setenv(k, v)
    if accepted:
        assert IdleShardsSettings().idle_wait_s == int(wait)
    else:
        with pytest.raises(ValidationError, match="idle_wait_s"):
            IdleShardsSettings()
