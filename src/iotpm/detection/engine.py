"""The vectorised kernel: one pass over time, vectorised across devices and channels.

Devices in a call are sorted by how many readings they bring, so at step ``t`` the
devices still active are a prefix ``[:k]`` of the stack and every update is an
in-place operation on a view of the packed state. Every recursion is evaluated one
reading at a time in a fixed order, so feeding a series in chunks of any size gives
bit-for-bit the result of feeding it at once.

A call is a few named steps, each taking and returning small named structures: the
:class:`Chunk` of inputs; the limits (:class:`LimitScores`), the statistical detectors
(:class:`StatisticalScores`, their recursions in :mod:`iotpm.detection.recursions`) and
the operating point (:class:`OperatingPoint`) each return their detectors' scores by
name, which :meth:`Scores.put` files under the detector's column; the alarm's hysteresis
(:class:`AlarmRuns`, :class:`Alarm`) runs over the device's score. A new detector is
declared in :mod:`iotpm.detection._layout`, gets a field in its step's structure, and
its computation in that step (and in ``_kernel.c``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from iotpm.detection import recursions
from iotpm.detection._layout import CH, CHANNEL_DETECTORS, DEV, DEVICE_DETECTORS, OFFSETS, PARAMS, RATES
from iotpm.detection.config import DetectorConfig
from iotpm.detection.detectors import (
    Drift,
    Dropout,
    Flatline,
    IsoVibrationZone,
    Multivariate,
    RateOfChange,
    Spike,
    StaticThreshold,
    chi2_quantile,
)
from iotpm.detection.native import LOADS, NativeKernel
from iotpm.detection.recursions import run_lengths
from iotpm.detection.state import FloatArray, IntArray, Layout, load_proxy
from iotpm.models.metrics import parse_metric

_MAD_TO_SIGMA = 1.4826
_DEFAULT_INTERVAL_MS = 1000.0
_T2_RIDGE = 0.05
#: the fewest complete warm-up readings per metric for the multivariate detectors' correlation.
#: Physical (statistical): the sample correlation of p metrics from n readings has its smallest
#: eigenvalues at (1 - sqrt(p / n))^2 of the true ones even for independent metrics (the
#: Marchenko-Pastur edge), and T² divides by them: below 10 readings a metric that is under half
#: (0.47), so T² in those directions is more than doubled; features that are functions of each
#: other (a crest factor is max / rms) put eigenvalues at zero, which a short sample cannot tell
#: from real structure. With fewer, the multivariate detectors stay off (the per-metric ones judge).
#: The usual rule of thumb is 10 (5-10 per variable); 8 (smallest eigenvalues at 0.42 of the true
#: ones) is what is asked, so that a device read every 10 minutes with 3 metrics, warmed up on 30
#: readings, keeps its multivariate detectors when up to 6 of them miss a value (a dropped field, a
#: gateway's late metric): at 10 a single missing value switched them off until a rebaseline
#: (review D). Every benchmark's figures are the same at 8, 9 and 10.
_T2_READINGS_PER_METRIC = 8
_WINSOR = 8.0  # MAD-sigmas beyond which warm-up values are clipped
_FLAT_LEAST = 3.0  # the fewest repeats that are a stuck run of a metric with a unit (a run must be one)

Mask = npt.NDArray[np.bool_]


def new_vector(layout: Layout) -> FloatArray:
    """The state of a device that has seen nothing yet (statistics not learned)."""
    v = np.zeros(layout.size)
    v[layout.offsets["s"]] = 1.0
    v[layout.offsets["s_min"]] = 1.0
    v[layout.offsets["dscale"]] = 1.0
    v[layout.offsets["flat_thr"]] = np.inf
    v[layout.offsets["last_x"]] = np.nan
    v[layout.offsets["drift_from"]] = np.nan
    v[layout.offsets["hold_at"]] = np.nan
    v[layout.offsets["dt_exp"]] = _DEFAULT_INTERVAL_MS
    v[layout.offsets["interval"]] = _DEFAULT_INTERVAL_MS
    v[layout.offsets["floor"]] = np.inf
    v[layout.offsets["running"]] = 1.0
    v[layout.offsets["started"]] = -np.inf
    v[layout.offsets["below_since"]] = -np.inf
    v[layout.offsets["cleared_at"]] = -np.inf
    v[layout.offsets["off_mult"]] = 1.0
    v[layout.offsets["load_v"]] = 1.0
    v[layout.offsets["now_v"]] = 1.0
    return v


def fit_statistics(
    vector: FloatArray,
    layout: Layout,
    ts: IntArray,
    x: FloatArray,
    cfg: DetectorConfig,
    proxy: int = -1,
    measured: npt.NDArray[np.bool_] | None = None,
) -> None:
    """Learn the baseline of one device from a label-free block, in place.

    Robust location and scale (median, MAD), the typical step, the longest repeat,
    the expected interval and the correlation of the metrics. Alarm and counters are
    left alone: a device keeps its alarm through the end of its warm-up. ``measured`` (c,):
    the metrics with a unit the detector knows (a physical quantity of a running machine).
    """
    o = layout.offsets
    with np.errstate(all="ignore"):
        med = _nan_or(np.nanmedian(x, axis=0), 0.0)
        mad = _nan_or(np.nanmedian(np.abs(x - med), axis=0), 0.0) * _MAD_TO_SIGMA
        # The standard deviation reflects how heavy the tails are; winsorising far out
        # keeps one wild reading in the warm-up from blinding the detector.
        bound = _WINSOR * np.where(mad > 0, mad, np.inf)
        sd = _nan_or(np.nanstd(np.clip(x, med - bound, med + bound), axis=0), 0.0)
        dx = np.abs(np.diff(x, axis=0))
        steps = [col[np.isfinite(col) & (col > 0)] for col in dx.T]
    resolution = np.array([s.min() if s.size else 0.0 for s in steps])
    typical = np.array([_winsorised_mean(s) for s in steps])
    scale = np.where(mad > 0, mad, sd) if cfg.robust_scale else np.where(sd > 0, sd, mad)
    s_min = np.fmax(np.fmax(cfg.scale_floor * scale, resolution), 1e-9 * np.fmax(1.0, np.abs(med)))
    vector[o["mu"]] = med
    vector[o["fast"]] = med
    vector[o["slow"]] = med
    vector[o["s"]] = np.fmax(scale, s_min)
    vector[o["s_min"]] = s_min
    vector[o["dscale"]] = np.fmax(typical, s_min)
    vector[o["cp"]] = 0.0
    vector[o["cn"]] = 0.0
    vector[o["drift_from"]] = np.nan
    vector[o["hold_at"]] = np.nan
    vector[o["hold_ms"]] = 0.0
    vector[o["restart"]] = 0.0
    # the operating-point baseline starts at the warm-up's level; the load proxy's variance
    # at its noise (the regression on it learns as the load changes)
    for name in ("op_m", "op_f", "op_b"):
        vector[o[name]] = med
    vector[o["op_c"]] = 0.0
    vector[o["load"]] = vector[o["load_m"]] = med[proxy] if proxy >= 0 else 0.0
    vector[o["load_v"]] = max(float(vector[o["s"]][proxy]) ** 2, 1e-12) if proxy >= 0 else 1.0
    vector[o["now"]] = vector[o["now_m"]] = vector[o["op_l"]] = vector[o["load_m"]]
    vector[o["now_v"]] = vector[o["load_v"]]
    vector[o["ran"]] = 0.0
    runs, longest = _runs(x)
    vector[o["run"]] = runs
    vector[o["last_x"]] = _last_finite(x)
    dts = np.diff(ts)
    dts = dts[dts > 0]
    vector[o["dt_exp"]] = float(np.median(dts)) if dts.size else _DEFAULT_INTERVAL_MS
    # the shortest stuck run by the warm-up's repeats, flatline_factor x its longest: of a metric
    # without a unit in readings (a count may repeat), at least flatline_min; of a metric with a
    # unit in time (its longest repeat lasted that many warm-up intervals), judged at the interval
    # it reads at with flatline_s (Kernel._stuck_after): a casing read every 10 minutes that held
    # its last digit for 70 minutes holds it as long when read every 10 s
    by_repeats = cfg.flatline_factor * longest
    timed = by_repeats * float(vector[o["dt_exp"]][0])
    # a metric with a unit sent coarser than its noise repeats by itself: stuck after half a day
    with np.errstate(all="ignore"):
        pairs = np.isfinite(x[1:]) & np.isfinite(x[:-1])
        repeats = np.sum((x[1:] == x[:-1]) & pairs, axis=0) / np.maximum(np.sum(pairs, axis=0), 1)
    coarse = (repeats >= cfg.flatline_coarse_repeats) & (np.sum(pairs, axis=0) >= _COARSE_LEAST)
    timed = np.where(coarse, np.fmax(timed, 1000.0 * cfg.flatline_coarse_s), timed)
    least = np.where(measured if measured is not None else False, timed, np.fmax(cfg.flatline_min, by_repeats))
    vector[o["flat_thr"]] = np.where(scale > 0, least, np.inf)
    vector[o["interval"]] = vector[o["dt_exp"]]
    device_rates(vector[None, :], layout, cfg)
    if len(ts):
        vector[o["last_t"]] = float(ts[-1])
    _fit_tails_and_correlation(vector, layout, x, dx, med, bound, cfg)


def _fit_tails_and_correlation(
    vector: FloatArray,
    layout: Layout,
    x: FloatArray,
    dx: FloatArray,
    med: FloatArray,
    bound: FloatArray,
    cfg: DetectorConfig,
) -> None:
    """The warm-up's largest |z| and step ratio, whether each channel is smooth, the floor
    and the metrics' correlation (for the multivariate detectors), in place."""
    o = layout.offsets
    with np.errstate(all="ignore"):
        z = np.minimum(np.abs(x - med), bound) / vector[o["s"]]
        vector[o["zmax"]] = _nan_or(np.nanmax(z, axis=0, initial=0.0), 0.0)
        vector[o["dmax"]] = _nan_or(np.nanmax(dx / vector[o["dscale"]], axis=0, initial=0.0), 0.0)
    vector[o["smooth"]] = np.where(vector[o["dscale"]] < cfg.smooth_step_ratio * vector[o["s"]], 1.0, 0.0)
    vector[o["mew"]] = 0.0
    vector[o["t2_hist"]] = 0.0
    with np.errstate(all="ignore"):
        vector[o["floor"]] = np.fmin(vector[o["floor"]], _nan_or(np.nanmin(x, axis=0, initial=np.inf), np.inf))
    # winsorised like the spread: one wild reading (1e300) would swamp the correlation
    precision = _precision(np.clip(x, med - bound, med + bound), med, vector[o["s"]], cfg)
    vector[o["t2_on"]] = 0.0 if precision is None else 1.0
    vector[o["P"]] = 0.0 if precision is None else precision.ravel()


def device_rates(packed: FloatArray, layout: Layout, cfg: DetectorConfig) -> None:
    """Each device's per-reading rates from its time constants and its warm-up's interval,
    in place: computed here once for both kernels, so they agree bit for bit."""
    interval = layout.scalar(packed, "interval")
    ln_half = np.log(0.5) * interval / 1000.0
    mewma = -np.expm1(ln_half / cfg.mewma_halflife_s)
    layout.scalar(packed, "r_adapt")[:] = 1.0 - 0.5 ** (1.0 / cfg.adapt_halflife)  # in readings (config)
    layout.scalar(packed, "r_tail")[:] = np.exp(ln_half / cfg.tail_halflife_s)
    layout.scalar(packed, "r_mewma")[:] = mewma
    limit = chi2_quantile(layout.c, cfg.t2_z)
    layout.scalar(packed, "r_ewma_limit")[:] = cfg.mewma_factor * limit * mewma / (2.0 - mewma)


def _nan_or(a: FloatArray, fill: float) -> FloatArray:
    return np.where(np.isfinite(a), a, fill)


def _winsorised_mean(steps: FloatArray) -> float:
    if not steps.size:
        return 0.0
    return float(np.mean(np.minimum(steps, np.quantile(steps, 0.95))))


#: the warm-up steps a repeat rate is judged from (fewer tell nothing about the sensor's resolution)
_COARSE_LEAST = 10


def _runs(x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Trailing and longest run of repeats per channel (a repeat = equal to the previous)."""
    c = x.shape[1]
    trailing, longest = np.zeros(c), np.zeros(c)
    for j in range(c):
        eq = np.concatenate(([False], x[1:, j] == x[:-1, j]))
        run = 0.0
        for flag in eq:
            run = run + 1.0 if flag else 0.0
            longest[j] = max(longest[j], run)
        trailing[j] = run
    return trailing, longest


def _last_finite(x: FloatArray) -> FloatArray:
    out = np.full(x.shape[1], np.nan)
    for j in range(x.shape[1]):
        finite = np.flatnonzero(np.isfinite(x[:, j]))
        if finite.size:
            out[j] = x[finite[-1], j]
    return out


def _precision(x: FloatArray, mu: FloatArray, s: FloatArray, cfg: DetectorConfig) -> FloatArray | None:
    """The inverse of the (ridged) correlation of the complete rows' z-scores, or None."""
    c = x.shape[1]
    rows = np.all(np.isfinite(x), axis=1)
    if c < 2 or rows.sum() < _T2_READINGS_PER_METRIC * c:
        return None
    with np.errstate(all="ignore"):
        z = (x[rows] - mu) / s
        z = z - z.mean(axis=0)
        cov = z.T @ z / max(len(z) - 1, 1)
        d = np.sqrt(np.clip(np.diag(cov), 1e-12, None))
        corr = cov / np.outer(d, d)
    if not np.isfinite(corr).all():
        return None  # no usable correlation (the scale overflowed): the multivariate detector stays off
    return np.asarray(np.linalg.inv(corr + _T2_RIDGE * np.eye(c)), dtype=np.float64)


@dataclass
class KernelOutput:
    """Per-reading outputs of one kernel call, (devices, steps, ...) padded."""

    score: FloatArray  # (d, t)
    in_alarm: npt.NDArray[np.bool_]  # (d, t) the alarm is on after the reading
    raised: FloatArray  # (d, t) 0/1
    cleared: FloatArray  # (d, t) 0/1
    channel_scores: FloatArray  # (d, t, c, len(CHANNEL_DETECTORS))
    device_scores: FloatArray  # (d, t, len(DEVICE_DETECTORS))
    expected: FloatArray  # (d, t, c) baseline level before the reading
    scale: FloatArray  # (d, t, c) baseline scale before the reading
    transitions: list[bool]  # (d,) any raise or clear in the row
    anomalous: npt.NDArray[np.bool_]  # (d, t) in the alarm and scoring at the raise level
    shares: FloatArray  # (d, t, c) each channel's share of the multivariate score
    point: FloatArray  # (d, t, c) the operating-point baseline's value for the reading's load

    def rows(self, row: int, length: int) -> KernelRows:
        """One device's share: row ``row``, its first ``length`` steps (views, no copies)."""
        return KernelRows(
            self.score[row, :length],
            self.in_alarm[row, :length],
            self.anomalous[row, :length],
            self.raised[row, :length],
            self.cleared[row, :length],
            self.channel_scores[row, :length],
            self.device_scores[row, :length],
            self.expected[row, :length],
            self.scale[row, :length],
            self.shares[row, :length],
            self.point[row, :length],
        )


class KernelRows(NamedTuple):
    """One device's per-reading outputs, from one kernel call or joined over several."""

    score: FloatArray  # (n,)
    in_alarm: npt.NDArray[np.bool_]  # (n,)
    anomalous: npt.NDArray[np.bool_]  # (n,)
    raised: FloatArray  # (n,)
    cleared: FloatArray  # (n,)
    channel_scores: FloatArray  # (n, c, len(CHANNEL_DETECTORS))
    device_scores: FloatArray  # (n, len(DEVICE_DETECTORS))
    expected: FloatArray  # (n, c)
    scale: FloatArray  # (n, c)
    shares: FloatArray  # (n, c)
    point: FloatArray  # (n, c)

    @classmethod
    def join(cls, parts: list[KernelRows], channels: int) -> KernelRows:
        """The parts one after the other (none: the empty rows of a device with ``channels``)."""
        if len(parts) == 1:
            return parts[0]
        if parts:
            return cls(*(np.concatenate(column) for column in zip(*parts, strict=True)))
        empty = np.zeros(0)
        never = np.zeros(0, dtype=bool)
        c = channels
        return cls(
            empty,
            never,
            never,
            empty,
            empty,
            np.zeros((0, c, len(CHANNEL_DETECTORS))),
            np.zeros((0, len(DEVICE_DETECTORS))),
            np.zeros((0, c)),
            np.zeros((0, c)),
            np.zeros((0, c)),
            np.zeros((0, c)),
        )


class Chunk(NamedTuple):
    """One kernel call's inputs, padded (d, t, ...); devices sorted by length, descending."""

    ts: IntArray  # (d, t) epoch ms
    x: FloatArray  # (d, t, c) NaN = missing
    lengths: IntArray  # (d,) readings per device
    low: FloatArray  # (d, c) each device's static limits
    high: FloatArray  # (d, c)
    gate: FloatArray  # (d, t) the operating gate (:mod:`iotpm.detection.operating`)
    rates: FloatArray  # (len(RATES), d, t) per-reading weights (:meth:`Kernel._rates`)
    active: IntArray  # (t,) how many devices (a prefix of the stack) have a reading at each step


@dataclass
class Scores:
    """Every detector's score over a chunk, and the baselines behind them (d, t, ...)."""

    channel: FloatArray  # (d, t, c, len(CHANNEL_DETECTORS))
    device: FloatArray  # (d, t, len(DEVICE_DETECTORS))
    share: FloatArray  # (d, t, c) each channel's share of the multivariate score
    expected: FloatArray  # (d, t, c) the statistical baseline's level before the reading
    scale: FloatArray  # (d, t, c) and its scale
    point: FloatArray  # (d, t, c) the operating-point baseline's value at the reading's load

    @classmethod
    def zeros(cls, d: int, t: int, c: int) -> Scores:
        expected, scale, point = np.zeros((3, d, t, c))
        return cls(
            np.zeros((d, t, c, len(CHANNEL_DETECTORS))),
            np.zeros((d, t, len(DEVICE_DETECTORS))),
            np.zeros((d, t, c)),
            expected,
            scale,
            point,
        )

    def put(self, scores: LimitScores | StatisticalScores | OperatingPointScore) -> None:
        """Each detector's score (a field named as the detector) into its column."""
        for name, value in scores._asdict().items():
            if name in CH:
                self.channel[..., CH[name]] = value
            else:
                self.device[..., DEV[name]] = value


class LimitScores(NamedTuple):
    """The limit detectors' scores (d, t, c)."""

    threshold: FloatArray
    iso10816: FloatArray


class StatisticalScores(NamedTuple):
    """The statistical detectors' scores: per channel (d, t, c), per device (d, t)."""

    spike: FloatArray
    drift: FloatArray
    rate_of_change: FloatArray
    flatline: FloatArray
    dropout: FloatArray
    multivariate: FloatArray


class StatisticalBaseline(NamedTuple):
    """What the statistical detectors judged against (d, t, c)."""

    expected: FloatArray  # the level before each reading
    scale: FloatArray  # its scale
    share: FloatArray  # each channel's share of the multivariate score


class OperatingPointScore(NamedTuple):
    operating_point: FloatArray  # (d, t, c)


class OperatingPoint(NamedTuple):
    """The operating-point test's score and the value its baseline expects (d, t, c)."""

    score: FloatArray
    point: FloatArray


class OperatingRates(NamedTuple):
    """The operating point's per-reading weights (from :meth:`Kernel._rates`), one per time constant."""

    lag: FloatArray  # the load proxy's thermal lag
    regression: FloatArray  # the load's mean and variance, the channels' regression on it
    level: FloatArray  # a channel's smoothed level
    baseline: FloatArray  # the operating point's baseline
    elapsed: FloatArray  # the time since the previous reading (ms, capped)


class OperatingState(NamedTuple):
    """The operating point's state, named as its fields in the packed state."""

    load: FloatArray  # (d,) the lagged load proxy
    load_m: FloatArray  # (d,) its mean
    load_v: FloatArray  # (d,) its variance
    ran: FloatArray  # (d,) settled running time seen (ms)
    now: FloatArray  # (d,) the load proxy as it is (its last running reading)
    now_m: FloatArray  # (d,) its mean
    now_v: FloatArray  # (d,) its variance
    op_m: FloatArray  # (d, c) each channel's mean
    op_c: FloatArray  # (d, c) its covariance with the load
    op_f: FloatArray  # (d, c) its smoothed level, net of the load's share
    op_b: FloatArray  # (d, c) the baseline that level is judged against
    op_l: FloatArray  # (d, c) the load that baseline stands for

    @classmethod
    def load_from(cls, packed: FloatArray, lay: Layout) -> OperatingState:
        """A copy of the state in ``packed``."""
        scalars = (lay.scalar(packed, name).copy() for name in cls._fields[:_DEVICE_WIDE])
        return cls(*scalars, *(lay.view(packed, name).copy() for name in cls._fields[_DEVICE_WIDE:]))

    def store(self, packed: FloatArray, lay: Layout) -> None:
        for name, value in zip(self._fields[:_DEVICE_WIDE], self[:_DEVICE_WIDE], strict=True):
            lay.scalar(packed, name)[:] = value
        for name, value in zip(self._fields[_DEVICE_WIDE:], self[_DEVICE_WIDE:], strict=True):
            lay.view(packed, name)[:] = value


_DEVICE_WIDE = 7  # OperatingState's per-device fields come first


class LoadStep(NamedTuple):
    """What one reading of the load leaves for the channels (d, c)."""

    rr: FloatArray  # (d, 1) the regression's weight
    rb: FloatArray  # (d, 1) the baseline's weight
    dl: FloatArray  # each channel's load's deviation from its mean, before the reading
    lv: FloatArray  # that load's variance, after it
    value: FloatArray  # that load itself


class Alarm(NamedTuple):
    """The alarm over a chunk (d, t)."""

    score: FloatArray  # the device's score at each reading
    on: FloatArray  # 1 while the alarm is on after the reading
    raised: FloatArray  # 1 at a raise
    cleared: FloatArray  # 1 at a clear


class AlarmRuns(NamedTuple):
    """Runs of each device's score (d, t) and where they let the alarm change."""

    above: FloatArray  # readings in a row at the raise level
    below: FloatArray  # readings in a row below the clear level
    can_raise: Mask
    can_clear: Mask  # at the shortest off-delay (clear_s)
    settled: Mask  # clear_duration readings below the clear level
    gone: FloatArray  # ms since the run below the clear level began
    back: Mask  # at the raise level after the plain off-delay below the clear level


class Kernel:
    """Runs all detectors and the alarm decision over a stack of devices.

    With ``native`` (the compiled kernel of :mod:`iotpm.detection.native`), one C call
    does the work of the numpy code below, with the same results bit for bit.
    """

    def __init__(
        self,
        config: DetectorConfig,
        channels: tuple[str, ...],
        vibration: FloatArray,
        native: NativeKernel | None = None,
    ) -> None:
        self.cfg = config
        self.layout = Layout(len(channels))
        self.vibration = vibration.astype(bool)  # (c,) channels that get ISO zones
        self.static = StaticThreshold()
        self.iso = IsoVibrationZone(config)
        self.spike = Spike(config)
        self.drift = Drift(config)
        self.roc = RateOfChange(config)
        self.flat = Flatline()
        self.dropout = Dropout(config)
        self.t2 = Multivariate(config, len(channels))
        self.native = native
        # the operating point: the load proxy, and the channels whose level follows it (a
        # temperature follows the heat the load makes)
        self.proxy = load_proxy(channels)
        units = [parse_metric(name) for name in channels]
        follows = [self.proxy >= 0 and u is not None and u.quantity == "temperature" for u in units]
        self.follows = np.array(follows, dtype=bool)
        self.is_proxy = np.arange(len(channels)) == self.proxy
        # every other metric the detector knows (a head, a flow, a current, another bearing's
        # vibration) follows the load at once: it is regressed on the load proxy as it is, so
        # a machine's own coupling is learned (a pressure held at a setpoint learns none)
        at_once = [self.proxy >= 0 and u is not None and not f for u, f in zip(units, follows, strict=True)]
        self.instant = np.array(at_once, dtype=bool) & ~self.is_proxy
        self.regressed = self.follows | self.instant
        # a temperature's low limit judges a running machine that has warmed up: a casing warms
        # from ambient over the settling (settle_s), so its low limit waits it out
        self.warms = np.array([u is not None and u.quantity == "temperature" for u in units], dtype=bool)
        # a metric with a unit the detector knows: stuck after flatline_s at the interval it reads at
        self.measured = np.array([u is not None for u in units], dtype=bool)
        held = config.operating_point.setpoint_quantities
        self.setpoint = np.array([u is not None and u.quantity in held for u in units], dtype=bool)
        op = config.operating_point
        self._taus_ms = 1000.0 * np.array([op.thermal_tau_s, op.regression_tau_s, op.level_tau_s, op.baseline_tau_s])
        self._scratch: dict[str, FloatArray] = {}
        self._offsets = np.array([self.layout.offsets[name].start for name in OFFSETS], dtype=np.int64)
        self._params = self._native_params()

    def _native_params(self) -> FloatArray:
        """The parameters of the C kernel, in its order (what the numpy code reads from config)."""
        cfg, alarm = self.cfg, self.cfg.alarm
        values = {
            "cusum_clip": cfg.cusum_clip,
            "adapt_clip": min(cfg.adapt_clip, cfg.cusum_clip),
            "interval_tau_ms": recursions.time_constant_ms(cfg.interval_halflife_s),
            "cusum_k": cfg.cusum_k,
            "cusum_h": cfg.cusum_h,
            "drift_relearn_ms": 1000.0 * cfg.drift_relearn_s,
            "drift_settle_ms": 1000.0 * cfg.drift_settle_s,
            "tail_factor": cfg.tail_factor,
            "spike_z": cfg.spike_z,
            "roc_z": cfg.roc_z,
            "dropout_factor": cfg.dropout_factor,
            "flatline_ms": 1000.0 * cfg.flatline_s,
            "flatline_min": cfg.flatline_min,
            "trend_rate": cfg.trend_rate,
            "trend_rate_slow": cfg.trend_rate_slow,
            "t2_clip": self.t2.clip,
            "t2_limit": self.t2.limit,
            "raise_level": alarm.raise_level,
            "clear_level": alarm.clear_level,
            "min_duration": alarm.min_duration,
            "clear_duration": alarm.clear_duration,
            "cooldown": alarm.cooldown,
            "clear_ms": 1000.0 * alarm.clear_s,
            "off_mult_max": alarm.off_mult_max,
            "dropout_alarms": cfg.dropout_alarms,
            "iso_bc": self.iso.bc,
            "iso_cd": self.iso.cd,
            "op_margin": cfg.operating_point.margin,
            "op_learn_ms": 1000.0 * cfg.operating_point.learn_s,
            "proxy": self.proxy,
        }
        if set(values) != set(PARAMS):  # a declared parameter without a value, or the reverse
            raise RuntimeError(f"kernel parameters out of step with _layout: {sorted(set(values) ^ set(PARAMS))}")
        return np.array([float(values[name]) for name in PARAMS])

    def __call__(
        self,
        packed: FloatArray,
        ts: IntArray,
        x: FloatArray,
        lengths: IntArray,
        low: FloatArray,
        high: FloatArray,
        statistics: bool,
        gate: FloatArray | None = None,
    ) -> KernelOutput:
        """Process ``x`` (d, t, c) in place of ``packed`` (d, size); lengths sorted descending.

        ``gate`` (d, t) is 1 where the machine runs and has settled (the default): below 1
        the reading is missing to the statistics, and from 0 to 1 the step to the next
        reading starts afresh; at 0 and below its low limit does not apply either
        (:mod:`iotpm.detection.operating`).
        """
        d, t, c = x.shape
        device_rates(packed, self.layout, self.cfg)
        chunk = Chunk(
            ts,
            x,
            lengths,
            low,
            high,
            np.ones((d, t)) if gate is None else gate,
            self._rates(packed, ts),
            (lengths[:, None] > np.arange(t)[None, :]).sum(axis=0),
        )
        scores = Scores.zeros(d, t, c)
        if self.native is not None:
            alarm = self._native_call(packed, chunk, scores, statistics)
        else:
            with np.errstate(all="ignore"):  # inf and NaN are scored, not raised
                self._score(packed, chunk, scores, statistics)
            alarming = scores.device if self.cfg.dropout_alarms else np.delete(scores.device, DEV["dropout"], axis=2)
            score = np.fmax(scores.channel.max(axis=(2, 3)), alarming.max(axis=2))
            alarm = Alarm(score, *self._alarm(packed, ts, score, chunk.active))
        transitions: list[bool] = np.asarray(((alarm.raised > 0) | (alarm.cleared > 0)).any(axis=1)).tolist()
        in_alarm = alarm.on > 0
        anomalous = in_alarm & (alarm.score >= self.cfg.alarm.raise_level)
        return KernelOutput(
            alarm.score,
            in_alarm,
            alarm.raised,
            alarm.cleared,
            scores.channel,
            scores.device,
            scores.expected,
            scores.scale,
            transitions,
            anomalous,
            scores.share,
            scores.point,
        )

    def _native_call(self, packed: FloatArray, chunk: Chunk, scores: Scores, statistics: bool) -> Alarm:
        """One call of the C kernel: it fills ``scores`` and returns the alarm."""
        assert self.native is not None
        d, t = chunk.ts.shape
        alarm = Alarm(*np.zeros((4, d, t)))
        loads = self._buffer("loads", (d, t, LOADS))  # scratch: the C kernel writes it before reading
        roles = self.vibration.astype(np.float64) + 2.0 * self.follows + 4.0 * self.setpoint + 8.0 * self.is_proxy
        roles += 16.0 * self.instant + 32.0 * self.warms + 64.0 * self.measured
        inputs = (chunk.ts, chunk.x, chunk.lengths, chunk.low, chunk.high, roles, chunk.gate, chunk.rates)
        outputs = (
            *(alarm.score, alarm.on, alarm.raised, alarm.cleared, scores.channel, scores.device),
            *(scores.expected, scores.scale, scores.share, scores.point, loads),
        )
        self.native(statistics, self._offsets, self._params, packed, inputs, outputs)
        return alarm

    def _score(self, packed: FloatArray, chunk: Chunk, scores: Scores, statistics: bool) -> None:
        """Every detector's score over the chunk into ``scores``, advancing ``packed``."""
        scores.put(self._limits(chunk))
        if statistics:
            on = chunk.gate[..., None] >= 1.0
            x_stat = np.where(on, chunk.x, np.nan)
            # padding is not a reading; below 0 (idle at a floor) the last value is kept
            t = chunk.x.shape[1]
            padding = np.arange(t)[None, :, None] >= chunk.lengths[:, None, None]
            gated = ~on & (chunk.gate[..., None] >= 0.0) & ~padding
            process = np.isfinite(chunk.low) | np.isfinite(chunk.high)  # (d, c) metrics with a static limit
            baseline, statistical = self._statistics(packed, chunk, x_stat, gated, process)
            scores.put(statistical)
            scores.expected, scores.scale, scores.share = baseline.expected, baseline.scale, baseline.share
            op = self._operating_point(packed, chunk, x_stat)
            scores.put(OperatingPointScore(op.score))
            scores.point = op.point
        else:
            scores.expected = scores.scale = scores.point = np.full(chunk.x.shape, np.nan)
        np.nan_to_num(scores.channel, copy=False, nan=0.0, posinf=1e6)
        np.nan_to_num(scores.device, copy=False, nan=0.0, posinf=1e6)

    def _limits(self, chunk: Chunk) -> LimitScores:
        """The static limits and ISO 10816-3's zones. ISO 10816-3 judges steady running: a
        vibration's limits wait out a start and a run-down (gate 0 while the machine turns;
        stopped, it sits at its floor anyway). Low limits judge a running machine (a stopped
        pump's pressure is below its low limit by design); a temperature's, a warm one (it
        waits out the settling: the casing warms from ambient)."""
        x, gate = chunk.x, chunk.gate[..., None]
        transient = self.vibration & (gate == 0.0)
        running = np.where(self.warms, gate >= 1.0, gate > 0.0)
        static = self.static(x, chunk.low[:, None, :], chunk.high[:, None, :], running)
        return LimitScores(
            threshold=np.where(transient, 0.0, static),
            iso10816=np.where(self.vibration & ~transient, self.iso(x), 0.0),
        )

    def _statistics(
        self, packed: FloatArray, chunk: Chunk, x: FloatArray, gated: Mask, process: Mask
    ) -> tuple[StatisticalBaseline, StatisticalScores]:
        """The statistical detectors over ``x`` (NaN = missing to the statistics): advances
        the baseline (:mod:`iotpm.detection.recursions`) and scores against it."""
        lay, c = self.layout, x.shape[2]
        # across a gap, a metric with a limit has no rate of change: nothing is known of how
        # it moved meanwhile (the dropout detector reports the gap)
        gap = chunk.rates[RATES.index("gap")]
        across = process[None, :, :] & (gap.T[:, :, None] > 0)
        prepared = recursions.prepare(packed, lay, chunk.ts, x, gated, across)
        state = recursions.load(packed, lay)
        const = recursions.Constants.of(
            self.cfg,
            lay.scalar(packed, "r_tail"),
            c,
            ~process,
            lay.scalar(packed, "r_adapt"),
        )
        record = recursions.recurse(state, prepared.series, chunk.active, const)
        recursions.store(packed, lay, state, prepared, chunk.lengths)
        return self._statistical_scores(packed, chunk, x, process, prepared, record)

    def _statistical_scores(
        self,
        packed: FloatArray,
        chunk: Chunk,
        x: FloatArray,
        process: Mask,
        prepared: recursions.Prepared,
        record: recursions.Record,
    ) -> tuple[StatisticalBaseline, StatisticalScores]:
        """Each statistical detector's score from what the recursions recorded."""
        lay, c, tail = self.layout, x.shape[2], self.cfg.tail_factor
        before = record.before[..., :c].transpose(1, 2, 0, 3)  # (4, d, t, c)
        expected, scale = before[0], before[1]
        z_all = (x - expected) / scale
        ratio = record.ratios[:, 1].transpose(1, 0, 2)  # (d, t, w)
        # a step of a metric held at a setpoint, within its limits, is a setpoint change
        held = (process & self.setpoint[None, :])[:, None, :]
        # the load proxy steps with the load: within ISO 10816-3 zones A/B and its limit, a
        # step of it is an operating change, not a spike (the zones and the limit still apply)
        calm = self.is_proxy & (x < self.iso.bc) & ~(x > chunk.high[:, None, :])
        held_or_calm = held | calm
        spike = np.where(held_or_calm, 0.0, self.spike(z_all, tail * before[2]))
        # a metric with a static limit has the operating-point test for slow shifts instead:
        # against a baseline learned at one operating point, CUSUM alarms at every load change
        drift = np.where(process[:, None, :], 0.0, self.drift(record.cusum[..., :c].transpose(1, 0, 2)))
        roc = np.where(held_or_calm, 0.0, self.roc(ratio[..., :c], tail * before[3]))
        flat = self.flat(prepared.run.transpose(1, 0, 2), self._stuck_after(lay.view(packed, "flat_thr"), record))
        dropout = self.dropout(ratio[..., c])
        # a smooth channel enters the multivariate detectors by its deviation from its
        # own recent level: its slow wander past the warm-up is not a fault
        fast_before = record.fast[..., :c].transpose(1, 0, 2)
        z_mv = np.where(lay.view(packed, "smooth")[:, None, :] > 0, (x - fast_before) / scale, z_all)
        # so has the multivariate one: its correlation is learned at one operating point too
        z_mv = np.where(process[:, None, :], 0.0, z_mv)
        multivariate, share = self.t2(
            z_mv,
            lay.matrix(packed),
            lay.scalar(packed, "t2_on"),
            lay.view(packed, "t2_hist"),
            lay.view(packed, "mew"),
            chunk.active,
            lay.scalar(packed, "r_mewma").copy(),
            lay.scalar(packed, "r_ewma_limit").copy(),
        )
        return (
            StatisticalBaseline(expected, scale, share),
            StatisticalScores(spike, drift, roc, flat, dropout, multivariate),
        )

    def _stuck_after(self, flat_thr: FloatArray, record: recursions.Record) -> FloatArray:
        """The run (readings) that is a stuck sensor at each reading (d, t, c): of a metric
        without a unit the warm-up's (``flat_thr``, readings); of one with a unit, in time at the
        device's expected interval before the reading: the warm-up's longest repeat
        (``flat_thr``, ms) and ``flatline_s``, this one as 3 to ``flatline_min`` readings. A
        device that reads faster than in its warm-up is not stuck after the warm-up's few
        readings, nor one that reads slower after the warm-up's many."""
        cfg = self.cfg
        interval = record.interval[..., 0].T[..., None]  # (d, t, 1)
        timed = np.minimum(np.maximum((1000.0 * cfg.flatline_s) / interval, _FLAT_LEAST), float(cfg.flatline_min))
        thr = flat_thr[:, None, :]
        return np.where(self.measured, np.fmax(thr / interval, timed), thr)

    def _buffer(self, name: str, shape: tuple[int, ...]) -> FloatArray:
        """A scratch array of ``shape``, reused between calls (fresh pages cost more than the
        work on them); valid until the next call asks for it again."""
        size = int(np.prod(shape))
        held = self._scratch.get(name)
        if held is None or held.size < size:
            held = self._scratch[name] = np.empty(max(size, 1))
        return held[:size].reshape(shape)

    def _rates(self, packed: FloatArray, ts: IntArray) -> FloatArray:
        """Per reading (len(RATES), d, t): the EWMA weight of the time since the previous
        reading for each operating-point time constant, that time (ms, capped: a longer
        silence is a gap, but a step of the device's own interval is not one, so the cap is at
        least 1.5 of its warm-up's interval), and 1 after a silence over ``max_step_s`` (a
        limited metric's rate of change is not judged across it). Computed once for both
        kernels, so the exponentials agree; one plane per rate, which numpy fills fastest."""
        gap_ms = 1000.0 * self.cfg.operating_point.max_step_s
        cap = np.maximum(gap_ms, 1.5 * self.layout.scalar(packed, "interval"))[:, None]
        silence = ts.astype(np.float64)
        silence[:, 1:] -= ts[:, :-1]
        silence[:, 0] -= self.layout.scalar(packed, "last_t")
        rates = self._buffer("rates", (len(RATES), *ts.shape))
        elapsed, weights = rates[RATES.index("elapsed")], rates[:4]
        np.minimum(np.maximum(silence, 0.0, out=elapsed), cap, out=elapsed)
        np.multiply.outer(-1.0 / self._taus_ms, elapsed, out=weights)
        np.expm1(weights, out=weights)
        np.negative(weights, out=weights)
        np.greater(silence, gap_ms, out=rates[RATES.index("gap")])
        return rates

    def _operating_point(self, packed: FloatArray, chunk: Chunk, x_stat: FloatArray) -> OperatingPoint:
        """The operating-point test (d, t, c) and the value its baseline expects at each
        reading's load (NaN where it does not score), advancing its state in place; one
        reading at a time, in the C kernel's order of operations.

        The load proxy is lagged by the thermal time constant while the machine runs; where
        it runs and has settled, its mean and variance, and each channel's regression on it,
        adapt. A channel that follows the load is taken net of the load's share; its smoothed
        value is compared with its baseline: the score is the deviation over ``margin`` times
        the baseline's distance to the limit on that side (none: no score). The baseline
        adapts while the score is below the clear level.
        """
        lay = self.layout
        d, t, c = chunk.x.shape
        rates = OperatingRates(*(chunk.rates[RATES.index(name)] for name in OperatingRates._fields))
        state = OperatingState.load_from(packed, lay)
        on, runs = chunk.gate >= 1.0, chunk.gate > 0.0
        out = OperatingPoint(np.zeros((d, t, c)), np.zeros((d, t, c)))
        for j in range(t):
            rates_j = OperatingRates(*(r[:, j] for r in rates))
            if self.proxy >= 0:
                v = chunk.x[:, j, self.proxy]
                seen = runs[:, j] & ~np.isnan(v)
                lagged = np.where(seen, state.load + rates_j.lag * (v - state.load), state.load)
                state = state._replace(load=lagged, now=np.where(seen, v, state.now))
            state, load = self._learn_load(state, on[:, j], rates_j)
            state, out.score[:, j], out.point[:, j] = self._judge_point(
                state, x_stat[:, j], load, rates_j.level, chunk.low, chunk.high
            )
        state.store(packed, lay)
        return out

    def _learn_load(self, s: OperatingState, on: Mask, rates: OperatingRates) -> tuple[OperatingState, LoadStep]:
        """One reading of the load's mean and variance (lagged, and as it is) where the
        machine runs and has settled; returns the state and what the channels need of it."""
        ran = np.where(on, s.ran + rates.elapsed, s.ran)
        # while it learns, an average weighs all it has seen alike
        learn = 1000.0 * self.cfg.operating_point.learn_s
        w = np.where(ran < learn, np.where(ran > 0.0, rates.elapsed / ran, 1.0), 0.0)
        rr, rb = np.fmax(rates.regression, w), np.fmax(rates.baseline, w)
        dl = s.load - s.load_m
        lm = np.where(on, s.load_m + rr * dl, s.load_m)
        lv = np.where(on, (1.0 - rr) * (s.load_v + (rr * dl) * dl), s.load_v)
        dn = s.now - s.now_m
        nm = np.where(on, s.now_m + rr * dn, s.now_m)
        nv = np.where(on, (1.0 - rr) * (s.now_v + (rr * dn) * dn), s.now_v)
        # each channel's load: lagged for a temperature, as it is for the rest
        instant = self.instant[None, :]
        dlc = np.where(instant, dn[:, None], dl[:, None])
        lvc = np.where(instant, nv[:, None], lv[:, None])
        value = np.where(instant, s.now[:, None], s.load[:, None])
        state = s._replace(ran=ran, load_m=lm, load_v=lv, now_m=nm, now_v=nv)
        return state, LoadStep(rr[:, None], rb[:, None], dlc, lvc, value)

    def _judge_point(
        self,
        s: OperatingState,
        xk: FloatArray,
        load: LoadStep,
        r_level: FloatArray,
        low: FloatArray,
        high: FloatArray,
    ) -> tuple[OperatingState, FloatArray, FloatArray]:
        """One reading (d, c) against the operating point: the state, the score and the
        value the baseline expects at the reading's load."""
        op, follows = self.cfg.operating_point, self.regressed[None, :]
        learn, clear = 1000.0 * op.learn_s, self.cfg.alarm.clear_level
        om, oc, of, ob, ol = s.op_m, s.op_c, s.op_f, s.op_b, s.op_l
        present = ~np.isnan(xk)
        dl, rc = load.dl, load.rr
        b = np.where(load.lv > 0.0, oc / load.lv, 0.0)
        # the load's share against the load the baseline stands for (not the regression's
        # mean, which moves over hours: the baseline and its load move together, over days)
        load_share = b * (load.value - ol)
        res = np.where(follows, xk - load_share, xk)
        point = np.where(present, np.where(follows, ob + load_share, ob), np.nan)
        dx = xk - om
        learned = present & follows
        om = np.where(learned, om + rc * dx, om)
        oc = np.where(learned, (1.0 - rc) * (oc + (rc * dx) * dl), oc)
        level = of + r_level[:, None] * (res - of)
        e = level - ob
        margin = np.where(e > 0.0, high - ob, ob - low)
        room = op.margin * np.maximum(margin, 1e-9)
        scoring = present & (s.ran >= learn)[:, None] & ~np.isnan(room)
        quiet = ~(scoring & (np.abs(e) >= clear * room))
        # the baseline is a point of the machine's relation: it moves toward the level at the
        # reading's load, along the relation as the load it stands for moves (toward the level
        # net of the load's share, while that load moved too, counted the load's move twice)
        ob = np.where(present & quiet, ob + load.rb * np.where(follows, e + load_share, e), ob)
        ol = np.where(present & quiet & follows, ol + load.rb * (load.value - ol), ol)
        score = np.where(scoring, np.abs(e) / room, 0.0)
        of = np.where(present, level, of)
        return s._replace(op_m=om, op_c=oc, op_f=of, op_b=ob, op_l=ol), score, point

    def _alarm(
        self, packed: FloatArray, ts: IntArray, score: FloatArray, active: IntArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Hysteresis over each device's scores: the alarm after each reading, its raises and
        its clears (d, t). The run lengths above the raise level and below the clear level
        are computed for the whole chunk at once (:meth:`_runs`); the alarm itself only
        changes at a raise or a clear (:meth:`_transitions`)."""
        lay = self.layout
        d = score.shape[0]
        lengths = (active[None, :] > np.arange(d)[:, None]).sum(axis=1)
        runs = self._runs(packed, ts, score, lengths)
        alarm = self._transitions(packed, ts, runs, lengths)
        rows, last_row = np.arange(d), np.maximum(lengths - 1, 0)
        lay.scalar(packed, "above")[:] = runs.above[rows, last_row]
        lay.scalar(packed, "below")[:] = runs.below[rows, last_row]
        self._health(packed, score, active)
        lay.scalar(packed, "n")[:] += lengths
        return alarm

    def _runs(self, packed: FloatArray, ts: IntArray, score: FloatArray, lengths: IntArray) -> AlarmRuns:
        """Where the alarm may raise and clear: ``min_duration`` readings at the raise level;
        ``clear_duration`` readings and ``clear_s`` seconds below the clear level."""
        cfg, lay = self.cfg.alarm, self.layout
        d, t = score.shape
        rows = np.arange(d)
        valid = np.arange(t)[None, :] < lengths[:, None]
        above = run_lengths((score >= cfg.raise_level) & valid, lay.scalar(packed, "above"), axis=1)
        below = run_lengths((score < cfg.clear_level) & valid, lay.scalar(packed, "below"), axis=1)
        tsf = ts.astype(np.float64)
        below_since = lay.scalar(packed, "below_since")
        # the open incident's condition back after it had gone for the plain off-delay
        below_before = np.concatenate([lay.scalar(packed, "below")[:, None], below[:, :-1]], axis=1)
        # the start of each reading's run below the clear level: in this chunk, or carried
        first = np.arange(t)[None, :] - below + 1.0
        at_first = np.take_along_axis(tsf, np.clip(first, 0, t - 1).astype(np.int64), axis=1)
        run_since = np.where(first >= 0, at_first, below_since[:, None])
        can_raise = (above >= cfg.min_duration) & valid
        settled = (below >= cfg.clear_duration) & valid
        gone = tsf - run_since
        can_clear = settled & (gone >= 1000.0 * cfg.clear_s)  # at the shortest off-delay
        since_before = np.concatenate([below_since[:, None], run_since[:, :-1]], axis=1)
        back = can_raise & (below_before >= cfg.clear_duration) & (tsf - since_before >= 1000.0 * cfg.clear_s)
        began = (below == 1.0) & valid
        last_began = np.where(began.any(axis=1), t - 1 - np.argmax(began[:, ::-1], axis=1), -1)
        below_since[:] = np.where(last_began >= 0, tsf[rows, np.maximum(last_began, 0)], below_since)
        return AlarmRuns(above, below, can_raise, can_clear, settled, gone, back)

    def _transitions(
        self, packed: FloatArray, ts: IntArray, runs: AlarmRuns, lengths: IntArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """The alarm after each reading, its raises and clears: each device jumps from one
        transition to the next (a raise waits out the cooldown). A raise within the off-delay
        of the device's last clear doubles the off-delay (up to ``off_delay_max_s``), a later
        one restores it to ``clear_s``: an intermittent condition is one incident."""
        lay, cooldown = self.layout, float(self.cfg.alarm.cooldown)
        clear_ms, cap = 1000.0 * self.cfg.alarm.clear_s, self.cfg.alarm.off_mult_max
        alarm, cool, since = lay.scalar(packed, "alarm"), lay.scalar(packed, "cool"), lay.scalar(packed, "alarm_since")
        mult, cleared = lay.scalar(packed, "off_mult"), lay.scalar(packed, "cleared_at")
        d, t = ts.shape
        initial = alarm.copy()
        out = np.repeat(alarm[:, None], t, axis=1)
        up_all, down_all = np.zeros((d, t)), np.zeros((d, t))
        busy = np.flatnonzero(np.where(alarm > 0, runs.can_clear.any(axis=1), runs.can_raise.any(axis=1)))
        for i in busy:
            n, at, on, co = int(lengths[i]), 0, alarm[i] > 0, float(cool[i])
            m, last = float(mult[i]), float(cleared[i])
            while at < n:
                if on:
                    hits = np.flatnonzero(runs.settled[i, at:n] & (runs.gone[i, at:n] >= clear_ms * m))
                else:
                    start = at + int(np.ceil(co))  # a raise waits out the cooldown
                    hits = start - at + np.flatnonzero(runs.can_raise[i, start:n])
                if not hits.size:
                    break
                step = at + int(hits[0])
                if on:
                    down_all[i, step], co, last = 1.0, cooldown, float(ts[i, step])
                else:
                    up_all[i, step], co, since[i] = 1.0, 0.0, float(ts[i, step])
                    m = min(m * 2.0, cap) if float(ts[i, step]) - last < clear_ms * m else 1.0
                on = not on
                out[i, step:] = 1.0 if on else 0.0
                at = step + 1
            alarm[i] = 1.0 if on else 0.0
            mult[i], cleared[i] = m, last
            cool[i] = co + at  # the decrement below runs from the last transition on
        np.maximum(cool - lengths, 0.0, out=cool)
        # an open incident's condition back (0.5 in the raises: the lifecycle judges it)
        was_on = np.concatenate([initial[:, None], out[:, :-1]], axis=1) > 0
        up_all[runs.back & was_on] = 0.5
        return out, up_all, down_all

    def _health(self, packed: FloatArray, score: FloatArray, active: IntArray) -> None:
        """The health EWMA of the capped score, in place; kept sequential so chunking changes no bit."""
        lay, d = self.layout, score.shape[0]
        health = lay.scalar(packed, "health")
        capped = np.ascontiguousarray(np.minimum(score, 2.0).T)
        hr, tmp = lay.scalar(packed, "r_adapt").copy(), np.empty(d)
        for step in range(score.shape[1]):
            k = int(active[step])
            np.subtract(capped[step, :k], health[:k], out=tmp[:k])
            tmp[:k] *= hr[:k]
            health[:k] += tmp[:k]
