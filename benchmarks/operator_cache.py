"""What the operator's controls cost the processor per batch: the same batches with and without
its cache (service/config_cache.py), in the same run, over the in-memory stores.

200 registered devices, 5 readings each a batch (1,000 readings), a limits document with a
line override. The cache runs with a TTL of 0, its worst case: every batch reads every
device's registration and alarm controls and the two configuration documents again (in
DynamoDB that is two BatchGetItem per 100 devices and one BatchGetItem for the documents; a
deployment reads them once per TTL, 30 s). What is measured is the processor's own work
around them: building the controls, the identity and shelve checks, the configuration key.
Prints the median per batch of both, after 5 warm-up batches, then one JSON line.
Figures, not pass/fail.

    .venv/bin/python benchmarks/operator_cache.py [--batches 40]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from iotpm.operator.memory import MemoryDocuments, MemoryRegistry
from iotpm.operator.ports import LIMITS, Registration
from iotpm.service import Processor
from iotpm.service import memory as m
from iotpm.service.config_cache import OperatorCache
from iotpm.service.samples import batch

T0 = 1_790_000_000_000
DEVICES, PER = 200, 5


def processor(with_cache: bool) -> Processor:
    """A processor over fresh in-memory stores, with the operator cache or without."""
    registry, documents = MemoryRegistry(), MemoryDocuments()
    for d in range(DEVICES):
        registry.put(Registration(f"dev-{d:04d}", "plant-1", "line-1", "pump"), None)
    documents.put(LIMITS, {"line": {"line-1": {"temperature": {"high": 90.0}}}}, None, "bench", T0)
    cache = OperatorCache(registry, documents, ttl_s=0) if with_cache else None
    return Processor(states=m.MemoryStates(), readings=m.MemoryReadings(), anomalies=m.MemoryAnomalies(),
                     rollups=m.MemoryRollups(), archive=m.MemoryArchive(), alerts=m.MemoryAlerts(),
                     operator=cache)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40)
    args = parser.parse_args()
    batches = [batch(DEVICES, PER, start_ms=T0, first_seq=i * PER, seed=i) for i in range(args.batches)]
    runs = {False: processor(False), True: processor(True)}
    times: dict[bool, list[float]] = {False: [], True: []}
    for i, records in enumerate(batches):
        for cached, p in runs.items():  # interleaved: both see the same machine load
            t = time.perf_counter()
            out = p(records, now_ms=T0 + (i + 1) * PER * 1000 + 100)
            times[cached].append(time.perf_counter() - t)
            assert not out.errors, out.errors
    base, cached = (statistics.median(times[k][5:]) * 1000 for k in (False, True))
    n = len(times[False][5:])
    print(f"batch of {DEVICES * PER:,} readings ({DEVICES} devices), median of {n}:")
    print(f"  without the operator cache (baseline): {base:.1f} ms")
    print(
        f"  with it, TTL 0 (every batch re-read):  {cached:.1f} ms ({cached - base:+.1f} ms, {cached / base - 1:+.1%})"
    )
    print(json.dumps({"readings": DEVICES * PER, "devices": DEVICES, "batches": n,
                      "baseline_ms": round(base, 2), "cached_ms": round(cached, 2)}))  # fmt: skip


if __name__ == "__main__":
    main()
