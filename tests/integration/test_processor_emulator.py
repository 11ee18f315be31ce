"""The processor against the AWS emulator over HTTP, with real boto3 clients."""

from __future__ import annotations

import gzip
import json
import random
import threading
from collections import Counter
from typing import Any

from botocore.awsrequest import AWSResponse

from iotpm.adapters.dynamodb import all_items, block_of_item, chunk_rows
from iotpm.composition import build_processor, clients
from iotpm.handlers.processor import ProcessorHandler
from iotpm.service import Processor, RawRecord
from iotpm.service.samples import batch, kinesis_event

from .aws import Environment

T0 = 1_790_000_000_000
NOW = T0 + 400_000


def batches() -> list[list[RawRecord]]:
    """6 devices: 150 healthy readings each (learned), then device 2 runs 30 °C hot."""
    out = [batch(6, 50, start_ms=T0, first_seq=s, seed=s) for s in (0, 50, 100)]
    out.append(batch(6, 40, start_ms=T0, first_seq=150, faulty=[2], fault_from=160, seed=7))
    return out


def processor(env: Environment, aws: dict[str, Any] | None = None) -> Processor:
    return build_processor(env.settings, aws or clients_for(env))


def clients_for(env: Environment, attempts: int = 4) -> dict[str, Any]:
    settings = env.settings.model_copy(update={"max_attempts": attempts})
    return clients(settings)


def table(env: Environment, name: str) -> list[dict[str, Any]]:
    return sorted(all_items(env.ddb, name), key=lambda it: json.dumps(it, sort_keys=True, default=bytes.hex))


def readings(env: Environment) -> list[Any]:
    """Every stored reading, out of its chunk."""
    return [row for item in table(env, env.names.readings) for row in chunk_rows(item)]


def minute_counts(env: Environment, metric: str) -> Counter[str]:
    """Readings of ``metric`` per device, as the minute rollups count them."""
    counts: Counter[str] = Counter()
    for item in table(env, env.names.rollups):
        if item["resolution"]["S"] == "1m":
            for agg in block_of_item(item).buckets().values():
                counts[item["device_id"]["S"]] += agg.metrics[metric].count if metric in agg.metrics else 0
    return counts


def snapshot(env: Environment) -> dict[str, Any]:
    devices = [{k: v for k, v in it.items() if k not in {"updated", "version"}} for it in table(env, env.names.devices)]
    return {
        "readings": table(env, env.names.readings),
        "anomalies": table(env, env.names.anomalies),
        "rollups": table(env, env.names.rollups),
        "devices": devices,
    }


def queue_messages(env: Environment) -> list[dict[str, Any]]:
    out = []
    while True:
        got = env.sqs.receive_message(QueueUrl=env.queue, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        if not got.get("Messages"):
            return out
        for m in got["Messages"]:
            out.append(json.loads(m["Body"]))
            env.sqs.delete_message(QueueUrl=env.queue, ReceiptHandle=m["ReceiptHandle"])


def test_a_batch_lands_in_every_store_and_alerts_through_sns(env: Environment) -> None:
    proc = processor(env)
    for records in batches():
        out = proc(records, now_ms=NOW)
        assert out.failed_sequence_numbers == [], out.errors
    assert len(readings(env)) == 6 * 190
    devices = {it["device_id"]["S"]: it for it in table(env, env.names.devices)}
    assert devices["dev-0002"]["alarm_open"]["BOOL"] and not devices["dev-0001"]["alarm_open"]["BOOL"]
    anomalies = table(env, env.names.anomalies)
    assert [a["device_id"]["S"] for a in anomalies] == ["dev-0002"]
    assert json.loads(anomalies[0]["reasons"]["S"])[0]["metric"] == "temperature_c"
    assert minute_counts(env, "pressure_psi") == {f"dev-{d:04d}": 190 for d in range(6)}
    keys = [o["Key"] for o in env.s3.list_objects_v2(Bucket=env.bucket)["Contents"]]
    assert len(keys) == 4 and all(k.startswith("raw/year=") and "/hour=" in k for k in keys)
    body = gzip.decompress(env.s3.get_object(Bucket=env.bucket, Key=keys[0])["Body"].read()).decode()
    assert len(body.splitlines()) == 300
    messages = queue_messages(env)
    assert len(messages) == 1
    note = messages[0]
    assert note["MessageAttributes"]["device_id"]["Value"] == "dev-0002"
    assert note["MessageAttributes"]["severity"]["Value"] == "critical"
    assert json.loads(note["Message"])["event"] == "alarm_raised"


def test_replaying_three_times_leaves_everything_as_one_delivery(env: Environment) -> None:
    proc = processor(env)
    for records in batches():
        proc(records, now_ms=NOW)
    once = snapshot(env)
    alerts = len(queue_messages(env))
    for _ in range(3):
        for records in batches():
            out = proc(records, now_ms=NOW)
            assert out.counts.stored == 0 and out.counts.duplicates == out.counts.received
    assert snapshot(env) == once
    assert alerts == 1 and queue_messages(env) == []


def test_malformed_records_are_quarantined_with_reasons_and_counts_reconcile(env: Environment) -> None:
    records = batch(5, 36, start_ms=T0)
    bad = [b"{oops", b'{"device_id": "bad id", "ts": 1, "metrics": {"a_c": 1}}', b'{"schema_version": 7}', b"[]"]
    mixed = list(records)
    for i in range(20):  # 10 % of the batch
        mixed.insert(i * 10, RawRecord(f"x{i:03d}", "x", bad[i % 4], T0 + 5))
    handler = ProcessorHandler(lambda: processor(env))
    response = handler(kinesis_event(mixed), None)
    assert response == {"batchItemFailures": []}
    stored = len(readings(env))
    keys = [o["Key"] for o in env.s3.list_objects_v2(Bucket=env.bucket, Prefix="quarantine/")["Contents"]]
    lines = [
        json.loads(line)
        for k in keys
        for line in gzip.decompress(env.s3.get_object(Bucket=env.bucket, Key=k)["Body"].read()).splitlines()
    ]
    assert stored == 180 and len(lines) == 20 and stored + len(lines) == len(mixed)
    assert {line["reason"] for line in lines} == {
        "malformed_json",
        "invalid_device_id",
        "unknown_schema_version",
        "unknown_shape",
    }


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data


def inject_failures(aws: dict[str, Any], rate: float, seed: int, first: int = 0) -> Counter[str]:
    """Fail a share of calls with HTTP 500 before they leave (botocore retries them).

    The ``first`` sends of every operation all fail, so a call outlasts the client's
    retries and the batch comes back for redelivery (random failures alone may all be
    retried away: the processor makes few calls, some of them at once from two threads,
    so counting sends over all operations made which call failed depend on timing).
    """
    rng = random.Random(seed)
    injected: Counter[str] = Counter()
    sends: Counter[str] = Counter()
    lock = threading.Lock()

    def fail(request: Any, **kwargs: Any) -> AWSResponse | None:
        name = str(kwargs.get("event_name", "?"))
        with lock:
            sends[name] += 1
            if sends[name] > first and rng.random() >= rate:
                return None
            injected[name] += 1
        body = b'{"__type": "InternalServerError", "message": "injected"}'
        return AWSResponse(request.url, 500, {"Content-Type": "application/x-amz-json-1.0"}, _Body(body))

    for name in ("dynamodb", "s3", "timestream-write"):
        aws[name].meta.events.register("before-send", fail)
    return injected


def test_injected_5xx_are_retried_or_reported_and_nothing_is_lost(env: Environment) -> None:
    aws = clients_for(env, attempts=2)
    injected = inject_failures(aws, rate=0.2, seed=3, first=4)
    proc = processor(env, aws)
    redeliveries = 0
    for records in batches():
        pending = records
        while pending:  # what Lambda does with a partial batch response
            try:
                out = proc(pending, now_ms=NOW)
                failed = out.failed_sequence_numbers
            except Exception:
                failed = [pending[0].sequence_number]
            if not failed:
                break
            redeliveries += 1
            assert redeliveries < 100
            pending = pending[[r.sequence_number for r in pending].index(failed[0]) :]
    assert sum(injected.values()) > 0 and redeliveries > 0
    rows = readings(env)
    assert len(rows) == 6 * 190 and len({(r.device_id, r.key) for r in rows}) == 6 * 190
    assert sum(minute_counts(env, "temperature_c").values()) == 6 * 190
    devices = table(env, env.names.devices)
    assert {int(d["readings"]["N"]) for d in devices} == {190} and sum(  # the last reading's ordinal
        int(d["readings"]["N"]) for d in devices
    ) == 6 * 190
    assert len([a for a in table(env, env.names.anomalies) if a["kind"]["S"] == "raise"]) == 1
