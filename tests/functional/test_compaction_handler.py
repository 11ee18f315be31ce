"""The compaction Lambda's handler over S3 (moto in-process): Parquet and the mark land in the bucket,
and a folder copy of the bucket answers as the raw archive alone."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from iotpm.adapters.s3 import S3Archive
from iotpm.analytics.compaction import hour_at, partition
from iotpm.analytics.duck import STATE_KEY, ArchiveDB
from iotpm.analytics.queries import named_queries
from iotpm.composition import CompactionJobSettings, build_compactor
from iotpm.handlers.compaction import CompactionHandler
from iotpm.service.ports import RawLine
from iotpm.service.processor import encode_lines

BUCKET = "iotpm-archive-compaction-test"
H0 = 1_790_042_400_000  # 2026-09-22T00:00:00Z
HOUR = 3_600_000
DAY = "2026-09-22"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)  # the integration tests' emulator: this is moto in-process
    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="t", aws_secret_access_key="t")
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        yield client


def line(i: int, hour: int, device: str = "dev-1", temp: float = 50.0) -> RawLine:
    arrival = H0 + hour * HOUR + 1000 * i
    body = {"device_id": device, "ts": arrival - 500, "seq": i, "site": "plant-1", "line": "line-1",
            "metrics": {"temperature_c": temp, "pressure_psi": 90.0, "vibration_mm_s": 1.0}}  # fmt: skip
    return RawLine(arrival, json.dumps(body), device, f"{1000 + i:08d}", "shardId-000000000000")


def fill(client: Any) -> None:
    objects = {
        (0, "a"): [line(i, 0, temp=85.0 if i == 3 else 50.0) for i in range(5)],
        (1, "a"): [line(10 + i, 1, device="dev-2") for i in range(5)],
        (1, "retry"): [line(4, 0)],  # a retry's copy of hour 0's last record, archived an hour later
        (2, "a"): [line(20 + i, 2) for i in range(5)],
    }
    for (hour, name), lines in objects.items():
        key = f"raw/{partition(hour_at(H0 + hour * HOUR))}/{name}.jsonl.gz"
        client.put_object(Bucket=BUCKET, Key=key, Body=encode_lines(lines))
    rejected = line(12, 1, device="dev-2")
    q = {"reason": "schema_violation", "detail": "x", "device_id": "dev-2", "sequence_number": rejected.sequence_number,
         "partition_key": "dev-2", "arrival_ms": rejected.arrival_ms, "payload": {}}  # fmt: skip
    client.put_object(
        Bucket=BUCKET, Key=f"quarantine/{partition(hour_at(H0 + HOUR))}/q.jsonl.gz", Body=encode_lines([q])
    )


def answers(root: Path) -> dict[str, Any]:
    db = ArchiveDB(root)
    values = {"device_id": "dev-1", "from_day": DAY, "to_day": DAY, "silent_minutes": 1, "late_seconds": 0}
    return {name: db.named(name, [values[p] for p in q.params]) for name, q in named_queries().items()}


def test_the_handler_compacts_closed_hours_in_the_bucket(s3: Any, tmp_path: Path) -> None:
    fill(s3)
    before = tmp_path / "before"
    S3Archive(s3, BUCKET).download(before)
    settings = CompactionJobSettings(archive_bucket=BUCKET, region="eu-west-1", compaction_grace_s=600)
    now = H0 + 2 * HOUR + 600_000  # hours 0 and 1 are closed, hour 2 is not
    handler = CompactionHandler(lambda: build_compactor(settings, {"s3": s3}), now_ms=lambda: now)

    first = handler({"max_hours": 1}, None)  # the Scheduler's input may bound one run
    assert first["hours"] == [hour_at(H0)] and first["through_hour"] == hour_at(H0 + HOUR)
    second = handler({}, None)
    assert second["hours"] == [hour_at(H0 + HOUR)] and second["through_hour"] == hour_at(H0 + 2 * HOUR)
    assert second["rows"] == 4  # five records, one rejected; the retry's copy of hour 0's record left out
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="compacted/")["Contents"]}
    assert keys == {STATE_KEY} | {f"compacted/readings/{partition(hour_at(H0 + h * HOUR))}/part-00000.parquet"
                                  for h in (0, 1)}  # fmt: skip

    after = tmp_path / "after"
    S3Archive(s3, BUCKET).download(after, ("raw/", "quarantine/", "compacted/"))
    assert answers(after) == answers(before)
    breaches = ArchiveDB(after).named("limit_breaches_per_line_per_day", [DAY, DAY])
    assert [(r["readings"], r["temperature_breaches"]) for r in breaches] == [(14, 1)]


def test_the_settings_come_from_the_functions_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IOTPM_ARCHIVE_BUCKET", "iotpm-prod-archive")
    monkeypatch.setenv("IOTPM_COMPACTION_GRACE_S", "5400")
    s = CompactionJobSettings()
    assert (s.archive_bucket, s.compaction_grace_s, s.compaction_max_hours) == ("iotpm-prod-archive", 5400, 48)
