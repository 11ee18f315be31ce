"""Kinesis-shaped sample batches: healthy devices, and a fault on chosen ones.

Used by tests, benchmarks and the emulator smoke run; the fleet simulator (with
realistic signals and fault scenarios) lives in :mod:`iotpm.simulator`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

import numpy as np

from iotpm.service.processor import RawRecord

BASE = {"temperature_c": 55.0, "vibration_mm_s": 2.0, "pressure_psi": 90.0}
NOISE = {"temperature_c": 0.5, "vibration_mm_s": 0.1, "pressure_psi": 1.5}


def reading(device: str, seq: int, ts_ms: int, metrics: dict[str, float], line: str = "line-1") -> dict[str, object]:
    """A canonical (schema v1) reading message."""
    return {
        "schema_version": 1,
        "device_id": device,
        "ts": ts_ms,
        "seq": seq,
        "site": "plant-1",
        "line": line,
        "device_type": "pump",
        "metrics": metrics,
    }


def batch(
    devices: int,
    per_device: int,
    *,
    start_ms: int,
    first_seq: int = 0,
    interval_ms: int = 1000,
    faulty: Sequence[int] = (),
    fault_from: int = 0,
    seed: int = 0,
    shard: str = "shardId-000000000000",
) -> list[RawRecord]:
    """``per_device`` readings from each device, interleaved as a shard would carry them.

    Devices listed in ``faulty`` run 30 °C hot from reading ``fault_from`` on.
    """
    rng = np.random.default_rng(seed)
    records: list[RawRecord] = []
    for k in range(per_device):
        ts = start_ms + (first_seq + k) * interval_ms
        for d in range(devices):
            metrics = {m: round(BASE[m] + NOISE[m] * float(rng.normal()), 3) for m in BASE}
            if d in faulty and first_seq + k >= fault_from:
                metrics["temperature_c"] += 30.0
            body = json.dumps(reading(f"dev-{d:04d}", first_seq + k, ts, metrics)).encode()
            # Kinesis numbers a shard's records in arrival order: later readings, later numbers
            n = first_seq * devices + len(records)
            records.append(RawRecord(f"{start_ms:013d}{n:08d}", f"dev-{d:04d}", body, ts + 50, shard))
    return records


def kinesis_event(records: Sequence[RawRecord]) -> dict[str, object]:
    """A Lambda Kinesis event carrying ``records`` (what the event source mapping sends)."""
    return {
        "Records": [
            {
                "eventID": f"{r.shard_id}:{r.sequence_number}",
                "eventSource": "aws:kinesis",
                "kinesis": {
                    "sequenceNumber": r.sequence_number,
                    "partitionKey": r.partition_key,
                    "data": base64.b64encode(r.data).decode(),
                    "approximateArrivalTimestamp": r.arrival_ms / 1000,
                },
            }
            for r in records
        ]
    }
