"""The vectorised kernel: one pass over time, vectorised across devices and channels.

Devices in a call are sorted by how many readings they bring, so at step ``t`` the
devices still active are a prefix ``[:k]`` of the stack and every update is an
in-place operation on a view of the packed state. Every recursion is evaluated one
reading at a time in a fixed order, so feeding a series in chunks of any size gives
bit-for-bit the result of feeding it at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

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
from iotpm.detection.state import FloatArray, IntArray, Layout, load_proxy
from iotpm.models.metrics import parse_metric

_MAD_TO_SIGMA = 1.4826
_DEFAULT_INTERVAL_MS = 1000.0
_T2_RIDGE = 0.05
_WINSOR = 8.0  # MAD-sigmas beyond which warm-up values are clipped


def new_vector(layout: Layout) -> FloatArray:
    """The state of a device that has seen nothing yet (statistics not learned)."""
    v = np.zeros(layout.size)
    v[layout.offsets["s"]] = 1.0
    v[layout.offsets["s_min"]] = 1.0
    v[layout.offsets["dscale"]] = 1.0
    v[layout.offsets["flat_thr"]] = np.inf
    v[layout.offsets["last_x"]] = np.nan
    v[layout.offsets["dt_exp"]] = _DEFAULT_INTERVAL_MS
    v[layout.offsets["interval"]] = _DEFAULT_INTERVAL_MS
    v[layout.offsets["floor"]] = np.inf
    v[layout.offsets["running"]] = 1.0
    v[layout.offsets["started"]] = -np.inf
    v[layout.offsets["below_since"]] = -np.inf
    v[layout.offsets["load_v"]] = 1.0
    return v


def fit_statistics(
    vector: FloatArray, layout: Layout, ts: IntArray, x: FloatArray, cfg: DetectorConfig, proxy: int = -1
) -> None:
    """Learn the baseline of one device from a label-free block, in place.

    Robust location and scale (median, MAD), the typical step, the longest repeat,
    the expected interval and the correlation of the metrics. Alarm and counters are
    left alone: a device keeps its alarm through the end of its warm-up.
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
    # the operating-point baseline starts at the warm-up's level; the load proxy's variance
    # at its noise (the regression on it learns as the load changes)
    for name in ("op_m", "op_f", "op_b"):
        vector[o[name]] = med
    vector[o["op_c"]] = 0.0
    vector[o["load"]] = vector[o["load_m"]] = med[proxy] if proxy >= 0 else 0.0
    vector[o["load_v"]] = max(float(vector[o["s"]][proxy]) ** 2, 1e-12) if proxy >= 0 else 1.0
    vector[o["ran"]] = 0.0
    runs, longest = _runs(x)
    vector[o["run"]] = runs
    vector[o["flat_thr"]] = np.where(scale > 0, np.fmax(cfg.flatline_min, cfg.flatline_factor * longest), np.inf)
    vector[o["last_x"]] = _last_finite(x)
    dts = np.diff(ts)
    dts = dts[dts > 0]
    vector[o["dt_exp"]] = float(np.median(dts)) if dts.size else _DEFAULT_INTERVAL_MS
    vector[o["interval"]] = vector[o["dt_exp"]]
    device_rates(vector[None, :], layout, cfg)
    if len(ts):
        vector[o["last_t"]] = float(ts[-1])
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
    if c < 2 or rows.sum() < 3 * c:
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
            "cusum_k": cfg.cusum_k,
            "cusum_h": cfg.cusum_h,
            "tail_factor": cfg.tail_factor,
            "spike_z": cfg.spike_z,
            "roc_z": cfg.roc_z,
            "dropout_factor": cfg.dropout_factor,
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
        if gate is None:
            gate = np.ones((d, t))
        device_rates(packed, self.layout, self.cfg)
        ch = np.zeros((d, t, c, len(CHANNEL_DETECTORS)))
        dev = np.zeros((d, t, len(DEVICE_DETECTORS)))
        share = np.zeros((d, t, c))  # each channel's share of the multivariate score
        rates = self._rates(packed, ts)
        if self.native is not None:
            score, alarm, raised, cleared = np.zeros((4, d, t))
            expected, scale, point = np.zeros((3, d, t, c))
            loads = self._buffer("loads", (d, t, LOADS))  # scratch: the C kernel writes it before reading
            roles = self.vibration.astype(np.float64) + 2.0 * self.follows + 4.0 * self.setpoint + 8.0 * self.is_proxy
            inputs = (ts, x, lengths, low, high, roles, gate, rates)
            outputs = (score, alarm, raised, cleared, ch, dev, expected, scale, share, point, loads)
            self.native(statistics, self._offsets, self._params, packed, inputs, outputs)
        else:
            active = (lengths[:, None] > np.arange(t)[None, :]).sum(axis=0)
            with np.errstate(all="ignore"):  # inf and NaN are scored, not raised
                on, low_on = gate[..., None] >= 1.0, gate[..., None] > 0.0
                # ISO 10816-3 judges steady running: a vibration's limits wait out a start and a
                # run-down (gate 0 while the machine turns; stopped, it sits at its floor anyway)
                transient = self.vibration & (gate[..., None] == 0.0)
                ch[..., CH["threshold"]] = np.where(
                    transient, 0.0, self.static(x, low[:, None, :], high[:, None, :], low_on)
                )
                ch[..., CH["iso10816"]] = np.where(self.vibration & ~transient, self.iso(x), 0.0)
                if statistics:
                    x_stat = np.where(on, x, np.nan)
                    # padding is not a reading; below 0 (idle at a floor) the last value is kept
                    gated = ~on & (gate[..., None] >= 0.0) & (np.arange(t)[None, :, None] < lengths[:, None, None])
                    process = np.isfinite(low) | np.isfinite(high)  # (d, c) metrics with a static limit
                    gap = rates[RATES.index("gap")]
                    expected, scale = self._statistics(
                        packed, ts, x_stat, gated, active, ch, dev, share, process, gap, high
                    )
                    op = self._operating_point(packed, x, x_stat, gate, rates, low, high)
                    ch[..., CH["operating_point"]], point = op
                else:
                    expected = scale = point = np.full((d, t, c), np.nan)
                np.nan_to_num(ch, copy=False, nan=0.0, posinf=1e6)
                np.nan_to_num(dev, copy=False, nan=0.0, posinf=1e6)
            alarming = dev if self.cfg.dropout_alarms else np.delete(dev, DEV["dropout"], axis=2)
            score = np.fmax(ch.max(axis=(2, 3)), alarming.max(axis=2))
            alarm, raised, cleared = self._alarm(packed, ts, score, active)
        transitions: list[bool] = np.asarray(((raised > 0) | (cleared > 0)).any(axis=1)).tolist()
        in_alarm = alarm > 0
        anomalous = in_alarm & (score >= self.cfg.alarm.raise_level)
        return KernelOutput(
            score, in_alarm, raised, cleared, ch, dev, expected, scale, transitions, anomalous, share, point
        )

    def _statistics(
        self,
        packed: FloatArray,
        ts: IntArray,
        x: FloatArray,
        gated: npt.NDArray[np.bool_],
        active: IntArray,
        ch: FloatArray,
        dev: FloatArray,
        share: FloatArray,
        process: npt.NDArray[np.bool_],
        gap: FloatArray,
        high: FloatArray,
    ) -> tuple[FloatArray, FloatArray]:
        """The statistical detectors; returns the expected level and scale before each reading."""
        cfg, lay = self.cfg, self.layout
        d, t, c = x.shape
        w = c + 1  # the channels, and one column for the device's interval
        a = lay.scalar(packed, "r_adapt")[None, :, None]  # (1, d, 1): each device's weight
        # Everything that is not a recursion on the baseline is computed for the whole
        # chunk up front, exactly: the last finite value before each reading, the step,
        # the repeat run, the interval. The loop below is left with the recursions that
        # need the previous reading's state, on contiguous time-major arrays whose
        # fields are stacked so one numpy call advances several of them.
        xs = np.ascontiguousarray(x.transpose(1, 0, 2))  # (t, d, c)
        tsf = np.ascontiguousarray(ts.T).astype(np.float64)  # (t, d)
        lengths = (active[None, :] > np.arange(d)[:, None]).sum(axis=1)
        rows, last_row = np.arange(d), np.maximum(lengths - 1, 0)
        m = ~np.isnan(xs)
        # a gated reading (machine off or settling) leaves no last value: the step after it starts afresh
        gated_t = np.broadcast_to(gated.transpose(1, 0, 2), xs.shape)
        lx, final_x = _last_before(xs, m | gated_t, lay.view(packed, "last_x").copy())
        # across a gap, a metric with a limit has no rate of change: nothing is known of how
        # it moved meanwhile (the dropout detector reports the gap)
        across = process[None, :, :] & (gap.T[:, :, None] > 0)
        dx = np.where(across, np.nan, xs - lx)
        run = _run_lengths(xs == lx, lay.view(packed, "run"))
        dt = tsf - np.concatenate([lay.scalar(packed, "last_t")[None, :], tsf[:-1]])
        x0, mf = np.zeros((t, d, w)), np.zeros((t, d, w))
        x0[..., :c] = np.where(m, xs, 0.0)
        mf[..., :c] = m
        am = a * mf
        # the typical step per channel and the expected interval share one recursion
        step_in = np.empty((t, d, w))
        step_in[..., :c] = np.abs(dx)
        step_in[..., c] = dt
        step_in0 = np.where(np.isnan(step_in), 0.0, step_in)
        step_rate = np.empty((t, d, w))
        step_rate[..., :c] = a * ~np.isnan(dx)
        step_rate[..., c] = a[..., 0] * (dt > 0)
        step_cap = np.array([4.0] * c + [3.0])
        # state: level, scale, recent max |z|, recent max step ratio; typical step and
        # interval; CUSUM sums; fast and slow levels. The extra column is inert.
        st = np.zeros((4, d, w))
        st[1, :, c] = 1.0
        for row, name in enumerate(("mu", "s", "zmax", "dmax")):
            st[row, :, :c] = lay.view(packed, name)
        mu, s, tails = st[0], st[1], st[2:4]
        s_min = np.ones((d, w))
        s_min[:, :c] = lay.view(packed, "s_min")
        typ = np.empty((d, w))
        typ[:, :c] = lay.view(packed, "dscale")
        typ[:, c] = lay.scalar(packed, "dt_exp")
        cu, trend = np.zeros((2, d, w)), np.zeros((2, d, w))
        cu[0, :, :c], cu[1, :, :c] = lay.view(packed, "cp"), lay.view(packed, "cn")
        trend[0, :, :c], trend[1, :, :c] = lay.view(packed, "fast"), lay.view(packed, "slow")
        # recordings: the state before each reading; |z| and the step ratio; the CUSUM
        r_st, r_zr, r_cu = np.zeros((t, 4, d, w)), np.zeros((t, 2, d, w)), np.zeros((t, d, w))
        r_fast = np.zeros((t, d, w))  # the fast level before each reading
        z, u = np.empty((d, w)), np.empty((d, w))
        clipped, signed = np.empty((2, d, w)), np.empty((2, d, w))
        limits = np.array([min(cfg.cusum_clip, np.inf), min(cfg.adapt_clip, cfg.cusum_clip)])[:, None, None]
        sign = np.array([1.0, -1.0])[:, None, None]
        decay, k_ref, h_ref = lay.scalar(packed, "r_tail")[:, None].copy(), cfg.cusum_k, cfg.cusum_h
        full = (st, mu, s, tails, s_min, typ, cu, trend, z, u, clipped, signed)
        trend_rates = np.array([cfg.trend_rate, cfg.trend_rate_slow])[:, None, None]
        per_step = zip(x0, mf, am, step_in, step_in0, step_rate, r_st, r_zr, r_cu, r_fast, strict=True)
        for step, views in enumerate(per_step):
            k = int(active[step])
            if k == d:
                st_k, mu_k, s_k, tl_k, smin_k, typ_k, cu_k, tr_k, z_k, u_k, cl_k, sg_k = full
                x0_t, mf_t, am_t, in_t, in0_t, rate_t, rst_t, rzr_t, rcu_t, rfast_t = views
            else:  # devices with fewer readings have dropped out of the (sorted) stack
                st_k, tl_k, cu_k, tr_k, cl_k, sg_k = (arr[:, :k] for arr in (st, tails, cu, trend, clipped, signed))
                mu_k, s_k, smin_k, typ_k, z_k, u_k = (arr[:k] for arr in (mu, s, s_min, typ, z, u))
                x0_t, mf_t, am_t, in_t, in0_t, rate_t, rcu_t, rfast_t = (views[i][:k] for i in (0, 1, 2, 3, 4, 5, 8, 9))
                rst_t, rzr_t = views[6][:, :k], views[7][:, :k]
            np.copyto(rst_t, st_k)
            np.copyto(rfast_t, tr_k[0])
            # z against the baseline before this reading; 0 where missing
            np.subtract(x0_t, mu_k, out=z_k)
            z_k *= mf_t
            z_k /= s_k
            # decaying maxima of |z| and of |step| / typical step (and the gap ratio)
            np.abs(z_k, out=rzr_t[0])
            np.divide(in_t, typ_k, out=rzr_t[1])
            tl_k *= decay if k == d else decay[:k]
            np.fmax(tl_k, rzr_t, out=tl_k)
            # z clipped for the CUSUM and, tighter, for the baseline's adaptation
            np.maximum(z_k, -limits, out=cl_k)
            np.minimum(cl_k, limits, out=cl_k)
            zc_k, r_k = cl_k[0], cl_k[1]
            # two-sided CUSUM, reset once it has signalled, so a drift alarms once, not
            # for as long as the baseline takes to absorb the new level
            np.multiply(zc_k, sign, out=sg_k)
            cu_k += sg_k
            cu_k -= k_ref
            np.maximum(cu_k, 0.0, out=cu_k)
            np.maximum(cu_k[0], cu_k[1], out=rcu_t)
            cu_k *= cu_k <= h_ref
            # baseline: an EWMA of the clipped residual, so an outlier moves it by at most
            # `adapt_clip` scales times the rate, and a new level is absorbed slowly
            np.multiply(am_t, r_k, out=u_k)
            u_k *= s_k
            mu_k += u_k
            np.multiply(r_k, r_k, out=u_k)
            u_k -= 1.0
            u_k *= am_t
            u_k += 1.0
            np.sqrt(u_k, out=u_k)
            s_k *= u_k
            np.maximum(s_k, smin_k, out=s_k)
            # typical step and expected interval: EWMAs of the capped value
            np.multiply(typ_k, step_cap, out=u_k)
            np.minimum(in0_t, u_k, out=u_k)
            u_k -= typ_k
            u_k *= rate_t
            typ_k += u_k
            # fast and slow levels for the trend
            np.subtract(x0_t, tr_k, out=sg_k)
            sg_k *= mf_t
            sg_k *= trend_rates
            tr_k += sg_k
        for name, value in (
            ("mu", mu[:, :c]),
            ("s", s[:, :c]),
            ("zmax", tails[0, :, :c]),
            ("dmax", tails[1, :, :c]),
            ("dscale", typ[:, :c]),
            ("cp", cu[0, :, :c]),
            ("cn", cu[1, :, :c]),
            ("fast", trend[0, :, :c]),
            ("slow", trend[1, :, :c]),
            ("last_x", final_x),
            ("run", run[last_row, rows]),
        ):
            lay.view(packed, name)[:] = value
        lay.scalar(packed, "last_t")[:] = tsf[last_row, rows]
        lay.scalar(packed, "dt_exp")[:] = typ[:, c]
        rec = r_st[..., :c].transpose(1, 2, 0, 3)  # (4, d, t, c)
        exp, scale = rec[0], rec[1]
        z_all = (x - exp) / scale
        tail = cfg.tail_factor
        ratio = r_zr[:, 1].transpose(1, 0, 2)  # (d, t, w)
        # a step of a metric held at a setpoint, within its limits, is a setpoint change
        held = (process & self.setpoint[None, :])[:, None, :]
        # the load proxy steps with the load: within ISO 10816-3 zones A/B and its limit, a
        # step of it is an operating change, not a spike (the zones and the limit still apply)
        calm = self.is_proxy & (x < self.iso.bc) & ~(x > high[:, None, :])
        held_or_calm = held | calm
        ch[..., CH["spike"]] = np.where(held_or_calm, 0.0, self.spike(z_all, tail * rec[2]))
        # a metric with a static limit has the operating-point test for slow shifts instead:
        # against a baseline learned at one operating point, CUSUM alarms at every load change
        ch[..., CH["drift"]] = np.where(process[:, None, :], 0.0, self.drift(r_cu[..., :c].transpose(1, 0, 2)))
        ch[..., CH["rate_of_change"]] = np.where(held_or_calm, 0.0, self.roc(ratio[..., :c], tail * rec[3]))
        ch[..., CH["flatline"]] = self.flat(run.transpose(1, 0, 2), lay.view(packed, "flat_thr")[:, None, :])
        dev[..., DEV["dropout"]] = self.dropout(ratio[..., c])
        # a smooth channel enters the multivariate detectors by its deviation from its
        # own recent level: its slow wander past the warm-up is not a fault
        fast_before = r_fast[..., :c].transpose(1, 0, 2)
        z_mv = np.where(lay.view(packed, "smooth")[:, None, :] > 0, (x - fast_before) / scale, z_all)
        # so has the multivariate one: its correlation is learned at one operating point too
        z_mv = np.where(process[:, None, :], 0.0, z_mv)
        dev[..., DEV["multivariate"]], share[:] = self.t2(
            z_mv,
            lay.matrix(packed),
            lay.scalar(packed, "t2_on"),
            lay.view(packed, "t2_hist"),
            lay.view(packed, "mew"),
            active,
            lay.scalar(packed, "r_mewma").copy(),
            lay.scalar(packed, "r_ewma_limit").copy(),
        )
        return exp, scale

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
        silence is a gap), and 1 after a gap. Computed once for both kernels, so the
        exponentials agree; one plane per rate, which numpy fills fastest."""
        cap = 1000.0 * self.cfg.operating_point.max_step_s
        silence = ts.astype(np.float64)
        silence[:, 1:] -= ts[:, :-1]
        silence[:, 0] -= self.layout.scalar(packed, "last_t")
        rates = self._buffer("rates", (len(RATES), *ts.shape))
        elapsed, weights = rates[RATES.index("elapsed")], rates[:4]
        np.minimum(np.maximum(silence, 0.0, out=elapsed), cap, out=elapsed)
        np.multiply.outer(-1.0 / self._taus_ms, elapsed, out=weights)
        np.expm1(weights, out=weights)
        np.negative(weights, out=weights)
        np.greater(silence, cap, out=rates[RATES.index("gap")])
        return rates

    def _operating_point(
        self,
        packed: FloatArray,
        x: FloatArray,
        x_stat: FloatArray,
        gate: FloatArray,
        rates: FloatArray,
        low: FloatArray,
        high: FloatArray,
    ) -> tuple[FloatArray, FloatArray]:
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
        lay, op = self.layout, self.cfg.operating_point
        d, t, c = x.shape
        r_lag, r_reg, r_lvl, r_base, r_el = (rates[RATES.index(name)] for name in RATES[:5])
        load, lm, lv, ran = (lay.scalar(packed, name).copy() for name in ("load", "load_m", "load_v", "ran"))
        om, oc, of, ob = (lay.view(packed, name).copy() for name in ("op_m", "op_c", "op_f", "op_b"))
        on, runs = gate >= 1.0, gate > 0.0
        p, follows, q = self.proxy, self.follows[None, :], op.margin
        learn, clear = 1000.0 * op.learn_s, self.cfg.alarm.clear_level
        out, points = np.zeros((d, t, c)), np.zeros((d, t, c))
        for j in range(t):
            if p >= 0:
                v = x[:, j, p]
                load = np.where(runs[:, j] & ~np.isnan(v), load + r_lag[:, j] * (v - load), load)
            g = on[:, j]
            ran = np.where(g, ran + r_el[:, j], ran)
            # while it learns, an average weighs all it has seen alike
            w = np.where(ran < learn, np.where(ran > 0.0, r_el[:, j] / ran, 1.0), 0.0)
            rr, rb = np.fmax(r_reg[:, j], w), np.fmax(r_base[:, j], w)
            dl = load - lm
            lm = np.where(g, lm + rr * dl, lm)
            lv = np.where(g, (1.0 - rr) * (lv + (rr * dl) * dl), lv)
            xk = x_stat[:, j]
            present = ~np.isnan(xk)
            b = np.where(lv[:, None] > 0.0, oc / lv[:, None], 0.0)
            load_share = b * dl[:, None]
            res = np.where(follows, xk - load_share, xk)
            points[:, j] = np.where(present, np.where(follows, ob + load_share, ob), np.nan)
            dx = xk - om
            rc = rr[:, None]
            learned = present & follows
            om = np.where(learned, om + rc * dx, om)
            oc = np.where(learned, (1.0 - rc) * (oc + (rc * dx) * dl[:, None]), oc)
            level = of + r_lvl[:, j, None] * (res - of)
            e = level - ob
            margin = np.where(e > 0.0, high - ob, ob - low)
            room = q * np.maximum(margin, 1e-9)
            scoring = present & (ran >= learn)[:, None] & ~np.isnan(room)
            quiet = ~(scoring & (np.abs(e) >= clear * room))
            ob = np.where(present & quiet, ob + rb[:, None] * e, ob)
            score = np.where(scoring, np.abs(e) / room, 0.0)
            of = np.where(present, level, of)
            out[:, j] = score
        for name, value in (("load", load), ("load_m", lm), ("load_v", lv), ("ran", ran)):
            lay.scalar(packed, name)[:] = value
        for name, value in (("op_m", om), ("op_c", oc), ("op_f", of), ("op_b", ob)):
            lay.view(packed, name)[:] = value
        return out, points

    def _alarm(
        self, packed: FloatArray, ts: IntArray, score: FloatArray, active: IntArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Hysteresis over each device's scores.

        The run lengths above the raise level and below the clear level (and when that run
        began) are computed for the whole chunk at once; the alarm itself only changes at a
        raise or a clear, so each device jumps from one transition to the next. A clear
        waits for ``clear_duration`` readings and ``clear_s`` seconds below the clear level.
        """
        cfg, lay = self.cfg.alarm, self.layout
        alarm, cool, since = lay.scalar(packed, "alarm"), lay.scalar(packed, "cool"), lay.scalar(packed, "alarm_since")
        d, t = score.shape
        lengths = (active[None, :] > np.arange(d)[:, None]).sum(axis=1)
        rows, last_row = np.arange(d), np.maximum(lengths - 1, 0)
        valid = np.arange(t)[None, :] < lengths[:, None]
        above = _run_lengths((score >= cfg.raise_level) & valid, lay.scalar(packed, "above"), axis=1)
        below = _run_lengths((score < cfg.clear_level) & valid, lay.scalar(packed, "below"), axis=1)
        tsf = ts.astype(np.float64)
        below_since = lay.scalar(packed, "below_since")
        # the start of each reading's run below the clear level: in this chunk, or carried
        first = np.arange(t)[None, :] - below + 1.0
        at_first = np.take_along_axis(tsf, np.clip(first, 0, t - 1).astype(np.int64), axis=1)
        run_since = np.where(first >= 0, at_first, below_since[:, None])
        can_raise = (above >= cfg.min_duration) & valid
        can_clear = (below >= cfg.clear_duration) & (tsf - run_since >= 1000.0 * cfg.clear_s) & valid
        began = (below == 1.0) & valid
        last_began = np.where(began.any(axis=1), t - 1 - np.argmax(began[:, ::-1], axis=1), -1)
        below_since[:] = np.where(last_began >= 0, tsf[rows, np.maximum(last_began, 0)], below_since)
        out = np.repeat(alarm[:, None], t, axis=1)
        up_all, down_all = np.zeros((d, t)), np.zeros((d, t))
        busy = np.flatnonzero(np.where(alarm > 0, can_clear.any(axis=1), can_raise.any(axis=1)))
        for i in busy:
            n, at, on, co = int(lengths[i]), 0, alarm[i] > 0, float(cool[i])
            while at < n:
                if on:
                    hits = np.flatnonzero(can_clear[i, at:n])
                else:
                    start = at + int(np.ceil(co))  # a raise waits out the cooldown
                    hits = start - at + np.flatnonzero(can_raise[i, start:n])
                if not hits.size:
                    break
                step = at + int(hits[0])
                if on:
                    down_all[i, step], co = 1.0, float(cfg.cooldown)
                else:
                    up_all[i, step], co, since[i] = 1.0, 0.0, float(ts[i, step])
                on = not on
                out[i, step:] = 1.0 if on else 0.0
                at = step + 1
            alarm[i] = 1.0 if on else 0.0
            cool[i] = co + at  # the decrement below runs from the last transition on
        np.maximum(cool - lengths, 0.0, out=cool)
        lay.scalar(packed, "above")[:] = above[rows, last_row]
        lay.scalar(packed, "below")[:] = below[rows, last_row]
        health = lay.scalar(packed, "health")
        capped = np.ascontiguousarray(np.minimum(score, 2.0).T)
        hr, tmp = lay.scalar(packed, "r_adapt").copy(), np.empty(d)
        for step in range(t):  # a plain EWMA, kept sequential so chunking changes no bit
            k = int(active[step])
            np.subtract(capped[step, :k], health[:k], out=tmp[:k])
            tmp[:k] *= hr[:k]
            health[:k] += tmp[:k]
        lay.scalar(packed, "n")[:] += lengths
        return out, up_all, down_all


def _last_before(xs: FloatArray, present: npt.NDArray[np.bool_], initial: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The last present value before each step of ``xs`` (t, d, c), and after the last."""
    t = xs.shape[0]
    idx = np.arange(t)[:, None, None]
    pos = np.maximum.accumulate(np.where(present, idx, -1), axis=0)
    prev = np.concatenate([np.full((1, *pos.shape[1:]), -1), pos[:-1]])
    before = np.where(prev >= 0, np.take_along_axis(xs, np.maximum(prev, 0), axis=0), initial[None])
    last = pos[-1]
    after = np.where(last >= 0, np.take_along_axis(xs, np.maximum(last, 0)[None], axis=0)[0], initial)
    return before, after


def _run_lengths(flags: npt.NDArray[np.bool_], initial: FloatArray, axis: int = 0) -> FloatArray:
    """How many flags in a row end at each position, continuing ``initial`` runs."""
    n = flags.shape[axis]
    shape = [1] * flags.ndim
    shape[axis] = n
    idx = np.arange(n).reshape(shape)
    last_break = np.maximum.accumulate(np.where(flags, -1, idx), axis=axis)
    carried = np.expand_dims(initial, axis) + idx + 1.0
    return np.asarray(np.where(last_break >= 0, idx - last_break, carried), dtype=np.float64)
