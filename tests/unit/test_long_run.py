"""The simulator's offline long-run mode: a plant's week with ground truth, without a broker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotpm.simulator.fleet import CHANNELS, DAY_S, SLOW_FAULTS, long_run


@pytest.fixture(scope="module")
def week() -> object:
    return long_run(devices=24, days=7.0, interval_s=60.0, seed=3)


def test_same_seed_same_readings() -> None:
    a, b = (long_run(devices=6, days=1.0, interval_s=60.0, seed=5) for _ in range(2))
    for da, db in zip(a.devices, b.devices, strict=True):
        assert np.array_equal(da.ts, db.ts)
        assert np.array_equal(da.values, db.values)


def test_machines_idle_at_night_and_at_the_weekend(week) -> None:  # type: ignore[no-untyped-def]
    for d in week.devices:
        hour = (d.ts // 1000) % int(DAY_S) / 3600
        day = ((d.ts // 1000 // int(DAY_S)) + 3) % 7
        assert not d.running[day == 6].any(), "nothing runs on Sunday"
        if d.schedule != "three_shift":
            assert not d.running[(hour > 23.5) | (hour < 4.0)].any()
        assert d.running.any()


def test_a_stopped_machine_sits_at_its_floor(week) -> None:  # type: ignore[no-untyped-def]
    vib, pres = CHANNELS.index("vibration_mm_s"), CHANNELS.index("pressure_psi")
    for d in week.devices:
        off = ~d.running
        assert (d.values[off, vib] < 0.2).all()
        assert np.median(d.values[off, pres]) < 30.0  # below the low limit by design
        assert np.median(d.values[d.running, pres]) > 30.0


def test_devices_restart_and_lose_data(week) -> None:  # type: ignore[no-untyped-def]
    for d in week.devices:
        assert (np.diff(d.ts) > 60_000).any(), "every device has at least one restart or gap"
        assert (np.diff(d.ts) > 0).all()


def test_slow_faults_reach_their_limit_days_after_they_start(week) -> None:  # type: ignore[no-untyped-def]
    slow = [f for f in week.faults if f.kind in SLOW_FAULTS]
    assert {f.kind for f in slow} == set(SLOW_FAULTS)
    crossed = [f for f in slow if f.limit_ms is not None]
    assert len(crossed) >= len(slow) - 1
    assert all(f.limit_ms - f.start_ms > 6 * 3_600_000 for f in crossed)


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**16), devices=st.integers(1, 12))
def test_every_window_covers_each_reading_once(seed: int, devices: int) -> None:
    run = long_run(devices=devices, days=0.5, interval_s=120.0, seed=seed)
    seen = [0] * devices
    for window in run.chunks(hours=1.0):
        for i, sl in window:
            seen[i] += sl.stop - sl.start
    assert seen == [len(d.ts) for d in run.devices]


def test_the_fleet_benchmark_runs_and_stops_raise_no_alarm() -> None:
    """A small slice of benchmarks/fleet_quality.py: its JSON, and the point of the operating state."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "fleet_quality.py"
    args = ["--devices", "12", "--days", "2", "--interval", "30"]
    out = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, check=True)
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("false_raises_per_device_day", "detected_fraction", "median_lead_time_h", "median_delay_s"):
        assert key in summary
    # static limits alone raise at every stop of a pump (below 30 psi by design); iotpm does not
    static = summary["peers"]["static"]
    assert summary["false_raises_per_device_day"] < static["false_raises_per_device_day"] / 2
