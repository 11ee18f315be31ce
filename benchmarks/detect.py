"""Detector throughput: one Lambda-sized batch through the fleet detector.

10,000 readings across 100 devices x 3 metrics (temperature, vibration, pressure):
state load from the stored form, all detectors, alarm decisions, state save. The
baseline is the per-reading Python implementation of the same logic
(``iotpm.detection.reference``) on the same batch, measured in the same run.
Prints figures, then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from typing import Any

import numpy as np

from iotpm.detection import DetectorConfig, DeviceInput, DeviceState, FleetDetector
from iotpm.detection.reference import ReferenceDetector

CHANNELS = ("temperature_c", "vibration_mm_s", "pressure_psi")
INTERVAL_MS = 5_000


def make_batch(devices: int, readings: int, seed: int = 1) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    per = readings // devices
    base = np.array([55.0, 2.0, 90.0])
    noise = np.array([0.5, 0.1, 1.5])
    ts = [10**12 + (200 + np.arange(per, dtype=np.int64)) * INTERVAL_MS for _ in range(devices)]
    xs = [base + rng.normal(0, 1, (per, 3)) * noise for _ in range(devices)]
    for i in range(0, devices, 10):  # a few faults so alarms and reasons are exercised
        xs[i][per // 2 :, 0] += 30.0
    return ts, xs


def stored_states(fleet: FleetDetector, devices: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    base, noise = np.array([55.0, 2.0, 90.0]), np.array([0.5, 0.1, 1.5])
    warm_ts = 10**12 + np.arange(200, dtype=np.int64) * INTERVAL_MS
    return [
        fleet.fit(DeviceInput(f"dev-{d}", CHANNELS, warm_ts, base + rng.normal(0, 1, (200, 3)) * noise)).to_dict()
        for d in range(devices)
    ]


def run_vectorised(
    fleet: FleetDetector, states: list[dict[str, Any]], ts: list[np.ndarray], xs: list[np.ndarray]
) -> float:
    t0 = time.perf_counter()
    items = [
        DeviceInput(f"dev-{d}", CHANNELS, ts[d], xs[d], DeviceState.from_dict(states[d])) for d in range(len(states))
    ]
    saved = [state.to_dict() for _, state in fleet.update(items)]
    elapsed = time.perf_counter() - t0
    assert len(saved) == len(states)
    return elapsed


def run_baseline(
    fleet: FleetDetector, states: list[dict[str, Any]], ts: list[np.ndarray], xs: list[np.ndarray]
) -> float:
    limits = [fleet._device_limits(DeviceInput(f"dev-{d}", CHANNELS, ts[d][:0], xs[d][:0])) for d in range(len(states))]
    rows = [x.tolist() for x in xs]
    stamps = [t.tolist() for t in ts]
    t0 = time.perf_counter()
    for d, data in enumerate(states):
        vector = DeviceState.from_dict(data).vector.tolist()
        ref = ReferenceDetector(
            fleet.config, CHANNELS, vector, limits[d][0].tolist(), limits[d][1].tolist(), [False, True, False]
        )
        ref.run(stamps[d], rows[d])
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--readings", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--baseline-reps", type=int, default=3)
    parser.add_argument(
        "--backend", choices=["auto", "native", "numpy"], default="auto", help="the detector's kernel (default: auto)"
    )
    args = parser.parse_args()

    fleet = FleetDetector(DetectorConfig(), args.backend)
    states = stored_states(fleet, args.devices)
    ts, xs = make_batch(args.devices, args.readings)
    n = sum(len(t) for t in ts)
    run_vectorised(fleet, states, ts, xs)  # warm caches (kernels, limits)
    fast = [run_vectorised(fleet, states, ts, xs) for _ in range(args.reps)]
    slow = [run_baseline(fleet, states, ts, xs) for _ in range(args.baseline_reps)]
    fast_med, slow_med = statistics.median(fast), statistics.median(slow)
    state_bytes = statistics.median(len(json.dumps(s)) for s in states)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "readings": n,
        "devices": args.devices,
        "kernel": "numpy" if fleet.native is None else "native",
        "metrics_per_reading": len(CHANNELS),
        "batch_ms_median": round(fast_med * 1000, 2),
        "readings_per_s": round(n / fast_med),
        "baseline_batch_ms_median": round(slow_med * 1000, 1),
        "baseline_readings_per_s": round(n / slow_med),
        "ratio": round(slow_med / fast_med, 1),
        "state_bytes_per_device": state_bytes,
        "peak_rss_mb": round(peak_rss_mb, 1),
    }
    print(f"batch of {n} readings x {len(CHANNELS)} metrics over {args.devices} devices")
    per_s = f"{n / fast_med:,.0f} readings/s"
    print(f"  {result['kernel']} kernel: median {fast_med * 1000:.2f} ms over {args.reps} runs -> {per_s}")
    print(f"  per-reading baseline: median {slow_med * 1000:.1f} ms -> {n / slow_med:,.0f} readings/s")
    print(f"  state per device (stored JSON): {state_bytes} bytes; peak RSS {peak_rss_mb:.1f} MB")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
