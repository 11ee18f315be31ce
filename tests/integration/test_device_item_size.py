"""The device item's size as DynamoDB bills it, on DynamoDB Local (AWS's own engine).

``iotpm.adapters.dynamodb.item_size`` is what ``benchmarks/cost.py`` and
``benchmarks/storage_cost.py`` count write units with; here DynamoDB Local says what a put
of the same items consumes. The device is the simulator's plant device with every channel it
sends (temperature, vibration, pressure) and a full state: the detector learned (past its
warm-up), an alarm open, the replay window full, Kinesis's own 56-digit sequence numbers, a
log key, a trend for every metric, a re-baseline recorded.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
import pytest

from iotpm.adapters.dynamodb import FLEET_KEY, TableNames, device_item, item_size, table_specs, write_units
from iotpm.service import RawRecord
from iotpm.service.in_memory import MemoryPipeline
from iotpm.service.ports import DeviceRecord, log_key
from iotpm.testing.clock import recent

from .aws import REGION

NAMES = TableNames("readings", "devices", "anomalies", "rollups")
SHARD = "shardId-000000000000"
T0 = recent(1_790_000_000_000)  # a day or two ago: DynamoDB Local sweeps expired items


@pytest.fixture(scope="module")
def client(dynamodb_local: str) -> Iterator[Any]:
    ddb = boto3.client("dynamodb", endpoint_url=dynamodb_local, region_name=REGION,
                       aws_access_key_id="local", aws_secret_access_key="local")  # fmt: skip
    spec = next(s for s in table_specs(NAMES) if s["TableName"] == NAMES.devices)
    ddb.create_table(**spec)
    yield ddb
    ddb.delete_table(TableName=NAMES.devices)


def full_record() -> DeviceRecord:
    """A plant device after 40 minutes at one reading every 5 s, overheating in its last minute."""
    rng = random.Random(30)
    seq = 49_590_338_271_490_256_608_559_692_538_361_571_095_921_575_989_136_588_898
    pipeline = MemoryPipeline.build()
    processor = pipeline.processor()
    for k in range(480):
        ts = T0 + 5000 * k
        hot = k >= 468
        metrics = {
            "temperature_c": round((92.0 if hot else 55.0) + rng.gauss(0, 0.5), 3),
            "vibration_mm_s": round(2.0 + rng.gauss(0, 0.1), 4),
            "pressure_psi": round(90.0 + rng.gauss(0, 1.5), 2),
        }
        body = {"schema_version": 1, "device_id": "pump-000123", "ts": ts, "seq": k + 1, "site": "plant-north",
                "line": "line-07", "device_type": "pump", "metrics": metrics}  # fmt: skip
        seq += rng.randrange(10**20, 10**21)  # Kinesis's numbers grow by irregular steps
        record = RawRecord(str(seq), "pump-000123", json.dumps(body).encode(), ts + 300, SHARD)
        out = processor([record], now_ms=ts + 400)
        assert not out.errors
    stored = pipeline.states.get_many(["pump-000123"])["pump-000123"]
    assert stored.detector is not None and stored.detector["ready"] and stored.alarm_open
    assert len(stored.trend) == 3 and stored.ingest.get("pos") and stored.ingest.get("recent")
    # what write-behind adds: the log key the device was compacted up to; a re-baseline an operator made
    return dataclasses.replace(stored, flushed={SHARD: log_key(str(seq - 10**21), None)}, rebaselined_ms=T0 + 60_000)


def put(client: Any, item: Mapping[str, Any]) -> float:
    """The write units DynamoDB Local says the put consumed on the table itself (indexes apart)."""
    got = client.put_item(TableName=NAMES.devices, Item=item, ReturnConsumedCapacity="INDEXES")
    return float(got["ConsumedCapacity"]["Table"]["CapacityUnits"])


def test_item_size_counts_what_dynamodb_bills(client: Any) -> None:
    """The size rule the cost model uses agrees with DynamoDB's own on items either side of 1 KB."""
    full = device_item(full_record(), 12)
    small = {"device_id": {"S": "pump-1"}, "fleet": {"S": FLEET_KEY}, "site_key": {"S": "a#b#pump-1"},
             "line": {"S": "b"}, "n": {"N": "12.5"}}  # fmt: skip
    padded = dict(small, device_id={"S": "pump-2"}, pad={"B": b"x" * (1024 - item_size(small) - 3)})
    over = dict(padded, device_id={"S": "pump-3"}, pad={"B": b"x" * (1025 - item_size(small) - 3)})
    assert (item_size(padded), item_size(over)) == (1024, 1025)
    for item in (small, padded, over, full):
        assert put(client, item) == write_units(item_size(item)), item_size(item)


@pytest.mark.xfail(
    strict=True,
    reason="the device item is ~1.3-1.45 KB with a full state: the detector's state (~650 B deflated) and 32 replay "
    "identities (256 B) alone leave under 120 B for the rest; packing every other attribute gets 1,070-1,170 B "
    "(docs/cost.md). Needs a smaller detector state or fewer identities (asked of their owners).",
)
def test_a_full_device_item_is_one_write_unit(client: Any) -> None:
    item = device_item(full_record(), 12)
    assert put(client, item) == 1, f"{item_size(item)} B"
