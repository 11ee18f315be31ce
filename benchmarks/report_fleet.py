"""The fleet report for a 1,000-device fleet: build time in-process (the report Lambda) and over HTTP.

Fills the in-memory stores through the real processor (``--devices`` devices, 60
readings each, 2% of them running hot), writes the archive objects to a folder, then
builds the report ``--repeat`` times: over the API handler in-process with DuckDB for
data quality (what the report Lambda does, minus DynamoDB's and Athena's own
latency), and over the local API server with HTTP (what ``iotpm report`` does on the
twin). Baseline in the same run: only paging ``/devices`` (the one call every report
makes). Prints median figures, then one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from iotpm.analytics.duck import ArchiveDB
from iotpm.analytics.report import ReportOptions, _pages, build_report, handler_get, http_get
from iotpm.api.app import build_app
from iotpm.api.memory import MemoryQueries
from iotpm.api.server import ApiServer
from iotpm.service import Processor
from iotpm.service import memory as m
from iotpm.service.processor import encode_lines
from iotpm.service.samples import batch

T0 = 1_790_000_000_000


def median(fn: Callable[[], object], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    st, rd, an, ro, ar = m.MemoryStates(), m.MemoryReadings(), m.MemoryAnomalies(), m.MemoryRollups(), m.MemoryArchive()
    p = Processor(states=st, readings=rd, anomalies=an, rollups=ro, archive=ar, alerts=m.MemoryAlerts())
    faulty = list(range(0, args.devices, 50))
    now = T0 + 60 * 1000 + 60_000
    for i in range(6):
        p(batch(args.devices, 10, start_ms=T0, first_seq=i * 10, faulty=faulty, fault_from=40, seed=i), now_ms=now)
    app = build_app(MemoryQueries(st, rd, an, ro), now_ms=lambda: now)
    handler = lambda e, c: app.resolve(dict(e), c)  # noqa: E731
    until = datetime.fromtimestamp(now / 1000, tz=UTC)
    opts = ReportOptions(until=until, hours=24)
    with tempfile.TemporaryDirectory(prefix="iotpm-bench-") as tmp:
        for key, obj in ar.objects.items():
            (Path(tmp) / key).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / key).write_bytes(encode_lines(obj.lines))
        db = ArchiveDB(Path(tmp))
        local = handler_get(handler)
        report = build_report(local, db.named, opts)
        named = report.named_devices()
        base = median(lambda: _pages(local, "/devices", {"limit": "500"}), args.repeat)
        inproc = median(lambda: build_report(local, db.named, opts), args.repeat)
        server = ApiServer(handler, "bench-key").start()
        try:
            over_http = http_get(server.url, "bench-key")
            http_base = median(lambda: _pages(over_http, "/devices", {"limit": "500"}), args.repeat)
            http = median(lambda: build_report(over_http, db.named, opts), args.repeat)
        finally:
            server.stop()
    print(f"{args.devices} devices, {len(faulty)} running hot; the report names {len(named)} devices")
    print(f"baseline (page /devices only): in-process {base:.2f} s, HTTP {http_base:.2f} s")
    print(f"report in-process (the report Lambda's path): {inproc:.2f} s (median of {args.repeat})")
    print(f"report over HTTP (iotpm report on the twin): {http:.2f} s (median of {args.repeat})")
    print(json.dumps({"devices": args.devices, "faulty": len(faulty), "named": len(named),
                      "baseline_inprocess_s": round(base, 3), "report_inprocess_s": round(inproc, 3),
                      "baseline_http_s": round(http_base, 3), "report_http_s": round(http, 3)}))  # fmt: skip


if __name__ == "__main__":
    main()
