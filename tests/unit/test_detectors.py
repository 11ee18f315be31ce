"""Each detector on a signal with a known answer, through the public streaming API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from iotpm.detection import (
    AlarmConfig,
    DetectorConfig,
    DeviceDetector,
    IsoMachineClass,
    Limits,
    ThresholdConfig,
)
from iotpm.detection._layout import CH
from iotpm.testing.signals import CHANNELS, INTERVAL_MS, healthy, timestamps

WARM = 300


def fitted(rng: np.random.Generator, config: DetectorConfig | None = None, **ctx: str) -> DeviceDetector:
    det = DeviceDetector(channels=CHANNELS, config=config, **ctx)
    det.fit(timestamps(WARM), healthy(rng, WARM))
    return det


def raises(result: object) -> list[int]:
    return [e.index for e in result.events if e.kind == "raise"]  # type: ignore[attr-defined]


def test_healthy_device_raises_no_alarm(rng: np.random.Generator) -> None:
    det = fitted(rng)
    r = det.update(timestamps(2000, start=timestamps(WARM)[-1] + INTERVAL_MS), healthy(rng, 2000))
    assert not r.is_anomaly.any()
    assert r.health > 80


def test_static_limit_alarms_with_reason_and_expected_value(rng: np.random.Generator) -> None:
    det = fitted(rng)
    x = healthy(rng, 50)
    x[20:, 0] = 85.0  # over the 80 °C default
    r = det.update(timestamps(50, start=10**13), x)
    assert raises(r) == [20]
    event = r.events[0]
    assert event.severity == "critical"
    top = next(reason for reason in event.reasons if reason.detector == "threshold")
    assert (top.metric, top.observed, top.expected) == ("temperature_c", 85.0, 80.0)


def test_low_limit_on_pressure(rng: np.random.Generator) -> None:
    det = fitted(rng)
    x = healthy(rng, 30)
    x[10, 2] = 25.0  # below 30 psi
    r = det.update(timestamps(30, start=10**13), x)
    assert 10 in raises(r)
    reason = next(rs for rs in r.events[0].reasons if rs.detector == "threshold")
    assert reason.expected == 30.0 and reason.detail == "below low limit"


def test_limits_resolve_device_then_line_then_type_then_default() -> None:
    cfg = ThresholdConfig(
        device_type={"pump": {"temperature": Limits(high=75.0)}},
        line={"line-1": {"temperature_c": Limits(high=70.0)}},
        device={"pump-7": {"temperature": Limits(low=0.0, high=65.0)}},
    )
    assert cfg.resolve("temperature_c") == Limits(low=10.0, high=80.0)
    assert cfg.resolve("temperature_c", device_type="pump") == Limits(high=75.0)
    assert cfg.resolve("temperature_c", line="line-1", device_type="pump") == Limits(high=70.0)
    assert cfg.resolve("temperature_c", device_id="pump-7", line="line-1") == Limits(low=0.0, high=65.0)
    assert cfg.resolve("value") is None  # no unit: statistics only


def test_limits_load_from_file_and_table_rows(tmp_path: Path) -> None:
    path = tmp_path / "limits.json"
    path.write_text(json.dumps({"device": {"m-1": {"pressure": {"low": 40, "high": 120}}}}))
    from_file = ThresholdConfig.from_file(path)
    rows = [{"scope": "device", "key": "m-1", "metric": "pressure", "low": 40, "high": 120}]
    assert from_file.resolve("pressure_psi", device_id="m-1") == Limits(low=40, high=120)
    assert ThresholdConfig.from_rows(rows) == from_file
    with pytest.raises(ValueError, match="unknown scope"):
        ThresholdConfig.from_rows([{"scope": "plant", "key": "x", "metric": "pressure"}])


def test_device_override_changes_the_decision(rng: np.random.Generator) -> None:
    limits = ThresholdConfig(device={"pump-7": {"temperature": Limits(high=60.0)}})
    det = fitted(rng, DetectorConfig(thresholds=limits), device_id="pump-7")
    other = fitted(np.random.default_rng(7), DetectorConfig(thresholds=limits), device_id="pump-8")
    x = healthy(rng, 20)
    x[5:, 0] = 62.0
    assert raises(det.update(timestamps(20, start=10**13), x)) == [5]
    assert not any(
        e.reasons and e.reasons[0].detector == "threshold" for e in other.update(timestamps(20, start=10**13), x).events
    )


@pytest.mark.parametrize(
    ("machine", "value", "zone"),
    [
        (IsoMachineClass.GROUP2_FLEXIBLE, 6.0, "C"),
        (IsoMachineClass.GROUP2_FLEXIBLE, 8.0, "D"),
        (IsoMachineClass.GROUP1_FLEXIBLE, 12.0, "D"),
        (IsoMachineClass.GROUP2_RIGID, 4.6, "D"),
    ],
)
def test_vibration_zone_per_iso_10816_3(
    rng: np.random.Generator, machine: IsoMachineClass, value: float, zone: str
) -> None:
    det = fitted(rng, DetectorConfig(iso_class=machine, thresholds=ThresholdConfig(defaults={})))
    x = healthy(rng, 20)
    x[10:, 1] = value
    r = det.update(timestamps(20, start=10**13), x)
    iso = [rs for e in r.events for rs in e.reasons if rs.detector == "iso10816"]
    if zone == "D":
        assert iso and iso[0].detail == "ISO 10816-3 zone D"
        assert r.events[0].severity == "critical"
    else:
        assert r.channel_scores[10, 1, 1] == 0.5  # zone C: a warning level, not an alarm by itself


def test_spike_raises_one_alarm_that_clears(rng: np.random.Generator) -> None:
    det = fitted(rng)
    x = healthy(rng, 400)
    x[200, 0] += 25 * 0.5  # +25 sigma on temperature, still inside 10-80 °C
    r = det.update(timestamps(400, start=10**13), x)
    assert raises(r) == [200]
    assert [e.kind for e in r.events] == ["raise", "clear"]
    assert r.events[0].reasons[0].metric == "temperature_c"
    assert {rs.detector for rs in r.events[0].reasons} & {"spike", "rate_of_change"}
    assert not r.is_anomaly[-100:].any()


def test_step_on_a_metric_without_limits_is_caught_by_the_drift_detector(rng: np.random.Generator) -> None:
    cfg = DetectorConfig(spike_z=50, roc_z=50, t2_z=50)  # leave the shift to CUSUM
    det = DeviceDetector(channels=["temperature", "vibration", "pressure"], config=cfg)
    det.fit(timestamps(WARM), healthy(rng, WARM))
    x = healthy(rng, 600)
    x[100:, 0] += 1.5 * 0.5  # +1.5 sigma from reading 100
    r = det.update(timestamps(600, start=10**13), x)
    first = raises(r)[0]
    assert 100 <= first < 100 + 2 * cfg.cusum_h
    assert r.events[0].reasons[0].detector == "drift"
    assert r.events[0].reasons[0].metric == "temperature"


def test_a_metric_with_a_limit_has_the_operating_point_test_instead_of_cusum(rng: np.random.Generator) -> None:
    cfg = DetectorConfig(spike_z=50, roc_z=50, t2_z=50)
    det = fitted(rng, cfg)
    x = healthy(rng, 600)
    x[100:, 0] += 1.5 * 0.5  # a new operating point, far from the limit: no fault
    r = det.update(timestamps(600, start=10**13), x)
    assert not raises(r)
    assert (r.channel_scores[..., CH["drift"]] == 0).all()


def test_ramp_predicts_time_to_limit(rng: np.random.Generator) -> None:
    det = fitted(rng)
    n = 2000
    x = healthy(rng, n)
    per_reading = 0.01  # °C per reading; at 5 s per reading: 7.2 °C/h
    x[:, 0] += per_reading * (np.arange(n) - n) + 23.5  # ends 1.5 °C below 80: 12 minutes away
    r = det.update(timestamps(n, start=10**13), x)
    pred = r.predictions["temperature_c"]
    assert pred.limit == 80.0
    assert 5.5 < pred.slope_per_hour < 9.0
    remaining = 1.5 / 7.2
    assert pred.hours_to_limit is not None
    assert abs(pred.hours_to_limit - remaining) < 0.5 * remaining + 0.1
    assert r.predictions["vibration_mm_s"].hours_to_limit is None  # flat metric: no trend
    assert r.health <= 80


def test_a_ramp_far_from_its_limit_has_a_slope_but_no_predicted_crossing(rng: np.random.Generator) -> None:
    """The slope is measured over the time between the fast and slow levels (115 readings,
    under 10 minutes at 5 s); a line that short is not extrapolated to a crossing more
    than three times that far ahead."""
    det = fitted(rng)
    n = 2000
    x = healthy(rng, n)
    x[:, 0] += 0.005 * np.arange(n)  # 3.6 °C/h, 55 °C rising to 65 °C: 80 °C is 4 h away
    r = det.update(timestamps(n, start=10**13), x)
    pred = r.predictions["temperature_c"]
    assert 2.5 < pred.slope_per_hour < 4.5
    assert pred.hours_to_limit is None
    reach_h = 3.0 * 115 * INTERVAL_MS / 3_600_000
    config = DetectorConfig(trend_reach=60.0)  # 9.6 h of reach: now the crossing is in view
    again = fitted(np.random.default_rng(7), config).update(timestamps(n, start=10**13), x)
    assert again.predictions["temperature_c"].hours_to_limit is not None
    assert reach_h < again.predictions["temperature_c"].hours_to_limit < 60.0 * 115 * INTERVAL_MS / 3_600_000


def test_stuck_sensor_is_flagged_as_flatline(rng: np.random.Generator) -> None:
    det = fitted(rng)
    x = healthy(rng, 300)
    x[100:, 1] = x[99, 1]
    r = det.update(timestamps(300, start=10**13), x)
    first = raises(r)[0]
    assert 100 + 30 - 1 <= first <= 160
    reason = r.events[0].reasons[0]
    assert (reason.detector, reason.metric) == ("flatline", "vibration_mm_s")


def test_gap_is_scored_and_alarms_only_when_configured(rng: np.random.Generator) -> None:
    ts = timestamps(100, start=timestamps(WARM)[-1] + INTERVAL_MS)
    ts[50:] += 120 * INTERVAL_MS  # ten minutes of silence
    x = healthy(rng, 100)
    quiet = fitted(rng)
    r = quiet.update(ts, x)
    assert r.device_scores[50, 0] > 1.0
    assert not r.is_anomaly.any()
    loud = fitted(np.random.default_rng(1), DetectorConfig(dropout_alarms=True))
    r = loud.update(ts, x)
    assert raises(r) == [50]
    assert r.events[0].reasons[0].detector == "dropout"


def test_a_gap_is_listed_after_what_raised_the_alarm(rng: np.random.Generator) -> None:
    """A machine back after two days' silence with a spike on its first reading: the gap
    scores in the hundreds but does not count toward the alarm, so the spike is the first
    reason and the gap is listed after it; where gaps do alarm, the gap comes first."""
    ts = timestamps(100, start=timestamps(WARM)[-1] + INTERVAL_MS)
    ts[50:] += 2 * 86_400_000
    x = healthy(rng, 100)
    x[50, 1] += 6.0
    r = fitted(rng).update(ts, x)
    assert raises(r) == [50]
    first, *rest = r.events[0].reasons
    assert (first.detector, first.metric) == ("spike", "vibration_mm_s")
    assert [reason.detector for reason in rest][-1] == "dropout"
    assert rest[-1].score > first.score
    loud = fitted(np.random.default_rng(1), DetectorConfig(dropout_alarms=True)).update(ts, x)
    assert loud.events[0].reasons[0].detector == "dropout"


def test_multivariate_catches_a_broken_correlation(rng: np.random.Generator) -> None:
    n = 600
    common = rng.normal(0, 1, n)
    x = np.column_stack([common + rng.normal(0, 0.1, n), common + rng.normal(0, 0.1, n)])
    x[400:, 1] = -x[400:, 0]  # each still in its usual range; together impossible
    cfg = DetectorConfig(spike_z=50, roc_z=50, cusum_h=1e6)
    det = DeviceDetector(channels=["flow", "current"], config=cfg)
    det.fit(timestamps(300), x[:300])
    r = det.update(timestamps(300, start=10**13), x[300:])
    assert raises(r) and 100 <= raises(r)[0] <= 110
    assert r.events[0].reasons[0].detector == "multivariate"
    assert not r.is_anomaly[:100].any()


def test_a_sustained_small_shift_is_caught_by_the_multivariate_ewma(rng: np.random.Generator) -> None:
    n = 600
    x = rng.normal(0, 1, (n, 3))
    x[400:, 2] += 2.2  # each reading ordinary; together, for long, not
    # a shift lasting a minute or so: 13.5 readings at one every 5 s
    quiet = {"spike_z": 50.0, "roc_z": 50.0, "cusum_h": 1e6, "mewma_halflife_s": 67.5}
    found = {}
    for factor in (8.0, 1e6):  # the shipped EWMA limit, and the EWMA switched off
        det = DeviceDetector(channels=["a", "b", "c"], config=DetectorConfig(**quiet, mewma_factor=factor))
        det.fit(timestamps(300), x[:300])
        found[factor] = det.update(timestamps(300, start=10**13), x[300:])
    r = found[8.0]
    assert raises(r) and 100 <= raises(r)[0] <= 140
    why = r.events[0].reasons[0]
    assert (why.detector, why.metric) == ("multivariate", "c")  # named by the metric that shifted
    assert why.observed == x[300 + raises(r)[0], 2]
    assert not r.is_anomaly[:100].any()
    late = raises(found[1e6])  # without the EWMA the shift goes unseen, or is seen far later
    assert not late or late[0] > raises(r)[0] + 25


def test_a_smooth_channel_wandering_past_its_warm_up_is_no_multivariate_fault(rng: np.random.Generator) -> None:
    n = 600
    x = rng.normal(0, 1, (n, 3))
    x[:, 0] = 0.01 * np.arange(n) + rng.normal(0, 0.02, n)  # a temperature creeping up, steadily
    quiet = {"spike_z": 50.0, "roc_z": 50.0, "cusum_h": 1e6}
    found = {}
    for ratio in (0.6, 0.0):  # the shipped rule, and no channel treated as smooth
        det = DeviceDetector(channels=["a", "b", "c"], config=DetectorConfig(**quiet, smooth_step_ratio=ratio))
        det.fit(timestamps(300), x[:300])
        found[ratio] = det.update(timestamps(300, start=10**13), x[300:])
    assert not raises(found[0.6]) and not found[0.6].is_anomaly.any()
    assert raises(found[0.0])  # against the warm-up baseline, the creep looks like a fault


def test_hysteresis_gives_one_alarm_per_incident(rng: np.random.Generator) -> None:
    cfg = DetectorConfig(alarm=AlarmConfig(clear_duration=20))
    det = fitted(rng, cfg)
    x = healthy(rng, 300)
    x[100:160:4, 0] = 95.0  # a burst of over-temperature readings, every fourth one
    r = det.update(timestamps(300, start=10**13), x)
    assert raises(r) == [100]
    assert [e.kind for e in r.events] == ["raise", "clear"]


def test_cooldown_holds_off_a_new_raise(rng: np.random.Generator) -> None:
    x = healthy(rng, 200)
    x[[50, 70], 0] = 95.0
    without = fitted(np.random.default_rng(3), DetectorConfig(alarm=AlarmConfig(clear_duration=2, clear_s=0)))
    with_cd = fitted(
        np.random.default_rng(3), DetectorConfig(alarm=AlarmConfig(clear_duration=2, clear_s=0, cooldown=50))
    )
    assert raises(without.update(timestamps(200, start=10**13), x)) == [50, 70]
    assert raises(with_cd.update(timestamps(200, start=10**13), x)) == [50]


def test_min_duration_ignores_a_single_excursion(rng: np.random.Generator) -> None:
    det = fitted(rng, DetectorConfig(alarm=AlarmConfig(min_duration=3)))
    x = healthy(rng, 100)
    x[20, 0] = 95.0
    x[50:55, 0] = 95.0
    assert raises(det.update(timestamps(100, start=10**13), x)) == [52]


def test_unitless_channels_get_statistics_but_no_static_limits(rng: np.random.Generator) -> None:
    det = DeviceDetector(channels=["value"])
    det.fit(timestamps(200), rng.normal(500.0, 5.0, (200, 1)))
    r = det.update(timestamps(50, start=10**13), rng.normal(500.0, 5.0, (50, 1)))
    assert not r.is_anomaly.any()  # 500 would be far over any temperature limit
    assert (r.channel_scores[:, 0, 0] == 0).all()


def test_streaming_warmup_starts_scoring_after_warmup_readings(rng: np.random.Generator) -> None:
    cfg = DetectorConfig(warmup=50)
    det = DeviceDetector(channels=CHANNELS, config=cfg)
    x = healthy(rng, 120)
    x[30, 2] += 40  # inside warm-up: only static limits apply, 131 psi is in range
    x[100, 1] += 2.8  # after warm-up: a spike (4.8 mm/s, inside the limit, ISO zone C)
    r = det.update(timestamps(120), x)
    assert not det.state.ready or raises(r) == [100]
    assert det.state.ready
    assert r.channel_scores[:50, :, 2:].max() == 0.0


def test_warmup_still_enforces_static_limits(rng: np.random.Generator) -> None:
    det = DeviceDetector(channels=CHANNELS)
    x = healthy(rng, 10)
    x[3, 0] = 90.0
    r = det.update(timestamps(10), x)
    assert raises(r) == [3]
    assert not det.state.ready


def test_invalid_config_is_rejected_early() -> None:
    with pytest.raises(ValueError, match="clear_level"):
        AlarmConfig(raise_level=1.0, clear_level=2.0)
    with pytest.raises(ValueError, match="low"):
        Limits(low=10, high=5)
