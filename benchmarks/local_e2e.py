"""The local twin under load: sustained readings/s with zero loss, and publish-to-API latency.

Brings the twin up (emulator, terraform apply, mosquitto, bridge, poller, API server;
its own ports and state folder), then publishes a healthy fleet at ``--rate`` readings
per second in total for ``--duration`` seconds. While it runs, a sampler polls
``GET /devices/{id}`` for a few devices and records, for every reading it sees become
visible (``last_seen``), the time since it was acknowledged by the broker. After the
run it waits for the pipeline to drain and checks published == stored + quarantined.

Prints figures, then one JSON object on the last line: ``offered_readings_per_s``,
``sustained_readings_per_s`` (the rate records were processed at while publishing, from
10 s in, so the processors' cold start is left out: the offered rate when the pipeline
keeps up, less when a backlog grows), ``behind_at_end_of_publishing`` (the backlog then),
``end_to_end_readings_per_s`` (stored / time from the first publish to fully drained:
below the offered rate by the pipeline's latency however fast it is), ``lost``,
``latency_p50_s``/``latency_p99_s`` (and ``latency_p99_after_warmup_s``, of the readings
seen from 10 s on: the first batches build the processors' clients and every device's
first record). Target on 2 cores: 1,000 readings/s for 120 s, zero
loss, p99 <= 2 s.
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
    parser.add_argument("--latencies", type=Path, help="write every sample here (CSV: seconds since start, latency)")
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
        when: list[float] = []  # of each sample, seconds since the first publish
        stop = threading.Event()

        def sampler() -> None:  # one thread, the devices in turn: the readers' load stays small
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
                        got = [now - ack_wall[(d, t)] for t in fresh if (d, t) in ack_wall]
                        latencies.extend(got)
                        when.extend([now - t0] * len(got))
                    seen[d] = max(seen.get(d, 0), last)
                time.sleep(0.05)

        processed: list[tuple[float, int]] = []  # (seconds since the first publish, records the poller has done)

        def counter() -> None:
            while not stop.wait(0.5):
                st = twin.status_counters()
                if st:
                    processed.append((time.time() - t0, int(st["poller"]["records"])))

        t0 = time.time()
        threads = [threading.Thread(target=sampler, daemon=True), threading.Thread(target=counter, daemon=True)]
        for thread in threads:
            thread.start()
        run = simulate(
            fleet, live.ca.issue, live.broker, args.duration, args.rate / args.devices, lambda *_: None, on_ack
        )
        twin.drain(run.acked, timeout_s=max(600.0, args.duration * 10))
        drained = time.time() - t0
        stop.set()
        for thread in threads:
            thread.join()
        s = score(live.api_url, live.api_key, fleet.ids, [], run.sent, run.acked, run.failed, live.endpoint,
                  live.outputs)  # fmt: skip
    finally:
        twin.down()
    if args.latencies:
        args.latencies.write_text("".join(f"{t:.3f},{v:.3f}\n" for t, v in zip(when, latencies, strict=True)))
    warm = min(10.0, args.duration / 4)  # the processors' first batches (cold start) are left out
    warmed = [v for t, v in zip(when, latencies, strict=True) if t >= warm]
    steady = [(t, n) for t, n in processed if warm <= t <= args.duration]
    (t1, n1), (t2, n2) = (steady[0], steady[-1]) if len(steady) > 1 else ((0.0, 0), (1.0, 0))
    result = {
        "devices": args.devices,
        "duration_s": args.duration,
        "offered_readings_per_s": round(run.acked / args.duration, 1),
        "published": run.acked,
        "stored": s["stored"],
        "quarantined": s["quarantined"],
        "lost": s["lost"],
        "drained_after_s": round(drained, 1),
        # while publishing, after warm-up: the rate the pipeline processed at (= offered if it keeps up)
        "sustained_readings_per_s": round((n2 - n1) / (t2 - t1), 1),
        "end_to_end_readings_per_s": round(s["stored"] / drained, 1),  # stored / first publish to drained
        "behind_at_end_of_publishing": run.acked - n2 if steady else None,
        "latency_samples": len(latencies),
        "latency_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "latency_p99_s": round(statistics.quantiles(latencies, n=100)[98], 3) if len(latencies) > 1 else None,
        "latency_p99_after_warmup_s": round(statistics.quantiles(warmed, n=100)[98], 3) if len(warmed) > 1 else None,
    }
    print(f"offered {result['offered_readings_per_s']}/s for {args.duration:.0f} s; drained after {drained:.1f} s")
    print(
        f"sustained {result['sustained_readings_per_s']} readings/s from {t1:.0f} s to {t2:.0f} s "
        f"({result['behind_at_end_of_publishing']} behind when publishing ended); "
        f"{result['end_to_end_readings_per_s']} readings/s first publish to drained; lost {result['lost']}"
    )
    print(
        f"publish -> visible in the API: p50 {result['latency_p50_s']} s, p99 {result['latency_p99_s']} s "
        f"(readings seen from {warm:.0f} s on: p99 {result['latency_p99_after_warmup_s']} s)"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
