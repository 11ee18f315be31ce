"""The simulator's offline long-run mode: a plant's week with ground truth, without a broker."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotpm.simulator.fleet import (
    ABRUPT_FAULTS,
    CHANNELS,
    DAY_S,
    LONG_RUN_EPOCH_MS,
    SLOW_FAULTS,
    LongRun,
    LongRunDevice,
    LongRunFault,
    Phenomena,
    _Injected,
    _signals,
    long_run,
)


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


def _fleet_quality() -> Any:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "fleet_quality.py"
    spec = importlib.util.spec_from_file_location("fleet_quality_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_an_abrupt_fault_is_visible_at_the_first_reading_that_differs_from_the_healthy_machine() -> None:
    run = long_run(devices=30, days=3.0, interval_s=600.0, seed=0)
    vib = CHANNELS.index("vibration_mm_s")
    abrupt = [(d, d.fault) for d in run.devices if d.fault is not None and d.fault.kind in ABRUPT_FAULTS]
    assert {f.kind for _, f in abrupt} == set(ABRUPT_FAULTS)
    for d, f in abrupt:
        assert f.visible_ms is not None and f.visible_ms >= f.start_ms
        at = int(np.searchsorted(d.ts, f.visible_ms))
        assert d.ts[at] == f.visible_ms, "a reading the device sent"
        if f.kind == "stuck_sensor":  # the first repeat of the frozen value
            assert d.values[at, 0] == d.values[at - 1, 0] and d.ts[at - 1] >= f.start_ms
        if f.kind == "spikes":  # the first reading that catches a burst; none before it
            running = d.values[d.running, vib]
            assert d.values[at, vib] > 2.5 * np.median(running)
            since = (d.ts >= f.start_ms) & (d.ts < f.visible_ms)
            assert (d.values[since, vib] < 2.0 * np.median(running)).all()


def test_an_abrupt_fault_is_judged_from_the_first_reading_that_shows_it() -> None:
    """Intermittent spikes that no reading catches for three hours, paged at the first one
    that does: detected with no delay, where the old rule (an hour from the start) missed it."""
    fq = _fleet_quality()
    start, step = LONG_RUN_EPOCH_MS, 600_000
    ts = start + np.arange(0, 24 * 6, dtype=np.int64) * step
    fault = LongRunFault("pump-0000", "spikes", start + 6 * step, 20.0, int(ts[-1]), None, start + 24 * step)
    device = LongRunDevice("pump-0000", "pump", "line-1", "two_shift", ts, np.zeros((len(ts), 3)),
                           np.ones(len(ts), dtype=bool), fault)  # fmt: skip
    run = LongRun(start, 1.0, 600.0, [device])
    seen = start + 24 * step
    alarm = np.zeros(len(ts), dtype=bool)
    out = fq.Outcome([[seen]], [alarm], events=[[(seen, "raise", "critical")]])
    res = fq.score_outcome(run, out)
    assert res["detected_fraction"] == 1.0 and res["median_delay_s"] == 0.0 and res["median_delay_readings"] == 1
    assert res["detected_fraction_from_start"] == 0.0
    late = fq.Outcome([[seen + 7 * step]], [alarm], events=[[]])
    assert fq.score_outcome(run, late)["detected_fraction"] == 0.0  # more than an hour after it showed


def _one_machine(extra: Phenomena) -> npt.NDArray[np.float64]:
    """Four days of a pump that always runs, at 60 s, at 20 C air: its readings."""
    t_s = np.arange(0.0, 4 * DAY_S, 60.0)
    running, air = np.ones(len(t_s), dtype=bool), np.full(len(t_s), 20.0)
    values, _ = _signals("pump", t_s, running, air, None, np.random.default_rng(1), extra, np.random.default_rng(2))
    return values


def test_the_held_out_plant_s_physics_each_does_what_it_says() -> None:
    base = _one_machine(Phenomena())
    day = np.arange(len(base)) * 60.0 / DAY_S
    hot = _one_machine(Phenomena(hot_day_c=8.0))[:, 0] - base[:, 0]
    assert np.abs(hot[day < 1.0]).max() < 0.01  # the same machine until the hot day
    assert 2.55 < day[np.argmax(hot)] < 2.8 and hot.max() > 6.0  # warmest on Wednesday afternoon
    drift = _one_machine(Phenomena(calibration_drift_c_per_day=0.5))[:, 0] - base[:, 0]
    assert np.allclose(drift, 0.5 * day, atol=0.002)  # the sensor, not the machine: from the start, steadily
    aged = _one_machine(Phenomena(noise_growth=3.0))
    first, last = (np.std(np.diff(aged[(day >= a) & (day < a + 0.5), 0])) for a in (0.0, 3.5))
    assert last > 2.3 * first
    pressure = _one_machine(Phenomena(speeds=2))[:, 2]  # head ~ speed^2 at 3/4 and full speed
    levels = np.array([90.0 * 0.75**2, 90.0])
    assert (np.abs(pressure[:, None] - levels).min(axis=1) < 3.0).mean() > 0.97
    # a casing with an hour's time constant follows the load's changes less within half an hour
    slow, fast = (
        np.convolve(x, np.ones(30) / 30, "valid")
        for x in (_one_machine(Phenomena(thermal_tau_s=3600.0))[:, 0], base[:, 0])
    )
    assert np.std(slow[30:] - slow[:-30]) < 0.8 * np.std(fast[30:] - fast[:-30])


def test_a_limit_crossing_paged_critical_at_once_counts_even_if_it_clears_before_the_third_reading() -> None:
    """At 10-minute readings one reading over the limit pages critical and clears ten minutes
    later: paged within 3 readings (scored before as missed, since nothing was open at the third)."""
    fq = _fleet_quality()
    start, step = LONG_RUN_EPOCH_MS, 600_000
    ts = start + np.arange(0, 24 * 6, dtype=np.int64) * step
    crossing = int(ts[80])
    fault = LongRunFault("motor-0000", "spikes", int(ts[70]), 20.0, int(ts[-1]), crossing, crossing)
    device = LongRunDevice("motor-0000", "motor", "line-1", "two_shift", ts, np.zeros((len(ts), 3)),
                           np.ones(len(ts), dtype=bool), fault)  # fmt: skip
    run = LongRun(start, 1.0, 600.0, [device])
    alarm = np.zeros(len(ts), dtype=bool)
    paged = [(crossing, "raise", "critical"), (crossing + 2 * step, "clear", "critical")]
    op = fq.score_operator(run, fq.Outcome([[crossing]], [alarm], events=[paged]))
    assert op["limit_crossings_paged_within_3"] == "1/1"
    assert op["limit_crossings_open_critical_at_3rd"] == "0/1"
    warned = [(crossing, "raise", "warning")]  # open at the third reading, but never critical
    assert (
        fq.score_operator(run, fq.Outcome([[crossing]], [alarm], events=[warned]))["limit_crossings_paged_within_3"]
        == "0/1"
    )
    late = [(crossing + 3 * step, "raise", "critical")]  # the fourth reading: too late
    assert (
        fq.score_operator(run, fq.Outcome([[crossing]], [alarm], events=[late]))["limit_crossings_paged_within_3"]
        == "0/1"
    )


def _wear(with_running: bool) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """A motor run 06:00-14:00 on two days, a bearing fault from 08:00 over 24 h: the
    vibration it adds (the faulty machine's readings less the same machine's healthy ones)."""
    t_s = np.arange(0.0, 2 * DAY_S, 60.0)
    hour = t_s % DAY_S / 3600.0
    running = (hour >= 6.0) & (hour < 14.0)
    air = np.full(len(t_s), 20.0)
    fault = _Injected("bearing_wear", 8 * 3600.0, 24 * 3600.0, float(t_s[-1]), with_running)
    healthy, _ = _signals("motor", t_s, running, air, None, np.random.default_rng(4))
    faulty, _ = _signals("motor", t_s, running, air, fault, np.random.default_rng(4))
    return faulty[:, 1] - healthy[:, 1], running


def test_wear_grows_while_the_machine_runs_not_overnight() -> None:
    """A bearing wears with the revolutions it makes: stopped from 14:00 to 06:00, it starts
    the next morning as worn as it stopped (by the clock it had worn 16 h more)."""
    added, running = _wear(with_running=True)
    day = int(DAY_S / 60.0)
    evening = int(np.flatnonzero(running[:day])[-1])  # 13:59 on the first day
    morning = day + int(np.argmax(running[day:]))  # 06:00 on the second
    assert np.isclose(added[evening], 5.0 * 6 / 24, atol=0.01)  # 6 running hours of 24
    assert np.isclose(added[morning], added[evening], atol=0.01)
    assert np.isclose(added[morning + 120], added[evening] + 5.0 * 2 / 24, atol=0.01)  # two more hours' wear
    by_clock, _ = _wear(with_running=False)
    assert np.isclose(by_clock[morning], 5.0 * 22 / 24, atol=0.01)  # 08:00 to 06:00 the next day


def test_the_fault_clock_changes_only_the_slow_faults_after_their_start() -> None:
    runs = {clock: long_run(devices=24, days=4.0, interval_s=600.0, seed=1, fault_clock=clock)
            for clock in ("running", "wall")}  # fmt: skip
    changed = 0
    for a, b in zip(runs["running"].devices, runs["wall"].devices, strict=True):
        assert np.array_equal(a.ts, b.ts)
        if a.fault is None or not a.fault.slow:
            assert np.array_equal(a.values, b.values)
            continue
        before = a.ts < a.fault.start_ms
        assert np.array_equal(a.values[before], b.values[before])
        changed += not np.array_equal(a.values, b.values)
    assert changed >= 6  # every slow fault on a machine that stops


def test_a_slow_fault_s_lead_is_counted_in_hours_and_in_the_machine_s_running_hours() -> None:
    """Paged at 16:00, stopped from 22:00 to 06:00, past its limit at 10:00: 18 h before the
    limit, of which the machine ran 10 h (the count under 12 h is of the hours)."""
    fq = _fleet_quality()
    step = 600_000
    ts = LONG_RUN_EPOCH_MS + np.arange(0, 2 * 24 * 6, dtype=np.int64) * step
    hour = (ts - LONG_RUN_EPOCH_MS) / 3_600_000 % 24
    running = (hour >= 6) & (hour < 22)
    page, limit = LONG_RUN_EPOCH_MS + 16 * 3_600_000, LONG_RUN_EPOCH_MS + 34 * 3_600_000
    fault = LongRunFault("pump-0000", "bearing_wear", LONG_RUN_EPOCH_MS + 3_600_000, 86_400.0, int(ts[-1]), limit)
    device = LongRunDevice("pump-0000", "pump", "line-1", "two_shift", ts, np.zeros((len(ts), 3)), running, fault)
    res = fq.score_outcome(LongRun(LONG_RUN_EPOCH_MS, 2.0, 600.0, [device]),
                           fq.Outcome([[page]], [np.zeros(len(ts), dtype=bool)]))  # fmt: skip
    assert res["median_lead_time_h"] == res["min_lead_time_h"] == 18.0
    assert res["median_running_lead_h"] == res["min_running_lead_h"] == 10.0
    assert (res["slow_faults_under_12h"], res["slow_faults_crossing"]) == (0, 1)
    json.dumps(res)  # the benchmark's last line is this, as JSON


def test_the_legacy_plant_reads_whole_units_and_its_lines_share_their_upsets() -> None:
    legacy = long_run(devices=12, days=3.0, interval_s=60.0, seed=2, plant="legacy")
    base = long_run(devices=12, days=3.0, interval_s=60.0, seed=2, plant="base")
    for d in legacy.devices:  # 1 C, 0.1 mm/s, 1 psi
        for j, q in enumerate((1.0, 0.1, 1.0)):
            assert np.allclose(d.values[:, j] / q, np.round(d.values[:, j] / q), atol=1e-6)
    # an upset: the running machines of a line lose head in the same minutes; each line has its own
    losing: dict[str, npt.NDArray[np.int64]] = {}
    for a, b in zip(legacy.devices, base.devices, strict=True):
        assert np.array_equal(a.ts, b.ts) and np.array_equal(a.running, b.running)
        lost = a.running & (b.values[:, 2] > 40.0) & (a.values[:, 2] < 0.9 * b.values[:, 2])  # past the rounding
        minute = (a.ts[lost] - legacy.start_ms) // 60_000
        count = losing.setdefault(a.line, np.zeros(3 * 1440, dtype=np.int64))
        count[minute] += 1
    assert all(count.max() >= 2 for count in losing.values())  # together, on every line
    assert len({tuple(np.flatnonzero(count).tolist()) for count in losing.values()}) == len(losing)


def test_a_slow_fault_that_never_reaches_its_limit_is_reported_apart_not_missed() -> None:
    """Two slow faults, neither paged: one past its limit (a miss), one that has not reached it
    by the run's end (not yet a failure to predict): detected 0/1, one undeveloped, 0/2 as before."""
    fq = _fleet_quality()
    step = 600_000
    ts = LONG_RUN_EPOCH_MS + np.arange(0, 24 * 6, dtype=np.int64) * step
    on = np.ones(len(ts), dtype=bool)
    faults = [LongRunFault(n, "slow_leak", int(ts[10]), 86_400.0, int(ts[-1]), lim)
              for n, lim in (("pump-0000", int(ts[100])), ("pump-0001", None))]  # fmt: skip
    devices = [LongRunDevice(f.device_id, "pump", "line-1", "three_shift", ts, np.zeros((len(ts), 3)), on, f)
               for f in faults]  # fmt: skip
    quiet = np.zeros(len(ts), dtype=bool)
    res = fq.score_outcome(LongRun(LONG_RUN_EPOCH_MS, 1.0, 600.0, devices), fq.Outcome([[], []], [quiet, quiet]))
    assert res["detected_fraction"] == 0.0
    assert (res["slow_faults_undeveloped"], res["slow_faults_undeveloped_paged"]) == (1, 0)
    assert res["detected_fraction_with_undeveloped"] == 0.0
    assert res["kinds"]["slow_leak"]["seen"] == 1 and res["kinds"]["slow_leak"]["undeveloped"] == 1
    paged = fq.score_outcome(
        LongRun(LONG_RUN_EPOCH_MS, 1.0, 600.0, devices), fq.Outcome([[], [int(ts[50])]], [quiet, quiet])
    )
    assert paged["detected_fraction"] == 0.0 and paged["slow_faults_undeveloped_paged"] == 1
    assert paged["detected_fraction_with_undeveloped"] == 0.5
