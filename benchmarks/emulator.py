"""What the AWS emulator costs per reading: the ceiling it puts on the local twin.

Starts the project's emulator on a free port (or uses ``AWS_ENDPOINT_URL`` when it
answers), then times, with real boto3 clients over HTTP, the calls every reading
passes through in the twin: PutRecords (the rule bridge, 500 a call), GetRecords
(the poller, one read of everything) and BatchWriteItem of reading items (the
processor, 25 a call, the items the DynamoDB adapter builds). The baseline, measured
in the same run, is the emulator's cheapest round trip (ListStreams): what any call
costs before the service does anything.

Prints figures, then one JSON object on the last line, with the emulator time per
reading and the readings/s one emulator process could pass at most.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import boto3

from iotpm.adapters.dynamodb import TableNames, chunk_item, create_tables
from iotpm.emulator import control
from iotpm.service.ports import ReadingRow
from iotpm.service.samples import reading

SHARD = "shardId-000000000000"


def median_ms(fn: Callable[[int], Any], reps: int) -> float:
    times = []
    for k in range(reps):
        t0 = time.perf_counter()
        fn(k)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def measure(url: str, reps: int) -> dict[str, float]:
    kw: dict[str, Any] = {"endpoint_url": url, "region_name": "us-east-1"}
    kinesis, ddb = boto3.client("kinesis", **kw), boto3.client("dynamodb", **kw)
    stream = f"bench-{time.time_ns()}"
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    names = TableNames(f"{stream}-r", f"{stream}-d", f"{stream}-a", f"{stream}-u")
    create_tables(ddb, names, ttl=False)
    metrics = {"temperature_c": 55.1, "vibration_mm_s": 2.0, "pressure_psi": 90.1}
    body = json.dumps({**reading("dev-0001", 1, 1_790_000_000_000, metrics), "thing_name": "dev-0001"}).encode()
    round_trip = median_ms(lambda _: kinesis.list_streams(), reps * 5)
    put = median_ms(
        lambda _: kinesis.put_records(
            StreamName=stream, Records=[{"Data": body, "PartitionKey": f"dev-{j:04d}"} for j in range(500)]
        ),
        reps,
    )
    iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=SHARD, ShardIteratorType="TRIM_HORIZON")
    t0 = time.perf_counter()
    got = kinesis.get_records(ShardIterator=iterator["ShardIterator"], Limit=10_000)
    get_ms, got_n = (time.perf_counter() - t0) * 1000, len(got["Records"])

    def write(k: int) -> None:
        rows = [
            ReadingRow(
                f"dev-{j:04d}",
                1_790_000_000_000 + k,
                f"{1_790_000_000_000 + k:013d}#{k}",
                k,
                "plant-1",
                "line-1",
                "pump",
                metrics,
                0.1234,
                False,
                1_800_000_000,
            )
            for j in range(25)
        ]
        items = [chunk_item((r.device_id, r.ts_ms - r.ts_ms % 3_600_000, k), [r]) for r in rows]  # a chunk each
        ddb.batch_write_item(RequestItems={names.readings: [{"PutRequest": {"Item": it}} for it in items]})

    batch_write = median_ms(write, reps)
    per_reading = put / 500 + get_ms / got_n + batch_write / 25
    return {
        "round_trip_ms": round(round_trip, 2),
        "put_records_ms_per_record": round(put / 500, 3),
        "get_records_ms_per_record": round(get_ms / got_n, 3),
        "batch_write_ms_per_item": round(batch_write / 25, 3),
        "emulator_ms_per_reading": round(per_reading, 3),
        "max_readings_per_s": round(1000 / per_reading),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    for key, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}.items():
        os.environ.setdefault(key, value)
    given = os.environ.get("AWS_ENDPOINT_URL")
    started = None
    if given and control.answering(given):
        url = given
    else:
        started = control.free_port()
        url = control.start(started).url
    try:
        result = measure(url, args.reps)
    finally:
        if started is not None:
            control.stop(started)
    print(f"emulator at {url}: a bare round trip (ListStreams) {result['round_trip_ms']} ms")
    print(
        f"per reading: PutRecords {result['put_records_ms_per_record']} ms + GetRecords "
        f"{result['get_records_ms_per_record']} ms + BatchWriteItem {result['batch_write_ms_per_item']} ms "
        f"= {result['emulator_ms_per_reading']} ms -> at most {result['max_readings_per_s']} readings/s "
        "from one emulator process, before device state, rollups, archive and API reads"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
