"""A detector state kept between batches (BatchDetector.reuse_states) is the state its stored dict reads
back as: continuing from the object the detector left gives, bit for bit, the results and the next
stored dict that continuing from ``DeviceState.from_dict(state.to_dict())`` gives. Generated fleets of
devices in their warm-up and learned, with missing values, steps, stops and gaps, on both kernels; so a
field det adds to the state that ``to_dict`` does not carry (or carries inexactly) fails here."""

from __future__ import annotations

import json
import pickle
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotpm.detection import DetectorConfig, DeviceInput, DeviceState, FleetDetector
from iotpm.detection.detector import DetectionResult
from iotpm.service import detect
from iotpm.service.in_memory import MemoryPipeline
from iotpm.service.samples import batch
from iotpm.testing.signals import CHANNELS, healthy

T0 = 1_790_000_000_000
CHANNEL_SETS = (CHANNELS, CHANNELS[:2], (*CHANNELS, "current_a"))


def _chunk(rng: np.random.Generator, channels: tuple[str, ...], start: int, n: int) -> tuple[Any, Any]:
    """``n`` readings from ``start``: a pump's, with missing values, a step, a stop, an uneven interval."""
    steps = rng.choice([1_000, 5_000, 60_000, 600_000], size=n, p=[0.3, 0.5, 0.15, 0.05])
    ts = start + np.cumsum(steps).astype(np.int64)
    x = np.empty((n, len(channels)))
    x[:, : min(3, len(channels))] = healthy(rng, n)[:, : len(channels)]
    if len(channels) > 3:
        x[:, 3] = 12.0 + rng.normal(0.0, 0.2, n)
    x[rng.random(x.shape) < 0.05] = np.nan
    kind = rng.integers(0, 4)
    if kind == 1 and n:  # a step on one channel
        x[rng.integers(0, n) :, rng.integers(0, len(channels))] += rng.choice([5.0, -8.0, 40.0])
    elif kind == 2 and n:  # the machine stops: vibration to the floor
        x[rng.integers(0, n) :, 1] = rng.normal(0.02, 0.005)
    elif kind == 3 and n:  # a flat, stuck sensor
        x[:, 0] = 55.0
    return ts, x


def _same(a: tuple[DetectionResult, DeviceState], b: tuple[DetectionResult, DeviceState]) -> None:
    """Bit for bit: every field of the result (NaNs by their bits), and the state as it is stored; and the
    device record's trend made from the result in one pass is the detector's trend table as shown."""
    assert pickle.dumps(a[0]) == pickle.dumps(b[0])
    assert a[1].to_dict() == b[1].to_dict()
    shown = detect._shown(a[0].trend_table())
    assert json.dumps(detect._trend(a[0])) == json.dumps(shown)  # NaN and key order included


def test_a_trend_is_shown_as_the_detector_tables_it_whatever_its_values() -> None:
    """Levels, slopes, limits and hours of every kind: NaN, infinite, tiny, huge, negative, rounding at 7 digits."""
    rng = np.random.default_rng(5)
    odd = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-300, 5e-324, 1.7976931348623157e308, 0.12345675, 1234567.5]
    for _ in range(300):
        trend = rng.choice([*odd, *rng.normal(0, 1e3, 10)], size=(3, 4))
        result = DetectionResult(CHANNELS, np.zeros(0), np.zeros(0, bool), [], np.zeros((0, 3, 0)),
                                 np.zeros((0, 0)), np.zeros((0, 3)), np.zeros((0, 3)), 100.0, False, trend)  # fmt: skip
        assert json.dumps(detect._trend(result)) == json.dumps(detect._shown(result.trend_table()))


@pytest.mark.parametrize("backend", ["numpy", "auto"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31),
    sizes=st.lists(st.lists(st.integers(1, 60), min_size=1, max_size=6), min_size=2, max_size=6),
    warmup=st.sampled_from([20, 40, 200]),
)
def test_a_kept_state_continues_as_its_stored_dict_does(
    backend: str, seed: int, sizes: list[list[int]], warmup: int
) -> None:
    """``sizes``: per batch, each device's chunk length (a device absent from a batch sits it out)."""
    rng = np.random.default_rng(seed)
    fleet = FleetDetector(DetectorConfig(warmup=warmup), backend=backend)  # type: ignore[arg-type]
    devices = max(len(s) for s in sizes)
    channels = [CHANNEL_SETS[int(rng.integers(0, len(CHANNEL_SETS)))] for _ in range(devices)]
    kept: dict[int, DeviceState] = {}
    clock = [T0] * devices
    for chunk_sizes in sizes:
        kept_inputs, read_inputs, order = [], [], []
        for d, n in enumerate(chunk_sizes):
            ts, x = _chunk(rng, channels[d], clock[d], n)
            clock[d] = int(ts[-1])
            state = kept.get(d)
            read = None if state is None else DeviceState.from_dict(state.to_dict())
            kept_inputs.append(DeviceInput(f"dev-{d}", channels[d], ts, x, state, "line-1", "pump"))
            read_inputs.append(DeviceInput(f"dev-{d}", channels[d], ts.copy(), x.copy(), read, "line-1", "pump"))
            order.append(d)
        from_kept = fleet.update(kept_inputs)
        from_read = fleet.update(read_inputs)
        for d, a, b in zip(order, from_kept, from_read, strict=True):
            _same(a, b)
            kept[d] = a[1]  # the chain the processor follows: the object the detector left
    assert kept


def test_a_processor_reusing_states_stores_what_one_reading_every_state_stores() -> None:
    """Over batches with a retried one and a failed write: records, readings, rollups, anomalies equal."""
    pipes = [MemoryPipeline.build(), MemoryPipeline.build()]
    procs = [p.processor() for p in pipes]
    procs[1]._detect.reuse_states = False
    reused = []
    for i in range(8):
        records = batch(6, 30, start_ms=T0 + i * 30_000, first_seq=i * 30, faulty=[2], fault_from=90, seed=i)
        for proc in procs:
            proc(records, now_ms=T0 + (i + 1) * 30_000)
            if i in (3, 5):  # a Lambda retry of the same batch: every device's record already moved on
                proc(records, now_ms=T0 + (i + 1) * 30_000 + 1)
        reused.append(len(procs[0]._detect._kept))
        a, b = pipes
        assert a.states.items == b.states.items
        assert a.readings.chunks == b.readings.chunks
        assert a.rollups.blocks == b.rollups.blocks
        assert a.anomalies.items.keys() == b.anomalies.items.keys()
    assert procs[0]._detect._kept and not procs[1]._detect._kept and min(reused) == 6
