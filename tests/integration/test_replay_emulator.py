"""``iotpm replay`` against the AWS emulator: the messages the topic rule's S3 error action kept
go back on a real (emulated) Kinesis stream with the rule's partition key and data, and the
processor applies a message replayed twice once."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from typer.testing import CliRunner

from iotpm.cli.app import app
from iotpm.composition import build_processor, clients
from iotpm.service import RawRecord
from iotpm.service.samples import reading

from .aws import REGION, Environment, client

T0 = 1_790_000_000_000
NOW = T0 + 400_000


def error_message(thing: str, payload: bytes) -> bytes:
    """What AWS IoT's S3 error action writes when the rule's Kinesis action fails."""
    return json.dumps({
        # devices publish through Basic Ingest: the error action keeps the topic they published to
        "ruleName": "iotpm_test_telemetry", "topic": f"$aws/rules/iotpm_test_telemetry/iotpm/{thing}/telemetry",
        "clientId": thing,
        "base64OriginalPayload": base64.b64encode(payload).decode(),
        "failures": [{"failedAction": "KinesisAction", "errorMessage": "Rate exceeded for shard"}],
    }).encode()  # fmt: skip


def rule_errors(endpoint: str, messages: dict[str, bytes]) -> tuple[Any, str]:
    s3 = client("s3", endpoint)
    bucket = f"iotpm-test-rule-errors-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    for key, body in messages.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    return s3, bucket


def stream(endpoint: str) -> tuple[Any, str]:
    kinesis = client("kinesis", endpoint)
    name = f"iotpm-test-telemetry-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    return kinesis, name


def records(kinesis: Any, name: str) -> list[RawRecord]:
    """Everything on the stream's one shard, as the processor's handler receives it."""
    shard = kinesis.list_shards(StreamName=name)["Shards"][0]["ShardId"]
    it = kinesis.get_shard_iterator(StreamName=name, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    got = kinesis.get_records(ShardIterator=it, Limit=1000)["Records"]
    return [RawRecord(r["SequenceNumber"], r["PartitionKey"], r["Data"], T0, shard) for r in got]


def replay(endpoint: str, bucket: str, name: str) -> dict[str, Any]:
    args = ["replay", "--bucket", bucket, "--stream", name, "--endpoint-url", endpoint, "--region", REGION, "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def message(device: str, seq: int, temperature: float = 40.0) -> bytes:
    return json.dumps(reading(device, seq, T0 + seq * 1000, {"temperature_c": temperature})).encode()


def test_replay_puts_the_kept_messages_on_the_stream_with_the_rules_partition_key(endpoint: str) -> None:
    s3, bucket = rule_errors(endpoint, {
        "errors/2026/12/07/10/1.json": error_message("dev-0001", message("dev-0001", 1)),
        "errors/2026/12/07/10/2.json": error_message("dev-0002", message("dev-0002", 1)),
        "elsewhere/3.json": error_message("dev-0003", message("dev-0003", 1)),  # not under errors/: not replayed
    })  # fmt: skip
    kinesis, name = stream(endpoint)
    assert replay(endpoint, bucket, name)["replayed"] == 2
    got = records(kinesis, name)
    assert sorted(r.partition_key for r in got) == ["dev-0001", "dev-0002"]
    assert all(json.loads(r.data)["thing_name"] == r.partition_key == json.loads(r.data)["device_id"] for r in got)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["elsewhere/3.json", "replayed/2026/12/07/10/1.json", "replayed/2026/12/07/10/2.json"]
    assert replay(endpoint, bucket, name)["found"] == 0 and len(records(kinesis, name)) == 2


def test_a_message_replayed_twice_is_applied_once(env: Environment, endpoint: str) -> None:
    kept = {f"errors/x/{i}.json": error_message("dev-0001", message("dev-0001", i, 40.0 + i)) for i in range(1, 4)}
    s3, bucket = rule_errors(endpoint, kept)
    kinesis, name = stream(endpoint)
    assert replay(endpoint, bucket, name)["replayed"] == 3
    # a replay interrupted after its put, before the move: the same messages are put again
    for key, body in kept.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    assert replay(endpoint, bucket, name)["replayed"] == 3
    delivered = records(kinesis, name)
    assert len(delivered) == 6
    out = build_processor(env.settings, clients(env.settings))(delivered, now_ms=NOW)
    assert out.failed_sequence_numbers == [], out.errors
    assert (out.counts.stored, out.counts.duplicates) == (3, 3)
