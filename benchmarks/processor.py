"""Processor throughput: 10,000-record Kinesis events through the real handler.

500 devices x 20 readings x 3 metrics per event, AWS replaced by the in-memory fakes
(so this is our own code's cost: decode, validate, detect, build writes), after the
devices' baselines are learned. Also the cold import time of the handler module in a
fresh interpreter.

The baseline, measured in the same run on the same events: only base64-decoding and
JSON-parsing every record (orjson), which any Python processor must do; the ratio
says how much the rest (validation, detection, rows, rollups, state) costs on top.
Both in wall time and in CPU time (the process's, every thread's): on a loaded machine the
wall figures swing with the other processes, the CPU figures and their ratio much less.

The in-memory fakes are test doubles, not production: they keep their own copies (the
devices table's records through JSON on write, copied on read; readings and rollup rows
kept as given, being immutable), and that is in the batch figure. Their share is measured
in the same run and printed (``fakes_cpu_ms_median``: the stores' calls, every one of them);
production's adapters do their own serialisation instead (DynamoDB items: packed, deflated
columns; S3 objects: gzip, the ``archive_encode_ms`` figure), which this does not measure.
Prints figures, then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import binascii
import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import orjson

from iotpm.handlers.processor import ProcessorHandler
from iotpm.service.in_memory import MemoryPipeline
from iotpm.service.processor import encode_lines
from iotpm.service.samples import batch, kinesis_event

T0 = 1_790_000_000_000


def cold_import_ms(reps: int) -> float:
    code = "import time; t=time.perf_counter(); import iotpm.handlers.processor; print((time.perf_counter()-t)*1000)"
    times = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        for _ in range(reps)
    ]
    return statistics.median(times)


def parse_floor_ms(event: dict[str, Any], clock: Any = time.perf_counter) -> float:
    """Base64 and JSON of every record, nothing else (on ``clock``: wall or CPU time)."""
    t0 = clock()
    for rec in event["Records"]:
        orjson.loads(binascii.a2b_base64(rec["kinesis"]["data"], strict_mode=True))
    return float(clock() - t0) * 1000


def archive_encode_ms(lines: Any) -> float:
    """Encoding one batch's raw archive object, as the S3 adapter does before PutObject."""
    t0 = time.perf_counter()
    encode_lines(lines)
    return (time.perf_counter() - t0) * 1000


class _Timed:
    """CPU seconds spent in some objects' methods (the fakes' calls, on the batch's thread), summed per batch."""

    def __init__(self) -> None:
        self.cpu = 0.0

    def wrap(self, obj: Any, *names: str) -> None:
        for name in names:
            setattr(obj, name, self._timed(getattr(obj, name)))

    def _timed(self, method: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            c0 = time.thread_time()  # this thread's: the archive's upload thread runs meanwhile
            try:
                return method(*args, **kwargs)
            finally:
                self.cpu += time.thread_time() - c0

        return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--per-device", type=int, default=20)
    parser.add_argument("--warm-batches", type=int, default=6)
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args()
    stores = MemoryPipeline.build()
    fakes = _Timed()
    fakes.wrap(stores.states, "get_many", "put_many")
    fakes.wrap(stores.readings, "put_many")
    fakes.wrap(stores.rollups, "apply")
    fakes.wrap(stores.anomalies, "record", "claim", "release")
    fakes.wrap(stores.alerts, "publish")
    archive, processor = stores.archive, stores.processor()
    handler = ProcessorHandler(lambda: processor)
    n = args.per_device
    now = T0 + (args.warm_batches + args.reps) * n * 1000
    start = now - 3_600_000
    events = [
        kinesis_event(batch(args.devices, n, start_ms=start, first_seq=i * n, faulty=[7], fault_from=150, seed=i))
        for i in range(args.warm_batches + args.reps)
    ]
    sink = open("/dev/null", "w")  # noqa: SIM115 - EMF lines would swamp the figures
    real_stdout, sys.stdout = sys.stdout, sink
    times, cpu, in_fakes = [], [], []
    try:
        for i, ev in enumerate(events):
            fakes.cpu = 0.0
            t0, c0 = time.perf_counter(), time.process_time()
            response = handler(ev)
            if i >= args.warm_batches:
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                in_fakes.append(fakes.cpu)
            assert response == {"batchItemFailures": []}
    finally:
        sys.stdout = real_stdout
    records = args.devices * n  # each event's records: one reading each
    med = statistics.median(times)
    encode = statistics.median(archive_encode_ms(obj.lines) for obj in list(archive.objects.values())[-args.reps :])
    floor = statistics.median(parse_floor_ms(ev) for ev in events[args.warm_batches :])
    cpu_med = statistics.median(cpu) * 1000
    cpu_floor = statistics.median(parse_floor_ms(ev, time.process_time) for ev in events[args.warm_batches :])
    result = {
        "records": records,
        "devices": args.devices,
        "detector_kernel": "numpy" if processor.fleet.native is None else "native",
        "batch_ms_median": round(med * 1000, 1),
        "records_per_s": round(records / med),
        "baseline_parse_only_ms_median": round(floor, 1),
        "ratio_to_parse_only": round(med * 1000 / floor, 1),
        "batch_cpu_ms_median": round(cpu_med, 1),
        "baseline_parse_only_cpu_ms_median": round(cpu_floor, 1),
        "cpu_ratio_to_parse_only": round(cpu_med / cpu_floor, 1),
        "fakes_cpu_ms_median": round(statistics.median(in_fakes) * 1000, 1),
        "archive_encode_ms_median": round(encode, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cold_import_ms": round(cold_import_ms(5), 1),
    }
    print(f"{records} records / {args.devices} devices: median {med * 1000:.1f} ms over {len(times)} batches")
    print(f"baseline, base64 + JSON parse only: median {floor:.1f} ms (handler: {med * 1000 / floor:.1f}x that)")
    print(f"CPU time: handler {cpu_med:.1f} ms, parse only {cpu_floor:.1f} ms ({cpu_med / cpu_floor:.1f}x)")
    print(f"  of which the in-memory fakes' calls (test doubles, not production): {result['fakes_cpu_ms_median']} ms")
    print(f"raw archive object (gzip JSON Lines, what the S3 adapter adds; not in the batch figure): {encode:.1f} ms")
    print(f"cold import of the handler module: {result['cold_import_ms']} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
