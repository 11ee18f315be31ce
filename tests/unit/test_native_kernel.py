"""The compiled kernel: built here, and bit for bit the numpy kernel's results."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotpm.detection import (
    AlarmConfig,
    DetectorConfig,
    DeviceInput,
    DeviceState,
    FleetDetector,
    OperatingConfig,
    OperatingPointConfig,
    _layout,
    engine,
    native,
)
from iotpm.detection.detector import DetectionResult
from iotpm.detection.state import layout_for
from iotpm.testing.signals import CHANNELS, healthy, timestamps

FIELDS = (
    "score", "is_anomaly", "in_alarm", "channel_scores", "device_scores", "expected", "scale", "trend",
    "operating_point",
)  # fmt: skip


def test_the_kernel_is_built_for_this_machine() -> None:
    # scripts/test.sh installs a C compiler before `pip install`, whose build hook compiles it
    assert native.load() is not None, f"{native.library_name()} is missing or stale: pip install -e . rebuilds it"


def test_a_library_built_from_other_source_is_refused(tmp_path: Path) -> None:
    built = native.HERE / native.library_name()
    shutil.copy(built, tmp_path / built.name)
    shutil.copy(native.SOURCE, tmp_path / native.SOURCE.name)
    assert native.load_from(tmp_path) is not None
    (tmp_path / native.SOURCE.name).write_bytes(native.SOURCE.read_bytes() + b"\n/* changed */\n")
    assert native.load_from(tmp_path) is None  # so the numpy kernel runs, not a stale binary


def test_native_backend_is_refused_where_it_is_not_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "load", lambda: None)
    with pytest.raises(RuntimeError, match="not built"):
        FleetDetector(backend="native")
    assert FleetDetector(backend="auto").native is None


def test_more_channels_than_the_kernel_takes_run_on_numpy() -> None:
    fleet = FleetDetector(DetectorConfig(warmup=10), backend="native")
    channels = tuple(f"m{i}" for i in range(native.MAX_CHANNELS + 1))
    rng = np.random.default_rng(0)
    [(result, _)] = fleet.update([DeviceInput("wide", channels, timestamps(30), rng.normal(size=(30, len(channels))))])
    assert result.score.shape == (30,)
    assert fleet._kernel(channels).native is None and fleet._kernel(CHANNELS).native is not None


def fleet_input(seed: int, devices: int, fresh: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Devices of different lengths with every kind of odd reading the kernel must score."""
    rng = np.random.default_rng(seed)
    out = []
    for d in range(devices + fresh):
        n = int(rng.integers(1, 160))
        x = healthy(rng, n)
        ts = timestamps(n)
        x[rng.random((n, 3)) < 0.05] = np.nan
        if n > 20:
            x[n // 2 :, d % 3] += rng.choice([0.0, 6.0, 40.0])  # a step, sometimes past a threshold
            x[5:15, 1] = x[4, 1]  # stuck
            x[int(rng.integers(0, n)), int(rng.integers(0, 3))] = rng.choice([np.inf, -np.inf, 1e300])
            ts[n // 3 :] += int(rng.integers(0, 3)) * 600_000  # a gap, sometimes
            ts[n // 4] = ts[n // 4 - 1]  # a repeated timestamp
        if n > 40 and d % 2:  # the machine stops for a while: off, then starting, then settling
            stop = int(rng.integers(0, n - 20))
            x[stop : stop + 15, 1] = 0.05
            x[stop : stop + 15, 2] = 2.0
        out.append((f"dev-{d}", ts, x))
    return out


def run(backend: str, cfg: DetectorConfig, seed: int, devices: int, fresh: int, cut: int) -> list[list[object]]:
    """Two batches through one fleet; warmed devices resume from stored states."""
    fleet = FleetDetector(cfg, backend)  # type: ignore[arg-type]
    warm = FleetDetector(cfg, "numpy")
    rng = np.random.default_rng(seed + 1)
    data = fleet_input(seed, devices, fresh)
    states: list[DeviceState | None] = []
    for d, _, _ in data:
        if len(states) < devices:
            base = healthy(rng, 150)
            fitted = warm.fit(DeviceInput(d, CHANNELS, timestamps(150, start=1_699_999_000_000), base))
            states.append(DeviceState.from_dict(fitted.to_dict()))
        else:
            states.append(None)  # still to learn its baseline: warm-up, then statistics
    outputs: list[list[object]] = []
    for lo, hi in ((0, cut), (cut, None)):
        items = [DeviceInput(d, CHANNELS, ts[lo:hi], x[lo:hi], st) for (d, ts, x), st in zip(data, states, strict=True)]
        results = fleet.update(items)
        states = [st for _, st in results]
        outputs += [[*(getattr(r, f) for f in FIELDS), events(r), st.vector] for r, st in results]
    return outputs


def events(result: DetectionResult) -> str:
    """The events as text: floats print exactly, and a reading's missing value (NaN) equals itself."""
    return repr([(e.kind, e.index, e.ts_ms, e.severity, e.score, e.reasons) for e in result.events])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    devices=st.integers(1, 12),
    fresh=st.integers(0, 3),
    cut=st.integers(0, 160),
    cooldown=st.integers(0, 5),
    min_duration=st.integers(1, 3),
    dropout_alarms=st.booleans(),
    clear_s=st.sampled_from([0.0, 12.0, 600.0]),
)
def test_native_and_numpy_kernels_give_the_same_bits(
    seed: int,
    devices: int,
    fresh: int,
    cut: int,
    cooldown: int,
    min_duration: int,
    dropout_alarms: bool,
    clear_s: float,
) -> None:
    alarm = AlarmConfig(cooldown=cooldown, min_duration=min_duration, clear_s=clear_s)
    operating = OperatingConfig(start_s=10.0, settle_s=40.0)  # a few readings each
    # the operating-point test scores from the first reading, and within these few minutes
    point = OperatingPointConfig(learn_s=0.0, baseline_tau_s=600.0, regression_tau_s=300.0, margin=0.2)
    cfg = DetectorConfig(
        warmup=30, alarm=alarm, dropout_alarms=dropout_alarms, operating=operating, operating_point=point
    )
    want = run("numpy", cfg, seed, devices, fresh, cut)
    got = run("native", cfg, seed, devices, fresh, cut)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        for name, a, b in zip((*FIELDS, "events", "state"), g, w, strict=True):
            if isinstance(a, np.ndarray):
                assert np.array_equal(a, b, equal_nan=True), name  # type: ignore[arg-type]
            else:
                assert a == b, name


D, T, C, SIZE = 2, 5, 3, 200


def kernel_args() -> dict[str, object]:
    """Consistent arguments for a direct call of the C kernel (2 devices, 5 steps, 3 channels)."""
    return {
        "statistics": True,
        "offsets": np.zeros(len(native.OFFSETS), dtype=np.int64),
        "params": np.zeros(len(native.PARAMS)),
        "packed": np.zeros((D, SIZE)),
        # ts, x, lengths, low, high, roles, gate, rates
        "inputs": (
            np.zeros((D, T), np.int64),
            np.zeros((D, T, C)),
            np.full(D, T),
            *np.zeros((2, D, C)),
            np.zeros(C),
            np.ones((D, T)),
            np.zeros((len(_layout.RATES), D, T)),
        ),
        "outputs": tuple(np.zeros(shape) for shape in native._output_shapes(D, T, C)),
    }


def with_input(at: int, array: np.ndarray) -> dict[str, object]:
    args = kernel_args()
    inputs = list(args["inputs"])  # type: ignore[call-overload]
    inputs[at] = array
    return {**args, "inputs": tuple(inputs)}


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(with_input(2, np.full(D, T + 1)), id="a chunk longer than the padding"),
        pytest.param(with_input(0, np.zeros((D, T))), id="timestamps as floats"),
        pytest.param(with_input(1, np.zeros((D + 1, T, C))), id="values for another device count"),
        pytest.param(with_input(6, np.ones((D, T + 1))), id="a gate of another length"),
        pytest.param(with_input(1, np.zeros((D, T, 2 * C))[:, :, ::2]), id="values not contiguous"),
        pytest.param({**kernel_args(), "offsets": np.full(len(native.OFFSETS), SIZE)}, id="offsets past the state"),
        pytest.param(with_input(7, np.zeros((1, D, T))), id="rates of another width"),
        pytest.param({**kernel_args(), "outputs": (np.zeros((D, T)),) * 11}, id="outputs of the wrong shape"),
    ],
)
def test_arrays_the_c_code_would_overrun_are_refused(args: dict[str, object]) -> None:
    kernel = native.load()
    assert kernel is not None
    kernel(**kernel_args())  # type: ignore[arg-type]  # consistent arguments run
    with pytest.raises(ValueError, match=r"native kernel|padded length|offsets"):
        kernel(**args)  # type: ignore[arg-type]


def test_a_library_built_for_another_layout_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The C enums are generated from ``_layout.py``; the digest covers them, so a reorder is caught."""
    built = native.HERE / native.library_name()
    shutil.copy(built, tmp_path / built.name)
    shutil.copy(native.SOURCE, tmp_path / native.SOURCE.name)
    assert native.load_from(tmp_path) is not None
    monkeypatch.setattr(_layout, "PARAMS", (_layout.PARAMS[1], _layout.PARAMS[0], *_layout.PARAMS[2:]))
    assert native.load_from(tmp_path) is None


def test_the_layout_names_fields_the_state_has() -> None:
    header = _layout.header()
    assert all(f"O_{name.upper()}" in header for name in _layout.OFFSETS)
    assert set(_layout.OFFSETS) <= set(layout_for(3).offsets)


def test_the_state_layout_is_the_declarations_fields() -> None:
    lay = layout_for(3)
    declared = {f.name: f.width for d in _layout.DECLARATIONS for f in d.fields}
    assert set(lay.offsets) == set(declared) == set(_layout.OFFSETS)
    widths = {"channel": 3, "device": 1, "history": _layout.T2_HISTORY, "matrix": 9}
    assert all(lay.offsets[name].stop - lay.offsets[name].start == widths[w] for name, w in declared.items())
    assert lay.size == sum(widths[w] for w in declared.values())
    # the score axes are the scoring declarations, in declaration order
    assert tuple(d.name for d in _layout.DECLARATIONS if d.scope == "channel") == _layout.CHANNEL_DETECTORS
    assert tuple(d.name for d in _layout.DECLARATIONS if d.scope == "device") == _layout.DEVICE_DETECTORS


def test_a_name_declared_twice_is_refused() -> None:
    spike = next(d for d in _layout.DECLARATIONS if d.name == "spike")
    with pytest.raises(ValueError, match="declaration declared twice: spike"):
        _layout.check((*_layout.DECLARATIONS, spike))
    extra = _layout.Declaration("echo", "channel", (_layout.Field("mu", "channel", "again"),))
    with pytest.raises(ValueError, match="field declared twice: mu"):
        _layout.check((*_layout.DECLARATIONS, extra))


def test_a_declared_parameter_without_a_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "PARAMS", (*_layout.PARAMS, "echo_gain"))
    with pytest.raises(RuntimeError, match="echo_gain"):
        engine.Kernel(DetectorConfig(), CHANNELS, np.array([0.0, 1.0, 0.0]))
