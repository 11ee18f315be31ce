"""``iotpm replay`` over in-memory fakes of S3 and Kinesis: what the rule's error action kept
goes back on the stream with the rule's partition key and data, oldest first; what Kinesis
refuses stays waiting; what is not an error message is left in place."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from iotpm.adapters import rule_errors
from iotpm.adapters.rule_errors import RuleErrors, StreamWriter
from iotpm.cli.app import app

BUCKET, STREAM = "iotpm-test-rule-errors", "iotpm-test-telemetry"
T0 = datetime(2026, 12, 7, 10, tzinfo=UTC)


class FakeS3:
    """The S3 calls RuleErrors makes, on a dict of key -> (body, last modified)."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, datetime]] = {}

    def get_paginator(self, name: str) -> Any:
        assert name == "list_objects_v2"
        return self

    def paginate(self, Bucket: str, Prefix: str) -> list[dict[str, Any]]:  # noqa: N803 (boto3's names)
        assert Bucket == BUCKET
        found = [{"Key": k, "LastModified": t} for k, (_, t) in self.objects.items() if k.startswith(Prefix)]
        return [{"Contents": found[:2]}, {"Contents": found[2:]}]  # two pages, as S3 pages

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        body = self.objects[Key][0]
        return {"Body": type("Body", (), {"read": lambda self: body})()}

    def copy_object(self, Bucket: str, Key: str, CopySource: dict[str, str]) -> None:  # noqa: N803
        self.objects[Key] = self.objects[CopySource["Key"]]

    def delete_object(self, Bucket: str, Key: str) -> None:  # noqa: N803
        del self.objects[Key]


class FakeKinesis:
    """PutRecords that refuses the records of ``refuse`` partition keys ``times`` times each."""

    def __init__(self, refuse: dict[str, int] | None = None) -> None:
        self.records: list[tuple[str, bytes]] = []
        self.refuse = dict(refuse or {})
        self.calls = 0

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        assert StreamName == STREAM and len(Records) <= 500
        self.calls += 1
        out: list[dict[str, Any]] = []
        for r in Records:
            if self.refuse.get(r["PartitionKey"], 0) > 0:
                self.refuse[r["PartitionKey"]] -= 1
                out.append({"ErrorCode": "ProvisionedThroughputExceededException"})
            else:
                self.records.append((r["PartitionKey"], r["Data"]))
                out.append({"SequenceNumber": str(len(self.records)), "ShardId": "shardId-000000000000"})
        return {"FailedRecordCount": sum("ErrorCode" in o for o in out), "Records": out}


def error_message(thing: str, payload: bytes) -> bytes:
    """What AWS IoT's S3 error action writes for a message the Kinesis action failed to put."""
    return json.dumps({
        "ruleName": "iotpm_test_telemetry", "topic": f"iotpm/{thing}/telemetry", "clientId": thing,
        "cloudwatchTraceId": "7e146a2c-95b5-6caf-98b9-50e3969734c7",
        "base64OriginalPayload": base64.b64encode(payload).decode(),
        "failures": [{"failedAction": "KinesisAction", "failedResource": STREAM,
                      "errorMessage": "Failed to put record: Rate exceeded for shard"}],
    }).encode()  # fmt: skip


def reading(thing: str, seq: int) -> bytes:
    return json.dumps({"device_id": thing, "ts": "2026-12-07T10:00:00Z", "seq": seq, "temperature_c": 40.0}).encode()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeS3, FakeKinesis]:
    s3, kinesis = FakeS3(), FakeKinesis()

    def connect(bucket: str, stream: str, prefix: str, region: str | None, endpoint: str | None) -> Any:
        assert (bucket, stream) == (BUCKET, STREAM)
        return RuleErrors(s3, bucket, prefix), StreamWriter(kinesis, stream, sleep=lambda s: None)

    monkeypatch.setattr(rule_errors, "connect", connect)
    return s3, kinesis


def keep(s3: FakeS3, key: str, body: bytes, minutes: int) -> None:
    s3.objects[key] = (body, T0 + timedelta(minutes=minutes))


def replay(*args: str) -> Any:
    return CliRunner().invoke(app, ["replay", "--bucket", BUCKET, "--stream", STREAM, *args])


def test_replay_puts_each_message_back_as_the_rule_would_oldest_first(aws: tuple[FakeS3, FakeKinesis]) -> None:
    s3, kinesis = aws
    keep(s3, "errors/2026/12/07/10/b.json", error_message("pump-0000", reading("pump-0000", 2)), 2)
    keep(s3, "errors/2026/12/07/10/a.json", error_message("pump-0000", reading("pump-0000", 3)), 3)
    keep(s3, "errors/2026/12/07/10/c.json", error_message("motor-0001", b"[1, 2]"), 1)
    result = replay("--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"found": 3, "replayed": 3, "failed": [], "unreadable": [],
                                         "devices": {"motor-0001": 1, "pump-0000": 2}, "dry_run": False}  # fmt: skip
    assert [k for k, _ in kinesis.records] == ["motor-0001", "pump-0000", "pump-0000"]  # by the time the rule kept them
    assert kinesis.records[0][1] == b"[1, 2]"  # not an object: unchanged, as the rule passes it
    assert [json.loads(d)["seq"] for _, d in kinesis.records[1:]] == [2, 3]
    assert json.loads(kinesis.records[1][1])["thing_name"] == "pump-0000"  # the rule's SELECT *, topic(2) AS thing_name
    assert sorted(s3.objects) == ["replayed/2026/12/07/10/a.json", "replayed/2026/12/07/10/b.json",
                                  "replayed/2026/12/07/10/c.json"]  # fmt: skip
    again = replay("--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["found"] == 0 and len(kinesis.records) == 3


def test_records_kinesis_refuses_are_resent_and_what_it_keeps_refusing_waits(aws: tuple[FakeS3, FakeKinesis]) -> None:
    s3, kinesis = aws
    keep(s3, "errors/x/1.json", error_message("pump-0000", reading("pump-0000", 1)), 1)
    keep(s3, "errors/x/2.json", error_message("motor-0001", reading("motor-0001", 1)), 2)
    kinesis.refuse = {"pump-0000": 2, "motor-0001": 99}  # pump-0000 throttled twice, motor-0001 every time
    result = replay("--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["failed"] == ["errors/x/2.json"] and json.loads(result.stdout)["replayed"] == 1
    assert [k for k, _ in kinesis.records] == ["pump-0000"] and kinesis.calls == 5  # bounded: 5 attempts
    assert sorted(s3.objects) == ["errors/x/2.json", "replayed/x/1.json"]


def test_dry_run_counts_and_changes_nothing(aws: tuple[FakeS3, FakeKinesis]) -> None:
    s3, kinesis = aws
    for i in range(3):
        keep(s3, f"errors/x/{i}.json", error_message(f"pump-000{i}", reading(f"pump-000{i}", 1)), i)
    result = replay("--dry-run", "--limit", "2")
    assert result.exit_code == 0, result.output
    assert "would replay 2 of 2 messages (2 devices)" in result.stdout
    assert kinesis.calls == 0 and sorted(s3.objects) == [f"errors/x/{i}.json" for i in range(3)]


def test_an_object_that_is_not_an_error_message_is_left_in_place(aws: tuple[FakeS3, FakeKinesis]) -> None:
    s3, _ = aws
    keep(s3, "errors/x/junk.json", b"{not json", 1)
    keep(s3, "errors/x/nopayload.json", json.dumps({"topic": "iotpm/a/telemetry"}).encode(), 2)
    keep(s3, "errors/x/ok.json", error_message("pump-0000", reading("pump-0000", 1)), 3)
    result = replay("--json")
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["unreadable"] == ["errors/x/junk.json", "errors/x/nopayload.json"] and summary["replayed"] == 1
    assert "errors/x/junk.json" in s3.objects and "errors/x/nopayload.json" in s3.objects
    assert "not an IoT rule error message" in result.stderr


def test_a_prefix_must_be_a_folder(aws: tuple[FakeS3, FakeKinesis]) -> None:
    result = replay("--prefix", "errors")
    assert result.exit_code == 2 and "--prefix must end with /" in result.stderr
