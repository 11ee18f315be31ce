"""The twin's schedule of the compaction function's idle-shard job (src/iotpm/local/schedule.py), over
DynamoDB and S3 (moto in-process): built from the function's own variables, as Terraform sets them
(the archive job's among them), it compacts a shard no batch compacted, and runs again on time after
a run that failed."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import boto3
import pytest
from moto import mock_aws

from iotpm.adapters.dynamodb import TableNames, create_tables
from iotpm.adapters.s3 import S3Snapshots
from iotpm.composition import Settings, build_processor, build_queries
from iotpm.local.schedule import Every, idle_shards_job
from iotpm.service.samples import batch

T0 = 1_790_000_000_000
SHARD = "shardId-000000000000"
TABLES: dict[str, Any] = {"readings_table": "readings", "devices_table": "devices", "anomalies_table": "anomalies",
          "rollups_table": "rollups", "state_bucket": "state", "region": "eu-west-1"}  # fmt: skip
#: the compaction function's variables in a write-behind environment (terraform/modules/compaction)
FUNCTION_ENV = {
    "IOTPM_READINGS_TABLE": "readings",
    "IOTPM_DEVICES_TABLE": "devices",
    "IOTPM_ANOMALIES_TABLE": "anomalies",
    "IOTPM_ROLLUPS_TABLE": "rollups",
    "IOTPM_STATE_BUCKET": "state",
    "IOTPM_COMPACT_INTERVAL_S": "600",
    "IOTPM_IDLE_AFTER_S": "600",
    "IOTPM_IDLE_WAIT_S": "0",
    "AWS_REGION": "eu-west-1",
    "IOTPM_ENVIRONMENT": "local",
    "IOTPM_ARCHIVE_BUCKET": "archive",
    "IOTPM_COMPACTION_GRACE_S": "7200",
    "IOTPM_COMPACTION_WINDOW_H": "3",
    "IOTPM_COMPACTION_MAX_HOURS": "24",
    "IOTPM_READINGS_TTL_DAYS": "90",
    "HOME": "/tmp",
}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for name in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)  # the integration tests' emulator: this is moto in-process
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "t")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "t")
    with mock_aws():
        c: dict[str, Any] = {n: boto3.client(n, region_name="eu-west-1") for n in ("dynamodb", "s3", "sns")}
        create_tables(c["dynamodb"], TableNames("readings", "devices", "anomalies", "rollups"))
        for bucket in ("state", "archive"):
            c["s3"].create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        c["topic"] = c["sns"].create_topic(Name="alerts")["TopicArn"]
        yield c


def _until(done: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_the_twins_schedule_compacts_a_shard_no_batch_compacted_with_the_functions_variables(
    aws: dict[str, Any],
) -> None:
    settings = Settings(archive_bucket="archive", alerts_topic_arn=aws["topic"], **TABLES)
    proc = build_processor(settings, aws)
    for k in range(3):  # three batches logged, none compacted (months before now: the shard is idle)
        assert not proc(
            batch(4, 5, start_ms=T0 + k * 5000, first_seq=k * 100), T0 + k * 5000 + 6000
        ).failed_sequence_numbers
    snaps = S3Snapshots(aws["s3"], "state")
    before = snaps.get(SHARD)
    assert before.last_key is not None and before.compacted_key != before.last_key

    job = idle_shards_job(FUNCTION_ENV)
    assert job is not None
    schedule = Every("idle-shard compaction", job, every_s=0.2).start()
    try:
        _until(lambda: schedule.runs >= 2)
    finally:
        schedule.stop()
    assert schedule.failures == 0, schedule.last
    assert schedule.runs >= 2 and schedule.last is not None and schedule.last["claimed"] == []  # nothing left
    after = snaps.get(SHARD)
    assert after.compacted_key == after.last_key == before.last_key
    queries = build_queries(settings, aws)
    for device in (f"dev-{d:04d}" for d in range(4)):
        page = queries.readings(device, 0, T0 + 86_400_000, 100, None)
        assert len(page.items) == 15  # every reading from the chunks
        assert all(r.expires_at == r.ts_ms // 1000 + 90 * 86_400 for r in page.items)


def test_a_run_that_fails_is_counted_and_the_next_runs_on_schedule() -> None:
    calls: list[float] = []
    ran = threading.Event()

    def job() -> Mapping[str, Any]:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("a shard's snapshot could not be read")
        ran.set()
        return {"job": "idle_shards", "claimed": []}

    started = time.monotonic()
    schedule = Every("idle-shard compaction", job, every_s=0.1).start()
    try:
        assert ran.wait(10)
    finally:
        schedule.stop()
    assert schedule.failures == 1 and schedule.runs >= 2
    assert schedule.last == {"job": "idle_shards", "claimed": []}
    assert calls[0] - started >= 0.1  # the first run an interval after the start, not at it


def test_a_write_through_environment_has_no_idle_shard_job() -> None:
    without = {k: v for k, v in FUNCTION_ENV.items() if k != "IOTPM_STATE_BUCKET"}
    assert idle_shards_job(without) is None
    with pytest.raises(ValueError, match="positive"):
        Every("x", lambda: {}, 0)
