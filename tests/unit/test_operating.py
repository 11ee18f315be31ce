"""Operating state: a stopped machine raises no alarm, a settling one no statistical one,
a running one with a stuck sensor still does; idling at a floor is not a stuck sensor."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from iotpm.detection import DetectorConfig, DeviceDetector, OperatingConfig
from iotpm.detection.detector import DetectionResult
from iotpm.testing.signals import CHANNELS, INTERVAL_MS, healthy, timestamps

# a machine settling 2 min after a start
CFG = DetectorConfig(operating=OperatingConfig(start_s=20.0, settle_s=120.0))
SETTLE = 120_000 // INTERVAL_MS
TEMP, VIB, PRES = range(3)


def stopped(rng: np.random.Generator, n: int) -> np.ndarray:
    """A stopped pump: vibration at the sensor's floor, pressure at the static head, flat readings."""
    x = np.empty((n, 3))
    x[:, TEMP] = 21.0
    x[:, VIB] = 0.05 + 0.01 * np.abs(rng.normal(size=n))
    x[:, PRES] = 2.0
    return x


def raises(result: DetectionResult) -> list[int]:
    return [e.index for e in result.events if e.kind == "raise"]


def learned(rng: np.random.Generator) -> DeviceDetector:
    det = DeviceDetector(channels=CHANNELS, config=CFG)
    det.update(timestamps(150), healthy(rng, 150))
    assert det.state.ready
    return det


def test_a_stopped_pump_below_its_low_limit_raises_nothing(rng: np.random.Generator) -> None:
    det = learned(rng)
    r = det.update(timestamps(400, start=1_700_001_000_000), stopped(rng, 400))
    assert raises(r) == []
    assert r.channel_scores[:, :, 2:].max() == 0.0  # no statistical score, no flatline while stopped


def test_a_stopped_machine_still_alarms_past_a_high_limit(rng: np.random.Generator) -> None:
    det = learned(rng)
    x = stopped(rng, 50)
    x[30:, TEMP] = 95.0  # overheating (a fire, a heater left on) alarms whether it runs or not
    assert raises(det.update(timestamps(50, start=1_700_001_000_000), x)) == [30]


def test_settling_after_a_start_is_not_scored_and_then_it_is(rng: np.random.Generator) -> None:
    det = learned(rng)
    x = np.concatenate([stopped(rng, 40), healthy(rng, 200)])
    x[40:44, PRES] = [8.0, 20.0, 29.0, 60.0]  # pressure building after the start: under 30 psi
    x[45, TEMP] += 15.0  # a jump while settling: not scored
    x[40 + SETTLE + 30, TEMP] += 15.0  # the same jump once settled: a spike (a pressure's is a setpoint step)
    r = det.update(timestamps(240, start=1_700_001_000_000), x)
    assert raises(r) == [40 + SETTLE + 30]


def test_a_sensor_stuck_while_the_machine_runs_still_alarms(rng: np.random.Generator) -> None:
    det = learned(rng)
    x = healthy(rng, 300)
    x[100:, TEMP] = x[100, TEMP]
    r = det.update(timestamps(300, start=1_700_001_000_000), x)
    assert r.channel_scores[100:, TEMP, 5].max() >= 1.0  # flatline
    assert len(raises(r)) == 1 and raises(r)[0] > 100


def test_idling_at_a_floor_is_not_a_stuck_sensor(rng: np.random.Generator) -> None:
    """A metric with no unit and no off-condition: stretches at its lowest value are idling."""
    det = DeviceDetector(channels=["value"])
    level = 10.0 + rng.normal(0.0, 1.0, 2000)
    level[rng.random(2000) < 0.1] = 0.0  # idles now and then from the warm-up on
    level[500:900] = 0.0  # a long idle stretch
    level[1500:1700] = level[1499]  # stuck while running
    r = det.update(timestamps(2000), level[:, None])
    flat = r.channel_scores[:, 0, 5]
    assert flat[500:900].max() == 0.0
    assert flat[1500:1700].max() >= 1.0


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), cuts=st.lists(st.integers(1, 499), max_size=4))
def test_operating_state_is_the_same_for_any_chunking(seed: int, cuts: list[int]) -> None:
    rng = np.random.default_rng(seed)
    x = healthy(rng, 500)
    for start in rng.integers(0, 480, 3):
        x[start : start + int(rng.integers(5, 40))] = stopped(rng, 1)
    ts = timestamps(500)

    def run(bounds: list[int]) -> tuple[list[float], list[float]]:
        det = DeviceDetector(channels=CHANNELS, config=CFG.model_copy(update={"warmup": 20}))
        scores: list[float] = []
        edges = [0, *sorted(set(bounds)), 500]
        for a, b in itertools.pairwise(edges):
            scores += det.update(ts[a:b], x[a:b]).score.tolist()
        return scores, det.state.vector.tolist()

    whole, parts = run([]), run(cuts)
    assert np.array_equal(whole[0], parts[0]) and np.array_equal(whole[1], parts[1], equal_nan=True)
