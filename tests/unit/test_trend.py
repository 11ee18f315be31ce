"""The trend's "heading for a limit" on healthy machines: what a plant report must not say.

A healthy machine following its load ramps up and down; white noise makes the fast
level wander from the slow one. Neither is a machine heading for its limit, and a
line measured over minutes says nothing about next week.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from iotpm.detection import DetectorConfig, DeviceInput, DeviceState, FleetDetector
from iotpm.simulator.fleet import CHANNELS, Fleet, long_run

WEEK_H = 168.0


def _heading(results: list[tuple[object, DeviceState]]) -> list[tuple[str, float]]:
    return [
        (p.metric, p.hours_to_limit)
        for result, _ in results
        for p in result.predictions.values()  # type: ignore[attr-defined]
        if p.hours_to_limit is not None and p.hours_to_limit <= WEEK_H
    ]


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**16), rate=st.sampled_from([1.0, 5.0]))
def test_a_healthy_twin_fleet_is_never_heading_for_a_limit(seed: int, rate: float) -> None:
    """The twin's machines (load cycling over an hour, noise), read after every 1 s batch."""
    fleet = Fleet(12, seed=seed)
    det = FleetDetector(DetectorConfig())
    states: list[DeviceState | None] = [None] * len(fleet.machines)
    t0, per = 1_800_000_000_000, max(1, int(rate))
    heading: list[tuple[str, float]] = []
    for b in range(0, int(150 * rate), per):
        items = []
        for i, m in enumerate(fleet.machines):
            rows = [m.reading(k / rate, t0 + int(k * 1000 / rate)) for k in range(b, b + per)]
            ts = np.array([r["ts"] for r in rows if r], dtype=np.int64)
            x = np.array([[r["metrics"][c] for c in CHANNELS] for r in rows if r])
            items.append(DeviceInput(m.device_id, CHANNELS, ts, x, states[i], m.line, m.machine_type))
        results = det.update(items)
        states = [s for _, s in results]
        heading += _heading(results)
    assert not heading


def test_a_healthy_plant_fleet_is_rarely_heading_for_a_limit() -> None:
    """Shifts, load orders every 1-4 hours, setpoint changes, stops and restarts, read
    hourly: the old trend said "heading" on two reads in three."""
    run = long_run(devices=24, days=3.0, interval_s=30.0, seed=11, faulty_fraction=0.0)
    det = FleetDetector(DetectorConfig())
    states: list[DeviceState | None] = [None] * len(run.devices)
    reads, heading = 0, 0
    for window in run.chunks(hours=1.0):
        items = []
        for i, sl in window:
            d = run.devices[i]
            items.append(DeviceInput(d.device_id, CHANNELS, d.ts[sl], d.values[sl], states[i], d.line, d.machine_type))
        results = det.update(items)
        for (i, _), (result, state) in zip(window, results, strict=True):
            states[i] = state
            reads += 1
            heading += bool(_heading([(result, state)]))
    assert reads > 24 * 60
    assert heading / reads < 0.05, f"{heading} of {reads} hourly reads of healthy machines say heading"
