"""The local twin under load: sustained readings/s with zero loss, and publish-to-API latency.

Brings the twin up (emulator, terraform apply, mosquitto, bridge, poller, API server;
its own ports and state folder), then publishes a healthy fleet at ``--rate`` readings
per second in total for ``--duration`` seconds. While it runs, a sampler polls
``GET /devices/{id}`` for a few devices and records, for every reading it sees become
visible (``last_seen``), the time since it was acknowledged by the broker. After the
run it waits for the pipeline to drain and checks published == stored + quarantined.

Prints figures, then one JSON object on the last line: ``offered_readings_per_s``,
``sustained_readings_per_s`` (stored / time from first publish to fully drained),
``lost``, ``latency_p50_s``/``latency_p99_s``. Target on 2 cores: 1,000 readings/s for
120 s, zero loss, p99 <= 2 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from iotpm.emulator.control import free_port
from iotpm.local.run import simulate
from iotpm.local.twin import Twin, UpOptions, epoch_ms, get_json, score
from iotpm.simulator.fleet import Fleet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=1000.0, help="readings per second, whole fleet")
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument("--sampled", type=int, default=5, help="devices whose latency is sampled")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="iotpm-bench-"))
    twin = Twin(home)
    opts = UpOptions(devices=args.devices, emulator_port=free_port(), broker_port=free_port(), api_port=free_port())
    try:
        live = twin.start(opts, lambda s: print(f"==> {s}"), lambda *_: None)
        fleet = Fleet(args.devices, seed=11)
        acked: dict[str, list[int]] = {d: [] for d in fleet.ids[: args.sampled]}
        ack_wall: dict[tuple[str, int], float] = {}
        lock = threading.Lock()

        def on_ack(device: str, ts_ms: int) -> None:
            if device in acked:
                with lock:
                    ack_wall[(device, ts_ms)] = time.time()
                    acked[device].append(ts_ms)

        latencies: list[float] = []
        stop = threading.Event()

        def sampler() -> None:
            seen: dict[str, int] = {}
            while not stop.is_set():
                for d, times in acked.items():
                    try:
                        last = epoch_ms(get_json(live.api_url, f"/devices/{d}", live.api_key)["last_seen"])
                    except OSError:
                        continue  # not stored yet
                    now = time.time()
                    with lock:
                        fresh = [t for t in times if seen.get(d, 0) < t <= last]
                        latencies.extend(now - ack_wall[(d, t)] for t in fresh if (d, t) in ack_wall)
                    seen[d] = max(seen.get(d, 0), last)
                time.sleep(0.05)

        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
        t0 = time.time()
        run = simulate(
            fleet, live.ca.issue, live.broker, args.duration, args.rate / args.devices, lambda *_: None, on_ack
        )
        twin.drain(run.acked, timeout_s=max(600.0, args.duration * 10))
        drained = time.time() - t0
        stop.set()
        thread.join()
        s = score(live.api_url, live.api_key, fleet.ids, [], run.sent, run.acked, run.failed, live.endpoint,
                  live.outputs)  # fmt: skip
    finally:
        twin.down()
    result = {
        "devices": args.devices,
        "duration_s": args.duration,
        "offered_readings_per_s": round(run.acked / args.duration, 1),
        "published": run.acked,
        "stored": s["stored"],
        "quarantined": s["quarantined"],
        "lost": s["lost"],
        "drained_after_s": round(drained, 1),
        "sustained_readings_per_s": round(s["stored"] / drained, 1),
        "latency_samples": len(latencies),
        "latency_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "latency_p99_s": round(statistics.quantiles(latencies, n=100)[98], 3) if len(latencies) > 1 else None,
    }
    print(f"offered {result['offered_readings_per_s']}/s for {args.duration:.0f} s; drained after {drained:.1f} s")
    print(f"sustained {result['sustained_readings_per_s']} readings/s; lost {result['lost']}")
    print(f"publish -> visible in the API: p50 {result['latency_p50_s']} s, p99 {result['latency_p99_s']} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
