"""A small fleet's stream with the world's habits, and all the API shows of it.

For checking that two ways of storing the same stream answer the same (write-through and
write-behind, in memory and on the emulator's tables): :func:`stream` makes the batches a
shard delivers (a fault that raises an alarm, a device that restarts, a gateway's late
readings, whole batches delivered twice); :func:`view` reads every device's record,
readings, buckets and alarms through the API's :class:`~iotpm.api.ports.Queries` in small
pages; :func:`assert_same` compares two views device by device.
"""

from __future__ import annotations

import json
import random
from typing import Any

from iotpm.api.ports import Queries
from iotpm.service.batch import RawRecord
from iotpm.service.ports import Resolution
from iotpm.testing.clock import recent

T0 = recent(1_789_999_200_000)  # a whole hour, a day or two ago (TTL sweeps: iotpm.testing.clock)
#: the stream's devices: dev-02 overheats, dev-01 restarts, dev-03 forwards a reading late now and then
DEVICES = [f"dev-{i:02d}" for i in range(6)]
RESOLUTIONS: tuple[Resolution, ...] = ("1m", "1h")


def stream(seed: int, minutes: int) -> list[tuple[list[RawRecord], int]]:
    """Batches of a 2 s window (records, now), 5 s between a device's readings, with the world's habits."""
    rng = random.Random(seed)
    events: list[tuple[int, str, dict[str, Any]]] = []
    for d, device in enumerate(DEVICES):
        seq, ts = 0, T0 + d * 700
        restart = rng.randrange(minutes * 6, minutes * 12) if d == 1 else None
        while ts < T0 + minutes * 60_000:
            seq += 1
            k = (ts - T0) // 5000
            if restart is not None and k == restart:
                seq = 1  # the device restarted: its sequence numbers start again
            temp = 55 + rng.gauss(0, 0.4) + (0.5 * max(0, k - 150) if d == 2 else 0.0)  # dev-02 overheats
            metrics = {
                "temperature_c": round(temp, 2),
                "vibration_mm_s": round(2 + rng.gauss(0, 0.1), 3),
                "pressure_psi": round(90 + rng.gauss(0, 1), 2),
            }
            body = {"device_id": device, "ts": ts, "seq": seq, "site": "plant-1", "line": f"line-{d % 2}",
                    "device_type": "pump", "metrics": metrics}  # fmt: skip
            arrival = ts + 200
            if d == 3 and k % 50 == 7:  # a gateway that forwards a buffered reading late
                arrival += 30_000
            events.append((arrival, device, body))
            ts += 5000
    events.sort(key=lambda e: e[0])
    batches: dict[int, list[RawRecord]] = {}
    for i, (arrival, device, body) in enumerate(events):
        seqnum = f"{49_600_000_000 + i * 3:056d}"
        batches.setdefault((arrival - T0) // 2000, []).append(
            RawRecord(seqnum, device, json.dumps(body).encode(), arrival, "shardId-000000000000")
        )
    out = []
    for k in sorted(batches):
        out.append((batches[k], T0 + (k + 1) * 2000))
        if rng.random() < 0.03:  # a whole batch delivered again (a retry after a timeout)
            out.append((batches[k], T0 + (k + 1) * 2000 + 500))
    return out


def view(q: Queries) -> dict[str, Any]:
    """Everything the API shows of the fleet, paged in small pages."""
    out: dict[str, Any] = {}
    for device in DEVICES:
        r = q.device(device)
        if r is None:
            out[device] = None
            continue
        readings, cursor = [], None
        while True:
            page = q.readings(device, 0, T0 + 86_400_000, 37, cursor)
            readings += [(x.key, x.ts_ms, dict(x.metrics), x.score, x.anomaly, x.seq, x.ordinal) for x in page.items]
            if (cursor := page.cursor) is None:
                break
        buckets = {}
        for res in RESOLUTIONS:
            rows, cursor = [], None
            while True:
                bpage = q.buckets(device, res, 0, T0 + 86_400_000, 9, cursor)
                # sums of floats added in another order differ in the last bits: means to 12 digits
                rows += [(b.start_ms, {k: {**m, "mean": float(f"{m['mean']:.12g}")} for k, m in b.metrics.items()},
                          b.anomalies) for b in bpage.items]  # fmt: skip
                if (cursor := bpage.cursor) is None:
                    break
            buckets[res] = rows
        anomalies = q.device_anomalies(device, 0, T0 + 86_400_000, 1000, None).items
        out[device] = {
            "record": (r.site, r.line, r.last_ts_ms, r.latest, r.health, r.alarm_open, r.alarm_since_ms, r.readings),
            "readings": readings,
            "buckets": buckets,
            "anomalies": [(a.ts_ms, a.kind, a.severity, a.score, a.reasons) for a in anomalies],
        }
    return out


def assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Two :func:`view` results are the same, device by device (so a failure names the device)."""
    for device in DEVICES:
        assert a[device] == b[device], device
