"""Events (raise, escalate, clear: severity, reasons) are the same in one call as in chunks.

The series are those of the detector fuzzer of review B (finding 3): readings every 1 s to
10 min with interval changes, gaps, clocks stepping back, missing readings, stuck stretches,
spikes, limit crossings, drifts and stops. Seeds 80 and 328 are the two the review found: an
escalation for a metric that had become a cause through an earlier escalation of the same call
counted again as a "new cause" in one call, and not when the call was cut between the two.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from iotpm.detection import DetectorConfig, DeviceDetector, OperatingConfig
from iotpm.detection.config import OperatingPointConfig
from iotpm.detection.detector import Backend

CH3 = ("temperature_c", "vibration_mm_s", "pressure_psi")
UNITLESS = ("value_a", "value_b")


def series(seed: int) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, DetectorConfig]:
    """The fuzzer's series and settings for ``seed`` (the same draws, in the same order)."""
    rng = np.random.default_rng(seed)
    channels = CH3 if rng.random() < 0.7 else UNITLESS
    n = int(rng.integers(200, 1500))
    backwards = rng.random() < 0.2
    iv = rng.choice([1_000, 10_000, 60_000, 600_000])
    steps = np.full(n, iv, dtype=np.int64)
    for _ in range(rng.integers(0, 4)):  # interval changes
        steps[rng.integers(0, n) :] = rng.choice([1_000, 5_000, 10_000, 60_000, 600_000])
    for _ in range(rng.integers(0, 5)):  # gaps
        steps[rng.integers(0, n)] = rng.choice([20 * 60_000, 6 * 3600_000, 6 * 86400_000, 10**11])
    steps = steps + rng.integers(-steps // 10, steps // 10 + 1)
    if backwards:
        for _ in range(rng.integers(1, 4)):
            steps[rng.integers(1, n)] = rng.choice([0, -1_000, -3_600_000])
    ts = 1_700_000_000_000 + np.cumsum(steps)
    c = len(channels)
    level = np.array([55.0, 2.0, 90.0][:c]) if channels == CH3 else rng.normal(0, 10, c)
    x = level + rng.normal(0, 1, (n, c)) * (np.array([0.5, 0.1, 1.5][:c]) if channels == CH3 else 1.0)
    x[rng.random((n, c)) < rng.choice([0, 0.02, 0.2])] = np.nan
    for _ in range(rng.integers(0, 4)):  # stuck stretches
        a = int(rng.integers(1, n))
        b, j = min(n, a + int(rng.integers(3, 80))), int(rng.integers(0, c))
        x[a:b, j] = x[a - 1, j]
    for _ in range(rng.integers(0, 6)):  # spikes and limit crossings
        a = int(rng.integers(0, n))
        x[a : a + int(rng.integers(1, 10)), rng.integers(0, c)] += rng.choice([5, 30, 100, -50])
    if rng.random() < 0.4:  # a drift
        a = int(rng.integers(0, n))
        x[a:, rng.integers(0, c)] += np.linspace(0, rng.choice([3, 20, 60]), n - a)
    if channels == CH3 and rng.random() < 0.5:  # stops and restarts
        for _ in range(rng.integers(1, 3)):
            a = int(rng.integers(0, n))
            b = min(n, a + int(rng.integers(5, 100)))
            x[a:b, 1], x[a:b, 2] = 0.05, 0.0
    if rng.random() < 0.1:
        x[rng.integers(0, n), rng.integers(0, c)] = rng.choice([np.inf, -np.inf, 1e300, -1e300])
    cfg = DetectorConfig(
        dropout_alarms=bool(rng.random() < 0.5),
        operating=OperatingConfig(coast_drop=1.0),
        operating_point=OperatingPointConfig(learn_s=float(rng.choice([600, 21600]))),
    )
    return channels, ts, x, cfg


def events(seed: int, cuts: list[int], backend: Backend) -> tuple[list[str], np.ndarray]:
    """Each event as a string (kind, reading, time, severity, score, reasons: NaN compares
    equal as text) and the scores, fed in the chunks ``cuts`` make."""
    channels, ts, x, cfg = series(seed)
    det = DeviceDetector(channels=channels, config=cfg, backend=backend)
    out: list[str] = []
    scores = []
    for a, b in itertools.pairwise([0, *sorted(set(cuts)), len(ts)]):
        r = det.update(ts[a:b], x[a:b])
        out += [repr((e.kind, e.index + a, e.ts_ms, e.severity, e.score, e.reasons)) for e in r.events]
        scores.append(r.score)
    return out, np.concatenate(scores)


@pytest.mark.parametrize("backend", ["native", "numpy"])
@pytest.mark.parametrize(("seed", "cuts"), [(80, [146]), (80, [150]), (80, [162]), (328, [254]), (328, [400])])
def test_an_escalation_does_not_depend_on_where_the_calls_are_cut(seed: int, cuts: list[int], backend: Backend) -> None:
    whole, s0 = events(seed, [], backend)
    chunked, s1 = events(seed, cuts, backend)
    assert np.array_equal(s0, s1, equal_nan=True)
    assert any("escalate" in e for e in whole)
    assert chunked == whole


@pytest.mark.parametrize("seed", [80, 328, *range(20)])
def test_events_are_the_same_in_one_call_and_under_random_chunkings(seed: int) -> None:
    # the lifecycle is shared Python after either kernel: numpy stands for both here
    whole, _ = events(seed, [], "numpy")
    n = len(series(seed)[1])
    rng = np.random.default_rng(10_000 + seed)
    for _ in range(3):
        cuts = rng.integers(1, n, int(rng.integers(1, 12))).tolist()
        assert events(seed, cuts, "numpy")[0] == whole, cuts
