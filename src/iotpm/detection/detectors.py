"""The detectors. Each is configured in ``__init__`` and maps arrays to scores.

Every score is scaled so that 1.0 is that detector's alarm level. The sequential
recursions they read (baseline, CUSUM sums, run lengths) come from the kernel in
:mod:`iotpm.detection.engine`; what is left here is element-wise and vectorised over
devices, time and channels at once.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from iotpm.detection.config import ISO_10816_3_ZONES, DetectorConfig
from iotpm.detection.state import FloatArray, IntArray


class StaticThreshold:
    """Outside [low, high]: 1.0 at the limit, growing with the excursion."""

    def __call__(
        self, x: FloatArray, low: FloatArray, high: FloatArray, running: npt.NDArray[np.bool_] | bool = True
    ) -> FloatArray:
        """``running`` False: the low limit does not apply (a stopped machine sits below it)."""
        span = np.where(np.isfinite(low) & np.isfinite(high), high - low, np.fmax(np.abs(high), np.abs(low)))
        span = np.where(np.isfinite(span) & (span > 0), span, 1.0)
        over = np.fmax(x - high, np.where(running, low - x, np.nan))
        return np.where(over >= 0, 1.0 + over / span, 0.0)


class IsoVibrationZone:
    """ISO 10816-3 zone of a velocity RMS: 0 in A/B, 0.5 in C, >= 1.0 in D."""

    def __init__(self, config: DetectorConfig) -> None:
        _, self.bc, self.cd = ISO_10816_3_ZONES[config.iso_class]

    def __call__(self, x: FloatArray) -> FloatArray:
        return np.where(x >= self.cd, x / self.cd, np.where(x >= self.bc, 0.5, 0.0))

    def zone(self, value: float) -> str:
        """The zone letter of one value (A and B are both acceptable, so not told apart)."""
        return "D" if value >= self.cd else "C" if value >= self.bc else "A/B"


class Spike:
    """Robust z-score against the adaptive baseline.

    A reading raises only past ``tail_factor`` times the recent maximum of the metric's
    deviation (its tails). One no larger than that maximum is no new spike: it scores at
    most the clear level (its score times ``tail_factor`` x ``clear_level``, below the clear
    level), so a metric that has stepped to a new level and stays there does not hold the
    spike's alarm open at 1 / ``tail_factor`` of the raise level, between the clear and the
    raise levels, until the baseline follows: a level that lasts is the drift detector's to
    raise, once. Raising is unchanged.
    """

    def __init__(self, config: DetectorConfig) -> None:
        self.limit = config.spike_z
        self.tail = config.tail_factor
        self.within = config.tail_factor * config.alarm.clear_level

    def __call__(self, z: FloatArray, recent_max: FloatArray) -> FloatArray:
        """``recent_max``: ``tail_factor`` times the decaying maximum of ``|z|`` before the reading."""
        a = np.abs(z)
        score = a / np.fmax(self.limit, recent_max)
        return np.asarray(np.where(a * self.tail < recent_max, score * self.within, score), dtype=np.float64)


class Drift:
    """Two-sided CUSUM on the clipped z-score: slow shifts a spike test misses."""

    def __init__(self, config: DetectorConfig) -> None:
        self.limit = config.cusum_h

    def __call__(self, cusum: FloatArray) -> FloatArray:
        return cusum / self.limit


class RateOfChange:
    """A step between consecutive readings far above the device's typical step."""

    def __init__(self, config: DetectorConfig) -> None:
        self.limit = config.roc_z

    def __call__(self, ratio: FloatArray, recent_max: FloatArray) -> FloatArray:
        """``ratio`` is |step| / typical step; ``recent_max`` its recent maximum."""
        return ratio / np.fmax(self.limit, recent_max)


class Flatline:
    """The same value repeated far longer than the warm-up ever repeated it."""

    def __call__(self, run: FloatArray, threshold: FloatArray) -> FloatArray:
        return run / threshold


class Dropout:
    """A gap between readings many times the device's expected interval."""

    def __init__(self, config: DetectorConfig) -> None:
        self.limit = config.dropout_factor

    def __call__(self, gap_ratio: FloatArray) -> FloatArray:
        return gap_ratio / self.limit


class Multivariate:
    """Hotelling T² of the clipped z-vector against the warm-up correlation, and of its EWMA.

    T² catches a combination of metrics that is unusual although each is in range
    (e.g. flow down while pressure holds); T² of the z-vector's EWMA (a MEWMA chart)
    catches a shift that lasts although no single reading is unusual enough. The
    score is the larger of the two, each against its limit. Missing metrics
    contribute nothing.
    """

    def __init__(self, config: DetectorConfig, channels: int) -> None:
        self.clip = config.cusum_clip * 2
        self.limit = chi2_quantile(channels, config.t2_z)
        self.factor = config.mewma_factor

    def ewma_limit(self, rate: FloatArray) -> FloatArray:
        """The EWMA chart's limit at each device's weight: the EWMA's variance is
        rate / (2 - rate) of the z's, so T² of it is scaled back."""
        return np.asarray(self.factor * self.limit * rate / (2.0 - rate), dtype=np.float64)

    def __call__(
        self,
        z: FloatArray,
        precision: FloatArray,
        on: FloatArray,
        history: FloatArray,
        ewma: FloatArray,
        active: IntArray,
        rate: FloatArray,
        ewma_limit: FloatArray,
    ) -> tuple[FloatArray, FloatArray]:
        """The score (d, t) and each channel's share of it (d, t, c), the reason's metric.

        ``history`` (d, h) and ``ewma`` (d, c) are advanced in place; ``rate`` and
        ``ewma_limit`` (d,) are each device's EWMA weight and its chart's limit.
        """
        d, t, c = z.shape
        zc = np.nan_to_num(np.clip(z, -self.clip, self.clip))  # (d, t, c)
        lengths = (active[None, :] > np.arange(d)[:, None]).sum(axis=1)
        # rolling median of T² over the last readings
        terms = _quadratic(precision, zc) * on[None, :, None]  # (c, d, t)
        t2 = terms.sum(axis=0)
        h = history.shape[1]
        series = np.concatenate([history, t2], axis=1)
        window = np.lib.stride_tricks.sliding_window_view(series, h + 1, axis=1)
        median = _median5(window) if h + 1 == 5 else np.median(window, axis=2)
        history[:] = np.take_along_axis(series, lengths[:, None] + np.arange(h)[None, :], axis=1)
        # the EWMA, one reading at a time in a fixed order (chunking changes no bit)
        pushed = np.ascontiguousarray(zc.transpose(1, 0, 2)) * rate[None, :, None]  # (t, d, c)
        e = np.zeros((t, d, c))
        keep, prev = (1.0 - rate)[:, None], ewma
        for e_t, p_t, k in zip(e, pushed, active.tolist(), strict=True):
            if k == d:
                np.multiply(prev, keep, out=e_t)
                np.add(e_t, p_t, out=e_t)
            else:  # devices with fewer readings have dropped out of the (sorted) stack
                np.multiply(prev[:k], keep[:k], out=e_t[:k])
                e_t[:k] += p_t[:k]
            prev = e_t
        rows = np.flatnonzero(lengths > 0)
        ewma[rows] = e[lengths[rows] - 1, rows]
        drift_terms = _quadratic(precision, e.transpose(1, 0, 2)) * on[None, :, None]
        instant, drift = median / self.limit, drift_terms.sum(axis=0) / ewma_limit[:, None]
        # a channel's share: its terms of whichever statistic is the larger
        share = np.moveaxis(np.where(drift > instant, drift_terms, terms), 0, 2)
        return np.asarray(np.fmax(instant, drift), dtype=np.float64), share


def _quadratic(precision: FloatArray, v: FloatArray) -> FloatArray:
    """The terms v_j (P v)_j of v' P v per channel, device and reading: (c, d, t).

    Term by term, element-wise: every reading's sum runs in one fixed order whatever
    the chunk's shape (a batched matmul may not).
    """
    vc = np.moveaxis(v, 2, 0)  # (c, d, t)
    pv = (precision.transpose(1, 2, 0)[:, :, :, None] * vc[None]).sum(axis=1)
    return np.asarray(vc * pv, dtype=np.float64)


def _median5(w: FloatArray) -> FloatArray:
    """Median of the last axis of length 5, by a min/max network (np.median sorts)."""
    a, b, c, d, e = (w[..., i] for i in range(5))
    f = np.maximum(np.minimum(a, b), np.minimum(c, d))  # the smaller pair's larger
    g = np.minimum(np.maximum(a, b), np.maximum(c, d))  # the larger pair's smaller
    return np.maximum(np.minimum(e, f), np.minimum(np.maximum(e, f), g))


def chi2_quantile(dof: int, z: float) -> float:
    """Chi-square quantile at the normal quantile ``z`` (Wilson-Hilferty)."""
    k = float(max(dof, 1))
    return float(k * (1.0 - 2.0 / (9.0 * k) + z * (2.0 / (9.0 * k)) ** 0.5) ** 3)
