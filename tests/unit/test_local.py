"""The local twin's parts that need no broker or emulator: the rule's enrichment, the
event source poller's retry semantics, and the simulator's faults."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from iotpm.local.bridge import RULE_SQL, THING_SEGMENT, enrich
from iotpm.local.poller import Poller
from iotpm.simulator.fleet import Fault, Fleet, ground_truth


def test_the_bridge_enriches_as_the_terraform_topic_rule_does() -> None:
    """The bridge stands in for the rule: its SQL and the topic level of the thing name
    must be the ones Terraform deploys (a change to one without the other fails here)."""
    main = (Path(__file__).resolve().parents[2] / "terraform" / "modules" / "iot" / "main.tf").read_text()
    sql = re.search(r'^\s*sql\s*=\s*"([^"]+)"', main, re.M)
    key = re.search(r'^\s*partition_key\s*=\s*"\$\$\{topic\((\d+)\)\}"', main, re.M)
    assert sql is not None and key is not None
    assert sql.group(1).replace("${var.topic_prefix}", "{prefix}") == RULE_SQL
    assert int(key.group(1)) == THING_SEGMENT and f"topic({THING_SEGMENT}) AS thing_name" in RULE_SQL


def test_an_array_is_keyed_by_the_publishing_thing_and_passed_unchanged() -> None:
    body = b'[{"device_id": "victim", "metrics": {}}]'
    assert enrich("iotpm/attacker/telemetry", body) == ("attacker", body)


def test_enrich_adds_the_publishing_thing_and_keys_by_it() -> None:
    key, data = enrich("iotpm/pump-7/telemetry", b'{"device_id": "pump-7", "metrics": {}}')
    assert key == "pump-7"
    assert json.loads(data) == {"device_id": "pump-7", "metrics": {}, "thing_name": "pump-7"}
    assert enrich("iotpm/pump-7/telemetry", b"not json") == ("pump-7", b"not json")  # the processor quarantines it


class FakeKinesis:
    """One shard holding ``n`` records; iterators are positions."""

    def __init__(self, n: int) -> None:
        self.records = [
            {
                "SequenceNumber": f"{i:05d}",
                "PartitionKey": f"d{i % 3}",
                "Data": b"{}",
                "ApproximateArrivalTimestamp": None,
            }
            for i in range(n)
        ]

    def describe_stream(self, StreamName: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        return {"StreamDescription": {"StreamARN": "arn:aws:kinesis:::stream/s", "Shards": [{"ShardId": "shard-0"}]}}

    def get_shard_iterator(self, **kw: Any) -> dict[str, str]:
        if kw["ShardIteratorType"] == "TRIM_HORIZON":
            return {"ShardIterator": "0"}
        return {"ShardIterator": str(int(kw["StartingSequenceNumber"]) + 1)}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:  # noqa: N803
        i = int(ShardIterator)
        return {"Records": self.records[i : i + Limit], "NextShardIterator": str(min(i + Limit, len(self.records)))}


class FakeSqs:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def send_message(self, QueueUrl: str, MessageBody: str) -> None:  # noqa: N803
        self.bodies.append(json.loads(MessageBody))


def run_poller(kinesis: FakeKinesis, handler: Any, sqs: FakeSqs | None = None, **kw: Any) -> Poller:
    poller = Poller(kinesis, "s", handler, idle_s=0.01, sqs=sqs, on_failure_queue_url="q" if sqs else "", **kw).start()
    deadline = time.monotonic() + 10
    shard = poller.shards["shard-0"]
    while time.monotonic() < deadline and shard.records + shard.sent_to_dlq < len(kinesis.records):
        time.sleep(0.01)
    poller.stop()
    return poller


def test_poller_retries_from_the_reported_failure_and_keeps_order() -> None:
    seen: list[str] = []
    failed_once: set[str] = set()

    def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        for r in event["Records"]:
            seq = r["kinesis"]["sequenceNumber"]
            if seq == "00005" and seq not in failed_once:  # one transient failure
                failed_once.add(seq)
                return {"batchItemFailures": [{"itemIdentifier": seq}]}
            seen.append(seq)
            assert base64.b64decode(r["kinesis"]["data"]) == b"{}" and r["eventID"] == f"shard-0:{seq}"
        return {"batchItemFailures": []}

    poller = run_poller(FakeKinesis(12), handler, batch_size=4)
    assert seen == [f"{i:05d}" for i in range(12)]  # every record once, in order, 5 after its retry
    assert poller.shards["shard-0"].retries == 1 and poller.shards["shard-0"].records == 12


def test_poller_gives_up_after_max_retries_and_says_where() -> None:
    sqs = FakeSqs()

    def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        first = event["Records"][0]["kinesis"]["sequenceNumber"]
        return {"batchItemFailures": [{"itemIdentifier": first}] if first == "00004" else []}

    poller = run_poller(FakeKinesis(8), handler, sqs, batch_size=4, max_retries=2)
    info = sqs.bodies[0]["KinesisBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == ("00004", "00007", 4)
    assert poller.shards["shard-0"].sent_to_dlq == 4 and poller.shards["shard-0"].retries == 3


def gather_time(arrived_s_ago: float, window_s: float) -> float:
    """Seconds the poller gathers one shard's waiting records (fewer than a batch) before invoking."""
    kinesis = FakeKinesis(5)
    arrival = datetime.fromtimestamp(time.time() - arrived_s_ago, tz=UTC)
    for r in kinesis.records:
        r["ApproximateArrivalTimestamp"] = arrival
    poller = Poller(kinesis, "s", lambda e, c: {}, batch_size=100, batching_window_s=window_s)
    started = time.monotonic()
    records, _, _ = poller._gather("0")
    assert len(records) == 5
    return time.monotonic() - started


def test_the_batching_window_counts_from_the_first_records_arrival() -> None:
    # records that waited out the window in the stream (they came in while the function
    # ran) are invoked at once; fresh ones are held the window, as the mapping does
    assert gather_time(arrived_s_ago=10.0, window_s=3.0) < 1.5
    assert gather_time(arrived_s_ago=0.0, window_s=1.0) >= 0.9


def test_each_shard_gets_its_own_handler_instance_when_the_poller_has_a_factory() -> None:
    made: list[Any] = []
    seen: dict[int, set[str]] = {}

    def instance() -> Any:
        index = len(made)

        def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
            seen.setdefault(index, set()).update(r["eventID"].split(":")[0] for r in event["Records"])
            return {"batchItemFailures": []}

        made.append(handler)
        return handler

    kinesis = TwoShards(6)
    poller = Poller(kinesis, "s", lambda e, c: {}, instances=instance, idle_s=0.01, batching_window_s=0).start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sum(s.records for s in poller.shards.values()) < 12:
        time.sleep(0.01)
    poller.stop()
    assert len(made) == 2 and sorted(map(sorted, seen.values())) == [["shard-0"], ["shard-1"]]


class TwoShards(FakeKinesis):
    """Two shards of ``n`` records each; an iterator is ``shard:position``."""

    def describe_stream(self, StreamName: str) -> dict[str, Any]:  # noqa: N803
        shards = [{"ShardId": "shard-0"}, {"ShardId": "shard-1"}]
        return {"StreamDescription": {"StreamARN": "arn:aws:kinesis:::stream/s", "Shards": shards}}

    def get_shard_iterator(self, **kw: Any) -> dict[str, str]:
        start = 0 if kw["ShardIteratorType"] == "TRIM_HORIZON" else int(kw["StartingSequenceNumber"]) + 1
        return {"ShardIterator": f"{kw['ShardId']}:{start}"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:  # noqa: N803
        shard, _, at = ShardIterator.rpartition(":")
        i = int(at)
        got = self.records[i : i + Limit]
        return {"Records": got, "NextShardIterator": f"{shard}:{min(i + Limit, len(self.records))}"}


def series(fleet: Fleet, device: str, metric: str, seconds: int, start_ms: int = 1_790_000_000_000) -> np.ndarray:
    m = next(x for x in fleet.machines if x.device_id == device)
    out = []
    for t in range(seconds):
        r = m.reading(float(t), start_ms + t * 1000)
        out.append(np.nan if r is None else r["metrics"][metric])
    return np.array(out)


def test_faults_change_their_metric_from_their_start_only() -> None:
    fleet = Fleet(
        6, seed=1, faults=[Fault("pump-0003", "overheating", 60.0), Fault("motor-0004", "pressure_leak", 60.0)]
    )
    hot, healthy = series(fleet, "pump-0003", "temperature_c", 120), series(fleet, "pump-0000", "temperature_c", 120)
    assert abs(hot[:60].mean() - healthy[:60].mean()) < 10 and hot[100:].min() > 80  # past the 80 C limit
    leak = series(fleet, "motor-0004", "pressure_psi", 120)
    assert leak[:60].min() > 50 and leak[100:].max() < 30  # below the 30 psi limit


def test_stuck_sensor_and_dropout() -> None:
    fleet = Fleet(4, seed=2, faults=[Fault("pump-0000", "stuck_sensor", 10.0), Fault("motor-0001", "dropout", 10.0)])
    stuck = series(fleet, "pump-0000", "temperature_c", 30)
    assert np.unique(stuck[10:]).size == 1 and np.unique(stuck[:10]).size == 10
    assert np.isnan(series(fleet, "motor-0001", "temperature_c", 30)[10:]).all()


def test_scenario_spares_a_healthy_device_and_the_truth_has_absolute_times() -> None:
    fleet = Fleet(20, seed=3)
    faults = fleet.scenario(["overheating", "pressure_leak"], 30.0)
    assert "pump-0000" not in {f.device_id for f in faults} and len({f.device_id for f in faults}) == 2
    truth = ground_truth(faults, 1_000_000)
    assert [t["start_ms"] for t in truth] == [1_030_000, 1_030_000]
    assert [t["metric"] for t in truth] == ["temperature_c", "pressure_psi"]
