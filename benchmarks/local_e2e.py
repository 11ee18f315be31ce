"""The local twin under load: sustained readings/s with zero loss, and publish-to-API latency.

Brings the twin up (emulator, terraform apply, mosquitto, bridge, poller, API server;
its own ports and state folder), then publishes a healthy fleet at ``--rate`` readings
per second in total for ``--duration`` seconds. While it runs, a sampler polls
``GET /devices/{id}`` for a few devices (``--sampled``) and records, for every reading of
theirs it sees become visible (``last_seen``), the time since the broker acknowledged it
(``latency_read_every_s``: how often it read each device, the resolution of those times;
``latency_p99_lower_bound_s``: the p99 of the times to the read before, when each reading
was not visible yet, so the true p99 lies between the two). After the run it waits for
the pipeline to drain and checks published == stored + quarantined.

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

Where the time goes: every 5 s a timeline line gives the readings acknowledged per
second, how many of them the broker still held for the bridge (``queued``), the readings
put to Kinesis by the bridge and processed by the poller per second, the backlog in the
stream (put, not processed), the poller's invocations (their sizes and the handler's mean
time), its GetRecords calls and their mean time (the emulator's answer included), and
the load average. ``--stall N`` stops a process for N seconds while publishing goes on
(SIGSTOP, then SIGCONT): the pipeline (``--stall-process pipeline``, the default: the
backlog builds in the stream) or the rule bridge (``--stall-process bridge``: it builds
in the broker, ``broker_queue_at_drain_start``). After publishing ends (or the stall) the
backlog drains: ``drain_readings_per_s`` is the rate from then to drained, against
``sustained_readings_per_s`` before it (the same run's baseline: a drain at full speed
is at least that), ``caught_up_after_s`` and ``catch_up_readings_per_s`` until the
readings acknowledged and not processed (in the broker or the stream) were back to their
level while the pipeline kept up,
``slowest_drain_window_readings_per_s`` the slowest 20 s while a backlog was left (a
drain that collapses shows there), and ``drain_batch_records_mean``/
``_max`` the invocations' sizes meanwhile (a poller that keeps up with a backlog takes
what each shard holds, up to the mapping's batch size, in one invocation).

Baseline from the same run: ``calibration_records_per_s``, base64 + JSON of a
10,000-record sample event in this process, before the twin starts and after it stops
(what the machine gave one core then); with the load averages printed, it says how
loaded the machine was. Re-measure on a quiet machine before quoting figures.
"""

from __future__ import annotations

import argparse
import binascii
import heapq
import itertools
import json
import os
import signal
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from iotpm.emulator.control import free_port
from iotpm.local.run import simulate
from iotpm.local.twin import Twin, UpOptions, epoch_ms, get_json, score
from iotpm.service.samples import batch, kinesis_event
from iotpm.simulator.fleet import Fleet

WINDOW_S = 5.0  # the timeline's step


def calibration_records_per_s() -> float:
    """Base64 + JSON of a 10,000-record sample event (median of 5): what one core gave this process."""
    event: Any = kinesis_event(batch(500, 20, start_ms=1_790_000_000_000))
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        for rec in event["Records"]:
            orjson.loads(binascii.a2b_base64(rec["kinesis"]["data"], strict_mode=True))
        times.append(time.perf_counter() - t0)
    return len(event["Records"]) / statistics.median(times)


PROBE_EVENT: Any = kinesis_event(batch(100, 20, start_ms=1_790_000_000_000))


def cpu_probe_ms() -> float:
    """CPU milliseconds (this thread's) that base64 + JSON of a 2,000-record event takes: the same work
    takes more CPU time on a busy machine (shared caches and cores), so the CPU figures are also given
    divided by how much more it took while publishing than before the twin started."""
    t0 = time.thread_time()
    for rec in PROBE_EVENT["Records"]:
        orjson.loads(binascii.a2b_base64(rec["kinesis"]["data"], strict_mode=True))
    return (time.thread_time() - t0) * 1000


def load() -> float:
    return round(os.getloadavg()[0], 2)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of a process (all its threads) so far, from /proc; None when it is gone."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14 and 15 of stat)


def twin_pids(twin: Twin, emulator_port: int) -> dict[str, int | None]:
    """Every process a reading passes through, by role (the publisher is this process)."""
    from iotpm.emulator.control import status

    return {"publisher": os.getpid(), "broker": twin.procs.pid("broker"), "bridge": twin.procs.pid("bridge"),
            "emulator": status(emulator_port).pid, "pipeline": twin.procs.pid("services"),
            "api": twin.procs.pid("api")}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=1000.0, help="readings per second, whole fleet")
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument("--sampled", type=int, default=5, help="devices whose latency is sampled")
    parser.add_argument("--latencies", type=Path, help="write every sample here (CSV: seconds since start, latency)")
    parser.add_argument("--batch-size", type=int, default=UpOptions.batch_size, help="the mapping's batch size")
    parser.add_argument("--gateways", type=int, default=0,
                        help="the devices sit behind this many gateways (registered first; device i behind "
                        "gateway i %% N), each publishing its devices' readings of an instant in one message; "
                        "by default (0) every device publishes its own readings")  # fmt: skip
    parser.add_argument("--stall", type=float, default=0.0, help="seconds a process is stopped (a backlog)")
    parser.add_argument("--stall-process", choices=("pipeline", "bridge"), default="pipeline",
                        help="the process --stall stops: the pipeline (the poller and processors: the backlog "
                        "builds in the stream) or the bridge (the IoT rule: it builds in the broker)")  # fmt: skip
    parser.add_argument("--stall-at", type=float, default=15.0, help="seconds after the first publish the stall begins")
    args = parser.parse_args()
    if args.gateways and (args.devices % args.gateways or args.devices // args.gateways > 400):
        parser.error("--devices must be a multiple of --gateways, at most 400 behind each (one message each)")
    per = args.devices // args.gateways if args.gateways else 1  # readings a record carries

    def interrupted(*_: Any) -> None:
        raise KeyboardInterrupt  # the twin is brought down (finally below) however the run is stopped

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)  # also when started in the background, which ignores SIGINT
    calibration = [(calibration_records_per_s(), load())]
    probe_before = statistics.median(cpu_probe_ms() for _ in range(21))
    probes: list[float] = []
    home = Path(tempfile.mkdtemp(prefix="iotpm-bench-"))
    twin = Twin(home)
    opts = UpOptions(devices=args.devices, emulator_port=free_port(), broker_port=free_port(), api_port=free_port(),
                     batch_size=args.batch_size)  # fmt: skip
    try:
        live = twin.start(opts, lambda s: print(f"==> {s}"), lambda *_: None)
        fleet = Fleet(args.devices, seed=11)
        gateways = register_gateways(twin, live.api_url, fleet, args.gateways) if args.gateways else None
        # per sampled device, its acknowledged readings not yet seen in the API: (timestamp, when acknowledged),
        # a heap (a device's acknowledgements may come out of order)
        unseen: dict[str, list[tuple[int, float]]] = {d: [] for d in fleet.ids[: args.sampled]}
        lock = threading.Lock()

        def on_ack(device: str, ts_ms: int) -> None:
            if device in unseen:
                with lock:
                    heapq.heappush(unseen[device], (ts_ms, time.time()))

        latencies: list[float] = []
        when: list[float] = []  # of each sample, seconds since the first publish
        at_least: list[float] = []  # each sample's lower bound: it was not visible at the device's previous read
        reads: dict[str, list[float]] = {d: [] for d in unseen}  # when each read of a device answered
        stop = threading.Event()

        def sampler() -> None:
            """One thread, the sampled devices in turn (GET /devices/{id}): every acknowledged reading of a
            device, once its last_seen reaches it, gets its latency, from the broker's acknowledgement
            to that answer. A device is read about every ``--sampled`` x (a read's time) + 50 ms: that is
            the resolution of its readings' latencies. (GET /devices would give every device in one read,
            but it answers the records as last compacted, not their readings in the batch log since: up
            to the processor's compaction interval behind.)"""
            while not stop.is_set():
                for d, waiting in unseen.items():
                    try:
                        last = epoch_ms(get_json(live.api_url, f"/devices/{d}", live.api_key)["last_seen"])
                    except OSError:
                        continue  # not stored yet
                    now = time.time()
                    before = reads[d][-1] if reads[d] else t0  # the device's previous read: not visible then
                    reads[d].append(now)
                    with lock:
                        while waiting and waiting[0][0] <= last:  # a device's readings are stored in order
                            acked_at = heapq.heappop(waiting)[1]
                            latencies.append(now - acked_at)
                            at_least.append(max(0.0, before - acked_at))
                            when.append(now - t0)
                time.sleep(0.05)

        processed: list[tuple[float, int]] = []  # (seconds since the first publish, records the poller has done)
        samples: list[dict[str, Any]] = []  # every 0.5 s: the counters of the simulator, bridge and poller
        batches: dict[tuple[str, float], list[Any]] = {}  # every invocation seen, by (shard, end time)
        published = [0]
        run_over = [False]  # publishing ended (the CPU probe samples while it runs)

        def counter() -> None:
            while not stop.wait(0.5):
                if not run_over[0]:
                    probes.append(cpu_probe_ms())
                st = twin.status_counters()
                if st:
                    now = time.time() - t0
                    poller = st["poller"]
                    processed.append((now, int(poller["records"]) * per))  # readings, whatever a record holds
                    samples.append({"t": now, "acked": published[0], "put": st["bridge"]["put"] * per,
                                    "received": st["bridge"]["received"] * per,
                                    "records": poller["records"] * per, "invocations": poller["invocations"],
                                    "reads": poller.get("reads", 0), "read_s": poller.get("read_s", 0.0),
                                    "invoke_s": poller.get("invoke_s", 0.0), "load": load()})  # fmt: skip
                    for b in poller.get("recent", []):
                        batches[(b[1], b[0])] = [*b[:2], b[2] * per, *b[3:]]  # its size in readings

        pids = twin_pids(twin, opts.emulator_port)
        cpu_start = {role: cpu_s(pid) for role, pid in pids.items()}
        t0 = time.time()
        threads = [threading.Thread(target=sampler, daemon=True), threading.Thread(target=counter, daemon=True)]
        for thread in threads:
            thread.start()

        def on_progress(sent: int, acked: int, failed: int) -> None:
            published[0] = acked

        stalled = [0.0, 0.0]  # when the stopped process was stopped and continued, seconds since the first publish
        if args.stall > 0:  # a backlog of rate x stall builds in the stream (pipeline) or the broker (bridge)

            def stall() -> None:
                pid = twin.procs.pid("services" if args.stall_process == "pipeline" else "bridge")
                if pid is None or stop.wait(args.stall_at):
                    return
                os.kill(pid, signal.SIGSTOP)
                stalled[0] = time.time() - t0
                stop.wait(args.stall)
                os.kill(pid, signal.SIGCONT)
                stalled[1] = time.time() - t0

            threads.append(threading.Thread(target=stall, daemon=True))
            threads[-1].start()
        run = simulate(fleet, live.ca.issue, live.broker, args.duration, args.rate / args.devices, on_progress, on_ack,
                       gateway=gateways)  # fmt: skip
        published_s = time.time() - t0  # the publisher may fall behind its schedule on a loaded machine
        run_over[0] = True
        twin.drain(run.acked // per, timeout_s=max(600.0, args.duration * 10))
        drained = time.time() - t0
        cpu_end = {role: cpu_s(pid) for role, pid in pids.items()}
        time.sleep(1.0)  # one more sample of the counters
        stop.set()
        for thread in threads:
            thread.join()
        s = score(live.api_url, live.api_key, fleet.ids, [], run.sent, run.acked, run.failed, live.endpoint,
                  live.outputs)  # fmt: skip
    finally:
        twin.down()
    calibration.append((calibration_records_per_s(), load()))
    if args.latencies:
        args.latencies.write_text("".join(f"{t:.3f},{v:.3f}\n" for t, v in zip(when, latencies, strict=True)))
    keeping_up_until = stalled[0] if stalled[1] else published_s
    warm = min(10.0, args.duration / 4, keeping_up_until / 2)  # the processors' first batches (cold start) left out
    warmed = [v for t, v in zip(when, latencies, strict=True) if t >= warm]
    gaps = [b - a for times in reads.values() for a, b in itertools.pairwise(times)]
    steady = [(t, n) for t, n in processed if warm <= t <= keeping_up_until]
    timeline = windows(samples, sorted(batches.values()), t0)
    # the drain: from the end of the stall (or of publishing) until every record is processed
    drain_from = stalled[1] + 1.0 if stalled[1] else published_s  # the first status written after SIGCONT
    draining = [w for w in timeline if drain_from < w["t_end"] <= drained and w["behind_start"] > 0]
    at_start = next(((t, n) for t, n in processed if t >= drain_from), None)
    drain_rate = None
    if at_start is not None and drained > at_start[0]:
        drain_rate = (run.acked - at_start[1]) / (drained - at_start[0])
    drain_batches = [b[2] for b in batches.values() if drain_from < b[0] - t0 <= drained]
    # caught up: the readings acknowledged and not yet processed (in the broker or the stream) back to what
    # they were while the pipeline kept up
    usual = max((x["acked"] - x["records"] for x in samples if warm <= x["t"] <= keeping_up_until), default=0)
    usual = usual if stalled[1] else 0  # without a stall, the backlog grew while publishing: caught up = drained
    resumed = next((x for x in samples if x["t"] >= drain_from), None)
    caught = next((x for x in samples if resumed and x["t"] > resumed["t"] and x["acked"] - x["records"] <= usual),
                  None)  # fmt: skip
    catch_up = None
    if resumed is not None and caught is not None:
        catch_up = (caught["t"] - resumed["t"], (caught["records"] - resumed["records"]) / (caught["t"] - resumed["t"]))
    # CPU per 1,000 readings in each process from the first publish to drained: a figure the machine's
    # other load distorts far less than rates (it takes wall time, and inflates CPU time only somewhat:
    # the probe says by how much), and the rate it allows on 2 cores
    per_1000 = {r: round((end - start) / run.acked * 1000, 4) for r in pids
                if (start := cpu_start[r]) is not None and (end := cpu_end[r]) is not None and run.acked}  # fmt: skip
    cpu_total = sum(per_1000.values())
    inflation = statistics.median(probes) / probe_before if probes else 1.0
    (t1, n1), (t2, n2) = (steady[0], steady[-1]) if len(steady) > 1 else ((0.0, 0), (1.0, 0))
    result = {
        "devices": args.devices,
        "gateways": args.gateways,
        "duration_s": args.duration,
        "offered_readings_per_s": round(run.acked / published_s, 1),
        "scheduled_readings_per_s": args.rate,
        "published_over_s": round(published_s, 1),
        "published": run.acked,
        "stored": s["stored"],
        "quarantined": s["quarantined"],
        "lost": s["lost"],
        "drained_after_s": round(drained, 1),
        # while publishing, after warm-up: the rate the pipeline processed at (= offered if it keeps up)
        "sustained_readings_per_s": round((n2 - n1) / (t2 - t1), 1),
        "end_to_end_readings_per_s": round(s["stored"] / drained, 1),  # stored / first publish to drained
        "behind_at_end_of_publishing": run.acked - next((n for t, n in processed if t >= published_s), run.acked),
        "stalled_s": [round(stalled[0], 1), round(stalled[1], 1)] if stalled[1] else None,
        "backlog_at_drain_start": (draining[0]["backlog_start"] if draining else None),
        # acknowledged by the broker and not yet received by the bridge when the drain began
        "broker_queue_at_drain_start": max(0, resumed["acked"] - resumed["received"]) if resumed else None,
        "stalled_process": args.stall_process if stalled[1] else None,
        "drain_readings_per_s": round(drain_rate, 1) if drain_rate is not None else None,
        # from the drain's start until the backlog is back to its level while keeping up (new readings included)
        "caught_up_after_s": round(catch_up[0], 1) if catch_up else None,
        "catch_up_readings_per_s": round(catch_up[1], 1) if catch_up else None,
        # over 20 s (four windows: a full batch's read and invocation can outlast one), the last left out
        "slowest_drain_window_readings_per_s": min(
            (
                round(statistics.mean(w["processed_per_s"] for w in draining[i : i + 4]), 1)
                for i in range(len(draining) - 4)
            ),
            default=None,
        ),
        "failed_invocations": sum(1 for b in batches.values() if b[7] is not None),
        "batch_size": args.batch_size,
        "drain_batch_records_mean": round(statistics.mean(drain_batches)) if drain_batches else None,
        "drain_batch_records_max": max(drain_batches, default=None),
        "invocations": len(batches),
        "batch_records_median": statistics.median(b[2] for b in batches.values()) if batches else None,
        "invoke_ms_median": round(statistics.median(b[6] for b in batches.values()) * 1000, 1) if batches else None,
        "get_records_ms_median": round(statistics.median(b[4] / b[3] for b in batches.values() if b[3]) * 1000, 1)
        if batches
        else None,
        "cpu_s_per_1000_readings": per_1000,
        "cpu_s_per_1000_readings_total": round(cpu_total, 4),
        # every core busy with the twin alone; one process cannot use more than one core for its Python
        "capacity_readings_per_s_2_cores": round(2000 / cpu_total) if cpu_total else None,
        # the same work's CPU time while publishing / before the twin started (1: as quiet as before)
        "cpu_probe_inflation": round(inflation, 3),
        "cpu_s_per_1000_readings_total_deflated": round(cpu_total / inflation, 4),
        "capacity_readings_per_s_2_cores_deflated": round(2000 * inflation / cpu_total) if cpu_total else None,
        "capacity_readings_per_s_busiest_process": round(1000 / max(per_1000.values())) if per_1000 else None,
        "calibration_records_per_s": [round(c) for c, _ in calibration],
        "load_average_1m": [w["load"] for w in timeline],
        "latency_samples": len(latencies),
        # the median time between two reads of a device: the resolution of its readings' latencies
        "latency_read_every_s": round(statistics.median(gaps), 3) if gaps else None,
        "latency_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "latency_p99_s": round(statistics.quantiles(latencies, n=100)[98], 3) if len(latencies) > 1 else None,
        "latency_p99_after_warmup_s": round(statistics.quantiles(warmed, n=100)[98], 3) if len(warmed) > 1 else None,
        # the same readings' latencies to the device's read before the one that saw them (the latency is
        # between the two): how much of the p99 is the sampler's resolution
        "latency_p99_lower_bound_s": round(statistics.quantiles(at_least, n=100)[98], 3) if len(at_least) > 1 else None,
    }
    print(
        "   t  acked/s  queued    put/s  done/s  backlog  calls  batch mean/max  invoke ms  failed  reads  read ms"
        "  load"
    )
    for w in timeline:
        print(f"{w['t_end']:4.0f} {w['acked_per_s']:8.0f} {w['broker_queue_end']:7d} {w['put_per_s']:8.0f} "
              f"{w['processed_per_s']:7.0f} "
              f"{w['backlog_end']:8d} {w['invocations']:6d} {w['batch_mean']:7.0f}/{w['batch_max']:<6d} "
              f"{w['invoke_ms']:9.0f} {w['failed']:7d} {w['reads']:6d} {w['read_ms']:8.1f} "
              f"{w['load']:5.1f}")  # fmt: skip
    print("CPU seconds per 1,000 readings: " + ", ".join(f"{r} {v:.3f}" for r, v in per_1000.items())
          + f"; total {cpu_total:.3f}: {result['capacity_readings_per_s_2_cores']} readings/s on 2 cores "
          f"(busiest process alone: {result['capacity_readings_per_s_busiest_process']}/s); the same work took "
          f"{inflation:.2f}x its CPU time before the twin started: deflated, total {cpu_total / inflation:.3f}, "
          f"{result['capacity_readings_per_s_2_cores_deflated']} readings/s on 2 cores")  # fmt: skip
    print(
        f"calibration (base64 + JSON, one core): {calibration[0][0]:,.0f} records/s before (load {calibration[0][1]}), "
        f"{calibration[1][0]:,.0f} after (load {calibration[1][1]})"
    )
    if stalled[1]:
        behind = result["broker_queue_at_drain_start"] if args.stall_process == "bridge" else None
        print(f"the {args.stall_process} process was stopped from {stalled[0]:.1f} s to {stalled[1]:.1f} s: "
              + (f"{behind} readings queued in the broker for the bridge"
                 if behind is not None else f"{result['backlog_at_drain_start']} records behind")
              + " when it continued")  # fmt: skip
    if catch_up:
        print(f"caught up {catch_up[0]:.1f} s after the drain began, processing {catch_up[1]:,.0f} readings/s "
              "meanwhile "
              f"(while keeping up before: {result['sustained_readings_per_s']}/s)")  # fmt: skip
    print(f"offered {result['offered_readings_per_s']}/s ({args.rate:.0f}/s scheduled) for {published_s:.0f} s; "
          f"drained after {drained:.1f} s; drained at {result['drain_readings_per_s']} readings/s "
          f"(slowest 20 s {result['slowest_drain_window_readings_per_s']}/s, "
          f"batches {result['drain_batch_records_mean']} records on average, at most "
          f"{result['drain_batch_records_max']} of {args.batch_size})")  # fmt: skip
    print(
        f"sustained {result['sustained_readings_per_s']} readings/s from {t1:.0f} s to {t2:.0f} s "
        f"({result['behind_at_end_of_publishing']} behind when publishing ended); "
        f"{result['end_to_end_readings_per_s']} readings/s first publish to drained; lost {result['lost']}"
    )
    print(
        f"publish -> visible in the API: p50 {result['latency_p50_s']} s, p99 {result['latency_p99_s']} s "
        f"(readings seen from {warm:.0f} s on: p99 {result['latency_p99_after_warmup_s']} s; "
        f"{len(latencies):,} readings of {args.sampled} devices, each read every "
        f"{result['latency_read_every_s']} s: not yet visible at the read before, p99 at least "
        f"{result['latency_p99_lower_bound_s']} s)"
    )
    print(json.dumps(result))


def gateway_names(n: int) -> list[str]:
    """``n`` gateway names whose partition keys fall in ``n`` equal parts of Kinesis's hash range: one on
    each shard of a stream with ``n`` even shards (the local one has 4), as a plant's gateways spread."""
    import hashlib

    names: dict[int, str] = {}
    for k in itertools.count(1):
        name = f"gateway-{k:04d}"
        names.setdefault(
            int(hashlib.md5(name.encode()).hexdigest(), 16) * n >> 128, name
        )  # MD5: how Kinesis hashes a key
        if len(names) == n:
            return [names[i] for i in range(n)]
    raise AssertionError("unreachable")


def register_gateways(twin: Twin, api_url: str, fleet: Fleet, n: int) -> list[str]:
    """Register ``n`` gateway things and device ``i`` of ``fleet`` under gateway ``i % n``, with the twin's
    operator credential."""
    import base64
    import urllib.request

    key = json.loads(twin.record_path.read_text())["operator_key"]
    auth = "Basic " + base64.b64encode(f"operator:{key}".encode()).decode()

    def register(device: str, body: dict[str, str]) -> None:
        headers = {"authorization": auth, "content-type": "application/json"}
        req = urllib.request.Request(f"{api_url}/devices/{device}/registration", data=json.dumps(body).encode(),
                                     method="PUT", headers=headers)  # fmt: skip
        with urllib.request.urlopen(req, timeout=30):
            pass

    gateways = gateway_names(n)
    for gw in gateways:
        register(gw, {"site": fleet.machines[0].site, "line": fleet.machines[0].line, "device_type": "gateway"})
    for i, m in enumerate(fleet.machines):
        register(m.device_id, {"site": m.site, "line": m.line, "device_type": m.machine_type,
                               "gateway": gateways[i % n]})  # fmt: skip
    return gateways


def windows(samples: list[dict[str, Any]], batches: list[list[Any]], t0: float) -> list[dict[str, Any]]:
    """The counters per :data:`WINDOW_S`: rates, backlog, the invocations that ended in the window."""
    out: list[dict[str, Any]] = []
    if not samples:
        return out
    edge, first = WINDOW_S, samples[0]
    for s in samples[1:]:
        if s["t"] < edge and s is not samples[-1]:
            continue
        span = max(s["t"] - first["t"], 1e-9)
        inv = [b for b in batches if first["t"] < b[0] - t0 <= s["t"]]
        calls = s["reads"] - first["reads"]
        out.append({
            "t_end": round(s["t"], 1),
            "acked_per_s": (s["acked"] - first["acked"]) / span,
            "put_per_s": (s["put"] - first["put"]) / span,
            "processed_per_s": round((s["records"] - first["records"]) / span, 1),
            "backlog_start": first["put"] - first["records"],
            "backlog_end": s["put"] - s["records"],
            "behind_start": first["acked"] - first["records"],  # acknowledged, not processed (broker + stream)
            # acknowledged by the broker, not yet delivered to the bridge (queued in mosquitto for it)
            "broker_queue_end": max(0, s["acked"] - s["received"]),
            "invocations": s["invocations"] - first["invocations"],
            "batch_mean": statistics.mean(b[2] for b in inv) if inv else 0.0,
            "batch_max": max((b[2] for b in inv), default=0),
            "invoke_ms": statistics.mean(b[6] for b in inv) * 1000 if inv else 0.0,
            "failed": sum(1 for b in inv if b[7] is not None),  # invocations that reported a failed record
            "reads": calls,
            "read_ms": (s["read_s"] - first["read_s"]) / calls * 1000 if calls else 0.0,
            "load": s["load"],
        })  # fmt: skip
        first, edge = s, edge + WINDOW_S
    return out


if __name__ == "__main__":
    main()
