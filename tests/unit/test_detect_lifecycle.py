"""The alarm's lifecycle: an open alarm escalates when it gets worse, and a condition that
comes and goes is one incident."""

from __future__ import annotations

import base64
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotpm.detection import AlarmConfig, AlarmEvent, DetectorConfig, DeviceDetector, DeviceState
from iotpm.detection.detector import Backend
from iotpm.detection.state import _V3_FIXED, _V3_MATRIX, _V4_CHANNEL_FIELDS, _V4_DEVICE_FIELDS, Layout, layout_for
from iotpm.testing.signals import CHANNELS, INTERVAL_MS, healthy, timestamps

BACKENDS = pytest.mark.parametrize("backend", ["native", "numpy"])
WARM = 200


def overheating(seed: int = 7, n: int = 900) -> tuple[np.ndarray, np.ndarray]:
    """The twin's demo: a spike to 62 °C, then the pump heats to 92 °C against its 80 °C limit."""
    rng = np.random.default_rng(seed)
    ts, x = timestamps(n), healthy(rng, n)
    x[400, 0] = 62.0
    x[401:, 0] = np.minimum(55.0 + np.arange(n - 401) * 0.2, 92.0) + rng.normal(0.0, 0.3, n - 401)
    return ts, x


def detector(ts: np.ndarray, x: np.ndarray, config: DetectorConfig | None = None, **kw: Backend) -> DeviceDetector:
    det = DeviceDetector(channels=CHANNELS, config=config, **kw)
    det.fit(ts[:WARM], x[:WARM])
    return det


def kinds(events: list[AlarmEvent]) -> list[tuple[str, str]]:
    return [(e.kind, e.severity) for e in events]


@BACKENDS
def test_an_open_warning_escalates_to_critical_when_the_limit_is_crossed(backend: Backend) -> None:
    ts, x = overheating()
    result = detector(ts, x, backend=backend).update(ts[WARM:], x[WARM:])
    raise_, escalate = result.events[:2]
    assert (raise_.kind, raise_.severity) == ("raise", "warning")
    assert raise_.reasons[0].metric == "temperature_c" and raise_.reasons[0].detector != "threshold"
    crossing = int(np.flatnonzero(x[:, 0] > 80.0)[0])
    assert (escalate.kind, escalate.severity) == ("escalate", "critical")
    assert crossing <= WARM + escalate.index < crossing + 3  # pages within 3 readings of the crossing
    assert escalate.reasons[0].detector == "threshold" and escalate.reasons[0].detail == "above high limit"
    assert result.alarm_open and result.events[-1].severity == "critical"


@BACKENDS
def test_a_cleared_critical_alarm_clears_as_critical_and_a_new_one_starts_afresh(backend: Backend) -> None:
    rng = np.random.default_rng(3)
    n = 1200
    ts, x = timestamps(n), healthy(rng, n)
    x[400:420, 0] = 95.0  # above the limit for 100 s, then back to normal
    x[900, 1] = 4.6  # a vibration spike much later, into ISO zone C (below its 5 mm/s limit)
    events = detector(ts, x, backend=backend).update(ts[WARM:], x[WARM:]).events
    assert kinds(events) == [("raise", "critical"), ("clear", "critical"), ("raise", "warning"), ("clear", "warning")]
    clear = events[1]
    # the clear waits for the condition to be gone for clear_s (600 s), not just two readings
    assert (clear.ts_ms - ts[419]) / 1000 >= AlarmConfig().clear_s


@BACKENDS
def test_a_new_cause_on_another_metric_escalates(backend: Backend) -> None:
    rng = np.random.default_rng(5)
    n = 700
    ts, x = timestamps(n), healthy(rng, n)
    x[400:, 0] = 62.0 + rng.normal(0.0, 0.5, n - 400)  # hot, below its limit: a warning
    x[500:, 1] = 4.6 + rng.normal(0.0, 0.05, n - 500)  # then the vibration jumps, to ISO zone C
    events = detector(ts, x, backend=backend).update(ts[WARM:], x[WARM:]).events
    assert kinds(events[:2]) == [("raise", "warning"), ("escalate", "warning")]
    assert events[0].reasons[0].metric == "temperature_c"
    assert events[1].index + WARM == 500 and events[1].reasons[0].metric == "vibration_mm_s"
    # each cause escalates once: the vibration staying high is no new event
    assert [e.kind for e in events].count("escalate") == 1


@BACKENDS
def test_a_score_that_keeps_rising_escalates_at_each_doubling(backend: Backend) -> None:
    rng = np.random.default_rng(11)
    n = 1000
    ts = timestamps(n)
    x = rng.normal(0.0, 1.0, (n, 2))  # two sensors the detector knows no unit or limit for
    x[500:, 0] += np.linspace(0.0, 200.0, n - 500)  # a deviation growing without bound
    det = DeviceDetector(channels=["sensor_a", "sensor_b"], backend=backend)
    det.fit(ts[:WARM], x[:WARM])
    events = det.update(ts[WARM:], x[WARM:]).events
    escalations = [e for e in events if e.kind == "escalate"]
    assert events[0].kind == "raise" and len(escalations) >= 1
    assert all(e.severity == "warning" for e in events)  # no limit: never critical
    scores = [events[0].score] + [e.score for e in escalations]
    assert all(b >= 2.0 * a * 0.9 for a, b in itertools.pairwise(scores)), scores


@BACKENDS
def test_a_condition_that_comes_and_goes_is_one_incident(backend: Backend) -> None:
    rng = np.random.default_rng(13)
    n = 1200
    ts, x = timestamps(n), healthy(rng, n)
    x[400:800:20, 0] = 95.0  # a reading over the limit every 100 s for half an hour (chattering)
    result = detector(ts, x, backend=backend).update(ts[WARM:], x[WARM:])
    assert kinds(result.events) == [("raise", "critical"), ("clear", "critical")]
    assert result.events[1].ts_ms - ts[780] >= 1000 * AlarmConfig().clear_s
    # without the off-delay every spike was an alarm of its own
    quick = DetectorConfig(alarm=AlarmConfig(clear_s=0.0))
    assert len(detector(ts, x, quick, backend=backend).update(ts[WARM:], x[WARM:]).events) == 40


@BACKENDS
@settings(max_examples=20, deadline=None)
@given(cuts=st.lists(st.integers(WARM, 1200), max_size=8))
def test_events_are_the_same_in_any_chunking(backend: Backend, cuts: list[int]) -> None:
    ts, x = overheating(n=1200)
    x[600:620, 2] = 60.0  # a new cause while the alarm is open
    x[700:, 0] = 55.0 + np.random.default_rng(1).normal(0.0, 0.5, 500)  # cooled: the alarm clears
    x[1000:1010, 1] = 9.0  # and a new one: ISO zone D, critical from its raise
    whole = detector(ts, x, backend=backend)
    want = [(e.kind, e.ts_ms, e.severity, e.score, e.reasons) for e in whole.update(ts[WARM:], x[WARM:]).events]
    det = detector(ts, x, backend=backend)
    got = []
    for a, b in itertools.pairwise([WARM, *sorted(set(cuts)), len(ts)]):
        got += [(e.kind, e.ts_ms, e.severity, e.score, e.reasons) for e in det.update(ts[a:b], x[a:b]).events]
    assert got == want
    assert {k for k, *_ in want} == {"raise", "escalate", "clear"}
    assert np.array_equal(det.state.vector, whole.state.vector, equal_nan=True)


def test_a_version_4_state_keeps_its_open_alarm_and_escalates_at_the_limit() -> None:
    ts, x = overheating()
    det = detector(ts, x)
    first = det.update(ts[WARM:450], x[WARM:450])
    assert first.alarm_open and kinds(first.events) == [("raise", "warning")]
    now, old = layout_for(3), Layout(3, _V4_CHANNEL_FIELDS, _V4_DEVICE_FIELDS, _V3_FIXED, _V3_MATRIX)
    v4 = np.zeros(old.size)
    for name, sl in old.offsets.items():
        v4[sl] = det.state.vector[now.offsets[name]]
    data = {**det.state.to_dict(), "v": 4, "state": base64.b64encode(v4.astype("<f8").tobytes()).decode()}
    resumed = DeviceDetector.from_state(DeviceState.from_dict(data))
    x[460:470, 2] = 60.0  # a new cause on the pressure: not known as new for an alarm from v4
    events = resumed.update(ts[450:], x[450:]).events
    assert kinds(events) == [("escalate", "critical")]
    assert events[0].reasons[0].detector == "threshold"


def test_the_clear_waits_in_time_whatever_the_interval() -> None:
    # a device reading every 10 minutes clears after two readings below (20 min >= 10 min);
    # one every 5 s after 600 s below, not after 10 s
    for interval_ms in (600_000, INTERVAL_MS):
        rng = np.random.default_rng(17)
        n = 800
        ts = 1_700_000_000_000 + np.arange(n, dtype=np.int64) * interval_ms
        x = healthy(rng, n)
        x[400, 0] = 95.0
        events = detector(ts, x).update(ts[WARM:], x[WARM:]).events
        assert kinds(events) == [("raise", "critical"), ("clear", "critical")]
        below = (events[1].ts_ms - ts[401]) / 1000
        assert AlarmConfig().clear_s <= below < AlarmConfig().clear_s + 2 * interval_ms / 1000


def test_a_stuck_sensor_raises_once_and_does_not_escalate_as_its_run_grows() -> None:
    rng = np.random.default_rng(19)
    n = 1500
    ts, x = timestamps(n), healthy(rng, n)
    x[400:, 0] = x[400, 0]  # the temperature repeats one value for over an hour
    events = detector(ts, x).update(ts[WARM:], x[WARM:]).events
    assert kinds(events) == [("raise", "warning")]
    assert events[0].reasons[0].detector == "flatline"


def test_a_bounded_run_in_drift_read_every_10_minutes_is_not_held_in_alarm() -> None:
    # a healthy machine's run-in: two sensors settle 1.5 and 1 sigma higher over two days
    rng = np.random.default_rng(2)
    n = 6000
    ts = 1_700_000_000_000 + np.arange(n, dtype=np.int64) * 600_000
    x = rng.normal(0.0, 1.0, (n, 2))
    ramp = np.minimum(np.arange(n - 400) / 300.0, 1.0)
    x[400:, 0] += 1.5 * ramp
    x[400:, 1] += 1.0 * ramp
    det = DeviceDetector(channels=["sensor_a", "sensor_b"])
    det.fit(ts[:400], x[:400])
    result = det.update(ts[400:], x[400:])
    assert result.in_alarm.mean() < 0.02


@pytest.mark.parametrize("seed", range(4))
def test_the_multivariate_naming_another_metric_is_no_new_cause(seed: int) -> None:
    """Two metrics that moved together stop doing so, each still in its usual range: the
    multivariate detector raises, and the metric with the largest share of its deviation
    flips from reading to reading (a third, healthy metric among them). None of the three
    scores on a detector of its own, so the alarm stays as raised unless its score doubles;
    before, each flip was an escalation ("another metric becomes a cause")."""
    rng = np.random.default_rng(seed)
    n = 900
    common = rng.normal(0, 1, n)
    x = np.column_stack([common + rng.normal(0, 0.1, n), common + rng.normal(0, 0.1, n), rng.normal(0, 1, n)])
    x[400:, 1] = -x[400:, 0]
    quiet = DetectorConfig(spike_z=50, roc_z=50, cusum_h=1e6)  # only the multivariate detector
    det = DeviceDetector(channels=["flow", "current", "other"], config=quiet)
    det.fit(timestamps(300), x[:300])
    events = det.update(timestamps(n - 300, start=10**13), x[300:]).events
    assert events[0].kind == "raise" and events[0].reasons[0].detector == "multivariate"
    previous = events[0].score
    for e in events[1:]:
        assert e.kind == "escalate" and e.score >= 2.0 * previous  # its score doubled; nothing else
        previous = e.score
