"""The statistical baseline's recursions in numpy, one reading at a time.

Everything that is not a recursion on the baseline is computed for the whole chunk up
front, exactly (:func:`prepare`): the last finite value before each reading, the step,
the repeat run, the interval. :func:`recurse` is left with the recursions that need the
previous reading's state, on contiguous time-major arrays whose fields are stacked so
one numpy call advances several of them; :func:`advance` is one reading of it, in the C
kernel's order of operations (``_kernel.c``), so the two agree bit for bit.

Every array carries ``w = c + 1`` columns: the channels, and one for the device's
interval, which shares the typical step's recursion (inert in the others).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from iotpm.detection.config import DetectorConfig
from iotpm.detection.state import FloatArray, IntArray, Layout

Mask = npt.NDArray[np.bool_]


class Series(NamedTuple):
    """What each reading brings to the recursions, time-major (t, d, w)."""

    x0: FloatArray  # the reading, 0 where missing
    present: FloatArray  # 1 where the reading is present (the baseline adapts), else 0
    step: FloatArray  # |step| per channel and the interval in the last column (NaN: none)
    step0: FloatArray  # the same, 0 where none
    stepped: FloatArray  # 1 where there is a step (the typical step and the interval adapt), else 0

    def at(self, step: int, k: int, d: int) -> Series:
        """Reading ``step`` of the first ``k`` of ``d`` devices (views)."""
        if k == d:
            return Series(*(a[step] for a in self))
        return Series(*(a[step, :k] for a in self))


class Prepared(NamedTuple):
    """A chunk's readings, ready for the recursions, and what is stored after them."""

    series: Series
    final_x: FloatArray  # (d, c) the last value (a gated reading leaves none)
    run: FloatArray  # (t, d, c) the repeat run ending at each reading
    tsf: FloatArray  # (t, d) the reading times, float ms


class Baseline(NamedTuple):
    """The recursions' state, (..., d, w); advanced in place."""

    levels: FloatArray  # (4, d, w) level, scale, decaying max |z|, decaying max step ratio
    s_min: FloatArray  # (d, w) the scale's floor
    typical: FloatArray  # (d, w) the typical step; the expected interval in the last column
    cusum: FloatArray  # (2, d, w) the upper and lower CUSUM sums
    trend: FloatArray  # (2, d, w) the fast and slow levels
    learned_from: FloatArray  # (d, w) the level a settled shift was last learned from (NaN: none)
    hold: FloatArray  # (2, d, w) the fast level held since, and for how long (ms)
    restart: FloatArray  # (d, w) the restart's mark (:func:`_restarted`; 0: none)

    def head(self, k: int) -> Baseline:
        """The first ``k`` devices (views)."""
        return Baseline(
            self.levels[:, :k],
            self.s_min[:k],
            self.typical[:k],
            self.cusum[:, :k],
            self.trend[:, :k],
            self.learned_from[:k],
            self.hold[:, :k],
            self.restart[:k],
        )


class Record(NamedTuple):
    """What the recursions record at each reading, time-major."""

    before: FloatArray  # (t, 4, d, w) the levels before the reading
    ratios: FloatArray  # (t, 2, d, w) |z| and the step over the typical step (the gap ratio)
    cusum: FloatArray  # (t, d, w) the larger CUSUM sum
    fast: FloatArray  # (t, d, w) the fast level before the reading
    interval: FloatArray  # (t, d, 1) the expected interval before the reading, ms

    @classmethod
    def empty(cls, t: int, d: int, w: int) -> Record:
        levels, ratios = np.zeros((t, 4, d, w)), np.zeros((t, 2, d, w))
        return cls(levels, ratios, np.zeros((t, d, w)), np.zeros((t, d, w)), np.zeros((t, d, 1)))

    def at(self, step: int, k: int, d: int) -> Record:
        """Reading ``step`` of the first ``k`` of ``d`` devices (views)."""
        if k == d:
            return Record(*(a[step] for a in self))
        before, ratios = self.before[step, :, :k], self.ratios[step, :, :k]
        return Record(before, ratios, self.cusum[step, :k], self.fast[step, :k], self.interval[step, :k])


class Scratch(NamedTuple):
    """Work arrays for one reading, (..., d, w)."""

    z: FloatArray  # (d, w)
    u: FloatArray  # (d, w)
    clipped: FloatArray  # (2, d, w) z clipped for the CUSUM and, tighter, for the adaptation
    signed: FloatArray  # (2, d, w)
    weights: FloatArray  # (2, d, w) the reading's weight in the baseline and in the typical step

    @classmethod
    def empty(cls, d: int, w: int) -> Scratch:
        return cls(np.empty((d, w)), np.empty((d, w)), np.empty((2, d, w)), np.empty((2, d, w)), np.empty((2, d, w)))

    def head(self, k: int) -> Scratch:
        return Scratch(self.z[:k], self.u[:k], self.clipped[:, :k], self.signed[:, :k], self.weights[:, :k])


class Constants(NamedTuple):
    """The recursions' parameters, shaped to broadcast."""

    limits: FloatArray  # (2, 1, 1) the CUSUM's and the adaptation's clip of z
    sign: FloatArray  # (2, 1, 1) +1 for the upper CUSUM, -1 for the lower
    decay: FloatArray  # (d, 1) each device's per-reading decay of the recent maxima
    k_ref: float  # the CUSUM's reference value
    h_ref: float  # its decision interval (a sum past it signals and resets)
    trend_rates: FloatArray  # (2, 1, 1) the fast and slow levels' weights
    step_cap: FloatArray  # (w,) a step counts up to this many typical steps
    relearn: Mask  # (d, w) where the CUSUM's signal may move the baseline to the level it found
    readings: float  # the fewest readings after a shift began at which the CUSUM can signal
    relearn_ms: float  # how long a shift must have lasted for its signal to move the baseline
    settle_ms: float  # how long a level must have held for a second shift the same way to be learned
    r_adapt: FloatArray  # (d, 1) each device's baseline weight of one reading (adapt_halflife)
    dropout_factor: float  # a silence of this many expected intervals is a gap
    interval_tau_ms: float  # the expected interval's time constant (interval_halflife_s)
    fast_kept: float  # the fast level's weight kept on what it stood at, per present reading

    def head(self, k: int) -> Constants:
        """The first ``k`` devices' constants (views)."""
        return self._replace(decay=self.decay[:k], relearn=self.relearn[:k], r_adapt=self.r_adapt[:k])

    @classmethod
    def of(cls, cfg: DetectorConfig, decay: FloatArray, c: int, drift: Mask, r_adapt: FloatArray) -> Constants:
        """``drift`` (d, c): the metrics whose slow shifts the CUSUM judges (no static limit);
        ``decay`` and ``r_adapt`` (d,) each device's per-reading decay of the recent maxima and
        the baseline's weight of one reading."""
        relearn = np.zeros((len(decay), c + 1), dtype=bool)
        relearn[:, :c] = drift
        with np.errstate(divide="ignore"):  # clip = k: the sum cannot grow (C divides the same way)
            readings = np.divide(np.float64(cfg.cusum_h), np.float64(cfg.cusum_clip - cfg.cusum_k))
        return cls(
            limits=np.array([min(cfg.cusum_clip, np.inf), min(cfg.adapt_clip, cfg.cusum_clip)])[:, None, None],
            sign=np.array([1.0, -1.0])[:, None, None],
            decay=decay[:, None].copy(),
            k_ref=cfg.cusum_k,
            h_ref=cfg.cusum_h,
            trend_rates=np.array([cfg.trend_rate, cfg.trend_rate_slow])[:, None, None],
            step_cap=np.array([4.0] * c + [3.0]),
            relearn=relearn,
            readings=float(readings),
            relearn_ms=1000.0 * cfg.drift_relearn_s,
            settle_ms=1000.0 * cfg.drift_settle_s,
            r_adapt=r_adapt[:, None].copy(),
            dropout_factor=cfg.dropout_factor,
            interval_tau_ms=time_constant_ms(cfg.interval_halflife_s),
            fast_kept=1.0 - cfg.trend_rate,
        )


def time_constant_ms(halflife_s: float) -> float:
    """The time constant (ms) of a first-order filter with this half-life. A reading's weight
    is ``elapsed / (elapsed + tau)`` (the filter discretised implicitly, exact with + and / in
    both kernels): over a half-life of readings much closer than it, half the weight."""
    return 1000.0 * halflife_s / math.log(2.0)


def prepare(
    packed: FloatArray,
    lay: Layout,
    ts: IntArray,
    x: FloatArray,
    gated: Mask,
    across_gap: Mask,
) -> Prepared:
    """The chunk's readings (d, t, c; NaN = missing to the statistics) as the recursions
    take them. ``gated`` readings (machine off or settling) leave no last value: the step
    after them starts afresh; ``across_gap`` (t, d, c) steps have no rate of change."""
    d, t, c = x.shape
    w = c + 1
    xs = np.ascontiguousarray(x.transpose(1, 0, 2))  # (t, d, c)
    tsf = np.ascontiguousarray(ts.T).astype(np.float64)  # (t, d)
    m = ~np.isnan(xs)
    gated_t = np.broadcast_to(gated.transpose(1, 0, 2), xs.shape)
    lx, final_x = _last_before(xs, m | gated_t, lay.view(packed, "last_x").copy())
    dx = np.where(across_gap, np.nan, xs - lx)
    run = run_lengths(xs == lx, lay.view(packed, "run"))
    dt = tsf - np.concatenate([lay.scalar(packed, "last_t")[None, :], tsf[:-1]])
    x0, mf = np.zeros((t, d, w)), np.zeros((t, d, w))
    x0[..., :c] = np.where(m, xs, 0.0)
    mf[..., :c] = m
    step = np.empty((t, d, w))
    step[..., :c] = np.abs(dx)
    step[..., c] = dt
    stepped = np.empty((t, d, w))
    stepped[..., :c] = ~np.isnan(dx)
    stepped[..., c] = dt > 0
    series = Series(x0, mf, step, np.where(np.isnan(step), 0.0, step), stepped)
    return Prepared(series, final_x, run, tsf)


def load(packed: FloatArray, lay: Layout) -> Baseline:
    """The recursions' state from the packed state (copies; :func:`store` writes it back)."""
    d, c = packed.shape[0], lay.c
    w = c + 1
    levels = np.zeros((4, d, w))
    levels[1, :, c] = 1.0
    for row, name in enumerate(("mu", "s", "zmax", "dmax")):
        levels[row, :, :c] = lay.view(packed, name)
    s_min = np.ones((d, w))
    s_min[:, :c] = lay.view(packed, "s_min")
    typical = np.empty((d, w))
    typical[:, :c] = lay.view(packed, "dscale")
    typical[:, c] = lay.scalar(packed, "dt_exp")
    cusum, trend = np.zeros((2, d, w)), np.zeros((2, d, w))
    cusum[0, :, :c], cusum[1, :, :c] = lay.view(packed, "cp"), lay.view(packed, "cn")
    learned_from = np.full((d, w), np.nan)
    learned_from[:, :c] = lay.view(packed, "drift_from")
    trend[0, :, :c], trend[1, :, :c] = lay.view(packed, "fast"), lay.view(packed, "slow")
    hold = np.zeros((2, d, w))
    hold[0, :, c] = np.nan
    hold[0, :, :c], hold[1, :, :c] = lay.view(packed, "hold_at"), lay.view(packed, "hold_ms")
    restart = np.zeros((d, w))
    restart[:, :c] = lay.view(packed, "restart")
    return Baseline(levels, s_min, typical, cusum, trend, learned_from, hold, restart)


def store(packed: FloatArray, lay: Layout, state: Baseline, prepared: Prepared, lengths: IntArray) -> None:
    """Write the advanced state back into the packed state."""
    c = lay.c
    rows, last_row = np.arange(len(lengths)), np.maximum(lengths - 1, 0)
    for name, value in (
        ("mu", state.levels[0, :, :c]),
        ("s", state.levels[1, :, :c]),
        ("zmax", state.levels[2, :, :c]),
        ("dmax", state.levels[3, :, :c]),
        ("dscale", state.typical[:, :c]),
        ("cp", state.cusum[0, :, :c]),
        ("cn", state.cusum[1, :, :c]),
        ("drift_from", state.learned_from[:, :c]),
        ("hold_at", state.hold[0, :, :c]),
        ("hold_ms", state.hold[1, :, :c]),
        ("restart", state.restart[:, :c]),
        ("fast", state.trend[0, :, :c]),
        ("slow", state.trend[1, :, :c]),
        ("last_x", prepared.final_x),
        ("run", prepared.run[last_row, rows]),
    ):
        lay.view(packed, name)[:] = value
    lay.scalar(packed, "last_t")[:] = prepared.tsf[last_row, rows]
    lay.scalar(packed, "dt_exp")[:] = state.typical[:, c]


def recurse(state: Baseline, series: Series, active: IntArray, const: Constants) -> Record:
    """Advance ``state`` over the chunk, reading by reading; returns what was recorded."""
    t, d, w = series.x0.shape
    record = Record.empty(t, d, w)
    scratch = Scratch.empty(d, w)
    for step in range(t):
        k = int(active[step])
        if k == d:
            advance(state, scratch, series.at(step, k, d), record.at(step, k, d), const)
        else:  # devices with fewer readings have dropped out of the (sorted) stack
            advance(state.head(k), scratch.head(k), series.at(step, k, d), record.at(step, k, d), const.head(k))
    return record


def advance(b: Baseline, sc: Scratch, x: Series, rec: Record, const: Constants) -> None:
    """One reading: record the state before it, then advance ``b`` in place."""
    mu, s, tails = b.levels[0], b.levels[1], b.levels[2:4]
    cusum, typical, trend, signed = b.cusum, b.typical, b.trend, sc.signed
    adapt, stepping = _weights(sc.weights, typical, x, const)
    np.copyto(rec.before, b.levels)
    np.copyto(rec.fast, trend[0])
    np.copyto(rec.interval, typical[:, -1:])
    # z against the baseline before this reading; 0 where missing
    z = sc.z
    np.subtract(x.x0, mu, out=z)
    z *= x.present
    z /= s
    # decaying maxima of |z| and of |step| / typical step (and the gap ratio)
    np.abs(z, out=rec.ratios[0])
    np.divide(x.step, typical, out=rec.ratios[1])
    tails *= const.decay
    np.fmax(tails, rec.ratios, out=tails)
    # z clipped for the CUSUM and, tighter, for the baseline's adaptation
    np.maximum(z, -const.limits, out=sc.clipped)
    np.minimum(sc.clipped, const.limits, out=sc.clipped)
    zc, r = sc.clipped[0], sc.clipped[1]
    _forget(b.learned_from, rec, x, typical, const)
    _hold(b.hold, b.learned_from, rec, typical, const)
    _restarted(b.restart, x, typical, const, cusum)
    signalled, kept = _cusum(cusum, zc, typical, rec, const, signed, b.learned_from, b.hold[1])
    np.copyto(b.restart, 0.0, where=rec.cusum == 0.0)
    # baseline: an EWMA of the clipped residual, so an outlier moves it by at most
    # `adapt_clip` scales times the rate, and a new level is absorbed slowly
    u = sc.u
    np.multiply(adapt, r, out=u)
    u *= s
    mu += u
    if signalled.any():
        learns = signalled & ~kept
        _relearn(mu, trend, rec, const, learns, b.learned_from, b.restart)
        np.copyto(b.restart, 0.0, where=signalled)
        # a level learned: how long it holds is counted from here
        np.copyto(b.hold[0], rec.fast, where=learns)
        np.copyto(b.hold[1], 0.0, where=learns)
    np.multiply(r, r, out=u)
    u -= 1.0
    u *= adapt
    u += 1.0
    np.sqrt(u, out=u)
    s *= u
    np.maximum(s, b.s_min, out=s)
    # typical step and expected interval: EWMAs of the capped value
    np.multiply(typical, const.step_cap, out=u)
    np.minimum(x.step0, u, out=u)
    u -= typical
    u *= stepping
    typical += u
    # fast and slow levels for the trend
    np.subtract(x.x0, trend, out=signed)
    signed *= x.present
    signed *= const.trend_rates
    trend += signed
    # the fast level's weight left on the level before a stop (:func:`_restarted`)
    np.multiply(b.restart, const.fast_kept, out=b.restart, where=(x.present > 0.0) & (b.restart > 0.0))


def _weights(out: FloatArray, typical: FloatArray, x: Series, const: Constants) -> tuple[FloatArray, FloatArray]:
    """The reading's weight in the baseline (``out[0]``: 0 where missing) and in the typical
    step and the expected interval (``out[1]``: 0 where no step). The baseline and the typical
    step weigh one reading as such (``adapt_halflife``); the expected interval learns in time,
    a reading weighing the time it stands for: its interval, up to three expected ones (the
    last column of ``typical``; a longer silence is a gap), ``seen / (seen + tau)``. A device
    that slows down is judged at its new interval within hours, not thousands of readings."""
    c = typical.shape[1] - 1
    adapt, stepping = out[0], out[1]
    adapt[:] = const.r_adapt
    stepping[:, :c] = const.r_adapt
    seen = stepping[:, c:]
    np.multiply(typical[:, c:], 3.0, out=seen)
    np.minimum(x.step0[:, c:], seen, out=seen)
    np.copyto(seen, 0.0, where=x.stepped[:, c:] == 0.0)
    np.divide(seen, seen + const.interval_tau_ms, out=seen)
    np.multiply(stepping[:, :c], x.stepped[:, :c], out=stepping[:, :c])
    np.multiply(adapt, x.present, out=adapt)
    return adapt, stepping


def _cusum(
    cusum: FloatArray,
    zc: FloatArray,
    typical: FloatArray,
    rec: Record,
    const: Constants,
    signed: FloatArray,
    learned_from: FloatArray,
    held_ms: FloatArray,
) -> tuple[Mask, Mask]:
    """Two-sided CUSUM step, reset once it has signalled, so a drift alarms once, not for as
    long as the baseline takes to absorb the new level. A signal means the shift has lasted
    drift_relearn_s where the CUSUM cannot signal sooner: `readings` at the device's expected
    interval before this reading (it follows the interval the device reads at now, not the
    warm-up's).

    A second signal the way the last settled shift went (``learned_from`` below the baseline for
    an upward one), the metric not back: the level still moves, it is no new normal. It is not
    learned (``kept``, returned with the signal) and its sum is held at the decision interval
    rather than reset: the alarm stays open, and escalates as the spike and multivariate
    detectors see the level grow (a slow climb was learned step by step, a warning each).
    Unless the level has held still since for ``drift_settle_s`` (``held_ms``, :func:`_hold`):
    it has settled, and is learned as the first one was (two steps the same way a week apart,
    a setpoint moved twice, held the alarm for 15 days)."""
    np.multiply(zc, const.sign, out=signed)
    cusum += signed
    cusum -= const.k_ref
    np.maximum(cusum, 0.0, out=cusum)
    np.maximum(cusum[0], cusum[1], out=rec.cusum)
    lasted = typical[:, -1:] * const.readings >= const.relearn_ms
    signalled: Mask = (rec.cusum > const.h_ref) & const.relearn & lasted
    over = cusum > const.h_ref  # (2, d, w)
    up = rec.before[0] > learned_from
    kept: Mask = signalled & ~np.isnan(learned_from) & np.where(up, over[0], over[1]) & (held_ms < const.settle_ms)
    cusum *= ~over
    if kept.any():
        np.copyto(cusum, const.h_ref, where=over & kept)
    return signalled, kept


def _forget(learned_from: FloatArray, rec: Record, x: Series, typical: FloatArray, const: Constants) -> None:
    """The level a settled shift was learned from is forgotten once the metric (its fast level)
    is back nearer it than the baseline, or after a silence the dropout detector calls a gap
    (the machine was stopped: it may come back at a level of its own): a later shift that way
    is a new one."""
    mu = rec.before[0]
    toward = np.where(mu > learned_from, 1.0, -1.0)
    back = (toward * (rec.fast - learned_from)) * 2.0 <= np.abs(mu - learned_from)
    c = typical.shape[1] - 1
    back |= x.step[:, c:] > const.dropout_factor * typical[:, c:]
    np.copyto(learned_from, np.nan, where=back)


def _restarted(restart: FloatArray, x: Series, typical: FloatArray, const: Constants, cusum: FloatArray) -> None:
    """A sum that builds from the first reading after a stop is a level the machine came back at
    (maintenance, a re-seated part, a new load): marked here, unmarked once the sum empties (it
    was none) or signals (:func:`_relearn` learns it in full, once). A stop: a silence the dropout
    detector calls a gap that lasted ``drift_relearn_s``, as long as a shift must last for its
    signal to be learned (a shorter one, a dropout or a pause, leaves the level as it was).

    The mark is 1 where the sum was empty at the stop: the shift began there, and the mark
    becomes the fast level's weight left on the level before the stop (times 1 - the fast rate
    at each reading, in :func:`advance`), so the level since the stop is the fast level net of
    that lag. Where the sum carried a shift through the stop, -1: the fast level as it is."""
    c = typical.shape[1] - 1
    silence = x.step[:, c:]
    stopped = (silence > const.dropout_factor * typical[:, c:]) & (silence >= const.relearn_ms)
    empty = (cusum[0] == 0.0) & (cusum[1] == 0.0)
    np.copyto(restart, np.where(empty, 1.0, -1.0), where=stopped)


def _hold(hold: FloatArray, learned_from: FloatArray, rec: Record, typical: FloatArray, const: Constants) -> None:
    """How long the fast level has held still since a settled shift was learned: the time
    (the expected interval of each reading) it has stayed within half the CUSUM's reference of
    where it stood, in typical steps between readings (the noise: the scale grows while a shift
    is held, the steps do not); it starts again where the level moved further, and there is
    none once the shift is forgotten (``learned_from`` NaN). A climb of 20 scales over 17 days
    moves that far in about 11 hours, so it never holds a day."""
    at, ms = hold[0], hold[1]
    ms += typical[:, -1:]
    moved = ~(np.abs(rec.fast - at) <= (0.5 * const.k_ref) * typical)
    np.copyto(at, rec.fast, where=moved)
    np.copyto(ms, 0.0, where=moved)
    none = np.isnan(learned_from)
    np.copyto(at, np.nan, where=none)
    np.copyto(ms, 0.0, where=none)


def _relearn(
    mu: FloatArray,
    trend: FloatArray,
    rec: Record,
    const: Constants,
    signalled: Mask,
    learned_from: FloatArray,
    restart: FloatArray,
) -> None:
    """A shift the CUSUM has signalled has lasted: the level it stands at (the fast level)
    is the new normal, so the drift raises once per shift, not at each refill of the sum.
    In full once the level has stopped moving (the fast and slow levels agree within the
    adaptation's clip); while it still moves, by at most that clip in scales, as the
    baseline adapts: a moving level is the spike's and the multivariate detectors' to
    judge, and fills the sum again and signals again. A shift marked at a restart
    (``restart``, :func:`_restarted`) is learned in full at once: a machine back from a stop
    may settle at a level of its own once, one event, while the slow level lags it by a day at
    one reading per 10 minutes; where it began at the stop, net of the fast level's lag (the
    fast level is a blend of the baseline, weight ``restart``, and the readings since). A level
    learned in full is remembered as the one it was learned from (``learned_from``): a second
    shift the same way is kept."""
    room = const.limits[1] * rec.before[1]
    shift = rec.fast - rec.before[0]
    unlagged = (restart > 0.0) & (restart < 1.0)
    np.divide(shift, 1.0 - restart, out=shift, where=unlagged)
    moving = np.abs(rec.fast - trend[1]) >= room
    moving &= restart == 0.0
    np.copyto(shift, np.minimum(np.maximum(shift, -room), room), where=moving)
    shift += rec.before[0]
    np.copyto(mu, shift, where=signalled)
    np.copyto(learned_from, rec.before[0], where=signalled & ~moving)


def _last_before(xs: FloatArray, present: Mask, initial: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The last present value before each step of ``xs`` (t, d, c), and after the last."""
    t = xs.shape[0]
    idx = np.arange(t)[:, None, None]
    pos = np.maximum.accumulate(np.where(present, idx, -1), axis=0)
    prev = np.concatenate([np.full((1, *pos.shape[1:]), -1), pos[:-1]])
    before = np.where(prev >= 0, np.take_along_axis(xs, np.maximum(prev, 0), axis=0), initial[None])
    last = pos[-1]
    after = np.where(last >= 0, np.take_along_axis(xs, np.maximum(last, 0)[None], axis=0)[0], initial)
    return before, after


def run_lengths(flags: Mask, initial: FloatArray, axis: int = 0) -> FloatArray:
    """How many flags in a row end at each position, continuing ``initial`` runs."""
    n = flags.shape[axis]
    shape = [1] * flags.ndim
    shape[axis] = n
    idx = np.arange(n).reshape(shape)
    last_break = np.maximum.accumulate(np.where(flags, -1, idx), axis=axis)
    carried = np.expand_dims(initial, axis) + idx + 1.0
    return np.asarray(np.where(last_break >= 0, idx - last_break, carried), dtype=np.float64)
