"""The vectorised kernel: one pass over time, vectorised across devices and channels.

Devices in a call are sorted by how many readings they bring, so at step ``t`` the
devices still active are a prefix ``[:k]`` of the stack and every update is an
in-place operation on a view of the packed state. Every recursion is evaluated one
reading at a time in a fixed order, so feeding a series in chunks of any size gives
bit-for-bit the result of feeding it at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iotpm.detection.config import DetectorConfig
from iotpm.detection.detectors import (
    CHANNEL_DETECTORS,
    DEVICE_DETECTORS,
    Drift,
    Dropout,
    Flatline,
    IsoVibrationZone,
    Multivariate,
    RateOfChange,
    Spike,
    StaticThreshold,
)
from iotpm.detection.state import FloatArray, IntArray, Layout

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
    return v


def fit_statistics(vector: FloatArray, layout: Layout, ts: IntArray, x: FloatArray, cfg: DetectorConfig) -> None:
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
    runs, longest = _runs(x)
    vector[o["run"]] = runs
    vector[o["flat_thr"]] = np.where(scale > 0, np.fmax(cfg.flatline_min, cfg.flatline_factor * longest), np.inf)
    vector[o["last_x"]] = _last_finite(x)
    dts = np.diff(ts)
    dts = dts[dts > 0]
    vector[o["dt_exp"]] = float(np.median(dts)) if dts.size else _DEFAULT_INTERVAL_MS
    if len(ts):
        vector[o["last_t"]] = float(ts[-1])
    with np.errstate(all="ignore"):
        z = np.minimum(np.abs(x - med), bound) / vector[o["s"]]
        vector[o["zmax"]] = _nan_or(np.nanmax(z, axis=0, initial=0.0), 0.0)
        vector[o["dmax"]] = _nan_or(np.nanmax(dx / vector[o["dscale"]], axis=0, initial=0.0), 0.0)
    vector[o["t2_hist"]] = 0.0
    precision = _precision(x, med, vector[o["s"]], cfg)
    vector[o["t2_on"]] = 0.0 if precision is None else 1.0
    vector[o["P"]] = 0.0 if precision is None else precision.ravel()


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
    c = x.shape[1]
    rows = np.all(np.isfinite(x), axis=1)
    if c < 2 or rows.sum() < 3 * c:
        return None
    z = (x[rows] - mu) / s
    z = z - z.mean(axis=0)
    cov = z.T @ z / max(len(z) - 1, 1)
    d = np.sqrt(np.clip(np.diag(cov), 1e-12, None))
    corr = cov / np.outer(d, d)
    return np.asarray(np.linalg.inv(corr + _T2_RIDGE * np.eye(c)), dtype=np.float64)


@dataclass
class KernelOutput:
    """Per-reading outputs of one kernel call, (devices, steps, ...) padded."""

    score: FloatArray  # (d, t)
    alarm: FloatArray  # (d, t) 0/1 after the reading
    raised: FloatArray  # (d, t) 0/1
    cleared: FloatArray  # (d, t) 0/1
    channel_scores: FloatArray  # (d, t, c, len(CHANNEL_DETECTORS))
    device_scores: FloatArray  # (d, t, len(DEVICE_DETECTORS))
    expected: FloatArray  # (d, t, c) baseline level before the reading
    scale: FloatArray  # (d, t, c) baseline scale before the reading


class Kernel:
    """Runs all detectors and the alarm decision over a stack of devices."""

    def __init__(self, config: DetectorConfig, channels: tuple[str, ...], vibration: FloatArray) -> None:
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

    def __call__(
        self,
        packed: FloatArray,
        ts: IntArray,
        x: FloatArray,
        lengths: IntArray,
        low: FloatArray,
        high: FloatArray,
        statistics: bool,
    ) -> KernelOutput:
        """Process ``x`` (d, t, c) in place of ``packed`` (d, size); lengths sorted descending."""
        d, t, c = x.shape
        active = (lengths[:, None] > np.arange(t)[None, :]).sum(axis=0)
        ch = np.zeros((d, t, c, len(CHANNEL_DETECTORS)))
        dev = np.zeros((d, t, len(DEVICE_DETECTORS)))
        with np.errstate(all="ignore"):  # inf and NaN are scored, not raised
            ch[..., 0] = self.static(x, low[:, None, :], high[:, None, :])
            ch[..., 1] = np.where(self.vibration, self.iso(x), 0.0)
            if statistics:
                expected, scale = self._statistics(packed, ts, x, active, ch, dev)
            else:
                expected = scale = np.full((d, t, c), np.nan)
            np.nan_to_num(ch, copy=False, nan=0.0, posinf=1e6)
            np.nan_to_num(dev, copy=False, nan=0.0, posinf=1e6)
        alarming = dev if self.cfg.dropout_alarms else dev[..., 1:]
        score = np.fmax(ch.max(axis=(2, 3)), alarming.max(axis=2))
        alarm, raised, cleared = self._alarm(packed, ts, score, active)
        return KernelOutput(score, alarm, raised, cleared, ch, dev, expected, scale)

    def _statistics(
        self,
        packed: FloatArray,
        ts: IntArray,
        x: FloatArray,
        active: IntArray,
        ch: FloatArray,
        dev: FloatArray,
    ) -> tuple[FloatArray, FloatArray]:
        cfg, lay = self.cfg, self.layout
        d, t, c = x.shape
        # Work on contiguous copies of the fields and time-major recordings, so each
        # step touches contiguous memory; the fields are written back at the end.
        names = ("mu", "s", "s_min", "dscale", "last_x", "run", "cp", "cn", "fast", "slow", "zmax", "dmax")
        f = {name: np.ascontiguousarray(lay.view(packed, name)) for name in names}
        mu, s, s_min, dscale, last_x, run = (f[n] for n in names[:6])
        cp, cn, fast, slow, zmax, dmax = (f[n] for n in names[6:])
        last_t = lay.scalar(packed, "last_t").copy()
        dt_exp = lay.scalar(packed, "dt_exp").copy()
        xs = np.ascontiguousarray(x.transpose(1, 0, 2))
        tsf = np.ascontiguousarray(ts.T).astype(np.float64)
        rec = {name: np.zeros((t, d, c)) for name in ("mu", "s", "zthr", "dthr", "cusum", "dx", "ds", "run")}
        rec["dx"][:] = np.nan
        gap = np.zeros((t, d))
        a, af, af_slow, decay = cfg.adapt_rate, cfg.trend_rate, cfg.trend_rate_slow, cfg.tail_decay
        k_ref, h_ref, clip, aclip = cfg.cusum_k, cfg.cusum_h, cfg.cusum_clip, cfg.adapt_clip
        r_mu, r_s, r_zthr, r_dthr = rec["mu"], rec["s"], rec["zthr"], rec["dthr"]
        r_cu, r_dx, r_ds, r_run = rec["cusum"], rec["dx"], rec["ds"], rec["run"]
        for step in range(t):
            k = int(active[step])
            xt = xs[step, :k]
            m = ~np.isnan(xt)
            mu_k, s_k = mu[:k], s[:k]
            r_mu[step, :k] = mu_k
            r_s[step, :k] = s_k
            z = (np.where(m, xt, mu_k) - mu_k) / s_k  # 0 where missing
            zm_k = zmax[:k]
            r_zthr[step, :k] = zm_k
            np.fmax(zm_k * decay, np.abs(z), out=zm_k)
            zc = np.minimum(np.maximum(z, -clip), clip)
            cp_k, cn_k = cp[:k], cn[:k]
            np.maximum(cp_k + zc - k_ref, 0.0, out=cp_k)
            np.maximum(cn_k - zc - k_ref, 0.0, out=cn_k)
            np.maximum(cp_k, cn_k, out=r_cu[step, :k])
            # Reset a sum once it has signalled, so a drift alarms once, not for as long
            # as the baseline takes to absorb the new level.
            cp_k *= cp_k <= h_ref
            cn_k *= cn_k <= h_ref
            # Baseline: an EWMA of the clipped residual, so an outlier moves it by at
            # most `adapt_clip` scales times the rate, and a new level is absorbed slowly.
            r = np.minimum(np.maximum(zc, -aclip), aclip)
            am = a * m
            mu_k += am * r * s_k
            s_k *= np.sqrt(1.0 + am * (r * r - 1.0))
            np.maximum(s_k, s_min[:k], out=s_k)
            lx_k, ds_k = last_x[:k], dscale[:k]
            dx = xt - lx_k
            r_dx[step, :k] = dx
            r_ds[step, :k] = ds_k
            adx = np.abs(dx)
            dm_k = dmax[:k]
            r_dthr[step, :k] = dm_k
            np.fmax(dm_k * decay, adx / ds_k, out=dm_k)
            ds_k += np.where(np.isnan(adx), 0.0, a * (np.minimum(adx, 4.0 * ds_k) - ds_k))
            same = xt == lx_k
            run_k = run[:k]
            run_k *= same
            run_k += same
            r_run[step, :k] = run_k
            np.copyto(lx_k, xt, where=m)
            fast_k, slow_k = fast[:k], slow[:k]
            fast_k += af * (np.where(m, xt, fast_k) - fast_k)
            slow_k += af_slow * (np.where(m, xt, slow_k) - slow_k)
            tt = tsf[step, :k]
            lt_k, de_k = last_t[:k], dt_exp[:k]
            dt = tt - lt_k
            gap[step, :k] = dt / de_k
            de_k += (dt > 0) * (a * (np.minimum(dt, 3.0 * de_k) - de_k))
            lt_k[:] = tt
        for name in names:
            lay.view(packed, name)[:] = f[name]
        lay.scalar(packed, "last_t")[:] = last_t
        lay.scalar(packed, "dt_exp")[:] = dt_exp
        dm = {name: arr.transpose(1, 0, 2) for name, arr in rec.items()}  # back to (d, t, c)
        z_all = (x - dm["mu"]) / dm["s"]
        tail = cfg.tail_factor
        ch[..., 2] = self.spike(z_all, tail * dm["zthr"])
        ch[..., 3] = self.drift(dm["cusum"])
        ch[..., 4] = self.roc(dm["dx"], dm["ds"], tail * dm["dthr"])
        ch[..., 5] = self.flat(dm["run"], lay.view(packed, "flat_thr")[:, None, :])
        dev[..., 0] = self.dropout(gap.T)
        dev[..., 1] = self.t2(
            z_all, lay.matrix(packed), lay.scalar(packed, "t2_on"), lay.view(packed, "t2_hist"), active
        )
        return dm["mu"], dm["s"]

    def _alarm(
        self, packed: FloatArray, ts: IntArray, score: FloatArray, active: IntArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        cfg, lay = self.cfg.alarm, self.layout
        alarm, above, below = lay.scalar(packed, "alarm"), lay.scalar(packed, "above"), lay.scalar(packed, "below")
        cool, health = lay.scalar(packed, "cool"), lay.scalar(packed, "health")
        n, since = lay.scalar(packed, "n"), lay.scalar(packed, "alarm_since")
        d, t = score.shape
        out, up_all, down_all = np.zeros((d, t)), np.zeros((d, t)), np.zeros((d, t))
        hr = self.cfg.adapt_rate
        for step in range(t):
            k = int(active[step])
            sc = score[:k, step]
            a_k, ab_k, be_k, co_k = alarm[:k], above[:k], below[:k], cool[:k]
            hi = sc >= cfg.raise_level
            ab_k *= hi
            ab_k += hi
            lo = sc < cfg.clear_level
            be_k *= lo
            be_k += lo
            up = (a_k == 0) & (ab_k >= cfg.min_duration) & (co_k <= 0)
            down = (a_k == 1) & (be_k >= cfg.clear_duration)
            co_k[:] = np.where(down, cfg.cooldown, np.maximum(co_k - 1.0, 0.0))
            a_k[:] = np.where(up, 1.0, np.where(down, 0.0, a_k))
            np.copyto(since[:k], ts[:k, step], where=up, casting="unsafe")
            h_k = health[:k]
            h_k += hr * (np.minimum(sc, 2.0) - h_k)
            out[:k, step] = a_k
            up_all[:k, step] = up
            down_all[:k, step] = down
        lengths = np.zeros(d, dtype=np.int64)
        for step in range(t):
            lengths[: int(active[step])] += 1
        n += lengths
        return out, up_all, down_all
