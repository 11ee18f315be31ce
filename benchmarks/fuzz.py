"""The ingest fuzzer at scale: a fleet's stream with hostile records, through the real handler.

Batches of ``--batch`` records from :class:`iotpm.testing.fuzz.Stream` (``--junk`` of them
hostile: random bytes, truncations, scalars, nested and deep arrays, extreme and
non-finite numbers, huge integers, odd unicode in ids, wrong types, spoofed devices,
oversize records), every tenth batch in a Kinesis event with odd fields, each batch
replayed once: the invariants of :meth:`Harness.run` are checked on every batch (no
exception, no batch item failure for input, counts add up, duplicates as planted, every
good reading stored, quarantine reasons typed), and the replays must change nothing.

Prints records by outcome and quarantine reason, exceptions, violations and records/s
(the handler's own time, and a baseline: base64 + JSON parsing of the same events);
the last line is JSON. ``tests/unit/test_ingest_fuzz.py`` runs a slice in CI.

    python benchmarks/fuzz.py --records 1000000
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import random
import statistics
import sys
import time
from collections import Counter
from typing import Any

import orjson

from iotpm.service.samples import kinesis_event
from iotpm.testing.fuzz import Harness, Stream, odd_event


def baseline_s(event: dict[str, Any]) -> float:
    """What any processor must do with the event: base64-decode and parse each record."""
    started = time.perf_counter()
    for rec in event["Records"]:
        with contextlib.suppress(Exception):
            orjson.loads(base64.b64decode(rec["kinesis"]["data"]))
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--junk", type=float, default=0.3, help="share of hostile records")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument(
        "--fleet-batches",
        type=int,
        default=50,
        help="batches per fresh set of in-memory stores (their reads scan every row: bounded, the run stays linear)",
    )
    args = parser.parse_args()

    harness, stream, rng = Harness(), Stream(args.seed, args.devices), random.Random(args.seed)
    kinds: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    violations: list[str] = []
    exceptions = batches = sent = 0
    handler_s, base_s, rates = 0.0, 0.0, []
    while sent < args.records:
        if batches and batches % args.fleet_batches == 0:  # fresh stores: what was sent before is not repeated
            violations += harness.consistency()
            harness, stream.sent = Harness(), []
        corpus = stream.batch(min(args.batch, args.records - sent), args.junk)
        odd = batches % 10 == 9
        event = odd_event(corpus.records, rng) if odd else kinesis_event(corpus.records)
        with contextlib.redirect_stdout(io.StringIO()):  # the handler's EMF lines
            out = harness.run(corpus, event, exact=not odd)
        took = out.seconds
        handler_s += took
        base_s += baseline_s(event)
        rates.append(len(corpus.records) / took)
        exceptions += out.exception is not None
        violations += [f"batch {batches}: {v}" for v in out.violations]
        if out.counts is not None:
            for name in ("stored", "duplicates", "quarantined", "failed"):
                outcomes[name] += getattr(out.counts, name)
            reasons.update(out.counts.quarantine_reasons)
        if batches % 5 == 0:  # a replay (a Lambda retry, a stream replayed) must change nothing
            before = harness.totals()
            with contextlib.redirect_stdout(io.StringIO()):
                again = harness.run(corpus, event, exact=False)
            if harness.totals() != before or (again.counts is not None and again.counts.stored):
                violations.append(f"batch {batches}: its replay changed what is stored")
            exceptions += again.exception is not None
        if odd:  # its mangled records may never have arrived: not a source of planted repeats
            stream.sent = []
        kinds.update(corpus.kinds)
        sent += len(corpus.records)
        batches += 1
    violations += harness.consistency()

    print(f"records {sent:,} in {batches:,} batches of {args.batch:,}, {args.junk:.0%} hostile, seed {args.seed}")
    print("record kinds:  " + ", ".join(f"{k} {n:,}" for k, n in kinds.most_common()))
    print("readings:      " + ", ".join(f"{k} {n:,}" for k, n in outcomes.items()))
    print("quarantined:   " + ", ".join(f"{k} {n:,}" for k, n in reasons.most_common()))
    print(f"exceptions {exceptions}, invariant violations {len(violations)}")
    for v in violations[:20]:
        print("  " + v)
    print(
        f"handler {sent / handler_s:,.0f} records/s over the run (median batch {statistics.median(rates):,.0f}/s); "
        f"baseline base64+JSON {sent / base_s:,.0f} records/s"
    )
    summary = {
        "records": sent,
        "batches": batches,
        "exceptions": exceptions,
        "violations": len(violations),
        "readings": dict(outcomes),
        "quarantine_reasons": dict(reasons),
        "records_per_s": round(sent / handler_s),
        "median_batch_records_per_s": round(statistics.median(rates)),
        "baseline_records_per_s": round(sent / base_s),
    }
    print(json.dumps(summary))
    return 1 if exceptions or violations else 0


if __name__ == "__main__":
    sys.exit(main())
