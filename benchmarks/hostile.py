"""Hostile devices: what one device's records cost the processor, and whether its neighbours are stored.

Three cases from the security review (issue 27), each one Lambda batch through the real
handler over the in-memory stores, the batch log behind a DynamoDB stand-in that refuses
an item over 400 KB as DynamoDB does (``ValidationException``) so the adapter's own
item-building is what is measured:

(a) foreign ids: two ~127 KB array messages (under IoT Core's 128 KB) of the smallest
    readings (~1,270 each), whose elements name other devices than the thing that published
    them; (f) the same with 1,000 elements a message (the readings cap), so each element
    is judged and quarantined on its own;
(b) new names: 10 messages of 40 readings x 32 metric names never seen before (one device);
(c) a burst: 22 ~127 KB array messages of one device (16 raw doubles a reading), beside
    the innocent device.

Every case's batch also carries 3 readings of an innocent device. Each case is measured
beside its baseline, a batch of the same records' size of normal readings (each array
published by the device it names, three metrics, under the readings cap), in the same
run. Per case: peak RSS growth over the batch (Linux VmHWM, reset before it), the batch's
wall time, quarantine bytes (gzip JSON Lines, as the archive writes them) per input byte,
the hostile device's channel count, and whether the innocent device's readings are
stored. Each measurement runs in a fresh interpreter, capped in memory (``--limit-gb``)
and time; figures are medians over ``--reps`` runs. Prints a table, then one JSON object
on the last line. Figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from iotpm.adapters.dynamodb import DynamoLog
from iotpm.detection import DeviceState
from iotpm.service.ports import ArchiveObject
from iotpm.service.processor import RawRecord, encode_lines
from iotpm.service.samples import kinesis_event
from iotpm.testing.fuzz import Harness

SHARD = "shardId-000000000001"
IOT_MAX = 127 * 1024  # a message a little under IoT Core's 128 KB
ITEM_MAX = 400 * 1024  # DynamoDB's item size limit
INNOCENT = "innocent-1"


# -- a DynamoDB table for the batch log that holds DynamoDB's item limit -------------------------


def item_bytes(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it (names plus values; numbers about half their digits)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        ((kind, v),) = value.items()
        size += len(v) if kind == "B" else len(v.encode()) if kind == "S" else len(str(v)) // 2 + 1
    return size


class SizedTable:
    """``batch_write_item`` and ``query`` for the log partition; an item over 400 KB fails its request."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.largest = 0

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803 - boto3's names
        ((_, requests),) = RequestItems.items()
        for r in requests:
            size = item_bytes(r["PutRequest"]["Item"])
            self.largest = max(self.largest, size)
            if size > ITEM_MAX:
                error = {"Code": "ValidationException", "Message": "Item size has exceeded the maximum allowed size"}
                raise ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}, "BatchWriteItem")
        for r in requests:
            item = r["PutRequest"]["Item"]
            self.items[(item["device_id"]["S"], item["sk"]["S"])] = item
        return {}

    def query(self, **kw: Any) -> dict[str, Any]:
        values = kw["ExpressionAttributeValues"]
        part, low = values[":d"]["S"], values[":k"]["S"]
        keys = sorted((sk for (p, sk) in self.items if p == part and sk > low), reverse=not kw["ScanIndexForward"])
        start = kw.get("ExclusiveStartKey")
        if start is not None:
            keys = keys[keys.index(start["sk"]["S"]) + 1 :]
        limit = kw.get("Limit", len(keys))
        page = [self.items[(part, sk)] for sk in keys[:limit]]
        more = len(keys) > limit
        return {"Items": page, **({"LastEvaluatedKey": {"device_id": page[-1]["device_id"], "sk": page[-1]["sk"]}}
                                  if more and page else {})}  # fmt: skip


# -- the cases ----------------------------------------------------------------------------------


def reading(device: str, ts: int, seq: int, metrics: dict[str, float], *, full: bool = True) -> dict[str, Any]:
    if not full:
        return {"device_id": device, "ts": ts, "seq": seq, "metrics": metrics}
    return {"schema_version": 1, "device_id": device, "ts": ts, "seq": seq, "site": "plant-1", "line": "line-1",
            "device_type": "pump", "metrics": metrics}  # fmt: skip


def normal(rng: random.Random) -> dict[str, float]:
    """Three metrics as a sensor's raw doubles (17 significant digits: what compresses least)."""
    return {
        "temperature_c": 55 + rng.gauss(0, 1),
        "vibration_mm_s": 2 + rng.gauss(0, 0.1),
        "pressure_psi": 90 + rng.gauss(0, 1),
    }


def small(rng: random.Random) -> dict[str, float]:
    """One metric to 4 decimals: the smallest reading, so the most of them in a message."""
    return {"temperature_c": round(55 + rng.gauss(0, 1), 4)}


def wide(rng: random.Random) -> dict[str, float]:
    """Sixteen channels of raw doubles (a multi-sensor machine)."""
    return {f"bearing{j}_temperature_c": 55 + rng.gauss(0, 1) for j in range(16)}


def array_message(
    name: Callable[[int], str], start: int, now: int, rng: random.Random, metrics: Callable[[random.Random], Any]
) -> tuple[bytes, int]:
    """An array of readings filling ~127 KB; element ``i`` names device ``name(i)``."""
    items: list[dict[str, Any]] = []
    size, i = 2, 0
    while True:
        item = reading(name(start + i), now - 3_600_000 + (start + i) * 100, start + i + 1, metrics(rng),
                       full=metrics is not small)  # fmt: skip
        grown = size + len(json.dumps(item)) + 2
        if grown > IOT_MAX:
            return json.dumps(items).encode(), i
        items.append(item)
        size, i = grown, i + 1


def case(kind: str, baseline: bool, now: int) -> list[tuple[str, bytes]]:
    """(partition key, data) of each record of the case's batch (innocent readings last)."""
    rng = random.Random(7)
    out: list[tuple[str, bytes]] = []
    if kind == "a":  # two arrays of the smallest readings from one thing; their elements name other devices
        at = 0
        for m in range(2):
            thing = f"normal-{m}" if baseline else "hostile-1"
            name = (lambda i, t=thing: t) if baseline else (lambda i: f"victim-{i % 500:04d}")
            data, n = array_message(name, at, now, rng, normal if baseline else small)
            out.append((thing, data))
            at += n
    elif kind == "f":  # the same, 1,000 elements a message (at the readings cap): each one refused on its own
        for m in range(2):
            thing = f"normal-{m}" if baseline else "hostile-1"
            items = [
                reading(thing if baseline else f"victim-{i % 500:04d}", now - 3_600_000 + (m * 1000 + i) * 100,
                        m * 1000 + i + 1, small(rng), full=False)
                for i in range(1000)
            ]  # fmt: skip
            out.append((thing, json.dumps(items).encode()))
    elif kind == "b":  # 10 messages of 40 readings, each reading 32 names never seen before
        for m in range(10):
            thing = f"normal-{m}" if baseline else "hostile-1"
            items = []
            for r in range(40):
                k = (m * 40 + r) * 32
                metrics = normal(rng) if baseline else {f"m{k + j}_c": round(rng.gauss(50, 1), 4) for j in range(32)}
                items.append(reading(thing, now - 60_000 + (m * 40 + r) * 100, m * 40 + r + 1, metrics))
            out.append((thing, json.dumps(items).encode()))
    elif kind == "c":  # 22 large arrays of one device (baseline: of 22 devices)
        at = 0
        for m in range(22):
            thing = f"normal-{m}" if baseline else "hostile-1"
            data, n = array_message(lambda i, t=thing: t, at, now, rng, wide)
            out.append((thing, data))
            at += n
    for s in range(3):
        out.append((INNOCENT, json.dumps(reading(INNOCENT, now - 5000 + s * 1000, s + 1, normal(rng))).encode()))
    return out


# -- one measurement, in its own interpreter --------------------------------------------------------


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(field)


def measure(kind: str, baseline: bool, mode: str) -> dict[str, Any]:
    now = int(time.time() * 1000)
    pairs = case(kind, baseline, now)
    records = [RawRecord(str(10**20 + i), key, data, now - 1000, SHARD) for i, (key, data) in enumerate(pairs)]
    table = SizedTable()
    log = DynamoLog(table, "readings") if mode == "behind" else None
    harness = Harness(write_behind=mode == "behind", batch_log=log)
    event = kinesis_event(records)
    sizes: dict[str, int] = {}
    keep = harness.archive.put

    def put(obj: ArchiveObject) -> None:  # encoded as the S3 archive does before its PUT (in the batch's cost)
        sizes[obj.key] = len(encode_lines(obj.lines))
        keep(obj)

    harness.archive.put = put  # type: ignore[method-assign]
    with open("/proc/self/clear_refs", "w") as f:  # resets VmHWM (the peak) to the current RSS
        f.write("5")
    before = _rss_kb("VmRSS")
    started = time.perf_counter()
    response, raised = harness.send(event)
    seconds = time.perf_counter() - started
    peak = _rss_kb("VmHWM")
    quarantined = sum(size for key, size in sizes.items() if key.startswith("quarantine"))
    innocent = {r.seq for r in harness.visible() if r.device_id == INNOCENT}
    thing = "normal-0" if baseline else "hostile-1"
    return {
        "memory_mb": round((peak - before) / 1024, 1),
        "seconds": round(seconds, 3),
        "input_bytes": sum(len(d) for _, d in pairs),
        "quarantine_per_input_byte": round(quarantined / sum(len(d) for _, d in pairs), 3),
        "channels": _channels(harness, thing),
        "innocent_stored": innocent == {1, 2, 3},
        "log_item_kb": round(table.largest / 1024, 1),
        "failed_items": len(response["batchItemFailures"]) if response else None,
        "raised": raised,
        "reasons": dict(harness.last_counts.quarantine_reasons) if harness.last_counts else {},
    }


def _channels(harness: Harness, device: str) -> int | None:
    snap = harness.snapshots.get(SHARD).records.get(device)
    record = snap or harness.states.items.get(device)
    if record is None or record.detector is None:
        return None
    return len(DeviceState.from_dict(record.detector).channels)


def run_one(kind: str, baseline: bool, mode: str, limit_gb: float, timeout_s: float) -> dict[str, Any]:
    """One measurement in a fresh interpreter, capped in memory and time (the old code needed gigabytes)."""
    cmd = [sys.executable, __file__, "--one", kind, "--mode", mode] + (["--baseline"] if baseline else [])

    def cap() -> None:
        limit = int(limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, preexec_fn=cap, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout_s:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        return {
            "error": f"exit {done.returncode}: {tail[:120]}" + (f" (cap {limit_gb} GB)" if "Memory" in tail else "")
        }
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[0]
    out = dict(ok[len(ok) // 2])
    for k in ("memory_mb", "seconds", "quarantine_per_input_byte"):
        out[k] = statistics.median(r[k] for r in ok)
    out["innocent_stored"] = all(r["innocent_stored"] for r in ok)
    return out


NAMES = {"a": "foreign-id arrays", "f": "foreign ids, 1000/msg", "b": "new metric names", "c": "burst + innocent"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="afbc")
    parser.add_argument("--mode", choices=["behind", "through"], default="behind", help="write-behind as deployed")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--limit-gb", type=float, default=6.0, help="address-space cap of each measurement")
    parser.add_argument("--timeout-s", type=float, default=180.0)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            result = measure(args.one, args.baseline, args.mode)
        print(json.dumps(result))
        return
    summary: dict[str, Any] = {"mode": args.mode, "reps": args.reps}
    print(f"{'case':<22}{'run':<10}{'memory MB':>10}{'batch s':>9}{'quar B/B':>9}{'channels':>9}{'log KB':>8}", end="")
    print("  innocent  reasons")
    for kind in args.cases:
        for baseline in (True, False):
            runs = [run_one(kind, baseline, args.mode, args.limit_gb, args.timeout_s) for _ in range(args.reps)]
            m = median(runs)
            summary[f"{kind}{'_baseline' if baseline else ''}"] = m
            label = "baseline" if baseline else "hostile"
            if "error" in m:
                print(f"{NAMES[kind]:<22}{label:<10}  {m['error']}")
                continue
            print(
                f"{NAMES[kind]:<22}{label:<10}{m['memory_mb']:>10.1f}{m['seconds']:>9.3f}"
                f"{m['quarantine_per_input_byte']:>9.2f}{m['channels'] or 0:>9}{m['log_item_kb']:>8.1f}  "
                f"{'stored' if m['innocent_stored'] else 'LOST':<9} {m['reasons']}"
            )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
